//! The pdb-check drill on the simulator: one cluster per finding (and a clean one that must give
//! none), what-if drains of simulated nodes, and `firedrill run` end to end.

use std::collections::BTreeSet;

use firedrill::drills::pdb_check::analysis::{self, FindingCode, Inventory, Scope, Severity};
use firedrill::ledger::record::Outcome;
use firedrill::measure::Verdict;
use firedrill::sim::config::{AppSpec, NodeSpec, SimConfig};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::support::{self, Firedrill, pod_is_ready, text, until, write};

fn app(name: &str, replicas: u32, pdb: Option<Value>) -> AppSpec {
    AppSpec { name: name.into(), namespace: "default".into(), replicas: Some(replicas), pdb, ..AppSpec::default() }
}

fn apps(apps: Vec<AppSpec>) -> SimConfig {
    SimConfig { apps, ..SimConfig::default() }
}

fn pdb_object(name: &str, selector: Value, spec: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = selector;
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

/// Waits until `ready` pods are Ready, `running` more run without being Ready, and the disruption
/// controller has seen every PDB; then lists the inventory.
async fn settled(client: &kube::Client, ready: usize, running: usize) -> Inventory {
    let pods: Api<Pod> = Api::all(client.clone());
    let pdbs: Api<PodDisruptionBudget> = Api::all(client.clone());
    until(&format!("{ready} Ready and {running} unready Running pods, PDB status current"), || {
        let (pods, pdbs) = (pods.clone(), pdbs.clone());
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?.items;
            let live = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none());
            let r = live.clone().filter(|p| pod_is_ready(p)).count();
            let phase = |p: &&Pod| p.status.as_ref().and_then(|s| s.phase.clone());
            let unready = live.filter(|p| !pod_is_ready(p) && phase(p).as_deref() == Some("Running")).count();
            let current = pdbs.list(&ListParams::default()).await.ok()?.items.iter().all(|p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                    && p.status.as_ref().is_some_and(|s| s.current_healthy as usize <= r)
            });
            (r == ready && unready == running && current).then_some(())
        }
    })
    .await;
    Inventory::load(client).await.expect("list the inventory")
}

