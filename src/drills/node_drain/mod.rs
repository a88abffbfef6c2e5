//! `node-drain`: drain a node as `kubectl drain` does, measure how long until every displaced
//! workload is available elsewhere, and always uncordon it again.
//!
//! preflight: connect, choose the node (by name, or by selector and strategy), refuse when a
//! guard fails (last Ready nodes, too many nodes down) or kubectl's filters would refuse a pod;
//! probes must pass before anything changes. claim: the node and whether it was schedulable.
//! act (t0): cordon and annotate `firedrill.dev/cordoned-by: <run id>`, evict concurrently,
//! each 429 retried when the blocking PDB changes. wait: the evicted pods gone from the node and
//! the displaced workloads available again. verify: those two, and the probes (during: no
//! failure allowed; after: once). cleanup: uncordon, only a node this run cordoned.

mod budgets;
mod evict;
mod nodes;
mod pods;
mod spec;
mod workloads;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

pub use spec::{Budget, Choice, CountOrShare, Params, Spec, Strategy, validate};

use self::evict::{Method, PodRecord};
use self::nodes::NodeView;
use self::pods::{Filters, Selection, Workload};
use crate::cluster::{Retries, Target};
use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::measure::Check;
use crate::plan::Timeouts;
use crate::probes::{self, Monitor, Tally};

pub const KIND: &str = "node-drain";

/// The annotation naming the run that cordoned a node; cleanup uncordons only such a node.
pub const CORDONED_BY: &str = "firedrill.dev/cordoned-by";

pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    preflight: Duration::from_secs(60),
    setup: Duration::from_secs(30),
    act: Duration::from_secs(600),
    wait: Duration::from_secs(600),
    verify: Duration::from_secs(120),
    cleanup: Duration::from_secs(60),
};

/// What a run changes: written into the intent before the node is cordoned.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DrainClaim {
    pub node: String,
    /// Cordoned before the drill: the drill neither cordons nor uncordons it.
    pub was_unschedulable: bool,
    pub leave_cordoned: bool,
    /// The cluster, so that the janitor reaches it from the claim alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

pub struct NodeDrain {
    params: Params,
    client: Option<Client>,
    node: Option<NodeView>,
    /// The pods evicted, by UID.
    evicted: HashSet<String>,
    workloads: BTreeSet<Workload>,
    monitor: Option<Monitor>,
}

fn api_error(what: &str) -> impl Fn(kube::Error) -> DrillError + '_ {
    move |e| DrillError::Error(format!("{what}: {e}"))
}

impl NodeDrain {
    pub fn new(params: Params) -> Self {
        Self { params, client: None, node: None, evicted: HashSet::new(), workloads: BTreeSet::new(), monitor: None }
    }

    fn client(&self) -> Result<&Client, DrillError> {
        self.client.as_ref().ok_or_else(|| DrillError::Error("preflight did not run".into()))
    }

    fn node(&self) -> Result<&str, DrillError> {
        self.node.as_ref().map(|n| n.name.as_str()).ok_or_else(|| DrillError::Error("no node was chosen".into()))
    }

