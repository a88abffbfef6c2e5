//! The node-drain drill against the simulator, through the firedrill command (`firedrill run`
//! as a subprocess on the simulator's kubeconfig). Every test ends with no node cordoned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use firedrill::ledger::record::Outcome;
use firedrill::measure::Verdict;
use firedrill::sim::Sim;
use firedrill::sim::config::{AppSpec, NodeSpec, SimConfig, TimingsSpec};
use firedrill::spec::raw::DurationText;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::support::{self, Firedrill, text, write};

/// A cluster whose pods all start on `target` (the spares are cordoned until they are Ready).
struct Drain {
    sim: Sim,
    fd: Firedrill,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    client: kube::Client,
}

fn app(name: &str, replicas: u32, pdb: Option<serde_json::Value>) -> AppSpec {
    AppSpec { name: name.into(), namespace: "shop".into(), replicas: Some(replicas), pdb, ..AppSpec::default() }
}

fn daemonset(name: &str) -> AppSpec {
    AppSpec { name: name.into(), namespace: "shop".into(), kind: Some("DaemonSet".into()), ..AppSpec::default() }
}

impl Drain {
    /// `spares` extra nodes; `ready_after` the pods' readiness delay.
    async fn start(spares: u32, ready_after: &str, apps: Vec<AppSpec>, objects: Vec<serde_json::Value>) -> Self {
        let mut nodes = vec![NodeSpec { name: "target".into(), ..NodeSpec::default() }];
        if spares > 0 {
            nodes.push(NodeSpec {
                name: "spare".into(),
                count: Some(spares),
                unschedulable: true,
                ..NodeSpec::default()
            });
        }
        let config = SimConfig {
            nodes,
            namespaces: vec!["shop".into()],
            apps: apps.clone(),
            objects,
            timings: Some(TimingsSpec {
                ready_after: Some(DurationText(ready_after.into())),
                ..TimingsSpec::default()
            }),
            ..SimConfig::default()
        };
        let sim = support::sim(config).await;
        let client = support::kube_client(&sim);
        let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
        for a in apps.iter().filter(|a| a.kind.is_none()) {
            support::ready_pods(&pods, &a.name, a.replicas.unwrap_or(1) as usize).await;
        }
        let nodes: Api<Node> = Api::all(client.clone());
        for i in 1..=spares {
            let patch = json!({"spec": {"unschedulable": null}});
            nodes.patch(&format!("spare-{i}"), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
        Self { sim, fd: Firedrill::new(), dir, kubeconfig, client }
    }

    /// A drill file with this `nodeDrain` body (indented by the caller's two spaces).
    fn drill(&self, name: &str, body: &str) -> PathBuf {
        let yaml = format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: {name}\ncluster:\n  kubeconfig: {}\ntimeouts:\n  wait: 60s\nnodeDrain:\n{body}",
            self.kubeconfig.display()
        );
        write(self.dir.path(), &format!("{name}.yaml"), &yaml)
    }

    fn command(&self, file: &std::path::Path) -> tokio::process::Command {
        let mut c = tokio::process::Command::from(self.fd.command(&["run", file.to_str().unwrap(), "-o", "json"]));
        c.kill_on_drop(true);
        c
    }

    /// Runs the drill to its end (asynchronously: the simulator serves from this runtime).
    async fn run(&self, file: &std::path::Path) -> (Outcome, i32) {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(file).output()).await.unwrap().unwrap();
        let outcome: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (outcome, out.status.code().unwrap())
    }

    async fn node(&self, name: &str) -> Node {
        Api::<Node>::all(self.client.clone()).get(name).await.unwrap()
    }

    /// No node is cordoned, and none carries firedrill's annotation.
    async fn assert_uncordoned(&self) {
        for n in Api::<Node>::all(self.client.clone()).list(&ListParams::default()).await.unwrap().items {
            let name = n.metadata.name.clone().unwrap();
            assert_ne!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true), "{name} was left cordoned");
            let annotations = n.metadata.annotations.unwrap_or_default();
            assert!(!annotations.contains_key("firedrill.dev/cordoned-by"), "{name} kept the annotation");
        }
    }

    /// Eviction POSTs per `namespace/pod` the simulator received.
    async fn evictions(&self) -> BTreeMap<String, u64> {
        let stats: serde_json::Value =
            reqwest::get(format!("{}/firedrill/v1/stats", self.sim.url())).await.unwrap().json().await.unwrap();
        serde_json::from_value(stats["evictions"].clone()).unwrap()
    }

    async fn pods_on(&self, node: &str) -> Vec<String> {
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let pods = Api::<Pod>::all(self.client.clone()).list(&lp).await.unwrap().items;
        pods.into_iter().filter_map(|p| p.metadata.name).collect()
    }

    async fn finish(self) {
        self.assert_uncordoned().await;
        self.sim.shutdown().await;
    }
}

