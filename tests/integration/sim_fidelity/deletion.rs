//! Deletion: the Status of an immediate delete, finalizers, graceful pod deletion, and a
//! namespace's Terminating flow.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{conditions, delete::delete_and_finalize};
use serde_json::json;

use super::{Wire, app, bare_pod, configmap, events, read_to_end, rv_of, shop};
use crate::support;

fn time(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().with_timezone(&Utc)
}

/// Ref §0 item 5, §1.2 (delete row), §1.11 "Immediate deletion returns… a `Status` with
/// `details{name, group, kind:<resource plural>, uid}`", Appendix A "Delete: Status with
/// `details.uid`": kube-rs's `delete_and_finalize` needs that uid. Pods return the object instead.
#[tokio::test]
async fn an_immediate_delete_returns_a_status_with_the_uid() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let cm = wire.post("/api/v1/namespaces/shop/configmaps", configmap("c")).await.expect(201);
    let status = wire.delete("/api/v1/namespaces/shop/configmaps/c").await.expect(200);
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": "c", "kind": "configmaps", "uid": cm["metadata"]["uid"]}})
    );
    let pdb =
        json!({"metadata": {"name": "p"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "maxUnavailable": 1}});
    let created = wire.post("/apis/policy/v1/namespaces/shop/poddisruptionbudgets", pdb).await.expect(201);
    let status = wire.delete("/apis/policy/v1/namespaces/shop/poddisruptionbudgets/p").await.expect(200);
    assert_eq!(
        status["details"],
        json!({"name": "p", "group": "policy", "kind": "poddisruptionbudgets", "uid": created["metadata"]["uid"]})
    );

    let client = support::kube_client(&sim);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    cms.create(&PostParams::default(), &serde_json::from_value(configmap("d")).unwrap()).await.unwrap();
    tokio::time::timeout(support::SIM_PATIENCE, delete_and_finalize(cms.clone(), "d", &DeleteParams::default()))
        .await
        .unwrap()
        .expect("delete_and_finalize finds the uid");
    assert!(cms.get_opt("d").await.unwrap().is_none());

    let pods: Api<Pod> = Api::namespaced(client, "shop");
    pods.create(&PostParams::default(), &serde_json::from_value(bare_pod("lone", "lone", json!({}))).unwrap())
        .await
        .unwrap();
    let deleted = pods.delete("lone", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left(), "pods return the deleted object: {deleted:?}");
    sim.shutdown().await;
}

/// Ref §1.11 "Generic objects", Appendix A "Delete: finalizers": DELETE of an object with
/// finalizers marks it (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`) and returns it; a
/// second DELETE changes nothing; no finalizer may be added then (422, the real message); removing
/// the last one removes the object (watchers: MODIFIED, then DELETED).
#[tokio::test]
async fn finalizers_hold_an_object_until_the_last_one_goes() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let path = "/api/v1/namespaces/shop/configmaps/held";
    let mut cm = configmap("held");
    cm["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    let created = wire.post("/api/v1/namespaces/shop/configmaps", cm).await.expect(201);

    let marked = wire.delete(path).await.expect(200);
    assert_eq!(marked["kind"], "ConfigMap", "the object, not a Status: {marked}");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    let again = wire.delete(path).await.expect(200);
    assert_eq!(rv_of(&again), rv_of(&marked), "a second DELETE changes nothing");

    let merge = "application/merge-patch+json";
    let added = wire
        .patch(path, merge, json!({"metadata": {"finalizers": ["example.com/a", "example.com/b", "example.com/c"]}}))
        .await
        .expect(422);
    assert_eq!(
        added["message"],
        "ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/c\"}"
    );
    assert_eq!(added["details"]["causes"][0]["reason"], "FieldValueForbidden");
    let one_left = wire.patch(path, merge, json!({"metadata": {"finalizers": ["example.com/b"]}})).await.expect(200);
    assert!(one_left["metadata"]["deletionTimestamp"].is_string(), "still held by example.com/b");
    wire.patch(path, merge, json!({"metadata": {"finalizers": null}})).await.expect(200);
    wire.get(path).await.expect(404);

    let watch =
        format!("/api/v1/namespaces/shop/configmaps?watch=true&timeoutSeconds=1&resourceVersion={}", rv_of(&created));
    let seen: Vec<_> = events(&read_to_end(wire.open(&watch).await, Duration::from_secs(10)).await)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["MODIFIED", "MODIFIED", "DELETED"]);
    sim.shutdown().await;
}

