//! Restoring a backup's objects into the simulated cluster, as Velero's `restore.go` does:
//! in Velero's order (custom resource definitions, then the default high priorities — storage
//! classes, volumes, claims, service accounts, secrets, config maps, limit ranges, pods, replica
//! sets, endpoints, services — then every other resource by name, then the low priorities); only
//! what the restore's namespace, resource and label filters select; cluster-scoped objects when
//! `includeClusterResources` is true, or unset and every namespace is restored; into the mapped
//! namespace (`namespaceMapping`), created first from the backed-up Namespace; objects that exist
//! already are skipped with a warning when they differ (`existingResourcePolicy` unset or
//! `none`), patched to the backed-up version (`update`), or merged (service accounts).
//!
//! One deviation, forced by the simulator: Velero re-creates an object owned by a controller
//! (a ReplicaSet of a Deployment, the pods of a ReplicaSet) without its owner reference and lets
//! the restored controller adopt it. The simulator's controllers do not adopt orphans, so such
//! an object is skipped when its controller is restored too, and the controller re-creates it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::filter::{IncludesExcludes, Labels, resolve_resource};
use super::format::{BackupItem, Results};
use super::items;
use crate::sim::controllers::pods::{controller_ref, rtype};
use crate::sim::registry::ResourceType;
use crate::sim::server::SimState;
use crate::sim::store::Part;

/// Resources restored first, in this order (Velero's `defaultRestorePriorities`).
const HIGH_PRIORITIES: [&str; 18] = [
    "customresourcedefinitions",
    "namespaces",
    "storageclasses",
    "volumesnapshotclass.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "secrets",
    "configmaps",
    "limitranges",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
];
/// Resources restored last.
const LOW_PRIORITIES: [&str; 3] = [
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
];

/// What became of one object (Velero's `itemRestoreResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Skipped,
    Failed,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        }
    }
}

/// `(<apiVersion>/<Kind>, namespace, name)`.
type ItemKey = (String, String, String);

/// What a restore did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub warnings: Results,
    pub errors: Results,
    pub restored: BTreeMap<ItemKey, Action>,
    /// Log lines (logrus text format, without the time).
    pub log: Vec<String>,
    /// The namespaces restored into.
    pub namespaces: BTreeSet<String>,
}

impl Outcome {
    /// The restored resource list: `"<apiVersion>/<Kind>"` → sorted `"ns/name(action)"`.
    pub fn resource_list(&self) -> Value {
        let mut list: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((resource, ns, name), action) in &self.restored {
            let entry = if ns.is_empty() { name.clone() } else { format!("{ns}/{name}") };
            list.entry(resource).or_default().push(format!("{entry}({})", action.word()));
        }
        json!(list)
    }

    fn add(results: &mut Results, ns: &str, message: String) {
        if ns.is_empty() {
            results.cluster.push(message);
        } else {
            results.namespaces.entry(ns.to_string()).or_default().push(message);
        }
    }

    fn warn(&mut self, ns: &str, message: String) {
        self.log.push(format!("level=warning msg={message:?}"));
        Self::add(&mut self.warnings, ns, message);
    }

    fn fail(&mut self, ns: &str, message: String) {
        self.log.push(format!("level=error msg={message:?}"));
        Self::add(&mut self.errors, ns, message);
    }
}

/// One object chosen for restoring.
struct Selected<'a> {
    t: Arc<ResourceType>,
    item: &'a BackupItem,
    /// The namespace it is restored into; empty for cluster-scoped objects.
    target: String,
    /// Its controller is restored too, and re-creates it.
    recreated_by_owner: bool,
}

/// The filters of a restore spec.
pub struct Scope {
    namespaces: IncludesExcludes,
    resources: IncludesExcludes,
    labels: Labels,
    include_cluster: Option<bool>,
    mapping: BTreeMap<String, String>,
}

