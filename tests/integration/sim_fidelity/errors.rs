//! Errors: `Status` bodies with the real reasons, codes and messages, as kube-rs and people read
//! them.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde_json::json;

use super::{Wire, configmap, rv_of, shop, shop_without_velero};
use crate::support;

fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("wanted an API error, got {other:?}"),
    }
}

/// Ref §0 item 4, §1.4 (shape, the reasons table), §1.13 "`Status::is_not_found`… compare the
/// `reason` string", Appendix A "Errors": NotFound, AlreadyExists, a create into a missing
/// namespace, BadRequest and MethodNotAllowed, as `Status` objects with `status: Failure`, the
/// HTTP code in `code`, the resource plural (and group) in `details`; kube-rs maps them by reason.
#[tokio::test]
async fn errors_are_status_objects_with_the_exact_reasons_and_messages() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let missing = wire.get("/api/v1/namespaces/shop/pods/nope").await.expect(404);
    assert_eq!(
        missing,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"nope\" not found", "reason": "NotFound",
               "details": {"name": "nope", "kind": "pods"}, "code": 404})
    );
    let deploy = wire.get("/apis/apps/v1/namespaces/shop/deployments/web").await.expect(404);
    assert_eq!(deploy["message"], "deployments.apps \"web\" not found");
    assert_eq!(deploy["details"], json!({"name": "web", "group": "apps", "kind": "deployments"}));

    wire.post("/api/v1/namespaces/shop/configmaps", configmap("taken")).await.expect(201);
    let exists = wire.post("/api/v1/namespaces/shop/configmaps", configmap("taken")).await.expect(409);
    assert_eq!(
        (exists["reason"].as_str(), exists["message"].as_str()),
        (Some("AlreadyExists"), Some("configmaps \"taken\" already exists"))
    );
    let nowhere = wire.post("/api/v1/namespaces/ghost/configmaps", configmap("x")).await.expect(404);
    assert_eq!(nowhere["message"], "namespaces \"ghost\" not found");
    assert_eq!(nowhere["details"], json!({"name": "ghost", "kind": "namespaces"}));
    let mismatch = wire
        .post("/api/v1/namespaces/shop/configmaps", json!({"metadata": {"name": "m", "namespace": "default"}}))
        .await
        .expect(400);
    assert_eq!(
        mismatch["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    let not_allowed = wire.get("/api/v1/namespaces/shop/pods/nope/eviction").await.expect(405);
    assert_eq!(not_allowed["reason"], "MethodNotAllowed");
    let unserved = wire.get("/apis/widgets.example.com/v1/widgets").await.expect(404);
    assert_eq!(unserved["reason"], "NotFound");

    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert!(pods.get_opt("nope").await.unwrap().is_none(), "get_opt reads NotFound as None");
    let cms: Api<ConfigMap> = Api::namespaced(client, "shop");
    let s = api_error(cms.create(&PostParams::default(), &serde_json::from_value(configmap("taken")).unwrap()).await);
    assert_eq!((s.code, s.reason.as_str(), s.is_already_exists()), (409, "AlreadyExists", true));
    sim.shutdown().await;
}

/// Ref §1.4 "Conflict", §1.5 "Update… differs from the stored one → 409", "Delete honours
/// preconditions": a PUT or patch carrying a stale resourceVersion, and a DELETE whose
/// preconditions do not hold, are 409 `Conflict` with the real messages.
#[tokio::test]
async fn a_stale_write_is_409_conflict_with_the_optimistic_lock_message() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let first = wire.post("/api/v1/namespaces/shop/configmaps", configmap("c")).await.expect(201);
    let mut stale = first.clone();
    wire.patch("/api/v1/namespaces/shop/configmaps/c", "application/merge-patch+json", json!({"data": {"k": "new"}}))
        .await
        .expect(200);
    stale["data"]["k"] = json!("lost update");
    let put = wire.put("/api/v1/namespaces/shop/configmaps/c", stale).await.expect(409);
    let lock = "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again";
    assert_eq!((put["reason"].as_str(), put["message"].as_str()), (Some("Conflict"), Some(lock)));
    assert_eq!(put["details"], json!({"name": "c", "kind": "configmaps"}));
    let patch = wire
        .patch(
            "/api/v1/namespaces/shop/configmaps/c",
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "data": {"k": "x"}}),
        )
        .await
        .expect(409);
    assert_eq!(patch["message"], lock);

    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client(&sim), "shop");
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("not-the-uid".into()), resource_version: None }),
        ..DeleteParams::default()
    };
    let s = api_error(cms.delete("c", &dp).await);
    assert!(s.is_conflict());
    assert_eq!(
        s.message,
        format!(
            "Operation cannot be fulfilled on configmaps \"c\": Precondition failed: UID in precondition: not-the-uid, UID in object meta: {}",
            first["metadata"]["uid"].as_str().unwrap()
        )
    );
    sim.shutdown().await;
}

/// Ref §1.4 "Invalid… PUT without `metadata.resourceVersion` on a type that forbids unconditional
/// update (all CRs)", §1.5: a custom resource PUT without a resourceVersion is 422 `Invalid` —
/// the message names the group-resource, as the registry builds it — while a built-in type
/// updates unconditionally.
#[tokio::test]
async fn a_cr_put_without_resource_version_is_422_but_a_built_in_updates() {
    let sim = support::sim(shop_without_velero()).await;
    let wire = Wire::new(&sim);
    let backups = "/apis/velero.io/v1/namespaces/velero/backups";
    let body = json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b1"}, "spec": {}});
    wire.post(backups, body.clone()).await.expect(201);
    let mut update = body;
    update["spec"]["ttl"] = json!("1h0m0s");
    let invalid = wire.put(&format!("{backups}/b1"), update).await.expect(422);
    assert_eq!(invalid["reason"], "Invalid");
    assert_eq!(
        invalid["message"],
        "backups.velero.io \"b1\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    assert_eq!(
        invalid["details"],
        json!({"name": "b1", "group": "velero.io", "kind": "backups", "causes": [
            {"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified for an update", "field": "metadata.resourceVersion"}]})
    );

    let created = wire.post("/api/v1/namespaces/shop/configmaps", configmap("c")).await.expect(201);
    let mut cm = configmap("c");
    cm["data"]["k"] = json!("unconditional");
    let updated = wire.put("/api/v1/namespaces/shop/configmaps/c", cm).await.expect(200);
    assert!(rv_of(&updated) > rv_of(&created));
    assert_eq!(updated["data"]["k"], "unconditional");
    sim.shutdown().await;
}