/// Ref §1.11 "Graceful deletion (pods)", Appendix A "Delete: graceful pod deletion + simulated
/// kubelet removal": a bound pod's DELETE sets `deletionTimestamp` to now + the grace period and
/// `deletionGracePeriodSeconds`; the pod stays until its kubelet confirms (here held back by
/// stalling the kubelet); `gracePeriodSeconds: 0` and unbound pods go at once.
#[tokio::test]
async fn graceful_pod_deletion_waits_for_the_kubelet() {
    let sim = support::sim(firedrill::sim::config::SimConfig { apps: vec![app("web", 2, None)], ..shop() }).await;
    let wire = Wire::new(&sim);
    let pods: Api<Pod> = Api::namespaced(support::kube_client(&sim), "shop");
    let ready = support::ready_pods(&pods, "web", 2).await;
    let (first, second) = (ready[0].metadata.name.clone().unwrap(), ready[1].metadata.name.clone().unwrap());
    wire.faults(json!({"stalledControllers": ["kubelet"]})).await;

    let before = Utc::now();
    let marked = wire.delete(&format!("/api/v1/namespaces/shop/pods/{first}")).await.expect(200);
    assert_eq!(marked["kind"], "Pod");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30, "the pod's terminationGracePeriodSeconds");
    let at = time(&marked["metadata"]["deletionTimestamp"]);
    let grace = chrono::TimeDelta::seconds(30);
    assert!(
        at >= before + grace - chrono::TimeDelta::seconds(2)
            && at <= Utc::now() + grace + chrono::TimeDelta::seconds(2),
        "{at}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = wire.get(&format!("/api/v1/namespaces/shop/pods/{first}")).await.expect(200);
    assert!(still["metadata"]["deletionTimestamp"].is_string(), "waiting for its kubelet");

    let forced = wire
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/namespaces/shop/pods/{second}"),
            "application/json",
            Some(&json!({"gracePeriodSeconds": 0})),
        )
        .await
        .expect(200);
    assert_eq!(forced["metadata"]["name"], second.as_str());
    wire.get(&format!("/api/v1/namespaces/shop/pods/{second}")).await.expect(404);

    let mut unbound = bare_pod("unbound", "none", json!({}));
    unbound["spec"]["nodeSelector"] = json!({"nowhere": "true"});
    wire.post("/api/v1/namespaces/shop/pods", unbound).await.expect(201);
    wire.delete("/api/v1/namespaces/shop/pods/unbound").await.expect(200);
    wire.get("/api/v1/namespaces/shop/pods/unbound").await.expect(404);

    wire.faults(json!({})).await;
    let uid = still["metadata"]["uid"].as_str().unwrap().to_string();
    support::wait_for(&pods, &first, "the kubelet confirms the deletion", conditions::is_deleted(&uid)).await;
    sim.shutdown().await;
}

/// Ref §1.11 "Generic objects" with "Graceful deletion (pods)": a pod's finalizers hold it like
/// any object's — its kubelet's confirmation (the final grace-0 delete) does not remove a pod that
/// still has one; removing the last finalizer does.
#[tokio::test]
async fn a_pod_with_a_finalizer_outlives_its_kubelet_confirmation() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let pods: Api<Pod> = Api::namespaced(support::kube_client(&sim), "shop");
    wire.post("/api/v1/namespaces/shop/pods", bare_pod("held", "held", json!({"finalizers": ["example.com/hold"]})))
        .await
        .expect(201);
    support::ready_pods(&pods, "held", 1).await;
    wire.delete("/api/v1/namespaces/shop/pods/held").await.expect(200);
    // The kubelet confirms in 100 ms here; give it many times that, then the pod must still be there.
    let watch = format!(
        "/api/v1/namespaces/shop/pods?watch=true&timeoutSeconds=2&fieldSelector=metadata.name%3Dheld&resourceVersion={}",
        rv_of(&wire.get("/api/v1/namespaces/shop/pods/held").await.expect(200))
    );
    let seen = events(&read_to_end(wire.open(&watch).await, Duration::from_secs(10)).await);
    assert!(seen.iter().all(|e| e["type"] != "DELETED"), "a finalizer holds the pod: {seen:?}");
    let held = wire.get("/api/v1/namespaces/shop/pods/held").await.expect(200);
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    wire.patch(
        "/api/v1/namespaces/shop/pods/held",
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await
    .expect(200);
    let uid = held["metadata"]["uid"].as_str().unwrap().to_string();
    support::wait_for(&pods, "held", "the pod goes with its last finalizer", conditions::is_deleted(&uid)).await;
    sim.shutdown().await;
}

