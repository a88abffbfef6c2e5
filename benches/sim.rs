//! Simulator benchmarks, against `firedrill sim serve` (the release binary) as clients see it,
//! over HTTP on loopback:
//!
//! - listing 50,000 pods across 50 namespaces: whole, by pages of 500, and with `kubectl get
//!   pods -A` (tables, pages of 500), and the simulator's memory holding them;
//! - a watch fan-out: 20 watchers of all pods while pods are patched 1,000 times a second, each
//!   event's latency from just before the PATCH is sent to a watcher reading it, and memory.
//!
//! ```text
//! cargo bench --bench sim
//! SIM_BENCH_PODS=20000 SIM_BENCH_WATCHERS=50 SIM_BENCH_RATE=2000 cargo bench --bench sim
//! ```
//!
//! Under `cargo test --all-targets` it runs with 500 pods, 2 watchers and 100 writes a second
//! for a second: a check that the benchmark works, not a measurement.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

const NAMESPACES: usize = 50;
const SENT: &str = "firedrill.dev/bench-sent";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Server {
    child: Child,
    url: String,
    kubeconfig: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this benchmark started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, nodes: usize) -> Server {
    let config = dir.join("cluster.yaml");
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("bench-{i}")).collect();
    let mut f = std::fs::File::create(&config).unwrap();
    writeln!(
        f,
        "apiVersion: firedrill.dev/v1alpha1\nkind: SimCluster\nname: bench\nsim:\n  nodes:\n    - name: node\n      count: {nodes}\n      pods: 200\n  namespaces: [{}]",
        namespaces.join(", ")
    )
    .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["sim", "serve", "--config"])
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("FIREDRILL_DATA_DIR", dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start firedrill sim serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "the simulator did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let url = text.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    Server { child, url, kubeconfig }
}

