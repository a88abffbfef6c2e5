//! The DaemonSet controller: one pod on every node that matches the template's node selector
//! and whose taints the pods tolerate (DaemonSet pods tolerate the unschedulable and not-ready
//! taints, so a cordoned node keeps its daemons), none elsewhere.

use std::time::Duration;

use serde_json::{Value, json};

use super::pods::{self, controller_ref, from_template, name, owned_pods, ready, rtype, terminating};
use super::scheduler::tolerates;
use super::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, Part};

const DAEMONSETS: &str = "apps/daemonsets";

pub fn controller() -> Controller {
    Controller {
        name: "daemonset",
        interests,
        keys: |s| keys_of(s, "apps", "daemonsets"),
        reconcile,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    match e.type_key.as_str() {
        DAEMONSETS => vec![Key::of(e)],
        "/nodes" => keys_of(state, "apps", "daemonsets"),
        "/pods" => [Some(&e.object), e.previous.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|o| controller_ref(o).filter(|r| r["kind"] == "DaemonSet"))
            .map(|r| Key::new(DAEMONSETS, &e.namespace, r["name"].as_str().unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The tolerations every DaemonSet pod gets.
fn daemon_tolerations(template: &Value) -> Vec<Value> {
    let mut t: Vec<Value> = template["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        t.push(json!({"key": key, "operator": "Exists", "effect": effect}));
    }
    t
}

fn eligible(node: &Value, template: &Value, tolerations: &[Value]) -> bool {
    let selector_ok = template["spec"]["nodeSelector"]
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| node["metadata"]["labels"][k] == *v));
    let taints: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    selector_ok && taints.iter().filter(|t| t["effect"] != "PreferNoSchedule").all(|t| tolerates(tolerations, t))
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = rtype(state, "apps", "daemonsets");
    let ds = state.store.get(&t, &key.namespace, &key.name)?;
    if terminating(&ds) {
        return Ok(None);
    }
    let template = &ds["spec"]["template"];
    let tolerations = daemon_tolerations(template);
    let nodes = state.store.all(&rtype(state, "", "nodes"), None);
    let owned = owned_pods(state, &key.namespace, &ds);
    let pod_type = pods::pods(state);
    let mut desired = 0;
    for node in nodes.iter().filter(|n| eligible(n, template, &tolerations)) {
        desired += 1;
        let node_name = name(node);
        if owned.iter().any(|p| p["spec"]["nodeName"] == node_name && !terminating(p)) {
            continue;
        }
        let mut pod = from_template(template, &ds, &[]);
        pod["metadata"]["generateName"] = json!(format!("{}-", key.name));
        pod["spec"]["nodeName"] = json!(node_name);
        pod["spec"]["tolerations"] = json!(tolerations);
        state.store.create(&pod_type, &key.namespace, pod, false)?;
    }
    // Pods on nodes that are gone or no longer eligible.
    for p in owned.iter().filter(|p| !terminating(p)) {
        let on = p["spec"]["nodeName"].as_str().unwrap_or_default();
        let keep = nodes.iter().any(|n| name(n) == on && eligible(n, template, &tolerations));
        if !keep {
            match state.store.delete(&pod_type, &key.namespace, name(p), &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    let owned = owned_pods(state, &key.namespace, &ds);
    let scheduled = owned.iter().filter(|p| !terminating(p)).count();
    let ready_count = owned.iter().filter(|p| !terminating(p) && ready(p)).count();
    state.store.mutate(&t, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        let s = &mut new["status"];
        s["observedGeneration"] = old["metadata"]["generation"].clone();
        s["desiredNumberScheduled"] = json!(desired);
        s["currentNumberScheduled"] = json!(scheduled);
        s["numberReady"] = json!(ready_count);
        s["numberAvailable"] = json!(ready_count);
        s["updatedNumberScheduled"] = json!(scheduled);
        s["numberMisscheduled"] = json!(0);
        let unavailable = desired - ready_count as i64;
        if unavailable > 0 {
            s["numberUnavailable"] = json!(unavailable);
        } else {
            s.as_object_mut().map(|m| m.remove("numberUnavailable"));
        }
        Ok(Some(new))
    })?;
    Ok(None)
}
