//! What the storage layer keeps: resourceVersions, uids, timestamps, generation, no-op writes,
//! dry runs, and the status subresource split.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{Backup, Wire, app, configmap, events, read_to_end, rv_of, shop, shop_stalled};
use crate::support;

fn generation(o: &Value) -> i64 {
    o["metadata"]["generation"].as_i64().unwrap_or_else(|| panic!("no generation: {o}"))
}

/// Ref §1.3, Appendix A "Storage: per-object RV from a global counter, uid, creationTimestamp,
/// generation rules, no-op write suppression": resourceVersions rise across kinds; a uid is a
/// UUID; creationTimestamp is RFC 3339 to the second in UTC; generation starts at 1 and counts
/// spec changes only (not metadata); ConfigMaps have none; a write that changes nothing keeps the
/// resourceVersion and sends no watch event.
#[tokio::test]
async fn storage_keeps_resource_versions_uids_timestamps_and_generation() {
    let sim = support::sim(shop_stalled(&["deployment"])).await;
    let wire = Wire::new(&sim);
    let cm = wire.post("/api/v1/namespaces/shop/configmaps", configmap("c")).await.expect(201);
    let deploy = wire.post("/apis/apps/v1/namespaces/shop/deployments", deployment("web")).await.expect(201);
    let secret = wire
        .post("/api/v1/namespaces/shop/secrets", json!({"metadata": {"name": "s"}, "stringData": {}}))
        .await
        .expect(201);
    assert!(rv_of(&cm) < rv_of(&deploy) && rv_of(&deploy) < rv_of(&secret), "one counter for every kind");
    let uid = cm["metadata"]["uid"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(uid).is_ok(), "uid {uid}");
    let created = cm["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "creationTimestamp {created} is RFC 3339, seconds, Z"
    );
    assert!(cm["metadata"].get("generation").is_none(), "ConfigMaps do not use generation");
    assert_eq!(generation(&deploy), 1);

    let path = "/apis/apps/v1/namespaces/shop/deployments/web";
    let merge = "application/merge-patch+json";
    let labelled = wire.patch(path, merge, json!({"metadata": {"labels": {"team": "a"}}})).await.expect(200);
    assert_eq!(generation(&labelled), 1, "metadata changes are not desired state");
    let scaled = wire.patch(path, merge, json!({"spec": {"replicas": 5}})).await.expect(200);
    assert_eq!(generation(&scaled), 2);

    // A no-op: the same object written back.
    let same = wire.put(path, scaled.clone()).await.expect(200);
    assert_eq!(rv_of(&same), rv_of(&scaled), "a write that changes nothing is not persisted");
    let noop_patch = wire.patch(path, merge, json!({"spec": {"replicas": 5}})).await.expect(200);
    assert_eq!(rv_of(&noop_patch), rv_of(&scaled));
    let watch = format!(
        "/apis/apps/v1/namespaces/shop/deployments?watch=true&timeoutSeconds=1&resourceVersion={}",
        rv_of(&scaled)
    );
    assert!(events(&read_to_end(wire.open(&watch).await, Duration::from_secs(10)).await).is_empty(), "no event either");
    sim.shutdown().await;
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}},
        },
    })
}

/// Ref §1.12 "`metadata.generation`… Controllers report `status.observedGeneration`", §7.3: a
/// Deployment's generation counts spec changes and its controller catches up with
/// `status.observedGeneration`, which is how kubectl and drills tell a status is current.
#[tokio::test]
async fn observed_generation_catches_up_with_generation() {
    let sim = support::sim(firedrill::sim::config::SimConfig { apps: vec![app("web", 2, None)], ..shop() }).await;
    let deployments: Api<Deployment> = Api::namespaced(support::kube_client(&sim), "shop");
    let current = |want: i64| {
        move |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                d.metadata.generation == Some(want)
                    && d.status.as_ref().and_then(|s| s.observed_generation) == Some(want)
                    && d.status.as_ref().and_then(|s| s.ready_replicas).is_some()
            })
        }
    };
    support::wait_for(&deployments, "web", "observedGeneration reaches 1", current(1)).await;
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    let d = support::wait_for(&deployments, "web", "observedGeneration reaches 2", current(2)).await.unwrap();
    support::wait_for(&deployments, "web", "three replicas are ready", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).and_then(|s| s.ready_replicas) == Some(3)
    })
    .await;
    assert_eq!(d.spec.unwrap().replicas, Some(3));
    sim.shutdown().await;
}

