//! The Eviction API (`POST pods/{name}/eviction`), step by step as the real handler runs it: bypass
//! for pods that are not running or already going, the one-PDB rule (500 for more), the
//! unhealthy-pod policy, and the budget check-and-decrement that answers 429 when the budget is
//! spent. Success is 201 with a `Status{Success}` body.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::api::json;
use super::registry::ResourceType;
use super::selector::LabelSelector;
use super::server::SimState;
use super::status::{self, ApiError};
use super::store::{DeleteOptions, Part};

fn pods(state: &SimState) -> Arc<ResourceType> {
    state.store.registry.find("", "v1", "pods").expect("pods are served")
}

fn pdbs(state: &SimState) -> Arc<ResourceType> {
    state.store.registry.find("policy", "v1", "poddisruptionbudgets").expect("PDBs are served")
}

/// Whether a pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn too_many(message: String, retry_after: Option<u32>) -> ApiError {
    let mut e =
        ApiError::new(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
            .with_details(json!({"causes": [{"reason": "DisruptionBudget", "message": message}]}));
    if let Some(s) = retry_after {
        e = e.retry_after(s);
    }
    e
}

fn created() -> Response {
    json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// The DeleteOptions of an Eviction body (`deleteOptions`; kube-rs's snake-case
/// `delete_options` is an unknown field and ignored, as the real server ignores it).
fn delete_options(body: &Value, dry_run: bool) -> DeleteOptions {
    let d = &body["deleteOptions"];
    DeleteOptions {
        grace_period_seconds: d["gracePeriodSeconds"].as_i64(),
        precondition_uid: d["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: d["preconditions"]["resourceVersion"].as_str().map(str::to_string),
        propagation: None,
        dry_run: dry_run || d["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All")),
    }
}

/// Handles an eviction.
pub async fn evict(
    state: &Arc<SimState>,
    ns: &str,
    name: &str,
    body: &[u8],
    dry_run: bool,
) -> Result<Response, ApiError> {
    state.stats.count_eviction(ns, name);
    let pods = pods(state);
    // An eviction is a create on pods/eviction: refused in a namespace being deleted.
    let namespaces = state.store.registry.find("", "v1", "namespaces").expect("namespaces are served");
    if let Ok(n) = state.store.get(&namespaces, "", ns)
        && n["status"]["phase"] == "Terminating"
    {
        return Err(status::namespace_terminating(&pods, name, ns));
    }
    let eviction: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| status::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?
    };
    // The real handler compares the names as they are: a body without one does not match either.
    if eviction["metadata"]["name"].as_str().unwrap_or_default() != name {
        return Err(status::bad_request("name in URL does not match name in Eviction object"));
    }
    let opts = delete_options(&eviction, dry_run);
    let pod = state.store.get(&pods, ns, name)?;

    // Pods that are not running, or already being deleted, are deleted without a budget.
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed" | "Pending") || pod["metadata"].get("deletionTimestamp").is_some() {
        state.store.delete(&pods, ns, name, &opts)?;
        return Ok(created());
    }

    let pdb_type = pdbs(state);
    let matching: Vec<Arc<Value>> = state
        .store
        .all(&pdb_type, Some(ns))
        .into_iter()
        .filter(|p| LabelSelector::from_object(&p["spec"]["selector"]).is_ok_and(|s| s.matches_object(&pod)))
        .collect();
    let pdb = match matching.as_slice() {
        [] => {
            mark_and_delete(state, &pods, ns, name, &opts)?;
            return Ok(created());
        }
        [one] => one.clone(),
        _ => {
            return Err(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or_default().to_string();

    if !pod_ready(&pod) {
        let current = pdb["status"]["currentHealthy"].as_i64().unwrap_or(0);
        let desired = pdb["status"]["desiredHealthy"].as_i64().unwrap_or(0);
        let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        if always || (current >= desired && desired > 0) {
            let mut guarded = opts.clone();
            guarded.precondition_rv = pod["metadata"]["resourceVersion"].as_str().map(str::to_string);
            return match state.store.delete(&pods, ns, name, &guarded) {
                Ok(_) => Ok(created()),
                Err(e) if e.is_conflict() => Err(too_many(
                    format!("The disruption budget {pdb_name} is still being processed by the server."),
                    Some(10),
                )),
                Err(e) => Err(e),
            };
        }
    }

    check_and_decrement(state, &pdb_type, ns, &pdb_name, name, opts.dry_run)?;
    mark_and_delete(state, &pods, ns, name, &opts)?;
    Ok(created())
}

/// Spends one disruption of the budget, or refuses as the real server does.
fn check_and_decrement(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    pdb: &str,
    pod: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let now = state.store.clock.stamp();
    state.store.mutate(t, ns, pdb, Part::Status, dry_run, |p| {
        let observed = p["status"]["observedGeneration"].as_i64().unwrap_or(0);
        let generation = p["metadata"]["generation"].as_i64().unwrap_or(1);
        if observed < generation {
            return Err(too_many(
                format!("The disruption budget {pdb} is still being processed by the server."),
                Some(10),
            ));
        }
        let allowed = p["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed < 0 {
            return Err(status::forbidden(t, pdb, "pdb disruptions allowed is negative"));
        }
        if p["status"]["disruptedPods"].as_object().is_some_and(|m| m.len() > 2000) {
            return Err(status::forbidden(
                t,
                pdb,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            let desired = p["status"]["desiredHealthy"].as_i64().unwrap_or(0);
            let current = p["status"]["currentHealthy"].as_i64().unwrap_or(0);
            return Err(too_many(
                format!("The disruption budget {pdb} needs {desired} healthy pods and has {current} currently"),
                None,
            ));
        }
        let mut new = p.clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if allowed - 1 == 0 {
            crate::sim::controllers::disruption::set_condition(&mut new, false, &now);
        }
        new["status"]["disruptedPods"][pod] = json!(now);
        Ok(Some(new))
    })?;
    Ok(())
}

/// Marks the pod as a disruption target, then deletes it (gracefully, with the caller's options).
fn mark_and_delete(
    state: &SimState,
    pods: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    if !opts.dry_run {
        let now = state.store.clock.stamp();
        state.store.mutate(pods, ns, name, Part::Status, false, |pod| {
            let mut new = pod.clone();
            let condition = json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting", "lastTransitionTime": now});
            let conditions = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "DisruptionTarget").collect();
            conditions.push(condition);
            new["status"]["conditions"] = json!(conditions);
            Ok(Some(new))
        })?;
    }
    state.store.delete(pods, ns, name, opts)?;
    Ok(())
}
