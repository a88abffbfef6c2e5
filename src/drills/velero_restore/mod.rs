//! The `velero-restore` drill: restores a real Velero backup of a namespace into a scratch
//! namespace, waits until the restored workloads are available, verifies them with probes,
//! measures RTO (t0 → verified) and RPO (from the restored canary, else the backup's start time),
//! and deletes everything it created.
//!
//! preflight: connect; Velero installed; choose the backup ([`selection`]) and refuse one older
//! than the RPO target (`Failed`, before anything is created); its storage location Available
//! (else `Error`); with `checkStorage`, its files there agree with it ([`storage`], else
//! `Failed`); room for the restore in the quota and the cluster ([`room`], else `Error`); the
//! scratch namespace free (else `Aborted`). claim: the scratch namespace and
//! the Restore. act: create the namespace (labelled, annotated, with a ResourceQuota) and the
//! Restore. wait: the Restore's terminal phase by watch, then the restored Deployments and
//! StatefulSets available and PVCs Bound, then the canary. verify: the probes. cleanup: the
//! Restore, the namespace, the PVs Velero restored for it ([`scratch`]).
//!
//! Secrets of the restored namespace are never read: probes count them at most.

pub mod canary;
pub mod room;
pub mod scratch;
pub mod selection;
pub mod spec;
pub mod storage;
pub mod velero;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::instrument;

use crate::cluster::{Retries, Target};
use crate::drills::workloads::{self, Workload};
use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::measure::{Check, RecoveryPoint, RpoMethod, human};
use crate::plan::Timeouts;
use crate::probes::{self, Namespaces, Verified};
use selection::Backup;
pub use spec::{Params, Spec, validate};

pub const KIND: &str = "velero-restore";

/// Phase limits; the drill's own `restoreTimeout` and `readyTimeout` bound the wait inside them
/// and give the better reason.
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    preflight: Duration::from_secs(120),
    setup: Duration::from_secs(10),
    act: Duration::from_secs(120),
    wait: Duration::from_secs(3600),
    verify: Duration::from_secs(600),
    cleanup: Duration::from_secs(300),
};

/// The phase limits for these parameters: the wait phase holds `restoreTimeout` and
/// `readyTimeout`, and verify the slowest probe's every attempt (a job probe may take minutes),
/// each with a minute to spare, so that the drill's own limits, which give the better reasons,
/// run out first.
pub fn timeouts(p: &Params) -> Timeouts {
    let slack = Duration::from_secs(60);
    let slowest = p
        .probes
        .iter()
        .map(|probe| probe.timeout * (probe.retries + 1) + probe.interval * probe.retries)
        .max()
        .unwrap_or_default();
    Timeouts {
        wait: DEFAULT_TIMEOUTS.wait.max(p.restore_timeout + p.ready_timeout + slack),
        verify: DEFAULT_TIMEOUTS.verify.max(slowest + slack),
        ..DEFAULT_TIMEOUTS
    }
}

/// What a run creates, for cleanup and the janitor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreClaim {
    pub run_id: String,
    pub namespace: String,
    pub velero_namespace: String,
    pub restore: String,
    #[serde(with = "crate::measure::ms")]
    pub delete_timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

pub struct VeleroRestore {
    params: Params,
    client: Option<Client>,
    backup: Option<Backup>,
    scratch: Option<String>,
    restore_phase: Option<String>,
    ready: Vec<String>,
}

impl VeleroRestore {
    pub fn new(params: Params) -> Self {
        Self { params, client: None, backup: None, scratch: None, restore_phase: None, ready: Vec::new() }
    }

    fn client(&self) -> Result<&Client, DrillError> {
        self.client.as_ref().ok_or_else(|| DrillError::Error("preflight did not run".into()))
    }

    fn scratch(&self) -> Result<String, DrillError> {
        self.scratch.clone().ok_or_else(|| DrillError::Error("claim did not name the scratch namespace".into()))
    }

    fn backup(&self) -> Result<&Backup, DrillError> {
        self.backup.as_ref().ok_or_else(|| DrillError::Error("preflight did not choose a backup".into()))
    }

