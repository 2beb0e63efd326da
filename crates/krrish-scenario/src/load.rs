//! Reading scenario and cluster files. Every error names the file, the line
//! and column when they are known, and what was expected; nothing is run
//! from a file that did not load whole.

use crate::cluster::{build_cluster, Cluster};
use crate::expect::check;
pub use crate::expect::{Check, Expect};
use crate::format::{ClusterFile, ScenarioFile};
use krrish_core::{HostId, VmId};
use krrish_sim::{Fault, SimConfig};
use krrish_wire::ApiRequest;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Where an error points in a file's text. Public so that other files read
/// by krrish (the daemons' configs) point at their errors the same way.
pub struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn error(&self, at: Option<(usize, usize)>, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.to_path_buf(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            message: message.into(),
        }
    }

    /// The first `key: value` in the text (1-based line and column of the
    /// value), for errors found after parsing.
    pub fn find(&self, key: &str, value: &str) -> Option<(usize, usize)> {
        self.find_all(key, value).into_iter().next()
    }

    /// The last `key: value` in the text: where a name defined twice is
    /// defined the second time (the first pointed at the wrong line).
    pub fn find_last(&self, key: &str, value: &str) -> Option<(usize, usize)> {
        self.find_all(key, value).pop()
    }

    /// Every `key: value` in the text, in order (see [`Self::find`]).
    fn find_all(&self, key: &str, value: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (i, line) in self.text.lines().enumerate() {
            let mut rest = line;
            let mut col = 0;
            // `- key: v`, `key: v` and `{ key: v, … }` forms.
            while let Some(p) = rest.find(key) {
                let after = &rest[p + key.len()..];
                let before_ok = p == 0
                    || !rest.as_bytes()[p - 1].is_ascii_alphanumeric()
                        && rest.as_bytes()[p - 1] != b'_';
                if before_ok {
                    if let Some(v) = after.strip_prefix(':') {
                        let trimmed = v.trim_start();
                        let unq = trimmed.trim_start_matches(['"', '\'']);
                        if value.is_empty()
                            || unq.starts_with(value)
                                && unq[value.len()..].chars().next().is_none_or(|c| {
                                    !c.is_ascii_alphanumeric() && c != '-' && c != '_'
                                })
                        {
                            let vcol = col + p + key.len() + 1 + (v.len() - trimmed.len()) + 1;
                            found.push((i + 1, vcol));
                        }
                    }
                }
                col += p + key.len();
                rest = after;
            }
        }
        found
    }

    /// The keys of `path`, each looked for after the one before it, in
    /// lines `from..to` (1-based, `to` excluded): where the last one is.
    /// For an error inside a list item, where [`Source::find`] would stop
    /// at the first `key:` in the file.
    pub fn find_key_path(&self, from: usize, to: usize, path: &[&str]) -> Option<KeyAt> {
        let lines: Vec<&str> = self.text.lines().collect();
        let (mut line, mut col) = (from.max(1) - 1, 0);
        let mut found = None;
        for key in path {
            let mut here = None;
            while line < to.saturating_sub(1).min(lines.len()) {
                if let Some((key_col, value_col)) = key_in(&lines[line][col..], key) {
                    here = Some(KeyAt {
                        line: line + 1,
                        key_col: col + key_col + 1,
                        value_col: value_col.map(|v| col + v + 1),
                    });
                    col += key_col + key.len() + 1;
                    break;
                }
                line += 1;
                col = 0;
            }
            found = Some(here?);
        }
        found
    }

    /// The line of a top-level `key:`.
    pub fn key_line(&self, key: &str) -> Option<(usize, usize)> {
        self.text
            .lines()
            .position(|l| l.starts_with(&format!("{key}:")))
            .map(|i| (i + 1, 1))
    }

    /// The line (1-based) after the top-level list `key`: the next
    /// top-level key's, or one past the last line.
    pub fn list_end(&self, key: &str) -> usize {
        let lines: Vec<&str> = self.text.lines().collect();
        let Some(start) = lines.iter().position(|l| l.starts_with(&format!("{key}:"))) else {
            return lines.len() + 1;
        };
        lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .find(|(_, l)| !l.is_empty() && !l.starts_with([' ', '-', '#']))
            .map_or(lines.len() + 1, |(i, _)| i + 1)
    }

    /// Lines (1-based) of the items of the top-level list `key`.
    pub fn list_items(&self, key: &str) -> Vec<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        match lines.iter().position(|l| l.starts_with(&format!("{key}:"))) {
            Some(start) => Self::items_after(&lines, start, 0),
            None => Vec::new(),
        }
    }

    /// Lines (1-based) of the items of the first list `key`, at the top
    /// level or nested (a cluster's `rules:` inline in a scenario).
    pub fn nested_list_items(&self, key: &str) -> Vec<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        let head = format!("{key}:");
        let Some(start) = lines.iter().position(|l| {
            let t = l.trim_start();
            t.starts_with(&head) && t[head.len()..].trim().is_empty()
        }) else {
            return Vec::new();
        };
        let indent = lines[start].len() - lines[start].trim_start().len();
        Self::items_after(&lines, start, indent)
    }

    /// The list items after the key on line `start` (0-based) indented
    /// `key_indent`: up to the next line at that indent or less that is
    /// not an item.
    fn items_after(lines: &[&str], start: usize, key_indent: usize) -> Vec<usize> {
        let mut indent = None;
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            let trimmed = l.trim_start();
            let ind = l.len() - trimmed.len();
            if !trimmed.is_empty()
                && !trimmed.starts_with('#')
                && (ind < key_indent || ind == key_indent && !trimmed.starts_with('-'))
            {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix('-') {
                if !rest.is_empty() && !rest.starts_with(' ') {
                    continue;
                }
                if *indent.get_or_insert(ind) == ind {
                    out.push(i + 1);
                }
            }
        }
        out
    }
}

