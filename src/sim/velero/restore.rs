//! The Restore controller, after Velero's `restore_controller.go`: a new Restore is validated
//! (exactly one of `backupName` and `scheduleName`; a schedule's newest Completed backup by start
//! time; the backup must exist and its location be Available; consistent filters, with the
//! resources Velero never restores added to `excludedResources`) and ends `FailedValidation` with
//! Velero's messages, or becomes `InProgress`. After the simulator's `velero_after`, and once no
//! namespace it restores into is still terminating, it downloads the backup, restores it
//! ([`super::restorer`]), uploads its log, results and resource list next to the backup, and ends
//! `Completed`, `PartiallyFailed` (errors were counted, or the `partiallyFailRestores` fault is
//! set) or `Failed` (the backup could not be downloaded), with its completion time, warning and
//! error counts and progress.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::backup::stamp;
use super::filter::{both_selectors, validate as validate_lists};
use super::format::{self, FormatError};
use super::location::{self, LocationError};
use super::restorer::{self, Outcome, Request, Scope};
use super::{BACKUPS, LOCATIONS, RESTORES, SCHEDULE_NAME_LABEL, all, duration, get, io, recalled, remember, strings};
use crate::sim::controllers::pods::rtype;
use crate::sim::controllers::{Key, Requeue};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::store::Profile;

/// Resources Velero never restores (`nonRestorableResources`).
pub const NON_RESTORABLE: [&str; 9] = [
    "nodes",
    "events",
    "events.events.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backuprepositories.velero.io",
];
/// How long a restore waits for a namespace it restores into to finish terminating
/// (`--terminating-resource-timeout`).
const TERMINATING_TIMEOUT: Duration = Duration::from_secs(600);
/// How long downloading a backup, or uploading what a restore leaves, may take.
const TRANSFER_LIMIT: Duration = Duration::from_secs(600);
/// How often a waiting restore looks again.
const POLL: Duration = Duration::from_millis(100);

/// Moves Restore `key` on: validates a new one, runs one whose time has come.
pub fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    let restore = get(state, RESTORES, ns, name)?;
    if restore["metadata"].get("deletionTimestamp").is_some() {
        return Ok(None);
    }
    let started_key = format!("velero/restore/{ns}/{name}");
    match restore["status"]["phase"].as_str().unwrap_or_default() {
        "" | "New" => start(state, &restore, &started_key),
        // A restore this simulator did not start (one written with its status) is left alone.
        "InProgress" => match recalled(state, &started_key) {
            None => Ok(None),
            Some(at) => {
                let left = state.timings.velero_after.saturating_sub(at.elapsed());
                if !left.is_zero() {
                    return Ok(Some(left));
                }
                let scope = Scope::new(state, &restore["spec"]);
                let waiting = namespaces_terminating(state, &scope);
                if !waiting.is_empty() && at.elapsed() < TERMINATING_TIMEOUT {
                    return Ok(Some(POLL));
                }
                state.forget(&started_key);
                execute(state, &restore)?;
                Ok(None)
            }
        },
        _ => Ok(None),
    }
}

/// What validation found: the errors, and the backup chosen from a schedule.
struct Validation {
    errors: Vec<String>,
    backup_name: Option<String>,
    schedule_name: Option<String>,
}

/// Validates a new restore; `None` means its backup's location has not been validated yet.
fn validate(state: &SimState, restore: &Value, excluded: &[String]) -> Option<Validation> {
    let ns = restore["metadata"]["namespace"].as_str().unwrap_or_default();
    let spec = &restore["spec"];
    let mut v = Validation { errors: Vec::new(), backup_name: None, schedule_name: None };
    let included = strings(&spec["includedResources"]);
    for r in NON_RESTORABLE.iter().filter(|r| included.iter().any(|i| i == *r)) {
        v.errors.push(format!("{r} are non-restorable resources"));
    }
    for e in validate_lists(&included, excluded) {
        v.errors.push(format!("Invalid included/excluded resource lists: {e}"));
    }
    for e in validate_lists(&strings(&spec["includedNamespaces"]), &strings(&spec["excludedNamespaces"])) {
        v.errors.push(format!("Invalid included/excluded namespace lists: {e}"));
    }
    v.errors.extend(both_selectors(spec, "restore"));
    let backup_name = spec["backupName"].as_str().unwrap_or_default();
    let schedule_name = spec["scheduleName"].as_str().unwrap_or_default();
    if backup_name.is_empty() == schedule_name.is_empty() {
        v.errors.push("Either a backup or schedule must be specified as a source for the restore, but not both".into());
        return Some(v);
    }
    let mut backup_name = backup_name.to_string();
    if !schedule_name.is_empty() {
        let backups: Vec<_> = all(state, BACKUPS, ns)
            .into_iter()
            .filter(|b| b["metadata"]["labels"][SCHEDULE_NAME_LABEL] == schedule_name)
            .collect();
        if backups.is_empty() {
            v.errors.push("No backups found for schedule".into());
        }
        match newest_completed(&backups) {
            Some(name) => backup_name = name,
            None => {
                v.errors.push("No completed backups found for schedule".into());
                return Some(v);
            }
        }
        v.backup_name = Some(backup_name.clone());
    }
    let backup = match get(state, BACKUPS, ns, &backup_name) {
        Ok(b) => b,
        Err(e) => {
            v.errors.push(format!("Error retrieving backup: can't find backup {ns}/{backup_name}: {}", e.message));
            return Some(v);
        }
    };
    if schedule_name.is_empty() {
        v.schedule_name = backup["metadata"]["labels"][SCHEDULE_NAME_LABEL].as_str().map(str::to_string);
    }
    let location = backup["spec"]["storageLocation"].as_str().unwrap_or_default();
    match get(state, LOCATIONS, ns, location) {
        Err(e) => v.errors.push(format!("Error retrieving backup: {}", e.message)),
        Ok(l) => match l["status"]["phase"].as_str().unwrap_or_default() {
            "" => return None,
            "Available" => {}
            _ => v.errors.push(format!("The BSL {location} is unavailable, cannot retrieve the backup")),
        },
    }
    Some(v)
}

