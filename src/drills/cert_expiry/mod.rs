//! The `cert-expiry` drill: finds every certificate the cluster, the given files and the given
//! endpoints hold, judges them as they will be at now + `horizon` (expired, expiring, renewal
//! overdue, unmanaged, chain and hostname problems), and optionally rehearses a cert-manager
//! renewal in a scratch namespace. Fails when findings at or above `failOn` exist or the
//! rehearsal fails.
//!
//! preflight: connect, collect the inventory (read-only). claim: the scratch namespace, when
//! there is a rehearsal. act: judge; create the namespace and issuer. wait: issuance and renewal.
//! verify: one check per severity at or above `failOn`, and the rehearsal. cleanup: delete the
//! namespace if it carries this run's label.
//!
//! [`analysis`] is the pure core; [`inventory`], [`endpoint`] and [`rehearsal`] are adapters.
//! Private keys are never parsed, logged or recorded.

pub mod analysis;
pub mod chain;
pub mod endpoint;
pub mod fixtures;
pub mod inventory;
pub mod rehearsal;
pub mod spec;

use std::time::Duration;

use async_trait::async_trait;
use kube::Client;
use tracing::instrument;

use crate::cluster::{Retries, Target};
use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::measure::Check;
use crate::plan::Timeouts;
use analysis::{Finding, Inventory, Severity};
use rehearsal::RehearsalClaim;
pub use spec::{Params, Spec, validate};

pub const KIND: &str = "cert-expiry";

/// Listing and fetching take a while on a large cluster; the rehearsal's own waits are bounded
/// by its `timeout`, twice (issuance, renewal).
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    preflight: Duration::from_secs(180),
    setup: Duration::from_secs(10),
    act: Duration::from_secs(180),
    wait: Duration::from_secs(600),
    verify: Duration::from_secs(10),
    cleanup: Duration::from_secs(120),
};

/// Findings logged one per line at most; the record's details hold all of them.
const LOGGED_FINDINGS: usize = 10;

pub struct CertExpiry {
    params: Params,
    client: Option<Client>,
    inventory: Option<Inventory>,
    findings: Option<Vec<Finding>>,
    namespace: Option<String>,
    /// Why the rehearsal failed (a verdict of `Failed`, reported as a check).
    rehearsal_failure: Option<String>,
    rehearsed: bool,
}

impl CertExpiry {
    pub fn new(params: Params) -> Self {
        Self {
            params,
            client: None,
            inventory: None,
            findings: None,
            namespace: None,
            rehearsal_failure: None,
            rehearsed: false,
        }
    }

    fn client(&self) -> Result<&Client, DrillError> {
        self.client.as_ref().ok_or_else(|| DrillError::Error("preflight did not run".into()))
    }

    /// Keeps a rehearsal failure for verify; passes other errors on.
    fn note(&mut self, r: Result<(), DrillError>, ctx: &RunContext) -> Result<(), DrillError> {
        match r {
            Err(DrillError::Failed(why)) => {
                ctx.warn(format!("renewal rehearsal failed: {why}"));
                self.rehearsal_failure = Some(why);
                Ok(())
            }
            other => other,
        }
    }
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    crate::drills::severity::count(findings.iter().map(|f| f.severity), severity)
}

#[async_trait]
impl Drill for CertExpiry {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn planned_changes(&self) -> Vec<String> {
        let mut changes = vec![
            "reads TLS Secrets, cert-manager Certificates, Ingresses, webhook configurations and APIServices; fetches the endpoints' certificates".to_string(),
        ];
        if let Some(r) = &self.params.rehearsal {
            changes.push(format!(
                "creates a scratch namespace firedrill-cert-<run id> labelled {} with {} and a Certificate; deletes it at cleanup",
                rehearsal::RUN_LABEL,
                match &r.issuer_ref {
                    None => "a selfSigned Issuer".to_string(),
                    Some(i) => format!("a reference to {} {}", i.kind, i.name),
                }
            ));
            if r.advance_sim_clock {
                changes.push("advances the simulator's clock to the renewal time (advanceSimClock)".into());
            }
        }
        changes
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn preflight(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let client = self.params.cluster.connect(ctx, Retries::Client).await?;
        ctx.waiting_for("the cluster's certificates, the files and the endpoints");
        let mut inv = Inventory::default();
        let mut counts = inventory::Counts::default();
        inventory::from_cluster(&client, ctx, &mut inv, &mut counts)
            .await
            .map_err(|e| DrillError::Error(format!("cannot list the Secrets cert-expiry reads: {e}")))?;
        inventory::from_files(&self.params, &mut inv, &mut counts);
        inventory::from_endpoints(&self.params, ctx.clock, &mut inv, &mut counts).await;
        counts.certs_parsed = inv.items.iter().filter_map(|i| i.certs.as_ref().ok()).map(Vec::len).sum();
        ctx.detail("inventory", &counts);
        ctx.mark("inventory-loaded");
        self.inventory = Some(inv);
        self.client = Some(client);
        Ok(())
    }

