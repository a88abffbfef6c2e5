//! The Eviction API step by step (ref §2.2), the disruption controller's arithmetic (§2.4), and
//! what kube-rs's built-in retry makes of a blocked eviction (§1.13).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::{Reply, Wire, app, bare_pod, shop};
use crate::support;

fn config(apps: Vec<firedrill::sim::config::AppSpec>) -> firedrill::sim::config::SimConfig {
    firedrill::sim::config::SimConfig { apps, ..shop() }
}

async fn evict(wire: &Wire, pod: &str) -> Reply {
    wire.post(
        &format!("/api/v1/namespaces/shop/pods/{pod}/eviction"),
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "shop"}}),
    )
    .await
}

fn pdb_status(p: &PodDisruptionBudget) -> Value {
    serde_json::to_value(p.status.as_ref().unwrap()).unwrap()
}

/// Waits until the PDB's status has these values (each key of `want` compared); a timeout shows
/// the last status seen.
async fn pdb_reaches(pdbs: &Api<PodDisruptionBudget>, name: &str, want: Value) -> PodDisruptionBudget {
    let deadline = tokio::time::Instant::now() + support::SIM_PATIENCE;
    loop {
        let pdb = pdbs.get(name).await.unwrap();
        let status = pdb.status.as_ref().map(|s| serde_json::to_value(s).unwrap()).unwrap_or_default();
        if want.as_object().unwrap().iter().all(|(k, v)| &status[k] == v) {
            return pdb;
        }
        assert!(tokio::time::Instant::now() < deadline, "PDB {name} never reached {want}; last status: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap()
}

fn pdb(name: &str, app: &str, spec: Value) -> Value {
    let mut s = spec;
    s["selector"] = json!({"matchLabels": {"app": app}});
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name}, "spec": s})
}

const SPENT: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Ref §2.2 step 1 and §2.1 "`metadata.name` must equal the URL name": an eviction of a missing pod
/// is 404 with the pod's NotFound; a body naming another pod is 400.
#[tokio::test]
async fn evicting_a_missing_pod_is_404_and_a_mismatched_name_400() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let missing = evict(&wire, "nope").await.expect(404);
    assert_eq!(
        missing,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "pods \"nope\" not found",
               "reason": "NotFound", "details": {"name": "nope", "kind": "pods"}, "code": 404})
    );
    let mismatch = wire
        .post("/api/v1/namespaces/shop/pods/nope/eviction", json!({"metadata": {"name": "other"}}))
        .await
        .expect(400);
    assert_eq!(
        (mismatch["reason"].as_str(), mismatch["message"].as_str()),
        (Some("BadRequest"), Some("name in URL does not match name in Eviction object"))
    );
    sim.shutdown().await;
}

/// Ref §2.2 step 2: a `Pending` pod, and one already being deleted, are deleted without
/// consulting their PDB (here one that allows no disruption): 201, and the budget is untouched.
#[tokio::test]
async fn pending_and_terminating_pods_bypass_the_budget() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "shop");
    wire.post("/apis/policy/v1/namespaces/shop/poddisruptionbudgets", pdb("strict", "bp", json!({"minAvailable": 5})))
        .await
        .expect(201);
    let mut pending = bare_pod("pending", "bp", json!({}));
    pending["spec"]["nodeSelector"] = json!({"nowhere": "true"});
    wire.post("/api/v1/namespaces/shop/pods", pending).await.expect(201);
    wire.post("/api/v1/namespaces/shop/pods", bare_pod("running", "bp", json!({}))).await.expect(201);
    support::ready_pods(&pods, "bp", 1).await;
    pdb_reaches(
        &pdbs,
        "strict",
        json!({"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 5, "expectedPods": 2}),
    )
    .await;

    assert_eq!(evict(&wire, "pending").await.expect(201)["status"], "Success");
    wire.get("/api/v1/namespaces/shop/pods/pending").await.expect(404);

    assert_eq!(evict(&wire, "running").await.expect(429)["message"], SPENT, "a running pod does not bypass");
    wire.faults(json!({"stalledControllers": ["kubelet"]})).await;
    let marked = wire.delete("/api/v1/namespaces/shop/pods/running").await.expect(200);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(evict(&wire, "running").await.expect(201)["status"], "Success", "already terminating: bypass");
    let strict = pdbs.get("strict").await.unwrap();
    assert!(pdb_status(&strict).get("disruptedPods").is_none(), "no budget was spent: {:?}", strict.status);
    sim.shutdown().await;
}

/// Ref §0 item 8, §2.2 step 3, §1.4 (the `""` reason row): a pod matched by two PDBs is HTTP 500
/// with a Failure Status that has no reason (Go omits the empty one) and kube-rs does not retry it;
/// a pod matched by none is evicted (201).
#[tokio::test]
async fn a_pod_under_two_budgets_is_500_without_a_reason() {
    let sim = support::sim(config(vec![app("web", 2, Some(json!({"maxUnavailable": 1}))), app("free", 1, None)])).await;
    let wire = Wire::new(&sim);
    let pods: Api<Pod> = Api::namespaced(support::kube_client(&sim), "shop");
    let web = support::ready_pods(&pods, "web", 2).await;
    wire.post("/apis/policy/v1/namespaces/shop/poddisruptionbudgets", pdb("second", "web", json!({"minAvailable": 1})))
        .await
        .expect(201);

    let two = evict(&wire, &name(&web[0])).await.expect(500);
    assert_eq!(
        two,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.", "code": 500})
    );
    let target = name(&web[1]);
    match pods.evict(&target, &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (500, "")),
        other => panic!("kube-rs gets the 500: {other:?}"),
    }
    assert_eq!(wire.evictions("shop", &target).await, 1, "a 500 is not retried");

    let free = support::ready_pods(&pods, "free", 1).await;
    assert_eq!(evict(&wire, &name(&free[0])).await.expect(201)["code"], 201);
    sim.shutdown().await;
}

