//! Choosing the backup to restore, and refusing one too old for the RPO target: plain functions
//! over the Backups read from the cluster (no client, no clock). Velero's own rule for a
//! schedule is its newest `Completed` backup by `status.startTimestamp` (ref §4.3).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::measure::human;

/// The label Velero puts on the backups a Schedule creates.
pub const SCHEDULE_LABEL: &str = "velero.io/schedule-name";
/// The label naming a backup's storage location.
pub const LOCATION_LABEL: &str = "velero.io/storage-location";

/// Which backup of a window to restore.
#[derive(Deserialize, Serialize, JsonSchema, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Selection {
    /// The newest.
    #[default]
    Latest,
    /// Any one, so that older backups are tested too.
    Random,
}

/// How the drill names its backup.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Choice {
    /// By name.
    Named(String),
    /// The newest usable backup of a Velero Schedule.
    Schedule(String),
    /// A usable backup of the namespace, started within `window` when set.
    Latest {
        #[serde(skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
        window: Option<Duration>,
        selection: Selection,
    },
}

/// What the drill needs to know of a Velero Backup.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub name: String,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub included_namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    /// The BackupStorageLocation it is stored in (`spec.storageLocation`, else its label).
    pub storage_location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<Timestamp>,
    pub errors: u64,
    pub warnings: u64,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

impl Backup {
    /// Reads a Backup object (as JSON).
    pub fn from_object(o: &Value) -> Self {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let time = |v: &Value| v.as_str().and_then(Timestamp::parse_lenient);
        let status = &o["status"];
        Backup {
            name: text(&o["metadata"]["name"]).unwrap_or_default(),
            phase: text(&status["phase"]).unwrap_or_else(|| "New".into()),
            schedule: text(&o["metadata"]["labels"][SCHEDULE_LABEL]),
            included_namespaces: strings(&o["spec"]["includedNamespaces"]),
            excluded_namespaces: strings(&o["spec"]["excludedNamespaces"]),
            storage_location: text(&o["spec"]["storageLocation"])
                .or_else(|| text(&o["metadata"]["labels"][LOCATION_LABEL]))
                .unwrap_or_else(|| "default".into()),
            started: time(&status["startTimestamp"]),
            completed: time(&status["completionTimestamp"]),
            errors: status["errors"].as_u64().unwrap_or(0),
            warnings: status["warnings"].as_u64().unwrap_or(0),
        }
    }

    /// Whether the backup holds namespace `ns` (empty or `*` includes every namespace).
    pub fn covers(&self, ns: &str) -> bool {
        let included =
            self.included_namespaces.is_empty() || self.included_namespaces.iter().any(|n| n == ns || n == "*");
        included && !self.excluded_namespaces.iter().any(|n| n == ns)
    }

    /// Whether Velero can restore it: `Completed`, or `PartiallyFailed` when allowed.
    pub fn usable(&self, allow_partially_failed: bool) -> bool {
        self.phase == "Completed" || (allow_partially_failed && self.phase == "PartiallyFailed")
    }
}

/// Why no backup can be restored. Each is a `Failed` verdict: backups that are missing, broken or
/// too old are what a restore drill exists to find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The named backup does not exist.
    #[error("Backup {0} does not exist in Velero's namespace")]
    NotFound(String),
    /// The named backup cannot be restored in its phase.
    #[error("Backup {name} is {phase}, not Completed{allow}", allow = if *.allow { " or PartiallyFailed" } else { " (allowPartiallyFailed accepts PartiallyFailed)" })]
    NotUsable { name: String, phase: String, allow: bool },
    /// The named backup does not hold the namespace.
    #[error("Backup {name} does not include namespace {namespace}")]
    NotCovering { name: String, namespace: String },
    /// A schedule without a usable backup.
    #[error("Schedule {0} has no Completed backup{1}")]
    NoneForSchedule(String, &'static str),
    /// No usable backup of the namespace (in the window).
    #[error("no Completed backup{allow} of namespace {namespace}{within}")]
    NoneForNamespace { namespace: String, within: String, allow: &'static str },
    /// The backup is older than the RPO target.
    #[error(
        "Backup {name} started at {started}, {} before the run: older than the RPO target of {}, so a restore could not meet it; nothing was restored",
        human(*.age),
        human(*.target)
    )]
    TooOld { name: String, started: Timestamp, age: Duration, target: Duration },
    /// The backup has no start time, so its age is unknown.
    #[error("Backup {0} has no status.startTimestamp: its age, and so the RPO, cannot be known")]
    NoStart(String),
}

