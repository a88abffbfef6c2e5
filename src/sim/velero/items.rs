//! What happens to one backed-up object on its way back into a cluster, after Velero's
//! `pkg/restore/restore.go` and its built-in restore item actions (`pkg/restore/actions`):
//! the metadata the API server owns is reset (`resetMetadata`: uid, resourceVersion, generation,
//! creationTimestamp, ownerReferences, ...), status is dropped unless `restoreStatus` asks for it,
//! a pod loses its node, priority and service-account token volumes, a service its cluster IPs
//! and (without `preserveNodePorts`) its node ports, a job the `controller-uid` labels of its
//! selector, claims and volumes their binding details; and every restored object is labelled
//! with the backup and restore names. It also compares an object with the one already in the
//! cluster and builds the merge patch that `existingResourcePolicy: update` applies.

use serde_json::{Map, Value, json};

use super::{BACKUP_NAME_LABEL, RESTORE_NAME_LABEL, label_value};

/// Velero's `resetMetadata`: what the API server assigns is removed, the rest kept.
pub fn reset_metadata(obj: &mut Value) {
    if let Some(m) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        for f in [
            "generateName",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            m.remove(f);
        }
    }
}

/// [`reset_metadata`] and the status dropped (`resetMetadataAndStatus`).
pub fn reset(obj: &mut Value) {
    reset_metadata(obj);
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
}

/// Labels an object with the restore's and the backup's names.
pub fn add_restore_labels(obj: &mut Value, restore: &str, backup: &str) {
    if !obj["metadata"]["labels"].is_object() {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"][BACKUP_NAME_LABEL] = json!(label_value(backup));
    obj["metadata"]["labels"][RESTORE_NAME_LABEL] = json!(label_value(restore));
}

/// Removes the restore labels (before a patch puts the latest ones on).
pub fn remove_restore_labels(obj: &mut Value) {
    if let Some(labels) = obj.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(BACKUP_NAME_LABEL);
        labels.remove(RESTORE_NAME_LABEL);
    }
}

/// Whether an object is finished and not restored: a pod that Succeeded or Failed, a job with a
/// completion time (`isCompleted`).
pub fn completed(group_resource: &str, obj: &Value) -> bool {
    match group_resource {
        "pods" => matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed")),
        "jobs.batch" => obj["status"]["completionTime"].as_str().is_some_and(|t| !t.is_empty()),
        _ => false,
    }
}

/// Whether a pod is a static pod's mirror, which Velero never restores.
pub fn mirror_pod(group_resource: &str, obj: &Value) -> bool {
    group_resource == "pods" && obj["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string()
}

/// The built-in restore item actions, applied to an object whose metadata was reset.
pub fn apply_actions(group_resource: &str, obj: &mut Value, restore_spec: &Value) {
    match group_resource {
        "pods" => pod_action(obj),
        "services" => service_action(obj, restore_spec["preserveNodePorts"] == true),
        "jobs.batch" => {
            for path in ["/spec/selector/matchLabels", "/spec/template/metadata/labels"] {
                if let Some(m) = obj.pointer_mut(path).and_then(Value::as_object_mut) {
                    m.remove("controller-uid");
                    m.remove("batch.kubernetes.io/controller-uid");
                }
            }
        }
        "serviceaccounts" => {
            let token_prefix = format!("{}-token-", obj["metadata"]["name"].as_str().unwrap_or_default());
            if let Some(secrets) = obj.get_mut("secrets").and_then(Value::as_array_mut) {
                secrets.retain(|s| !s["name"].as_str().unwrap_or_default().starts_with(&token_prefix));
            }
        }
        "persistentvolumeclaims" => {
            if let Some(a) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                for k in [
                    "pv.kubernetes.io/bind-completed",
                    "pv.kubernetes.io/bound-by-controller",
                    "volume.kubernetes.io/selected-node",
                ] {
                    a.remove(k);
                }
            }
        }
        "persistentvolumes" => reset_volume_binding(obj),
        _ => {}
    }
}

