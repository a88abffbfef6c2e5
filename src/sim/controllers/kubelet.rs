//! The kubelet stand-in: runs no containers, but moves pods through the states a kubelet
//! reports. A bound pod starts (`Running`), becomes Ready after the configured delay (or never,
//! or not while its node is NotReady), a Job's pod finishes after its duration, and a pod
//! deleted gracefully is removed once the kubelet "confirms" termination.
//!
//! Per-pod annotations: `firedrill.dev/sim-ready-after` (a duration), `firedrill.dev/sim-never-ready:
//! "true"`, and for Job pods `firedrill.dev/sim-duration` and `firedrill.dev/sim-result`
//! (`Succeeded` or `Failed`).

use std::time::Duration;

use serde_json::{Value, json};

use super::pods::{self, name, phase, set_condition, terminating, uid};
use super::scheduler::node_ready;
use super::{Controller, Key, Requeue};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, EventKind, Part};

pub const READY_AFTER: &str = "firedrill.dev/sim-ready-after";
pub const NEVER_READY: &str = "firedrill.dev/sim-never-ready";
pub const DURATION: &str = "firedrill.dev/sim-duration";
pub const RESULT: &str = "firedrill.dev/sim-result";

pub fn controller() -> Controller {
    Controller {
        name: "kubelet",
        interests,
        keys: bound,
        reconcile,
        resync: Duration::from_secs(10),
        follows_clock: false,
    }
}

