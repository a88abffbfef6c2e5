//! The inventory indexed once for every question the analysis asks: which workload owns a pod,
//! which PDBs select a pod or a workload's template, which pods run on a node, and each PDB's
//! budget. PDB selectors are filed per namespace under one `(label, value)` pair they require,
//! so a pod is only ever compared with the PDBs of its namespace that could match it (and the
//! few whose selectors cannot be indexed), never with every PDB of the cluster.
//!
//! Pure: borrows the objects, no I/O.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::analysis::Inventory;
use super::selector::Selector;

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The annotation the kubelet puts on the API mirror of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    /// A ReplicaSet no Deployment owns.
    ReplicaSet,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
        }
    }
}

#[derive(Debug)]
pub struct WorkloadInfo<'a> {
    pub kind: WorkloadKind,
    pub ns: &'a str,
    pub name: &'a str,
    pub replicas: i64,
    /// PDBs whose selector matches the pod template's labels.
    pub pdbs: Vec<u32>,
}

#[derive(Debug)]
pub struct PodInfo<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub phase: &'a str,
    pub ready: bool,
    pub terminating: bool,
    pub daemonset: bool,
    pub mirror: bool,
    /// Has a controller owner reference (kubectl's "unreplicated" filter is the opposite).
    pub managed: bool,
    pub workload: Option<u32>,
}

impl PodInfo<'_> {
    /// Running (or Unknown) but not Ready: what `unhealthyPodEvictionPolicy` is about.
    pub fn unhealthy(&self) -> bool {
        !self.ready && !self.terminating && matches!(self.phase, "Running" | "Unknown")
    }

    /// Pods the eviction handler deletes without looking at any PDB.
    pub fn bypasses_budgets(&self) -> bool {
        self.terminating || matches!(self.phase, "Pending" | "Succeeded" | "Failed" | "")
    }
}

/// A PDB's budget worked out against the workloads it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Healthy pods the PDB requires.
    pub desired: i64,
    /// What the controller calls `expectedPods`; no disruption is ever allowed at 0.
    pub expected: i64,
    /// Pods there are when every covered workload is fully up.
    pub capacity: i64,
    /// Disruptions allowed when every covered pod is Ready: what a drain gets per round.
    pub steady_allowed: i64,
    /// The budget in words (`maxUnavailable: 0`, `minAvailable: 90% of 3 = 3`).
    pub explain: String,
}

#[derive(Debug)]
pub struct PdbInfo<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub selector: Selector<'a>,
    /// `unhealthyPodEvictionPolicy: AlwaysAllow`.
    pub always_allow_unhealthy: bool,
    pub pods: Vec<u32>,
    /// Workloads whose template or pods the selector matches.
    pub workloads: Vec<u32>,
    pub budget: Budget,
    /// `(disruptionsAllowed, currentHealthy, desiredHealthy)`: from an up-to-date status, else
    /// computed as the disruption controller would.
    pub now: (i64, i64, i64),
}

#[derive(Default)]
struct Workloads<'a> {
    workloads: Vec<WorkloadInfo<'a>>,
    by_key: HashMap<(WorkloadKind, &'a str, &'a str), u32>,
    templates: Vec<&'a BTreeMap<String, String>>,
}

impl<'a> Workloads<'a> {
    fn add(
        &mut self,
        kind: WorkloadKind,
        meta: &'a ObjectMeta,
        replicas: Option<i32>,
        labels: Option<&'a BTreeMap<String, String>>,
    ) -> u32 {
        let (ns, name) = (meta_ns(meta), meta_name(meta));
        let i = self.workloads.len() as u32;
        self.by_key.insert((kind, ns, name), i);
        self.workloads.push(WorkloadInfo {
            kind,
            ns,
            name,
            replicas: i64::from(replicas.unwrap_or(1)),
            pdbs: Vec::new(),
        });
        self.templates.push(labels.unwrap_or(&NO_LABELS));
        i
    }
}

/// Everything indexed.
#[derive(Debug)]
pub struct Index<'a> {
    pub pods: Vec<PodInfo<'a>>,
    pub pdbs: Vec<PdbInfo<'a>>,
    pub workloads: Vec<WorkloadInfo<'a>>,
    /// For each pod, the PDBs selecting it.
    pub pod_pdbs: Vec<Vec<u32>>,
    pub pods_by_node: HashMap<&'a str, Vec<u32>>,
    /// Node names in inventory order.
    pub nodes: Vec<&'a str>,
}

#[derive(Default)]
struct NamespacePdbs<'a> {
    by_label: HashMap<(&'a str, &'a str), Vec<u32>>,
    scan: Vec<u32>,
}

struct SelectorIndex<'a> {
    by_ns: HashMap<&'a str, NamespacePdbs<'a>>,
}

