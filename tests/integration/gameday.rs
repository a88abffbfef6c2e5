//! The quarterly game day end to end, as `scripts/demo` runs it: the scenario's own `sim` section
//! as the cluster, a real etcd with a snapshot in a file store, and `firedrill run
//! scenarios/quarterly-gameday.yaml` through the CLI. All four drills pass, and no node is left
//! cordoned.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::support::{self, Etcd, Firedrill, text, write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarterly_game_day_passes_on_its_simulated_cluster_and_a_real_etcd() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = firedrill::sim::config::load(&root.join("scenarios/quarterly-gameday.yaml")).unwrap();
    let sim = support::sim(config).await;
    let client = support::kube_client(&sim);
    // Every workload fully Ready first (a StatefulSet starts its pods one by one), as the demo waits.
    support::until("every workload is Ready", || async {
        let deployments = Api::<Deployment>::all(client.clone()).list(&ListParams::default()).await.ok()?.items;
        let sets = Api::<StatefulSet>::all(client.clone()).list(&ListParams::default()).await.ok()?.items;
        let ready = deployments
            .iter()
            .all(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == d.spec.as_ref().and_then(|s| s.replicas))
            && sets.iter().all(|s| {
                s.status.as_ref().and_then(|st| st.ready_replicas) == s.spec.as_ref().and_then(|sp| sp.replicas)
            });
        ready.then_some(())
    })
    .await;

    let etcd = Etcd::start();
    etcd.fill("/firedrill/demo/items/", 50);
    etcd.put("/firedrill/demo/config", "replicas=3");
    etcd.put("/firedrill/canary", &firedrill::clock::Clock::system().now().to_string());
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}/", store.path().display());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let fd = Firedrill::new().env("KUBECONFIG", kubeconfig.display().to_string()).env("FIREDRILL_ETCD_SNAPSHOTS", &url);
    let out = fd.run(&["etcd", "snapshot", "--endpoint", &etcd.url, "--upload", &url]);
    assert!(out.status.success(), "{}", text(&out));

    let mut run = tokio::process::Command::from(fd.command(&["run", "scenarios/quarterly-gameday.yaml", "-o", "json"]));
    run.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), run.output()).await.unwrap().unwrap();
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{result:#}");
    let steps = support::scenario_steps(&result);
    assert_eq!(
        steps,
        [("pdb-check", "Passed"), ("node-drain", "Passed"), ("etcd-restore", "Passed"), ("cert-expiry-30d", "Passed")]
    );
    let runs = result["runs"].as_array().unwrap();
    let certs = runs.iter().find(|r| r["drill"]["name"] == "cert-expiry-30d").expect("the certificates' outcome");
    let codes: Vec<&str> =
        certs["details"]["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["unmanaged"], "only the hand-made storefront-tls: {certs:#}");
    let drain = runs.iter().find(|r| r["drill"]["name"] == "node-drain").expect("the drain's outcome");
    let drained = drain["target"]["node"].as_str().unwrap();
    assert!(drained.starts_with("worker-"), "{drain:#}");
    let check = runs.iter().find(|r| r["drill"]["name"] == "pdb-check").expect("the check's outcome");
    assert_eq!(check["details"]["findingCounts"]["critical"], 0, "{check:#}");
    for n in Api::<Node>::all(client.clone()).list(&ListParams::default()).await.unwrap().items {
        assert_ne!(n.spec.and_then(|s| s.unschedulable), Some(true), "{:?} left cordoned", n.metadata.name);
    }
    sim.shutdown().await;
}
