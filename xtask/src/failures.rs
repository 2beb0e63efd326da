//! What failed, in short: a step's output passes through unchanged, and
//! the lines that say what failed (a test's name and panic, a scenario's
//! FAIL or NOT RUN line) are kept to be printed again at the suite's end —
//! a CI log is often read from its tail, where the steps' table is.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Lines kept over the whole suite; what is beyond is counted, not kept.
const KEPT_LINES: usize = 150;
/// Lines kept of one failed test's output block (its panic message).
const LINES_PER_TEST_BLOCK: usize = 30;

static KEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());
static DROPPED: Mutex<usize> = Mutex::new(0);

fn keep(step: &str, line: &str) {
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    if kept.len() < KEPT_LINES {
        kept.push(format!("[{step}] {line}"));
    } else {
        *DROPPED.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
}

/// Picks the failure lines out of a `cargo test` or `krrish scenario run`
/// output, one line at a time.
#[derive(Default)]
struct Picker {
    /// Lines still to keep of the current `---- test stdout ----` block.
    in_block: usize,
}

impl Picker {
    fn wants(&mut self, line: &str) -> bool {
        if line.starts_with("---- ") && line.ends_with(" ----") {
            self.in_block = LINES_PER_TEST_BLOCK;
            return true;
        }
        if self.in_block > 0 {
            // The block's end: the next section, or a backtrace (proptest's
            // `cc` seed line and minimal input come before it).
            if line.starts_with("failures:") || line.starts_with("stack backtrace:") {
                self.in_block = 0;
                return false;
            }
            if line.trim().is_empty() {
                return false;
            }
            self.in_block -= 1;
            return true;
        }
        let t = line.trim_start();
        (t.starts_with("test ") && t.ends_with(" FAILED"))
            || t.starts_with("test result: FAILED")
            || t.starts_with("FAIL ")
            || t.starts_with("NOT RUN ")
            || t.starts_with("error: ")
    }
}

/// Runs `cmd` as the suite's step `step`: its output goes through to ours
/// as it comes (stdout and stderr each read by line), its failure lines
/// are kept for [`print_kept`]. True when it exits 0.
pub fn run_keeping(step: &str, cmd: &mut Command) -> Result<bool> {
    eprintln!("xtask: $ {}", crate::show(cmd));
    run_into(step, cmd, None)
}

/// [`run_keeping`], the output going to the file `log` rather than ours
/// (a step that runs alongside another, whose output it would garble).
pub fn run_keeping_logged(step: &str, cmd: &mut Command, log: &Path) -> Result<bool> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    run_into(step, cmd, Some(Arc::new(Mutex::new(file))))
}

/// Writes a line to the log, or to our stdout / stderr.
fn pass_on(log: &Option<Arc<Mutex<std::fs::File>>>, line: &str, to_stderr: bool) {
    let _ = match log {
        Some(f) => writeln!(f.lock().unwrap_or_else(|p| p.into_inner()), "{line}"),
        None if to_stderr => writeln!(std::io::stderr(), "{line}"),
        None => writeln!(std::io::stdout(), "{line}"),
    };
}

fn run_into(step: &str, cmd: &mut Command, log: Option<Arc<Mutex<std::fs::File>>>) -> Result<bool> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", crate::show(cmd)))?;
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let step_err = step.to_string();
    let log_err = log.clone();
    let errs = std::thread::spawn(move || {
        let mut picker = Picker::default();
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            pass_on(&log_err, &line, true);
            if picker.wants(&line) {
                keep(&step_err, &line);
            }
        }
    });
    let mut picker = Picker::default();
    for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
        pass_on(&log, &line, false);
        if picker.wants(&line) {
            keep(step, &line);
        }
    }
    let _ = errs.join();
    let status = child
        .wait()
        .with_context(|| format!("waiting for {}", crate::show(cmd)))?;
    Ok(status.success())
}

/// Prints what [`run_keeping`] kept, under a heading; nothing when
/// nothing failed.
pub fn print_kept() {
    let kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    if kept.is_empty() {
        return;
    }
    eprintln!("xtask: what failed, in short (the full output is above):");
    for line in kept.iter() {
        eprintln!("xtask:   {line}");
    }
    let dropped = *DROPPED.lock().unwrap_or_else(|p| p.into_inner());
    if dropped > 0 {
        eprintln!("xtask:   … and {dropped} more lines (above)");
    }
}

#[cfg(test)]
mod tests {
    use super::Picker;

    #[test]
    fn a_failed_tests_name_and_panic_are_picked_and_passing_lines_are_not() {
        let output = "\
running 2 tests
test a_passing_one ... ok
test the_failing_one ... FAILED

failures:

---- the_failing_one stdout ----
cc 8756b88ca8fce81997c41e476029c54d5ec186925ac3f8abb1dc7d4b12e69170

thread 'the_failing_one' panicked at crates/x/tests/y.rs:10:5:
assertion failed: the answer
minimal failing input: ops = [
    Crash(0),
]
stack backtrace:
   0: __rustc::rust_begin_unwind

failures:
    the_failing_one

test result: FAILED. 1 passed; 1 failed; 0 ignored
PASS  lab/crash-fails-over seed=1
FAIL  lab/mgmt-cut seed=1 host-fenced hv-01 at 12.0s
error: test failed, to rerun pass `-p krrish --test daemons`";
        let mut p = Picker::default();
        let picked: Vec<&str> = output.lines().filter(|l| p.wants(l)).collect();
        assert_eq!(
            picked,
            [
                "test the_failing_one ... FAILED",
                "---- the_failing_one stdout ----",
                "cc 8756b88ca8fce81997c41e476029c54d5ec186925ac3f8abb1dc7d4b12e69170",
                "thread 'the_failing_one' panicked at crates/x/tests/y.rs:10:5:",
                "assertion failed: the answer",
                "minimal failing input: ops = [",
                "    Crash(0),",
                "]",
                "test result: FAILED. 1 passed; 1 failed; 0 ignored",
                "FAIL  lab/mgmt-cut seed=1 host-fenced hv-01 at 12.0s",
                "error: test failed, to rerun pass `-p krrish --test daemons`",
            ]
        );
    }
}