/// Ref §2.2 step 4, §2.3 `unhealthyPodEvictionPolicy`: a Running pod that is not Ready is evicted
/// without spending budget while the PDB has its desired healthy pods (`IfHealthyBudget`, the
/// default); when it does not, such a pod is refused like any other — unless the policy is
/// `AlwaysAllow`.
#[tokio::test]
async fn unhealthy_pods_follow_the_unhealthy_pod_eviction_policy() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "shop");
    let never_ready = json!({"annotations": {"firedrill.dev/sim-never-ready": "true"}});
    for (pod, label, meta) in [
        ("u-1", "u", json!({})),
        ("u-2", "u", json!({})),
        ("u-sick", "u", never_ready.clone()),
        ("v-1", "v", json!({})),
        ("v-2", "v", json!({})),
        ("v-sick", "v", never_ready.clone()),
    ] {
        wire.post("/api/v1/namespaces/shop/pods", bare_pod(pod, label, meta)).await.expect(201);
    }
    wire.post("/apis/policy/v1/namespaces/shop/poddisruptionbudgets", pdb("u", "u", json!({"minAvailable": 2})))
        .await
        .expect(201);
    wire.post("/apis/policy/v1/namespaces/shop/poddisruptionbudgets", pdb("v", "v", json!({"minAvailable": 3})))
        .await
        .expect(201);
    support::ready_pods(&pods, "u", 2).await;
    support::ready_pods(&pods, "v", 2).await;
    for (pdb, desired) in [("u", 2), ("v", 3)] {
        pdb_reaches(
            &pdbs,
            pdb,
            json!({"expectedPods": 3, "currentHealthy": 2, "desiredHealthy": desired, "disruptionsAllowed": 0}),
        )
        .await;
    }
    for sick in ["u-sick", "v-sick"] {
        let p = pods.get(sick).await.unwrap();
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert!(!support::pod_is_ready(&p));
    }

    assert_eq!(evict(&wire, "u-1").await.expect(429)["message"], SPENT, "healthy pods need budget");
    evict(&wire, "u-sick").await.expect(201);
    let u = pdbs.get("u").await.unwrap();
    assert_eq!(pdb_status(&u)["disruptionsAllowed"], 0);
    assert!(pdb_status(&u).get("disruptedPods").is_none(), "an unhealthy pod spends no budget: {:?}", u.status);

    let refused = evict(&wire, "v-sick").await.expect(429);
    assert_eq!(
        refused["details"]["causes"][0]["message"], "The disruption budget v needs 3 healthy pods and has 2 currently",
        "below its desired healthy pods, IfHealthyBudget protects even unhealthy pods"
    );
    pdbs.patch(
        "v",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}})),
    )
    .await
    .unwrap();
    support::wait_for(
        &pdbs,
        "v",
        "the disruption controller observes generation 2",
        |p: Option<&PodDisruptionBudget>| {
            p.and_then(|p| p.status.as_ref()).and_then(|s| s.observed_generation) == Some(2)
        },
    )
    .await;
    evict(&wire, "v-sick").await.expect(201);
    sim.shutdown().await;
}

