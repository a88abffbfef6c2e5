//! The static findings: what is wrong with the disruption budgets as they are, each with its
//! severity, a stable code, the objects involved and what to do. Pure, over an [`Index`].

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::index::{Index, PdbInfo, WorkloadKind};
use super::selector::Selector;

pub use crate::drills::severity::Severity;

/// What a finding is about: a stable code to filter on.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// A Deployment or StatefulSet with more than one replica that no PDB covers.
    MissingPdb,
    /// A PDB whose selector matches no pod (or that has no selector, or an invalid one).
    PdbSelectsNothing,
    /// A PDB whose budget allows no disruption even with every pod Ready.
    PdbNeverAllowsDisruption,
    /// Pods selected by more than one PDB: the Eviction API refuses them with HTTP 500.
    PodsUnderSeveralPdbs,
    /// A PDB at the default `unhealthyPodEvictionPolicy` while some of its pods are not Ready.
    UnhealthyPolicyDefaultWithUnhealthyPods,
    /// A single-replica workload under a PDB.
    SingleReplicaWithPdb,
}

impl FindingCode {
    pub const ALL: [FindingCode; 6] = [
        FindingCode::MissingPdb,
        FindingCode::PdbSelectsNothing,
        FindingCode::PdbNeverAllowsDisruption,
        FindingCode::PodsUnderSeveralPdbs,
        FindingCode::UnhealthyPolicyDefaultWithUnhealthyPods,
        FindingCode::SingleReplicaWithPdb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingCode::MissingPdb => "missing-pdb",
            FindingCode::PdbSelectsNothing => "pdb-selects-nothing",
            FindingCode::PdbNeverAllowsDisruption => "pdb-never-allows-disruption",
            FindingCode::PodsUnderSeveralPdbs => "pods-under-several-pdbs",
            FindingCode::UnhealthyPolicyDefaultWithUnhealthyPods => "unhealthy-policy-default-with-unhealthy-pods",
            FindingCode::SingleReplicaWithPdb => "single-replica-with-pdb",
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An object a finding names, in the finding's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Pods named in one finding at most; the message gives the full count.
const MAX_PODS_NAMED: usize = 20;

/// One problem found.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    pub code: FindingCode,
    pub namespace: String,
    /// PDBs first, then workloads, then pods.
    pub objects: Vec<ObjectRef>,
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    /// `Kind/name` of each object, for tests and logs.
    pub fn object_names(&self) -> Vec<String> {
        self.objects.iter().map(ToString::to_string).collect()
    }
}

fn obj(kind: &str, name: &str) -> ObjectRef {
    ObjectRef { kind: kind.to_string(), name: name.to_string() }
}

fn pdb_ref(p: &PdbInfo) -> ObjectRef {
    obj("PodDisruptionBudget", p.name)
}

/// Every finding in the namespaces `in_scope` accepts, most severe first.
pub fn findings(ix: &Index, in_scope: &dyn Fn(&str) -> bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut covered = vec![false; ix.workloads.len()];
    for p in &ix.pdbs {
        p.workloads.iter().for_each(|&w| covered[w as usize] = true);
    }
    for (w, is_covered) in ix.workloads.iter().zip(&covered) {
        if *is_covered || w.replicas < 2 || w.kind == WorkloadKind::ReplicaSet || !in_scope(w.ns) {
            continue;
        }
        out.push(Finding {
            severity: Severity::Warning,
            code: FindingCode::MissingPdb,
            namespace: w.ns.to_string(),
            objects: vec![obj(w.kind.name(), w.name)],
            message: format!(
                "{} {} has {} replicas and no PodDisruptionBudget: a drain or a node upgrade may evict all of them at once",
                w.kind.name(),
                w.name,
                w.replicas
            ),
            fix: "add a PodDisruptionBudget selecting its pods, e.g. `maxUnavailable: 1`".into(),
        });
    }
    for p in ix.pdbs.iter().filter(|p| in_scope(p.ns)) {
        pdb_findings(ix, p, &mut out);
    }
    overlaps(ix, in_scope, &mut out);
    out.sort_by(|a, b| {
        (b.severity, &a.namespace, a.code, &a.objects).cmp(&(a.severity, &b.namespace, b.code, &b.objects))
    });
    out
}

fn pdb_findings(ix: &Index, p: &PdbInfo, out: &mut Vec<Finding>) {
    let finding = |severity, code, objects, message: String, fix: &str| Finding {
        severity,
        code,
        namespace: p.ns.to_string(),
        objects,
        message,
        fix: fix.to_string(),
    };
    let selects_nothing = match &p.selector {
        Selector::Nothing => Some("has no selector, so it selects no pod".to_string()),
        Selector::Invalid(why) => Some(format!("has an invalid selector ({why}), which the eviction handler ignores")),
        Selector::All(_) if p.pods.is_empty() => Some("selects no pod".to_string()),
        Selector::All(_) => None,
    };
    if let Some(why) = selects_nothing {
        out.push(finding(
            Severity::Warning,
            FindingCode::PdbSelectsNothing,
            vec![pdb_ref(p)],
            format!("PodDisruptionBudget {} {why}: it protects nothing", p.name),
            "fix the selector to match the labels of the pods it should protect, or delete the PDB",
        ));
        return;
    }
    let b = &p.budget;
    let workloads: Vec<ObjectRef> =
        p.workloads.iter().map(|&w| &ix.workloads[w as usize]).map(|w| obj(w.kind.name(), w.name)).collect();
    if b.capacity == 1 {
        let mut objects = vec![pdb_ref(p)];
        objects.extend(workloads);
        if b.steady_allowed == 0 {
            out.push(finding(
                Severity::Critical,
                FindingCode::SingleReplicaWithPdb,
                objects,
                format!(
                    "PodDisruptionBudget {} covers a single pod and allows no disruption ({}): that pod can never be evicted, so its node can never be drained",
                    p.name, b.explain
                ),
                "run at least 2 replicas with `maxUnavailable: 1`, or delete the PDB if the app can take the downtime",
            ));
        } else {
            out.push(finding(
                Severity::Info,
                FindingCode::SingleReplicaWithPdb,
                objects,
                format!(
                    "PodDisruptionBudget {} covers a single pod ({}): it cannot keep the app available, every eviction takes it down",
                    p.name, b.explain
                ),
                "run at least 2 replicas if the app must stay up during drains",
            ));
        }
    } else if b.steady_allowed == 0 {
        let mut objects = vec![pdb_ref(p)];
        objects.extend(workloads);
        out.push(finding(
            Severity::Critical,
            FindingCode::PdbNeverAllowsDisruption,
            objects,
            format!(
                "PodDisruptionBudget {} allows no disruption even with all {} pods Ready ({}): every eviction of its pods is refused (429) and draining their nodes never completes",
                p.name, b.capacity, b.explain
            ),
            "allow at least one disruption: `maxUnavailable: 1`, or `minAvailable` below the replica count (percentages round up)",
        ));
    }
    if !p.always_allow_unhealthy {
        let unhealthy: Vec<&str> =
            p.pods.iter().map(|&i| &ix.pods[i as usize]).filter(|pod| pod.unhealthy()).map(|pod| pod.name).collect();
        if !unhealthy.is_empty() {
            let mut objects = vec![pdb_ref(p)];
            objects.extend(unhealthy.iter().take(MAX_PODS_NAMED).map(|n| obj("Pod", n)));
            out.push(finding(
                Severity::Warning,
                FindingCode::UnhealthyPolicyDefaultWithUnhealthyPods,
                objects,
                format!(
                    "PodDisruptionBudget {} leaves unhealthyPodEvictionPolicy at IfHealthyBudget (the default) and {} of its pods are Running but not Ready: while its budget is short they cannot be evicted, and a drain waits for pods that may never become Ready",
                    p.name,
                    unhealthy.len()
                ),
                "set `unhealthyPodEvictionPolicy: AlwaysAllow` (Kubernetes 1.27 and later), and find out why the pods are not Ready",
            ));
        }
    }
}

fn overlaps(ix: &Index, in_scope: &dyn Fn(&str) -> bool, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<&[u32], Vec<u32>> = BTreeMap::new();
    for (i, pdbs) in ix.pod_pdbs.iter().enumerate() {
        if pdbs.len() > 1 && in_scope(ix.pods[i].ns) {
            groups.entry(pdbs.as_slice()).or_default().push(i as u32);
        }
    }
    for (pdbs, pods) in groups {
        let ns = ix.pods[pods[0] as usize].ns;
        let names: Vec<&str> = pdbs.iter().map(|&p| ix.pdbs[p as usize].name).collect();
        let mut objects: Vec<ObjectRef> = names.iter().map(|n| obj("PodDisruptionBudget", n)).collect();
        objects.extend(pods.iter().take(MAX_PODS_NAMED).map(|&p| obj("Pod", ix.pods[p as usize].name)));
        out.push(Finding {
            severity: Severity::Critical,
            code: FindingCode::PodsUnderSeveralPdbs,
            namespace: ns.to_string(),
            objects,
            message: format!(
                "{} pods are selected by {} PodDisruptionBudgets ({}): the Eviction API refuses to evict them (HTTP 500, \"This pod has more than one PodDisruptionBudget\") and drains of their nodes fail",
                pods.len(),
                names.len(),
                names.join(", ")
            ),
            fix: "make the selectors disjoint so that each pod is selected by exactly one PDB".into(),
        });
    }
}
