//! The ReplicaSet and Deployment controllers: a Deployment keeps one ReplicaSet per pod template
//! (named by the template's hash) and moves replicas from old to new as the new ones become
//! available; a ReplicaSet keeps its number of pods. Both report status as the real ones do,
//! including the Deployment's `Available` and `Progressing` conditions.

use std::time::Duration;

use serde_json::{Value, json};

use super::pods::{
    self, controller_ref, from_template, int_or_percent, name, owned_pods, owner_reference, ready, rtype,
    set_condition, short_hash, terminating, uid,
};
use super::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, Part};

const REPLICASETS: &str = "apps/replicasets";
const DEPLOYMENTS: &str = "apps/deployments";

pub fn replicasets() -> Controller {
    Controller {
        name: "replicaset",
        interests: |_, e| owner_key(e, REPLICASETS, "ReplicaSet", "/pods"),
        keys: |s| keys_of(s, "apps", "replicasets"),
        reconcile: reconcile_replicaset,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

pub fn deployments() -> Controller {
    Controller {
        name: "deployment",
        interests: |_, e| owner_key(e, DEPLOYMENTS, "Deployment", REPLICASETS),
        keys: |s| keys_of(s, "apps", "deployments"),
        reconcile: reconcile_deployment,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

/// An event about an owner type concerns that owner; one about a dependent concerns its
/// controller of kind `owner_kind`.
fn owner_key(e: &Event, owner_type: &str, owner_kind: &str, dependent_type: &str) -> Vec<Key> {
    if e.type_key == owner_type {
        return vec![Key::of(e)];
    }
    if e.type_key == dependent_type {
        let mut keys = Vec::new();
        for o in [Some(&e.object), e.previous.as_ref()].into_iter().flatten() {
            if let Some(r) = controller_ref(o).filter(|r| r["kind"] == owner_kind) {
                keys.push(Key::new(owner_type, &e.namespace, r["name"].as_str().unwrap_or_default()));
            }
        }
        return keys;
    }
    Vec::new()
}

fn replicas(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// Which pods to remove first when scaling down: unscheduled, then not ready, then the newest.
fn deletion_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let rank = |p: &Value| {
        let scheduled = p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
        (scheduled, ready(p))
    };
    rank(a)
        .cmp(&rank(b))
        .then_with(|| b["metadata"]["creationTimestamp"].as_str().cmp(&a["metadata"]["creationTimestamp"].as_str()))
}

fn reconcile_replicaset(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = rtype(state, "apps", "replicasets");
    let rs = state.store.get(&t, &key.namespace, &key.name)?;
    if terminating(&rs) {
        return Ok(None);
    }
    let owned = owned_pods(state, &key.namespace, &rs);
    let mut active: Vec<&std::sync::Arc<Value>> =
        owned.iter().filter(|p| !terminating(p) && !matches!(pods::phase(p), "Succeeded" | "Failed")).collect();
    let want = replicas(&rs);
    let pod_type = pods::pods(state);
    let have = active.len() as i64;
    if have < want {
        let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().unwrap_or_default().to_string();
        for _ in have..want {
            let mut pod = from_template(&rs["spec"]["template"], &rs, &[]);
            if !hash.is_empty() {
                pod["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            }
            pod["metadata"]["generateName"] = json!(format!("{}-", key.name));
            state.store.create(&pod_type, &key.namespace, pod, false)?;
        }
    } else if have > want {
        active.sort_by(|a, b| deletion_order(a, b));
        for p in active.iter().take((have - want) as usize) {
            match state.store.delete(&pod_type, &key.namespace, name(p), &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    let owned = owned_pods(state, &key.namespace, &rs);
    let counted: Vec<&std::sync::Arc<Value>> =
        owned.iter().filter(|p| !terminating(p) && !matches!(pods::phase(p), "Succeeded" | "Failed")).collect();
    let ready_count = counted.iter().filter(|p| ready(p)).count();
    state.store.mutate(&t, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        let s = &mut new["status"];
        s["replicas"] = json!(counted.len());
        s["fullyLabeledReplicas"] = json!(counted.len());
        s["readyReplicas"] = json!(ready_count);
        s["availableReplicas"] = json!(ready_count);
        s["terminatingReplicas"] = json!(owned.iter().filter(|p| terminating(p)).count());
        s["observedGeneration"] = old["metadata"]["generation"].clone();
        for zeroable in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas", "terminatingReplicas"] {
            if s[zeroable] == 0 {
                s.as_object_mut().map(|m| m.remove(zeroable));
            }
        }
        Ok(Some(new))
    })?;
    Ok(None)
}

fn reconcile_deployment(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = rtype(state, "apps", "deployments");
    let rs_type = rtype(state, "apps", "replicasets");
    let d = state.store.get(&t, &key.namespace, &key.name)?;
    if terminating(&d) {
        return Ok(None);
    }
    let desired = replicas(&d);
    let template = d["spec"]["template"].clone();
    let hash = short_hash(&template, 10);
    let new_name = format!("{}-{hash}", key.name);
    let owned: Vec<std::sync::Arc<Value>> =
        state.store.all(&rs_type, Some(&key.namespace)).into_iter().filter(|rs| pods::owned_by(rs, uid(&d))).collect();
    let paused = d["spec"]["paused"] == true;
    let new_rs = owned.iter().find(|rs| name(rs) == new_name).cloned();
    let new_rs = match new_rs {
        Some(rs) => rs,
        None if paused => return Ok(None),
        None => {
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut tmpl = template.clone();
            tmpl["metadata"]["labels"] = labels.clone();
            let rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": new_name, "namespace": key.namespace, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/desired-replicas": desired.to_string(), "deployment.kubernetes.io/revision": (owned.len() + 1).to_string()},
                    "ownerReferences": [owner_reference(&d)],
                },
                "spec": {"replicas": 0, "selector": selector, "template": tmpl},
            });
            state.store.create(&rs_type, &key.namespace, rs, false)?
        }
    };
    let olds: Vec<&std::sync::Arc<Value>> = owned.iter().filter(|rs| name(rs) != new_name).collect();
    if !paused {
        // The new ReplicaSet gets every replica; the old ones keep what is needed while the new
        // pods are not yet available.
        let new_available = new_rs["status"]["availableReplicas"].as_i64().unwrap_or(0);
        scale(state, &key.namespace, &new_rs, desired)?;
        let mut keep = (desired - new_available).max(0);
        for old in &olds {
            let n = keep.min(replicas(old));
            scale(state, &key.namespace, old, n)?;
            keep -= n;
        }
    }
    let all: Vec<std::sync::Arc<Value>> =
        state.store.all(&rs_type, Some(&key.namespace)).into_iter().filter(|rs| pods::owned_by(rs, uid(&d))).collect();
    let stat = |rs: &Value, f: &str| rs["status"][f].as_i64().unwrap_or(0);
    let total: i64 = all.iter().map(|rs| stat(rs, "replicas")).sum();
    let ready_count: i64 = all.iter().map(|rs| stat(rs, "readyReplicas")).sum();
    let available: i64 = all.iter().map(|rs| stat(rs, "availableReplicas")).sum();
    let new_now = all.iter().find(|rs| name(rs) == new_name).cloned().unwrap_or(new_rs);
    let updated = stat(&new_now, "replicas");
    let max_unavailable = int_or_percent(&d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], desired, false);
    let now = state.store.clock.stamp();
    let complete = updated == desired && available >= desired && total == desired;
    state.store.mutate(&t, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        {
            let s = &mut new["status"];
            s["observedGeneration"] = old["metadata"]["generation"].clone();
            s["replicas"] = json!(total);
            s["updatedReplicas"] = json!(updated);
            s["readyReplicas"] = json!(ready_count);
            s["availableReplicas"] = json!(available);
            s["unavailableReplicas"] = json!((desired - available).max(0));
            for zeroable in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"]
            {
                if s[zeroable] == 0 {
                    s.as_object_mut().map(|m| m.remove(zeroable));
                }
            }
        }
        if available >= desired - max_unavailable {
            set_condition(
                &mut new,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                &now,
            );
        } else {
            set_condition(
                &mut new,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                &now,
            );
        }
        let rs_name = name(&new_now).to_string();
        if paused {
            set_condition(&mut new, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", &now);
        } else if complete {
            set_condition(
                &mut new,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                &now,
            );
        } else {
            set_condition(
                &mut new,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
                &now,
            );
        }
        Ok(Some(new))
    })?;
    Ok(None)
}

fn scale(state: &SimState, ns: &str, rs: &Value, n: i64) -> Result<(), ApiError> {
    if replicas(rs) == n {
        return Ok(());
    }
    let t = rtype(state, "apps", "replicasets");
    state.store.mutate(&t, ns, name(rs), Part::Main, false, |old| {
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(n);
        Ok(Some(new))
    })?;
    Ok(())
}
