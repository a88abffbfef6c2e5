//! Talking to Velero through its custom resources (`velero.io/v1`, ref §4): is it installed, its
//! Backups and storage locations, and the Restore a run creates, watched (never polled) to a
//! terminal phase and deleted at cleanup.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::scratch::RUN_LABEL;
use super::selection::Backup;
use crate::engine::{DrillError, RunContext};
use crate::measure::human;

/// The phases after which Velero does nothing more to a Restore (what `velero restore create
/// --wait` stops on).
pub const TERMINAL: [&str; 4] = ["Completed", "PartiallyFailed", "Failed", "FailedValidation"];

pub fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

pub fn restores(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource("Restore", "restores"))
}

fn failed(what: String) -> impl FnOnce(kube::Error) -> DrillError {
    move |e| DrillError::Error(format!("{what}: {e}"))
}

fn json_of(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// Checks that the cluster serves Velero's API group.
pub async fn installed(client: &Client) -> Result<(), DrillError> {
    match kube::discovery::group(client, "velero.io").await {
        Ok(g) if g.versions().any(|v| v == "v1") => Ok(()),
        Ok(_) => Err(DrillError::Error("the cluster serves velero.io, but not velero.io/v1: upgrade Velero".into())),
        Err(e) => Err(DrillError::Error(format!(
            "Velero is not installed: the cluster serves no velero.io API group ({e}); install Velero, or point `cluster` at the cluster that runs it"
        ))),
    }
}

/// The Backups in Velero's namespace.
pub async fn backups(client: &Client, ns: &str) -> Result<Vec<Backup>, DrillError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource("Backup", "backups"));
    let list = api.list(&ListParams::default()).await.map_err(failed(format!("cannot list Velero Backups in {ns}")))?;
    Ok(list.items.iter().map(|o| Backup::from_object(&json_of(o))).collect())
}

/// Checks that the storage location `name` exists and is `Available` (Velero refuses a restore
/// from an unavailable one: "The BSL ... is unavailable, cannot retrieve the backup"); returns it.
pub async fn location_available(client: &Client, ns: &str, name: &str) -> Result<Value, DrillError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &resource("BackupStorageLocation", "backupstoragelocations"));
    let bsl = api.get_opt(name).await.map_err(failed(format!("cannot read BackupStorageLocation {ns}/{name}")))?;
    let Some(bsl) = bsl.map(|b| json_of(&b)) else {
        return Err(DrillError::Error(format!(
            "BackupStorageLocation {ns}/{name}, where the backup is stored, does not exist: is Velero installed in {ns} with this location?"
        )));
    };
    match bsl["status"]["phase"].as_str() {
        Some("Available") => Ok(bsl),
        phase => Err(DrillError::Error(format!(
            "BackupStorageLocation {ns}/{name} is {}{}: Velero cannot read the backup from it; fix the location (bucket, credentials) first",
            phase.unwrap_or("not validated yet"),
            bsl["status"]["message"].as_str().map(|m| format!(" ({m})")).unwrap_or_default()
        ))),
    }
}

/// What the drill asks Velero to restore.
pub struct RestoreRequest<'a> {
    pub velero_namespace: &'a str,
    pub name: &'a str,
    pub backup: &'a str,
    pub source: &'a str,
    pub scratch: &'a str,
    pub labels: BTreeMap<String, String>,
}

/// Creates the Restore: only the source namespace, mapped onto the scratch one.
pub async fn create_restore(client: &Client, r: &RestoreRequest<'_>) -> Result<(), DrillError> {
    let manifest = json!({
        "apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": r.name, "namespace": r.velero_namespace, "labels": r.labels},
        "spec": {"backupName": r.backup, "includedNamespaces": [r.source],
                 "namespaceMapping": {r.source: r.scratch}, "restorePVs": true}
    });
    let obj: DynamicObject = serde_json::from_value(manifest).map_err(|e| DrillError::Error(e.to_string()))?;
    // After a 500, a Restore of the same name carrying this run's label is this run's.
    let run = r.labels.get(RUN_LABEL).map(String::as_str).unwrap_or_default();
    crate::cluster::create_labelled(&restores(client, r.velero_namespace), &obj, RUN_LABEL, run)
        .await
        .map_err(failed(format!("cannot create Velero Restore {}/{}", r.velero_namespace, r.name)))?;
    Ok(())
}

/// Waits by watch until the Restore reaches a terminal phase, for at most `limit`. A watch error
/// starts the watch again (`await_condition` gives up on the first, ref §1.14).
pub async fn await_terminal(
    ctx: &RunContext,
    client: &Client,
    ns: &str,
    name: &str,
    limit: Duration,
) -> Result<Value, DrillError> {
    let api = restores(client, ns);
    let terminal = |o: Option<&DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["phase"].as_str().is_some_and(|p| TERMINAL.contains(&p)))
    };
    let watch = async {
        loop {
            match await_condition(api.clone(), name, terminal).await {
                Ok(Some(o)) => return json_of(&o),
                Ok(None) => return Value::Null,
                Err(e) => {
                    tracing::debug!("watching Restore {ns}/{name}: {e}; watching again");
                    ctx.clock.sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    match ctx.clock.timeout(limit, watch).await {
        Ok(Value::Null) => Err(DrillError::Failed(format!("Velero Restore {ns}/{name} was deleted while it ran"))),
        Ok(v) => Ok(v),
        Err(_) => {
            let phase = match api.get_opt(name).await {
                Ok(Some(o)) => o.data["status"]["phase"].as_str().unwrap_or("New").to_string(),
                Ok(None) => "gone".into(),
                Err(e) => format!("unreadable ({e})"),
            };
            Err(DrillError::Failed(format!(
                "Velero did not finish Restore {ns}/{name} within {} (restoreTimeout); it is {phase}: is the Velero server running?",
                human(limit)
            )))
        }
    }
}

/// Deletes the Restore if it carries `label` = `value`. Velero keeps the restored objects: only
/// the Restore object (and its logs in the bucket, through its finalizer) goes.
pub async fn delete_restore(
    client: &Client,
    ns: &str,
    name: &str,
    label: &str,
    value: &str,
) -> Result<String, DrillError> {
    let api = restores(client, ns);
    let Some(r) = api.get_opt(name).await.map_err(failed(format!("cannot read Restore {ns}/{name}")))? else {
        return Ok(format!("Restore {ns}/{name} does not exist: nothing to delete"));
    };
    if r.metadata.labels.as_ref().and_then(|l| l.get(label)).map(String::as_str) != Some(value) {
        return Ok(format!("Restore {ns}/{name} does not carry this run's {label} label: left as it is"));
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(format!("deleted Velero Restore {ns}/{name}")),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            Ok(format!("Restore {ns}/{name} does not exist: nothing to delete"))
        }
        Err(e) => Err(DrillError::Error(format!("cannot delete Restore {ns}/{name}: {e}"))),
    }
}
