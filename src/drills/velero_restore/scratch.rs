//! The scratch namespace a backup is restored into: its name, the guard against taking over a
//! namespace that is not this run's, its creation (labelled and annotated as firedrill's, with a
//! ResourceQuota), and its deletion at cleanup with what is stuck when it does not go.
//!
//! It never deletes a namespace without this run's label, nor a PersistentVolume that Velero did
//! not label as restored by this run's Restore.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, ResourceQuota};
use kube::api::{DeleteParams, ListParams};
use kube::runtime::conditions::is_deleted;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde_json::json;

use crate::clock::Timestamp;
use crate::cluster::create_labelled;
use crate::engine::{DrillError, RunContext};
use crate::measure::human;

/// The label naming the run that created an object; cleanup deletes only what carries it.
pub const RUN_LABEL: &str = "firedrill.dev/run-id";
/// The label saying firedrill manages the object.
pub const OWNER_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotations: why the namespace exists, the run, and when it may be deleted by anyone.
pub const PURPOSE: &str = "firedrill.dev/purpose";
pub const RUN_ANNOTATION: &str = "firedrill.dev/run-id";
pub const EXPIRES: &str = "firedrill.dev/expires-at";
/// The label Velero puts on what a Restore created.
pub const RESTORE_LABEL: &str = "velero.io/restore-name";
const QUOTA: &str = "firedrill-scratch";

/// `fd-<drill>-<last 8 characters of the run id>`, at most 63 characters.
pub fn name_for(drill: &str, run_id: &str) -> String {
    let tail: String = run_id.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    let tail = &tail[tail.len().saturating_sub(8)..];
    let room = 63 - "fd-".len() - 1 - tail.len();
    let drill: String = drill.chars().take(room).collect();
    format!("fd-{}-{tail}", drill.trim_end_matches('-'))
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> DrillError {
    move |e| DrillError::Error(format!("{what}: {e}"))
}

fn labels_of(ns: &Namespace) -> BTreeMap<String, String> {
    ns.metadata.labels.clone().unwrap_or_default()
}

/// Refuses (`Aborted`) a scratch namespace that exists and is not this run's.
pub async fn check_free(client: &Client, name: &str, run_id: &str) -> Result<(), DrillError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = api.get_opt(name).await.map_err(api_error(format!("cannot read namespace {name}")))? else {
        return Ok(());
    };
    let labels = labels_of(&ns);
    let whose = match labels.get(RUN_LABEL) {
        Some(r) if r == run_id => return Ok(()),
        Some(r) => format!("firedrill run {r}'s"),
        None => "not firedrill's".to_string(),
    };
    Err(DrillError::Aborted(format!(
        "the scratch namespace {name} already exists and is {whose}: nothing was restored into it; set `scratchNamespace` to a name that does not exist, or delete it if it is left over"
    )))
}

/// Creates the scratch namespace and its ResourceQuota.
pub async fn create(
    client: &Client,
    ctx: &RunContext,
    name: &str,
    quota: &BTreeMap<String, String>,
    expires: Timestamp,
) -> Result<(), DrillError> {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name,
            "labels": {RUN_LABEL: ctx.run_id, OWNER_LABEL: "firedrill"},
            "annotations": {PURPOSE: "velero-restore drill scratch namespace; deleted by the run's cleanup",
                            RUN_ANNOTATION: ctx.run_id, EXPIRES: expires.to_string()}}
    }))
    .map_err(|e| DrillError::Error(e.to_string()))?;
    match create_labelled(&Api::<Namespace>::all(client.clone()), &ns, RUN_LABEL, &ctx.run_id).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(DrillError::Aborted(format!(
                "the scratch namespace {name} appeared since preflight: another run or person took the name; nothing was restored"
            )));
        }
        Err(e) => return Err(DrillError::Error(format!("cannot create the scratch namespace {name}: {e}"))),
    }
    ctx.log(format!("created scratch namespace {name}"));
    let rq: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": QUOTA, "namespace": name, "labels": {RUN_LABEL: ctx.run_id, OWNER_LABEL: "firedrill"}},
        "spec": {"hard": quota}
    }))
    .map_err(|e| DrillError::Error(format!("the quota is not a ResourceQuota's `hard`: {e}")))?;
    create_labelled(&Api::<ResourceQuota>::namespaced(client.clone(), name), &rq, RUN_LABEL, &ctx.run_id)
        .await
        .map_err(api_error(format!("cannot create ResourceQuota {name}/{QUOTA}")))?;
    Ok(())
}

