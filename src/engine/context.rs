//! [`RunContext`]: what a drill may use and report while it runs.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock::{Clock, Timestamp};
use crate::measure::{Mark, RecoveryPoint};
use crate::progress::Progress;

/// How many log lines a record keeps.
const LOG_EXCERPT_LINES: usize = 40;

/// The run's clock, identity and reporting channels. Drills report through it; the runner
/// turns what they report into the record.
pub struct RunContext {
    pub run_id: String,
    pub clock: Clock,
    /// firedrill's data directory (scratch space lives under it).
    pub data_dir: PathBuf,
    progress: Arc<dyn Progress>,
    state: Mutex<Reported>,
}

/// Everything drills reported during a run.
#[derive(Debug, Default, Clone)]
pub struct Reported {
    pub marks: Vec<Mark>,
    pub recovery_point: Option<RecoveryPoint>,
    pub details: BTreeMap<String, serde_json::Value>,
    pub target: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    pub log: VecDeque<String>,
}

impl RunContext {
    pub fn new(run_id: String, clock: Clock, data_dir: PathBuf, progress: Arc<dyn Progress>) -> Self {
        Self { run_id, clock, data_dir, progress, state: Mutex::new(Reported::default()) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Reported) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Records a milestone (`snapshot-fetched`, `serving`) at this instant.
    pub fn mark(&self, name: &str) -> Timestamp {
        let at = self.clock.now();
        self.with(|s| s.marks.push(Mark { name: name.to_string(), at }));
        self.progress.mark(name);
        self.log(name.to_string());
        at
    }

    /// Records the recovery point the drill found (the last one reported wins).
    pub fn recovery_point(&self, point: RecoveryPoint) {
        self.log(format!("recovery point {} ({}, from {})", point.at, point.method.describe(), point.source));
        self.with(|s| s.recovery_point = Some(point));
    }

    /// Records a drill-specific figure. Never pass a secret.
    pub fn detail(&self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.with(|s| s.details.insert(key.to_string(), value));
    }

    /// Names what is being drilled (an endpoint, a snapshot, a cluster).
    pub fn target(&self, key: &str, value: impl Into<String>) {
        let value = value.into();
        self.with(|s| s.target.insert(key.to_string(), value));
    }

    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(run_id = %self.run_id, "{message}");
        self.with(|s| s.warnings.push(message.clone()));
        self.push_log(format!("warning: {message}"));
    }

    /// A line for the record's log excerpt and the tracing log.
    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(run_id = %self.run_id, "{line}");
        self.push_log(line);
    }

    /// Tells the person watching what the drill waits for.
    pub fn waiting_for(&self, what: &str) {
        self.progress.status(what);
        self.log(format!("waiting for {what}"));
    }

    fn push_log(&self, line: String) {
        let stamped = format!("{} {line}", self.clock.now());
        self.with(|s| {
            if s.log.len() == LOG_EXCERPT_LINES {
                s.log.pop_front();
            }
            s.log.push_back(stamped);
        });
    }

    /// A copy of everything reported so far.
    pub fn reported(&self) -> Reported {
        self.with(|s| s.clone())
    }
}
