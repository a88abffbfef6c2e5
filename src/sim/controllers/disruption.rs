//! The disruption controller: keeps each PodDisruptionBudget's status as the real one computes it
//! (expected pods from the controllers' scale, desired and current healthy, disruptions allowed,
//! disrupted pods expiring after two minutes, the `DisruptionAllowed` condition).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Controller, Key, Requeue, keys_of};
use crate::sim::eviction::pod_ready;
use crate::sim::selector::LabelSelector;
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{Event, Part};

const PDBS: &str = "policy/poddisruptionbudgets";
/// How long an eviction's entry in `disruptedPods` counts before it is dropped.
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

pub fn controller() -> Controller {
    Controller {
        name: "disruption",
        interests,
        keys: |s| keys_of(s, "policy", "poddisruptionbudgets"),
        reconcile,
        resync: Duration::from_secs(30),
        follows_clock: true,
    }
}

/// A PDB change concerns that PDB; a pod or workload change concerns every PDB in its namespace.
fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    match e.type_key.as_str() {
        PDBS => vec![Key::of(e)],
        "/pods" | "apps/replicasets" | "apps/deployments" | "apps/statefulsets" => {
            let t = state.store.registry.find("policy", "v1", "poddisruptionbudgets").expect("PDBs are served");
            state
                .store
                .all(&t, Some(&e.namespace))
                .iter()
                .map(|p| Key::new(PDBS, &e.namespace, p["metadata"]["name"].as_str().unwrap_or_default()))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Sets the `DisruptionAllowed` condition (its transition time moves only when its status does).
pub fn set_condition(pdb: &mut Value, allowed: bool, now: &str) {
    let (status, reason) = if allowed { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    let generation = pdb["metadata"]["generation"].clone();
    let mut conditions: Vec<Value> = pdb["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let previous = conditions.iter().find(|c| c["type"] == "DisruptionAllowed").cloned();
    conditions.retain(|c| c["type"] != "DisruptionAllowed");
    let since = match &previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    conditions.push(json!({"type": "DisruptionAllowed", "status": status, "reason": reason, "message": "", "observedGeneration": generation, "lastTransitionTime": since}));
    pdb["status"]["conditions"] = json!(conditions);
}

/// An int-or-percent value resolved against `total`, rounding up as the controller does.
fn resolve(v: &Value, total: i64) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid value {n}")),
        Value::String(s) => {
            let pct: f64 = s
                .strip_suffix('%')
                .ok_or_else(|| format!("invalid value for IntOrString: invalid type: string is not a percentage: {s}"))?
                .parse()
                .map_err(|_| format!("invalid value {s}"))?;
            Ok((pct * total as f64 / 100.0).ceil() as i64)
        }
        other => Err(format!("invalid value {other}")),
    }
}

/// The scale of the controller that owns `pod` (a ReplicaSet's Deployment, a ReplicaSet, a
/// StatefulSet), as `(identity, replicas)`; `Ok(None)` for an unmanaged pod.
fn controller_scale(state: &SimState, ns: &str, pod: &Value) -> Result<Option<(String, i64)>, String> {
    let Some(owner) =
        pod["metadata"]["ownerReferences"].as_array().and_then(|o| o.iter().find(|r| r["controller"] == true))
    else {
        return Ok(None);
    };
    let find = |group: &str, plural: &str, name: &str, uid: &str| -> Result<Value, String> {
        let t = state.store.registry.find(group, "v1", plural).ok_or_else(|| format!("no {plural}"))?;
        let o = state.store.get(&t, ns, name).map_err(|e| e.message)?;
        if o["metadata"]["uid"] != uid {
            return Err(format!("{plural} {ns}/{name} was replaced"));
        }
        Ok((*o).clone())
    };
    let name = owner["name"].as_str().unwrap_or_default();
    let uid = owner["uid"].as_str().unwrap_or_default();
    let replicas = |o: &Value| o["spec"]["replicas"].as_i64().unwrap_or(1);
    match owner["kind"].as_str().unwrap_or_default() {
        "ReplicaSet" => {
            let rs = find("apps", "replicasets", name, uid)?;
            match rs["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|o| o.iter().find(|r| r["controller"] == true && r["kind"] == "Deployment"))
            {
                Some(d) => {
                    let dep = find(
                        "apps",
                        "deployments",
                        d["name"].as_str().unwrap_or_default(),
                        d["uid"].as_str().unwrap_or_default(),
                    )?;
                    Ok(Some((format!("Deployment/{}", d["uid"]), replicas(&dep))))
                }
                None => Ok(Some((format!("ReplicaSet/{uid}"), replicas(&rs)))),
            }
        }
        "StatefulSet" => Ok(Some((format!("StatefulSet/{uid}"), replicas(&find("apps", "statefulsets", name, uid)?)))),
        other => Err(format!(
            "pod {ns}/{} is owned by a {other}, which has no scale",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )),
    }
}

/// `(expectedPods, desiredHealthy)` for the PDB's spec and matched pods.
fn expected(state: &SimState, ns: &str, spec: &Value, pods: &[std::sync::Arc<Value>]) -> Result<(i64, i64), String> {
    let scale_sum = || -> Result<i64, String> {
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for p in pods {
            if let Some((id, replicas)) = controller_scale(state, ns, p)?
                && seen.insert(id)
            {
                total += replicas;
            }
        }
        Ok(total)
    };
    if let Some(max) = spec.get("maxUnavailable").filter(|v| !v.is_null()) {
        let expected = scale_sum()?;
        let unavailable = resolve(max, expected)?;
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match spec.get("minAvailable").filter(|v| !v.is_null()) {
        Some(Value::Number(n)) => Ok((pods.len() as i64, n.as_i64().unwrap_or(0))),
        Some(pct) => {
            let expected = scale_sum()?;
            Ok((expected, resolve(pct, expected)?))
        }
        None => Ok((0, 0)),
    }
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let pdbs = state.store.registry.find("policy", "v1", "poddisruptionbudgets").expect("PDBs are served");
    let pod_type = state.store.registry.find("", "v1", "pods").expect("pods are served");
    let pdb = state.store.get(&pdbs, &key.namespace, &key.name)?;
    let now = state.store.clock.now();
    let stamp = state.store.clock.stamp();
    let selector = LabelSelector::from_object(&pdb["spec"]["selector"]);
    let pods: Vec<std::sync::Arc<Value>> = match &selector {
        Ok(s) => state.store.all(&pod_type, Some(&key.namespace)).into_iter().filter(|p| s.matches_object(p)).collect(),
        Err(_) => Vec::new(),
    };
    // Disrupted pods count as unhealthy until they go or their entry expires.
    let mut disrupted = Map::new();
    let mut next_expiry: Option<Duration> = None;
    for (name, at) in pdb["status"]["disruptedPods"].as_object().cloned().unwrap_or_default() {
        let pod = pods.iter().find(|p| p["metadata"]["name"] == name.as_str());
        let gone = pod.is_none_or(|p| p["metadata"].get("deletionTimestamp").is_some());
        let since = at
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| (now - t.with_timezone(&Utc)).to_std().unwrap_or_default());
        match since {
            _ if gone => {}
            Some(age) if age >= DELETION_TIMEOUT => {}
            Some(age) => {
                let left = DELETION_TIMEOUT - age;
                next_expiry = Some(next_expiry.map_or(left, |n| n.min(left)));
                disrupted.insert(name, at);
            }
            None => {}
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .filter(|p| !disrupted.contains_key(p["metadata"]["name"].as_str().unwrap_or_default()))
        .filter(|p| pod_ready(p))
        .count() as i64;
    let outcome =
        selector.map_err(|e| e.to_string()).and_then(|_| expected(state, &key.namespace, &pdb["spec"], &pods));
    state.store.mutate(&pdbs, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        let s = &mut new["status"];
        match &outcome {
            Ok((expected_pods, desired)) => {
                let allowed = if *expected_pods <= 0 { 0 } else { (healthy - desired).max(0) };
                s["expectedPods"] = json!(expected_pods);
                s["desiredHealthy"] = json!(desired);
                s["currentHealthy"] = json!(healthy);
                s["disruptionsAllowed"] = json!(allowed);
                s["observedGeneration"] = old["metadata"]["generation"].clone();
                if disrupted.is_empty() {
                    s.as_object_mut().map(|m| m.remove("disruptedPods"));
                } else {
                    s["disruptedPods"] = json!(disrupted);
                }
                set_condition(&mut new, allowed > 0, &stamp);
            }
            Err(why) => {
                // Fail safe: no disruptions while the budget cannot be computed.
                s["disruptionsAllowed"] = json!(0);
                s["observedGeneration"] = old["metadata"]["generation"].clone();
                let generation = old["metadata"]["generation"].clone();
                let mut conditions: Vec<Value> = s["conditions"].as_array().cloned().unwrap_or_default();
                conditions.retain(|c| c["type"] != "DisruptionAllowed");
                conditions.push(json!({"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": why, "observedGeneration": generation, "lastTransitionTime": stamp}));
                s["conditions"] = json!(conditions);
            }
        }
        Ok(Some(new))
    })?;
    Ok(next_expiry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up_and_integers_stand() {
        assert_eq!(resolve(&json!("50%"), 7), Ok(4));
        assert_eq!(resolve(&json!("10%"), 3), Ok(1));
        assert_eq!(resolve(&json!(2), 7), Ok(2));
        assert!(resolve(&json!("two"), 7).is_err());
    }

    #[test]
    fn the_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut pdb = json!({"metadata": {"generation": 3}, "status": {}});
        set_condition(&mut pdb, true, "t1");
        set_condition(&mut pdb, true, "t2");
        assert_eq!(pdb["status"]["conditions"][0]["lastTransitionTime"], "t1");
        set_condition(&mut pdb, false, "t3");
        let c = &pdb["status"]["conditions"][0];
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str(), c["lastTransitionTime"].as_str()),
            (Some("False"), Some("InsufficientPods"), Some("t3"))
        );
        assert_eq!(c["observedGeneration"], 3);
    }
}
