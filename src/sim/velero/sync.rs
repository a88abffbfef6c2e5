//! Backup sync, as Velero's `backup_sync_controller.go` does it: the backups an Available
//! location holds (the directories under `backups/`) that have no Backup object in the
//! location's namespace get one, made from their `velero-backup.json` with the storage location
//! set to this one; and Completed Backups of this location whose directory is gone are deleted.
//!
//! This is how a backup written by another cluster, a real Velero, or a test by hand, appears in
//! the simulated cluster and can be restored.

use std::collections::BTreeSet;
use std::time::Duration;

use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use super::format::{self, Layout};
use super::location::LocationError;
use super::{BACKUPS, STORAGE_LOCATION_LABEL, all, io, label_value};
use crate::sim::controllers::pods::rtype;
use crate::sim::server::SimState;
use crate::sim::store::DeleteOptions;
use crate::store::Profile;

/// How long listing and reading the metadata of a location's backups may take.
const SYNC_LIMIT: Duration = Duration::from_secs(60);

/// Syncs the backups of location `bsl` into its namespace.
pub fn run(state: &SimState, bsl: &Value) -> Result<(), LocationError> {
    let ns = bsl["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let location_name = bsl["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let in_cluster: BTreeSet<String> =
        all(state, BACKUPS, &ns).iter().filter_map(|b| b["metadata"]["name"].as_str().map(str::to_string)).collect();
    let opener = super::opener(state, bsl)?;
    let known = in_cluster.clone();
    let (stored, missing) = io::run(SYNC_LIMIT, async move {
        let loc = opener.open(Profile::Records)?;
        let stored = format::list_backups(&loc).await?;
        let mut missing = Vec::new();
        for name in stored.iter().filter(|n| !known.contains(*n)) {
            let key = loc.key(&Layout::default().backup_metadata(name));
            let read = match loc.store.get(&key).await {
                Ok(r) => r.bytes().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match read.and_then(|bytes| metadata(&bytes)) {
                Ok(backup) => missing.push((name.clone(), backup)),
                Err(e) => {
                    tracing::debug!(backup = %name, url = %loc.url, error = %e, "cannot read backup metadata; not synced")
                }
            }
        }
        Ok((stored, missing))
    })?;

    let t = rtype(state, super::GROUP, "backups");
    for (name, backup) in missing {
        let obj = synced(backup, &name, &location_name);
        match state.store.create(&t, &ns, obj, false) {
            Ok(_) => {
                tracing::info!(backup = %format!("{ns}/{name}"), location = %location_name, "synced backup into the cluster")
            }
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => tracing::debug!(backup = %name, error = %e.message, "cannot sync backup into the cluster"),
        }
    }

    // Completed backups of this location that the location no longer holds.
    let stored: BTreeSet<String> = stored.into_iter().collect();
    let label = label_value(&location_name);
    for b in all(state, BACKUPS, &ns) {
        let name = b["metadata"]["name"].as_str().unwrap_or_default();
        let ours = b["metadata"]["labels"][STORAGE_LOCATION_LABEL] == label.as_str();
        if ours && b["status"]["phase"] == "Completed" && !stored.contains(name) {
            match state.store.delete(&t, &ns, name, &DeleteOptions::default()) {
                Ok(_) => {
                    tracing::info!(backup = %format!("{ns}/{name}"), "deleted a backup its location no longer holds")
                }
                Err(e) => tracing::debug!(backup = %name, error = %e.message, "cannot delete orphaned backup"),
            }
        }
    }
    Ok(())
}

/// A `velero-backup.json`, which must be a `velero.io/v1` Backup.
fn metadata(bytes: &[u8]) -> Result<Value, String> {
    let backup: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if backup["apiVersion"] != "velero.io/v1" || backup["kind"] != "Backup" {
        return Err("not a velero.io/v1 Backup".to_string());
    }
    Ok(backup)
}

/// The Backup object to create for a stored backup: as stored, in this location. What the API
/// server assigns is dropped, and so are owner references, whose owners (a Schedule of the
/// cluster that wrote the backup) do not exist here.
fn synced(mut backup: Value, name: &str, location: &str) -> Value {
    if let Some(m) = backup["metadata"].as_object_mut() {
        for f in [
            "namespace",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "ownerReferences",
        ] {
            m.remove(f);
        }
        m.insert("name".into(), json!(name));
    }
    backup["spec"]["storageLocation"] = json!(location);
    backup["metadata"]["labels"][STORAGE_LOCATION_LABEL] = json!(label_value(location));
    backup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_backup_becomes_an_object_of_this_location() {
        let stored = json!({
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "nightly", "namespace": "velero-old", "uid": "u", "resourceVersion": "9",
                         "labels": {"velero.io/storage-location": "old", "team": "a"},
                         "ownerReferences": [{"kind": "Schedule", "name": "s", "uid": "x"}]},
            "spec": {"storageLocation": "old", "includedNamespaces": ["shop"]},
            "status": {"phase": "Completed"}
        });
        let obj = synced(stored, "nightly", "primary");
        assert_eq!(
            obj["metadata"],
            json!({"name": "nightly", "labels": {"velero.io/storage-location": "primary", "team": "a"}})
        );
        assert_eq!(obj["spec"]["storageLocation"], "primary");
        assert_eq!(obj["status"]["phase"], "Completed");
        assert!(metadata(br#"{"apiVersion":"velero.io/v1","kind":"Restore"}"#).is_err());
    }
}
