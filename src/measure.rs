//! Measurement: the timeline of a run, RTO and RPO, target comparison and the verdict.
//!
//! Everything here is a plain function over plain data: no clock, no I/O, no cluster. The runner
//! collects the timestamps; this module turns them into figures and a verdict.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// How a run ended, as a person and a CI system should read it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Recovery was verified and every target was met.
    Passed,
    /// The drill ran and told the truth: verification failed or a target was missed.
    Failed,
    /// The drill could not run (bad input, missing tool, unreachable target).
    Error,
    /// A guard tripped or a person stopped the run.
    Aborted,
}

impl Verdict {
    /// The process exit code for a single run or a scenario with this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
            Verdict::Error => 2,
            Verdict::Aborted => 3,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The phases of the drill contract, in the order the runner drives them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Preflight,
    Setup,
    Act,
    Wait,
    Verify,
    Cleanup,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::Preflight, Phase::Setup, Phase::Act, Phase::Wait, Phase::Verify, Phase::Cleanup];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Setup => "setup",
            Phase::Act => "act",
            Phase::Wait => "wait",
            Phase::Verify => "verify",
            Phase::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One phase as it ran.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSpan {
    pub phase: Phase,
    pub started: Timestamp,
    pub ended: Timestamp,
    /// `true` when the phase returned without error.
    pub ok: bool,
}

/// A named milestone inside a phase (`snapshot-fetched`, `serving`, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub name: String,
    pub at: Timestamp,
}

/// Every boundary of a run, in the order it happened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub started: Timestamp,
    /// The instant the disaster was declared: the start of the recovery clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t0: Option<Timestamp>,
    /// The instant verification succeeded: the end of the recovery clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Timestamp>,
    pub phases: Vec<PhaseSpan>,
    pub marks: Vec<Mark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
}

impl Timeline {
    pub fn new(started: Timestamp) -> Self {
        Self { started, t0: None, verified: None, phases: Vec::new(), marks: Vec::new(), ended: None }
    }
}

/// How the recovery point of a run was found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RpoMethod {
    /// A canary timestamp read back from the restored data: the most direct evidence.
    Canary,
    /// The save time that firedrill recorded when it took or uploaded the snapshot.
    SnapshotMetadata,
    /// The start time recorded in backup metadata (e.g. a Velero Backup's `startTimestamp`).
    BackupMetadata,
    /// The object store's last-modified time of the snapshot file: later than the real save, so
    /// the RPO it gives is a lower bound.
    ObjectModified,
}

impl RpoMethod {
    /// The name records use (`canary`, `snapshotMetadata`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RpoMethod::Canary => "canary",
            RpoMethod::SnapshotMetadata => "snapshotMetadata",
            RpoMethod::BackupMetadata => "backupMetadata",
            RpoMethod::ObjectModified => "objectModified",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            RpoMethod::Canary => "canary read from the restored data",
            RpoMethod::SnapshotMetadata => "snapshot save time recorded by firedrill",
            RpoMethod::BackupMetadata => "backup start time from backup metadata",
            RpoMethod::ObjectModified => "object last-modified time (a lower bound)",
        }
    }
}

/// The newest point in time whose data the recovery brought back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecoveryPoint {
    pub at: Timestamp,
    pub method: RpoMethod,
    /// Where it was read from: a key, an object, a backup name.
    pub source: String,
}

/// The recovery targets a run is held to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub rto_ms: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub rpo_ms: Option<Duration>,
}

/// RTO = t(verified) − t0.
pub fn rto(timeline: &Timeline) -> Option<Duration> {
    timeline.verified?.since(timeline.t0?)
}

/// The RPO a recovery point gives, and by how much it lies after t0 when clocks disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rpo {
    pub rpo: Duration,
    /// Set when the recovery point is later than t0 (a canary writer's clock ahead of ours): the
    /// RPO is then reported as zero.
    pub skew: Option<Duration>,
}

/// RPO = t0 − t(recovery point).
pub fn rpo(t0: Timestamp, point: &RecoveryPoint) -> Rpo {
    match t0.since(point.at) {
        Some(rpo) => Rpo { rpo, skew: None },
        None => Rpo { rpo: Duration::ZERO, skew: point.at.since(t0) },
    }
}

/// One figure held against its target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    /// `rto` or `rpo`.
    pub figure: String,
    #[serde(with = "ms")]
    pub target_ms: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub achieved_ms: Option<Duration>,
    pub met: bool,
}