/// The findings on a simulated cluster, as `(severity, code, objects)`.
async fn findings_of(config: SimConfig, ready: usize, running: usize) -> Vec<(Severity, FindingCode, Vec<String>)> {
    let sim = support::sim(config).await;
    let inv = settled(&support::kube_client(&sim), ready, running).await;
    let report = analysis::analyse(&inv, &Scope::AllButKubeSystem, true);
    sim.shutdown().await;
    report.findings.into_iter().map(|f| (f.severity, f.code, f.object_names())).collect()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn a_well_configured_cluster_has_no_findings() {
    let config = apps(vec![
        app("web", 3, Some(json!({"maxUnavailable": 1}))),
        AppSpec { kind: Some("StatefulSet".into()), ..app("db", 3, Some(json!({"minAvailable": 2}))) },
        AppSpec { kind: Some("DaemonSet".into()), ..app("agent", 1, None) },
        app("batch", 1, None),
    ]);
    assert_eq!(findings_of(config, 3 + 3 + 3 + 1, 0).await, vec![]);
}

#[tokio::test]
async fn a_multi_replica_deployment_without_a_pdb_is_a_warning() {
    let found = findings_of(apps(vec![app("web", 3, None)]), 3, 0).await;
    assert_eq!(found, vec![(Severity::Warning, FindingCode::MissingPdb, strings(&["Deployment/web"]))]);
}

#[tokio::test]
async fn a_pdb_selecting_no_pod_is_a_warning() {
    let config = SimConfig {
        objects: vec![pdb_object("orphan", json!({"matchLabels": {"app": "gone"}}), json!({"maxUnavailable": 1}))],
        ..apps(vec![app("web", 3, Some(json!({"maxUnavailable": 1})))])
    };
    let found = findings_of(config, 3, 0).await;
    assert_eq!(
        found,
        vec![(Severity::Warning, FindingCode::PdbSelectsNothing, strings(&["PodDisruptionBudget/orphan"]))]
    );
}

#[tokio::test]
async fn a_percentage_that_rounds_up_to_every_replica_never_allows_a_disruption() {
    let found = findings_of(apps(vec![app("web", 3, Some(json!({"minAvailable": "90%"})))]), 3, 0).await;
    assert_eq!(
        found,
        vec![(
            Severity::Critical,
            FindingCode::PdbNeverAllowsDisruption,
            strings(&["PodDisruptionBudget/web", "Deployment/web"])
        )]
    );
}

#[tokio::test]
async fn pods_under_two_pdbs_are_critical_and_named() {
    let sim = support::sim(SimConfig {
        objects: vec![pdb_object(
            "web-all",
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
            json!({"maxUnavailable": 1}),
        )],
        ..apps(vec![app("web", 2, Some(json!({"maxUnavailable": 1})))])
    })
    .await;
    let client = support::kube_client(&sim);
    let inv = settled(&client, 2, 0).await;
    let report = analysis::analyse(&inv, &Scope::AllButKubeSystem, true);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(
        (f.severity, f.code, f.namespace.as_str()),
        (Severity::Critical, FindingCode::PodsUnderSeveralPdbs, "default")
    );
    let names = f.object_names();
    assert_eq!(names[..2], strings(&["PodDisruptionBudget/web", "PodDisruptionBudget/web-all"]));
    let pods: BTreeSet<String> =
        inv.pods.iter().map(|p| format!("Pod/{}", p.metadata.name.as_deref().unwrap())).collect();
    assert_eq!(names[2..].iter().cloned().collect::<BTreeSet<_>>(), pods);
    let node = inv.pods[0].spec.as_ref().unwrap().node_name.clone().unwrap();
    let w = analysis::drain_what_if(&inv, &node);
    assert!(!w.completes && w.blocked_by == strings(&["default/web", "default/web-all"]), "{w:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn unready_pods_under_the_default_unhealthy_policy_are_a_warning() {
    let stray = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-stray", "namespace": "default", "labels": {"app": "web"}, "annotations": {"firedrill.dev/sim-never-ready": "true"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/web:1.0"}]}});
    let config = SimConfig { objects: vec![stray], ..apps(vec![app("web", 3, Some(json!({"maxUnavailable": 1})))]) };
    let found = findings_of(config, 3, 1).await;
    assert_eq!(
        found,
        vec![(
            Severity::Warning,
            FindingCode::UnhealthyPolicyDefaultWithUnhealthyPods,
            strings(&["PodDisruptionBudget/web", "Pod/web-stray"])
        )]
    );
}

#[tokio::test]
async fn a_single_replica_under_a_pdb_that_requires_it_is_critical() {
    let found = findings_of(apps(vec![app("db", 1, Some(json!({"minAvailable": 1})))]), 1, 0).await;
    assert_eq!(
        found,
        vec![(
            Severity::Critical,
            FindingCode::SingleReplicaWithPdb,
            strings(&["PodDisruptionBudget/db", "Deployment/db"])
        )]
    );
}

fn one_node(apps: Vec<AppSpec>) -> SimConfig {
    SimConfig { nodes: vec![NodeSpec { name: "node-1".into(), ..NodeSpec::default() }], apps, ..SimConfig::default() }
}

