//! What a person watching a run sees: a live line on a terminal, plain lines otherwise.
//! Progress is for people and goes to stderr; logs go through `tracing`, results to stdout.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::measure::{Phase, Verdict, human};

/// Receives the events of runs as they happen. Every method has a silent default.
pub trait Progress: Send + Sync {
    fn run_started(&self, _drill: &str, _run_id: &str) {}
    fn phase(&self, _phase: Phase) {}
    /// What the drill waits for now.
    fn status(&self, _what: &str) {}
    fn mark(&self, _name: &str) {}
    fn run_finished(&self, _drill: &str, _verdict: Verdict, _reason: &str) {}
}

/// Shows nothing (tests, `--output json`).
pub struct Quiet;
impl Progress for Quiet {}

/// The state both displays keep: which drill and phase, since when.
struct Current {
    drill: String,
    phase: Option<Phase>,
    started: Instant,
}

impl Current {
    fn elapsed(&self) -> String {
        human(Duration::from_millis(self.started.elapsed().as_millis() as u64))
    }
}

/// One plain line per event on stderr, for logs and CI.
pub struct Lines {
    current: Mutex<Current>,
}

impl Lines {
    pub fn new() -> Self {
        Self { current: Mutex::new(Current { drill: String::new(), phase: None, started: Instant::now() }) }
    }

    fn line(&self, text: &str) {
        let c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let phase = c.phase.map(|p| p.name()).unwrap_or("-");
        let _ = writeln!(std::io::stderr(), "[{} {phase} +{}] {text}", c.drill, c.elapsed());
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Lines {
    fn run_started(&self, drill: &str, run_id: &str) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Current { drill: drill.to_string(), phase: None, started: Instant::now() };
        self.line(&format!("run {run_id} started"));
    }
    fn phase(&self, phase: Phase) {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).phase = Some(phase);
        self.line(&format!("{phase}"));
    }
    fn status(&self, what: &str) {
        self.line(&format!("waiting for {what}"));
    }
    fn mark(&self, name: &str) {
        self.line(&format!("✓ {name}"));
    }
    fn run_finished(&self, _drill: &str, verdict: Verdict, reason: &str) {
        self.line(&format!("{verdict}: {reason}"));
    }
}

/// A live spinner line on a terminal: drill, phase, elapsed time and what it waits for, with
/// each milestone printed above it as it happens.
pub struct Terminal {
    bar: ProgressBar,
    current: Mutex<Current>,
}

impl Terminal {
    pub fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self { bar, current: Mutex::new(Current { drill: String::new(), phase: None, started: Instant::now() }) }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Terminal {
    fn run_started(&self, drill: &str, run_id: &str) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Current { drill: drill.to_string(), phase: None, started: Instant::now() };
        self.bar.reset_elapsed();
        self.bar.enable_steady_tick(Duration::from_millis(100));
        self.bar.set_prefix(drill.to_string());
        self.bar.println(format!("▶ {drill} (run {run_id})"));
    }
    fn phase(&self, phase: Phase) {
        let mut c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        c.phase = Some(phase);
        self.bar.set_prefix(format!("{} {phase}", c.drill));
        self.bar.set_message("");
    }
    fn status(&self, what: &str) {
        self.bar.set_message(format!("waiting for {what}"));
    }
    fn mark(&self, name: &str) {
        let c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.bar.println(format!("  ✓ {name} (+{})", c.elapsed()));
    }
    fn run_finished(&self, drill: &str, verdict: Verdict, reason: &str) {
        self.bar.finish_and_clear();
        self.bar.println(format!("■ {drill}: {verdict}: {reason}"));
    }
}
