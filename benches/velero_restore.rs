//! The velero-restore drill's RTO detection lag and its overhead, on the simulator.
//!
//! The simulator runs in this process with the payments app (a Deployment of 2 replicas and a
//! PersistentVolumeClaim) and a file-backed storage location; one backup is taken. Then
//! `firedrill run` (the release binary, a separate process, talking HTTP to the simulator) restores
//! it `RUNS` times (100 by default). A task subscribed to the simulator's store notes, in wall-clock
//! time, the instant each condition the drill waits for became true in the store: the Restore
//! `Completed`, each restored Deployment available (observed, ready and available replicas at the
//! desired count, the drill's own rule), each claim `Bound`. Per run it prints
//!
//! - **restore lag**: the drill's `restore-completed` mark − the instant the Restore became
//!   `Completed`;
//! - **ready lag**: the drill's `workloads-ready` mark − the instant the last of its workloads and
//!   claims became available or Bound (the RTO's last condition);
//! - **overhead**: the recovery time (t0 → verified) minus the simulator's configured delays
//!   (`veleroAfter` for the restore, plus `readyAfter` for the pods), and the whole process's wall
//!   time minus them.
//!
//! Marks have millisecond resolution, so the store's instants are cut to whole milliseconds too
//! and a lag is good to 1 ms. The subscriber's own delay (a broadcast channel in this process) is
//! microseconds.
//!
//! ```text
//! cargo bench --bench velero_restore
//! RUNS=20 VELERO_AFTER_MS=1000 READY_AFTER_MS=2000 cargo bench --bench velero_restore
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it makes 2 runs: a check that the
//! benchmark works, not a measurement.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use firedrill::ledger::record::Outcome;
use firedrill::measure::Verdict;
use firedrill::sim::config::{AppSpec, SimConfig};
use firedrill::sim::{Sim, SimOptions};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Wall-clock milliseconds since the epoch, with the fraction.
fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or_default()
}

fn config(bucket: &std::path::Path, velero_after: u64, ready_after: u64) -> SimConfig {
    SimConfig {
        namespaces: vec!["payments".into()],
        apps: vec![AppSpec {
            name: "web".into(),
            namespace: "payments".into(),
            replicas: Some(2),
            ..AppSpec::default()
        }],
        objects: vec![
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "payments"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": "default", "namespace": "velero"},
                   "spec": {"provider": "firedrill.dev/file", "default": true, "objectStorage": {"bucket": bucket.display().to_string()}}}),
            json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "payments-1", "namespace": "velero"},
                   "spec": {"includedNamespaces": ["payments"]}}),
        ],
        timings: Some(
            serde_json::from_value(
                json!({"readyAfter": format!("{ready_after}ms"), "veleroAfter": format!("{velero_after}ms")}),
            )
            .unwrap(),
        ),
        ..SimConfig::default()
    }
}

/// When each watched condition first became true: `(namespace, what)` → wall-clock ms.
type Seen = Arc<Mutex<BTreeMap<(String, String), f64>>>;

fn condition(type_key: &str, o: &Value) -> Option<String> {
    let name = o["metadata"]["name"].as_str()?;
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let true_now = match type_key {
        k if k.ends_with("/restores") => o["status"]["phase"] == "Completed",
        k if k.ends_with("/deployments") => {
            let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
            int(&o["status"]["observedGeneration"]) >= int(&o["metadata"]["generation"])
                && int(&o["status"]["readyReplicas"]) >= desired
                && int(&o["status"]["availableReplicas"]) >= desired
        }
        k if k.ends_with("/persistentvolumeclaims") => o["status"]["phase"] == "Bound",
        _ => false,
    };
    let kind = type_key.rsplit('/').next().unwrap_or_default();
    true_now.then(|| format!("{kind}/{name}"))
}