impl Scope {
    pub fn new(state: &SimState, spec: &Value) -> Self {
        let resolve = |s: &str| resolve_resource(&state.store.registry, s);
        Self {
            namespaces: IncludesExcludes::from_spec(&spec["includedNamespaces"], &spec["excludedNamespaces"]),
            resources: IncludesExcludes::from_spec(&spec["includedResources"], &spec["excludedResources"])
                .resolved(resolve),
            labels: Labels::from_spec(spec).unwrap_or_else(|_| Labels::everything()),
            include_cluster: spec["includeClusterResources"].as_bool(),
            mapping: spec["namespaceMapping"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether namespace `ns` of the cluster may be restored into: a mapping target, or a
    /// selected namespace not mapped elsewhere.
    pub fn may_target(&self, ns: &str) -> bool {
        self.mapping.values().any(|t| t == ns) || (!self.mapping.contains_key(ns) && self.namespaces.should_include(ns))
    }

    fn target(&self, ns: &str) -> String {
        self.mapping.get(ns).cloned().unwrap_or_else(|| ns.to_string())
    }
}

/// The resources in restore order.
fn ordered(state: &SimState, present: &BTreeSet<&str>) -> Vec<String> {
    let resolve = |s: &str| resolve_resource(&state.store.registry, s);
    let high: Vec<String> = HIGH_PRIORITIES.iter().map(|p| resolve(p)).collect();
    let low: Vec<String> = LOW_PRIORITIES.iter().map(|p| resolve(p)).collect();
    let middle = present.iter().filter(|gr| !high.contains(&gr.to_string()) && !low.contains(&gr.to_string()));
    let mut order: Vec<String> = high.to_vec();
    order.extend(middle.map(|s| s.to_string()));
    order.extend(low);
    let mut seen = BTreeSet::new();
    order.retain(|gr| seen.insert(gr.clone()) && present.contains(gr.as_str()));
    order
}

/// Chooses the objects to restore, in order.
fn select<'a>(state: &SimState, scope: &Scope, items: &'a [BackupItem], outcome: &mut Outcome) -> Vec<Selected<'a>> {
    let present: BTreeSet<&str> = items.iter().map(|i| i.group_resource.as_str()).collect();
    let mut chosen = Vec::new();
    for gr in ordered(state, &present) {
        if !scope.resources.should_include(&gr) || gr == "namespaces" {
            continue;
        }
        let Some(t) = state.store.registry.all().into_iter().find(|t| t.group_resource() == gr) else {
            outcome.log.push(format!("level=info msg=\"Skipping restore of resource because it cannot be resolved via discovery\" resource={gr}"));
            continue;
        };
        let mut by_namespace: BTreeMap<Option<&str>, Vec<&BackupItem>> = BTreeMap::new();
        for i in items.iter().filter(|i| i.group_resource == gr) {
            by_namespace.entry(i.namespace.as_deref()).or_default().push(i);
        }
        for (ns, group) in by_namespace {
            let target = match ns {
                Some(ns) if !scope.namespaces.should_include(ns) => continue,
                Some(ns) => scope.target(ns),
                None if scope.include_cluster == Some(false) => continue,
                None if scope.include_cluster.is_none() && !scope.namespaces.include_everything() => continue,
                None => String::new(),
            };
            for item in group.into_iter().filter(|i| scope.labels.matches(&i.object)) {
                chosen.push(Selected { t: t.clone(), item, target: target.clone(), recreated_by_owner: false });
            }
        }
    }
    let controllers: BTreeSet<(String, String, String)> = chosen
        .iter()
        .map(|s| {
            let kind = s.item.object["kind"].as_str().unwrap_or_default().to_string();
            (s.item.namespace.clone().unwrap_or_default(), kind, s.item.name.clone())
        })
        .collect();
    for s in &mut chosen {
        if let Some(owner) = controller_ref(&s.item.object) {
            let kind = owner["kind"].as_str().unwrap_or_default().to_string();
            let name = owner["name"].as_str().unwrap_or_default().to_string();
            s.recreated_by_owner = controllers.contains(&(s.item.namespace.clone().unwrap_or_default(), kind, name));
        }
    }
    chosen
}

/// What a restore needs to know about itself.
pub struct Request<'a> {
    pub spec: &'a Value,
    pub restore_name: &'a str,
    pub backup_name: &'a str,
}

/// Restores `items` into the cluster.
pub fn run(state: &SimState, req: &Request, items: &[BackupItem]) -> Outcome {
    let mut outcome = Outcome::default();
    let scope = Scope::new(state, req.spec);
    let chosen = select(state, &scope, items, &mut outcome);
    let status_scope = match &req.spec["restoreStatus"] {
        Value::Null => None,
        rs => Some(
            IncludesExcludes::from_spec(&rs["includedResources"], &rs["excludedResources"])
                .resolved(|s| resolve_resource(&state.store.registry, s)),
        ),
    };
    let reprovisioned: BTreeSet<String> = chosen
        .iter()
        .filter(|s| s.item.group_resource == "persistentvolumes")
        .filter(|s| s.item.object["spec"]["persistentVolumeReclaimPolicy"] == "Delete")
        .map(|s| s.item.name.clone())
        .collect();
    let mut ready_namespaces = BTreeSet::new();
    let total = chosen.len();
    for s in &chosen {
        if !s.target.is_empty() && !ready_namespaces.contains(&s.target) {
            match ensure_namespace(
                state,
                &s.target,
                s.item.namespace.as_deref().unwrap_or_default(),
                items,
                &mut outcome,
            ) {
                Ok(()) => {
                    ready_namespaces.insert(s.target.clone());
                }
                Err(message) => {
                    outcome.fail("", message);
                    continue;
                }
            }
        }
        restore_item(state, req, &scope, s, &reprovisioned, status_scope.as_ref(), &mut outcome);
    }
    outcome
        .log
        .push(format!("level=info msg=\"restore completed\" selected={total} processed={}", outcome.restored.len()));
    outcome
}

