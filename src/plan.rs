//! Stage two's output: validated drills and scenarios, ready to run or schedule.
//!
//! A plan holds only checked values (durations as `Duration`, a parsed cron schedule, a resolved
//! time zone, the drill's own typed parameters). Nothing in it can fail to make sense at run time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::drills::DrillParams;
use crate::measure::{Phase, Targets};
pub use crate::spec::raw::{MissedRuns, OnFailure};

/// A drill, validated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillPlan {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The file it was read from.
    pub file: PathBuf,
    /// SHA-256 of the file's bytes, recorded with every run.
    pub spec_sha256: String,
    pub targets: Targets,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub timeouts: Timeouts,
    pub params: DrillParams,
}

impl DrillPlan {
    /// The registered drill type (`etcd-restore`, ...).
    pub fn kind(&self) -> &'static str {
        self.params.kind()
    }
}

/// A scenario, validated, with its drills resolved.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioPlan {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub file: PathBuf,
    pub spec_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub steps: Vec<Step>,
    /// At least this many steps must pass (in addition to every required one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_passed: Option<u32>,
    pub on_failure: OnFailure,
}

/// One step of a scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    #[serde(serialize_with = "drill_name")]
    pub drill: Arc<DrillPlan>,
    pub required: bool,
}

/// A validated schedule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// The expression as written.
    pub cron: String,
    #[serde(skip)]
    pub parsed: cron::Schedule,
    #[serde(serialize_with = "tz_name")]
    pub time_zone: Tz,
    #[serde(with = "crate::measure::ms", rename = "jitterMs")]
    pub jitter: Duration,
    #[serde(with = "crate::measure::opt_ms", rename = "windowMs", skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    pub missed_runs: MissedRuns,
}

fn drill_name<S: serde::Serializer>(d: &Arc<DrillPlan>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.name)
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

impl Schedule {
    /// The next `n` fire times strictly after `after` (before jitter). Wall-clock times that
    /// occur twice when daylight saving ends fire once, at their first occurrence, as crontab
    /// does (the `cron` crate alone would fire at both).
    pub fn upcoming(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let local = after.datetime().with_timezone(&self.time_zone);
        // A fire time whose wall-clock time is not later than one already fired lies in the
        // repeated hour: skip it.
        let mut latest = None;
        self.parsed
            .after(&local)
            .filter(|t| {
                let wall = t.naive_local();
                let repeated = latest.is_some_and(|l| wall <= l);
                latest = latest.max(Some(wall));
                !repeated
            })
            .take(n)
            .map(|t| Timestamp::from_datetime(t.with_timezone(&chrono::Utc)))
            .collect()
    }
}

/// A time limit for each phase of the drill contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    #[serde(with = "crate::measure::ms", rename = "preflightMs")]
    pub preflight: Duration,
    #[serde(with = "crate::measure::ms", rename = "setupMs")]
    pub setup: Duration,
    #[serde(with = "crate::measure::ms", rename = "actMs")]
    pub act: Duration,
    #[serde(with = "crate::measure::ms", rename = "waitMs")]
    pub wait: Duration,
    #[serde(with = "crate::measure::ms", rename = "verifyMs")]
    pub verify: Duration,
    #[serde(with = "crate::measure::ms", rename = "cleanupMs")]
    pub cleanup: Duration,
}

impl Timeouts {
    pub fn get(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Preflight => self.preflight,
            Phase::Setup => self.setup,
            Phase::Act => self.act,
            Phase::Wait => self.wait,
            Phase::Verify => self.verify,
            Phase::Cleanup => self.cleanup,
        }
    }

    pub fn set(&mut self, phase: Phase, d: Duration) {
        match phase {
            Phase::Preflight => self.preflight = d,
            Phase::Setup => self.setup = d,
            Phase::Act => self.act = d,
            Phase::Wait => self.wait = d,
            Phase::Verify => self.verify = d,
            Phase::Cleanup => self.cleanup = d,
        }
    }

    /// The longest a run can take: every phase at its limit.
    pub fn total(&self) -> Duration {
        Phase::ALL.iter().map(|p| self.get(*p)).sum()
    }
}