impl TargetResult {
    fn judge(figure: &str, target: Duration, achieved: Option<Duration>) -> Self {
        Self {
            figure: figure.to_string(),
            target_ms: target,
            achieved_ms: achieved,
            met: achieved.is_some_and(|a| a <= target),
        }
    }

    /// A sentence for a person: `RTO 2m 03.000s exceeds the target 2m` and the like.
    pub fn explain(&self) -> String {
        let name = self.figure.to_uppercase();
        match self.achieved_ms {
            Some(a) if self.met => format!("{name} {} within the target {}", human(a), human(self.target_ms)),
            Some(a) => format!("{name} {} exceeds the target {}", human(a), human(self.target_ms)),
            None => format!("{name} target {} set, but no {name} could be measured", human(self.target_ms)),
        }
    }
}

/// Holds the measured figures against the targets that are set. A target whose figure could not
/// be measured is not met: a pass must be proven.
pub fn compare(targets: &Targets, rto: Option<Duration>, rpo: Option<Duration>) -> Vec<TargetResult> {
    let mut results = Vec::new();
    if let Some(t) = targets.rto_ms {
        results.push(TargetResult::judge("rto", t, rto));
    }
    if let Some(t) = targets.rpo_ms {
        results.push(TargetResult::judge("rpo", t, rpo));
    }
    results
}

/// One verification check of a drill and what it saw.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

impl Check {
    pub fn new(name: impl Into<String>, passed: bool) -> Self {
        Self { name: name.into(), passed, expected: None, observed: None }
    }

    /// A check that `observed` equals `expected`.
    pub fn equal<T: PartialEq + fmt::Display>(name: impl Into<String>, expected: T, observed: T) -> Self {
        Self::new(name, expected == observed).saw(expected, observed)
    }

    pub fn saw(mut self, expected: impl fmt::Display, observed: impl fmt::Display) -> Self {
        self.expected = Some(expected.to_string());
        self.observed = Some(observed.to_string());
        self
    }