/// Creates the namespace `target` if it is missing, from the backed-up Namespace `source` (its
/// labels, annotations and spec) or blank.
fn ensure_namespace(
    state: &SimState,
    target: &str,
    source: &str,
    items: &[BackupItem],
    outcome: &mut Outcome,
) -> Result<(), String> {
    let t = rtype(state, "", "namespaces");
    match state.store.get(&t, "", target) {
        Ok(ns) if ns["status"]["phase"] == "Terminating" => {
            return Err(format!("timed out waiting for terminating namespace {target} to disappear before restoring"));
        }
        Ok(_) => return Ok(()),
        Err(_) => {}
    }
    let backed_up = items.iter().find(|i| i.group_resource == "namespaces" && i.name == source).map(|i| &i.object);
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}});
    if let Some(b) = backed_up {
        for field in ["labels", "annotations"] {
            if b["metadata"][field].is_object() {
                ns["metadata"][field] = b["metadata"][field].clone();
            }
        }
        if b["spec"].is_object() {
            ns["spec"] = b["spec"].clone();
        }
    }
    match state.store.create(&t, "", ns, false) {
        Ok(_) => {
            outcome.restored.insert(("v1/Namespace".into(), String::new(), target.to_string()), Action::Created);
            Ok(())
        }
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(format!("error creating namespace {target}: {}", e.message)),
    }
}

fn restore_item(
    state: &SimState,
    req: &Request,
    scope: &Scope,
    s: &Selected,
    reprovisioned: &BTreeSet<String>,
    status_scope: Option<&IncludesExcludes>,
    outcome: &mut Outcome,
) {
    let gr = s.item.group_resource.as_str();
    let name = s.item.name.as_str();
    let ns = s.target.as_str();
    let resource_id = if ns.is_empty() { format!("{gr}/{name}") } else { format!("{gr}/{ns}/{name}") };
    let mut obj = s.item.object.clone();
    if items::completed(gr, &obj) {
        outcome.log.push(format!("level=info msg=\"{resource_id} is complete - skipping\""));
        return;
    }
    let resource =
        format!("{}/{}", obj["apiVersion"].as_str().unwrap_or_default(), obj["kind"].as_str().unwrap_or_default());
    let key = (resource, ns.to_string(), name.to_string());
    if outcome.restored.contains_key(&key) {
        return;
    }
    outcome.namespaces.extend((!ns.is_empty()).then(|| ns.to_string()));
    if items::mirror_pod(gr, &obj)
        || s.recreated_by_owner
        || (gr == "persistentvolumes" && reprovisioned.contains(name))
    {
        let why = if s.recreated_by_owner {
            "its controller is restored too and re-creates it"
        } else {
            "Velero does not restore it"
        };
        outcome.log.push(format!("level=info msg=\"Skipping {resource_id}: {why}\""));
        outcome.restored.insert(key, Action::Skipped);
        return;
    }
    let status = obj.get("status").cloned();
    if gr == "persistentvolumes"
        && let Some(claim_ns) = obj["spec"]["claimRef"]["namespace"].as_str().map(str::to_string)
    {
        obj["spec"]["claimRef"]["namespace"] = json!(scope.target(&claim_ns));
    }
    items::reset(&mut obj);
    items::apply_actions(gr, &mut obj, req.spec);
    if gr == "persistentvolumeclaims"
        && obj["spec"]["volumeName"].as_str().is_some_and(|v| reprovisioned.contains(v))
        && let Some(spec) = obj["spec"].as_object_mut()
    {
        spec.remove("volumeName");
    }
    if !ns.is_empty() {
        obj["metadata"]["namespace"] = json!(ns);
    }
    items::add_restore_labels(&mut obj, req.restore_name, req.backup_name);
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    outcome.log.push(format!("level=info msg=\"Attempting to restore {kind}: {name}\" namespace={ns}"));
    match state.store.create(&s.t, ns, obj.clone(), false) {
        Ok(_) => {
            outcome.restored.insert(key, Action::Created);
            if let (Some(scope), Some(status)) = (status_scope, status)
                && scope.should_include(gr)
            {
                let part = if s.t.status { Part::Status } else { Part::Main };
                let write = state.store.mutate(&s.t, ns, name, part, false, |old| {
                    let mut new = old.clone();
                    new["status"] = status;
                    Ok(Some(new))
                });
                if let Err(e) = write {
                    outcome.warn(ns, format!("could not restore status of {resource_id}: {}", e.message));
                }
            }
        }
        Err(e) if e.reason == "AlreadyExists" => {
            let action = existing(state, req, s, &obj, outcome);
            outcome.restored.insert(key, action);
        }
        Err(e) => {
            outcome.fail(ns, format!("error restoring {resource_id}: {}", e.message));
            outcome.restored.insert(key, Action::Failed);
        }
    }
}

