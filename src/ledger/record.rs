//! The records of the evidence ledger and their canonical bytes.
//!
//! A record's canonical form is compact JSON with object keys sorted, all times as RFC 3339 UTC
//! strings with milliseconds and all durations as integer milliseconds, so the same record always
//! has the same bytes and the same SHA-256. The stored object *is* those bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::measure::{Check, RecoveryPoint, TargetResult, Targets, Timeline, Verdict};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One link of the chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// SHA-256 (hex) of the previous record's bytes; [`GENESIS`] for the first.
    pub prev: String,
    pub appended_at: Timestamp,
    pub entry: Entry,
}

impl Record {
    /// The canonical bytes of this record.
    pub fn canonical(&self) -> Vec<u8> {
        canonical_json(self)
    }
}

/// Compact JSON with sorted keys. serde_json's map is ordered by key unless its
/// `preserve_order` feature is on; a test below fails if a dependency ever turns it on.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&value).unwrap_or_default()
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a record says: `{"intent": {...}}`, `{"outcome": {...}}`, `{"scenario": {...}}` or
/// `{"notification": {...}}`.
/// (Externally tagged: a `"type"` field inside would make every reader buffer the whole entry
/// before parsing it.)
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Entry {
    /// Written before a drill changes anything.
    Intent(Box<Intent>),
    /// Written when a run has ended, cleanup included.
    Outcome(Box<Outcome>),
    /// Written when a scenario has ended.
    Scenario(Box<ScenarioOutcome>),
    /// Written after a run's outcome, once per channel told about it (or not: `delivered`).
    Notification(Box<Notification>),
}

impl Entry {
    pub fn run_id(&self) -> &str {
        match self {
            Entry::Intent(i) => &i.run_id,
            Entry::Outcome(o) => &o.run_id,
            Entry::Scenario(s) => &s.run_id,
            Entry::Notification(n) => &n.run_id,
        }
    }
}

/// Which drill a record is about.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DrillRef {
    pub name: String,
    /// The registered drill type (`etcd-restore`).
    pub kind: String,
    /// SHA-256 of the drill file as it was when the run started.
    pub spec_sha256: String,
}

/// The scenario a drill ran in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioRef {
    pub name: String,
    pub run_id: String,
}

/// Who or what started a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `cli` (a person or job ran `firedrill run`); the scheduler will add `schedule`.
    pub by: String,
    /// The person or team named by `--operator` or the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// The process that runs a drill, so that a later start can tell a live run from a dead one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// Linux boot id: a pid from an earlier boot is not this boot's process.
    pub boot_id: String,
    /// Process start time in clock ticks since boot: a reused pid has another.
    pub start_ticks: u64,
}

/// The promise a run makes before it changes anything.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    pub run_id: String,
    pub drill: DrillRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioRef>,
    pub trigger: Trigger,
    pub tool_version: String,
    pub owner: Owner,
    pub started: Timestamp,
    /// After this instant the run cannot still be going (every phase at its limit).
    pub deadline: Timestamp,
    pub targets: Targets,
    /// What the run will change, in words.
    pub changes: Vec<String>,
    /// What the run will create, in the drill's own terms: enough for its cleanup to find and
    /// remove it after a crash.
    pub claim: serde_json::Value,
}

/// What cleanup did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    /// `false` when cleanup did not finish; `error` says why.
    pub done: bool,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything a run established.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub run_id: String,
    pub drill: DrillRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioRef>,
    pub trigger: Trigger,
    pub tool_version: String,
    /// What was drilled: an endpoint, a snapshot, a cluster identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub verdict: Verdict,
    /// The headline: why the verdict is what it is.
    pub reason: String,
    pub timeline: Timeline,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rto_ms: Option<std::time::Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rpo_ms: Option<std::time::Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<RecoveryPoint>,
    pub targets: Vec<TargetResult>,
    pub checks: Vec<Check>,
    /// Drill-specific figures (snapshot size, revision, ...).
    pub details: BTreeMap<String, serde_json::Value>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub cleanup: CleanupReport,
    /// The last lines the run logged.
    pub log: Vec<String>,
}

/// One step of a scenario as it ran.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub drill: String,
    pub required: bool,
    /// `None` when the step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rto_ms: Option<std::time::Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rpo_ms: Option<std::time::Duration>,
}

/// A scenario's result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioOutcome {
    pub run_id: String,
    pub name: String,
    pub spec_sha256: String,
    pub trigger: Trigger,
    pub tool_version: String,
    pub labels: BTreeMap<String, String>,
    pub started: Timestamp,
    pub ended: Timestamp,
    pub verdict: Verdict,
    pub reason: String,
    pub steps: Vec<StepResult>,
}

/// Where a notification went: a Slack-compatible incoming webhook or the generic JSON webhook.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Channel {
    Slack,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Webhook => "webhook",
        }
    }
}

/// Why a run was worth telling someone about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// The run's verdict is `Failed`, `Error` or `Aborted`.
    Failure,
    /// The run passed and the drill's previous run had not.
    Recovery,
    /// Any other run, sent only when every run is to be announced.
    Run,
}

impl NotificationEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Failure => "failure",
            NotificationEvent::Recovery => "recovery",
            NotificationEvent::Run => "run",
        }
    }
}

/// Who was told about a run, and whether it reached them. Never holds the webhook's URL (a
/// secret: it is the credential).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The run the notification is about.
    pub run_id: String,
    pub drill: String,
    pub channel: Channel,
    pub event: NotificationEvent,
    pub delivered: bool,
    /// Requests made, retries included.
    pub attempts: u32,
    /// The last HTTP status answered, if any answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it was not delivered: the kind of failure only (`timeout`, `HTTP 500`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the first attempt started.
    pub sent: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_has_no_whitespace() {
        let v = serde_json::json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": "s"}});
        assert_eq!(String::from_utf8(canonical_json(&v)).unwrap(), r#"{"a":{"c":"s","z":[1,{"x":3,"y":2}]},"b":1}"#);
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(GENESIS.len(), 64);
    }
}
