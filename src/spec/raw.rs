//! Stage one: the shapes of drill and scenario files, exactly as written.
//!
//! These types only parse. Unknown fields are errors, values that need checking are kept as
//! text with their location ([`Loc`]), and stage two ([`super::validate`]) turns them into a plan.
//! The JSON Schema in `docs/schema/` is generated from these types.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

use super::Loc;
use crate::drills::{cert_expiry, etcd_restore, node_drain, pdb_check, velero_restore};

/// The API version every file declares.
pub const API_VERSION: &str = "firedrill.dev/v1alpha1";

/// A drill file (`kind: Drill`): one drill, run on demand, in a scenario or on its schedule.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "firedrill Drill")]
pub struct DrillFile {
    /// Always `firedrill.dev/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: Loc<String>,
    /// Always `Drill`.
    #[schemars(extend("const" = "Drill"))]
    pub kind: Loc<String>,
    /// Unique among drills: lowercase letters, digits and `-`, at most 63 characters.
    pub name: Loc<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form labels, copied into every record of this drill.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The recovery targets the run is held to.
    #[serde(default)]
    pub targets: Option<TargetsSpec>,
    /// When `firedrill serve` runs the drill by itself.
    #[serde(default)]
    pub schedule: Option<Loc<ScheduleSpec>>,
    /// Per-phase time limits; each drill has defaults.
    #[serde(default)]
    pub timeouts: Option<TimeoutsSpec>,
    /// The Kubernetes cluster a drill acts on (not for `etcd-restore`); the default kubeconfig
    /// when unset.
    #[serde(default)]
    pub cluster: Option<Loc<crate::cluster::Spec>>,
    /// Restore etcd from a snapshot into a scratch member and verify it (`etcd-restore`).
    #[serde(default)]
    pub etcd_restore: Option<Loc<etcd_restore::Spec>>,
    /// Check PodDisruptionBudgets against workloads, and what draining each node would do
    /// (`pdb-check`, read-only).
    #[serde(default)]
    pub pdb_check: Option<Loc<pdb_check::Spec>>,
    /// Drain a node through the Eviction API and measure how long until its workloads are back
    /// (`node-drain`).
    #[serde(default)]
    pub node_drain: Option<Loc<node_drain::Spec>>,
    /// Find every certificate that would expire within a horizon (TLS Secrets, cert-manager
    /// Certificates, Ingress TLS, CA bundles, files, live endpoints) and rehearse a cert-manager
    /// renewal (`cert-expiry`).
    #[serde(default)]
    pub cert_expiry: Option<Loc<cert_expiry::Spec>>,
    /// Restore a Velero backup of a namespace into a scratch namespace, verify it, measure RTO
    /// and RPO, and delete what it created (`velero-restore`).
    #[serde(default)]
    pub velero_restore: Option<Loc<velero_restore::Spec>>,
}

/// A scenario file (`kind: Scenario`): an ordered list of drills with its own pass condition.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "firedrill Scenario")]
pub struct ScenarioFile {
    /// Always `firedrill.dev/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: Loc<String>,
    /// Always `Scenario`.
    #[schemars(extend("const" = "Scenario"))]
    pub kind: Loc<String>,
    /// Unique among scenarios: lowercase letters, digits and `-`, at most 63 characters.
    pub name: Loc<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Who runs it (a team or a person); `firedrill run --operator` overrides it.
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub schedule: Option<Loc<ScheduleSpec>>,
    /// The drills, run in this order.
    pub steps: Loc<Vec<StepSpec>>,
    /// What makes the scenario pass; by default every required step must pass.
    #[serde(default)]
    pub pass: Option<PassSpec>,
    /// What to do after a step that did not pass; `continue` by default.
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    /// A simulated cluster to rehearse this scenario on: `firedrill sim up --config <this file>`.
    #[serde(default)]
    pub sim: Option<crate::sim::config::SimConfig>,
}

/// One step of a scenario.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepSpec {
    /// A drill name, or the path of a drill file relative to this scenario file.
    pub drill: Loc<String>,
    /// Whether the scenario's pass condition counts this step (default `true`).
    #[serde(default)]
    pub required: Option<bool>,
}

/// The scenario's pass condition.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PassSpec {
    /// At least this many steps must pass, in addition to every required step.
    #[serde(default)]
    pub min_passed: Option<Loc<u32>>,
}

/// What a scenario does after a step that did not pass.
#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Run the remaining steps (a game day wants the whole picture).
    Continue,
    /// Skip the remaining steps.
    Stop,
}

/// Recovery targets.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetsSpec {
    /// Longest acceptable time from the declared disaster to verified recovery.
    #[serde(default)]
    pub rto: Option<Loc<DurationText>>,
    /// Largest acceptable age of the recovered data when the disaster was declared.
    #[serde(default)]
    pub rpo: Option<Loc<DurationText>>,
}

/// A schedule for `firedrill serve`.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// A cron expression: five fields `minute hour day-of-month month day-of-week`
    /// (`0 3 1 * *`), six or seven with seconds first and year last, or `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`, `@hourly`. Days of the week are written as names (`MON-FRI`).
    pub cron: Loc<String>,
    /// An IANA time zone (`Europe/Berlin`); `UTC` by default.
    #[serde(default)]
    pub time_zone: Option<Loc<String>>,
    /// A random delay up to this long added to each start, so that drills do not start together.
    #[serde(default)]
    pub jitter: Option<Loc<DurationText>>,
    /// A run that cannot start within this long of its time is skipped.
    #[serde(default)]
    pub window: Option<Loc<DurationText>>,
    /// What to do about runs missed while firedrill was down: `skip` (default) or `runOnce`.
    #[serde(default)]
    pub missed_runs: Option<MissedRuns>,
}

/// Missed-run policy after downtime.
#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MissedRuns {
    Skip,
    RunOnce,
}

/// Per-phase time limits.
#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimeoutsSpec {
    #[serde(default)]
    pub preflight: Option<Loc<DurationText>>,
    #[serde(default)]
    pub setup: Option<Loc<DurationText>>,
    #[serde(default)]
    pub act: Option<Loc<DurationText>>,
    #[serde(default)]
    pub wait: Option<Loc<DurationText>>,
    #[serde(default)]
    pub verify: Option<Loc<DurationText>>,
    #[serde(default)]
    pub cleanup: Option<Loc<DurationText>>,
}

/// A human duration such as `90s`, `15m`, `24h`, `7d` or `1h 30m`.
#[derive(Deserialize, serde::Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A human duration: numbers with units (ns, us, ms, s, m, h, d, w, M, y), e.g. `90s`, `15m`, `24h`, `7d`, `1h 30m`, `1.5h`.",
            "pattern": r"^\s*\d+(\.\d+)?\s*[a-zA-Zµ]+(\s*\d+(\.\d+)?\s*[a-zA-Zµ]+)*\s*$",
            "examples": ["90s", "15m", "24h", "7d"]
        })
    }
}

/// A value that may name environment variables: `${NAME}` or `${NAME:-default}`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct EnvText(pub String);

impl JsonSchema for EnvText {
    fn schema_name() -> Cow<'static, str> {
        "TextWithEnvironment".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Text in which `${NAME}` and `${NAME:-default}` are replaced by environment variables when the file is loaded."
        })
    }
}
