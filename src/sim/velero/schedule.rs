//! The Schedule controller, after Velero's `schedule_controller.go`: a schedule whose cron
//! expression parses is `Enabled` (else `FailedValidation` with `invalid schedule: ...`); when
//! it is due by the simulated clock — the first time after `max(lastBackup or creation,
//! lastSkipped)` that the expression fires — and none of its backups is still New or InProgress,
//! it creates Backup `<schedule>-<YYYYMMDDHHMMSS>` from its template (labels of the template, or
//! else the schedule's, plus `velero.io/schedule-name`) and records `lastBackup`. A paused
//! schedule is not read at all. `skipImmediately: true` is consumed: set back to false, with the
//! time recorded in `lastSkipped`, so that a run due right now is skipped.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::backup::stamp;
use super::crontab::{self, Cron};
use super::{BACKUPS, SCHEDULE_NAME_LABEL, SCHEDULES, all, get, update};
use crate::sim::controllers::pods::rtype;
use crate::sim::controllers::{Key, Requeue};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;

/// The longest a due schedule waits to be looked at again (the simulated clock can jump).
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// Validates Schedule `key` and submits its backup when it is due; asks to be called again then.
pub fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    let schedule = get(state, SCHEDULES, ns, name)?;
    if schedule["metadata"].get("deletionTimestamp").is_some() || schedule["spec"]["paused"] == true {
        return Ok(None);
    }
    let parsed = validate(&schedule["spec"]["schedule"]);
    let phase = if parsed.is_ok() { "Enabled" } else { "FailedValidation" };
    if schedule["status"]["phase"] != phase
        || parsed.as_ref().err().is_some_and(|e| schedule["status"]["validationErrors"] != json!(e))
    {
        update(state, SCHEDULES, ns, name, |o| {
            o["status"]["phase"] = json!(phase);
            match &parsed {
                Ok(_) => {
                    if let Some(s) = o["status"].as_object_mut() {
                        s.remove("validationErrors");
                    }
                }
                Err(errors) => o["status"]["validationErrors"] = json!(errors),
            }
        })?;
    }
    let Ok(cron) = parsed else { return Ok(None) };
    let now = state.store.clock.now();
    let mut schedule = schedule;
    if schedule["spec"]["skipImmediately"] == true {
        schedule = update(state, SCHEDULES, ns, name, |o| {
            o["spec"]["skipImmediately"] = json!(false);
            o["status"]["lastSkipped"] = json!(stamp(now));
        })?;
    }
    let Some(next) = cron.next_after(baseline(&schedule)) else { return Ok(None) };
    if now <= next {
        let wait = (next - now).to_std().unwrap_or_default();
        return Ok(Some(wait.clamp(Duration::from_millis(50), LONGEST_WAIT)));
    }
    if backup_running(state, ns, name) {
        return Ok(None);
    }
    submit(state, &schedule, now)?;
    let following = cron.next_after(now).map(|n| (n - now).to_std().unwrap_or_default());
    Ok(Some(following.unwrap_or(LONGEST_WAIT).clamp(Duration::from_millis(50), LONGEST_WAIT)))
}

/// Parses `spec.schedule`, or says why Velero would refuse it.
fn validate(expr: &Value) -> Result<Cron, Vec<String>> {
    match expr.as_str().map(str::trim).filter(|e| !e.is_empty()) {
        None => Err(vec!["Schedule must be a non-empty valid Cron expression".to_string()]),
        Some(e) => crontab::parse(e).map_err(|why| vec![format!("invalid schedule: {why}")]),
    }
}

/// The time runs are counted from: the last backup (or the schedule's creation), or the last
/// skip when later.
fn baseline(schedule: &Value) -> DateTime<Utc> {
    let time = |v: &Value| v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc));
    let last = time(&schedule["status"]["lastBackup"])
        .or_else(|| time(&schedule["metadata"]["creationTimestamp"]))
        .unwrap_or_default();
    match time(&schedule["status"]["lastSkipped"]) {
        Some(skipped) if skipped > last => skipped,
        _ => last,
    }
}

/// Whether a backup of this schedule is still New (or not yet picked up) or InProgress.
fn backup_running(state: &SimState, ns: &str, schedule: &str) -> bool {
    all(state, BACKUPS, ns).iter().any(|b| {
        b["metadata"]["labels"][SCHEDULE_NAME_LABEL] == schedule
            && matches!(b["status"]["phase"].as_str().unwrap_or_default(), "" | "New" | "InProgress")
    })
}