    fn filters(&self) -> Filters {
        Filters {
            ignore_daemon_sets: self.params.ignore_daemon_sets,
            delete_empty_dir_data: self.params.delete_empty_dir_data,
            force: self.params.force,
        }
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, DrillError> {
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        Ok(Api::<Pod>::all(self.client()?.clone()).list(&lp).await.map_err(api_error("cannot list pods"))?.items)
    }

    /// The node views of every node, with the pods a drain would evict from each.
    async fn views(&self, nodes: &[Node]) -> Result<Vec<NodeView>, DrillError> {
        let all = Api::<Pod>::all(self.client()?.clone()).list(&ListParams::default()).await;
        let all = all.map_err(api_error("cannot list pods"))?.items;
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for p in &all {
            let on = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            if !matches!(pods::classify(p, self.filters()), pods::Disposition::Ignore(_)) {
                *per_node.entry(on).or_default() += 1;
            }
        }
        Ok(nodes
            .iter()
            .map(|n| {
                NodeView::of(n, per_node.get(n.metadata.name.as_deref().unwrap_or_default()).copied().unwrap_or(0))
            })
            .collect())
    }

    /// Picks the node; guards refuse with [`DrillError::Aborted`].
    async fn choose(&self, ctx: &RunContext) -> Result<NodeView, DrillError> {
        let client = self.client()?.clone();
        let all = Api::<Node>::all(client.clone()).list(&ListParams::default()).await;
        let all = all.map_err(api_error("cannot list nodes"))?.items;
        let views = self.views(&all).await?;
        let guard =
            |name: &str| nodes::guard(&views, name, self.params.min_ready_nodes, self.params.max_unavailable_nodes);
        match &self.params.choice {
            Choice::Named(name) => {
                guard(name).map_err(DrillError::Aborted)?;
                Ok(views.iter().find(|v| &v.name == name).cloned().unwrap_or_else(|| unreachable_view(name)))
            }
            Choice::Selected { selector, strategy } => {
                let lp = ListParams::default().labels(selector);
                let matching = Api::<Node>::all(client.clone()).list(&lp).await;
                let matching: HashSet<String> = matching
                    .map_err(api_error(&format!("cannot list nodes matching `{selector}`")))?
                    .items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .collect();
                let mut refused = Vec::new();
                let mut candidates = Vec::new();
                for v in views.iter().filter(|v| matching.contains(&v.name)) {
                    match guard(&v.name) {
                        Ok(()) if v.ready && !v.unschedulable => candidates.push(v.clone()),
                        Ok(()) => refused.push(format!("{}: already unschedulable or NotReady", v.name)),
                        Err(e) => refused.push(e),
                    }
                }
                if candidates.is_empty() {
                    let why = if refused.is_empty() { "no node matches it".to_string() } else { refused.join("; ") };
                    return Err(DrillError::Aborted(format!("no node selected by `{selector}` may be drained: {why}")));
                }
                match strategy {
                    Strategy::Busiest => {
                        Ok(nodes::busiest(&candidates).cloned().unwrap_or_else(|| candidates[0].clone()))
                    }
                    Strategy::Random => {
                        use rand::seq::IndexedRandom;
                        Ok(candidates.choose(&mut rand::rng()).cloned().unwrap_or_else(|| candidates[0].clone()))
                    }
                    Strategy::Safe => self.safest(ctx, &client, selector, candidates).await,
                }
            }
        }
    }

    /// The busiest candidate that pdb-check's what-if says drains completely.
    async fn safest(
        &self,
        ctx: &RunContext,
        client: &Client,
        selector: &str,
        candidates: Vec<NodeView>,
    ) -> Result<NodeView, DrillError> {
        use crate::drills::pdb_check::analysis::{Inventory, drain_what_if};
        let inv = Inventory::load(client).await.map_err(api_error("cannot read the cluster for the what-if"))?;
        let what_ifs: Vec<_> = candidates.iter().map(|c| drain_what_if(&inv, &c.name)).collect();
        ctx.detail("whatIf", &what_ifs);
        let safe: Vec<NodeView> =
            candidates.iter().filter(|c| what_ifs.iter().any(|w| w.node == c.name && w.completes)).cloned().collect();
        match nodes::busiest(&safe) {
            Some(n) => Ok(n.clone()),
            None => {
                let blocked: Vec<String> =
                    what_ifs.iter().map(|w| format!("{} (blocked by {})", w.node, w.blocked_by.join(", "))).collect();
                Err(DrillError::Aborted(format!(
                    "no node selected by `{selector}` would drain completely, pdb-check's what-if says: {}",
                    blocked.join("; ")
                )))
            }
        }
    }

    /// Cordons the node and marks it as this run's; leaves a node someone else cordoned alone.
    async fn cordon(&self, ctx: &RunContext, node: &str) -> Result<bool, DrillError> {
        let api: Api<Node> = Api::all(self.client()?.clone());
        for _ in 0..5 {
            let current = api.get(node).await.map_err(api_error(&format!("cannot read node {node}")))?;
            if nodes::unschedulable(&current) {
                ctx.warn(format!(
                    "node {node} was cordoned by someone else after preflight: it is drained but left cordoned"
                ));
                return Ok(false);
            }
            // The resourceVersion makes the patch fail if the node changed since it was read.
            let patch = serde_json::json!({
                "metadata": {"annotations": {CORDONED_BY: ctx.run_id}, "resourceVersion": current.metadata.resource_version},
                "spec": {"unschedulable": true},
            });
            match api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(DrillError::Error(format!("cannot cordon node {node}: {e}"))),
            }
        }
        Err(DrillError::Error(format!("cannot cordon node {node}: it kept changing under the patch")))
    }

