//! Whether the cluster has room for the restore, checked before anything is created.
//!
//! What the restore needs is what the source namespace runs now (its unfinished pods: their
//! count and CPU and memory requests), the best estimate of what its backup brings back. When the
//! source namespace is gone (the disaster the drill rehearses), the scratch quota's own
//! `pods`, `requests.cpu` and `requests.memory` stand in for it. The guard refuses when
//!
//! - the scratch namespace's quota is below that need: the quota would refuse the restored pods,
//!   and the drill would fail on a setting rather than on the backup; or
//! - the cluster's free room is below it: the sum over Ready, schedulable nodes of allocatable
//!   CPU, memory and pods minus what the pods bound to them request, as the scheduler counts it.
//!
//! It is a scheduler's arithmetic, not the scheduler: taints, affinity and per-node fit are not
//! modelled, so a restore that passes this guard can still leave pods Pending (the wait then
//! names them).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

use crate::engine::DrillError;
use crate::quantity::{NodeLoad, cpu_millis, memory_bytes, pod_load};

/// Pods, CPU (millicores) and memory (bytes).
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    pub pods: i64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl From<NodeLoad> for Amounts {
    fn from(l: NodeLoad) -> Self {
        Amounts { pods: l.pods, cpu_millis: l.cpu, memory_bytes: l.memory }
    }
}

/// What the guard found, for the record.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// What the restore needs, and where that figure comes from.
    pub needed: Amounts,
    pub needed_from: String,
    /// Free room on the Ready, schedulable nodes.
    pub free: Amounts,
    pub schedulable_nodes: usize,
}

/// The quota's limit on each of the three, where it sets one (`requests.cpu` or `cpu`, ...).
fn quota_limits(quota: &BTreeMap<String, String>) -> [Option<i64>; 3] {
    let get = |keys: &[&str]| keys.iter().find_map(|k| quota.get(*k)).map(|v| Value::String(v.clone()));
    [
        // A count is a plain quantity (`20`, `1k`).
        get(&["pods", "count/pods"]).map(|v| memory_bytes(&v)),
        get(&["requests.cpu", "cpu"]).map(|v| cpu_millis(&v)),
        get(&["requests.memory", "memory"]).map(|v| memory_bytes(&v)),
    ]
}

fn show(i: usize, v: i64) -> String {
    match i {
        0 => format!("{v} pod(s)"),
        1 => format!("{}m CPU", v),
        _ => format!("{}Mi memory", v / (1 << 20)),
    }
}

/// The refusals, if any, of `needed` against the quota and the free room.
pub fn refusals(room: &Room, quota: &BTreeMap<String, String>) -> Vec<String> {
    let needed = [room.needed.pods, room.needed.cpu_millis, room.needed.memory_bytes];
    let free = [room.free.pods, room.free.cpu_millis, room.free.memory_bytes];
    let mut out = Vec::new();
    for (i, limit) in quota_limits(quota).into_iter().enumerate() {
        if let Some(limit) = limit
            && limit < needed[i]
        {
            out.push(format!(
                "the scratch quota allows {} but {} needs {}: raise `quota`",
                show(i, limit),
                room.needed_from,
                show(i, needed[i])
            ));
        }
    }
    for i in 0..3 {
        if free[i] < needed[i] {
            out.push(format!(
                "the cluster has {} free on {} schedulable node(s) but {} needs {}",
                show(i, free[i]),
                room.schedulable_nodes,
                room.needed_from,
                show(i, needed[i])
            ));
        }
    }
    out
}

fn ready_and_schedulable(node: &Node) -> bool {
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready && !unschedulable
}

/// Measures what the restore of `source` needs and the cluster's free room.
pub async fn measure(client: &Client, source: &str, quota: &BTreeMap<String, String>) -> Result<Room, DrillError> {
    let error = |what: &'static str| move |e: kube::Error| DrillError::Error(format!("cannot list {what}: {e}"));
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map_err(error("nodes"))?;
    let pods = Api::<Pod>::all(client.clone()).list(&ListParams::default()).await.map_err(error("pods"))?;
    let mut load: HashMap<String, NodeLoad> = HashMap::new();
    let mut source_load = NodeLoad::default();
    for pod in &pods.items {
        let v = serde_json::to_value(pod).unwrap_or(Value::Null);
        if v["metadata"]["namespace"].as_str() == Some(source)
            && !matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        {
            let (cpu, memory) = crate::quantity::requests(&v);
            source_load += NodeLoad { pods: 1, cpu, memory };
        }
        if let Some((node, l)) = pod_load(&v) {
            *load.entry(node.to_string()).or_default() += l;
        }
    }
    let mut free = NodeLoad::default();
    let mut schedulable_nodes = 0;
    for node in nodes.items.iter().filter(|n| ready_and_schedulable(n)) {
        schedulable_nodes += 1;
        let v = serde_json::to_value(node).unwrap_or(Value::Null);
        let alloc = &v["status"]["allocatable"];
        let used = load.get(node.metadata.name.as_deref().unwrap_or_default()).copied().unwrap_or_default();
        free += NodeLoad {
            pods: (memory_bytes(&alloc["pods"]) - used.pods).max(0),
            cpu: (cpu_millis(&alloc["cpu"]) - used.cpu).max(0),
            memory: (memory_bytes(&alloc["memory"]) - used.memory).max(0),
        };
    }
    let (needed, needed_from) = if source_load.pods > 0 {
        (source_load.into(), format!("namespace {source} (what it runs now)"))
    } else {
        let [pods, cpu, memory] = quota_limits(quota).map(Option::unwrap_or_default);
        (
            Amounts { pods, cpu_millis: cpu, memory_bytes: memory },
            format!("the scratch quota (namespace {source} runs no pods to measure)"),
        )
    };
    Ok(Room { needed, needed_from, free: free.into(), schedulable_nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(needed: (i64, i64, i64), free: (i64, i64, i64)) -> Room {
        Room {
            needed: Amounts { pods: needed.0, cpu_millis: needed.1, memory_bytes: needed.2 },
            needed_from: "namespace payments (what it runs now)".into(),
            free: Amounts { pods: free.0, cpu_millis: free.1, memory_bytes: free.2 },
            schedulable_nodes: 3,
        }
    }

    fn quota(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn room_enough_and_a_quota_above_the_need_refuse_nothing() {
        let q = quota(&[("pods", "20"), ("requests.cpu", "2"), ("requests.memory", "4Gi")]);
        assert!(refusals(&room((4, 1000, 1 << 30), (100, 8000, 16 << 30)), &q).is_empty());
    }

    #[test]
    fn a_quota_below_the_need_and_too_little_free_room_are_each_named() {
        let q = quota(&[("pods", "2"), ("cpu", "500m")]);
        let said = refusals(&room((4, 1000, 1 << 30), (100, 800, 16 << 30)), &q);
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(said[0].contains("allows 2 pod(s)") && said[0].contains("needs 4 pod(s)"), "{said:?}");
        assert!(said[1].contains("allows 500m CPU"), "{said:?}");
        assert!(said[2].contains("800m CPU free on 3 schedulable node(s)"), "{said:?}");
    }
}
