//! The trace: one line per event, `[seconds] source text`, in the order the
//! simulation produced them. Deterministic for a seed.

use krrish_core::ha::{secs, Notice};
use krrish_wire::TraceSink;
use std::cell::RefCell;
use std::rc::Rc;

/// Lines kept at most; a run that produces more is cut short with a
/// violation rather than eating memory.
pub const TRACE_LINES_MAX: usize = 2_000_000;

#[derive(Clone, Default)]
pub struct TraceBuf(Rc<RefCell<Vec<String>>>, Rc<RefCell<Vec<(u64, Notice)>>>);

impl TraceBuf {
    pub fn push(&self, at_ms: u64, source: &str, text: &str) {
        let mut lines = self.0.borrow_mut();
        if lines.len() < TRACE_LINES_MAX {
            lines.push(format!("[{:>10}] {source:<16} {text}", secs(at_ms)));
        }
    }
    /// A typed control-plane event: kept, and written as its line.
    pub fn push_event(&self, at_ms: u64, source: &str, notice: &Notice) {
        self.push(at_ms, source, &notice.to_string());
        let mut ev = self.1.borrow_mut();
        if ev.len() < TRACE_LINES_MAX {
            ev.push((at_ms, notice.clone()));
        }
    }

    /// The typed events so far, with their times.
    pub fn events(&self) -> std::cell::Ref<'_, Vec<(u64, Notice)>> {
        self.1.borrow()
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_full(&self) -> bool {
        self.len() >= TRACE_LINES_MAX
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    /// Takes the lines written so far, leaving the buffer empty: a
    /// long-running process (the daemons' simulated driver) prints them as
    /// they come instead of keeping them all.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    pub fn text(&self) -> String {
        let mut s = self.0.borrow().join("\n");
        s.push('\n');
        s
    }
}

impl TraceSink for TraceBuf {
    fn line(&self, at_ms: u64, source: &str, text: &str) {
        self.push(at_ms, source, text);
    }
    fn event(&self, at_ms: u64, source: &str, notice: &Notice) {
        self.push_event(at_ms, source, notice);
    }
}