/// Creates the schedule's backup for `now` and records it in `lastBackup`.
fn submit(state: &SimState, schedule: &Value, now: DateTime<Utc>) -> Result<(), ApiError> {
    let ns = schedule["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = schedule["metadata"]["name"].as_str().unwrap_or_default();
    let backup = backup_for(schedule, now);
    match state.store.create(&rtype(state, super::GROUP, "backups"), ns, backup, false) {
        Ok(b) => {
            tracing::info!(schedule = %format!("{ns}/{name}"), backup = %b["metadata"]["name"], "schedule is due; backup submitted")
        }
        Err(e) if e.reason == "AlreadyExists" => {}
        Err(e) => return Err(e),
    }
    update(state, SCHEDULES, ns, name, |o| o["status"]["lastBackup"] = json!(stamp(now)))?;
    Ok(())
}

/// The Backup a schedule creates at `now` (Velero's `FromSchedule`).
pub fn backup_for(schedule: &Value, now: DateTime<Utc>) -> Value {
    let name = schedule["metadata"]["name"].as_str().unwrap_or_default();
    let template = &schedule["spec"]["template"];
    let pick = |field: &str| match &template["metadata"][field] {
        Value::Object(m) => Value::Object(m.clone()),
        _ => match &schedule["metadata"][field] {
            Value::Object(m) => Value::Object(m.clone()),
            _ => json!({}),
        },
    };
    let mut labels = pick("labels");
    labels[SCHEDULE_NAME_LABEL] = json!(name);
    let mut metadata = json!({
        "name": format!("{name}-{}", now.format("%Y%m%d%H%M%S")),
        "labels": labels,
    });
    let annotations = pick("annotations");
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        metadata["annotations"] = annotations;
    }
    if schedule["spec"]["useOwnerReferencesInBackup"] == true {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "name": name,
            "uid": schedule["metadata"]["uid"],
            "controller": true,
        }]);
    }
    let spec = if template.is_object() { template.clone() } else { json!({}) };
    json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn backups_are_named_by_the_trigger_time_and_carry_the_template() {
        let schedule = json!({
            "metadata": {"name": "nightly", "namespace": "velero", "uid": "u1", "labels": {"team": "ops"}},
            "spec": {"schedule": "0 2 * * *", "useOwnerReferencesInBackup": true,
                     "template": {"includedNamespaces": ["shop"], "ttl": "24h0m0s"}},
        });
        let b = backup_for(&schedule, at("2026-05-01T02:00:07Z"));
        assert_eq!(b["metadata"]["name"], "nightly-20260501020007");
        assert_eq!(b["metadata"]["labels"], json!({"team": "ops", "velero.io/schedule-name": "nightly"}));
        assert_eq!(b["spec"], json!({"includedNamespaces": ["shop"], "ttl": "24h0m0s"}));
        assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "u1");

        let mut with_template_labels = schedule.clone();
        with_template_labels["spec"]["template"]["metadata"] = json!({"labels": {"tier": "gold"}});
        let b = backup_for(&with_template_labels, at("2026-05-01T02:00:07Z"));
        assert_eq!(b["metadata"]["labels"], json!({"tier": "gold", "velero.io/schedule-name": "nightly"}));
    }

    #[test]
    fn runs_count_from_the_last_backup_or_creation_or_a_later_skip() {
        let mut s = json!({"metadata": {"creationTimestamp": "2026-05-01T10:00:00Z"}, "status": {}});
        assert_eq!(baseline(&s), at("2026-05-01T10:00:00Z"));
        s["status"]["lastBackup"] = json!("2026-05-02T02:00:00Z");
        assert_eq!(baseline(&s), at("2026-05-02T02:00:00Z"));
        s["status"]["lastSkipped"] = json!("2026-05-02T09:00:00Z");
        assert_eq!(baseline(&s), at("2026-05-02T09:00:00Z"));
    }

    #[test]
    fn empty_and_bad_expressions_fail_validation_with_velero_s_words() {
        assert_eq!(validate(&json!("")).unwrap_err(), ["Schedule must be a non-empty valid Cron expression"]);
        assert_eq!(
            validate(&json!("every night")).unwrap_err(),
            ["invalid schedule: expected exactly 5 fields, found 2: [every night]"]
        );
        assert!(validate(&json!("@every 1h")).is_ok());
    }
}