    pub fn explain(&self) -> String {
        match (&self.expected, &self.observed) {
            (Some(e), Some(o)) => format!("{}: expected {e}, observed {o}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Where the run stopped, as the runner saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every phase returned; verification produced these checks.
    Completed(Vec<Check>),
    /// A phase found that recovery does not work (a corrupt snapshot, a timeout while recovering).
    Failed { phase: Phase, reason: String },
    /// A phase could not do its work (missing tool, bad credentials, unreachable source).
    Error { phase: Phase, reason: String },
    /// A guard tripped or a person stopped the run.
    Aborted { phase: Phase, reason: String },
}

/// The verdict and the sentences that justify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The first reason is the headline; empty for a clean pass.
    pub reasons: Vec<String>,
}

/// Decides the verdict of a run. `cleanup_error` is set when cleanup did not finish: a verified
/// recovery that left something behind is an `Error`, because firedrill broke its promise to
/// leave nothing of its own.
pub fn decide(ending: &Ending, targets: &[TargetResult], cleanup_error: Option<&str>) -> Decision {
    let mut reasons = Vec::new();
    let mut verdict = match ending {
        Ending::Aborted { phase, reason } => {
            reasons.push(format!("aborted during {phase}: {reason}"));
            Verdict::Aborted
        }
        Ending::Error { phase, reason } => {
            reasons.push(format!("could not run ({phase}): {reason}"));
            Verdict::Error
        }
        Ending::Failed { phase, reason } => {
            reasons.push(format!("failed during {phase}: {reason}"));
            Verdict::Failed
        }
        Ending::Completed(checks) => {
            reasons.extend(checks.iter().filter(|c| !c.passed).map(|c| format!("check failed: {}", c.explain())));
            reasons.extend(targets.iter().filter(|t| !t.met).map(TargetResult::explain));
            if reasons.is_empty() { Verdict::Passed } else { Verdict::Failed }
        }
    };
    if let Some(e) = cleanup_error {
        reasons.push(format!("cleanup did not finish: {e}"));
        if verdict == Verdict::Passed {
            verdict = Verdict::Error;
        }
    }
    Decision { verdict, reasons }
}

/// A duration for people, exact to the millisecond: `850ms`, `12.345s`, `2m 03.456s`, `15m`,
/// `1h 05m`, `1h 00m 01s`, `3d 04h`. Units run from the largest down to the last one that is
/// not zero, so targets read as they were written.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let parts = [(s / 86_400, "d"), (s / 3600 % 24, "h"), (s / 60 % 60, "m"), (s % 60, "s")];
    let frac = ms % 1000;
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    let last = if frac > 0 { 3 } else { parts.iter().rposition(|(n, _)| *n > 0).unwrap_or(3) };
    let mut out = Vec::new();
    for (i, (n, unit)) in parts.iter().enumerate().take(last + 1).skip(first) {
        let n = if i == first { n.to_string() } else { format!("{n:02}") };
        if i == 3 && frac > 0 {
            out.push(format!("{n}.{frac:03}{unit}"));
        } else {
            out.push(format!("{n}{unit}"));
        }
    }
    out.join(" ")
}

/// Serde for a `Duration` as integer milliseconds.
pub mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Serde for an `Option<Duration>` as integer milliseconds.
pub mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::ms::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|o| o.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_795_000_000_000 + ms)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn rto_runs_from_t0_to_verified_to_the_millisecond() {
        let mut tl = Timeline::new(t(0));
        assert_eq!(rto(&tl), None);
        tl.t0 = Some(t(1_000));
        tl.verified = Some(t(4_321));
        assert_eq!(rto(&tl), Some(Duration::from_millis(3_321)));
    }

    #[test]
    fn rpo_is_t0_minus_the_recovery_point_and_reports_skew() {
        let point = RecoveryPoint { at: t(0), method: RpoMethod::Canary, source: "k".into() };
        assert_eq!(rpo(t(90_000), &point), Rpo { rpo: secs(90), skew: None });
        let ahead = RecoveryPoint { at: t(2_500), ..point };
        assert_eq!(rpo(t(0), &ahead), Rpo { rpo: Duration::ZERO, skew: Some(Duration::from_millis(2_500)) });
    }

    #[test]
    fn targets_are_met_at_the_limit_and_missed_above_or_when_unmeasured() {
        let targets = Targets { rto_ms: Some(secs(60)), rpo_ms: Some(secs(3600)) };
        let r = compare(&targets, Some(secs(60)), Some(secs(3601)));
        assert!(r[0].met, "equal to the target meets it");
        assert!(!r[1].met);
        assert_eq!(r[1].explain(), "RPO 1h 00m 01s exceeds the target 1h");
        let r = compare(&targets, Some(secs(1)), None);
        assert!(!r[1].met, "a target that could not be measured is not met");
        assert!(compare(&Targets::default(), Some(secs(1)), None).is_empty());
    }

    #[test]
    fn a_completed_run_passes_only_with_every_check_and_target() {
        let ok = Ending::Completed(vec![Check::equal("revision", 5, 5)]);
        let met = compare(&Targets { rto_ms: Some(secs(10)), rpo_ms: None }, Some(secs(3)), None);
        assert_eq!(decide(&ok, &met, None), Decision { verdict: Verdict::Passed, reasons: vec![] });

        let bad = Ending::Completed(vec![Check::equal("revision", 5, 4)]);
        let d = decide(&bad, &met, None);
        assert_eq!(d.verdict, Verdict::Failed);
        assert_eq!(d.reasons, vec!["check failed: revision: expected 5, observed 4"]);

        let missed = compare(&Targets { rto_ms: Some(secs(1)), rpo_ms: None }, Some(secs(3)), None);
        assert_eq!(decide(&ok, &missed, None).verdict, Verdict::Failed);
    }

    #[test]
    fn phase_endings_map_to_their_verdicts_and_exit_codes() {
        let cases = [
            (Ending::Failed { phase: Phase::Act, reason: "corrupt".into() }, Verdict::Failed, 1),
            (Ending::Error { phase: Phase::Preflight, reason: "no etcd".into() }, Verdict::Error, 2),
            (Ending::Aborted { phase: Phase::Wait, reason: "SIGTERM".into() }, Verdict::Aborted, 3),
        ];
        for (ending, verdict, code) in cases {
            let d = decide(&ending, &[], None);
            assert_eq!(d.verdict, verdict);
            assert_eq!(d.verdict.exit_code(), code);
            assert_eq!(d.reasons.len(), 1);
        }
        assert_eq!(Verdict::Passed.exit_code(), 0);
    }

    #[test]
    fn unfinished_cleanup_turns_a_pass_into_an_error_and_keeps_a_failure() {
        let ok = Ending::Completed(vec![]);
        let d = decide(&ok, &[], Some("data dir busy"));
        assert_eq!(d.verdict, Verdict::Error);
        assert_eq!(d.reasons, vec!["cleanup did not finish: data dir busy"]);
        let failed = Ending::Failed { phase: Phase::Act, reason: "x".into() };
        assert_eq!(decide(&failed, &[], Some("y")).verdict, Verdict::Failed);
    }

    #[test]
    fn rpo_method_names_are_the_names_records_use() {
        for m in [RpoMethod::Canary, RpoMethod::SnapshotMetadata, RpoMethod::BackupMetadata, RpoMethod::ObjectModified]
        {
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(12_345)), "12.345s");
        assert_eq!(human(Duration::from_millis(123_456)), "2m 03.456s");
        assert_eq!(human(secs(3900)), "1h 05m");
        assert_eq!(human(secs(3 * 86_400 + 4 * 3600)), "3d 04h");
        assert_eq!(human(secs(7)), "7s");
        assert_eq!(human(secs(900)), "15m");
        assert_eq!(human(secs(903)), "15m 03s");
        assert_eq!(human(secs(86_400)), "1d");
        assert_eq!(human(secs(7200)), "2h");
        assert_eq!(human(secs(3601)), "1h 00m 01s");
        assert_eq!(human(Duration::from_millis(86_400_500)), "1d 00h 00m 00.500s");
    }
}