/// Ref §0 item 9, §1.12 "With a status subresource…": for a Deployment (controller stalled, so
/// only the test writes), a main-resource write ignores `.status` and a `/status` write ignores
/// everything but `.status` (and does not bump generation).
#[tokio::test]
async fn a_built_in_with_a_status_subresource_splits_spec_and_status_writes() {
    let sim = support::sim(shop_stalled(&["deployment"])).await;
    let wire = Wire::new(&sim);
    let path = "/apis/apps/v1/namespaces/shop/deployments/web";
    let mut with_status = deployment("web");
    with_status["status"] = json!({"replicas": 7});
    let created = wire.post("/apis/apps/v1/namespaces/shop/deployments", with_status).await.expect(201);
    assert!(created.get("status").is_none_or(|s| s.get("replicas").is_none()), "create ignores status: {created}");

    let merge = "application/merge-patch+json";
    let main = wire.patch(path, merge, json!({"spec": {"replicas": 2}, "status": {"replicas": 7}})).await.expect(200);
    assert_eq!(main["spec"]["replicas"], 2);
    assert!(main["status"].get("replicas").is_none(), "the main resource ignores status: {main}");

    let status = wire
        .patch(
            &format!("{path}/status"),
            merge,
            json!({"spec": {"replicas": 9}, "status": {"replicas": 2, "observedGeneration": 2}}),
        )
        .await
        .expect(200);
    assert_eq!((status["spec"]["replicas"].as_i64(), status["status"]["replicas"].as_i64()), (Some(2), Some(2)));
    assert_eq!(generation(&status), generation(&main), "a status write is not a spec change");

    let mut put = status.clone();
    put["spec"]["replicas"] = json!(4);
    put["status"]["replicas"] = json!(99);
    let replaced = wire.put(&format!("{path}/status"), put).await.expect(200);
    assert_eq!((replaced["spec"]["replicas"].as_i64(), replaced["status"]["replicas"].as_i64()), (Some(2), Some(99)));
    sim.shutdown().await;
}

/// Ref §0 item 9, §1.12 "Without it (Velero Backup/Restore/Schedule/BSL), `.status` is written
/// through the main resource and there is no `/status` endpoint (404)", §4 "`generation`
/// therefore increments on every non-metadata change, including status writes". And the other
/// way round for cert-manager's Certificate, a CR with the subresource.
#[tokio::test]
async fn a_cr_without_a_status_subresource_takes_status_through_the_main_resource() {
    let sim = support::sim(shop_stalled(&["velero", "certmanager"])).await;
    let wire = Wire::new(&sim);
    let backups: Api<Backup> = Api::namespaced(support::kube_client(&sim), "velero");
    let mut b = Backup::new("b1", Default::default());
    b.status = Some(super::BackupStatus { phase: Some("New".into()) });
    let created = backups.create(&PostParams::default(), &b).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("New"), "status is kept on create");
    let patched = backups
        .patch("b1", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "InProgress"}})))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("InProgress"));
    assert_eq!(patched.metadata.generation, Some(2), "without the subresource, status is desired state too");
    let labelled = backups
        .patch("b1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    let mut replaced = labelled.clone();
    replaced.status = Some(super::BackupStatus { phase: Some("Completed".into()) });
    let replaced = backups.replace("b1", &PostParams::default(), &replaced).await.unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Completed"));

    let status_path = "/apis/velero.io/v1/namespaces/velero/backups/b1/status";
    for r in [
        wire.get(status_path).await,
        wire.patch(status_path, "application/merge-patch+json", json!({"status": {"phase": "Failed"}})).await,
        wire.put(status_path, json!({"metadata": {"name": "b1"}, "status": {"phase": "Failed"}})).await,
    ] {
        assert_eq!(
            r.expect(404),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "backups.velero.io \"b1\" not found",
                   "reason": "NotFound", "details": {"name": "b1", "group": "velero.io", "kind": "backups"}, "code": 404}),
            "the CRD handler's answer for a subresource the CRD does not declare"
        );
    }
    assert!(backups.get_status("b1").await.is_err(), "kube-rs's get_status has no endpoint to reach");

    // cert-manager's Certificate has the subresource: the main resource ignores status.
    let certs = "/apis/cert-manager.io/v1/namespaces/shop/certificates";
    let cert = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"},
        "spec": {"secretName": "c-tls", "issuerRef": {"name": "none"}, "dnsNames": ["c.example"]}, "status": {"revision": 41}});
    let created = wire.post(certs, cert).await.expect(201);
    assert!(created["status"].get("revision").is_none(), "{created}");
    let main = wire
        .patch(&format!("{certs}/c"), "application/merge-patch+json", json!({"status": {"revision": 42}}))
        .await
        .expect(200);
    assert!(main["status"].get("revision").is_none(), "{main}");
    assert_eq!(generation(&main), 1);
    sim.shutdown().await;
}

