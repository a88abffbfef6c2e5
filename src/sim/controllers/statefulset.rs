//! The StatefulSet controller: pods `<name>-0..N-1` with stable names, created in order (each
//! after the previous one is Ready) unless `podManagementPolicy: Parallel`, removed from the
//! highest ordinal, recreated under the same name (and a new UID) when deleted, each with its
//! own claims from the volume claim templates.

use std::time::Duration;

use serde_json::{Value, json};

use super::pods::{self, controller_ref, from_template, name, owned_pods, ready, rtype, short_hash, terminating};
use super::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Event, Part};

const STATEFULSETS: &str = "apps/statefulsets";

pub fn controller() -> Controller {
    Controller {
        name: "statefulset",
        interests,
        keys: |s| keys_of(s, "apps", "statefulsets"),
        reconcile,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

fn interests(_: &SimState, e: &Event) -> Vec<Key> {
    if e.type_key == STATEFULSETS {
        return vec![Key::of(e)];
    }
    if e.type_key == "/pods" {
        return [Some(&e.object), e.previous.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|o| controller_ref(o).filter(|r| r["kind"] == "StatefulSet"))
            .map(|r| Key::new(STATEFULSETS, &e.namespace, r["name"].as_str().unwrap_or_default()))
            .collect();
    }
    Vec::new()
}

fn ordinal(pod: &Value, set: &str) -> Option<i64> {
    name(pod).strip_prefix(&format!("{set}-"))?.parse().ok()
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = rtype(state, "apps", "statefulsets");
    let set = state.store.get(&t, &key.namespace, &key.name)?;
    if terminating(&set) {
        return Ok(None);
    }
    let want = set["spec"]["replicas"].as_i64().unwrap_or(1);
    let parallel = set["spec"]["podManagementPolicy"] == "Parallel";
    let revision = format!("{}-{}", key.name, short_hash(&set["spec"]["template"], 10));
    let owned = owned_pods(state, &key.namespace, &set);
    let pod_type = pods::pods(state);
    let pvc_type = rtype(state, "", "persistentvolumeclaims");

    // Create the missing ordinals (in order, each after the one before is Ready).
    for i in 0..want {
        let pod_name = format!("{}-{i}", key.name);
        let existing = owned.iter().find(|p| name(p) == pod_name);
        match existing {
            Some(p) if !parallel && (terminating(p) || !ready(p)) => break,
            Some(_) => continue,
            None => {
                // A pod of that name still being deleted (or owned by someone else) must go first.
                if state.store.get(&pod_type, &key.namespace, &pod_name).is_ok() {
                    if parallel { continue } else { break }
                }
                let mut volumes: Vec<Value> =
                    set["spec"]["template"]["spec"]["volumes"].as_array().cloned().unwrap_or_default();
                for tmpl in set["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default() {
                    let claim = format!("{}-{pod_name}", name(&tmpl));
                    if state.store.get(&pvc_type, &key.namespace, &claim).is_err() {
                        let mut labels = set["spec"]["selector"]["matchLabels"].clone();
                        if !labels.is_object() {
                            labels = json!({});
                        }
                        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": key.namespace, "labels": labels}, "spec": tmpl["spec"]});
                        state.store.create(&pvc_type, &key.namespace, pvc, false)?;
                    }
                    volumes.push(json!({"name": name(&tmpl), "persistentVolumeClaim": {"claimName": claim}}));
                }
                let index = i.to_string();
                let mut pod = from_template(
                    &set["spec"]["template"],
                    &set,
                    &[
                        ("statefulset.kubernetes.io/pod-name", &pod_name),
                        ("apps.kubernetes.io/pod-index", &index),
                        ("controller-revision-hash", &revision),
                    ],
                );
                pod["metadata"]["name"] = json!(pod_name);
                pod["spec"]["hostname"] = json!(pod_name);
                if let Some(svc) = set["spec"]["serviceName"].as_str() {
                    pod["spec"]["subdomain"] = json!(svc);
                }
                if !volumes.is_empty() {
                    pod["spec"]["volumes"] = json!(volumes);
                }
                state.store.create(&pod_type, &key.namespace, pod, false)?;
                if !parallel {
                    break;
                }
            }
        }
    }
    // Remove ordinals beyond the count, highest first (one at a time unless parallel).
    let mut extra: Vec<&std::sync::Arc<Value>> =
        owned.iter().filter(|p| ordinal(p, &key.name).is_none_or(|o| o >= want)).collect();
    extra.sort_by_key(|p| std::cmp::Reverse(ordinal(p, &key.name)));
    for p in extra.iter().filter(|p| !terminating(p)).take(if parallel { usize::MAX } else { 1 }) {
        if !parallel && extra.iter().any(|x| terminating(x)) {
            break;
        }
        match state.store.delete(&pod_type, &key.namespace, name(p), &DeleteOptions::default()) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let owned = owned_pods(state, &key.namespace, &set);
    let current = owned.iter().filter(|p| !terminating(p)).count();
    let ready_count = owned.iter().filter(|p| !terminating(p) && ready(p)).count();
    state.store.mutate(&t, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        let s = &mut new["status"];
        s["observedGeneration"] = old["metadata"]["generation"].clone();
        s["replicas"] = json!(current);
        s["readyReplicas"] = json!(ready_count);
        s["currentReplicas"] = json!(current);
        s["updatedReplicas"] = json!(current);
        s["availableReplicas"] = json!(ready_count);
        s["currentRevision"] = json!(revision);
        s["updateRevision"] = json!(revision);
        s["collisionCount"] = json!(0);
        for zeroable in ["readyReplicas", "currentReplicas", "updatedReplicas"] {
            if s[zeroable] == 0 {
                s.as_object_mut().map(|m| m.remove(zeroable));
            }
        }
        Ok(Some(new))
    })?;
    Ok(None)
}
