//! The analysis core of pdb-check: objects in, findings and what-if drains out. Everything here
//! but [`Inventory::load`] is pure (no client, no clock), so it is tested without a cluster and
//! benchmarked on synthetic inventories. The node-drain drill uses [`drain_what_if`] to pick a
//! node that is safe to drain.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde::Serialize;

pub use super::findings::{Finding, FindingCode, ObjectRef, Severity};
use super::index::Index;
pub use super::whatif::{Blocker, NodeWhatIf, RollingDrain, rolling_drain};

/// Everything the analysis reads, as listed from the cluster.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
    pub replicasets: Vec<ReplicaSet>,
}

/// Objects listed per request: large clusters are read in pages, as kubectl does.
const PAGE: u32 = 500;

async fn list_all<K>(api: Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

impl Inventory {
    /// Lists everything from the cluster (all namespaces), the six lists concurrently.
    pub async fn load(client: &kube::Client) -> Result<Self, kube::Error> {
        let c = client;
        let (nodes, pods, pdbs, deployments, statefulsets, replicasets) = tokio::try_join!(
            list_all(Api::<Node>::all(c.clone())),
            list_all(Api::<Pod>::all(c.clone())),
            list_all(Api::<PodDisruptionBudget>::all(c.clone())),
            list_all(Api::<Deployment>::all(c.clone())),
            list_all(Api::<StatefulSet>::all(c.clone())),
            list_all(Api::<ReplicaSet>::all(c.clone())),
        )?;
        Ok(Self { nodes, pods, pdbs, deployments, statefulsets, replicasets })
    }
}

/// Which namespaces findings are reported for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Every namespace except `kube-system`.
    AllButKubeSystem,
    /// Exactly these.
    Only(BTreeSet<String>),
}

impl Scope {
    pub fn includes(&self, ns: &str) -> bool {
        match self {
            Scope::AllButKubeSystem => ns != "kube-system",
            Scope::Only(set) => set.contains(ns),
        }
    }
}

/// Findings and what-ifs of one inventory.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Most severe first.
    pub findings: Vec<Finding>,
    /// Per node, in inventory order (empty when the what-if is off).
    pub what_if: Vec<NodeWhatIf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_drain: Option<RollingDrain>,
}

/// Analyses an inventory: the findings in `scope`, and with `what_if` the drain of every node and
/// a rolling drain of all of them. The what-if covers every namespace, as a real drain does.
pub fn analyse(inv: &Inventory, scope: &Scope, what_if: bool) -> Report {
    let ix = Index::build(inv);
    let findings = super::findings::findings(&ix, &|ns| scope.includes(ns));
    if !what_if {
        return Report { findings, ..Report::default() };
    }
    let nodes = ix.what_if_all();
    let rolling = rolling_drain(&nodes);
    Report { findings, what_if: nodes, rolling_drain: Some(rolling) }
}

/// Simulates draining `node`. Indexes the inventory for this one question: to ask about many
/// nodes, use [`analyse`].
pub fn drain_what_if(inv: &Inventory, node: &str) -> NodeWhatIf {
    Index::build(inv).what_if(node)
}