fn newest(mut candidates: Vec<&Backup>) -> Vec<&Backup> {
    candidates.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.name.cmp(&a.name)));
    candidates
}

/// Chooses the backup to restore of namespace `ns`. `seed` picks the `random` one (the caller
/// derives it from the run id, so the record shows which and a rerun cannot change it).
pub fn choose<'a>(
    backups: &'a [Backup],
    choice: &Choice,
    ns: &str,
    allow_partially_failed: bool,
    now: Timestamp,
    seed: u64,
) -> Result<&'a Backup, Refusal> {
    let usable = |b: &&Backup| b.usable(allow_partially_failed);
    let allow = if allow_partially_failed { " (or PartiallyFailed)" } else { "" };
    let chosen = match choice {
        Choice::Named(name) => {
            let b = backups.iter().find(|b| &b.name == name).ok_or_else(|| Refusal::NotFound(name.clone()))?;
            if !b.usable(allow_partially_failed) {
                return Err(Refusal::NotUsable {
                    name: b.name.clone(),
                    phase: b.phase.clone(),
                    allow: allow_partially_failed,
                });
            }
            b
        }
        Choice::Schedule(s) => {
            let of = backups.iter().filter(|b| b.schedule.as_ref() == Some(s)).filter(usable).collect();
            *newest(of).first().ok_or_else(|| Refusal::NoneForSchedule(s.clone(), allow))?
        }
        Choice::Latest { window, selection } => {
            let within = |b: &&Backup| match (window, b.started) {
                (None, _) => true,
                (Some(w), Some(started)) => now.since(started).is_none_or(|age| age <= *w),
                (Some(_), None) => false,
            };
            let of = newest(backups.iter().filter(usable).filter(|b| b.covers(ns)).filter(within).collect());
            if of.is_empty() {
                return Err(Refusal::NoneForNamespace {
                    namespace: ns.to_string(),
                    within: window.map(|w| format!(" started within the last {}", human(w))).unwrap_or_default(),
                    allow,
                });
            }
            match selection {
                Selection::Latest => of[0],
                Selection::Random => of[(seed % of.len() as u64) as usize],
            }
        }
    };
    if !chosen.covers(ns) {
        return Err(Refusal::NotCovering { name: chosen.name.clone(), namespace: ns.to_string() });
    }
    Ok(chosen)
}

/// The backup's age at `now`; refused when it is older than `target`.
pub fn age(backup: &Backup, now: Timestamp, target: Option<Duration>) -> Result<Duration, Refusal> {
    let started = backup.started.ok_or_else(|| Refusal::NoStart(backup.name.clone()))?;
    let age = now.since(started).unwrap_or_default();
    match target {
        Some(target) if age > target => Err(Refusal::TooOld { name: backup.name.clone(), started, age, target }),
        _ => Ok(age),
    }
}