fn marks(o: &Outcome) -> Vec<&str> {
    o.timeline.marks.iter().map(|m| m.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_drain_passes_records_the_rto_and_uncordons() {
    let d = Drain::start(2, "300ms", vec![app("web", 3, None), app("api", 2, None)], vec![]).await;
    let file = d.drill("clean", "  node: target\n");
    let (o, code) = d.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{}", o.reason);
    let rto = o.rto_ms.expect("an RTO");
    assert!(rto >= Duration::from_millis(300), "the replacements needed their 300ms to be Ready: {rto:?}");
    assert_eq!(marks(&o), ["cordoned", "evicted", "pods-gone", "workloads-ready"]);
    assert_eq!(o.details["evictions"]["pods"], 5);
    assert_eq!(o.details["evictions"]["podsBlocked"], 0);
    assert!(o.checks.iter().all(|c| c.passed) && o.checks.len() == 3, "{:?}", o.checks);
    assert_eq!(o.cleanup.actions, ["uncordoned node target"]);
    assert!(d.pods_on("target").await.is_empty());
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_throttled_by_a_pdb_retries_when_the_pdb_changes_not_in_a_storm() {
    let d = Drain::start(2, "500ms", vec![app("web", 4, Some(json!({"maxUnavailable": 1})))], vec![]).await;
    let file = d.drill("throttled", "  node: target\n");
    let (o, code) = d.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{}", o.reason);
    assert_eq!(o.details["evictions"]["podsBlocked"], 3, "one eviction at a time: {}", o.details["pods"]);
    let pods = o.details["pods"].as_object().unwrap();
    let blocked: Vec<_> = pods.values().filter(|p| p["blockedBy"] == "shop/web").collect();
    assert_eq!(blocked.len(), 3, "{pods:?}");
    assert!(blocked.iter().all(|p| p["blockedMs"].as_u64().unwrap() > 0 && p["result"] == "evicted"));
    // Each blocked pod is retried when the PDB allows a disruption again: its first POST is
    // refused and its second, woken by the budget, goes through. Not kube-rs's 16, not a loop.
    let posts = d.evictions().await;
    assert_eq!(posts.len(), 4, "{posts:?}");
    assert!(posts.values().all(|n| *n <= 3), "eviction POSTs per pod: {posts:?}");
    assert!(posts.values().filter(|n| **n >= 2).count() >= 3, "the blocked pods were retried: {posts:?}");
    let recorded: u64 = pods.values().map(|p| p["attempts"].as_u64().unwrap()).sum();
    assert_eq!(recorded, posts.values().sum::<u64>(), "the record counts every request the server saw");
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_blocked_for_ever_times_out_fails_naming_the_pdb_and_uncordons() {
    let d = Drain::start(2, "200ms", vec![app("web", 2, Some(json!({"minAvailable": 2})))], vec![]).await;
    let file = d.drill("blocked", "  node: target\n  evictionTimeout: 2s\n");
    let (o, code) = d.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(o.reason.contains("evictions did not complete within evictionTimeout (2s)"), "{}", o.reason);
    assert!(o.reason.contains("2 refused by PodDisruptionBudget shop/web"), "{}", o.reason);
    assert!(o.reason.contains("needs 2 healthy pods and has 2 currently"), "{}", o.reason);
    let posts = d.evictions().await;
    assert!(posts.values().all(|n| *n == 1), "nothing changed the PDB, so nothing was retried: {posts:?}");
    assert_eq!(o.cleanup.actions, ["uncordoned node target"]);
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_under_two_pdbs_are_reported_with_both_named() {
    let extra = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-extra", "namespace": "shop"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let d = Drain::start(1, "200ms", vec![app("web", 2, Some(json!({"maxUnavailable": 1})))], vec![extra]).await;
    let file = d.drill("two-pdbs", "  node: target\n");
    let (o, code) = d.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(o.reason.contains("2 pods could not be evicted"), "{}", o.reason);
    assert!(o.reason.contains("selected by 2 PodDisruptionBudgets (shop/web, shop/web-extra)"), "{}", o.reason);
    assert!(d.evictions().await.values().all(|n| *n == 1), "a 500 is not retried");
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_pods_stay_and_an_unmanaged_pod_needs_force() {
    let bare = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lonely", "namespace": "shop"},
        "spec": {"nodeName": "target", "containers": [{"name": "c", "image": "registry.example/lonely:1"}]}});
    let d = Drain::start(1, "200ms", vec![app("web", 2, None), daemonset("agent")], vec![bare]).await;
    let refused = d.drill("no-force", "  node: target\n");
    let (o, code) = d.run(&refused).await;
    assert_eq!((o.verdict, code), (Verdict::Aborted, 3), "{}", o.reason);
    assert!(o.reason.contains("Pods that declare no controller (set `force: true`"), "{}", o.reason);
    assert!(o.reason.contains("shop/lonely"), "{}", o.reason);
    assert!(d.evictions().await.is_empty(), "nothing was evicted");
    assert_eq!(d.node("target").await.spec.unwrap().unschedulable, None, "nor cordoned");

    let forced = d.drill("force", "  node: target\n  force: true\n");
    let (o, code) = d.run(&forced).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{}", o.reason);
    assert!(
        o.warnings.iter().any(|w| w == "deleting Pods that declare no controller: shop/lonely"),
        "{:?}",
        o.warnings
    );
    assert_eq!(o.details["ignoredPods"].as_object().unwrap().len(), 1, "{}", o.details["ignoredPods"]);
    let left = d.pods_on("target").await;
    assert!(left.len() == 1 && left[0].starts_with("agent-"), "only the DaemonSet pod stays: {left:?}");
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_ready_node_is_never_drained() {
    let d = Drain::start(0, "200ms", vec![app("web", 1, None)], vec![]).await;
    let file = d.drill("last", "  node: target\n");
    let (o, code) = d.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Aborted, 3), "{}", o.reason);
    assert!(o.reason.contains("would leave 0 Ready, schedulable node(s)"), "{}", o.reason);
    assert!(d.evictions().await.is_empty());
    d.finish().await;
}

/// What happens when the drained node goes NotReady mid-drain: its pods turn unready, and the
/// PDB (default `unhealthyPodEvictionPolicy`) counts them as unhealthy: with one replacement
/// Ready elsewhere the budget can never be met again, so the Eviction API refuses the rest for
/// ever (kubectl drain hangs the same way). The drill fails at its eviction timeout naming the
/// PDB and the NotReady node, and the node is uncordoned (it stays NotReady: the node's business).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_goes_not_ready_mid_drain_fails_naming_why_and_is_uncordoned() {
    let d = Drain::start(2, "1s", vec![app("web", 4, Some(json!({"maxUnavailable": 1})))], vec![]).await;
    let file = d.drill(
        "not-ready",
        "  node: target
  evictionTimeout: 4s
",
    );
    let child = d.command(&file).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    support::until("the drill cordoned target", || async {
        d.node("target").await.spec.and_then(|s| s.unschedulable).filter(|u| *u)
    })
    .await;
    let url = format!("{}/firedrill/v1/nodes/target/ready?status=False", d.sim.url());
    assert!(reqwest::Client::new().post(url).send().await.unwrap().status().is_success());
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await.unwrap().unwrap();
    let o: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(o.verdict, Verdict::Failed, "{}", o.reason);
    assert!(o.reason.contains("refused by PodDisruptionBudget shop/web"), "{}", o.reason);
    assert!(o.reason.contains("node target went NotReady"), "{}", o.reason);
    assert!(o.warnings.iter().any(|w| w.contains("node target is NotReady")), "{:?}", o.warnings);
    assert_eq!(o.cleanup.actions, ["uncordoned node target"]);
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_drain_is_uncordoned_by_the_janitor_on_the_next_run() {
    let d = Drain::start(1, "200ms", vec![app("web", 2, Some(json!({"minAvailable": 2})))], vec![]).await;
    let file = d.drill("killed", "  node: target\n  evictionTimeout: 5m\n");
    let mut child = d.command(&file).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    support::until("the killed run's evictions were refused", || async {
        (d.evictions().await.len() == 2).then_some(())
    })
    .await;
    child.kill().await.unwrap();
    let node = d.node("target").await;
    assert_eq!(node.spec.unwrap().unschedulable, Some(true), "the killed run left target cordoned");
    assert!(node.metadata.annotations.unwrap().contains_key("firedrill.dev/cordoned-by"));

    // Any next run starts with the janitor; this one then stops at its guard.
    let other = d.drill("other", "  node: nowhere\n");
    let (o, code) = d.run(&other).await;
    assert_eq!((o.verdict, code), (Verdict::Aborted, 3), "{}", o.reason);
    assert!(o.reason.contains("there is no node `nowhere`"), "{}", o.reason);
    let history = d.fd.run(&["history", "-o", "json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    let killed = runs.iter().find(|r| r["drill"] == "killed").expect("the killed run was recorded");
    assert_eq!(killed["verdict"], "Aborted");
    assert!(killed["reason"].as_str().unwrap().contains("stopped without recording an outcome"), "{killed}");
    d.finish().await;
}

/// `strategy: safe` asks pdb-check's what-if: the busiest node (every pod is on `target`, among
/// them a single replica under `minAvailable: 1`) would never drain, so an empty spare is chosen,
/// and the record says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategy_safe_skips_a_node_a_pdb_would_block_for_ever() {
    let d = Drain::start(
        2,
        "200ms",
        vec![app("web", 3, Some(json!({"maxUnavailable": 1}))), app("db", 1, Some(json!({"minAvailable": 1})))],
        vec![],
    )
    .await;
    let file = d.drill("safe", "  selector: kubernetes.io/os=linux\n  strategy: safe\n  maxUnavailableNodes: 1\n");
    let (o, code) = d.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{}", o.reason);
    let chosen = o.target.get("node").expect("the chosen node is recorded");
    assert!(chosen.starts_with("spare-"), "target holds db under a blocking PDB, yet {chosen} was chosen");
    let what_if = o.details["whatIf"].as_array().expect("the what-if is recorded");
    let target = what_if.iter().find(|w| w["node"] == "target").expect("target was considered");
    assert_eq!(target["completes"], false, "{target}");
    assert!(target["blockedBy"].as_array().unwrap().iter().any(|b| b == "shop/db"), "{target}");
    assert_eq!(d.pods_on("target").await.len(), 4, "target was not drained");
    d.finish().await;
}
