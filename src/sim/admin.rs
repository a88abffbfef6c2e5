//! The simulator's admin endpoints, under `/firedrill/v1/` (not part of any real API server):
//!
//! - `GET /firedrill/v1/clock`, `POST /firedrill/v1/clock/advance?by=90d`: the simulated clock.
//! - `GET|PUT /firedrill/v1/faults`: the fault configuration (JSON).
//! - `POST /firedrill/v1/compact`: drop the watch history (older resourceVersions get 410).
//! - `POST /firedrill/v1/nodes/<name>/ready?status=False|True|Unknown`: a node's Ready condition.
//! - `GET /firedrill/v1/stats`: counters (eviction POSTs per pod).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::api::{error, json};
use super::faults::FaultConfig;
use super::server::SimState;
use super::status::{self, ApiError};
use super::store::Part;

pub async fn handle(
    state: &Arc<SimState>,
    method: &Method,
    what: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    match run(state, method, what, q, body) {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(&e),
    }
}

fn run(
    state: &SimState,
    method: &Method,
    what: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    let clock = &state.store.clock;
    let segments: Vec<&str> = what.split('/').collect();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["clock"]) => Ok(json!({"now": clock.micro_stamp(), "offsetSeconds": clock.offset().as_secs()})),
        (Method::POST, ["clock", "advance"]) => {
            let by = q.get("by").ok_or_else(|| status::bad_request("say how far: ?by=90d"))?;
            let d = humantime::parse_duration(by)
                .map_err(|e| status::bad_request(format!("`{by}` is not a duration: {e}")))?;
            clock.advance(d);
            Ok(json!({"now": clock.micro_stamp(), "offsetSeconds": clock.offset().as_secs()}))
        }
        (Method::GET, ["faults"]) => Ok(serde_json::to_value(state.faults.get()).unwrap_or_default()),
        (Method::PUT, ["faults"]) => {
            let config: FaultConfig = serde_json::from_slice(body)
                .map_err(|e| status::bad_request(format!("invalid fault configuration: {e}")))?;
            state.faults.set(config);
            Ok(serde_json::to_value(state.faults.get()).unwrap_or_default())
        }
        (Method::POST, ["compact"]) => Ok(json!({"compactedAt": state.store.compact().to_string()})),
        (Method::POST, ["nodes", name, "ready"]) => {
            let wanted = q.get("status").map(String::as_str).unwrap_or("True");
            if !["True", "False", "Unknown"].contains(&wanted) {
                return Err(status::bad_request("status is True, False or Unknown"));
            }
            let nodes = state.store.registry.find("", "v1", "nodes").expect("nodes are served");
            let now = clock.stamp();
            let node = state.store.mutate(&nodes, "", name, Part::Status, false, |n| {
                let mut new = n.clone();
                if let Some(cs) = new["status"]["conditions"].as_array_mut() {
                    for c in cs.iter_mut().filter(|c| c["type"] == "Ready") {
                        if c["status"] != wanted {
                            c["status"] = json!(wanted);
                            c["lastTransitionTime"] = json!(now);
                        }
                        let (reason, message) = match wanted {
                            "True" => ("KubeletReady", "kubelet is posting ready status"),
                            "False" => ("KubeletNotReady", "simulated: the node went NotReady"),
                            _ => ("NodeStatusUnknown", "Kubelet stopped posting node status."),
                        };
                        c["reason"] = json!(reason);
                        c["message"] = json!(message);
                        c["lastHeartbeatTime"] = json!(now);
                    }
                }
                Ok(Some(new))
            })?;
            Ok((*node).clone())
        }
        (Method::GET, ["stats"]) => Ok(json!({"evictions": state.stats.evictions()})),
        _ => Err(status::path_not_found()),
    }
}
