//! List responses: their shape, pagination with one resourceVersion, expiring continue tokens,
//! and selectors.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::{Wire, app, configmap, rv_of, shop};
use crate::support;

fn names(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

/// Ref §0 item 3, §1.6 "Shape", §1.3 "Built-in list items", Appendix A "List: list RV,
/// `items: []`": an empty list has `"items": []` (present, not null) and a non-empty
/// `metadata.resourceVersion`; built-in items come without `kind`/`apiVersion`; kube-rs lists both.
#[tokio::test]
async fn lists_always_carry_items_and_a_resource_version() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let empty = wire.get("/api/v1/namespaces/shop/secrets").await.expect(200);
    assert_eq!(empty["items"], json!([]));
    assert_eq!((empty["kind"].as_str(), empty["apiVersion"].as_str()), (Some("SecretList"), Some("v1")));
    assert!(!empty["metadata"]["resourceVersion"].as_str().unwrap().is_empty());
    let backups = wire.get("/apis/velero.io/v1/namespaces/shop/backups").await.expect(200);
    assert_eq!((backups["items"].clone(), backups["kind"].as_str()), (json!([]), Some("BackupList")));
    assert!(!backups["metadata"]["resourceVersion"].as_str().unwrap().is_empty());

    let created = wire.post("/api/v1/namespaces/shop/configmaps", configmap("one")).await.expect(201);
    let list = wire.get("/api/v1/namespaces/shop/configmaps").await.expect(200);
    let item = list["items"].as_array().unwrap().iter().find(|i| i["metadata"]["name"] == "one").unwrap();
    assert!(item.get("kind").is_none() && item.get("apiVersion").is_none(), "built-in list items: {item}");
    assert!(rv_of(&list) >= rv_of(&created), "the list is served at the store's revision");

    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client(&sim), "shop");
    assert!(
        cms.list(&ListParams::default()).await.unwrap().items.iter().any(|c| c.metadata.name.as_deref() == Some("one"))
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(support::kube_client(&sim), "shop");
    let none = secrets.list(&ListParams::default()).await.unwrap();
    assert!(none.items.is_empty() && none.metadata.resource_version.is_some_and(|rv| !rv.is_empty()));
    sim.shutdown().await;
}

/// Ref §1.6 "`limit=N`… All pages of one paginated list carry the same
/// `metadata.resourceVersion`", Appendix A "List: limit/continue": pages follow key order, the
/// last has no `continue`, and writes between pages do not leak into the snapshot.
#[tokio::test]
async fn pagination_keeps_one_resource_version_across_pages() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    for n in ["c", "a", "e", "b", "d"] {
        wire.post("/api/v1/namespaces/shop/configmaps", configmap(n)).await.expect(201);
    }
    let first = wire.get("/api/v1/namespaces/shop/configmaps?limit=2").await.expect(200);
    let token = first["metadata"]["continue"].as_str().expect("more remain").to_string();
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    wire.post("/api/v1/namespaces/shop/configmaps", configmap("aa")).await.expect(201);
    wire.delete("/api/v1/namespaces/shop/configmaps/e").await.expect(200);

    let second = wire.get(&format!("/api/v1/namespaces/shop/configmaps?limit=2&continue={token}")).await.expect(200);
    let token = second["metadata"]["continue"].as_str().expect("one more page").to_string();
    let third = wire.get(&format!("/api/v1/namespaces/shop/configmaps?limit=2&continue={token}")).await.expect(200);
    assert!(third["metadata"].get("continue").is_none_or(|c| c == ""), "the last page: {third}");
    let all: Vec<String> = [&first, &second, &third].iter().flat_map(|p| names(p)).collect();
    assert_eq!(all, ["a", "b", "c", "d", "e"], "key order, as of the first page's revision");
    assert_eq!(rv_of(&first), rv_of(&second));
    assert_eq!(rv_of(&first), rv_of(&third));

    // kube-rs pages the same way (its watcher lists in pages of 500).
    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client(&sim), "shop");
    let page = cms.list(&ListParams::default().limit(4)).await.unwrap();
    assert_eq!(page.items.len(), 4);
    let rest = cms
        .list(&ListParams::default().limit(4).continue_token(page.metadata.continue_.as_deref().unwrap()))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(page.metadata.resource_version, rest.metadata.resource_version);
    sim.shutdown().await;
}

