//! Node lifecycle and volumes: keeps the taints that mirror a node's state (`unschedulable`
//! while cordoned, `not-ready`/`unreachable` with their `NoExecute` twins, pressure taints), and
//! binds pending PersistentVolumeClaims to volumes it provisions (deleting a volume whose claim
//! is gone: reclaim policy `Delete`).

use std::time::Duration;

use serde_json::{Value, json};

use super::pods::{rtype, terminating, uid};
use super::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, EventKind, Part};

pub fn lifecycle() -> Controller {
    Controller {
        name: "nodelifecycle",
        interests: |_, e| {
            if e.type_key == "/nodes" && e.kind != EventKind::Deleted { vec![Key::of(e)] } else { Vec::new() }
        },
        keys: |s| keys_of(s, "", "nodes"),
        reconcile: reconcile_node,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

pub fn volumes() -> Controller {
    Controller {
        name: "volumes",
        interests: |_, e| match (e.type_key.as_str(), e.kind) {
            ("/persistentvolumeclaims", EventKind::Deleted) => {
                vec![Key::new("/persistentvolumes", "", e.object["spec"]["volumeName"].as_str().unwrap_or_default())]
            }
            ("/persistentvolumeclaims", _) => vec![Key::of(e)],
            _ => Vec::new(),
        },
        keys: |s| keys_of(s, "", "persistentvolumeclaims"),
        reconcile: reconcile_volume,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

/// The taints a node's state calls for.
fn managed_taints(node: &Value, now: &str) -> Vec<Value> {
    let mut taints = Vec::new();
    if node["spec"]["unschedulable"] == true {
        taints.push(json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": now}));
    }
    let conditions = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let status =
        |t: &str| conditions.iter().find(|c| c["type"] == t).and_then(|c| c["status"].as_str().map(str::to_string));
    match status("Ready").as_deref() {
        Some("False") => {
            taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
            taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": now}));
        }
        Some("Unknown") | None => {
            taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}));
            taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": now}));
        }
        _ => {}
    }
    for (cond, key) in [
        ("MemoryPressure", "memory-pressure"),
        ("DiskPressure", "disk-pressure"),
        ("PIDPressure", "pid-pressure"),
        ("NetworkUnavailable", "network-unavailable"),
    ] {
        if status(cond).as_deref() == Some("True") {
            taints.push(json!({"key": format!("node.kubernetes.io/{key}"), "effect": "NoSchedule"}));
        }
    }
    taints
}

fn same_taint(a: &Value, b: &Value) -> bool {
    a["key"] == b["key"] && a["effect"] == b["effect"]
}

fn reconcile_node(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = rtype(state, "", "nodes");
    let node = state.store.get(&t, "", &key.name)?;
    let now = state.store.clock.stamp();
    let wanted = managed_taints(&node, &now);
    let current: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    let is_managed = |x: &Value| x["key"].as_str().is_some_and(|k| k.starts_with("node.kubernetes.io/"));
    // Keep the user's taints and the managed ones still called for (with their timeAdded).
    let mut next: Vec<Value> =
        current.iter().filter(|x| !is_managed(x) || wanted.iter().any(|w| same_taint(w, x))).cloned().collect();
    for w in &wanted {
        if !next.iter().any(|x| same_taint(x, w)) {
            next.push(w.clone());
        }
    }
    if next.len() == current.len() && next.iter().all(|n| current.iter().any(|c| same_taint(c, n))) {
        return Ok(None);
    }
    state.store.mutate(&t, "", &key.name, Part::Main, false, |old| {
        let mut new = old.clone();
        if next.is_empty() {
            new["spec"].as_object_mut().map(|m| m.remove("taints"));
        } else {
            new["spec"]["taints"] = json!(next);
        }
        Ok(Some(new))
    })?;
    Ok(None)
}

fn reconcile_volume(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let pv_type = rtype(state, "", "persistentvolumes");
    if key.kind == "/persistentvolumes" {
        // The claim is gone: the provisioned volume goes too.
        if !key.name.is_empty() {
            match state.store.delete(&pv_type, "", &key.name, &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(None);
    }
    let pvc_type = rtype(state, "", "persistentvolumeclaims");
    let pvc = state.store.get(&pvc_type, &key.namespace, &key.name)?;
    if terminating(&pvc) || pvc["status"]["phase"] == "Bound" {
        return Ok(None);
    }
    let memo = format!("bind/{}", uid(&pvc));
    let due = state.since(&memo) + state.timings.bind_volume_after;
    let now = tokio::time::Instant::now();
    if now < due {
        return Ok(Some(due - now));
    }
    state.forget(&memo);
    let size = pvc["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("1Gi").to_string();
    let pv_name = format!("pvc-{}", uid(&pvc));
    let modes = pvc["spec"]["accessModes"].clone();
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": "firedrill.dev/sim"}},
        "spec": {
            "capacity": {"storage": size}, "accessModes": modes, "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": pvc["spec"]["storageClassName"].as_str().unwrap_or("standard"),
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": key.namespace, "name": key.name, "uid": uid(&pvc)},
            "hostPath": {"path": format!("/var/lib/firedrill-sim/{pv_name}")},
        },
    });
    if state.store.get(&pv_type, "", &pv_name).is_err() {
        state.store.create(&pv_type, "", pv, false)?;
    }
    state.store.mutate(&pv_type, "", &pv_name, Part::Status, false, |old| {
        let mut new = old.clone();
        new["status"] = json!({"phase": "Bound"});
        Ok(Some(new))
    })?;
    state.store.mutate(&pvc_type, &key.namespace, &key.name, Part::Main, false, |old| {
        let mut new = old.clone();
        new["spec"]["volumeName"] = json!(pv_name);
        Ok(Some(new))
    })?;
    state.store.mutate(&pvc_type, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        new["status"] =
            json!({"phase": "Bound", "accessModes": old["spec"]["accessModes"], "capacity": {"storage": size}});
        Ok(Some(new))
    })?;
    Ok(None)
}