/// Why a namespace is still there: its finalizers and what its conditions say.
fn stuck(ns: &Namespace) -> String {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    let mut why = vec![format!("phase {}", ns.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default())];
    if !finalizers.is_empty() {
        why.push(format!("finalizers [{}]", finalizers.join(", ")));
    }
    if let Some(meta) = &ns.metadata.finalizers
        && !meta.is_empty()
    {
        why.push(format!("metadata.finalizers [{}]", meta.join(", ")));
    }
    for c in ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default() {
        if c.status == "True" {
            why.push(format!("{}: {}", c.type_, c.message.unwrap_or_default()));
        }
    }
    why.join("; ")
}

/// Deletes the scratch namespace if it carries `run_id`'s label and annotation, and waits up to
/// `limit` for it to be gone; then deletes the PersistentVolumes Velero restored for it with
/// `restore` (their reclaim policy may be `Retain`, which would keep them forever).
pub async fn delete(
    client: &Client,
    ctx: &RunContext,
    name: &str,
    run_id: &str,
    restore: &str,
    limit: Duration,
) -> Result<Vec<String>, DrillError> {
    let mut done = Vec::new();
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(name).await.map_err(api_error(format!("cannot read namespace {name}")))? {
        None => done.push(format!("namespace {name} does not exist: nothing to delete")),
        Some(ns) => {
            let label = labels_of(&ns).get(RUN_LABEL).cloned();
            let annotation = ns.metadata.annotations.as_ref().and_then(|a| a.get(RUN_ANNOTATION)).cloned();
            if label.as_deref() != Some(run_id) || annotation.as_deref() != Some(run_id) {
                done.push(format!(
                    "namespace {name} does not carry this run's {RUN_LABEL} label and annotation: left as it is"
                ));
                return Ok(done);
            }
            let uid = ns.metadata.uid.clone().unwrap_or_default();
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(DrillError::Error(format!("cannot delete namespace {name}: {e}"))),
            }
            let gone = async {
                while let Err(e) = await_condition(api.clone(), name, is_deleted(&uid)).await {
                    tracing::debug!("watching namespace {name} go: {e}; watching again");
                    ctx.clock.sleep(Duration::from_millis(100)).await;
                }
            };
            if ctx.clock.timeout(limit, gone).await.is_err() {
                let why = match api.get_opt(name).await {
                    Ok(Some(ns)) => stuck(&ns),
                    Ok(None) => "gone now".into(),
                    Err(e) => format!("unreadable: {e}"),
                };
                return Err(DrillError::Error(format!(
                    "deleted namespace {name}, but it is still there after {} (deleteTimeout): {why}",
                    human(limit)
                )));
            }
            done.push(format!("deleted scratch namespace {name}"));
        }
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{RESTORE_LABEL}={restore}"));
    let restored = pvs.list(&lp).await.map_err(api_error("cannot list PersistentVolumes".into()))?;
    for pv in restored.items {
        let claim_ns = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).and_then(|c| c.namespace.clone());
        if claim_ns.as_deref() != Some(name) {
            continue;
        }
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        match pvs.delete(&pv_name, &DeleteParams::default()).await {
            Ok(_) => done.push(format!("deleted PersistentVolume {pv_name}, restored by {restore} for {name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(DrillError::Error(format!("cannot delete PersistentVolume {pv_name}: {e}"))),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_name_holds_the_drill_and_the_run_and_fits_a_namespace() {
        let run = "019a8f2e-7c4b-7d10-9a3e-5b2c1d0e9f8a";
        assert_eq!(name_for("payments", run), "fd-payments-1d0e9f8a");
        let long = name_for(&"a".repeat(70), run);
        assert_eq!(long.len(), 63);
        assert!(crate::drills::velero_restore::spec::is_dns_label(&long), "{long}");
        let dash = name_for(&format!("{}-b", "a".repeat(50)), run);
        assert!(crate::drills::velero_restore::spec::is_dns_label(&dash), "{dash}");
    }
}