fn watch_conditions(sim: &Sim) -> Seen {
    let seen: Seen = Arc::default();
    let mut events = sim.state.store.subscribe();
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let e = match events.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let at = now_ms();
            // Restores live in `velero`; they are keyed by their name, the scratch namespace's.
            let ns = if e.type_key.ends_with("/restores") {
                e.object["metadata"]["name"].as_str().unwrap_or_default().to_string()
            } else {
                e.namespace.clone()
            };
            if !ns.starts_with("fd-") {
                continue;
            }
            if let Some(what) = condition(&e.type_key, &e.object) {
                out.lock().unwrap().entry((ns, what)).or_insert(at);
            }
        }
    });
    seen
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name:<28} p50 {:>8.1} ms   p99 {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.first().copied().unwrap_or(f64::NAN),
        values.last().copied().unwrap_or(f64::NAN)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let runs = if benching { env_or("RUNS", 100) } else { 2 };
    let (velero_after, ready_after) = (env_or("VELERO_AFTER_MS", 200), env_or("READY_AFTER_MS", 300));
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let sim = Sim::start(SimOptions { config: config(&bucket, velero_after, ready_after), ..SimOptions::default() })
        .await
        .expect("start the simulator");
    let seen = watch_conditions(&sim);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig()).unwrap();
    let drill = dir.path().join("drill.yaml");
    std::fs::write(
        &drill,
        format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: bench\ncluster:\n  kubeconfig: {}\nveleroRestore:\n  namespace: payments\n  backupName: payments-1\n  restoreTimeout: 1m\n  readyTimeout: 1m\n  deleteTimeout: 1m\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_firedrill");
    let backups = sim.state.store.registry.find("velero.io", "v1", "backups").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sim.state.store.all(&backups, Some("velero")).iter().any(|b| b["status"]["phase"] == "Completed") {
        assert!(Instant::now() < deadline, "the backup did not complete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!(
        "velero-restore on the simulator: {runs} runs, veleroAfter {velero_after} ms, readyAfter {ready_after} ms, Deployment of 2 + 1 claim"
    );
    let (mut restore_lag, mut ready_lag, mut rto_overhead, mut wall_overhead) = (vec![], vec![], vec![], vec![]);
    let delays = (velero_after + ready_after) as f64;
    for i in 0..runs {
        let started = Instant::now();
        let out = tokio::process::Command::new(bin)
            .args(["run", drill.to_str().unwrap(), "-o", "json"])
            .env("FIREDRILL_DATA_DIR", &data)
            .env_remove("FIREDRILL_LEDGER")
            .output()
            .await
            .unwrap();
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        let o: Outcome = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("run {i}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(o.verdict, Verdict::Passed, "run {i}: {}", o.reason);
        let ns = o.target["scratchNamespace"].clone();
        let mark = |m: &str| o.timeline.marks.iter().find(|x| x.name == m).map(|x| x.at.millis() as f64).unwrap();
        let seen = seen.lock().unwrap();
        let of_run: Vec<(&String, f64)> =
            seen.iter().filter(|((n, _), _)| *n == ns).map(|((_, what), at)| (what, *at)).collect();
        let restored = of_run.iter().find(|(w, _)| w.starts_with("restores/")).map(|(_, at)| *at).unwrap();
        let last_ready =
            of_run.iter().filter(|(w, _)| !w.starts_with("restores/")).map(|(_, at)| *at).fold(0.0, f64::max);
        assert!(of_run.len() >= 3, "run {i}: the Restore, the Deployment and the claim: {of_run:?}");
        // Marks are whole milliseconds: the store's instants are compared at the same resolution.
        restore_lag.push(mark("restore-completed") - restored.floor());
        ready_lag.push(mark("workloads-ready") - last_ready.floor());
        let rto = o.rto_ms.unwrap().as_secs_f64() * 1000.0;
        rto_overhead.push(rto - delays);
        wall_overhead.push(wall - delays);
    }
    summary("restore lag (mark - store)", restore_lag);
    summary("ready lag (mark - store)", ready_lag);
    summary("RTO - configured delays", rto_overhead);
    summary("process wall - delays", wall_overhead);
    sim.shutdown().await;
}