/// Where [`Source::find_key_path`] found a key (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    pub line: usize,
    pub key_col: usize,
    /// The value's column, when it starts on the key's line.
    pub value_col: Option<usize>,
}

impl KeyAt {
    /// The value, or the key when the value starts on a later line.
    pub fn value(self) -> (usize, usize) {
        (self.line, self.value_col.unwrap_or(self.key_col))
    }

    pub fn key(self) -> (usize, usize) {
        (self.line, self.key_col)
    }
}

/// The first `key:` in `text` (as a whole word, maybe quoted): the 0-based
/// columns of the key and of its value, if the value is on this line.
fn key_in(text: &str, key: &str) -> Option<(usize, Option<usize>)> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut from = 0;
    while let Some(p) = text[from..].find(key).map(|p| p + from) {
        from = p + key.len();
        let quote = match p.checked_sub(1).map(|i| bytes[i]) {
            Some(q @ (b'"' | b'\'')) => Some(q),
            Some(b) if word(b) => continue,
            _ => None,
        };
        let mut after = &text[p + key.len()..];
        if let Some(q) = quote {
            match after.as_bytes().first() {
                Some(&b) if b == q => after = &after[1..],
                _ => continue,
            }
        }
        let Some(v) = after.strip_prefix(':') else {
            continue;
        };
        if !(v.is_empty() || v.starts_with([' ', '\t'])) {
            continue;
        }
        let key_col = p - usize::from(quote.is_some());
        let trimmed = v.trim_start();
        let value_col =
            (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| text.len() - trimmed.len());
        return Some((key_col, value_col));
    }
    None
}

/// A serde_yaml error as a located [`LoadError`].
pub fn yaml_error(src: &Source<'_>, e: serde_yaml::Error) -> LoadError {
    let at = e.location().map(|l| (l.line(), l.column()));
    // serde_yaml prefixes the path it was at ("timeline[2]: …"), which is
    // worth keeping, and appends the location, which we already lead with.
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    // serde quotes the value it refused, whole: a file that is not YAML
    // at all (`cluster_file: /etc/passwd`) came back in the message.
    const MESSAGE_CHARS_MAX: usize = 240;
    if let Some((cut, _)) = message.char_indices().nth(MESSAGE_CHARS_MAX) {
        message.truncate(cut);
        message.push('…');
    }
    src.error(at, message)
}

/// Largest scenario or cluster file read (the largest shipped is some
/// 20 KB): `cluster_file: /dev/zero` once read until memory ran out.
pub const FILE_BYTES_MAX: u64 = 8 * 1024 * 1024;

fn read(path: &Path) -> Result<String, LoadError> {
    use std::io::Read;
    let fail = |message: String| LoadError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message,
    };
    // A FIFO or device would block or never end: regular files only.
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(fail(format!("cannot read: {kind}; expected a YAML file")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(fail(format!(
            "more than {FILE_BYTES_MAX} bytes; a scenario or cluster file is far smaller"
        )));
    }
    // A byte-order mark (some Windows editors write one) is not YAML: it
    // made `end:` on the first line "missing" (found by the bad-input
    // adversary).
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        fail(format!(
            "not UTF-8 text (an invalid byte at offset {at}); expected a YAML file"
        ))
    })
}

/// A file's text, refused if empty (`expected` says what should be there).
pub fn read_nonempty(path: &Path, expected: &str) -> Result<String, LoadError> {
    let text = read(path)?;
    if text.trim().is_empty() {
        return Err(LoadError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("the file is empty; expected {expected}"),
        });
    }
    Ok(text)
}

