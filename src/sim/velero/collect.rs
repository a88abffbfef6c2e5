//! What a Backup takes from the simulated cluster, as Velero's `item_collector.go` and
//! `item_backupper.go` decide it: objects in the included namespaces of the included resources
//! that match the label selection; cluster-scoped objects when `includeClusterResources` is true,
//! or unset and every namespace is backed up (or, with the scoped filters, when they name them);
//! the Namespace objects of the backed-up namespaces; and the PersistentVolume of each backed-up
//! claim, as Velero's PVC action adds it. Objects labelled `velero.io/exclude-from-backup=true`
//! and objects being deleted are skipped. Each object is kept as read, status included.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::filter::{IncludesExcludes, Labels, resolve_resource};
use super::format::{BackupItem, Results};
use super::{EXCLUDE_FROM_BACKUP_LABEL, strings};
use crate::sim::registry::ResourceType;
use crate::sim::server::SimState;

/// The objects of a backup and what went wrong collecting them.
#[derive(Debug, Default)]
pub struct Collection {
    pub items: Vec<BackupItem>,
    pub errors: Results,
    /// Log lines (logrus text format, without the time).
    pub log: Vec<String>,
}

/// Which resources a backup spec covers.
struct Resources {
    /// `includedResources`/`excludedResources`, or the namespace-scoped filters.
    namespaced: IncludesExcludes,
    /// The cluster-scoped filters, when the spec uses the scoped ones.
    cluster: Option<IncludesExcludes>,
    /// `includeClusterResources`.
    include_cluster: Option<bool>,
    /// Whether every namespace is backed up.
    all_namespaces: bool,
}

impl Resources {
    fn from_spec(state: &SimState, spec: &Value, all_namespaces: bool) -> Self {
        let resolve = |s: &str| resolve_resource(&state.store.registry, s);
        let scoped = [
            "includedClusterScopedResources",
            "excludedClusterScopedResources",
            "includedNamespaceScopedResources",
            "excludedNamespaceScopedResources",
        ]
        .iter()
        .any(|f| !strings(&spec[*f]).is_empty());
        if scoped {
            Self {
                namespaced: IncludesExcludes::from_spec(
                    &spec["includedNamespaceScopedResources"],
                    &spec["excludedNamespaceScopedResources"],
                )
                .resolved(resolve),
                cluster: Some(
                    IncludesExcludes::from_spec(
                        &spec["includedClusterScopedResources"],
                        &spec["excludedClusterScopedResources"],
                    )
                    .resolved(resolve),
                ),
                include_cluster: None,
                all_namespaces,
            }
        } else {
            Self {
                namespaced: IncludesExcludes::from_spec(&spec["includedResources"], &spec["excludedResources"])
                    .resolved(resolve),
                cluster: None,
                include_cluster: spec["includeClusterResources"].as_bool(),
                all_namespaces,
            }
        }
    }

    fn namespaced(&self, gr: &str) -> bool {
        self.namespaced.should_include(gr)
    }

    fn cluster_scoped(&self, gr: &str) -> bool {
        match &self.cluster {
            Some(c) if !c.includes().is_empty() => c.should_include(gr),
            Some(c) => self.all_namespaces && c.should_include(gr),
            None => match self.include_cluster {
                Some(true) => self.namespaced.should_include(gr),
                Some(false) => false,
                None => self.all_namespaces && self.namespaced.should_include(gr),
            },
        }
    }

    /// Whether objects that come along with others (a claim's volume) may be added.
    fn additional(&self, gr: &str) -> bool {
        self.include_cluster != Some(false)
            && match &self.cluster {
                Some(c) => c.should_include(gr),
                None => self.namespaced.should_include(gr),
            }
    }
}