/// Ref §1.2 "`dryRun=All`… runs everything except persistence; response looks real": a dry-run
/// create, patch and delete answer as the real ones would and leave the store as it was.
#[tokio::test]
async fn dry_run_all_persists_nothing() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let dry = wire.post("/api/v1/namespaces/shop/configmaps?dryRun=All", configmap("ghost")).await.expect(201);
    assert_eq!(dry["metadata"]["name"], "ghost");
    assert!(dry["metadata"]["uid"].is_string() && dry["metadata"]["creationTimestamp"].is_string());
    wire.get("/api/v1/namespaces/shop/configmaps/ghost").await.expect(404);

    let real = wire.post("/api/v1/namespaces/shop/configmaps", configmap("real")).await.expect(201);
    let patched = wire
        .patch(
            "/api/v1/namespaces/shop/configmaps/real?dryRun=All",
            "application/merge-patch+json",
            json!({"data": {"k": "dry"}}),
        )
        .await
        .expect(200);
    assert_eq!(patched["data"]["k"], "dry");
    let stored = wire.get("/api/v1/namespaces/shop/configmaps/real").await.expect(200);
    assert_eq!((stored["data"]["k"].as_str(), rv_of(&stored)), (Some("v"), rv_of(&real)));

    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client(&sim), "shop");
    cms.create(
        &PostParams { dry_run: true, ..PostParams::default() },
        &serde_json::from_value(configmap("ghost2")).unwrap(),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("ghost2").await.unwrap().is_none());
    cms.delete("real", &DeleteParams { dry_run: true, ..DeleteParams::default() }).await.unwrap();
    assert_eq!(cms.get("real").await.unwrap().metadata.resource_version, Some(rv_of(&real).to_string()));
    sim.shutdown().await;
}

/// Ref §1.1 "custom resources" and Appendix A "Storage … custom resources": a CRD written through
/// the API starts serving its type (Established, with the cleanup finalizer); its objects are
/// stored like any other; deleting the CRD deletes them and then stops serving the type.
#[tokio::test]
async fn a_crd_written_through_the_api_serves_its_type_until_it_is_deleted() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    });
    let path = "/apis/example.com/v1/namespaces/shop/widgets";
    wire.get(path).await.expect(404);
    wire.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).await.expect(201);
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    let established = |c: &Value| {
        c["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["type"] == "Established" && x["status"] == "True")
    };
    let mut c = wire.get(crd_path).await.expect(200);
    for _ in 0..100 {
        if established(&c) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        c = wire.get(crd_path).await.expect(200);
    }
    assert!(established(&c), "the CRD is established: {c}");
    assert_eq!(c["metadata"]["finalizers"], json!(["customresourcecleanup.apiextensions.k8s.io"]));
    assert_eq!(c["status"]["storedVersions"], json!(["v1"]));

    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let created = wire.post(path, w).await.expect(201);
    assert_eq!(created["metadata"]["generation"], 1);
    let listed = wire.get(path).await.expect(200);
    assert_eq!((listed["kind"].as_str(), listed["items"][0]["spec"]["size"].as_i64()), (Some("WidgetList"), Some(3)));
    let resources = wire.get("/apis/example.com/v1").await.expect(200);
    assert_eq!(resources["resources"][0]["name"], "widgets");

    wire.delete(crd_path).await.expect(200);
    let mut gone = false;
    for _ in 0..200 {
        if wire.get(crd_path).await.code == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the CRD goes once its objects are deleted");
    wire.get(path).await.expect(404);
    sim.shutdown().await;
}

/// Ref §1.1 core types: a Secret's `stringData` is write-only: merged into `data` (base64, winning
/// over a `data` key of the same name) and never stored or returned.
#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"user": "b2xk", "keep": "a2VlcA=="}, "stringData": {"user": "admin"}});
    let created = wire.post("/api/v1/namespaces/shop/secrets", s).await.expect(201);
    assert_eq!(created["data"], json!({"user": "YWRtaW4=", "keep": "a2VlcA=="}));
    assert!(created.get("stringData").is_none(), "stringData is never returned: {created}");
    let patched = wire
        .patch(
            "/api/v1/namespaces/shop/secrets/creds",
            "application/merge-patch+json",
            json!({"stringData": {"keep": "x"}}),
        )
        .await
        .expect(200);
    assert_eq!(patched["data"]["keep"], "eA==");
    assert!(patched.get("stringData").is_none());
    sim.shutdown().await;
}