/// The newest Completed backup by start time (`mostRecentCompletedBackup`).
fn newest_completed(backups: &[std::sync::Arc<Value>]) -> Option<String> {
    let start = |b: &Value| {
        b["status"]["startTimestamp"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let mut sorted: Vec<&Value> = backups.iter().map(|b| b.as_ref()).collect();
    sorted.sort_by_key(|b| std::cmp::Reverse(start(b)));
    sorted
        .into_iter()
        .find(|b| b["status"]["phase"] == "Completed")
        .and_then(|b| b["metadata"]["name"].as_str().map(str::to_string))
}

fn start(state: &SimState, restore: &Value, started_key: &str) -> Result<Requeue, ApiError> {
    let ns = restore["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = restore["metadata"]["name"].as_str().unwrap_or_default();
    let mut excluded = strings(&restore["spec"]["excludedResources"]);
    for r in NON_RESTORABLE {
        if !excluded.iter().any(|e| e == r) {
            excluded.push(r.to_string());
        }
    }
    let Some(v) = validate(state, restore, &excluded) else { return Ok(Some(POLL)) };
    let now = stamp(state.store.clock.now());
    let failed = !v.errors.is_empty();
    super::update(state, RESTORES, ns, name, |o| {
        o["spec"]["excludedResources"] = json!(excluded);
        if let Some(b) = &v.backup_name {
            o["spec"]["backupName"] = json!(b);
        }
        if let Some(s) = &v.schedule_name {
            o["spec"]["scheduleName"] = json!(s);
        }
        if duration::field(&o["spec"]["itemOperationTimeout"]).ok().flatten().is_none() {
            o["spec"]["itemOperationTimeout"] = json!(duration::DEFAULT_ITEM_OPERATION_TIMEOUT);
        }
        if failed {
            o["status"]["phase"] = json!("FailedValidation");
            o["status"]["validationErrors"] = json!(v.errors);
        } else {
            o["status"]["phase"] = json!("InProgress");
            o["status"]["startTimestamp"] = json!(now);
        }
    })?;
    if failed {
        return Ok(None);
    }
    state.forget(started_key);
    remember(state, started_key, tokio::time::Instant::now());
    Ok(Some(state.timings.velero_after))
}

/// The namespaces of the cluster that are terminating and that the restore may restore into.
fn namespaces_terminating(state: &SimState, scope: &Scope) -> Vec<String> {
    state
        .store
        .all(&rtype(state, "", "namespaces"), None)
        .iter()
        .filter(|n| n["status"]["phase"] == "Terminating")
        .filter_map(|n| n["metadata"]["name"].as_str())
        .filter(|n| scope.may_target(n))
        .map(str::to_string)
        .collect()
}

/// Downloads and restores the backup, uploads the results and writes how the restore ended.
fn execute(state: &SimState, restore: &Value) -> Result<(), ApiError> {
    let ns = restore["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = restore["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &restore["spec"];
    let backup_name = spec["backupName"].as_str().unwrap_or_default();
    let source = get(state, BACKUPS, ns, backup_name)
        .map_err(|e| e.message)
        .and_then(|b| {
            get(state, LOCATIONS, ns, b["spec"]["storageLocation"].as_str().unwrap_or_default()).map_err(|e| e.message)
        })
        .and_then(|bsl| super::opener(state, &bsl).map_err(|e| e.to_string()));
    let opener = match source {
        Ok(o) => o,
        Err(reason) => return fail(state, ns, name, reason),
    };
    let name_owned = backup_name.to_string();
    let opened = &opener;
    let downloaded = io::run(TRANSFER_LIMIT, async move {
        let loc = opened.open(Profile::Bulk)?;
        Ok(format::download_backup(&loc, &name_owned).await)
    });
    let mut outcome = match downloaded {
        Err(e) => return fail(state, ns, name, opener.scrub(format!("error downloading backup: {e}"))),
        Ok(Err(
            e @ (FormatError::BackupNotFound { .. }
            | FormatError::ContentsNotFound { .. }
            | FormatError::Store { .. }
            | FormatError::Metadata { .. }
            | FormatError::InvalidName(_)),
        )) => {
            return fail(state, ns, name, opener.scrub(format!("error downloading backup: {e}")));
        }
        Ok(Err(e)) => {
            let mut o = Outcome::default();
            o.errors.velero.push(opener.scrub(format!("error parsing backup contents: {e}")));
            o
        }
        Ok(Ok((_, items))) => {
            let req = Request { spec, restore_name: name, backup_name };
            let mut o = restorer::run(state, &req, &items);
            if items.is_empty() {
                o.warnings.velero.push("zero items to be restored".into());
            }
            o
        }
    };
    if state.faults.partially_fail_restores() {
        for target in outcome.namespaces.clone() {
            outcome.errors.namespaces.entry(target.clone()).or_default().push(format!(
                "error restoring namespace {target}: injected fault (partiallyFailRestores is set in the simulator's faults)"
            ));
        }
        if outcome.namespaces.is_empty() {
            outcome
                .errors
                .velero
                .push("injected fault (partiallyFailRestores is set in the simulator's faults)".into());
        }
    }
    let now = state.store.clock.now();
    upload_results(&opener, restore, &outcome, now);
    let (warnings, errors) = (outcome.warnings.count(), outcome.errors.count());
    let phase = if errors > 0 { "PartiallyFailed" } else { "Completed" };
    tracing::info!(restore = %format!("{ns}/{name}"), backup = backup_name, phase, warnings, errors, "restore finished");
    let items = outcome.restored.len();
    super::update(state, RESTORES, ns, name, |o| {
        let s = &mut o["status"];
        s["phase"] = json!(phase);
        s["completionTimestamp"] = json!(stamp(now));
        s["progress"] = json!({"totalItems": items, "itemsRestored": items});
        for (field, count) in [("warnings", warnings), ("errors", errors)] {
            if count > 0 {
                s[field] = json!(count);
            }
        }
    })?;
    Ok(())
}

/// Ends a restore `Failed`.
fn fail(state: &SimState, ns: &str, name: &str, reason: String) -> Result<(), ApiError> {
    tracing::info!(restore = %format!("{ns}/{name}"), error = %reason, "restore failed");
    let now = stamp(state.store.clock.now());
    super::update(state, RESTORES, ns, name, |o| {
        o["status"]["phase"] = json!("Failed");
        o["status"]["failureReason"] = json!(reason);
        o["status"]["completionTimestamp"] = json!(now);
    })?;
    Ok(())
}

/// Uploads the restore's log, results and restored resource list; a failure is only logged,
/// as in Velero.
fn upload_results(opener: &location::Opener, restore: &Value, outcome: &Outcome, now: DateTime<Utc>) {
    let name = restore["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let full = super::ns_name(restore);
    let time = stamp(now);
    let log: String = outcome.log.iter().map(|l| format!("time=\"{time}\" {l} restore={full}\n")).collect();
    let results = format::results(&outcome.errors, &outcome.warnings);
    let list = outcome.resource_list();
    let uploaded = io::run(TRANSFER_LIMIT, async move {
        let loc = opener.open(Profile::Bulk)?;
        format::upload_restore_results(&loc, &name, &log, &results, &list).await.map_err(LocationError::from)
    });
    if let Err(e) = uploaded {
        let error = opener.scrub(e);
        tracing::info!(restore = %full, url = opener.url(), %error, "cannot upload the restore's results");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_restores_its_newest_completed_backup() {
        let b = |name: &str, phase: &str, start: &str| {
            std::sync::Arc::new(
                json!({"metadata": {"name": name}, "status": {"phase": phase, "startTimestamp": start}}),
            )
        };
        let backups = vec![
            b("n-1", "Completed", "2026-05-01T02:00:00Z"),
            b("n-3", "Failed", "2026-05-03T02:00:00Z"),
            b("n-2", "Completed", "2026-05-02T02:00:00Z"),
        ];
        assert_eq!(newest_completed(&backups).as_deref(), Some("n-2"));
        assert_eq!(newest_completed(&backups[1..2]), None);
    }

    #[test]
    fn results_keep_warnings_apart_from_errors() {
        let mut errors = format::Results::default();
        errors.namespaces.insert("shop".into(), vec!["e".into()]);
        let doc = format::results(&errors, &format::Results::default());
        assert_eq!(doc["errors"]["namespaces"]["shop"], json!(["e"]));
    }
}