/// Collects the objects backup `spec` covers.
pub fn collect(state: &SimState, spec: &Value) -> Collection {
    let mut out = Collection::default();
    let namespaces = IncludesExcludes::from_spec(&spec["includedNamespaces"], &spec["excludedNamespaces"]);
    let resources = Resources::from_spec(state, spec, namespaces.include_everything());
    let labels = Labels::from_spec(spec).unwrap_or_else(|_| Labels::everything());
    let types = served_types(state);
    let ns_type = types.iter().find(|t| t.key() == "/namespaces").cloned();
    let existing: Vec<Arc<Value>> = ns_type.as_ref().map(|t| state.store.all(t, None)).unwrap_or_default();
    let existing_names: BTreeSet<&str> = existing.iter().filter_map(|n| n["metadata"]["name"].as_str()).collect();
    for wanted in namespaces.includes() {
        if !wanted.contains('*') && !existing_names.contains(wanted.as_str()) {
            let message = format!("fail to get the namespace {wanted} specified in backup.Spec.IncludedNamespaces");
            out.log.push(format!("level=error msg={message:?}"));
            out.errors.velero.push(message);
        }
    }
    let backed_up_namespaces: Vec<&str> =
        existing_names.iter().copied().filter(|n| namespaces.should_include(n)).collect();

    let mut seen_namespaces = BTreeSet::new();
    for t in types.iter().filter(|t| t.namespaced) {
        let gr = t.group_resource();
        if !resources.namespaced(&gr) {
            continue;
        }
        for ns in &backed_up_namespaces {
            for o in state.store.all(t, Some(ns)) {
                if labels.matches(&o) && take(&o) {
                    seen_namespaces.insert(ns.to_string());
                    out.items.push(item(t, &o));
                }
            }
        }
    }
    for t in types.iter().filter(|t| !t.namespaced && t.key() != "/namespaces") {
        if resources.cluster_scoped(&t.group_resource()) {
            out.items
                .extend(state.store.all(t, None).iter().filter(|o| labels.matches(o) && take(o)).map(|o| item(t, o)));
        }
    }
    if let Some(t) = &ns_type
        && resources.additional("namespaces")
    {
        for n in
            existing.iter().filter(|n| namespaces.should_include(n["metadata"]["name"].as_str().unwrap_or_default()))
        {
            let name = n["metadata"]["name"].as_str().unwrap_or_default();
            if (!labels.is_set() || labels.matches(n) || seen_namespaces.contains(name)) && take(n) {
                out.items.push(item(t, n));
            }
        }
    }
    add_claimed_volumes(state, &types, &resources, &mut out);
    for i in &out.items {
        let ns = i.namespace.as_deref().map(|n| format!(" namespace={n}")).unwrap_or_default();
        out.log.push(format!("level=info msg=\"Backed up item\" name={} resource={}{ns}", i.name, i.group_resource));
    }
    out
}

/// One version of each served type, in the registry's order (core types first).
fn served_types(state: &SimState) -> Vec<Arc<ResourceType>> {
    let mut seen = BTreeSet::new();
    state.store.registry.all().into_iter().filter(|t| seen.insert(t.key())).collect()
}

/// Whether an object that matched the filters is backed up.
fn take(o: &Value) -> bool {
    o["metadata"]["labels"][EXCLUDE_FROM_BACKUP_LABEL] != "true" && o["metadata"].get("deletionTimestamp").is_none()
}

fn item(t: &ResourceType, o: &Value) -> BackupItem {
    let namespace = o["metadata"]["namespace"].as_str().filter(|n| !n.is_empty()).map(str::to_string);
    BackupItem {
        group_resource: t.group_resource(),
        namespace: if t.namespaced { namespace } else { None },
        name: o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        version: t.version.clone(),
        object: o.clone(),
    }
}

/// The PersistentVolume of each backed-up claim that is bound, unless excluded.
fn add_claimed_volumes(state: &SimState, types: &[Arc<ResourceType>], resources: &Resources, out: &mut Collection) {
    let Some(pv_type) = types.iter().find(|t| t.key() == "/persistentvolumes") else { return };
    if !resources.additional("persistentvolumes") {
        return;
    }
    let mut have: BTreeSet<String> =
        out.items.iter().filter(|i| i.group_resource == "persistentvolumes").map(|i| i.name.clone()).collect();
    let volumes: Vec<String> = out
        .items
        .iter()
        .filter(|i| i.group_resource == "persistentvolumeclaims")
        .filter_map(|i| i.object["spec"]["volumeName"].as_str().filter(|v| !v.is_empty()).map(str::to_string))
        .collect();
    for volume in volumes {
        if have.insert(volume.clone())
            && let Ok(pv) = state.store.get(pv_type, "", &volume)
        {
            out.items.push(item(pv_type, &pv));
        }
    }
}