    /// Reports the node's state if it went NotReady; says whether it did.
    async fn note_readiness(&self, ctx: &RunContext, node: &str) -> bool {
        let Some(client) = self.client.clone() else { return false };
        let Ok(Some(n)) = Api::<Node>::all(client).get_opt(node).await else { return false };
        let not_ready = !nodes::ready(&n);
        if not_ready {
            ctx.warn(format!(
                "node {node} is NotReady: its pods could not be confirmed Ready there; the drain went on, and the figures include the time the replacements took elsewhere"
            ));
            ctx.detail("nodeWentNotReady", true);
        }
        not_ready
    }
}

fn unreachable_view(name: &str) -> NodeView {
    NodeView { name: name.to_string(), ready: false, unschedulable: false, evictable: 0 }
}

/// The reason a drain that ran out of time gives: which pods, refused by which PDBs.
fn timeout_reason(limit: Duration, records: &BTreeMap<String, PodRecord>) -> String {
    let mut by_pdb: BTreeMap<String, (Vec<&str>, String)> = BTreeMap::new();
    for (pod, r) in records.iter().filter(|(_, r)| r.result == "pending") {
        let pdb = r.blocked_by.clone().unwrap_or_else(|| "no PodDisruptionBudget (no answer yet)".into());
        let entry = by_pdb.entry(pdb).or_default();
        entry.0.push(pod);
        entry.1 = r.last_refusal.clone().unwrap_or_default();
    }
    let parts: Vec<String> = by_pdb
        .iter()
        .map(|(pdb, (pods, said))| {
            format!("{} refused by PodDisruptionBudget {pdb} ({said}): {}", pods.len(), pods.join(", "))
        })
        .collect();
    format!(
        "evictions did not complete within evictionTimeout ({}): {}",
        crate::measure::human(limit),
        parts.join("; ")
    )
}

#[async_trait]
impl Drill for NodeDrain {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn planned_changes(&self) -> Vec<String> {
        let node = match (&self.node, &self.params.choice) {
            (Some(n), _) => format!("node {}", n.name),
            (None, Choice::Named(n)) => format!("node {n}"),
            (None, Choice::Selected { selector, strategy }) => {
                format!("one node selected by `{selector}` ({strategy:?})")
            }
        };
        let how = if self.params.disable_eviction {
            "delete its pods directly (disableEviction: PodDisruptionBudgets are bypassed)"
        } else {
            "evict its pods through the Eviction API, honouring PodDisruptionBudgets"
        };
        let end = if self.params.leave_cordoned { "leave it cordoned (leaveCordoned)" } else { "uncordon it" };
        vec![format!("cordon {node} and annotate it {CORDONED_BY}"), how.to_string(), end.to_string()]
    }

    async fn preflight(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        self.client = Some(self.params.cluster.connect(ctx, Retries::Caller).await?);
        let node = self.choose(ctx).await?;
        ctx.target("node", &node.name);
        ctx.log(format!("chose node {} ({} pods to evict)", node.name, node.evictable));
        let selection = Selection::of(self.pods_on(&node.name).await?, self.filters());
        if let Some(why) = selection.refusal() {
            return Err(DrillError::Aborted(format!("node {} cannot be drained with these options: {why}", node.name)));
        }
        self.node = Some(node);
        for t in probes::run_once(&self.params.probes, ctx.clock).await {
            if let Some(e) = t.last_error {
                return Err(DrillError::Error(format!(
                    "probe {} fails before the drain ({e}): fix it first, or the drain would be blamed for it",
                    t.name
                )));
            }
        }
        Ok(())
    }