/// An object that already exists: equal is skipped; a service account is merged; otherwise
/// `existingResourcePolicy` decides.
fn existing(state: &SimState, req: &Request, s: &Selected, obj: &Value, outcome: &mut Outcome) -> Action {
    let (ns, name) = (s.target.as_str(), s.item.name.as_str());
    let Ok(live) = state.store.get(&s.t, ns, name) else {
        outcome.fail(ns, format!("error restoring {}: it exists but cannot be read", s.item.group_resource));
        return Action::Failed;
    };
    let in_cluster = items::comparable(&live, obj);
    let kind = obj["kind"].as_str().unwrap_or_default();
    let policy = req.spec["existingResourcePolicy"].as_str().unwrap_or_default();
    let patch_live = |patch: &Value| {
        state.store.mutate(&s.t, ns, name, Part::Main, false, |old| {
            let mut new = old.clone();
            json_patch::merge(&mut new, patch);
            Ok(Some(new))
        })
    };
    let labels_only = || {
        let mut labels = serde_json::Map::new();
        for label in [super::BACKUP_NAME_LABEL, super::RESTORE_NAME_LABEL] {
            labels.insert(label.to_string(), obj["metadata"]["labels"][label].clone());
        }
        json!({"metadata": {"labels": labels}})
    };
    if in_cluster == *obj {
        if policy == "update"
            && let Err(e) = patch_live(&labels_only())
        {
            outcome.warn(ns, e.message);
        }
        outcome.log.push(format!("level=info msg=\"Restore of {kind}, {name} skipped: it already exists in the cluster and is the same as the backed up version\""));
        return Action::Skipped;
    }
    if s.item.group_resource == "serviceaccounts" {
        let merged = items::merge_service_accounts(&in_cluster, obj);
        return match items::merge_patch(&in_cluster, &merged) {
            None => Action::Skipped,
            Some(patch) => match patch_live(&patch) {
                Ok(_) => Action::Updated,
                Err(e) => {
                    outcome.warn(ns, e.message);
                    Action::Skipped
                }
            },
        };
    }
    if policy == "update" {
        let mut from = in_cluster.clone();
        items::remove_restore_labels(&mut from);
        let Some(patch) = items::merge_patch(&from, obj) else { return Action::Skipped };
        return match patch_live(&patch) {
            Ok(_) => Action::Updated,
            Err(e) => {
                outcome.warn(ns, e.message);
                if let Err(e) = patch_live(&labels_only()) {
                    outcome.warn(ns, e.message);
                }
                Action::Skipped
            }
        };
    }
    outcome.warn(
        ns,
        format!("could not restore, {kind} {name:?} already exists. Warning: the in-cluster version is different than the backed-up version."),
    );
    Action::Skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restored_resource_list_says_what_became_of_each_object() {
        let mut o = Outcome::default();
        o.restored.insert(("v1/Namespace".into(), "".into(), "shop-dr".into()), Action::Created);
        o.restored.insert(("apps/v1/Deployment".into(), "shop-dr".into(), "web".into()), Action::Created);
        o.restored.insert(("v1/ConfigMap".into(), "shop-dr".into(), "a".into()), Action::Skipped);
        assert_eq!(
            o.resource_list(),
            json!({"apps/v1/Deployment": ["shop-dr/web(created)"], "v1/ConfigMap": ["shop-dr/a(skipped)"], "v1/Namespace": ["shop-dr(created)"]})
        );
    }

    #[test]
    fn warnings_and_errors_are_kept_by_namespace() {
        let mut o = Outcome::default();
        o.warn("shop", "w".into());
        o.fail("", "e".into());
        assert_eq!(o.warnings.namespaces["shop"], ["w"]);
        assert_eq!(o.errors.cluster, ["e"]);
        assert_eq!(o.log.len(), 2);
    }
}