    /// Waits for the restored workloads and claims; on timeout, `Failed` naming what is not ready.
    async fn await_ready(&mut self, ctx: &RunContext, ns: &str) -> Result<(), DrillError> {
        let client = self.client()?.clone();
        let found = workloads::in_namespace(&client, ns)
            .await
            .map_err(|e| DrillError::Error(format!("cannot list the restored workloads of {ns}: {e}")))?;
        let pvcs: Vec<String> = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| DrillError::Error(format!("cannot list the restored claims of {ns}: {e}")))?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        ctx.waiting_for(&format!(
            "{} restored workload(s) to be available and {} claim(s) Bound in {ns}",
            found.len(),
            pvcs.len()
        ));
        let all = async {
            let w = futures::future::join_all(found.iter().map(|w| workloads::await_available(&client, ctx.clock, w)));
            let p = futures::future::join_all(pvcs.iter().map(|p| workloads::await_bound(&client, ctx.clock, ns, p)));
            futures::join!(w, p);
        };
        if ctx.clock.timeout(self.params.ready_timeout, all).await.is_err() {
            let mut stuck = Vec::new();
            for w in &found {
                match workloads::counts(&client, w).await {
                    Ok(Some((desired, ready, avail))) if ready < desired || avail < desired => {
                        stuck.push(format!("{w}: {avail}/{desired} available, {ready} ready"))
                    }
                    Ok(_) => {}
                    Err(e) => stuck.push(format!("{w}: unreadable ({e})")),
                }
            }
            let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
            for p in &pvcs {
                if let Ok(Some(pvc)) = api.get_opt(p).await {
                    let phase = pvc.status.and_then(|s| s.phase).unwrap_or_else(|| "Pending".into());
                    if phase != "Bound" {
                        stuck.push(format!("PersistentVolumeClaim {ns}/{p}: {phase}"));
                    }
                }
            }
            return Err(DrillError::Failed(format!(
                "the restore completed, but its workloads were not ready within {} (readyTimeout): {}",
                human(self.params.ready_timeout),
                if stuck.is_empty() { "they became ready just now".to_string() } else { stuck.join("; ") }
            )));
        }
        self.ready = found
            .iter()
            .map(Workload::to_string)
            .chain(pvcs.iter().map(|p| format!("PersistentVolumeClaim {ns}/{p}")))
            .collect();
        Ok(())
    }

    /// Reports the recovery point: the restored canary, else the backup's start time.
    async fn recovery_point(&self, ctx: &RunContext, ns: &str) -> Result<(), DrillError> {
        let backup = self.backup()?;
        let canary = canary::read(self.client()?, ns).await;
        let point = match canary {
            Ok(Some(at)) => RecoveryPoint {
                at,
                method: RpoMethod::Canary,
                source: format!("ConfigMap {ns}/{} restored from Backup {}", canary::NAME, backup.name),
            },
            other => {
                let why = match other {
                    Err(e) => e,
                    _ => format!(
                        "no ConfigMap {} was restored (run `firedrill canary` in {})",
                        canary::NAME,
                        self.params.namespace
                    ),
                };
                ctx.warn(format!("RPO from the backup's start time, not from the data: {why}"));
                let at = backup
                    .started
                    .ok_or_else(|| DrillError::Error(format!("Backup {} has no startTimestamp", backup.name)))?;
                RecoveryPoint {
                    at,
                    method: RpoMethod::BackupMetadata,
                    source: format!("Backup {}/{} status.startTimestamp", self.params.velero_namespace, backup.name),
                }
            }
        };
        ctx.detail("rpoMethod", point.method.name());
        ctx.recovery_point(point);
        Ok(())
    }
}

/// Velero's counts of a Restore, for messages and the record.
fn counts(r: &Value) -> Value {
    let s = &r["status"];
    json!({"phase": s["phase"], "errors": s["errors"].as_u64().unwrap_or(0), "warnings": s["warnings"].as_u64().unwrap_or(0),
           "itemsRestored": s["progress"]["itemsRestored"], "totalItems": s["progress"]["totalItems"],
           "failureReason": s["failureReason"], "validationErrors": s["validationErrors"]})
}

