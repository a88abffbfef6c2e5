//! The `pdb-check` drill: reads the cluster's nodes, pods, PDBs and workloads, reports what is
//! wrong with the disruption budgets and what draining each node (and all of them in turn) would
//! do, and fails when findings at or above `failOn` exist. Read-only: it creates nothing, so its
//! claim is empty and its cleanup has nothing to undo.
//!
//! The drill is a thin adapter: [`analysis`] holds the pure core.

pub mod analysis;
mod findings;
mod index;
mod selector;
pub mod spec;
mod whatif;

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tracing::instrument;

use crate::cluster::Retries;
use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::measure::Check;
use crate::plan::Timeouts;
use analysis::{Finding, Inventory, Report, Severity};
pub use spec::{Params, Spec, validate};

pub const KIND: &str = "pdb-check";

/// Listing a large cluster takes a while; the analysis itself takes well under a second.
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    preflight: Duration::from_secs(120),
    setup: Duration::from_secs(10),
    act: Duration::from_secs(60),
    wait: Duration::from_secs(10),
    verify: Duration::from_secs(10),
    cleanup: Duration::from_secs(10),
};

/// Findings logged one per line at most; the record's details hold all of them.
const LOGGED_FINDINGS: usize = 10;

pub struct PdbCheck {
    params: Params,
    inventory: Option<Inventory>,
    report: Option<Report>,
    ignored: usize,
}

impl PdbCheck {
    pub fn new(params: Params) -> Self {
        Self { params, inventory: None, report: None, ignored: 0 }
    }
}

/// How many objects of each kind were read.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    nodes: usize,
    pods: usize,
    pdbs: usize,
    deployments: usize,
    statefulsets: usize,
    replicasets: usize,
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    crate::drills::severity::count(findings.iter().map(|f| f.severity), severity)
}

#[async_trait]
impl Drill for PdbCheck {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn planned_changes(&self) -> Vec<String> {
        vec![
            "nothing: lists nodes, pods, PodDisruptionBudgets, Deployments, StatefulSets and ReplicaSets (read-only)"
                .into(),
        ]
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn preflight(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let client = self.params.cluster.connect(ctx, Retries::Client).await?;
        ctx.waiting_for("the cluster's nodes, pods, PDBs and workloads");
        let inv = Inventory::load(&client)
            .await
            .map_err(|e| DrillError::Error(format!("cannot list the objects pdb-check reads: {e}")))?;
        ctx.detail(
            "inventory",
            Counts {
                nodes: inv.nodes.len(),
                pods: inv.pods.len(),
                pdbs: inv.pdbs.len(),
                deployments: inv.deployments.len(),
                statefulsets: inv.statefulsets.len(),
                replicasets: inv.replicasets.len(),
            },
        );
        ctx.mark("inventory-loaded");
        self.inventory = Some(inv);
        Ok(())
    }

    fn claim(&mut self, _ctx: &RunContext) -> Result<Claim, DrillError> {
        Ok(serde_json::json!({}))
    }

    #[instrument(skip_all, fields(drill = KIND, run_id = %ctx.run_id))]
    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let inv = self
            .inventory
            .take()
            .ok_or_else(|| DrillError::Error("act ran before preflight loaded the inventory".into()))?;
        let mut report = analysis::analyse(&inv, &self.params.scope, self.params.what_if);
        let before = report.findings.len();
        report.findings.retain(|f| !self.params.ignore.iter().any(|i| i.matches(f)));
        self.ignored = before - report.findings.len();
        ctx.mark("analysed");
        for f in report.findings.iter().take(LOGGED_FINDINGS) {
            let line = format!("{} in {}: {}", f.code, f.namespace, f.message);
            // Findings below `failOn` do not fail the run; they are its warnings.
            if f.severity < self.params.fail_on {
                ctx.warn(if f.severity == Severity::Warning { line } else { format!("{line} ({})", f.severity.name()) })
            } else {
                ctx.log(format!("{} {line}", f.severity.name()))
            }
        }
        if report.findings.len() > LOGGED_FINDINGS {
            ctx.log(format!("... and {} more findings (see the record)", report.findings.len() - LOGGED_FINDINGS));
        }
        ctx.detail("findings", &report.findings);
        ctx.detail(
            "findingCounts",
            serde_json::json!({
                "critical": count(&report.findings, Severity::Critical),
                "warning": count(&report.findings, Severity::Warning),
                "info": count(&report.findings, Severity::Info),
                "ignored": self.ignored,
            }),
        );
        if self.params.what_if {
            ctx.detail("whatIf", &report.what_if);
            if let Some(r) = &report.rolling_drain {
                if !r.completes {
                    ctx.warn(format!(
                        "a rolling drain of every node would not complete: {} cannot be drained",
                        r.blocked_nodes.join(", ")
                    ));
                }
                ctx.detail("rollingDrain", r);
            }
        }
        self.report = Some(report);
        Ok(())
    }

    async fn wait(&mut self, _ctx: &RunContext) -> Result<(), DrillError> {
        Ok(())
    }

    async fn verify(&mut self, _ctx: &RunContext) -> Result<Vec<Check>, DrillError> {
        let report = self.report.as_ref().ok_or_else(|| DrillError::Error("verify ran before the analysis".into()))?;
        let named: Vec<(Severity, String)> =
            report.findings.iter().map(|f| (f.severity, format!("{} in {}", f.code, f.namespace))).collect();
        let checks = crate::drills::severity::threshold_checks(&named, self.params.fail_on, "findings");
        Ok(checks)
    }
}

/// Removes what a run claimed: pdb-check claims nothing, so there is nothing to do.
pub async fn cleanup(_claim: &Claim, _ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    Ok(Vec::new())
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
