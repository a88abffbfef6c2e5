//! The Backup controller, after Velero's `backup_controller.go` and `backup_finalizer_controller.go`:
//! a new Backup is validated (its storage location must exist, be writable and be Available;
//! its filters must be consistent) and ends `FailedValidation`, or becomes `InProgress` with its
//! start time, expiration (start + `ttl`, 720h by default) and format version. After the
//! simulator's `velero_after` its objects are collected ([`super::collect`]) and uploaded in
//! Velero's layout, and it ends `Completed` (or `PartiallyFailed` when collecting logged errors)
//! with its completion time and progress, or `Failed` with the reason the upload failed.
//!
//! Velero passes through `Finalizing` and re-uploads the metadata when it completes; the
//! simulator uploads the finished Backup once, so the stored `velero-backup.json` is the same.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use super::collect::{Collection, collect};
use super::filter::{Labels, both_selectors, validate as validate_lists};
use super::format::{self, FORMAT_VERSION, Layout, Results};
use super::location::LocationError;
use super::{
    BACKUPS, LOCATIONS, STORAGE_LOCATION_LABEL, bsl, duration, get, io, label_value, recalled, remember, strings,
};
use crate::sim::api::discovery::{MAJOR, MINOR};
use crate::sim::controllers::{Key, Requeue};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::store::Profile;

/// How long an upload may take before the backup fails.
const UPLOAD_LIMIT: Duration = Duration::from_secs(600);
/// How often a backup whose location has not been validated yet looks again.
const WAIT_FOR_LOCATION: Duration = Duration::from_millis(100);

/// Moves Backup `key` on: validates a new one, finishes one whose time has come.
pub fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    let backup = get(state, BACKUPS, ns, name)?;
    if backup["metadata"].get("deletionTimestamp").is_some() {
        return Ok(None);
    }
    let started_key = format!("velero/backup/{ns}/{name}");
    match backup["status"]["phase"].as_str().unwrap_or_default() {
        "" | "New" => start(state, &backup, &started_key),
        // A backup this simulator did not start (one written with its status) is left alone.
        "InProgress" => match recalled(state, &started_key) {
            None => Ok(None),
            Some(at) => {
                let left = state.timings.velero_after.saturating_sub(at.elapsed());
                if !left.is_zero() {
                    return Ok(Some(left));
                }
                state.forget(&started_key);
                finish(state, &backup)?;
                Ok(None)
            }
        },
        _ => Ok(None),
    }
}

