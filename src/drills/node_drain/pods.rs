//! Which pods a drain evicts, and what the Eviction API says about them: kubectl's pod filters
//! (ref §3.2), the workload that owns a pod, the PDBs that select it, and the PDB a 429 names.
//! Pure functions over Kubernetes objects: no client, no clock.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

/// kubectl's options for the filters.
#[derive(Debug, Clone, Copy)]
pub struct Filters {
    pub ignore_daemon_sets: bool,
    pub delete_empty_dir_data: bool,
    pub force: bool,
}

/// What the filters decide for one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Evict,
    /// Left on the node (DaemonSet-managed, mirror pods).
    Ignore(&'static str),
    /// Evicted, with a warning (local storage, no controller).
    EvictWarn(&'static str),
    /// Blocks the whole drain until the option is given.
    Refuse(&'static str),
}

const DAEMONSET_REFUSED: &str = "DaemonSet-managed Pods (set `ignoreDaemonSets: true` to leave them)";
const LOCAL_REFUSED: &str = "Pods with local storage (set `deleteEmptyDirData: true` to evict them, losing that data)";
const UNMANAGED_REFUSED: &str =
    "Pods that declare no controller (set `force: true` to evict them; nothing recreates them)";

/// `namespace/name` of a pod.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn controller(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))
}

/// Whether the pod finished (`Succeeded` or `Failed`).
pub fn terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// kubectl's filters in kubectl's order; the first that is not "okay" decides.
pub fn classify(pod: &Pod, f: Filters) -> Disposition {
    let finished = terminal(pod);
    if !finished && controller(pod).is_some_and(|c| c.kind == "DaemonSet" && c.api_version.starts_with("apps/")) {
        return if f.ignore_daemon_sets {
            Disposition::Ignore("DaemonSet-managed")
        } else {
            Disposition::Refuse(DAEMONSET_REFUSED)
        };
    }
    if pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror")) {
        return Disposition::Ignore("mirror (static) pod");
    }
    if finished {
        return Disposition::Evict;
    }
    let empty_dir =
        pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()));
    let mut warn = None;
    if empty_dir {
        if !f.delete_empty_dir_data {
            return Disposition::Refuse(LOCAL_REFUSED);
        }
        warn = Some("deleting Pods with local storage");
    }
    if controller(pod).is_none() {
        if !f.force {
            return Disposition::Refuse(UNMANAGED_REFUSED);
        }
        warn = Some("deleting Pods that declare no controller");
    }
    warn.map_or(Disposition::Evict, Disposition::EvictWarn)
}

/// The filters applied to every pod of a node.
#[derive(Debug, Default)]
pub struct Selection {
    pub evict: Vec<Pod>,
    /// `namespace/name` → why it stays.
    pub ignored: BTreeMap<String, &'static str>,
    /// Warning → pods.
    pub warnings: BTreeMap<&'static str, Vec<String>>,
    /// Refusal → pods.
    pub refused: BTreeMap<&'static str, Vec<String>>,
}

impl Selection {
    pub fn of(pods: Vec<Pod>, f: Filters) -> Self {
        let mut s = Self::default();
        for pod in pods {
            match classify(&pod, f) {
                Disposition::Evict => s.evict.push(pod),
                Disposition::Ignore(why) => {
                    s.ignored.insert(key(&pod), why);
                }
                Disposition::EvictWarn(w) => {
                    s.warnings.entry(w).or_default().push(key(&pod));
                    s.evict.push(pod);
                }
                Disposition::Refuse(r) => s.refused.entry(r).or_default().push(key(&pod)),
            }
        }
        s
    }

