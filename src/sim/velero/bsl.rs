//! The BackupStorageLocation controller: validates a location when it is new, when its spec or
//! its credentials change, and every `validationFrequency`, writing `status.phase`
//! (`Available`/`Unavailable`), `lastValidationTime` and `message` as Velero's
//! `backup_storage_location_controller.go` does; and syncs an Available location's backups into
//! the cluster every `backupSyncPeriod` (see [`super::sync`]).
//!
//! Velero validates and syncs every minute by default; the simulator defaults to
//! [`VALIDATION_FREQUENCY`] and [`SYNC_PERIOD`] so that rehearsals need not wait, and honours
//! the location's own fields (`0s` turns the periodic work off, as in Velero).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::location;
use super::{LOCATIONS, duration, get, io, recalled, remember, sync, update};
use crate::sim::controllers::pods::rtype;
use crate::sim::controllers::{Key, Requeue};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::store::Profile;

/// How often a location is validated when it does not say (Velero: 1 minute).
pub const VALIDATION_FREQUENCY: Duration = Duration::from_secs(10);
/// How often an Available location's backups are synced when it does not say (Velero: 1 minute).
pub const SYNC_PERIOD: Duration = Duration::from_secs(2);
/// How long validation may take: a location that does not answer in time is Unavailable.
const VALIDATION_LIMIT: Duration = Duration::from_secs(20);

/// Validates and syncs location `key` when due; asks to be called again when the next is due.
pub fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    let bsl = get(state, LOCATIONS, ns, name)?;
    if bsl["metadata"].get("deletionTimestamp").is_some() {
        return Ok(None);
    }
    let validation = period(&bsl["spec"]["validationFrequency"], VALIDATION_FREQUENCY);
    let sync_period = period(&bsl["spec"]["backupSyncPeriod"], SYNC_PERIOD);
    let validated_key = format!("velero/bsl/{ns}/{name}/validated/{}", fingerprint(state, &bsl));
    let synced_key = format!("velero/bsl/{ns}/{name}/synced");
    let now = Instant::now();
    let phase = bsl["status"]["phase"].as_str().unwrap_or_default().to_string();
    let validated = recalled(state, &validated_key);
    let due = |last: Option<Instant>, every: Option<Duration>| match (last, every) {
        (None, _) => true,
        (Some(at), Some(every)) => now.duration_since(at) >= every,
        (Some(_), None) => false,
    };

    let mut available = phase == "Available";
    if phase.is_empty() || due(validated, validation) {
        let outcome = validate(state, &bsl);
        available = outcome.is_ok();
        let stamp = state.store.clock.stamp();
        update(state, LOCATIONS, ns, name, |o| {
            o["status"]["lastValidationTime"] = json!(stamp);
            match &outcome {
                Ok(()) => {
                    o["status"]["phase"] = json!("Available");
                    if let Some(s) = o["status"].as_object_mut() {
                        s.remove("message");
                    }
                }
                Err(e) => {
                    o["status"]["phase"] = json!("Unavailable");
                    o["status"]["message"] = json!(format!("BackupStorageLocation {name:?} is unavailable: {e}"));
                }
            }
        })?;
        if let Err(e) = &outcome
            && phase != "Unavailable"
        {
            tracing::info!(location = %format!("{ns}/{name}"), error = %e, "backup storage location is unavailable");
        }
        remember(state, &validated_key, now);
    }

    if available && sync_period.is_some() && due(recalled(state, &synced_key), sync_period) {
        if let Err(e) = sync::run(state, &bsl) {
            tracing::debug!(location = %format!("{ns}/{name}"), error = %e, "backup sync failed; trying again later");
        }
        let stamp = state.store.clock.stamp();
        update(state, LOCATIONS, ns, name, |o| o["status"]["lastSyncedTime"] = json!(stamp))?;
        remember(state, &synced_key, now);
    }

    let after = |last: Option<Instant>, every: Option<Duration>| {
        every.map(|e| (last.unwrap_or(now) + e).saturating_duration_since(Instant::now()))
    };
    let next = [
        after(recalled(state, &validated_key), validation),
        if available { after(recalled(state, &synced_key), sync_period) } else { None },
    ]
    .into_iter()
    .flatten()
    .min();
    Ok(next.map(|d| d.max(Duration::from_millis(50))))
}

/// A period field: absent or unreadable is `default`, `0s` is never.
fn period(v: &Value, default: Duration) -> Option<Duration> {
    match v {
        Value::Null => Some(default),
        v => duration::field(v).unwrap_or(Some(default)),
    }
}

/// What validation depends on: the spec and the credentials Secret's revision.
fn fingerprint(state: &SimState, bsl: &Value) -> String {
    let secret = bsl["spec"]["credential"]["name"].as_str().map(|secret| {
        let ns = bsl["metadata"]["namespace"].as_str().unwrap_or_default();
        state
            .store
            .get(&rtype(state, "", "secrets"), ns, secret)
            .map(|s| s["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    });
    let text = json!({"spec": bsl["spec"], "secret": secret}).to_string();
    crate::sim::controllers::pods::short_hash(&json!(text), 12)
}

/// Opens the location and checks it as Velero's `IsValid` does; the error is the message.
pub fn validate(state: &SimState, bsl: &Value) -> Result<(), String> {
    let opener = super::opener(state, bsl).map_err(|e| e.to_string())?;
    let opened = &opener;
    io::run(VALIDATION_LIMIT, async move {
        let loc = opened.open(Profile::Records)?;
        location::validate(&loc).await
    })
    .map_err(|e| opener.scrub(e))
}

/// The locations in `ns` whose credentials are Secret `secret`.
pub fn using_secret(state: &SimState, ns: &str, secret: &str) -> Vec<Key> {
    super::all(state, LOCATIONS, ns)
        .iter()
        .filter(|b| b["spec"]["credential"]["name"] == secret)
        .map(|b| Key::new(LOCATIONS, ns, b["metadata"]["name"].as_str().unwrap_or_default()))
        .collect()
}

/// The location a backup in `ns` uses: the one it names, or the one marked `default: true`, or
/// Velero's server default `default`. Also says whether the name came from the server.
pub fn chosen(state: &SimState, ns: &str, named: &str) -> (String, bool) {
    if !named.is_empty() {
        return (named.to_string(), false);
    }
    let marked = super::all(state, LOCATIONS, ns)
        .iter()
        .find(|b| b["spec"]["default"] == true)
        .and_then(|b| b["metadata"]["name"].as_str().map(str::to_string));
    (marked.unwrap_or_else(|| "default".to_string()), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_default_and_zero_turns_them_off() {
        assert_eq!(period(&Value::Null, SYNC_PERIOD), Some(SYNC_PERIOD));
        assert_eq!(period(&json!("0s"), SYNC_PERIOD), None);
        assert_eq!(period(&json!("30s"), SYNC_PERIOD), Some(Duration::from_secs(30)));
        assert_eq!(period(&json!("soon"), SYNC_PERIOD), Some(SYNC_PERIOD));
    }
}