    fn claim(&mut self, _ctx: &RunContext) -> Result<Claim, DrillError> {
        let node = self.node.as_ref().ok_or_else(|| DrillError::Error("no node was chosen".into()))?;
        let claim = DrainClaim {
            node: node.name.clone(),
            was_unschedulable: node.unschedulable,
            leave_cordoned: self.params.leave_cordoned,
            kubeconfig: self.params.cluster.kubeconfig.clone(),
            context: self.params.cluster.context.clone(),
        };
        serde_json::to_value(claim).map_err(|e| DrillError::Error(e.to_string()))
    }

    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let node = self.node()?.to_string();
        let client = self.client()?.clone();
        if !self.params.probes.is_empty() {
            self.monitor = Some(Monitor::start(&self.params.probes, ctx.clock));
        }
        if !self.node.as_ref().is_some_and(|n| n.unschedulable) {
            self.cordon(ctx, &node).await?;
        }
        ctx.mark("cordoned");
        let selection = Selection::of(self.pods_on(&node).await?, self.filters());
        if let Some(why) = selection.refusal() {
            return Err(DrillError::Aborted(format!("node {node} cannot be drained with these options: {why}")));
        }
        for (warning, pods) in &selection.warnings {
            ctx.warn(format!("{warning}: {}", pods.join(", ")));
        }
        ctx.detail("ignoredPods", &selection.ignored);
        self.workloads =
            workloads::displaced(&client, &selection.evict).await.map_err(api_error("cannot read the pods' owners"))?;
        ctx.detail("workloads", &self.workloads);
        self.evicted = selection.evict.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        let method =
            Method { delete: self.params.disable_eviction, grace_period_seconds: self.params.grace_period_seconds };
        if method.delete {
            ctx.warn("disableEviction is set: pods were deleted directly and PodDisruptionBudgets were bypassed");
        }
        ctx.detail("method", if method.delete { "delete" } else { "eviction" });
        let mut namespaces: Vec<String> = selection
            .evict
            .iter()
            .filter_map(|p| p.metadata.namespace.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if method.delete {
            namespaces.clear();
        }
        let (budgets, _watching) = budgets::Budgets::watch(&client, &namespaces)
            .await
            .map_err(api_error("cannot watch PodDisruptionBudgets"))?;
        ctx.waiting_for(&format!("{} pods of {node} to be evicted", selection.evict.len()));
        let limit = self.params.eviction_timeout;
        let records = evict::evict_all(&client, &budgets, ctx.clock, &selection.evict, method, limit).await;
        let attempts: u32 = records.values().map(|r| r.attempts).sum();
        let blocked = records.values().filter(|r| r.blocked_by.is_some()).count();
        ctx.detail(
            "evictions",
            serde_json::json!({"pods": records.len(), "requests": attempts, "podsBlocked": blocked,
                "blockedMsMax": records.values().map(|r| r.blocked_ms).max().unwrap_or(0)}),
        );
        ctx.detail("pods", &records);
        ctx.detail("pdbs", budgets.statuses());
        let failed: Vec<String> = records
            .iter()
            .filter(|(_, r)| r.result == "failed")
            .map(|(p, r)| format!("{p}: {}", r.error.as_deref().unwrap_or("failed")))
            .collect();
        let pending = records.values().any(|r| r.result == "pending");
        let not_ready = self.note_readiness(ctx, &node).await;
        let mut reason = match (failed.is_empty(), pending) {
            (true, false) => {
                ctx.mark("evicted");
                return Ok(());
            }
            (true, true) => timeout_reason(limit, &records),
            (false, false) => format!("{} pods could not be evicted: {}", failed.len(), failed.join("; ")),
            (false, true) => format!(
                "{} pods could not be evicted: {}; and {}",
                failed.len(),
                failed.join("; "),
                timeout_reason(limit, &records)
            ),
        };
        if not_ready && pending {
            reason.push_str(&format!(
                "; node {node} went NotReady, so its pods count as unhealthy and their PDBs refuse them until enough healthy pods run elsewhere (`unhealthyPodEvictionPolicy: AlwaysAllow` lets them go)"
            ));
        }
        Err(DrillError::Failed(reason))
    }

    async fn wait(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let node = self.node()?.to_string();
        let client = self.client()?.clone();
        let names: Vec<String> = self.workloads.iter().map(ToString::to_string).collect();
        ctx.waiting_for(&format!("the evicted pods to leave {node} and {} to be available", names.join(", ")));
        let gone = async {
            workloads::await_gone(&client, &node, self.evicted.clone()).await;
            ctx.mark("pods-gone");
        };
        let ready = async {
            futures::future::join_all(self.workloads.iter().map(|w| workloads::await_available(&client, ctx.clock, w)))
                .await;
            ctx.mark("workloads-ready");
        };
        tokio::join!(gone, ready);
        Ok(())
    }