    /// Why the drain cannot start, as kubectl says it: `cannot evict <what>: ns/pod, ...`.
    pub fn refusal(&self) -> Option<String> {
        let parts: Vec<String> =
            self.refused.iter().map(|(why, pods)| format!("cannot evict {why}: {}", pods.join(", "))).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The controller a pod belongs to, as `(kind, name)` (a ReplicaSet still to be resolved to
/// its Deployment).
pub fn owner(pod: &Pod) -> Option<(String, String)> {
    controller(pod).map(|c| (c.kind.clone(), c.name.clone()))
}

/// A workload whose pods were displaced.
pub use crate::drills::workloads::Workload;

/// Whether `selector` selects `labels` (a missing selector selects nothing, `{}` everything).
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(s) = selector else { return false };
    let by_labels = s.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// `namespace/name` of the PDBs in the pod's namespace that select it.
pub fn pdbs_of<'a>(pod: &Pod, pdbs: impl IntoIterator<Item = &'a PodDisruptionBudget>) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let mut names: Vec<String> = pdbs
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| selects(p.spec.as_ref().and_then(|s| s.selector.as_ref()), labels))
        .map(|p| format!("{ns}/{}", p.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    names.sort();
    names
}

/// The PDB a 429's cause names: "The disruption budget <name> needs ..." (ref §2.2 step 5).
pub fn blocking_pdb(status: &kube::core::Status) -> Option<String> {
    let causes = status.details.as_ref()?.causes.iter();
    causes
        .filter(|c| c.reason == "DisruptionBudget")
        .find_map(|c| c.message.strip_prefix("The disruption budget ")?.split_whitespace().next().map(str::to_string))
}

/// The cause's message of a 429, for the record ("needs 3 healthy pods and has 3 currently").
pub fn block_message(status: &kube::core::Status) -> String {
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.iter().find(|c| c.reason == "DisruptionBudget"))
        .map_or_else(|| status.message.clone(), |c| c.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut p = json!({"metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}]},
            "spec": {"containers": []}, "status": {"phase": "Running"}});
        json_patch::merge(&mut p, &extra);
        serde_json::from_value(p).unwrap()
    }

    const ALL: Filters = Filters { ignore_daemon_sets: true, delete_empty_dir_data: true, force: true };
    const NONE: Filters = Filters { ignore_daemon_sets: false, delete_empty_dir_data: false, force: false };

    #[test]
    fn the_filters_follow_kubectl() {
        let ds = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "a", "uid": "u", "controller": true}]}});
        assert_eq!(classify(&pod(ds.clone()), ALL), Disposition::Ignore("DaemonSet-managed"));
        assert_eq!(classify(&pod(ds), NONE), Disposition::Refuse(DAEMONSET_REFUSED));
        let mirror =
            json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}, "ownerReferences": null}});
        assert_eq!(classify(&pod(mirror), NONE), Disposition::Ignore("mirror (static) pod"));
        let local = json!({"spec": {"volumes": [{"name": "s", "emptyDir": {}}]}});
        assert_eq!(classify(&pod(local.clone()), NONE), Disposition::Refuse(LOCAL_REFUSED));
        assert_eq!(classify(&pod(local), ALL), Disposition::EvictWarn("deleting Pods with local storage"));
        let bare = json!({"metadata": {"ownerReferences": null}});
        assert_eq!(classify(&pod(bare.clone()), NONE), Disposition::Refuse(UNMANAGED_REFUSED));
        assert_eq!(
            classify(&pod(bare.clone()), ALL),
            Disposition::EvictWarn("deleting Pods that declare no controller")
        );
        let done = json!({"metadata": {"ownerReferences": null}, "status": {"phase": "Succeeded"}});
        assert_eq!(classify(&pod(done), NONE), Disposition::Evict, "finished pods are removed as kubectl does");
        assert_eq!(classify(&pod(json!({})), NONE), Disposition::Evict);
        let s = Selection::of(vec![pod(bare)], NONE);
        assert_eq!(s.refusal().unwrap(), format!("cannot evict {UNMANAGED_REFUSED}: shop/p"));
    }

    #[test]
    fn pdbs_are_matched_by_labels_and_expressions() {
        let pdb = |name: &str, sel: serde_json::Value| -> PodDisruptionBudget {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"}, "spec": {"selector": sel}}))
                .unwrap()
        };
        let pdbs = [
            pdb("by-label", json!({"matchLabels": {"app": "web"}})),
            pdb("by-expr", json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]})),
            pdb("other", json!({"matchLabels": {"app": "api"}})),
            pdb("absent", json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})),
        ];
        assert_eq!(pdbs_of(&pod(json!({})), &pdbs), ["shop/absent", "shop/by-expr", "shop/by-label"]);
        let none: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": "nil", "namespace": "shop"}, "spec": {}})).unwrap();
        assert!(pdbs_of(&pod(json!({})), [&none]).is_empty(), "a PDB without a selector selects nothing");
    }

    #[test]
    fn a_429_names_its_pdb() {
        let status: kube::core::Status = serde_json::from_value(json!({"status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 9 healthy pods and has 9 currently"}]}}))
        .unwrap();
        assert_eq!(blocking_pdb(&status).as_deref(), Some("web"));
        assert_eq!(block_message(&status), "The disruption budget web needs 9 healthy pods and has 9 currently");
    }
}
