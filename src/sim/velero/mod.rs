//! The Velero server stand-in: the controllers of `velero.io/v1` BackupStorageLocations, Backups,
//! Schedules and Restores, writing and reading Velero's real format in real object storage.
//!
//! It behaves like a Velero 1.1x server for what disaster-recovery drills do: a location is
//! validated and synced, a backup collects objects from the simulated cluster and uploads them in
//! Velero's layout, a schedule creates backups from its template, and a restore downloads a
//! backup (one this simulator wrote, or one a real Velero wrote) and re-creates its objects, after
//! which the simulator's workload controllers bring them up. Every namespace is treated as its own
//! Velero install: a Backup finds its location, and a Restore its Backup, in its own namespace.
//!
//! All four kinds are one controller, named `velero` (the name `stalledControllers` uses), so a
//! long restore delays backups as the single worker of each Velero controller would. Status is
//! written through the main resource: Velero's CRDs have no status subresource.
//!
//! It must not change the bytes of the format (that is [`format`]'s) and does no volume
//! snapshots, file-system backups, hooks or plugin operations.

pub mod backup;
pub mod bsl;
pub mod collect;
pub mod crontab;
pub mod duration;
pub mod filter;
pub mod io;
pub mod items;
pub mod restore;
pub mod restorer;
pub mod schedule;
pub mod sync;

pub use crate::velero::{format, location};

/// The opener of a BackupStorageLocation, with its credentials Secret read from the simulator.
pub fn opener(state: &SimState, bsl: &Value) -> Result<location::Opener, location::LocationError> {
    let secret = location::credential(bsl).and_then(|r| {
        state.store.get(&crate::sim::controllers::pods::rtype(state, "", "secrets"), &r.namespace, &r.name).ok()
    });
    location::opener(bsl, secret.as_deref())
}

use std::time::Duration;

use serde_json::Value;

use super::controllers::{Controller, Key, Requeue, keys_of};
use super::server::SimState;
use super::status::ApiError;
use super::store::{Event, EventKind, Obj, Part};

/// The API group of Velero's custom resources.
pub const GROUP: &str = "velero.io";
/// Storage keys of the types this stand-in reconciles.
pub const LOCATIONS: &str = "velero.io/backupstoragelocations";
pub const BACKUPS: &str = "velero.io/backups";
pub const SCHEDULES: &str = "velero.io/schedules";
pub const RESTORES: &str = "velero.io/restores";

/// Labels Velero sets (`pkg/apis/velero/v1/labels_annotations.go`).
pub const STORAGE_LOCATION_LABEL: &str = "velero.io/storage-location";
pub const SCHEDULE_NAME_LABEL: &str = "velero.io/schedule-name";
pub const BACKUP_NAME_LABEL: &str = "velero.io/backup-name";
pub const RESTORE_NAME_LABEL: &str = "velero.io/restore-name";
pub const EXCLUDE_FROM_BACKUP_LABEL: &str = "velero.io/exclude-from-backup";

/// The Velero controller of a simulated cluster.
pub fn controller() -> Controller {
    Controller {
        name: "velero",
        interests,
        keys,
        reconcile,
        resync: Duration::from_secs(30),
        // Schedules are due by the simulated clock.
        follows_clock: true,
    }
}

fn keys(state: &SimState) -> Vec<Key> {
    ["backupstoragelocations", "schedules", "backups", "restores"]
        .into_iter()
        .flat_map(|plural| keys_of(state, GROUP, plural))
        .collect()
}

fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    match e.type_key.as_str() {
        LOCATIONS | SCHEDULES | RESTORES if e.kind != EventKind::Deleted => vec![Key::of(e)],
        BACKUPS => {
            let mut keys = Vec::new();
            if e.kind != EventKind::Deleted {
                keys.push(Key::of(e));
            }
            // A schedule waits for its backups to leave New and InProgress.
            if let Some(schedule) = e.object["metadata"]["labels"][SCHEDULE_NAME_LABEL].as_str() {
                keys.push(Key::new(SCHEDULES, &e.namespace, schedule));
            }
            keys
        }
        // A location is validated again when its credentials change.
        "/secrets" => bsl::using_secret(state, &e.namespace, e.object["metadata"]["name"].as_str().unwrap_or_default()),
        _ => Vec::new(),
    }
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let outcome = match key.kind.as_str() {
        LOCATIONS => bsl::reconcile(state, key),
        BACKUPS => backup::reconcile(state, key),
        SCHEDULES => schedule::reconcile(state, key),
        RESTORES => restore::reconcile(state, key),
        _ => Ok(None),
    };
    match outcome {
        // The object is gone: nothing to do (an error would be retried forever).
        Err(e) if e.is_not_found() => Ok(None),
        other => other,
    }
}

/// Changes an object of one of Velero's types through the main resource (status included, as
/// Velero's CRDs have no status subresource). Nothing is written when nothing changed.
pub fn update(
    state: &SimState,
    type_key: &str,
    ns: &str,
    name: &str,
    change: impl FnOnce(&mut Value),
) -> Result<Obj, ApiError> {
    let t = state.store.registry.by_key(type_key).ok_or_else(|| ApiError::new(404, "NotFound", type_key))?;
    state.store.mutate(&t, ns, name, Part::Main, false, |old| {
        let mut new = old.clone();
        change(&mut new);
        Ok(Some(new))
    })
}

/// The object `ns/name` of a type given by its storage key.
pub fn get(state: &SimState, type_key: &str, ns: &str, name: &str) -> Result<Obj, ApiError> {
    let t = state.store.registry.by_key(type_key).ok_or_else(|| ApiError::new(404, "NotFound", type_key))?;
    state.store.get(&t, ns, name)
}

/// Every object of a type in `ns`.
pub fn all(state: &SimState, type_key: &str, ns: &str) -> Vec<Obj> {
    match state.store.registry.by_key(type_key) {
        Some(t) => state.store.all(&t, Some(ns)),
        None => Vec::new(),
    }
}

/// The instant remembered under `key`, if any (unlike [`SimState::since`], nothing is stored).
pub fn recalled(state: &SimState, key: &str) -> Option<tokio::time::Instant> {
    state.memo.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied()
}

/// Remembers `at` under `key`.
pub fn remember(state: &SimState, key: &str, at: tokio::time::Instant) {
    state.memo.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), at);
}

/// A label value Velero writes for a name: the name itself, or when longer than 63 characters
/// its first 57 and the first 6 hex digits of its SHA-256 (`label.GetValidName`).
pub fn label_value(name: &str) -> String {
    use sha2::{Digest, Sha256};
    const MAX: usize = 63;
    if name.len() <= MAX {
        return name.to_string();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let mut cut = MAX - 6;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &name[..cut], &hash[..6])
}

/// The strings of a JSON array (anything else is empty).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// `ns/name` of an object.
pub fn ns_name(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_become_valid_label_values_as_velero_makes_them() {
        assert_eq!(label_value("nightly-20260501020000"), "nightly-20260501020000");
        let long = "a".repeat(70);
        let value = label_value(&long);
        assert_eq!(value.len(), 63);
        assert!(value.starts_with(&"a".repeat(57)));
        assert_eq!(value, label_value(&long), "stable");
        assert_ne!(&value[57..], "aaaaaa");
    }
}
