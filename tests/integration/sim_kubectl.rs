//! Real kubectl (the 1.32 client on the test machine) against the simulator: what a person does
//! during a drill — `get`, `apply`, `delete`, `cordon`/`uncordon`, `scale`, `drain` — must work
//! and print what it prints against a real cluster (ref §3, §7). kubectl runs as a subprocess on
//! the simulator's kubeconfig; the test's own checks go through kube-rs.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use firedrill::sim::Sim;
use firedrill::sim::config::{AppSpec, SimConfig, TimingsSpec};
use firedrill::spec::raw::DurationText;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::support::{self, text};

/// kubectl with a kubeconfig for one simulator, and its own HOME and cache.
struct Kubectl {
    bin: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(sim: &Sim) -> Self {
        let bin =
            firedrill::etcd::tools::on_path("kubectl").expect("kubectl is not installed: run scripts/setup first");
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = support::write(home.path(), "kubeconfig", &sim.kubeconfig());
        Self { bin, home, kubeconfig }
    }

    /// Runs kubectl to its end. Asynchronously: the simulator serves from this test's runtime.
    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(&self.bin)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--cache-dir")
                .arg(self.home.path().join("cache"))
                .args(args)
                .env("HOME", self.home.path())
                .env_remove("KUBECONFIG")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"));
        out.unwrap()
    }

    /// Runs kubectl, asserts it succeeded, returns its standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "kubectl {args:?} failed: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The rows of a kubectl table, split on whitespace (the header first).
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

fn shop(apps: Vec<AppSpec>) -> SimConfig {
    SimConfig { namespaces: vec!["shop".into()], apps, ..SimConfig::default() }
}

fn web(replicas: u32) -> AppSpec {
    AppSpec { name: "web".into(), namespace: "shop".into(), replicas: Some(replicas), ..AppSpec::default() }
}

/// Waits until the Deployment reports `n` available replicas for its current generation.
async fn deployment_available(deployments: &Api<Deployment>, name: &str, n: i32) {
    support::wait_for(
        deployments,
        name,
        &format!("{name} has {n} available replicas"),
        move |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                let s = d.status.clone().unwrap_or_default();
                s.observed_generation == d.metadata.generation
                    && s.available_replicas == Some(n)
                    && s.replicas == Some(n)
                    && s.updated_replicas == Some(n)
            })
        },
    )
    .await;
}

/// Ref §7 (node conditions, pod and Deployment readiness) as kubectl's tables show them: `get
/// nodes`, `get pods -A` and `get deploy` print the columns and values a real cluster's would.
#[tokio::test]
async fn kubectl_get_prints_nodes_pods_and_deployments() {
    let sim = support::sim(shop(vec![web(2)])).await;
    let kubectl = Kubectl::new(&sim);
    let client = support::kube_client(&sim);
    support::ready_pods(&Api::namespaced(client.clone(), "shop"), "web", 2).await;
    deployment_available(&Api::namespaced(client, "shop"), "web", 2).await;

    let nodes = rows(&kubectl.ok(&["get", "nodes"]).await);
    assert_eq!(nodes[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let listed: Vec<_> = nodes[1..].iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str())).collect();
    assert_eq!(listed, [("node-1", "Ready", "<none>"), ("node-2", "Ready", "<none>"), ("node-3", "Ready", "<none>")]);

    let pods = rows(&kubectl.ok(&["get", "pods", "-A"]).await);
    assert_eq!(pods[0], ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let web_pods: Vec<_> = pods[1..].iter().filter(|r| r[1].starts_with("web-")).collect();
    assert_eq!(web_pods.len(), 2, "{pods:?}");
    for r in web_pods {
        assert_eq!((r[0].as_str(), r[2].as_str(), r[3].as_str(), r[4].as_str()), ("shop", "1/1", "Running", "0"));
    }

    let deploy = rows(&kubectl.ok(&["get", "deploy", "-n", "shop"]).await);
    assert_eq!(deploy[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(deploy[1][..4], ["web", "2/2", "2", "2"]);
    let missing = kubectl.run(&["get", "deploy", "nope", "-n", "shop"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{}",
        text(&missing)
    );
    sim.shutdown().await;
}

/// Ref §1.10 (strategic merge patch with `null` deleting a key): `kubectl apply -f` creates, and a
/// changed re-apply sends kubectl's three-way strategic merge patch — changed fields set, a removed
/// key deleted — then an identical one changes nothing.
#[tokio::test]
async fn kubectl_apply_creates_then_configures() {
    let sim = support::sim(shop(Vec::new())).await;
    let kubectl = Kubectl::new(&sim);
    let manifest = |replicas: u32, data: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n{data}---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  replicas: {replicas}\n  \
             selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n    \
             spec:\n      containers:\n      - name: api\n        image: registry.example/api:1\n"
        )
    };
    let file = support::write(kubectl.home.path(), "app.yaml", &manifest(1, "  a: \"1\"\n  b: \"2\"\n"));
    let created = kubectl.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(created.lines().collect::<Vec<_>>(), ["configmap/settings created", "deployment.apps/api created"]);

    support::write(kubectl.home.path(), "app.yaml", &manifest(3, "  a: \"1\"\n  c: \"3\"\n"));
    let configured = kubectl.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(
        configured.lines().collect::<Vec<_>>(),
        ["configmap/settings configured", "deployment.apps/api configured"]
    );
    let client = support::kube_client(&sim);
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "shop").get("settings").await.unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "c"], "the key the new manifest dropped is deleted");
    let last_applied = &cm.metadata.annotations.unwrap()["kubectl.kubernetes.io/last-applied-configuration"];
    assert!(last_applied.contains("\"c\":\"3\""), "{last_applied}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    assert_eq!(deployments.get("api").await.unwrap().spec.unwrap().replicas, Some(3));
    support::ready_pods(&Api::namespaced(client, "shop"), "api", 3).await;

    let unchanged = kubectl.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(
        unchanged.lines().collect::<Vec<_>>(),
        ["configmap/settings unchanged", "deployment.apps/api unchanged"]
    );
    sim.shutdown().await;
}