impl<'a> SelectorIndex<'a> {
    fn build(pdbs: &[PdbInfo<'a>]) -> Self {
        let mut by_ns: HashMap<&'a str, NamespacePdbs<'a>> = HashMap::new();
        for (i, p) in pdbs.iter().enumerate() {
            if !matches!(p.selector, Selector::All(_)) {
                continue;
            }
            let entry = by_ns.entry(p.ns).or_default();
            match p.selector.index_keys() {
                Some(keys) => keys.into_iter().for_each(|k| entry.by_label.entry(k).or_default().push(i as u32)),
                None => entry.scan.push(i as u32),
            }
        }
        Self { by_ns }
    }

    fn matching(&self, pdbs: &[PdbInfo<'a>], ns: &str, labels: &BTreeMap<String, String>) -> Vec<u32> {
        let Some(idx) = self.by_ns.get(ns) else { return Vec::new() };
        let mut out = Vec::new();
        for (k, v) in labels {
            if let Some(cands) = idx.by_label.get(&(k.as_str(), v.as_str())) {
                out.extend(cands.iter().copied().filter(|&c| pdbs[c as usize].selector.matches(labels)));
            }
        }
        out.extend(idx.scan.iter().copied().filter(|&c| pdbs[c as usize].selector.matches(labels)));
        out.sort_unstable();
        out
    }
}

fn meta_ns(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or("default")
}

fn meta_name(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or_default()
}

fn controller(m: &ObjectMeta) -> Option<&OwnerReference> {
    m.owner_references.iter().flatten().find(|o| o.controller == Some(true))
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// An int-or-percent resolved against `total`, rounding up as the disruption controller does for
/// both `minAvailable` and `maxUnavailable` percentages.
pub fn resolve(v: &IntOrString, total: i64) -> Result<i64, String> {
    match v {
        IntOrString::Int(n) => Ok(i64::from(*n)),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("`{s}` is neither a number nor a percentage"))?;
            Ok((pct * total + 99) / 100)
        }
    }
}

fn show(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The budget of `pdb` given the summed scale of the workloads it covers, the number of its pods
/// that have no controller, and how many pods it matches now.
pub fn budget(pdb: &PodDisruptionBudget, scale: i64, unmanaged: i64, matched: i64) -> Budget {
    let spec = pdb.spec.as_ref();
    let capacity = scale + unmanaged;
    let (desired, expected, explain) =
        match (spec.and_then(|s| s.max_unavailable.as_ref()), spec.and_then(|s| s.min_available.as_ref())) {
            (Some(mu), _) => match resolve(mu, scale) {
                Ok(n) => {
                    let how = match mu {
                        IntOrString::String(s) => format!("maxUnavailable: {s} of {scale} = {n}"),
                        IntOrString::Int(_) => format!("maxUnavailable: {n}"),
                    };
                    ((scale - n).max(0), scale, how)
                }
                Err(e) => (0, 0, format!("invalid maxUnavailable: {e}")),
            },
            (None, Some(ma @ IntOrString::Int(n))) => {
                (i64::from(*n), matched.max(capacity), format!("minAvailable: {} with {capacity} pods", show(ma)))
            }
            (None, Some(ma)) => match resolve(ma, scale) {
                Ok(n) => (n, scale, format!("minAvailable: {} of {scale} = {n}", show(ma))),
                Err(e) => (0, 0, format!("invalid minAvailable: {e}")),
            },
            (None, None) => (0, 0, "neither minAvailable nor maxUnavailable is set".to_string()),
        };
    let steady_allowed = if expected <= 0 { 0 } else { (capacity - desired).max(0) };
    Budget { desired, expected, capacity, steady_allowed, explain }
}

impl<'a> Index<'a> {
    pub fn build(inv: &'a Inventory) -> Self {
        let mut table = Workloads::default();
        for d in &inv.deployments {
            let spec = d.spec.as_ref();
            let labels = spec.and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.as_ref());
            table.add(WorkloadKind::Deployment, &d.metadata, spec.and_then(|s| s.replicas), labels);
        }
        for s in &inv.statefulsets {
            let spec = s.spec.as_ref();
            let labels = spec.and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.as_ref());
            table.add(WorkloadKind::StatefulSet, &s.metadata, spec.and_then(|s| s.replicas), labels);
        }
        // ReplicaSets resolve to their Deployment; standalone ones are workloads of their own.
        let mut rs_owner: HashMap<(&'a str, &'a str), u32> = HashMap::new();
        let mut standalone = Vec::new();
        for rs in &inv.replicasets {
            let (ns, name) = (meta_ns(&rs.metadata), meta_name(&rs.metadata));
            match controller(&rs.metadata).filter(|o| o.kind == "Deployment") {
                Some(o) => {
                    if let Some(&w) = table.by_key.get(&(WorkloadKind::Deployment, ns, o.name.as_str())) {
                        rs_owner.insert((ns, name), w);
                    }
                }
                None => standalone.push(rs),
            }
        }
        for rs in standalone {
            let spec = rs.spec.as_ref();
            let labels = spec
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            let (ns, name) = (meta_ns(&rs.metadata), meta_name(&rs.metadata));
            let w = table.add(WorkloadKind::ReplicaSet, &rs.metadata, spec.and_then(|s| s.replicas), labels);
            rs_owner.insert((ns, name), w);
        }
        let Workloads { mut workloads, by_key, templates } = table;
        let mut pods = Vec::with_capacity(inv.pods.len());
        let mut pods_by_node: HashMap<&'a str, Vec<u32>> = HashMap::new();
        for (i, p) in inv.pods.iter().enumerate() {
            let ns = meta_ns(&p.metadata);
            let owner = controller(&p.metadata);
            let workload = owner.and_then(|o| match o.kind.as_str() {
                "ReplicaSet" => rs_owner.get(&(ns, o.name.as_str())).copied(),
                "StatefulSet" => by_key.get(&(WorkloadKind::StatefulSet, ns, o.name.as_str())).copied(),
                _ => None,
            });
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
            if let Some(n) = node {
                pods_by_node.entry(n).or_default().push(i as u32);
            }
            pods.push(PodInfo {
                ns,
                name: meta_name(&p.metadata),
                phase: p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default(),
                ready: pod_ready(p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                daemonset: owner.is_some_and(|o| o.kind == "DaemonSet"),
                mirror: p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)),
                managed: owner.is_some(),
                workload,
            });
        }

