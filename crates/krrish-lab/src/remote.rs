//! Commands on an inventory host, through its `run` prefix (`ssh …` for a
//! physical host, `ip netns exec …` for a namespace), each bounded in time.
//!
//! Anything more than one plain command goes as a shell script on the
//! remote `sh`'s stdin (`RUN… sh -s`): a prefix that joins its arguments
//! into one remote command line (ssh) and one that executes them as they
//! are (`ip netns exec`, `env`) then see the same two words, and the
//! script is parsed by exactly one shell, with every value in it quoted
//! by [`quote`].

// Real hosts on real time: the bounds are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `c` for at most `timeout`, `stdin` written to it; its stdout if it
/// exits 0, else why not (its last line of stderr).
pub fn bounded(mut c: Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<String, String> {
    let what = format!("{c:?}").replace('"', "");
    let mut child = c
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{what}`: {e}"))?;
    // Read while it runs: a child filling its pipe would never exit.
    let drain = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(bytes);
    }
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{what}` did not finish in {} s",
                    timeout.as_secs()
                ));
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if status.success() {
        Ok(String::from_utf8_lossy(&out).into_owned())
    } else {
        let err = String::from_utf8_lossy(&err);
        let last = err.lines().last().unwrap_or("").trim();
        Err(format!("`{what}` failed ({status}): {last}"))
    }
}

/// `s` as one shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A host as its `run` prefix reaches it.
#[derive(Clone, Debug)]
pub struct Remote<'a> {
    pub host: &'a str,
    pub run: &'a [String],
}

impl Remote<'_> {
    /// `args` there as they are (plain words: a prefix such as ssh joins
    /// them with spaces).
    pub fn command(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut c = Command::new(&self.run[0]);
        c.args(&self.run[1..]).args(args);
        bounded(c, None, timeout).map_err(|e| format!("{}: {e}", self.host))
    }

    /// `script` run there by `sh`.
    pub fn script(&self, script: &str, timeout: Duration) -> Result<String, String> {
        let mut c = Command::new(&self.run[0]);
        c.args(&self.run[1..]).args(["sh", "-s"]);
        bounded(c, Some(script.as_bytes()), timeout).map_err(|e| format!("{}: {e}", self.host))
    }

    /// Writes `bytes` to `path` there (its directory made as needed).
    pub fn put_file(&self, path: &Path, bytes: &[u8], timeout: Duration) -> Result<(), String> {
        let p = quote(&path.to_string_lossy());
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("{}: {}: only text is sent", self.host, path.display()))?;
        // A here-document whose end marker the text cannot hold.
        let mut end = String::from("KRRISH_EOF");
        while text.lines().any(|l| l == end) {
            end.push('_');
        }
        let script = format!(
            "set -e\nmkdir -p \"$(dirname {p})\"\ncat > {p}.part <<'{end}'\n{text}{nl}{end}\nmv {p}.part {p}\n",
            nl = if text.ends_with('\n') || text.is_empty() { "" } else { "\n" },
        );
        self.script(&script, timeout).map(drop)
    }

    /// Starts `argv` there in the background, detached from this call
    /// (its own session, output appended to `log`), and returns at once.
    pub fn start_detached(
        &self,
        argv: &[String],
        log: &Path,
        timeout: Duration,
    ) -> Result<(), String> {
        let cmd: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        let log = quote(&log.to_string_lossy());
        let script = format!(
            "set -e\nmkdir -p \"$(dirname {log})\"\nsetsid {} >> {log} 2>&1 < /dev/null &\n",
            cmd.join(" ")
        );
        self.script(&script, timeout).map(drop)
    }

    /// Whether the process `pid_file` there names is alive (not a zombie).
    pub fn pid_alive(&self, pid_file: &Path, timeout: Duration) -> bool {
        let f = quote(&pid_file.to_string_lossy());
        let script = format!(
            "pid=$(cat {f} 2>/dev/null) || exit 1\n\
             case \"$pid\" in ''|*[!0-9]*) exit 1;; esac\n\
             state=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -c1) || exit 1\n\
             [ -n \"$state\" ] && [ \"$state\" != Z ]\n"
        );
        self.script(&script, timeout).is_ok()
    }

    /// Kills the process `pid_file` there names (gone already is as good)
    /// and removes the file.
    pub fn kill_pid_file(&self, pid_file: &Path, timeout: Duration) -> Result<(), String> {
        let f = quote(&pid_file.to_string_lossy());
        let script = format!(
            "pid=$(cat {f} 2>/dev/null) || exit 0\n\
             case \"$pid\" in ''|*[!0-9]*) ;; *) kill -KILL \"$pid\" 2>/dev/null || true;; esac\n\
             rm -f {f}\n"
        );
        self.script(&script, timeout).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    /// A fresh directory of this test's own, removed when dropped.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let d =
                std::env::temp_dir().join(format!("krrish-remote-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A host reached with `env`: commands run here, as they are (the
    /// shape of `ip netns exec NS`).
    fn here() -> Vec<String> {
        vec!["env".into()]
    }

    /// A host reached through a prefix that joins its arguments into one
    /// command line for a shell, as ssh does.
    fn joined() -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            "eval \"$*\"".into(),
            "ssh-like".into(),
        ]
    }

    #[test]
    fn a_file_with_quotes_and_markers_arrives_whole_through_either_kind_of_prefix() {
        let dir = Scratch::new("file");
        let text = "a: 'quoted' \"twice\" $HOME `x`\nKRRISH_EOF\nlast line no newline";
        for run in [here(), joined()] {
            let r = Remote {
                host: "hv-01",
                run: &run,
            };
            let path = dir.path().join("sub dir").join("it's.yaml");
            r.put_file(&path, text.as_bytes(), T).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{text}\n"));
            assert_eq!(
                r.command(&["cat", "/proc/self/comm"], T).unwrap().trim(),
                "cat"
            );
        }
    }

    #[test]
    fn a_detached_process_outlives_the_call_is_seen_alive_and_is_killed() {
        let dir = Scratch::new("detached");
        let run = joined();
        let r = Remote {
            host: "hv-01",
            run: &run,
        };
        let pid = dir.path().join("agent.pid");
        let log = dir.path().join("agent.log");
        let argv: Vec<String> = ["sh", "-c", "echo $$ > \"$0\"; echo started; exec sleep 60"]
            .iter()
            .map(|s| s.to_string())
            .chain([pid.to_string_lossy().into_owned()])
            .collect();
        let start = Instant::now();
        r.start_detached(&argv, &log, T).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the call waited for it"
        );
        while !pid.exists() && start.elapsed() < T {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(r.pid_alive(&pid, T));
        r.kill_pid_file(&pid, T).unwrap();
        assert!(!pid.exists());
        assert!(!r.pid_alive(&pid, T));
        assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "started");
    }

    #[test]
    fn a_command_that_fails_or_hangs_says_so_with_the_host() {
        let run = here();
        let r = Remote {
            host: "hv-09",
            run: &run,
        };
        let e = r
            .command(&["sh", "-c", "echo nope >&2; exit 3"], T)
            .unwrap_err();
        assert!(e.starts_with("hv-09: ") && e.contains("nope"), "{e}");
        let e = r
            .command(&["sleep", "5"], Duration::from_millis(200))
            .unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }
}
