//! Ledger benchmarks: append latency on `file://`, then `evidence verify` and `history` over a
//! ledger of 100,000 records, timed as a person runs them (the release binary, wall clock).
//!
//!     cargo bench --bench ledger            # 100k records
//!     LEDGER_BENCH_RECORDS=20000 cargo bench --bench ledger
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs with 300 records: a check
//! that the benchmark still works, not a measurement.
//!
//! Records are copies of real ones (an intent and an outcome of an etcd-restore run, ~1.1 KB
//! and ~4 KB), alternating, each with its own run id.

use std::process::Command;
use std::time::{Duration, Instant};

use firedrill::clock::Clock;
use firedrill::ledger::Ledger;
use firedrill::ledger::record::Entry;

const INTENT: &str = include_str!("fixtures/intent.json");
const OUTCOME: &str = include_str!("fixtures/outcome.json");

fn entry(template: &Entry, n: usize) -> Entry {
    let mut e = template.clone();
    let id = format!("bench-{n:08}");
    match &mut e {
        Entry::Intent(i) => i.run_id = id,
        Entry::Outcome(o) => o.run_id = id,
        Entry::Scenario(s) => s.run_id = id,
        Entry::Notification(n) => n.run_id = id,
    }
    e
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `cmd` three times; prints each wall time and returns the slowest.
fn timed(label: &str, cmd: &mut Command) -> Duration {
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = cmd.output().expect("run firedrill");
        times.push(t.elapsed());
        assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let shown: Vec<String> = times.iter().map(|t| format!("{:.3}", t.as_secs_f64())).collect();
    println!("{label:<48} {} s", shown.join(" / "));
    times.into_iter().max().unwrap_or_default()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let default = if benching { 100_000 } else { 300 };
    let n: usize = std::env::var("LEDGER_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let intent: Entry = serde_json::from_str(INTENT).expect("intent fixture");
    let outcome: Entry = serde_json::from_str(OUTCOME).expect("outcome fixture");
    // LEDGER_BENCH_DIR keeps the ledger for a closer look afterwards.
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("LEDGER_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let url = format!("file://{}", dir.join("ledger").display());
    let rt = tokio::runtime::Runtime::new().unwrap();

    rt.block_on(async {
        // A fresh process appending one record at a time: what every run does twice.
        let ledger = Ledger::open(&url, &dir.join("data"), Clock::system()).unwrap();
        let mut lat = Vec::new();
        for i in 0..(n / 3).min(1000) {
            let t = Instant::now();
            ledger.append(&entry(if i % 2 == 0 { &intent } else { &outcome }, i)).await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "append on file:// ({} appends)                 p50 {:.3} ms, p99 {:.3} ms",
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
        // A new Ledger each time: the head is found from the store, as at the start of a run.
        let first = lat.len();
        let mut cold = Vec::new();
        for i in first..first + 100 {
            let l = Ledger::open(&url, &dir.join("data"), Clock::system()).unwrap();
            let t = Instant::now();
            l.append(&entry(&outcome, i)).await.unwrap();
            cold.push(t.elapsed());
        }
        cold.sort();
        println!(
            "first append after opening (100 opens)          p50 {:.3} ms, p99 {:.3} ms",
            percentile(&cold, 0.5).as_secs_f64() * 1e3,
            percentile(&cold, 0.99).as_secs_f64() * 1e3
        );
        let t = Instant::now();
        for i in first + 100..n {
            ledger.append(&entry(if i % 2 == 0 { &intent } else { &outcome }, i)).await.unwrap();
        }
        println!("filled the ledger to {n} records in {:.1} s", t.elapsed().as_secs_f64());
    });

    let bin = env!("CARGO_BIN_EXE_firedrill");
    let firedrill = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args).env("FIREDRILL_LEDGER", &url).env("FIREDRILL_DATA_DIR", dir.join("data"));
        c
    };
    let verify = timed(&format!("firedrill evidence verify ({n} records)"), &mut firedrill(&["evidence", "verify"]));
    let history =
        timed(&format!("firedrill history -o json ({n} records)"), &mut firedrill(&["history", "-o", "json"]));
    let recent =
        timed(&format!("firedrill history --limit 20 ({n} records)"), &mut firedrill(&["history", "--limit", "20"]));
    if !benching {
        println!("(a check that the benchmark works, with {n} records; `cargo bench --bench ledger` measures)");
        return;
    }
    // The first history run finds no local cache and reads every record; later runs read the
    // cache and the store's last record. The goal holds for the slowest.
    println!(
        "goals: verify < 2 s ({}), history < 1 s ({})",
        ok(verify < Duration::from_secs(2)),
        ok(history.max(recent) < Duration::from_secs(1))
    );
}

fn ok(b: bool) -> &'static str {
    if b { "met" } else { "MISSED" }
}