/// The verdict of a scenario from its steps `(drill, required, verdict; None = skipped)`.
/// An aborted step aborts the scenario; otherwise every required step must pass (a failed one
/// makes the scenario `Failed`, an errored one `Error`), and at least `min_passed` steps must.
pub fn scenario_verdict(steps: &[(&str, bool, Option<Verdict>)], min_passed: Option<u32>) -> Decision {
    let mut reasons = Vec::new();
    let mut worst = Verdict::Passed;
    let mut raise = |v: Verdict| {
        let rank = |v: Verdict| match v {
            Verdict::Passed => 0,
            Verdict::Error => 1,
            Verdict::Failed => 2,
            Verdict::Aborted => 3,
        };
        if rank(v) > rank(worst) {
            worst = v;
        }
    };
    for (i, (drill, required, verdict)) in steps.iter().enumerate() {
        let n = i + 1;
        match (verdict, required) {
            (Some(Verdict::Aborted), _) => {
                reasons.push(format!("step {n} ({drill}) was aborted"));
                raise(Verdict::Aborted);
            }
            (Some(Verdict::Passed), _) | (_, false) => {}
            (Some(v), true) => {
                reasons.push(format!("required step {n} ({drill}) ended {v}"));
                raise(*v);
            }
            (None, true) => {
                reasons.push(format!("required step {n} ({drill}) did not run"));
                raise(Verdict::Failed);
            }
        }
    }
    let passed = steps.iter().filter(|s| s.2 == Some(Verdict::Passed)).count();
    if let Some(min) = min_passed
        && passed < min as usize
    {
        reasons.push(format!("{passed} steps passed, fewer than the {min} required"));
        raise(Verdict::Failed);
    }
    Decision { verdict: worst, reasons }
}

#[cfg(test)]
mod scenario_tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn every_required_step_must_pass() {
        assert_eq!(scenario_verdict(&[("a", true, Some(Passed)), ("b", true, Some(Passed))], None).verdict, Passed);
        let d = scenario_verdict(&[("a", true, Some(Passed)), ("b", true, Some(Failed))], None);
        assert_eq!(d.verdict, Failed);
        assert_eq!(d.reasons, vec!["required step 2 (b) ended Failed"]);
        assert_eq!(scenario_verdict(&[("a", true, Some(Error))], None).verdict, Error);
    }

    #[test]
    fn optional_steps_may_fail_but_count_toward_min_passed() {
        let steps = [("a", true, Some(Passed)), ("b", false, Some(Failed))];
        assert_eq!(scenario_verdict(&steps, None).verdict, Passed);
        let d = scenario_verdict(&steps, Some(2));
        assert_eq!(d.verdict, Failed);
        assert_eq!(d.reasons, vec!["1 steps passed, fewer than the 2 required"]);
    }

    #[test]
    fn an_abort_wins_and_a_failure_outranks_an_error() {
        let d = scenario_verdict(&[("a", true, Some(Failed)), ("b", true, Some(Aborted)), ("c", true, None)], None);
        assert_eq!(d.verdict, Aborted);
        assert_eq!(scenario_verdict(&[("a", true, Some(Error)), ("b", true, Some(Failed))], None).verdict, Failed);
        assert_eq!(scenario_verdict(&[("a", true, Some(Failed)), ("b", true, None)], None).reasons.len(), 2);
    }
}