/// A stable number from the run id, for `selection: random`.
pub fn seed(run_id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(run_id.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-11-21T12:00:00Z";

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    /// A Backup object as Velero writes it.
    fn backup(name: &str, phase: &str, started: &str, ns: &[&str]) -> Backup {
        Backup::from_object(&json!({
            "metadata": {"name": name, "labels": {LOCATION_LABEL: "default"}},
            "spec": {"includedNamespaces": ns},
            "status": {"phase": phase, "startTimestamp": started}
        }))
    }

    fn scheduled(mut b: Backup, s: &str) -> Backup {
        b.schedule = Some(s.into());
        b
    }

    fn latest(window: Option<Duration>, selection: Selection) -> Choice {
        Choice::Latest { window, selection }
    }

    #[test]
    fn the_newest_completed_backup_of_the_namespace_within_the_window_is_chosen() {
        let bs = vec![
            backup("old", "Completed", "2026-11-10T00:00:00Z", &["payments"]),
            backup("newest-failed", "Failed", "2026-11-21T11:00:00Z", &["payments"]),
            backup("newest-partial", "PartiallyFailed", "2026-11-21T10:00:00Z", &["payments"]),
            backup("other-ns", "Completed", "2026-11-21T09:30:00Z", &["shop"]),
            backup("all", "Completed", "2026-11-21T08:00:00Z", &[]),
            backup("good", "Completed", "2026-11-21T09:00:00Z", &["payments"]),
        ];
        let now = at(NOW);
        let pick = |choice, allow| choose(&bs, &choice, "payments", allow, now, 0).map(|b| b.name.clone());
        assert_eq!(pick(latest(None, Selection::Latest), false), Ok("good".into()));
        assert_eq!(pick(latest(None, Selection::Latest), true), Ok("newest-partial".into()));
        let day = Duration::from_secs(86_400);
        assert_eq!(pick(latest(Some(day), Selection::Latest), false), Ok("good".into()));
        let err = pick(latest(Some(Duration::from_secs(600)), Selection::Latest), false).unwrap_err();
        assert_eq!(err.to_string(), "no Completed backup of namespace payments started within the last 10m");
        // Random picks among the window's usable backups only, and the same seed the same one.
        for seed in 0..20 {
            let b = choose(&bs, &latest(Some(day), Selection::Random), "payments", false, now, seed).unwrap();
            assert!(["good", "all"].contains(&b.name.as_str()), "{}", b.name);
        }
        let a = choose(&bs, &latest(None, Selection::Random), "payments", false, now, 7).unwrap();
        assert_eq!(a, choose(&bs, &latest(None, Selection::Random), "payments", false, now, 7).unwrap());
    }

    #[test]
    fn a_named_backup_must_exist_be_usable_and_hold_the_namespace() {
        let bs = vec![
            backup("p", "PartiallyFailed", "2026-11-21T10:00:00Z", &["payments"]),
            backup("s", "Completed", "2026-11-21T10:00:00Z", &["shop"]),
        ];
        let now = at(NOW);
        let named = |n: &str| Choice::Named(n.into());
        assert_eq!(choose(&bs, &named("x"), "payments", false, now, 0), Err(Refusal::NotFound("x".into())));
        let err = choose(&bs, &named("p"), "payments", false, now, 0).unwrap_err();
        assert!(err.to_string().contains("is PartiallyFailed, not Completed (allowPartiallyFailed"), "{err}");
        assert_eq!(choose(&bs, &named("p"), "payments", true, now, 0).unwrap().name, "p");
        assert_eq!(
            choose(&bs, &named("s"), "payments", false, now, 0),
            Err(Refusal::NotCovering { name: "s".into(), namespace: "payments".into() })
        );
    }

    #[test]
    fn a_schedule_gives_its_newest_completed_backup_by_start_time() {
        let bs = vec![
            scheduled(backup("nightly-1", "Completed", "2026-11-19T02:00:00Z", &["payments"]), "nightly"),
            scheduled(backup("nightly-3", "Failed", "2026-11-21T02:00:00Z", &["payments"]), "nightly"),
            scheduled(backup("nightly-2", "Completed", "2026-11-20T02:00:00Z", &["payments"]), "nightly"),
            scheduled(backup("hourly-1", "Completed", "2026-11-21T11:00:00Z", &["payments"]), "hourly"),
        ];
        let now = at(NOW);
        let s = |n: &str| Choice::Schedule(n.into());
        assert_eq!(choose(&bs, &s("nightly"), "payments", false, now, 0).unwrap().name, "nightly-2");
        assert_eq!(
            choose(&bs, &s("weekly"), "payments", false, now, 0).unwrap_err().to_string(),
            "Schedule weekly has no Completed backup"
        );
    }

    #[test]
    fn a_backup_older_than_the_rpo_target_is_refused_with_its_age() {
        let b = backup("b", "Completed", "2026-11-20T12:00:00Z", &["payments"]);
        let now = at(NOW);
        assert_eq!(age(&b, now, None), Ok(Duration::from_secs(86_400)));
        assert_eq!(age(&b, now, Some(Duration::from_secs(2 * 86_400))), Ok(Duration::from_secs(86_400)));
        let err = age(&b, now, Some(Duration::from_secs(3600))).unwrap_err();
        assert!(matches!(err, Refusal::TooOld { .. }));
        let text = err.to_string();
        assert!(
            text.contains("Backup b started at 2026-11-20T12:00:00.000Z") && text.contains("RPO target of 1h"),
            "{text}"
        );
        let mut no_start = b.clone();
        no_start.started = None;
        assert_eq!(age(&no_start, now, None), Err(Refusal::NoStart("b".into())));
    }

    #[test]
    fn a_backup_object_is_read_with_velero_s_defaults() {
        let b =
            Backup::from_object(&json!({"metadata": {"name": "x"}, "spec": {"storageLocation": "s3"}, "status": {}}));
        assert_eq!((b.phase.as_str(), b.storage_location.as_str(), b.started), ("New", "s3", None));
        assert!(b.covers("anything"));
        let excluded = Backup::from_object(
            &json!({"metadata": {"name": "x"}, "spec": {"includedNamespaces": ["*"], "excludedNamespaces": ["kube-system"]}}),
        );
        assert!(excluded.covers("payments") && !excluded.covers("kube-system"));
    }
}