    async fn verify(&mut self, ctx: &RunContext) -> Result<Vec<Check>, DrillError> {
        let node = self.node()?.to_string();
        let client = self.client()?.clone();
        let mut checks = Vec::new();
        let left = self.pods_on(&node).await?;
        let left: Vec<String> = left
            .iter()
            .filter(|p| p.metadata.uid.as_ref().is_some_and(|u| self.evicted.contains(u)))
            .map(pods::key)
            .collect();
        checks.push(
            Check::new(format!("every evicted pod left {node}"), left.is_empty())
                .saw(0, if left.is_empty() { "0".into() } else { format!("{}: {}", left.len(), left.join(", ")) }),
        );
        for w in &self.workloads {
            match workloads::counts(&client, w).await.map_err(api_error(&format!("cannot read {w}")))? {
                Some((desired, ready, _)) => {
                    checks.push(Check::equal(format!("{w} has all replicas Ready"), desired, ready))
                }
                None => ctx.warn(format!("{w} was deleted during the drill")),
            }
        }
        let during: Vec<Tally> = match self.monitor.take() {
            Some(m) => m.stop().await,
            None => Vec::new(),
        };
        for t in &during {
            let observed = match &t.last_error {
                None => format!("{} checks, none failed", t.checks),
                Some(e) => format!(
                    "{} of {} checks failed (SLO breach), first at {}: {e}",
                    t.failures,
                    t.checks,
                    t.first_failure.map(|f| f.to_string()).unwrap_or_default()
                ),
            };
            checks.push(
                Check::new(format!("probe {} held during the drain", t.name), t.failures == 0)
                    .saw("no failure", observed),
            );
        }
        let after = probes::run_once(&self.params.probes, ctx.clock).await;
        for t in &after {
            checks.push(
                Check::new(format!("probe {} passes after the drain", t.name), t.failures == 0)
                    .saw("pass", t.last_error.clone().unwrap_or_else(|| "pass".into())),
            );
        }
        if !self.params.probes.is_empty() {
            ctx.detail("probes", serde_json::json!({"during": during, "after": after}));
        }
        Ok(checks)
    }
}

/// Uncordons the node named in `claim`, only if this run cordoned it (its `cordoned-by`
/// annotation names the run) and the drill does not say to leave it cordoned. Idempotent.
pub async fn cleanup(claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    let claim: DrainClaim =
        serde_json::from_value(claim.clone()).map_err(|e| DrillError::Error(format!("unreadable claim: {e}")))?;
    let node = &claim.node;
    if claim.was_unschedulable {
        return Ok(vec![format!("node {node} was cordoned before the drill: left cordoned")]);
    }
    let target = Target { kubeconfig: claim.kubeconfig.clone(), context: claim.context.clone() };
    let api: Api<Node> = Api::all(target.client(Retries::Client).await?);
    for _ in 0..5 {
        let Some(current) = api.get_opt(node).await.map_err(api_error(&format!("cannot read node {node}")))? else {
            return Ok(vec![format!("node {node} no longer exists: nothing to uncordon")]);
        };
        let by = current.metadata.annotations.as_ref().and_then(|a| a.get(CORDONED_BY));
        if by != Some(&ctx.run_id) {
            return Ok(vec![format!("node {node} does not carry this run's {CORDONED_BY} annotation: left as it is")]);
        }
        if claim.leave_cordoned {
            return Ok(vec![format!(
                "node {node} left cordoned (leaveCordoned); its {CORDONED_BY} annotation names this run"
            )]);
        }
        let patch = serde_json::json!({
            "metadata": {"annotations": {CORDONED_BY: null}, "resourceVersion": current.metadata.resource_version},
            "spec": {"unschedulable": null},
        });
        match api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(vec![format!("uncordoned node {node}")]),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(DrillError::Error(format!("cannot uncordon node {node}: {e}"))),
        }
    }
    Err(DrillError::Error(format!("cannot uncordon node {node}: it kept changing under the patch")))
}