#[async_trait]
impl Drill for VeleroRestore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn planned_changes(&self) -> Vec<String> {
        let p = &self.params;
        let scratch = p.scratch_namespace.clone().unwrap_or_else(|| format!("fd-{}-<run id>", p.drill));
        vec![
            format!("reads Velero Backups and BackupStorageLocations in {}", p.velero_namespace),
            format!(
                "creates namespace {scratch} labelled {}=<run id> with ResourceQuota {:?}, and a Velero Restore in {} mapping {} → {scratch}",
                scratch::RUN_LABEL,
                p.quota,
                p.velero_namespace,
                p.namespace
            ),
            "deletes the Restore, the namespace and the PersistentVolumes restored for it at cleanup".into(),
        ]
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn preflight(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let p = &self.params;
        let client = p.cluster.connect(ctx, Retries::Client).await?;
        velero::installed(&client).await?;
        let backups = velero::backups(&client, &p.velero_namespace).await?;
        let now = ctx.now();
        let refused = |r: selection::Refusal| DrillError::Failed(r.to_string());
        let seed = selection::seed(&ctx.run_id);
        let chosen = selection::choose(&backups, &p.choice, &p.namespace, p.allow_partially_failed, now, seed)
            .map_err(refused)?;
        ctx.target("backup", format!("{}/{}", p.velero_namespace, chosen.name));
        ctx.detail("backup", chosen);
        let age = selection::age(chosen, now, p.rpo_target).map_err(refused)?;
        ctx.log(format!("chose Backup {} ({}, started {} ago)", chosen.name, chosen.phase, human(age)));
        let bsl = velero::location_available(&client, &p.velero_namespace, &chosen.storage_location).await?;
        if let Some(credentials) = p.check_storage {
            let checked = storage::check(&client, &bsl, chosen, &p.namespace, credentials).await?;
            ctx.log(format!(
                "Backup {}'s files in {} agree with it: {} object(s), {} of them in {}",
                chosen.name, checked.location, checked.items, checked.items_in_namespace, p.namespace
            ));
            ctx.detail("storage", checked);
        }
        let room = room::measure(&client, &p.namespace, &p.quota).await?;
        let refused = room::refusals(&room, &p.quota);
        ctx.detail("room", &room);
        if !refused.is_empty() {
            return Err(DrillError::Error(format!(
                "no room for the restore, so nothing was restored: {}",
                refused.join("; ")
            )));
        }
        let scratch = p.scratch_namespace.clone().unwrap_or_else(|| scratch::name_for(&p.drill, &ctx.run_id));
        scratch::check_free(&client, &scratch, &ctx.run_id).await?;
        ctx.target("scratchNamespace", scratch.clone());
        ctx.mark("backup-chosen");
        self.backup = Some(chosen.clone());
        self.scratch = Some(scratch);
        self.client = Some(client);
        Ok(())
    }