/// Ref §1.6 "Tokens expire with etcd compaction": a continue token from before a compaction is
/// 410 `Expired` with the real server's message.
#[tokio::test]
async fn an_expired_continue_token_is_410_expired_with_the_real_message() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    for n in ["a", "b", "c"] {
        wire.post("/api/v1/namespaces/shop/configmaps", configmap(n)).await.expect(201);
    }
    let first = wire.get("/api/v1/namespaces/shop/configmaps?limit=1").await.expect(200);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    wire.compact().await;
    let gone = wire.get(&format!("/api/v1/namespaces/shop/configmaps?limit=1&continue={token}")).await;
    let status = gone.expect(410);
    assert_eq!((status["reason"].as_str(), status["status"].as_str()), (Some("Expired"), Some("Failure")));
    assert_eq!(
        status["message"],
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
    );
    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client_without_retry(&sim), "shop");
    match cms.list(&ListParams::default().limit(1).continue_token(&token)).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("kube-rs sees the 410: {other:?}"),
    }
    sim.shutdown().await;
}

/// Ref §1.8, §1.9, Appendix A "List: selectors": label selectors (`!=` and `notin` match objects
/// without the key), field selectors a type supports (`spec.nodeName` on pods,
/// `spec.unschedulable` on nodes), 400 for an unsupported field or an unparsable selector.
#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let sim = support::sim(firedrill::sim::config::SimConfig { apps: vec![app("web", 2, None)], ..shop() }).await;
    let wire = Wire::new(&sim);
    for (name, tier) in [("front", Some("front")), ("back", Some("back")), ("plain", None)] {
        let mut cm = configmap(name);
        if let Some(t) = tier {
            cm["metadata"]["labels"] = json!({"tier": t});
        }
        wire.post("/api/v1/namespaces/shop/configmaps", cm).await.expect(201);
    }
    let select = |q: &'static str| {
        let wire = &wire;
        async move { names(&wire.get(&format!("/api/v1/namespaces/shop/configmaps?labelSelector={q}")).await.expect(200)) }
    };
    assert_eq!(select("tier%3Dfront").await, ["front"]);
    assert_eq!(select("tier!%3Dfront").await, ["back", "plain"], "!= matches objects without the key");
    assert_eq!(select("tier%20notin%20(back)").await, ["front", "plain"]);
    assert_eq!(select("tier%20in%20(back,front)").await, ["back", "front"]);
    assert_eq!(select("!tier").await, ["plain"]);
    let bad = wire.get("/api/v1/namespaces/shop/configmaps?labelSelector=tier%3D%3D%3Dx").await.expect(400);
    assert_eq!(bad["reason"], "BadRequest");

    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::all(client.clone());
    let running = support::ready_pods(&Api::namespaced(client.clone(), "shop"), "web", 2).await;
    let node = running[0].spec.as_ref().unwrap().node_name.clone().unwrap();
    let on_node = pods.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await.unwrap();
    assert!(!on_node.items.is_empty());
    assert!(on_node.items.iter().all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(&node)));

    let nodes: Api<Node> = Api::all(client);
    nodes
        .patch(
            "node-2",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    let schedulable = nodes.list(&ListParams::default().fields("spec.unschedulable=false")).await.unwrap();
    let mut names: Vec<_> = schedulable.items.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["node-1", "node-3"], "an unset spec.unschedulable selects as false");

    let e = wire.get("/api/v1/namespaces/shop/pods?fieldSelector=spec.containers%3Dx").await.expect(400);
    assert_eq!(e["message"], "field label not supported: spec.containers");
    sim.shutdown().await;
}