        let mut pdbs: Vec<PdbInfo<'a>> = inv
            .pdbs
            .iter()
            .map(|p| PdbInfo {
                ns: meta_ns(&p.metadata),
                name: meta_name(&p.metadata),
                selector: Selector::compile(p.spec.as_ref().and_then(|s| s.selector.as_ref())),
                always_allow_unhealthy: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
                    .is_some_and(|x| x == "AlwaysAllow"),
                pods: Vec::new(),
                workloads: Vec::new(),
                budget: budget(p, 0, 0, 0),
                now: (0, 0, 0),
            })
            .collect();
        let selectors = SelectorIndex::build(&pdbs);
        let mut pod_pdbs = Vec::with_capacity(inv.pods.len());
        for (i, p) in inv.pods.iter().enumerate() {
            let matched = selectors.matching(&pdbs, pods[i].ns, p.metadata.labels.as_ref().unwrap_or(&NO_LABELS));
            for &m in &matched {
                pdbs[m as usize].pods.push(i as u32);
            }
            pod_pdbs.push(matched);
        }
        for (w, labels) in workloads.iter_mut().zip(&templates) {
            w.pdbs = selectors.matching(&pdbs, w.ns, labels);
        }
        for (wi, w) in workloads.iter().enumerate() {
            w.pdbs.iter().for_each(|&p| pdbs[p as usize].workloads.push(wi as u32));
        }
        for (k, pdb) in pdbs.iter_mut().enumerate() {
            pdb.workloads.extend(pdb.pods.iter().filter_map(|&p| pods[p as usize].workload));
            pdb.workloads.sort_unstable();
            pdb.workloads.dedup();
            let scale: i64 = pdb.workloads.iter().map(|&w| workloads[w as usize].replicas).sum();
            let counted = pdb.pods.iter().map(|&p| &pods[p as usize]).filter(|p| !p.terminating);
            let unmanaged = counted.clone().filter(|p| p.workload.is_none()).count() as i64;
            let healthy = counted.clone().filter(|p| p.ready).count() as i64;
            let raw = &inv.pdbs[k];
            pdb.budget = budget(raw, scale, unmanaged, counted.count() as i64);
            pdb.now = current(raw, &pdb.budget, healthy);
        }
        let nodes = inv.nodes.iter().map(|n| meta_name(&n.metadata)).collect();
        Index { pods, pdbs, workloads, pod_pdbs, pods_by_node, nodes }
    }
}

/// `(disruptionsAllowed, currentHealthy, desiredHealthy)` now: the status when the controller has
/// seen the PDB's generation, else what it would compute from the Ready pods.
fn current(pdb: &PodDisruptionBudget, budget: &Budget, healthy: i64) -> (i64, i64, i64) {
    let status = pdb
        .status
        .as_ref()
        .filter(|s| s.observed_generation.is_some_and(|o| pdb.metadata.generation.is_none_or(|g| o >= g)));
    match status {
        Some(s) => (i64::from(s.disruptions_allowed), i64::from(s.current_healthy), i64::from(s.desired_healthy)),
        None => {
            let allowed = if budget.expected <= 0 { 0 } else { (healthy - budget.desired).max(0) };
            (allowed, healthy, budget.desired)
        }
    }
}
