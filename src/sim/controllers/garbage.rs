//! The garbage collector: deletes objects whose owner is gone (background propagation), deletes
//! dependents before their owner for `foregroundDeletion`, and strips owner references from
//! dependents for `orphan`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Controller, Key, Requeue};
use crate::sim::registry::ResourceType;
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, EventKind, Part};

/// Keys of this controller: `(owner uid, namespace, "")` for a deleted owner, or an owner object
/// marked for deletion with a `foregroundDeletion`/`orphan` finalizer.
const GONE: &str = "gc/owner-gone";

pub fn controller() -> Controller {
    Controller {
        name: "garbagecollector",
        interests,
        keys: |_| Vec::new(),
        reconcile,
        resync: Duration::from_secs(3600),
        follows_clock: false,
    }
}

fn has_finalizer(o: &Value, f: &str) -> bool {
    o["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|x| x == f))
}

fn interests(_: &SimState, e: &Event) -> Vec<Key> {
    let uid = e.object["metadata"]["uid"].as_str().unwrap_or_default();
    match e.kind {
        EventKind::Deleted => vec![Key::new(GONE, &e.namespace, uid)],
        _ if e.object["metadata"].get("deletionTimestamp").is_some()
            && (has_finalizer(&e.object, "foregroundDeletion") || has_finalizer(&e.object, "orphan")) =>
        {
            vec![Key::of(e)]
        }
        _ => Vec::new(),
    }
}

/// Every object in `ns` (and cluster-scoped ones) that names `uid` as an owner.
fn dependents(state: &SimState, ns: &str, uid: &str) -> Vec<(Arc<ResourceType>, Arc<Value>)> {
    let mut out = Vec::new();
    for t in state.store.registry.all() {
        let scope = if t.namespaced { Some(ns) } else { None };
        if t.namespaced && ns.is_empty() {
            continue;
        }
        for o in state.store.all(&t, scope) {
            if o["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid)) {
                out.push((t.clone(), o));
            }
        }
    }
    out
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    if key.kind == GONE {
        for (t, o) in dependents(state, &key.namespace, &key.name) {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            match state.store.delete(&t, ns, name_of(&o), &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(None);
    }
    let Some(t) = state.store.registry.by_key(&key.kind) else { return Ok(None) };
    let owner = match state.store.get(&t, &key.namespace, &key.name) {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let uid = owner["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let deps = dependents(state, &key.namespace, &uid);
    let finalizer = if has_finalizer(&owner, "foregroundDeletion") { "foregroundDeletion" } else { "orphan" };
    if finalizer == "foregroundDeletion" {
        for (dt, d) in &deps {
            let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
            if d["metadata"].get("deletionTimestamp").is_none() {
                let opts = DeleteOptions { propagation: Some("Foreground".into()), ..DeleteOptions::default() };
                match state.store.delete(dt, ns, name_of(d), &opts) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !deps.is_empty() {
            return Ok(Some(Duration::from_millis(100)));
        }
    } else {
        for (dt, d) in &deps {
            let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
            state.store.mutate(dt, ns, name_of(d), Part::Main, false, |o| {
                let mut n = o.clone();
                let refs: Vec<Value> = o["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r["uid"] != uid.as_str())
                    .collect();
                n["metadata"]["ownerReferences"] = json!(refs);
                Ok(Some(n))
            })?;
        }
    }
    state.store.mutate(&t, &key.namespace, &key.name, Part::Main, false, |o| {
        let mut n = o.clone();
        let kept: Vec<Value> = o["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        n["metadata"]["finalizers"] = json!(kept);
        Ok(Some(n))
    })?;
    Ok(None)
}
