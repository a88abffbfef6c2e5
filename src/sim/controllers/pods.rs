//! Helpers the workload controllers share: reading a pod's state, building pods from a template
//! with an owner reference, and finding the pods a controller owns.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::sim::eviction::pod_ready;
use crate::sim::registry::ResourceType;
use crate::sim::server::SimState;

pub fn pods(state: &SimState) -> Arc<ResourceType> {
    state.store.registry.find("", "v1", "pods").expect("pods are served")
}

pub fn rtype(state: &SimState, group: &str, plural: &str) -> Arc<ResourceType> {
    state.store.registry.find(group, "v1", plural).expect("served type")
}

pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn terminating(o: &Value) -> bool {
    o["metadata"].get("deletionTimestamp").is_some()
}

pub fn ready(pod: &Value) -> bool {
    pod_ready(pod)
}

pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

/// The controller owner reference of `o`, if any.
pub fn controller_ref(o: &Value) -> Option<&Value> {
    o["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)
}

/// Whether `o` is controlled by the object with `owner_uid`.
pub fn owned_by(o: &Value, owner_uid: &str) -> bool {
    controller_ref(o).is_some_and(|r| r["uid"] == owner_uid)
}

/// The owner reference a controller puts on what it creates.
pub fn owner_reference(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The pods in `ns` that `owner` controls.
pub fn owned_pods(state: &SimState, ns: &str, owner: &Value) -> Vec<Arc<Value>> {
    let owner_uid = uid(owner).to_string();
    state.store.all(&pods(state), Some(ns)).into_iter().filter(|p| owned_by(p, &owner_uid)).collect()
}

/// A pod from `template` (a PodTemplateSpec) owned by `owner`, with extra labels.
pub fn from_template(template: &Value, owner: &Value, extra_labels: &[(&str, &str)]) -> Value {
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    for (k, v) in extra_labels {
        metadata["labels"][*k] = json!(v);
    }
    metadata["ownerReferences"] = json!([owner_reference(owner)]);
    metadata["namespace"] = owner["metadata"]["namespace"].clone();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}

/// A short, stable hash of a value, in the alphabet Kubernetes uses for name suffixes.
pub fn short_hash(v: &Value, len: usize) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    Sha256::digest(v.to_string().as_bytes())
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// An int-or-percent of `total`, rounded up (`maxSurge`) or down (`maxUnavailable`).
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()) {
            Some(pct) => {
                let x = pct * total as f64 / 100.0;
                if round_up { x.ceil() as i64 } else { x.floor() as i64 }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// Sets a condition of `status.conditions` by type; the transition time moves only when the
/// status does.
pub fn set_condition(obj: &mut Value, kind: &str, status: &str, reason: &str, message: &str, now: &str) {
    let mut conditions: Vec<Value> = obj["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let previous = conditions.iter().find(|c| c["type"] == kind).cloned();
    conditions.retain(|c| c["type"] != kind);
    let since = match &previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut c = json!({"type": kind, "status": status, "lastTransitionTime": since});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    if previous.as_ref().is_some_and(|p| p.get("lastUpdateTime").is_some())
        || matches!(kind, "Available" | "Progressing")
    {
        c["lastUpdateTime"] = json!(now);
        if let Some(p) = &previous
            && p["status"] == status
            && p["reason"] == c["reason"]
            && p["message"] == c["message"]
        {
            c["lastUpdateTime"] = p["lastUpdateTime"].clone();
        }
    }
    conditions.push(c);
    obj["status"]["conditions"] = json!(conditions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_rounds_as_asked() {
        assert_eq!(int_or_percent(&json!("25%"), 3, true), 1);
        assert_eq!(int_or_percent(&json!("25%"), 3, false), 0);
        assert_eq!(int_or_percent(&json!(2), 3, false), 2);
    }

    #[test]
    fn short_hashes_are_stable_and_use_the_name_alphabet() {
        let a = short_hash(&json!({"x": 1}), 10);
        assert_eq!(a, short_hash(&json!({"x": 1}), 10));
        assert_ne!(a, short_hash(&json!({"x": 2}), 10));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)) && a.len() == 10);
    }
}