/// Ref §2.2 step 5 (`observedGeneration < generation`), §1.4 "When `details.retryAfterSeconds` > 0
/// the server also sets an HTTP `Retry-After`", Appendix A "Errors: Retry-After header": a PDB whose
/// latest spec the disruption controller has not processed (the controller is stalled) refuses
/// with 429, the "still being processed" cause and `Retry-After: 10`; once it catches up, the
/// eviction goes through.
#[tokio::test]
async fn a_budget_not_yet_observed_is_429_with_retry_after_10() {
    let sim = support::sim(config(vec![app("web", 3, Some(json!({"maxUnavailable": 1})))])).await;
    let wire = Wire::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "shop");
    let web = support::ready_pods(&pods, "web", 3).await;
    pdb_reaches(&pdbs, "web", json!({"disruptionsAllowed": 1, "observedGeneration": 1})).await;
    wire.faults(json!({"stalledControllers": ["disruption"]})).await;
    let changed = pdbs
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"maxUnavailable": 2}})))
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));

    let r = evict(&wire, &name(&web[0])).await;
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(
        r.expect(429),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": SPENT, "reason": "TooManyRequests",
               "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web is still being processed by the server."}],
                           "retryAfterSeconds": 10},
               "code": 429})
    );
    wire.faults(json!({})).await;
    pdb_reaches(&pdbs, "web", json!({"observedGeneration": 2, "disruptionsAllowed": 2})).await;
    evict(&wire, &name(&web[0])).await.expect(201);
    sim.shutdown().await;
}

/// Ref §2.2 steps 6–7 and §1.13 "`Api::evict` posts `{"delete_options": …}`… silently ignored":
/// success is 201 with `Status{Success, code: 201}`; the pod first gets the `DisruptionTarget`
/// condition, then a graceful delete with the Eviction's `deleteOptions` (a policy/v1 body's
/// grace period counts, kube-rs's snake-case `delete_options` does not).
#[tokio::test]
async fn a_successful_eviction_is_201_marks_the_pod_and_deletes_it_gracefully() {
    let sim = support::sim(config(vec![app("web", 3, None)])).await;
    let wire = Wire::new(&sim);
    let pods: Api<Pod> = Api::namespaced(support::kube_client(&sim), "shop");
    let web = support::ready_pods(&pods, "web", 3).await;
    wire.faults(json!({"stalledControllers": ["kubelet"]})).await;

    let first = name(&web[0]);
    let body = evict(&wire, &first).await.expect(201);
    assert_eq!(body, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}));
    let evicted = pods.get(&first).await.unwrap();
    assert!(
        evicted.metadata.deletion_timestamp.is_some(),
        "deleted gracefully, still there until its kubelet confirms"
    );
    assert_eq!(evicted.metadata.deletion_grace_period_seconds, Some(30));
    let target =
        evicted.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionTarget").unwrap();
    assert_eq!(
        (target.status.as_str(), target.reason.as_deref(), target.message.as_deref()),
        ("True", Some("EvictionByEvictionAPI"), Some("Eviction API: evicting"))
    );

    let second = name(&web[1]);
    let with_grace = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": second}, "deleteOptions": {"gracePeriodSeconds": 5}});
    wire.post(&format!("/api/v1/namespaces/shop/pods/{second}/eviction"), with_grace).await.expect(201);
    assert_eq!(pods.get(&second).await.unwrap().metadata.deletion_grace_period_seconds, Some(5));

    let third = name(&web[2]);
    let ep = EvictParams {
        delete_options: Some(DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }),
        ..EvictParams::default()
    };
    let status = pods.evict(&third, &ep).await.unwrap();
    assert!(status.is_success(), "{status:?}");
    let kept = pods.get(&third).await.unwrap();
    assert_eq!(
        kept.metadata.deletion_grace_period_seconds,
        Some(30),
        "kube-rs's delete_options never reach the server"
    );
    sim.shutdown().await;
}