/// Loads a cluster file.
pub fn load_cluster(path: &Path) -> Result<Cluster, LoadError> {
    let text = read_nonempty(path, "a cluster (hosts, host_groups, vms, …)")?;
    let src = Source {
        file: path,
        text: &text,
    };
    let file: ClusterFile = serde_yaml::from_str(&text).map_err(|e| yaml_error(&src, e))?;
    build_cluster(&src, file)
}

/// What the runner does at a point in the timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Fault(Fault),
    Api(ApiRequest),
    /// A guest writes a block of one of its disks.
    /// The guest of `vm` writes one of its disks (it must have it
    /// plugged in).
    GuestWrite {
        vm: krrish_core::VmId,
        disk: krrish_cloud::storage::DiskRef,
        block: u64,
        data: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TimedAction {
    pub at_ms: u64,
    pub action: Action,
    /// Line of the timeline item in the scenario file.
    pub line: usize,
}

/// A scenario, loaded whole and checked against its cluster.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub cluster: Cluster,
    pub config: SimConfig,
    pub timeline: Vec<TimedAction>,
    pub expectations: Vec<Expect>,
    pub end_ms: u64,
}

/// Name of a scenario from its path: relative to a `scenarios/` directory
/// when it is under one, without the extension.
fn default_name(path: &Path) -> String {
    let comps: Vec<_> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let rel = match comps.iter().rposition(|c| c == "scenarios") {
        Some(i) => comps[i + 1..].join("/"),
        None => path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    rel.trim_end_matches(".yaml")
        .trim_end_matches(".yml")
        .to_string()
}

/// Loads and validates a scenario file (and its cluster file).
pub fn load_scenario(path: &Path) -> Result<Scenario, LoadError> {
    let text = read_nonempty(path, "a scenario (cluster, timeline, expect, end)")?;
    parse_scenario(path, &text)
}

/// Validates a scenario given as text; `path` names it in errors and
/// anchors a relative `cluster_file` (a generated swarm case is checked by
/// the same rules as a file).
pub fn parse_scenario(path: &Path, text: &str) -> Result<Scenario, LoadError> {
    let src = Source { file: path, text };
    let file: ScenarioFile = serde_yaml::from_str(text).map_err(|e| yaml_error(&src, e))?;

    let cluster = match (&file.cluster_file, file.cluster) {
        (Some(_), Some(_)) => {
            return Err(src.error(
                src.key_line("cluster"),
                "give either `cluster_file` or an inline `cluster`, not both",
            ))
        }
        (None, None) => {
            return Err(src.error(
                None,
                "missing the cluster: add `cluster_file: <path>` or an inline `cluster:`",
            ))
        }
        (Some(rel), None) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(rel);
            if !p.exists() {
                return Err(src.error(
                    src.find("cluster_file", rel),
                    format!("cluster_file `{rel}` not found (looked at {})", p.display()),
                ));
            }
            load_cluster(&p)?
        }
        (None, Some(inline)) => build_cluster(&src, inline)?,
    };

    let config = settings(&src, &file.settings, &cluster)?;
    let end_ms = file.end.ms();
    if end_ms == 0 {
        return Err(src.error(src.key_line("end"), "`end` must be after 0s"));
    }
    let step_lines = src.list_items("timeline");
    let timeline_end = src.list_end("timeline");
    let mut known_vms: BTreeSet<VmId> = cluster.vms.iter().map(|v| v.id.clone()).collect();
    let mut timeline = Vec::new();
    for (i, step) in file.timeline.into_iter().enumerate() {
        let line = step_lines.get(i).copied().unwrap_or(0);
        let at = Some((line, 1));
        let item = crate::cloud_item::Item {
            index: i,
            line,
            end: step_lines.get(i + 1).copied().unwrap_or(timeline_end),
        };
        if step.at.ms() > end_ms {
            return Err(src.error(
                at,
                format!(
                    "timeline item at {}ms is after `end` ({end_ms}ms)",
                    step.at.ms()
                ),
            ));
        }
        let actions =
            crate::timeline::step_action(&src, item, step.at.ms(), step, &cluster, &mut known_vms)?;
        // The end of a fault with `for` past `end` never comes in this run.
        timeline.extend(actions.into_iter().filter(|a| a.at_ms <= end_ms));
    }
    // Stable: same-time items keep file order.
    timeline.sort_by_key(|a: &TimedAction| a.at_ms);

    let expect_lines = src.list_items("expect");
    let mut expectations = Vec::new();
    for (i, e) in file.expect.into_iter().enumerate() {
        let line = expect_lines.get(i).copied().unwrap_or(0);
        let at = Some((line, 1));
        if let Some(t) = e.at {
            if t.ms() > end_ms {
                return Err(src.error(
                    at,
                    format!("expectation at {}ms is after `end` ({end_ms}ms)", t.ms()),
                ));
            }
        }
        expectations.push(Expect {
            at_ms: e.at.map(|d| d.ms()),
            check: check(&src, at, e, &cluster, &known_vms)?,
            line,
        });
    }

    Ok(Scenario {
        name: file.name.unwrap_or_else(|| default_name(path)),
        path: path.to_path_buf(),
        description: file.description,
        seed: file.seed,
        cluster,
        config,
        timeline,
        expectations,
        end_ms,
    })
}

