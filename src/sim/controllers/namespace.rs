//! The namespace controller: when a namespace is deleted, deletes everything in it, reports what
//! remains in the namespace's conditions (and which finalizers hold it), and removes the
//! `kubernetes` finalizer once it is empty, which lets the namespace go.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, Part};

const NAMESPACES: &str = "/namespaces";

pub fn controller() -> Controller {
    Controller {
        name: "namespace",
        interests,
        keys: |s| keys_of(s, "", "namespaces"),
        reconcile,
        resync: Duration::from_secs(10),
        follows_clock: false,
    }
}

fn interests(_: &SimState, e: &Event) -> Vec<Key> {
    if e.type_key == NAMESPACES {
        return vec![Key::new(NAMESPACES, "", e.object["metadata"]["name"].as_str().unwrap_or_default())];
    }
    // Something in a namespace went or changed: the namespace may now be empty.
    if e.namespace.is_empty() { Vec::new() } else { vec![Key::new(NAMESPACES, "", &e.namespace)] }
}

fn condition(t: &str, remaining: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": if remaining { "True" } else { "False" }, "reason": reason, "message": message, "lastTransitionTime": now})
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let ns_type = state.store.registry.find("", "v1", "namespaces").expect("namespaces are served");
    let ns = state.store.get(&ns_type, "", &key.name)?;
    if ns["metadata"].get("deletionTimestamp").is_none() {
        return Ok(None);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for t in state.store.registry.all().iter().filter(|t| t.namespaced) {
        for o in state.store.all(t, Some(&key.name)) {
            *counts.entry(t.group_resource()).or_default() += 1;
            for f in o["metadata"]["finalizers"].as_array().cloned().unwrap_or_default() {
                *finalizers.entry(f.as_str().unwrap_or_default().to_string()).or_default() += 1;
            }
            if o["metadata"].get("deletionTimestamp").is_none() {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                match state.store.delete(t, &key.name, name, &DeleteOptions::default()) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let now = state.store.clock.stamp();
    if counts.is_empty() {
        state.store.mutate(&ns_type, "", &key.name, Part::Finalize, false, |old| {
            let mut new = old.clone();
            let kept: Vec<Value> = old["spec"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != "kubernetes")
                .collect();
            new["spec"]["finalizers"] = json!(kept);
            Ok(Some(new))
        })?;
        return Ok(None);
    }
    let content = counts.iter().map(|(r, n)| format!("{r} has {n} resource instances")).collect::<Vec<_>>().join(", ");
    let held = finalizers.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect::<Vec<_>>().join(", ");
    state.store.mutate(&ns_type, "", &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        new["status"]["conditions"] = json!([
            condition(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered",
                &now
            ),
            condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
                &now
            ),
            condition(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
                &now
            ),
            condition(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                &format!("Some resources are remaining: {content}"),
                &now
            ),
            if held.is_empty() {
                condition(
                    "NamespaceFinalizersRemaining",
                    false,
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                    &now,
                )
            } else {
                condition(
                    "NamespaceFinalizersRemaining",
                    true,
                    "SomeFinalizersRemain",
                    &format!("Some content in the namespace has finalizers remaining: {held}"),
                    &now,
                )
            },
        ]);
        // Transition times move only with the status.
        if let (Some(before), Some(cs)) =
            (old["status"]["conditions"].as_array(), new["status"]["conditions"].as_array_mut())
        {
            for c in cs.iter_mut() {
                if let Some(b) = before.iter().find(|b| b["type"] == c["type"] && b["status"] == c["status"]) {
                    c["lastTransitionTime"] = b["lastTransitionTime"].clone();
                }
            }
        }
        Ok(Some(new))
    })?;
    Ok(Some(Duration::from_millis(200)))
}