/// Ref §2.4 (the worked example) and §2.2 "The PDB decrement is immediate and independent of the
/// disruption controller": Deployment of 3, `minAvailable: 2` → allowed 1. Evicting A is 201 and
/// the PDB at once shows 0 allowed and A in `disruptedPods`; evicting B is 429 "needs 2 healthy
/// pods and has 3 currently" without `Retry-After` (the status still says 3: the controller is
/// stalled). The controller then computes 2 healthy (A is terminating; its kubelet is stalled),
/// and once A is gone and its replacement Ready, 3 healthy and 1 allowed again.
#[tokio::test]
async fn the_disruption_controller_follows_the_worked_example() {
    let sim = support::sim(config(vec![app("web", 3, Some(json!({"minAvailable": 2})))])).await;
    let wire = Wire::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "shop");
    let web = support::ready_pods(&pods, "web", 3).await;
    let before = pdb_reaches(
        &pdbs,
        "web",
        json!({"expectedPods": 3, "desiredHealthy": 2, "currentHealthy": 3, "disruptionsAllowed": 1}),
    )
    .await;
    let allowed =
        before.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionAllowed").unwrap();
    assert_eq!((allowed.status.as_str(), allowed.reason.as_str()), ("True", "SufficientPods"));
    wire.faults(json!({"stalledControllers": ["disruption", "kubelet"]})).await;

    let (a, b) = (name(&web[0]), name(&web[1]));
    evict(&wire, &a).await.expect(201);
    let spent = pdbs.get("web").await.unwrap();
    let s = pdb_status(&spent);
    assert_eq!((s["disruptionsAllowed"].as_i64(), s["currentHealthy"].as_i64()), (Some(0), Some(3)));
    assert!(s["disruptedPods"].get(&a).is_some_and(Value::is_string), "{s}");
    let condition = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "DisruptionAllowed").unwrap();
    assert_eq!((condition["status"].as_str(), condition["reason"].as_str()), (Some("False"), Some("InsufficientPods")));

    let refused = evict(&wire, &b).await;
    assert_eq!(refused.header("retry-after"), None, "retryAfterSeconds 0: no Retry-After");
    assert_eq!(
        refused.expect(429),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": SPENT, "reason": "TooManyRequests",
               "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 3 currently"}]},
               "code": 429})
    );

    // With an integer minAvailable, expectedPods counts every matched pod: A (terminating), B, C
    // and A's replacement (Pending: its kubelet is stalled) — 4, as the real controller counts.
    wire.faults(json!({"stalledControllers": ["kubelet"]})).await;
    let recomputed =
        pdb_reaches(&pdbs, "web", json!({"expectedPods": 4, "currentHealthy": 2, "disruptionsAllowed": 0})).await;
    assert!(pdb_status(&recomputed).get("disruptedPods").is_none(), "A is terminating: its entry is dropped");
    wire.faults(json!({})).await;
    pdb_reaches(&pdbs, "web", json!({"currentHealthy": 3, "disruptionsAllowed": 1})).await;
    assert!(pods.get_opt(&a).await.unwrap().is_none());
    sim.shutdown().await;
}

/// Ref §0 item 7, §1.13 "Built-in retries", §2.2 "kube-rs ≥ 4.0 retries 429 inside the client":
/// with its default retry, one `Api::evict` against a spent budget becomes several POSTs (counted
/// by the simulator) and returns success once the budget frees (here: the Deployment is scaled up
/// and the new pod becomes Ready). Without the retry, the caller sees the first 429.
#[tokio::test]
async fn kube_rs_default_retry_turns_one_evict_into_several_posts() {
    let sim = support::sim(config(vec![app("web", 2, Some(json!({"minAvailable": 2})))])).await;
    let wire = Wire::new(&sim);
    let pods: Api<Pod> = Api::namespaced(support::kube_client(&sim), "shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(support::kube_client(&sim), "shop");
    let web = support::ready_pods(&pods, "web", 2).await;
    pdb_reaches(&pdbs, "web", json!({"currentHealthy": 2, "disruptionsAllowed": 0})).await;
    let (a, b) = (name(&web[0]), name(&web[1]));

    let bare: Api<Pod> = Api::namespaced(support::kube_client_without_retry(&sim), "shop");
    match bare.evict(&b, &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests")),
        other => panic!("without retry the 429 reaches the caller: {other:?}"),
    }
    assert_eq!(wire.evictions("shop", &b).await, 1);

    let evicting = {
        let (pods, a) = (pods.clone(), a.clone());
        tokio::spawn(async move { pods.evict(&a, &EvictParams::default()).await })
    };
    support::until("kube-rs re-sends the blocked eviction", || async {
        (wire.evictions("shop", &a).await >= 3).then_some(())
    })
    .await;
    assert!(!evicting.is_finished(), "still retrying inside one evict call");
    let deployments: Api<Deployment> = Api::namespaced(support::kube_client(&sim), "shop");
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
    let status =
        tokio::time::timeout(Duration::from_secs(120), evicting).await.expect("the retries end").unwrap().unwrap();
    assert!(status.is_success(), "{status:?}");
    let posts = wire.evictions("shop", &a).await;
    assert!(posts >= 4, "one evict call, {posts} POSTs");
    sim.shutdown().await;
}
