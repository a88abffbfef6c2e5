//! PATCH in each content type, as kube-rs, kubectl and Velero send them.

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{Wire, configmap, rv_of, shop, shop_without_velero};
use crate::support;

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// Ref §0 item 10, §1.10 "Custom resources accept JSON Patch, Merge Patch and Apply, not strategic
/// merge (415)", §3.1 "uncordon sends `{"spec":{"unschedulable":null}}`": `null` in a merge or
/// strategic merge patch deletes the field (kubectl's uncordon leaves no `unschedulable: false`
/// behind), and a strategic merge patch of a custom resource is 415 listing the accepted types.
#[tokio::test]
async fn null_deletes_a_field_and_strategic_merge_is_refused_for_custom_resources() {
    let sim = support::sim(shop_without_velero()).await;
    let wire = Wire::new(&sim);
    let cordoned =
        wire.patch("/api/v1/nodes/node-1", STRATEGIC, json!({"spec": {"unschedulable": true}})).await.expect(200);
    assert_eq!(cordoned["spec"]["unschedulable"], true);
    let uncordoned =
        wire.patch("/api/v1/nodes/node-1", STRATEGIC, json!({"spec": {"unschedulable": null}})).await.expect(200);
    assert!(uncordoned["spec"].get("unschedulable").is_none(), "removed, not false: {}", uncordoned["spec"]);
    wire.patch("/api/v1/nodes/node-2", MERGE, json!({"metadata": {"labels": {"zone": "a"}}})).await.expect(200);
    let unlabelled =
        wire.patch("/api/v1/nodes/node-2", MERGE, json!({"metadata": {"labels": {"zone": null}}})).await.expect(200);
    assert!(unlabelled["metadata"]["labels"].get("zone").is_none());

    let backups = "/apis/velero.io/v1/namespaces/velero/backups";
    wire.post(
        backups,
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "b"}, "spec": {"ttl": "1h0m0s"}}),
    )
    .await
    .expect(201);
    let refused = wire.patch(&format!("{backups}/b"), STRATEGIC, json!({"spec": {"ttl": "2h0m0s"}})).await.expect(415);
    assert_eq!(refused["reason"], "UnsupportedMediaType");
    assert_eq!(
        refused["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    let merged = wire.patch(&format!("{backups}/b"), MERGE, json!({"spec": {"ttl": null}})).await.expect(200);
    assert_eq!(merged["spec"], json!({}), "merge patch on a CR, null deleting");

    let nodes: Api<Node> = Api::all(support::kube_client(&sim));
    let n = nodes
        .patch("node-3", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"unschedulable": true}})))
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    let n = nodes
        .patch("node-3", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"unschedulable": null}})))
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, None);
    sim.shutdown().await;
}

/// Ref §1.10 (the content-type table), Appendix A "Patch: merge (null = delete), strategic for
/// built-ins, JSON patch, apply (create-if-missing)": merge replaces lists wholesale while
/// strategic merge merges containers by name; JSON patch applies operations and a failing `test`
/// is 422; apply needs `fieldManager` (422 without) and creates a missing object (201); an
/// unknown content type is 415.
#[tokio::test]
async fn patches_of_each_kind_follow_their_rules() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {"nodeSelector": {"nowhere": "true"}, "containers": [
            {"name": "app", "image": "registry.example/app:1"}, {"name": "side", "image": "registry.example/side:1"}]}});
    wire.post("/api/v1/namespaces/shop/pods", pod).await.expect(201);
    let path = "/api/v1/namespaces/shop/pods/p";
    let smp = wire
        .patch(path, STRATEGIC, json!({"spec": {"containers": [{"name": "side", "image": "registry.example/side:2"}]}}))
        .await
        .expect(200);
    let images: Vec<_> = smp["spec"]["containers"].as_array().unwrap().iter().map(|c| c["image"].clone()).collect();
    assert_eq!(images, [json!("registry.example/app:1"), json!("registry.example/side:2")], "merged by name");
    let merged = wire
        .patch(
            path,
            MERGE,
            json!({"metadata": {"annotations": {"x": "y"}}, "spec": {"tolerations": [{"operator": "Exists"}]}}),
        )
        .await
        .expect(200);
    assert_eq!(merged["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    let merged = wire
        .patch(path, MERGE, json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists"}]}}))
        .await
        .expect(200);
    assert_eq!(
        merged["spec"]["tolerations"],
        json!([{"key": "k", "operator": "Exists"}]),
        "merge patch replaces lists"
    );

    let jp = wire
        .patch(path, JSON_PATCH, json!([{"op": "test", "path": "/metadata/labels/a", "value": "1"}, {"op": "replace", "path": "/metadata/labels/a", "value": "2"}]))
        .await
        .expect(200);
    assert_eq!(jp["metadata"]["labels"]["a"], "2");
    let failed = wire
        .patch(path, JSON_PATCH, json!([{"op": "test", "path": "/metadata/labels/a", "value": "1"}]))
        .await
        .expect(422);
    assert_eq!(failed["reason"], "Invalid");

    let cm = configmap("applied");
    let no_manager = wire.patch("/api/v1/namespaces/shop/configmaps/applied", APPLY, cm.clone()).await.expect(422);
    assert_eq!(
        no_manager["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let created =
        wire.patch("/api/v1/namespaces/shop/configmaps/applied?fieldManager=drill", APPLY, cm).await.expect(201);
    assert_eq!(created["data"], json!({"k": "v"}));
    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client(&sim), "shop");
    let applied = cms
        .patch(
            "applied",
            &PatchParams::apply("drill"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "w"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["k"], "w");
    assert!(applied.metadata.resource_version.unwrap().parse::<u64>().unwrap() > rv_of(&created));

    let unknown = wire.patch(path, "application/json", json!({"metadata": {}})).await.expect(415);
    assert_eq!(unknown["reason"], "UnsupportedMediaType");
    sim.shutdown().await;
}