/// `PodAction`: no node, no priority, no service-account token volumes.
fn pod_action(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    spec.remove("nodeName");
    spec.remove("priority");
    let account = spec.get("serviceAccountName").and_then(Value::as_str).unwrap_or_default().to_string();
    let token_prefix = format!("{account}-token-");
    let is_token = |v: &Value| v["name"].as_str().unwrap_or_default().starts_with(&token_prefix);
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.retain(|v| !is_token(v));
    }
    for containers in ["containers", "initContainers"] {
        for c in spec.get_mut(containers).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.retain(|m| !is_token(m));
            }
        }
    }
}

/// `ServiceAction`: the cluster IPs are allocated again; node ports too unless preserved.
fn service_action(svc: &mut Value, preserve_node_ports: bool) {
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let field =
        |spec: &serde_json::Map<String, Value>, f: &str| spec.get(f).and_then(Value::as_str).map(str::to_string);
    if field(spec, "clusterIP").as_deref() != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    let kind = field(spec, "type").unwrap_or_default();
    if preserve_node_ports || kind == "ExternalName" {
        return;
    }
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(p) = port.as_object_mut() {
            p.remove("nodePort");
        }
    }
    if kind == "LoadBalancer" && field(spec, "externalTrafficPolicy").as_deref() == Some("Local") {
        spec.remove("healthCheckNodePort");
    }
}

/// `resetVolumeBindingInfo`: a volume is bound again to the restored claim.
fn reset_volume_binding(pv: &mut Value) {
    if let Some(claim) = pv.pointer_mut("/spec/claimRef").and_then(Value::as_object_mut) {
        claim.remove("uid");
        claim.remove("resourceVersion");
    }
    if let Some(a) = pv.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove("pv.kubernetes.io/bind-completed");
        a.remove("pv.kubernetes.io/bound-by-controller");
    }
}