/// Validates a new backup and moves it to `InProgress` or `FailedValidation`.
fn start(state: &SimState, backup: &Value, started_key: &str) -> Result<Requeue, ApiError> {
    let ns = backup["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = backup["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &backup["spec"];
    let (location, server_default) = bsl::chosen(state, ns, spec["storageLocation"].as_str().unwrap_or_default());
    let mut errors = Vec::new();
    match get(state, LOCATIONS, ns, &location) {
        Err(e) if e.is_not_found() => {
            let whose = if server_default { "the server default" } else { "the default" };
            let missing = if server_default { "does not exist" } else { "was not found" };
            errors.push(format!(
                "an existing backup storage location was not specified at backup creation time and {whose} {location} {missing}. Please address this issue (see `velero backup-location -h` for options) and create a new backup. Error: backupstoragelocations.velero.io {location:?} not found"
            ));
        }
        Err(e) => errors.push(format!("error getting backup storage location: {}", e.message)),
        Ok(l) => {
            if l["spec"]["accessMode"] == "ReadOnly" {
                errors.push(format!(
                    "backup can't be created because backup storage location {location} is currently in read-only mode"
                ));
            }
            match l["status"]["phase"].as_str().unwrap_or_default() {
                // Velero validates its locations at start-up, long before a drill's first backup;
                // here a location created a moment ago is waited for rather than refused.
                "" => return Ok(Some(WAIT_FOR_LOCATION)),
                "Available" => {}
                _ => errors.push(format!(
                    "backup can't be created because BackupStorageLocation {location} is in Unavailable status."
                )),
            }
        }
    }
    errors.extend(filter_errors(spec));

    let now = state.store.clock.now();
    let ttl = duration::field(&spec["ttl"]).ok().flatten();
    let expiration = now + TimeDelta::from_std(ttl.unwrap_or(Duration::from_secs(720 * 3600))).unwrap_or_default();
    let failed = !errors.is_empty();
    super::update(state, BACKUPS, ns, name, |o| {
        let spec = &mut o["spec"];
        spec["storageLocation"] = json!(location);
        if ttl.is_none() {
            spec["ttl"] = json!(duration::DEFAULT_TTL);
        }
        for (field, default) in [
            ("itemOperationTimeout", duration::DEFAULT_ITEM_OPERATION_TIMEOUT),
            ("csiSnapshotTimeout", duration::DEFAULT_CSI_SNAPSHOT_TIMEOUT),
        ] {
            if duration::field(&spec[field]).ok().flatten().is_none() {
                spec[field] = json!(default);
            }
        }
        for field in ["defaultVolumesToFsBackup", "snapshotMoveData"] {
            if spec[field].is_null() {
                spec[field] = json!(false);
            }
        }
        o["metadata"]["labels"][STORAGE_LOCATION_LABEL] = json!(label_value(&location));
        let annotations = &mut o["metadata"]["annotations"];
        annotations["velero.io/source-cluster-k8s-gitversion"] = json!(format!("v{MAJOR}.{MINOR}.0-firedrill.sim"));
        annotations["velero.io/source-cluster-k8s-major-version"] = json!(MAJOR);
        annotations["velero.io/source-cluster-k8s-minor-version"] = json!(MINOR);
        annotations["velero.io/resource-timeout"] = json!("10m0s");
        let status = &mut o["status"];
        status["version"] = json!(1);
        status["formatVersion"] = json!(FORMAT_VERSION);
        status["expiration"] = json!(stamp(expiration));
        if failed {
            status["phase"] = json!("FailedValidation");
            status["validationErrors"] = json!(errors);
        } else {
            status["phase"] = json!("InProgress");
            status["startTimestamp"] = json!(stamp(now));
        }
    })?;
    if failed {
        return Ok(None);
    }
    state.forget(started_key);
    remember(state, started_key, tokio::time::Instant::now());
    Ok(Some(state.timings.velero_after))
}

/// What Velero refuses in a backup's filters.
fn filter_errors(spec: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let list = |f: &str| strings(&spec[f]);
    let old = ["includedResources", "excludedResources"].iter().any(|f| !list(f).is_empty())
        || !spec["includeClusterResources"].is_null();
    let scoped = [
        "includedClusterScopedResources",
        "excludedClusterScopedResources",
        "includedNamespaceScopedResources",
        "excludedNamespaceScopedResources",
    ]
    .iter()
    .any(|f| !list(f).is_empty());
    if old && scoped {
        errors.push("include-resources, exclude-resources and include-cluster-resources are old filter parameters.\ninclude-cluster-scoped-resources, exclude-cluster-scoped-resources, include-namespace-scoped-resources and exclude-namespace-scoped-resources are new filter parameters.\nThey cannot be used together".to_string());
    }
    for e in validate_lists(&list("includedResources"), &list("excludedResources")) {
        errors.push(format!("Invalid included/excluded resource lists: {e}"));
    }
    for e in validate_lists(&list("includedClusterScopedResources"), &list("excludedClusterScopedResources")) {
        errors.push(format!("Invalid cluster-scoped included/excluded resource lists: {e}"));
    }
    for e in validate_lists(&list("includedNamespaceScopedResources"), &list("excludedNamespaceScopedResources")) {
        errors.push(format!("Invalid namespace-scoped included/excluded resource lists: {e}"));
    }
    for e in validate_lists(&list("includedNamespaces"), &list("excludedNamespaces")) {
        errors.push(format!("Invalid included/excluded namespace lists: {e}"));
    }
    errors.extend(both_selectors(spec, "backup"));
    if let Err(e) = Labels::from_spec(spec) {
        errors.push(format!("invalid label selector: {e}"));
    }
    errors
}

/// Collects and uploads a backup whose time has come, and writes how it ended.
fn finish(state: &SimState, backup: &Value) -> Result<(), ApiError> {
    let ns = backup["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = backup["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let location = backup["spec"]["storageLocation"].as_str().unwrap_or_default();
    let collection = collect(state, &backup["spec"]);
    let now = state.store.clock.now();
    let finished = finished(backup, &collection, now);
    let outcome = match get(state, LOCATIONS, ns, location) {
        Err(e) => Err(format!("error getting backup storage location: {}", e.message)),
        Ok(bsl) => upload(state, &bsl, &finished, &collection, now).map_err(|e| e.to_string()),
    };
    let status = match outcome {
        Ok(()) => {
            tracing::info!(backup = %format!("{ns}/{name}"), items = collection.items.len(), phase = %finished["status"]["phase"], "backup finished");
            finished["status"].clone()
        }
        Err(reason) => {
            tracing::info!(backup = %format!("{ns}/{name}"), error = %reason, "backup failed");
            let mut status = backup["status"].clone();
            status["phase"] = json!("Failed");
            status["failureReason"] = json!(reason);
            status["completionTimestamp"] = json!(stamp(now));
            status
        }
    };
    super::update(state, BACKUPS, ns, &name, |o| o["status"] = status)?;
    Ok(())
}

/// The Backup as it ends: phase, completion time, progress, counts.
fn finished(backup: &Value, collection: &Collection, now: DateTime<Utc>) -> Value {
    let mut done = backup.clone();
    let errors = collection.errors.count();
    let status = &mut done["status"];
    status["phase"] = json!(if errors > 0 { "PartiallyFailed" } else { "Completed" });
    status["completionTimestamp"] = json!(stamp(now));
    status["progress"] = json!({"totalItems": collection.items.len(), "itemsBackedUp": collection.items.len()});
    if errors > 0 {
        status["errors"] = json!(errors);
    }
    done
}

/// Writes the backup to its location in Velero's order, refusing to overwrite one that is there.
fn upload(
    state: &SimState,
    bsl: &Value,
    finished: &Value,
    collection: &Collection,
    now: DateTime<Utc>,
) -> Result<(), LocationError> {
    let opener = super::opener(state, bsl)?;
    let name = finished["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let tarball = format::write_tarball_at(&collection.items, now)?;
    let results = format::results(&collection.errors, &Results::default());
    let list = format::resource_list(&collection.items);
    let full = super::ns_name(finished);
    let time = stamp(now);
    let mut log: String = collection.log.iter().map(|l| format!("time=\"{time}\" {l} backup={full}\n")).collect();
    log.push_str(&format!(
        "time=\"{time}\" level=info msg=\"Backed up a total of {} items\" backup={full}\n",
        collection.items.len()
    ));
    io::run(UPLOAD_LIMIT, async move {
        let loc = opener.open(Profile::Bulk)?;
        let metadata = loc.key(&Layout::default().backup_metadata(&name));
        match loc.store.head(&metadata).await {
            Ok(_) => return Err(LocationError::Io("backup already exists in object storage".to_string())),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(LocationError::Io(format!(
                    "error checking if backup already exists in object storage: {e}"
                )));
            }
        }
        format::upload_backup(&loc, finished, &tarball, &log, &results, &list).await?;
        Ok(())
    })
}

/// A timestamp as `metav1.Time` serializes.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_filters_are_refused_with_velero_s_messages() {
        assert!(filter_errors(&json!({"includedNamespaces": ["shop"]})).is_empty());
        let errors = filter_errors(&json!({"includedNamespaces": ["shop"], "excludedNamespaces": ["shop"]}));
        assert_eq!(
            errors,
            [
                "Invalid included/excluded namespace lists: excludes list cannot contain an item in the includes list: shop"
            ]
        );
        let mixed = filter_errors(&json!({"includedResources": ["pods"], "includedClusterScopedResources": ["nodes"]}));
        assert!(mixed[0].contains("cannot be used together"));
        assert_eq!(filter_errors(&json!({"labelSelector": {}, "orLabelSelectors": [{}]})).len(), 1);
    }

    #[test]
    fn a_finished_backup_counts_its_items_and_errors() {
        let backup = json!({"metadata": {"name": "b"}, "status": {"phase": "InProgress"}});
        let mut c = Collection::default();
        let now = DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let done = finished(&backup, &c, now);
        assert_eq!(done["status"]["phase"], "Completed");
        assert_eq!(done["status"]["progress"], json!({"totalItems": 0, "itemsBackedUp": 0}));
        assert!(done["status"].get("errors").is_none());
        c.errors.velero.push("fail to get the namespace x specified in backup.Spec.IncludedNamespaces".into());
        let done = finished(&backup, &c, now);
        assert_eq!(
            (done["status"]["phase"].as_str(), done["status"]["errors"].as_u64()),
            (Some("PartiallyFailed"), Some(1))
        );
    }
}