    fn claim(&mut self, ctx: &RunContext) -> Result<Claim, DrillError> {
        let ns = self.scratch()?;
        let claim = RestoreClaim {
            run_id: ctx.run_id.clone(),
            restore: ns.clone(),
            namespace: ns,
            velero_namespace: self.params.velero_namespace.clone(),
            delete_timeout: self.params.delete_timeout,
            kubeconfig: self.params.cluster.kubeconfig.clone(),
            context: self.params.cluster.context.clone(),
        };
        serde_json::to_value(claim).map_err(|e| DrillError::Error(e.to_string()))
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let ns = self.scratch()?;
        let client = self.client()?.clone();
        let p = &self.params;
        let expires = ctx.now() + p.restore_timeout + p.ready_timeout + timeouts(p).verify + DEFAULT_TIMEOUTS.cleanup;
        scratch::create(&client, ctx, &ns, &p.quota, expires).await?;
        let backup = self.backup()?.name.clone();
        let request = velero::RestoreRequest {
            velero_namespace: &p.velero_namespace,
            name: &ns,
            backup: &backup,
            source: &p.namespace,
            scratch: &ns,
            labels: BTreeMap::from([
                (scratch::RUN_LABEL.to_string(), ctx.run_id.clone()),
                (scratch::OWNER_LABEL.to_string(), "firedrill".to_string()),
            ]),
        };
        velero::create_restore(&client, &request).await?;
        ctx.mark("restore-created");
        Ok(())
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn wait(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let ns = self.scratch()?;
        let vns = self.params.velero_namespace.clone();
        ctx.waiting_for(&format!("Velero Restore {vns}/{ns} to finish"));
        let restore = velero::await_terminal(ctx, self.client()?, &vns, &ns, self.params.restore_timeout).await?;
        let c = counts(&restore);
        ctx.detail("restore", &c);
        let phase = restore["status"]["phase"].as_str().unwrap_or_default().to_string();
        self.restore_phase = Some(phase.clone());
        let (errors, warnings) = (c["errors"].as_u64().unwrap_or(0), c["warnings"].as_u64().unwrap_or(0));
        let logs = format!("`velero restore logs {ns} -n {vns}` says why");
        match phase.as_str() {
            "Completed" => {}
            "PartiallyFailed" if self.params.allow_partially_failed => ctx.warn(format!(
                "Velero Restore {vns}/{ns} ended PartiallyFailed with {errors} error(s) and {warnings} warning(s) (allowed by allowPartiallyFailed); {logs}"
            )),
            "PartiallyFailed" => {
                return Err(DrillError::Failed(format!(
                    "Velero Restore {vns}/{ns} ended PartiallyFailed with {errors} error(s) and {warnings} warning(s); {logs}"
                )));
            }
            "FailedValidation" => {
                return Err(DrillError::Error(format!(
                    "Velero refused Restore {vns}/{ns}: {}",
                    selection_errors(&restore)
                )));
            }
            other => {
                return Err(DrillError::Failed(format!(
                    "Velero Restore {vns}/{ns} ended {other}: {}; {logs}",
                    restore["status"]["failureReason"].as_str().unwrap_or("no failureReason given")
                )));
            }
        }
        ctx.mark("restore-completed");
        self.await_ready(ctx, &ns).await?;
        ctx.mark("workloads-ready");
        self.recovery_point(ctx, &ns).await
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn verify(&mut self, ctx: &RunContext) -> Result<Vec<Check>, DrillError> {
        let ns = self.scratch()?;
        let allow = self.params.allow_partially_failed;
        let phase = self.restore_phase.as_deref().unwrap_or("none");
        let accepted = phase == "Completed" || (allow && phase == "PartiallyFailed");
        let mut checks = vec![
            Check::new("restore phase", accepted)
                .saw(if allow { "Completed or PartiallyFailed" } else { "Completed" }, phase),
            Check::new("restored workloads available", true)
                .saw("all available", format!("{} ready", self.ready.len())),
        ];
        let scope =
            Namespaces { client: self.client()?.clone(), namespace: ns.clone(), source: self.params.namespace.clone() };
        let http = probes::http_client();
        let results: Vec<Verified> = futures::future::join_all(self.params.probes.iter().map(|p| {
            let (p, http, scope) = (p.in_namespace(&ns), http.clone(), scope.clone());
            async move { probes::verify(&p, &http, Some(&scope), ctx.clock).await }
        }))
        .await;
        for r in &results {
            let observed = match &r.error {
                None => format!("passed after {} attempt(s)", r.attempts),
                Some(e) => format!("{e} ({} attempt(s))", r.attempts),
            };
            checks.push(Check::new(format!("probe {}", r.name), r.passed).saw("passes", observed));
        }
        ctx.detail("probes", &results);
        Ok(checks)
    }
}

fn selection_errors(restore: &Value) -> String {
    let errs: Vec<&str> =
        restore["status"]["validationErrors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if errs.is_empty() { "no validationErrors given".into() } else { errs.join("; ") }
}

/// Deletes the Restore and the scratch namespace the claim names (only with this run's label),
/// and the PVs Velero restored for it. Idempotent; what the janitor runs after a crash.
pub async fn cleanup(claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    let claim: RestoreClaim =
        serde_json::from_value(claim.clone()).map_err(|e| DrillError::Error(format!("unreadable claim: {e}")))?;
    let target = Target { kubeconfig: claim.kubeconfig.clone(), context: claim.context.clone() };
    let client = target.client(Retries::Client).await?;
    let mut done = vec![
        velero::delete_restore(&client, &claim.velero_namespace, &claim.restore, scratch::RUN_LABEL, &claim.run_id)
            .await?,
    ];
    done.extend(
        scratch::delete(&client, ctx, &claim.namespace, &claim.run_id, &claim.restore, claim.delete_timeout).await?,
    );
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_and_verify_limits_make_room_for_the_drill_s_own() {
        let file = "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: t\nveleroRestore:\n  namespace: payments\n  restoreTimeout: 2h\n  probes:\n    - name: smoke\n      job: {image: busybox, command: [\"true\"]}\n      timeout: 10m\n      retries: 2\n      interval: 1m\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, file).unwrap();
        let catalog = crate::spec::Catalog::load(&[path]).expect("valid");
        let plan = catalog.drill("t").expect("the drill");
        let crate::drills::DrillParams::VeleroRestore(p) = &plan.params else { panic!("a velero-restore drill") };
        let t = timeouts(p);
        assert_eq!(t.wait, Duration::from_secs(2 * 3600 + 600 + 60), "2h restore + 10m ready + 1m");
        assert_eq!(t.verify, Duration::from_secs(3 * 600 + 2 * 60 + 60), "three 10m attempts, two 1m pauses, 1m");
        assert_eq!(t.preflight, DEFAULT_TIMEOUTS.preflight);
    }

    #[test]
    fn a_claim_round_trips_for_the_janitor() {
        let c = RestoreClaim {
            run_id: "r".into(),
            namespace: "fd-x-r".into(),
            velero_namespace: "velero".into(),
            restore: "fd-x-r".into(),
            delete_timeout: Duration::from_secs(120),
            kubeconfig: None,
            context: None,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["deleteTimeout"], 120_000);
        assert_eq!(serde_json::from_value::<RestoreClaim>(v).unwrap(), c);
    }
}