#[tokio::test]
async fn the_what_if_counts_throttled_rounds_and_names_the_blocking_pdb() {
    let sim = support::sim(one_node(vec![app("web", 3, Some(json!({"maxUnavailable": 1})))])).await;
    let inv = settled(&support::kube_client(&sim), 3, 0).await;
    let w = analysis::drain_what_if(&inv, "node-1");
    assert_eq!((w.pods, w.completes, w.rounds), (3, true, 3), "{w:?}");
    assert_eq!(w.bottleneck.as_deref(), Some("default/web"));
    sim.shutdown().await;

    let sim = support::sim(one_node(vec![
        app("web", 3, Some(json!({"maxUnavailable": 1}))),
        app("db", 1, Some(json!({"minAvailable": 1}))),
    ]))
    .await;
    let inv = settled(&support::kube_client(&sim), 4, 0).await;
    let w = analysis::drain_what_if(&inv, "node-1");
    assert!(!w.completes, "{w:?}");
    assert_eq!(w.blockers.len(), 1);
    assert_eq!((w.blockers[0].pdb.as_str(), w.blockers[0].pods), ("default/db", 1));
    assert_eq!(w.blocked_by, strings(&["default/db", "default/web"]));
    let report = analysis::analyse(&inv, &Scope::AllButKubeSystem, true);
    let rolling = report.rolling_drain.unwrap();
    assert_eq!((rolling.completes, rolling.bottleneck_pdb.as_deref()), (false, Some("default/db")));
    sim.shutdown().await;
}

fn drill_file(kubeconfig: &str) -> String {
    format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: budgets\ncluster:\n  kubeconfig: {kubeconfig}\npdbCheck:\n  failOn: critical\n"
    )
}

/// Runs `firedrill run` on a drill file against `config`'s cluster, once it has `ready` Ready pods.
async fn run_against(config: SimConfig, ready: usize) -> (Outcome, i32) {
    let sim = support::sim(config).await;
    settled(&support::kube_client(&sim), ready, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let file = write(dir.path(), "budgets.yaml", &drill_file(kubeconfig.to_str().unwrap()));
    let out = tokio::task::spawn_blocking(move || Firedrill::new().run(&["run", file.to_str().unwrap(), "-o", "json"]))
        .await
        .unwrap();
    sim.shutdown().await;
    let outcome: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (outcome, out.status.code().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firedrill_run_fails_on_a_critical_finding_and_passes_a_clean_cluster() {
    let (outcome, code) = run_against(apps(vec![app("db", 1, Some(json!({"minAvailable": 1})))]), 1).await;
    assert_eq!((outcome.verdict, code), (Verdict::Failed, 1), "{}", outcome.reason);
    assert!(outcome.reason.contains("critical findings"), "{}", outcome.reason);
    assert_eq!(outcome.details["findings"][0]["code"], "single-replica-with-pdb");
    assert_eq!(outcome.details["whatIf"].as_array().unwrap().len(), 3);
    assert_eq!(outcome.details["rollingDrain"]["blockedNodes"].as_array().unwrap().len(), 1);
    let marks: Vec<&str> = outcome.timeline.marks.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(marks, ["inventory-loaded", "analysed"]);

    // A warning alone does not fail a drill that fails on critical findings.
    let (outcome, code) =
        run_against(apps(vec![app("web", 3, Some(json!({"maxUnavailable": 1}))), app("api", 2, None)]), 5).await;
    assert_eq!((outcome.verdict, code), (Verdict::Passed, 0), "{}", outcome.reason);
    assert_eq!(outcome.details["findingCounts"]["warning"], 1);
    assert_eq!(outcome.checks.len(), 1, "one check per severity at or above failOn");
}

#[test]
fn validation_names_what_would_be_valid() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: b\npdbCheck:\n  failOn: severe\n",
    );
    let out = Firedrill::new().run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bad.yaml:5:") && t.contains("info") && t.contains("critical"), "{t}");

    let bad = write(
        dir.path(),
        "bad2.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: b\npdbCheck:\n  namespaces: [Payments]\n  ignore:\n    - {}\n",
    );
    let out = Firedrill::new().run(&["validate", bad.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("bad2.yaml:5:16: `Payments` is not a namespace name"), "{t}");
    assert!(t.contains("bad2.yaml:7:7: an ignore entry needs at least one of") && t.contains("missing-pdb"), "{t}");
}