/// Ref §1.11 (deletion, garbage collection of dependents) and §1.4 (NotFound): `kubectl delete`
/// removes objects and waits for them to go; a Deployment's ReplicaSet and pods follow it; a
/// missing object is kubectl's `Error from server (NotFound)`.
#[tokio::test]
async fn kubectl_delete_removes_objects() {
    let sim = support::sim(shop(vec![web(2)])).await;
    let kubectl = Kubectl::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let ready = support::ready_pods(&pods, "web", 2).await;
    // Made through kube-rs: `kubectl create configmap` sends protobuf, which the simulator does not read.
    let cm = serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "1"}})).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "shop").create(&Default::default(), &cm).await.unwrap();

    assert_eq!(
        kubectl.ok(&["delete", "configmap", "settings", "-n", "shop"]).await.trim(),
        "configmap \"settings\" deleted"
    );
    assert!(Api::<ConfigMap>::namespaced(client.clone(), "shop").get_opt("settings").await.unwrap().is_none());

    let victim = ready[0].metadata.name.clone().unwrap();
    let deleted = kubectl.ok(&["delete", "pod", &victim, "-n", "shop"]).await;
    assert_eq!(deleted.trim(), format!("pod \"{victim}\" deleted"));
    assert!(pods.get_opt(&victim).await.unwrap().is_none(), "kubectl waited until the kubelet removed it");

    assert_eq!(
        kubectl.ok(&["delete", "deployment", "web", "-n", "shop"]).await.trim(),
        "deployment.apps \"web\" deleted"
    );
    support::until("the Deployment's pods are garbage-collected", || async {
        pods.list(&ListParams::default().labels("app=web")).await.unwrap().items.is_empty().then_some(())
    })
    .await;

    let missing = kubectl.run(&["delete", "configmap", "nope", "-n", "shop"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{}",
        text(&missing)
    );
    sim.shutdown().await;
}

/// Ref §3.1 (cordon/uncordon as strategic merge patches; uncordon sends
/// `{"spec":{"unschedulable":null}}`) and §7.1 (the `node.kubernetes.io/unschedulable:NoSchedule`
/// taint follows the flag): after uncordon the field is gone, not `false`, and so is the taint.
#[tokio::test]
async fn kubectl_cordon_and_uncordon_toggle_the_flag_and_the_taint() {
    let sim = support::sim(shop(Vec::new())).await;
    let kubectl = Kubectl::new(&sim);
    let nodes: Api<Node> = Api::all(support::kube_client(&sim));
    let tainted = |n: &Node| {
        n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == "node.kubernetes.io/unschedulable" && t.effect == "NoSchedule" && t.value.is_none())
        })
    };

    assert_eq!(kubectl.ok(&["cordon", "node-1"]).await.trim(), "node/node-1 cordoned");
    let cordoned = support::wait_for(&nodes, "node-1", "the unschedulable taint is added", |n: Option<&Node>| {
        n.is_some_and(tainted)
    })
    .await
    .unwrap();
    assert_eq!(cordoned.spec.unwrap().unschedulable, Some(true));
    assert_eq!(kubectl.ok(&["cordon", "node-1"]).await.trim(), "node/node-1 already cordoned");
    let status = rows(&kubectl.ok(&["get", "node", "node-1"]).await);
    assert_eq!(status[1][1], "Ready,SchedulingDisabled");

    assert_eq!(kubectl.ok(&["uncordon", "node-1"]).await.trim(), "node/node-1 uncordoned");
    support::wait_for(&nodes, "node-1", "the unschedulable taint is removed", |n: Option<&Node>| {
        n.is_some_and(|n| !tainted(n))
    })
    .await;
    let raw: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "node", "node-1", "-o", "json"]).await).unwrap();
    assert!(raw["spec"].get("unschedulable").is_none(), "removed, not false: {}", raw["spec"]);
    assert_eq!(kubectl.ok(&["uncordon", "node-1"]).await.trim(), "node/node-1 already uncordoned");
    sim.shutdown().await;
}