/// Ref §1.11 "Namespaces", §2.2 "Evicting a pod in a Terminating namespace", Appendix A "Delete:
/// namespace Terminating flow" and "Fault injection: stuck finalizers": a new namespace carries the
/// `kubernetes` finalizer and its name label; DELETE returns it Terminating (again on a second
/// DELETE); creates and evictions in it are 403 `NamespaceTerminating`; its contents are deleted;
/// a stuck finalizer keeps it (and says so in its conditions); once that goes, so does the
/// namespace. The immortal namespaces refuse deletion.
#[tokio::test]
async fn a_namespace_terminates_deletes_its_contents_and_goes() {
    let sim = support::sim(firedrill::sim::config::SimConfig {
        namespaces: vec!["doomed".into()],
        apps: vec![firedrill::sim::config::AppSpec { namespace: "doomed".into(), ..app("web", 1, None) }],
        ..Default::default()
    })
    .await;
    let wire = Wire::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    let pod = support::ready_pods(&pods, "web", 1).await.remove(0).metadata.name.unwrap();
    let fresh = wire.get("/api/v1/namespaces/doomed").await.expect(200);
    assert_eq!(fresh["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        (fresh["status"]["phase"].as_str(), fresh["metadata"]["labels"]["kubernetes.io/metadata.name"].as_str()),
        (Some("Active"), Some("doomed"))
    );
    let mut held = configmap("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    wire.post("/api/v1/namespaces/doomed/configmaps", held).await.expect(201);

    let terminating = wire.delete("/api/v1/namespaces/doomed").await.expect(200);
    assert_eq!(
        (terminating["kind"].as_str(), terminating["status"]["phase"].as_str()),
        (Some("Namespace"), Some("Terminating"))
    );
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(wire.delete("/api/v1/namespaces/doomed").await.expect(200)["status"]["phase"], "Terminating");

    let refused = wire.post("/api/v1/namespaces/doomed/configmaps", configmap("late")).await.expect(403);
    assert_eq!(refused["reason"], "Forbidden");
    assert_eq!(
        refused["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    assert_eq!(
        refused["details"]["causes"],
        json!([{"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated", "field": "metadata.namespace"}])
    );
    let eviction = wire
        .post(&format!("/api/v1/namespaces/doomed/pods/{pod}/eviction"), json!({"metadata": {"name": pod}}))
        .await
        .expect(403);
    assert_eq!(
        eviction["message"],
        format!(
            "pods \"{pod}\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
        )
    );
    assert_eq!(eviction["details"]["causes"][0]["reason"], "NamespaceTerminating");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let stuck = support::wait_for(&namespaces, "doomed", "only the held ConfigMap remains", |n: Option<&Namespace>| {
        n.and_then(|n| n.status.as_ref()).and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "NamespaceFinalizersRemaining"
                    && c.status == "True"
                    && c.message.as_deref() == Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
            }) && cs.iter().any(|c| c.type_ == "NamespaceContentRemaining" && c.message.as_deref() == Some("Some resources are remaining: configmaps has 1 resource instances"))
        })
    })
    .await
    .unwrap();
    assert_eq!(stuck.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(pods.list(&Default::default()).await.unwrap().items.is_empty(), "the pods went");
    let uid = stuck.metadata.uid.unwrap();
    wire.patch(
        "/api/v1/namespaces/doomed/configmaps/held",
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await
    .expect(200);
    support::wait_for(&namespaces, "doomed", "the namespace goes", conditions::is_deleted(&uid)).await;

    let immortal = wire.delete("/api/v1/namespaces/default").await.expect(403);
    assert_eq!(immortal["message"], "namespaces \"default\" is forbidden: this namespace may not be deleted");
    sim.shutdown().await;
}
