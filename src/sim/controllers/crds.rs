//! The apiextensions controllers in one: a CustomResourceDefinition written through the API
//! starts serving its types (`NamesAccepted` and `Established` conditions, `acceptedNames`,
//! `storedVersions`) and carries the `customresourcecleanup.apiextensions.k8s.io` finalizer;
//! deleting it deletes every instance first, then stops serving the types and lets it go.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Controller, Key, Requeue, keys_of};
use crate::sim::registry::{self, ResourceType};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, Part};

const CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

pub fn controller() -> Controller {
    Controller {
        name: "crds",
        interests: |s, e: &Event| {
            if e.type_key == crd_type(s).key() { vec![Key::of(e)] } else { Vec::new() }
        },
        keys: |s| keys_of(s, "apiextensions.k8s.io", "customresourcedefinitions"),
        reconcile,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

fn crd_type(state: &SimState) -> std::sync::Arc<ResourceType> {
    state.store.registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions").expect("CRDs are served")
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = crd_type(state);
    let crd = state.store.get(&t, "", &key.name)?;
    let types = registry::from_crd(&crd);
    if crd["metadata"].get("deletionTimestamp").is_some() {
        return terminate(state, &t, &key.name, &types);
    }
    state.store.registry.register(types);
    state.store.mutate(&t, "", &key.name, Part::Main, false, |old| {
        let mut new = old.clone();
        let finalizers = new["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        if finalizers.iter().any(|f| f == CLEANUP) {
            return Ok(None);
        }
        new["metadata"]["finalizers"] = json!(finalizers.into_iter().chain([json!(CLEANUP)]).collect::<Vec<_>>());
        Ok(Some(new))
    })?;
    let now = state.store.clock.stamp();
    state.store.mutate(&t, "", &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        let accepted = old["spec"]["names"].clone();
        let stored: Vec<Value> = old["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .map(|v| v["name"].clone())
            .collect();
        if new["status"]["acceptedNames"] == accepted && new["status"]["conditions"].is_array() {
            return Ok(None);
        }
        new["status"] = json!({
            "acceptedNames": accepted,
            "storedVersions": stored,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        });
        Ok(Some(new))
    })?;
    Ok(None)
}

/// Deletes the instances of a CRD being deleted; once none remain, its types are no longer served
/// and the cleanup finalizer goes.
fn terminate(state: &SimState, t: &ResourceType, name: &str, types: &[ResourceType]) -> Result<Requeue, ApiError> {
    let mut remaining = 0;
    // Every served version shares one storage: the first one's view covers them all.
    if let Some(served) = types.first().and_then(|c| state.store.registry.find(&c.group, &c.version, &c.plural)) {
        for o in state.store.all(&served, None) {
            remaining += 1;
            if o["metadata"].get("deletionTimestamp").is_none() {
                let m = &o["metadata"];
                let (ns, n) = (m["namespace"].as_str().unwrap_or_default(), m["name"].as_str().unwrap_or_default());
                match state.store.delete(&served, ns, n, &DeleteOptions::default()) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if remaining > 0 {
        // Instances held by their own finalizers: look again soon.
        return Ok(Some(Duration::from_millis(500)));
    }
    if let Some(c) = types.first() {
        state.store.registry.unregister(&c.group, &c.plural);
    }
    state.store.mutate(t, "", name, Part::Main, false, |old| {
        let mut new = old.clone();
        let kept: Vec<Value> =
            old["metadata"]["finalizers"].as_array().into_iter().flatten().filter(|f| *f != CLEANUP).cloned().collect();
        new["metadata"]["finalizers"] = json!(kept);
        Ok(Some(new))
    })?;
    Ok(None)
}
