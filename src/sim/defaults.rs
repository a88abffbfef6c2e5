//! What the API server fills in or refuses for particular types on create and update: the
//! defaults a client would see from a real cluster (a namespace's `kubernetes` finalizer and
//! name label, a pod's `Pending` phase and grace period, a service's cluster IP, workload
//! replica counts) and the rules of graceful pod deletion.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use super::clock::SimClock;
use super::registry::ResourceType;
use super::status::{self, ApiError};
use super::store::Part;

static NEXT_IP: AtomicU32 = AtomicU32::new(10);

fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let mut v = obj;
    for p in &path[..path.len() - 1] {
        if !v[*p].is_object() {
            v[*p] = json!({});
        }
        v = &mut v[*p];
    }
    let last = path[path.len() - 1];
    if v.get(last).is_none_or(Value::is_null) {
        v[last] = value;
    }
}

/// Defaults and checks for a new object.
pub fn on_create(t: &ResourceType, obj: &mut Value, _clock: &SimClock) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "namespaces") => {
            set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            obj["status"] = json!({"phase": "Active"});
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        ("", "pods") => {
            if obj["spec"]["containers"].as_array().is_none_or(Vec::is_empty) {
                return Err(status::invalid(t, &name, "spec.containers", "FieldValueRequired", "Required value"));
            }
            set_default(obj, &["spec", "terminationGracePeriodSeconds"], json!(30));
            set_default(obj, &["spec", "restartPolicy"], json!("Always"));
            set_default(obj, &["spec", "schedulerName"], json!("default-scheduler"));
            set_default(obj, &["spec", "serviceAccountName"], json!("default"));
            set_default(obj, &["spec", "dnsPolicy"], json!("ClusterFirst"));
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("", "services") => {
            if obj["spec"]["clusterIP"].as_str() != Some("None") {
                let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
                set_default(obj, &["spec", "clusterIP"], json!(format!("10.96.{}.{}", n / 250, n % 250 + 1)));
            }
            set_default(obj, &["spec", "type"], json!("ClusterIP"));
            set_default(obj, &["spec", "sessionAffinity"], json!("None"));
        }
        ("", "secrets") => {
            set_default(obj, &["type"], json!("Opaque"));
            fold_string_data(obj);
        }
        ("", "persistentvolumeclaims") => obj["status"] = json!({"phase": "Pending"}),
        ("", "persistentvolumes") => obj["status"] = json!({"phase": "Available"}),
        ("apps", "deployments") => {
            require_selector(t, obj, &name)?;
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(
                obj,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
        }
        ("apps", "replicasets") => {
            require_selector(t, obj, &name)?;
            set_default(obj, &["spec", "replicas"], json!(1));
        }
        ("apps", "statefulsets") => {
            require_selector(t, obj, &name)?;
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            set_default(
                obj,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
        }
        ("apps", "daemonsets") => {
            require_selector(t, obj, &name)?;
            set_default(
                obj,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        ("batch", "jobs") => {
            set_default(obj, &["spec", "parallelism"], json!(1));
            set_default(obj, &["spec", "completions"], json!(1));
            set_default(obj, &["spec", "backoffLimit"], json!(6));
        }
        _ => {}
    }
    Ok(())
}

/// A Secret's write-only `stringData` is merged into `data` (base64, its keys winning) and never
/// stored, as the v1 → internal conversion does.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(plain)) = secret.as_object_mut().and_then(|o| o.remove("stringData")) else { return };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (k, v) in plain {
        let text = v.as_str().unwrap_or_default();
        secret["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

fn require_selector(t: &ResourceType, obj: &Value, name: &str) -> Result<(), ApiError> {
    if obj["spec"]["selector"].is_object() {
        Ok(())
    } else {
        Err(status::invalid(t, name, "spec.selector", "FieldValueRequired", "Required value"))
    }
}

/// Checks for a replacement of `old` by `new` through `part`.
pub fn on_update(t: &ResourceType, old: &Value, new: &mut Value, part: Part) -> Result<(), ApiError> {
    if (t.group.as_str(), t.plural.as_str()) == ("", "secrets") {
        fold_string_data(new);
    }
    if (t.group.as_str(), t.plural.as_str()) == ("", "namespaces") {
        // spec.finalizers change only through /finalize.
        if part != Part::Finalize {
            new["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
        }
        if old["status"]["phase"] == "Terminating" {
            new["status"]["phase"] = json!("Terminating");
        }
    }
    Ok(())
}

fn bound_and_running(pod: &Value) -> bool {
    let bound = pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let terminal = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    bound && !terminal
}

/// The grace period a DELETE gives a pod, or `None` when it is removed at once: a pod not bound
/// to a node or already finished, or a zero grace period.
pub fn pod_grace_period(pod: &Value, requested: Option<i64>) -> Option<i64> {
    if !bound_and_running(pod) {
        return None;
    }
    let grace = requested.unwrap_or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30)).max(0);
    (grace > 0).then_some(grace)
}

/// Whether a pod marked for deletion still waits for its kubelet to confirm termination.
pub fn pod_deletion_pending(pod: &Value) -> bool {
    let m = &pod["metadata"];
    m.get("deletionTimestamp").is_some()
        && m["deletionGracePeriodSeconds"].as_i64() != Some(0)
        && bound_and_running(pod)
}