/// The in-cluster object as Velero compares it with the one it tried to create: metadata and
/// status reset, and the restore labels of `restored` copied on.
pub fn comparable(in_cluster: &Value, restored: &Value) -> Value {
    let mut c = in_cluster.clone();
    reset(&mut c);
    if let Some(m) = c["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    for label in [BACKUP_NAME_LABEL, RESTORE_NAME_LABEL] {
        if let Some(v) = restored["metadata"]["labels"][label].as_str() {
            c["metadata"]["labels"][label] = json!(v);
        }
    }
    c
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`, or `None` when they are equal
/// (`CreateMergePatch`).
pub fn merge_patch(from: &Value, to: &Value) -> Option<Value> {
    if from == to {
        return None;
    }
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) => {
                        if let Some(p) = merge_patch(fv, tv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Some(Value::Object(patch))
        }
        _ => Some(to.clone()),
    }
}

/// `mergeServiceAccounts`: the in-cluster account keeps what it has and gains the backed-up
/// secrets, image pull secrets, labels and annotations it lacks.
pub fn merge_service_accounts(in_cluster: &Value, backed_up: &Value) -> Value {
    let mut merged = in_cluster.clone();
    for list in ["secrets", "imagePullSecrets"] {
        let mut have: Vec<Value> = merged[list].as_array().cloned().unwrap_or_default();
        for s in backed_up[list].as_array().into_iter().flatten() {
            if !have.iter().any(|h| h["name"] == s["name"]) {
                have.push(s.clone());
            }
        }
        if !have.is_empty() {
            merged[list] = Value::Array(have);
        }
    }
    for field in ["labels", "annotations"] {
        for (k, v) in backed_up["metadata"][field].as_object().into_iter().flatten() {
            if merged["metadata"][field].get(k).is_none() {
                merged["metadata"][field][k] = v.clone();
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_owned_metadata_and_status_are_reset() {
        let mut o = json!({"metadata": {"name": "a", "namespace": "x", "uid": "u", "resourceVersion": "5",
            "creationTimestamp": "t", "generation": 3, "ownerReferences": [{}], "labels": {"app": "a"},
            "annotations": {"k": "v"}, "finalizers": ["f"]}, "spec": {}, "status": {"phase": "Running"}});
        reset(&mut o);
        assert_eq!(
            o,
            json!({"metadata": {"name": "a", "namespace": "x", "labels": {"app": "a"}, "annotations": {"k": "v"}, "finalizers": ["f"]}, "spec": {}})
        );
    }

    #[test]
    fn pods_lose_node_priority_and_token_volumes() {
        let mut pod = json!({"spec": {"nodeName": "node-1", "priority": 5, "serviceAccountName": "web",
            "volumes": [{"name": "web-token-abcde"}, {"name": "data"}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "web-token-abcde"}, {"name": "data"}]}]}});
        apply_actions("pods", &mut pod, &json!({}));
        assert_eq!(
            pod,
            json!({"spec": {"serviceAccountName": "web", "volumes": [{"name": "data"}],
                "containers": [{"name": "c", "volumeMounts": [{"name": "data"}]}]}})
        );
    }

    #[test]
    fn services_lose_cluster_ips_and_unpreserved_node_ports() {
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut plain = svc.clone();
        apply_actions("services", &mut plain, &json!({}));
        assert_eq!(plain, json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
        let mut kept = svc.clone();
        apply_actions("services", &mut kept, &json!({"preserveNodePorts": true}));
        assert_eq!(kept["spec"]["ports"][0]["nodePort"], 30080);
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        apply_actions("services", &mut headless, &json!({}));
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn jobs_lose_their_controller_uid_labels() {
        let mut job = json!({"spec": {"selector": {"matchLabels": {"controller-uid": "u", "app": "j"}},
            "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u", "app": "j"}}}}});
        apply_actions("jobs.batch", &mut job, &json!({}));
        assert_eq!(job["spec"]["selector"]["matchLabels"], json!({"app": "j"}));
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], json!({"app": "j"}));
    }

    #[test]
    fn finished_and_mirror_pods_are_recognised() {
        assert!(completed("pods", &json!({"status": {"phase": "Succeeded"}})));
        assert!(!completed("pods", &json!({"status": {"phase": "Running"}})));
        assert!(completed("jobs.batch", &json!({"status": {"completionTime": "2026-05-01T10:00:00Z"}})));
        assert!(mirror_pod("pods", &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})));
    }

    #[test]
    fn merge_patches_turn_one_object_into_the_other() {
        let from = json!({"data": {"a": "1", "b": "2"}, "metadata": {"labels": {"x": "1"}}});
        let to = json!({"data": {"a": "1", "c": "3"}, "metadata": {"labels": {"x": "1"}}});
        let patch = merge_patch(&from, &to).unwrap();
        assert_eq!(patch, json!({"data": {"b": null, "c": "3"}}));
        let mut applied = from.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, to);
        assert_eq!(merge_patch(&to, &to), None);
    }

    #[test]
    fn in_cluster_objects_compare_without_server_fields() {
        let mut restored = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}, "data": {"k": "v"}});
        add_restore_labels(&mut restored, "r1", "b1");
        let in_cluster = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "x", "uid": "u", "resourceVersion": "9", "creationTimestamp": "t"},
            "data": {"k": "v"}});
        assert_eq!(comparable(&in_cluster, &restored), restored);
    }

    #[test]
    fn service_accounts_gain_what_they_lack() {
        let live = json!({"metadata": {"name": "sa", "labels": {"a": "live"}}, "secrets": [{"name": "s1"}]});
        let backed = json!({"metadata": {"name": "sa", "labels": {"a": "old", "b": "old"}}, "secrets": [{"name": "s2"}], "imagePullSecrets": [{"name": "reg"}]});
        let merged = merge_service_accounts(&live, &backed);
        assert_eq!(merged["secrets"], json!([{"name": "s1"}, {"name": "s2"}]));
        assert_eq!(merged["imagePullSecrets"], json!([{"name": "reg"}]));
        assert_eq!(merged["metadata"]["labels"], json!({"a": "live", "b": "old"}));
    }
}