fn pod(ns: usize, i: usize, nodes: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": format!("bench-{ns}"),
                     "labels": {"app": format!("app-{}", i % 20), "tier": "bench"}},
        "spec": {
            "nodeName": format!("node-{}", 1 + i % nodes),
            "containers": [{"name": "app", "image": "registry.example.com/app:1.2.3",
                            "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
                            "ports": [{"containerPort": 8080}]}]
        }
    })
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let pods = env_or("SIM_BENCH_PODS", if benching { 50_000 } else { 500 }) as usize;
    let watchers = env_or("SIM_BENCH_WATCHERS", if benching { 20 } else { 2 }) as usize;
    let rate = env_or("SIM_BENCH_RATE", if benching { 1000 } else { 100 });
    let seconds = env_or("SIM_BENCH_SECONDS", if benching { 10 } else { 1 });
    let nodes = pods.div_ceil(200).max(3);
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), nodes);
    let pid = server.child.id();
    let (rss, _) = memory(pid);
    println!("simulator started: {nodes} nodes, {NAMESPACES} namespaces, RSS {rss:.0} MiB");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let url = server.url.clone();
    rt.block_on(async {
        // Seed: every pod through the API, 32 requests in flight.
        let t = Instant::now();
        let results: Vec<u16> = futures::stream::iter(0..pods)
            .map(|i| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let ns = i % NAMESPACES;
                    let r = http
                        .post(format!("{url}/api/v1/namespaces/bench-{ns}/pods"))
                        .json(&pod(ns, i, nodes))
                        .send()
                        .await
                        .expect("create a pod");
                    r.status().as_u16()
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        assert!(results.iter().all(|s| *s == 201), "every create answers 201");
        let seeded = t.elapsed();
        // The kubelet starts every pod; wait until none is Pending so that lists read a quiet store.
        loop {
            let page = get_json(&http, format!("{url}/api/v1/pods?fieldSelector=status.phase%3DPending&limit=1")).await;
            if page["items"].as_array().is_some_and(|i| i.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (rss, hwm) = memory(pid);
        println!(
            "created {pods} pods through the API in {:.1} s ({:.0}/s); all Running after {:.1} s; RSS {rss:.0} MiB (peak {hwm:.0})",
            seeded.as_secs_f64(),
            pods as f64 / seeded.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );

        // Lists.
        let mut whole = Vec::new();
        let mut size = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let body = http.get(format!("{url}/api/v1/pods")).send().await.unwrap().bytes().await.unwrap();
            whole.push(t.elapsed().as_secs_f64());
            let list: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(list["items"].as_array().map(Vec::len), Some(pods), "the list holds every pod");
            size = body.len();
        }
        let mut paged = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let (mut seen, mut token) = (0, String::new());
            loop {
                let page = get_json(&http, format!("{url}/api/v1/pods?limit=500&continue={token}")).await;
                seen += page["items"].as_array().map(Vec::len).unwrap_or(0);
                token = page["metadata"]["continue"].as_str().unwrap_or_default().to_string();
                if token.is_empty() {
                    break;
                }
            }
            paged.push(t.elapsed().as_secs_f64());
            assert_eq!(seen, pods, "the pages hold every pod");
        }
        let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
        let (rss, hwm) = memory(pid);
        println!(
            "list all pods, one response ({:.1} MB)           best {:.3} s, slowest {:.3} s (5 runs)",
            size as f64 / 1e6,
            best(&whole),
            whole.iter().cloned().fold(0.0, f64::max)
        );
        println!(
            "list all pods, pages of 500 ({} pages)          best {:.3} s, slowest {:.3} s (5 runs)",
            pods.div_ceil(500),
            best(&paged),
            paged.iter().cloned().fold(0.0, f64::max)
        );
        if benching && Command::new("kubectl").arg("version").arg("--client").output().is_ok() {
            let mut times = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let out = Command::new("kubectl")
                    .args(["get", "pods", "-A", "--no-headers"])
                    .env("KUBECONFIG", &server.kubeconfig)
                    .output()
                    .unwrap();
                times.push(t.elapsed().as_secs_f64());
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), pods);
            }
            println!("kubectl get pods -A (tables, pages of 500)         best {:.3} s (3 runs)", best(&times));
        }
        println!("simulator memory after the lists: RSS {rss:.0} MiB (peak {hwm:.0})");

        // Watch fan-out.
        let rv = get_json(&http, format!("{url}/api/v1/pods?limit=1")).await;
        let rv = rv["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let epoch = Instant::now();
        let expected = rate * seconds;
        let mut streams = Vec::new();
        // Watchers stop when they have every event, or a while after the writes end (a missed
        // event is counted, not waited for).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        for _ in 0..watchers {
            let resp = http
                .get(format!("{url}/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            streams.push(tokio::spawn(watch(resp, epoch, expected, stop_rx.clone())));
        }
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let limit = Arc::new(tokio::sync::Semaphore::new(256));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut peak_rss: f64 = 0.0;
        let t = Instant::now();
        for n in 0..expected {
            tick.tick().await;
            if n % (rate / 10).max(1) == 0 {
                peak_rss = peak_rss.max(memory(pid).0);
            }
            let permit = limit.clone().acquire_owned().await.unwrap();
            let (http, url, sent, failed) = (http.clone(), url.clone(), sent.clone(), failed.clone());
            let i = (n as usize * 7919) % pods;
            tokio::spawn(async move {
                let at = epoch.elapsed().as_micros() as u64;
                let patch = json!({"metadata": {"annotations": {SENT: at.to_string()}}});
                let r = http
                    .patch(format!("{url}/api/v1/namespaces/bench-{}/pods/pod-{i}", i % NAMESPACES))
                    .header("content-type", "application/merge-patch+json")
                    .body(patch.to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => sent.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                drop(permit);
            });
        }
        let _ = limit.acquire_many(256).await;
        let writing = t.elapsed().as_secs_f64();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let _ = stop_tx.send(true);
        });
        let mut latencies = Vec::new();
        let mut short = 0;
        for s in streams {
            let got = tokio::time::timeout(Duration::from_secs(60), s).await.expect("watchers finish").unwrap();
            short += expected as usize - got.len().min(expected as usize);
            latencies.extend(got);
        }
        latencies.sort_by(f64::total_cmp);
        let (rss, hwm) = memory(pid);
        println!(
            "{expected} PATCHes in {writing:.1} s ({:.0}/s, {} failed) to {watchers} watchers: {} events delivered, {short} missing",
            sent.load(Ordering::Relaxed) as f64 / writing,
            failed.load(Ordering::Relaxed),
            latencies.len()
        );
        println!(
            "watch latency (PATCH sent -> watcher reads it)      p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
        println!("simulator memory during the fan-out: RSS up to {peak_rss:.0} MiB; after: {rss:.0} MiB (peak {hwm:.0})");
        assert_eq!(short, 0, "every watcher saw every write");
    });
    if !benching {
        println!("(a check that the benchmark works; `cargo bench --bench sim` measures)");
    }
}

/// Reads a watch stream until it has seen `expected` of the benchmark's writes; returns each
/// one's latency in milliseconds.
/// A GET whose JSON body the benchmark needs.
async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn watch(
    mut resp: reqwest::Response,
    epoch: Instant,
    expected: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<f64> {
    let needle = format!("\"{SENT}\":\"");
    let mut latencies = Vec::with_capacity(expected as usize);
    // The kubelet may write a patched pod again; each write counts once.
    let mut seen = std::collections::HashSet::new();
    let mut buf = Vec::new();
    while (latencies.len() as u64) < expected {
        let chunk = tokio::select! {
            c = resp.chunk() => c.expect("read the watch"),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(chunk) = chunk else { break };
        let now = epoch.elapsed().as_micros() as f64;
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(at) = line.split_once(needle.as_str()).and_then(|(_, rest)| rest.split('"').next())
                && line.contains("\"type\":\"MODIFIED\"")
                && seen.insert(at.to_string())
                && let Ok(at) = at.parse::<f64>()
            {
                latencies.push((now - at) / 1e3);
            }
        }
    }
    latencies
}
