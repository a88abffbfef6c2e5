//! The scheduler: binds each pending pod to a Ready node that is not cordoned, whose taints the
//! pod tolerates, whose labels match the pod's node selector, and that has room for the pod's
//! CPU and memory requests and pod count; the least loaded such node wins. A pod that fits
//! nowhere gets `PodScheduled=False` with the reasons, as `kubectl describe` shows them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::pods::{self, name, set_condition, terminating};
use super::{Controller, Key, Requeue};
use crate::sim::quantity::{NodeLoad, cpu_millis, memory_bytes, requests};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{Event, Part};

pub fn controller() -> Controller {
    Controller {
        name: "scheduler",
        interests,
        keys: pending,
        reconcile,
        resync: Duration::from_secs(5),
        follows_clock: false,
    }
}

fn unscheduled(p: &Value) -> bool {
    p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) && !terminating(p)
}

fn pending(state: &SimState) -> Vec<Key> {
    state
        .store
        .all(&pods::pods(state), None)
        .iter()
        .filter(|p| unscheduled(p))
        .map(|p| Key::new("/pods", p["metadata"]["namespace"].as_str().unwrap_or_default(), name(p)))
        .collect()
}

fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    match e.type_key.as_str() {
        "/pods" if unscheduled(&e.object) => vec![Key::of(e)],
        // A node that changed, or a pod that left one, may make room for a waiting pod.
        "/nodes" => pending(state),
        "/pods"
            if e.previous.as_ref().is_some_and(|p| !unscheduled(p))
                && (terminating(&e.object) || e.kind == crate::sim::store::EventKind::Deleted) =>
        {
            pending(state)
        }
        _ => Vec::new(),
    }
}

pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether `tolerations` tolerate `taint`.
pub fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|t| {
        let key_ok = t["key"].as_str().is_none_or(|k| k.is_empty() || taint["key"] == k);
        let effect_ok = t["effect"].as_str().is_none_or(|e| e.is_empty() || taint["effect"] == e);
        let value_ok = match t["operator"].as_str().unwrap_or("Equal") {
            "Exists" => true,
            _ => t["value"].as_str().unwrap_or_default() == taint["value"].as_str().unwrap_or_default(),
        };
        // An empty key with operator Exists tolerates everything.
        key_ok && effect_ok && value_ok
    })
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let pod_type = pods::pods(state);
    let pod = state.store.get(&pod_type, &key.namespace, &key.name)?;
    if !unscheduled(&pod) {
        return Ok(None);
    }
    let nodes = state.store.all(&pods::rtype(state, "", "nodes"), None);
    let (want_cpu, want_mem) = requests(&pod);
    let tolerations: Vec<Value> = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut fits = Vec::new();
    for node in &nodes {
        let mut why = None;
        let taints: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
        let mut effective = taints.clone();
        if node["spec"]["unschedulable"] == true
            && !taints.iter().any(|t| t["key"] == "node.kubernetes.io/unschedulable")
        {
            effective.push(json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}));
        }
        if !node_ready(node) && !effective.iter().any(|t| t["key"] == "node.kubernetes.io/not-ready") {
            effective.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
        }
        if let Some(t) = effective.iter().find(|t| t["effect"] != "PreferNoSchedule" && !tolerates(&tolerations, t)) {
            why = Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t["key"].as_str().unwrap_or_default(),
                t["value"].as_str().unwrap_or_default()
            ));
        } else if pod["spec"]["nodeSelector"]
            .as_object()
            .is_some_and(|sel| sel.iter().any(|(k, v)| node["metadata"]["labels"][k] != *v))
        {
            why = Some("node(s) didn't match Pod's node affinity/selector".into());
        } else {
            let NodeLoad { pods: count, cpu, memory: mem } = state.store.node_load(name(node));
            let alloc = &node["status"]["allocatable"];
            let max_pods = alloc["pods"].as_str().and_then(|p| p.parse::<i64>().ok()).unwrap_or(110);
            if count + 1 > max_pods {
                why = Some("Too many pods".into());
            } else if alloc.get("cpu").is_some() && cpu + want_cpu > cpu_millis(&alloc["cpu"]) {
                why = Some("Insufficient cpu".into());
            } else if alloc.get("memory").is_some() && mem + want_mem > memory_bytes(&alloc["memory"]) {
                why = Some("Insufficient memory".into());
            } else {
                fits.push((count, name(node).to_string()));
            }
        }
        if let Some(w) = why {
            *reasons.entry(w).or_default() += 1;
        }
    }
    let now = state.store.clock.stamp();
    fits.sort();
    match fits.first() {
        Some((_, node)) => {
            let node = node.clone();
            state.store.mutate(&pod_type, &key.namespace, &key.name, Part::Main, false, |p| {
                if !unscheduled(p) {
                    return Ok(None);
                }
                let mut new = p.clone();
                new["spec"]["nodeName"] = json!(node);
                Ok(Some(new))
            })?;
            state.store.mutate(&pod_type, &key.namespace, &key.name, Part::Status, false, |p| {
                let mut new = p.clone();
                set_condition(&mut new, "PodScheduled", "True", "", "", &now);
                Ok(Some(new))
            })?;
            Ok(None)
        }
        None => {
            let detail = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect::<Vec<_>>().join(", ");
            let message = format!(
                "0/{} nodes are available: {detail}. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.",
                nodes.len(),
                nodes.len(),
                nodes.len()
            );
            state.store.mutate(&pod_type, &key.namespace, &key.name, Part::Status, false, |p| {
                let mut new = p.clone();
                set_condition(&mut new, "PodScheduled", "False", "Unschedulable", &message, &now);
                Ok(Some(new))
            })?;
            Ok(Some(Duration::from_secs(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(cpu_millis(&json!("250m")), 250);
        assert_eq!(cpu_millis(&json!("2")), 2000);
        assert_eq!(cpu_millis(&json!(0.5)), 500);
        assert_eq!(memory_bytes(&json!("128Mi")), 128 << 20);
        assert_eq!(memory_bytes(&json!("1G")), 1_000_000_000);
    }

    #[test]
    fn tolerations_match_taints_by_key_effect_and_value() {
        let taint = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        assert!(tolerates(
            &[json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"})],
            &taint
        ));
        assert!(tolerates(&[json!({"operator": "Exists"})], &taint), "an empty key with Exists tolerates everything");
        assert!(!tolerates(&[json!({"key": "other", "operator": "Exists"})], &taint));
        let valued = json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"});
        assert!(tolerates(&[json!({"key": "dedicated", "value": "db"})], &valued));
        assert!(!tolerates(&[json!({"key": "dedicated", "value": "web"})], &valued));
    }
}