/// Ref §1.1 (`scale` subresource of Deployments) and §7.3 (replica counts): `kubectl scale` changes
/// the replicas, the controllers follow, and kubectl's table shows it.
#[tokio::test]
async fn kubectl_scale_changes_the_replicas() {
    let sim = support::sim(shop(vec![web(2)])).await;
    let kubectl = Kubectl::new(&sim);
    let client = support::kube_client(&sim);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    deployment_available(&deployments, "web", 2).await;

    assert_eq!(
        kubectl.ok(&["scale", "deployment/web", "--replicas=4", "-n", "shop"]).await.trim(),
        "deployment.apps/web scaled"
    );
    deployment_available(&deployments, "web", 4).await;
    support::ready_pods(&Api::namespaced(client, "shop"), "web", 4).await;
    assert_eq!(rows(&kubectl.ok(&["get", "deploy", "web", "-n", "shop"]).await)[1][..4], ["web", "4/4", "4", "4"]);

    kubectl.ok(&["scale", "deployment/web", "--replicas=1", "-n", "shop"]).await;
    deployment_available(&deployments, "web", 1).await;
    let refused = kubectl.run(&["scale", "deployment/web", "--current-replicas=3", "--replicas=2", "-n", "shop"]).await;
    assert!(!refused.status.success(), "the precondition does not hold: {}", text(&refused));
    assert_eq!(deployments.get("web").await.unwrap().spec.unwrap().replicas, Some(1));
    sim.shutdown().await;
}

/// Ref §3 (kubectl drain: cordon, the DaemonSet and local-storage filters, concurrent evictions,
/// a 429 retried every 5 s, waiting for deletion) over §2.2–§2.4 (the PDB decrement and the
/// disruption controller): two pods of a `maxUnavailable: 1` Deployment on the drained node; the
/// second eviction is refused until the first pod's replacement is Ready elsewhere (readiness
/// takes 2 s), kubectl says it will retry after 5 s, and then the drain completes.
#[tokio::test]
async fn kubectl_drain_retries_a_blocked_eviction_then_drains() {
    let config = SimConfig {
        nodes: vec![firedrill::sim::config::NodeSpec { name: "node".into(), count: Some(2), ..Default::default() }],
        timings: Some(TimingsSpec { ready_after: Some(DurationText("2s".into())), ..TimingsSpec::default() }),
        ..shop(vec![
            AppSpec { empty_dir: true, pdb: Some(json!({"maxUnavailable": 1})), ..web(4) },
            AppSpec {
                name: "agent".into(),
                namespace: "shop".into(),
                kind: Some("DaemonSet".into()),
                ..AppSpec::default()
            },
        ])
    };
    let sim = support::sim(config).await;
    let kubectl = Kubectl::new(&sim);
    let client = support::kube_client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let ready = support::ready_pods(&pods, "web", 4).await;
    support::ready_pods(&pods, "agent", 2).await;
    let node_of = |p: &Pod| p.spec.as_ref().unwrap().node_name.clone().unwrap();
    let busiest = ["node-1", "node-2"]
        .into_iter()
        .max_by_key(|n| ready.iter().filter(|p| node_of(p) == *n).count())
        .unwrap()
        .to_string();
    let on_it: Vec<String> =
        ready.iter().filter(|p| node_of(p) == busiest).map(|p| p.metadata.name.clone().unwrap()).collect();
    assert!(on_it.len() >= 2, "two pods on {busiest} to drain: {on_it:?}");
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> = Api::namespaced(client.clone(), "shop");
    support::wait_for(
        &pdbs,
        "web",
        "the PDB allows one disruption",
        |p: Option<&k8s_openapi::api::policy::v1::PodDisruptionBudget>| {
            p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.disruptions_allowed == 1 && s.current_healthy == 4)
        },
    )
    .await;

    let out =
        kubectl.run(&["drain", &busiest, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=100s"]).await;
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("node/{busiest} cordoned")), "{said}");
    assert!(said.contains("Warning: ignoring DaemonSet-managed Pods: shop/agent-"), "{said}");
    assert!(
        said.contains("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."),
        "the second eviction meets the spent budget: {said}"
    );
    for pod in &on_it {
        assert!(said.contains(&format!("pod/{pod} evicted")), "{said}");
    }
    assert!(said.contains(&format!("node/{busiest} drained")), "{said}");

    let wire = reqwest::get(format!("{}/firedrill/v1/stats", sim.url()))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let posts: Vec<u64> = on_it.iter().map(|p| wire["evictions"][format!("shop/{p}")].as_u64().unwrap_or(0)).collect();
    assert!(posts.iter().any(|n| *n >= 2), "one pod was evicted again after its 429: {posts:?}");
    let left: Vec<_> = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={busiest}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(left.iter().all(|p| p.starts_with("agent-")), "only the DaemonSet pod stays: {left:?}");
    let node = Api::<Node>::all(client).get(&busiest).await.unwrap();
    assert_eq!(node.spec.unwrap().unschedulable, Some(true), "a drained node stays cordoned");
    support::ready_pods(&pods, "web", 4).await;
    sim.shutdown().await;
}