fn on_node(p: &Value) -> Option<&str> {
    p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

fn bound(state: &SimState) -> Vec<Key> {
    state
        .store
        .all(&pods::pods(state), None)
        .iter()
        .filter(|p| on_node(p).is_some())
        .map(|p| Key::new("/pods", p["metadata"]["namespace"].as_str().unwrap_or_default(), name(p)))
        .collect()
}

fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    match e.type_key.as_str() {
        "/pods" if e.kind != EventKind::Deleted && on_node(&e.object).is_some() => vec![Key::of(e)],
        "/pods" if e.kind == EventKind::Deleted => {
            let u = uid(&e.object);
            state.forget(&format!("start/{u}"));
            state.forget(&format!("delete/{u}"));
            Vec::new()
        }
        "/nodes" => {
            let node = name(&e.object);
            state
                .store
                .all(&pods::pods(state), None)
                .iter()
                .filter(|p| on_node(p) == Some(node))
                .map(|p| Key::new("/pods", p["metadata"]["namespace"].as_str().unwrap_or_default(), name(p)))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn annotation<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p["metadata"]["annotations"][key].as_str()
}

fn duration_annotation(p: &Value, key: &str) -> Option<Duration> {
    annotation(p, key).and_then(|d| humantime::parse_duration(d.trim()).ok())
}

fn container_statuses(p: &Value, ready: bool, now: &str, terminated: Option<i64>) -> Value {
    let containers = p["spec"]["containers"].as_array().cloned().unwrap_or_default();
    json!(containers
        .iter()
        .map(|c| {
            let state = match terminated {
                Some(code) => json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": p["status"]["startTime"], "finishedAt": now}}),
                None => json!({"running": {"startedAt": p["status"]["startTime"].as_str().unwrap_or(now)}}),
            };
            json!({"name": c["name"], "image": c["image"], "imageID": "", "containerID": format!("containerd://{}", &uid(p).replace('-', "")), "ready": ready, "started": terminated.is_none(), "restartCount": 0, "state": state})
        })
        .collect::<Vec<_>>())
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let pod_type = pods::pods(state);
    let pod = state.store.get(&pod_type, &key.namespace, &key.name)?;
    let Some(node_name) = on_node(&pod).map(str::to_string) else { return Ok(None) };
    let u = uid(&pod).to_string();
    let now_stamp = state.store.clock.stamp();
    if terminating(&pod) {
        let grace = Duration::from_secs(pod["metadata"]["deletionGracePeriodSeconds"].as_u64().unwrap_or(30));
        let due = state.since(&format!("delete/{u}")) + state.timings.terminate_after.min(grace);
        let now = tokio::time::Instant::now();
        if now >= due {
            // The kubelet's confirmation is a grace-0 delete with the pod's UID as precondition:
            // the pod goes unless finalizers still hold it.
            let confirm = DeleteOptions {
                grace_period_seconds: Some(0),
                precondition_uid: Some(u.clone()),
                ..Default::default()
            };
            state.store.delete(&pod_type, &key.namespace, &key.name, &confirm)?;
            state.forget(&format!("delete/{u}"));
            state.forget(&format!("start/{u}"));
            return Ok(None);
        }
        return Ok(Some(due - now));
    }
    let node_ok =
        state.store.get(&pods::rtype(state, "", "nodes"), "", &node_name).map(|n| node_ready(&n)).unwrap_or(false);
    match phase(&pod) {
        "Pending" | "" => {
            state.since(&format!("start/{u}"));
            let ip = format!("10.244.{}.{}", u.as_bytes()[0] % 250, u.as_bytes()[1] % 250 + 2);
            state.store.mutate(&pod_type, &key.namespace, &key.name, Part::Status, false, |p| {
                let mut new = p.clone();
                new["status"]["phase"] = json!("Running");
                new["status"]["startTime"] = json!(now_stamp);
                new["status"]["hostIP"] = json!("10.0.0.1");
                new["status"]["hostIPs"] = json!([{"ip": "10.0.0.1"}]);
                new["status"]["podIP"] = json!(ip);
                new["status"]["podIPs"] = json!([{"ip": ip}]);
                for (c, s) in [
                    ("PodReadyToStartContainers", "True"),
                    ("Initialized", "True"),
                    ("ContainersReady", "False"),
                    ("Ready", "False"),
                    ("PodScheduled", "True"),
                ] {
                    let reason = if s == "False" { "ContainersNotReady" } else { "" };
                    set_condition(&mut new, c, s, reason, "", &now_stamp);
                }
                new["status"]["containerStatuses"] = container_statuses(&new, false, &now_stamp, None);
                Ok(Some(new))
            })?;
            Ok(Some(Duration::from_millis(1)))
        }
        "Running" => {
            let started = state.since(&format!("start/{u}"));
            let now = tokio::time::Instant::now();
            if let Some(d) = duration_annotation(&pod, DURATION) {
                if now < started + d {
                    return Ok(Some(started + d - now));
                }
                let failed = annotation(&pod, RESULT) == Some("Failed");
                state.store.mutate(&pod_type, &key.namespace, &key.name, Part::Status, false, |p| {
                    let mut new = p.clone();
                    new["status"]["phase"] = json!(if failed { "Failed" } else { "Succeeded" });
                    set_condition(&mut new, "Ready", "False", "PodCompleted", "", &now_stamp);
                    set_condition(&mut new, "ContainersReady", "False", "PodCompleted", "", &now_stamp);
                    new["status"]["containerStatuses"] =
                        container_statuses(&new, false, &now_stamp, Some(if failed { 1 } else { 0 }));
                    Ok(Some(new))
                })?;
                return Ok(None);
            }
            let ready_after = duration_annotation(&pod, READY_AFTER).unwrap_or(state.timings.ready_after);
            let never = annotation(&pod, NEVER_READY) == Some("true");
            let due = started + ready_after;
            let should = node_ok && !never && now >= due;
            let is = pods::ready(&pod);
            if should != is {
                state.store.mutate(&pod_type, &key.namespace, &key.name, Part::Status, false, |p| {
                    let mut new = p.clone();
                    let (s, reason) = if should { ("True", "") } else { ("False", "ContainersNotReady") };
                    set_condition(&mut new, "ContainersReady", s, reason, "", &now_stamp);
                    set_condition(&mut new, "Ready", s, reason, "", &now_stamp);
                    new["status"]["containerStatuses"] = container_statuses(&new, should, &now_stamp, None);
                    Ok(Some(new))
                })?;
            }
            if node_ok && !never && now < due { Ok(Some(due - now)) } else { Ok(None) }
        }
        _ => Ok(None),
    }
}
