//! pdb-check's analysis on a synthetic cluster held in memory: 50,000 pods, 5,000 PDBs and 2,000
//! nodes by default. Times `analyse` with the what-if (index, findings, a what-if for every node,
//! the rolling drain), best of 3, and prints the wall time, the CPU time of the thread and the
//! process's peak memory (`VmHWM`, which includes the inventory itself).
//!
//! ```text
//! cargo bench --bench pdb_check
//! PDB_BENCH_PODS=100000 PDB_BENCH_NODES=5000 cargo bench --bench pdb_check
//! ```
//!
//! The cluster: 50 namespaces; one DaemonSet pod per node; Deployments of 10 replicas spread
//! round-robin over the nodes, each with a ReplicaSet and a PDB (`maxUnavailable: 1`, every 20th
//! `minAvailable` = replicas, which blocks); and overlapping PDBs on some apps, up to the PDB
//! count. Under `cargo test --all-targets` (no `--bench` argument) it runs with 500 pods: a check
//! that the benchmark works, not a measurement.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use firedrill::drills::pdb_check::analysis::{Inventory, Scope, analyse};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const NAMESPACES: usize = 50;
const REPLICAS: usize = 10;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), generation: Some(1), ..ObjectMeta::default() }
}

fn owner(kind: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        controller: Some(true),
        ..OwnerReference::default()
    }
}

fn labels(app: &str) -> BTreeMap<String, String> {
    [("app".to_string(), app.to_string()), ("tier".to_string(), "backend".to_string())].into()
}

fn pod(ns: &str, name: &str, node: &str, labels: BTreeMap<String, String>, owner: OwnerReference) -> Pod {
    let mut m = meta(ns, name);
    m.labels = Some(labels);
    m.owner_references = Some(vec![owner]);
    Pod {
        metadata: m,
        spec: Some(PodSpec { node_name: Some(node.into()), ..PodSpec::default() }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn pdb(ns: &str, name: &str, app: &str, budget: PodDisruptionBudgetSpec) -> PodDisruptionBudget {
    let selector =
        LabelSelector { match_labels: Some([("app".to_string(), app.to_string())].into()), ..LabelSelector::default() };
    PodDisruptionBudget {
        metadata: meta(ns, name),
        spec: Some(PodDisruptionBudgetSpec { selector: Some(selector), ..budget }),
        status: None,
    }
}

fn cluster(pods: usize, pdbs: usize, nodes: usize) -> Inventory {
    let nodes_list = (0..nodes).map(|i| Node { metadata: meta("", &format!("node-{i}")), ..Node::default() }).collect();
    let mut inv = Inventory { nodes: nodes_list, ..Inventory::default() };
    for i in 0..nodes {
        let node = format!("node-{i}");
        inv.pods.push(pod("kube-system", &format!("proxy-{i}"), &node, labels("proxy"), owner("DaemonSet", "proxy")));
    }
    let apps = pods.saturating_sub(nodes) / REPLICAS;
    let mut next_node = 0;
    for a in 0..apps {
        let ns = format!("ns-{}", a % NAMESPACES);
        let app = format!("app-{a}");
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels(&app)), ..ObjectMeta::default() }),
            spec: None,
        };
        let selector = LabelSelector { match_labels: Some(labels(&app)), ..LabelSelector::default() };
        inv.deployments.push(Deployment {
            metadata: meta(&ns, &app),
            spec: Some(DeploymentSpec {
                replicas: Some(REPLICAS as i32),
                selector: selector.clone(),
                template: template.clone(),
                ..DeploymentSpec::default()
            }),
            status: None,
        });
        let rs = format!("{app}-5d8f");
        let mut rs_meta = meta(&ns, &rs);
        rs_meta.owner_references = Some(vec![owner("Deployment", &app)]);
        inv.replicasets.push(ReplicaSet {
            metadata: rs_meta,
            spec: Some(ReplicaSetSpec {
                replicas: Some(REPLICAS as i32),
                selector,
                template: Some(template),
                ..ReplicaSetSpec::default()
            }),
            status: None,
        });
        for r in 0..REPLICAS {
            let node = format!("node-{}", next_node % nodes.max(1));
            next_node += 1;
            inv.pods.push(pod(&ns, &format!("{rs}-{r}"), &node, labels(&app), owner("ReplicaSet", &rs)));
        }
        if inv.pdbs.len() < pdbs {
            let budget = if a % 20 == 19 {
                PodDisruptionBudgetSpec { min_available: Some(IntOrString::Int(REPLICAS as i32)), ..Default::default() }
            } else {
                PodDisruptionBudgetSpec { max_unavailable: Some(IntOrString::Int(1)), ..Default::default() }
            };
            inv.pdbs.push(pdb(&ns, &app, &app, budget));
        }
    }
    // Overlapping PDBs on the first apps, until the PDB count is reached.
    let mut a = 0;
    while inv.pdbs.len() < pdbs && a < apps {
        let (ns, app) = (format!("ns-{}", a % NAMESPACES), format!("app-{a}"));
        let budget =
            PodDisruptionBudgetSpec { min_available: Some(IntOrString::String("50%".into())), ..Default::default() };
        inv.pdbs.push(pdb(&ns, &format!("{app}-extra"), &app, budget));
        a += 1;
    }
    inv
}

/// CPU time of this thread (the analysis is single-threaded).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(stat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Peak resident memory of the process (`VmHWM`), in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (pods, pdbs, nodes) = if benching {
        (env_or("PDB_BENCH_PODS", 50_000), env_or("PDB_BENCH_PDBS", 5_000), env_or("PDB_BENCH_NODES", 2_000))
    } else {
        (500, 50, 20)
    };
    let built = Instant::now();
    let inv = cluster(pods, pdbs, nodes);
    println!(
        "pdb-check: {} pods, {} PDBs, {} nodes, {} Deployments (built in {:.0?}, peak {:.1} MiB before the analysis)",
        inv.pods.len(),
        inv.pdbs.len(),
        inv.nodes.len(),
        inv.deployments.len(),
        built.elapsed(),
        peak_mib()
    );
    let mut best: Option<(Duration, Duration)> = None;
    let mut last = None;
    for _ in 0..3 {
        let (t, cpu) = (Instant::now(), thread_cpu());
        let report = analyse(&inv, &Scope::AllButKubeSystem, true);
        let took = (t.elapsed(), thread_cpu().saturating_sub(cpu));
        if best.is_none_or(|b| took.0 < b.0) {
            best = Some(took);
        }
        last = Some(report);
    }
    let report = last.expect("three runs");
    let (wall, cpu) = best.expect("three runs");
    let rolling = report.rolling_drain.as_ref().expect("what-if on");
    assert_eq!(report.what_if.len(), nodes, "a what-if per node");
    assert!(report.findings.iter().any(|f| f.code.name() == "pods-under-several-pdbs") || pdbs <= pods / REPLICAS);
    println!(
        "analyse + what-if of {} nodes + rolling drain: best of 3 {:.1} ms wall, {:.1} ms CPU; {} findings, {} blocked nodes, bottleneck {}",
        report.what_if.len(),
        wall.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0,
        report.findings.len(),
        rolling.blocked_nodes.len(),
        rolling.bottleneck_pdb.as_deref().unwrap_or("none"),
    );
    println!("peak memory (VmHWM): {:.1} MiB", peak_mib());
}
