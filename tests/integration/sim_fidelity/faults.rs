//! Fault injection: the errors a drill must survive, delivered as the real server would.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

use super::{Wire, configmap, events, read_to_end, rv_of, shop};
use crate::support;

/// Appendix A "Fault injection: 429/5xx on chosen calls", with §1.4 (reasons, `Retry-After`) and
/// §1.13 (kube-rs reads the Status): a rule fires on its verb and resource only; a 503 is a
/// `ServiceUnavailable` Status; a 429 with `retryAfterSeconds` carries the `Retry-After` header; a
/// watch can be cut after N events (a dropped connection: the stream just ends). The other rows'
/// faults — the in-band 410, delayed deletions, stuck finalizers — have their own tests
/// (`watch::a_stale_watch_…`, `deletion::graceful_pod_deletion_…`, `deletion::a_namespace_…`).
#[tokio::test]
async fn injected_faults_reach_clients_as_the_real_errors_would() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    wire.faults(json!({
        "rules": [
            {"verb": "list", "resource": "pods", "errorRate": 1.0, "errorCode": 503},
            {"verb": "create", "resource": "pods/eviction", "errorRate": 1.0, "errorCode": 429, "retryAfterSeconds": 3},
        ],
        "dropWatchesAfter": {"configmaps": 1},
    }))
    .await;

    let unavailable = wire.get("/api/v1/namespaces/shop/pods").await.expect(503);
    assert_eq!(
        (unavailable["reason"].as_str(), unavailable["status"].as_str()),
        (Some("ServiceUnavailable"), Some("Failure"))
    );
    wire.get("/api/v1/namespaces/shop/pods/nope").await.expect(404);
    let pods: Api<Pod> = Api::namespaced(support::kube_client_without_retry(&sim), "shop");
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable")),
        other => panic!("kube-rs sees the 503: {other:?}"),
    }

    let throttled = wire.post("/api/v1/namespaces/shop/pods/any/eviction", json!({"metadata": {"name": "any"}})).await;
    assert_eq!(throttled.header("retry-after"), Some("3"));
    let s = throttled.expect(429);
    assert_eq!((s["reason"].as_str(), s["details"]["retryAfterSeconds"].as_i64()), (Some("TooManyRequests"), Some(3)));

    let from = wire.post("/api/v1/namespaces/shop/configmaps", configmap("a")).await.expect(201);
    let watch =
        format!("/api/v1/namespaces/shop/configmaps?watch=true&timeoutSeconds=60&resourceVersion={}", rv_of(&from) - 1);
    let resp = wire.open(&watch).await;
    wire.post("/api/v1/namespaces/shop/configmaps", configmap("b")).await.expect(201);
    let seen = events(&read_to_end(resp, Duration::from_secs(30)).await);
    assert_eq!(seen.len(), 1, "cut after one event, long before its timeout: {seen:?}");

    wire.faults(json!({})).await;
    wire.get("/api/v1/namespaces/shop/pods").await.expect(200);
    sim.shutdown().await;
}