    fn claim(&mut self, ctx: &RunContext) -> Result<Claim, DrillError> {
        if self.params.rehearsal.is_none() {
            return Ok(serde_json::json!({}));
        }
        let namespace = rehearsal::namespace_for(&ctx.run_id);
        self.namespace = Some(namespace.clone());
        let claim = RehearsalClaim {
            namespace,
            kubeconfig: self.params.cluster.kubeconfig.clone(),
            context: self.params.cluster.context.clone(),
        };
        serde_json::to_value(claim).map_err(|e| DrillError::Error(e.to_string()))
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let inv = self
            .inventory
            .take()
            .ok_or_else(|| DrillError::Error("act ran before preflight loaded the inventory".into()))?;
        let findings = analysis::analyse(&inv, ctx.now(), self.params.horizon);
        ctx.mark("analysed");
        for f in findings.iter().take(LOGGED_FINDINGS) {
            let margin = f.margin_days.map(|d| format!(" ({d} days)")).unwrap_or_default();
            let line = format!(
                "{} {}{}: {}{margin}",
                f.code.name(),
                f.object,
                f.field.as_ref().map(|x| format!(" {x}")).unwrap_or_default(),
                f.message
            );
            if f.severity < self.params.fail_on {
                ctx.log(format!("{} {line}", f.severity.name()))
            } else {
                ctx.warn(format!("{line} ({})", f.severity.name()))
            }
        }
        if findings.len() > LOGGED_FINDINGS {
            ctx.log(format!("... and {} more findings (see the record)", findings.len() - LOGGED_FINDINGS));
        }
        ctx.detail("findings", &findings);
        ctx.detail(
            "findingCounts",
            serde_json::json!({
                "critical": count(&findings, Severity::Critical),
                "warning": count(&findings, Severity::Warning),
                "info": count(&findings, Severity::Info),
            }),
        );
        self.findings = Some(findings);
        if let Some(r) = self.params.rehearsal.clone() {
            let ns =
                self.namespace.clone().ok_or_else(|| DrillError::Error("claim did not name the namespace".into()))?;
            let prepared = rehearsal::prepare(self.client()?, ctx, &r, &ns).await;
            self.note(prepared, ctx)?;
        }
        Ok(())
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn wait(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let (Some(r), Some(ns)) = (self.params.rehearsal.clone(), self.namespace.clone()) else { return Ok(()) };
        if self.rehearsal_failure.is_some() {
            return Ok(());
        }
        let outcome = rehearsal::run(self.client()?, ctx, &r, &ns).await;
        self.rehearsed = true;
        let done = outcome.map(|o| {
            ctx.log(format!(
                "rehearsal: issued in {}, renewed in {}; notAfter {} → {}",
                crate::measure::human(o.issuance),
                crate::measure::human(o.renewal),
                o.first_not_after,
                o.renewed_not_after
            ));
            ctx.detail("rehearsal", &o);
        });
        self.note(done, ctx)
    }

    async fn verify(&mut self, _ctx: &RunContext) -> Result<Vec<Check>, DrillError> {
        let findings =
            self.findings.as_ref().ok_or_else(|| DrillError::Error("verify ran before the analysis".into()))?;
        let named: Vec<(Severity, String)> =
            findings.iter().map(|f| (f.severity, format!("{} {}", f.code.name(), f.object))).collect();
        let mut checks = crate::drills::severity::threshold_checks(&named, self.params.fail_on, "certificate findings");
        if self.params.rehearsal.is_some() {
            let observed = match &self.rehearsal_failure {
                Some(why) => why.clone(),
                None if self.rehearsed => "issued and renewed".into(),
                None => "did not run".into(),
            };
            let passed = self.rehearsal_failure.is_none() && self.rehearsed;
            checks.push(Check::new("renewal rehearsal", passed).saw("issued and renewed", observed));
        }
        Ok(checks)
    }
}

/// Deletes the scratch namespace a run claimed, only if it carries the run's label. A run
/// without a rehearsal claims nothing. Idempotent.
pub async fn cleanup(claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    if claim.get("namespace").is_none() {
        return Ok(Vec::new());
    }
    let claim: RehearsalClaim =
        serde_json::from_value(claim.clone()).map_err(|e| DrillError::Error(format!("unreadable claim: {e}")))?;
    let target = Target { kubeconfig: claim.kubeconfig.clone(), context: claim.context.clone() };
    let client = target.client(Retries::Client).await?;
    rehearsal::cleanup(&client, ctx, &claim.namespace).await
}

#[cfg(test)]
mod tests;