fn settings(
    src: &Source<'_>,
    s: &crate::format::Settings,
    cluster: &Cluster,
) -> Result<SimConfig, LoadError> {
    let mut c = SimConfig::default();
    let bad = |key: &str, why: &str| {
        src.error(
            src.find(key, "").or(src.key_line("settings")),
            format!("settings.{key}: {why}"),
        )
    };
    if let Some(t) = s.tick {
        if t.ms() == 0 || t.ms() > 5_000 {
            return Err(bad("tick", "expected between 1ms and 5s"));
        }
        c.tick_ms = t.ms();
    }
    if let Some(d) = s.heartbeat_interval {
        if d.ms() < 100 {
            return Err(bad("heartbeat_interval", "expected at least 100ms"));
        }
        c.ha.heartbeat.interval_ms = d.ms();
    }
    if let Some(n) = s.heartbeat_misses {
        if n == 0 || n > 100 {
            return Err(bad("heartbeat_misses", "expected 1 to 100"));
        }
        c.ha.heartbeat.misses_max = n;
    }
    if let Some(d) = s.heartbeat_grace {
        c.ha.heartbeat.grace_ms = d.ms();
    }
    if let Some(d) = s.fence_timeout {
        c.ha.fence_timeout_ms = d.ms().max(1);
    }
    if let Some(d) = s.lease_duration {
        if d.ms() < 3_000 {
            return Err(bad("lease_duration", "expected at least 3s"));
        }
        c.ha.lease_duration_ms = d.ms();
    }
    if let Some(d) = s.lease_margin {
        c.ha.lease_margin_ms = d.ms();
    }
    if let Some(d) = s.boot_time {
        c.timings.boot_ms = d.ms();
    }
    if let Some(d) = s.boot_timeout {
        c.ha.boot_timeout_ms = d.ms().max(1);
    }
    if let Some(d) = s.ipmi_answer {
        c.timings.ipmi_answer_ms = d.ms();
    }
    if let Some(d) = s.ipmi_timeout {
        c.timings.ipmi_timeout_ms = d.ms();
    }
    if let Some(d) = s.latency_max {
        c.latency_max_ms = d.ms().max(c.latency_min_ms);
    }
    if let Some(r) = s.migrate_mib_per_s {
        if r == 0 {
            return Err(bad("migrate_mib_per_s", "expected more than 0"));
        }
        c.timings.migrate_mib_per_s = r;
    }
    if let Some(d) = s.migration_timeout {
        c.ha.migration_timeout_ms = d.ms().max(1);
    }
    if let Some(d) = s.vm_network_grace {
        c.ha.vm_network_grace_ms = d.ms();
    }
    if let Some(d) = s.belief_grace {
        c.belief_grace_ms = d.ms();
    }
    if c.timings.boot_ms >= c.ha.boot_timeout_ms {
        return Err(bad(
            "boot_time",
            "must be shorter than boot_timeout (120s unless set)",
        ));
    }
    cluster.apply_to(&mut c.ha);
    // The scenario's own settings win over the cluster file's.
    if let Some(r) = s.isolation_response {
        c.ha.isolation_response = r;
    }
    if let Some(d) = s.isolation_response_delay {
        c.ha.isolation_response_delay_ms = d.ms();
    }
    if let Some(a) = s.fence_action {
        c.ha.fence_action = a;
    }
    if let Some(cold) = s.cold_failback {
        c.ha.cold_failback = cold;
    }
    Ok(c)
}

pub(crate) fn host_ref(
    src: &Source<'_>,
    key: &str,
    name: &str,
    cluster: &Cluster,
) -> Result<HostId, LoadError> {
    let id = HostId::new(name);
    if cluster.hosts.iter().any(|h| h.id == id) {
        Ok(id)
    } else {
        Err(src.error(
            src.find(key, name),
            format!(
                "{key}: no host named `{name}` in cluster `{}`",
                cluster.name
            ),
        ))
    }
}

pub(crate) fn vm_ref(
    src: &Source<'_>,
    key: &str,
    name: &str,
    known: &BTreeSet<VmId>,
) -> Result<VmId, LoadError> {
    let id = VmId::new(name);
    if known.contains(&id) {
        Ok(id)
    } else {
        Err(src.error(src.find(key, name), format!("{key}: no VM named `{name}`")))
    }
}
