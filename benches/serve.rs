//! `firedrill serve` under load, as a separate process (the release binary):
//!
//! 1. **Idle**: 1,000 drills scheduled daily (none due during the bench); the daemon's resident
//!    memory (`VmRSS`) and CPU time (`utime + stime` from `/proc`) over `IDLE_SECS` (60).
//! 2. **A burst**: 10,000 drills due in the same minute (cron `0 * * * * *`, no jitter), with
//!    `--max-concurrent 100 --max-per-cluster 100`. Each drill's cluster refuses connections, so
//!    every run ends at once in its preflight (`Error`), with its outcome in a `memory://` ledger:
//!    what is measured is the scheduler, not a drill. From `/metrics`: the start lag of the runs
//!    that found a free slot (p50/p99 from the histogram's buckets: an upper bound) and the wait
//!    of those the limit held, plus how long the whole burst took.
//!
//! ```text
//! cargo bench --bench serve
//! IDLE_SECS=10 BURST=2000 cargo bench --bench serve
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs 20 drills idle for 2 s and a
//! burst of 50: a check that the benchmark works, not a measurement.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes `n` drill files with this cron; their cluster is a closed port.
fn drills(dir: &Path, n: u64, cron: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, firedrill::sim::server::kubeconfig(&format!("http://127.0.0.1:{}", free_port())))
        .unwrap();
    for i in 0..n {
        let body = format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: d{i:05}\nschedule:\n  cron: \"{cron}\"\ncluster:\n  kubeconfig: {}\npdbCheck:\n  failOn: critical\n",
            kubeconfig.display()
        );
        std::fs::write(dir.join(format!("d{i:05}.yaml")), body).unwrap();
    }
}

struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(specs: &Path, data: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(["serve", "--listen", &listen, "--specs", specs.to_str().unwrap(), "--canary-interval", "24h"])
            .args(extra)
            .env("FIREDRILL_DATA_DIR", data)
            .env("FIREDRILL_LEDGER", "memory://bench")
            .env("KUBECONFIG", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start firedrill serve");
        let d = Daemon { child, url: format!("http://{listen}") };
        let deadline = Instant::now() + Duration::from_secs(300);
        while !d.get("/readyz").is_some_and(|r| r.starts_with("ready")) {
            assert!(Instant::now() < deadline, "the daemon did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut stream = std::net::TcpStream::connect(self.url.trim_start_matches("http://")).ok()?;
        use std::io::{Read, Write};
        write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).ok()?;
        Some(out.split_once("\r\n\r\n")?.1.to_string())
    }

    /// (resident KiB, CPU seconds so far).
    fn usage(&self) -> (u64, f64) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (rss, ticks / hz)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(upper bound, cumulative count)` of a histogram's buckets, and its count.
fn buckets(metrics: &str, name: &str) -> (Vec<(f64, u64)>, u64) {
    let mut out = Vec::new();
    let prefix = format!("{name}_bucket{{le=\"");
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let (le, count) = rest.split_once("\"} ").unwrap();
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            out.push((le, count.trim().parse().unwrap()));
        }
    }
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}_count ")))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    (out, count)
}

/// The smallest bucket bound holding the `q` quantile.
fn quantile(b: &(Vec<(f64, u64)>, u64), q: f64) -> f64 {
    let want = (b.1 as f64 * q).ceil() as u64;
    b.0.iter().find(|(_, c)| *c >= want.max(1)).map(|(le, _)| *le).unwrap_or(f64::NAN)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (idle_n, idle_secs, burst) =
        if benching { (1000, env_or("IDLE_SECS", 60), env_or("BURST", 10_000)) } else { (20, 2, 50) };
    let dir = tempfile::tempdir().unwrap();

    // 1. Idle.
    let specs = dir.path().join("idle");
    drills(&specs, idle_n, "0 3 * * *");
    let d = Daemon::start(&specs, &dir.path().join("idle-data"), &[]);
    std::thread::sleep(Duration::from_secs(2));
    let (rss0, cpu0) = d.usage();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (rss1, cpu1) = d.usage();
    println!(
        "idle, {idle_n} schedules: RSS {:.1} MiB at start, {:.1} MiB after {idle_secs} s; CPU {:.2} s over {idle_secs} s ({:.2}%)",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        cpu1 - cpu0,
        (cpu1 - cpu0) / idle_secs as f64 * 100.0
    );
    drop(d);

    // 2. A burst: every drill due at the next minute.
    let specs = dir.path().join("burst");
    // Due at the next minute; every two seconds as a check, so as not to wait for a minute.
    drills(&specs, burst, if benching { "0 * * * * *" } else { "*/2 * * * * *" });
    let d =
        Daemon::start(&specs, &dir.path().join("burst-data"), &["--max-concurrent", "100", "--max-per-cluster", "100"]);
    let loaded = Instant::now();
    let started = |m: &str| {
        buckets(m, "firedrill_schedule_start_lag_seconds").1 + buckets(m, "firedrill_schedule_queue_wait_seconds").1
    };
    let runs = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("firedrill_drill_runs_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let mut first_start = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    let metrics = loop {
        let m = d.get("/metrics").unwrap_or_default();
        if first_start.is_none() && started(&m) > 0 {
            first_start = Some(Instant::now());
        }
        if runs(&m) >= burst {
            break m;
        }
        assert!(Instant::now() < deadline, "the burst did not finish: {} of {burst} runs", runs(&m));
        std::thread::sleep(Duration::from_millis(20));
    };
    if std::env::var("DUMP").is_ok() {
        std::fs::write("/tmp/serve-metrics.txt", &metrics).unwrap();
    }
    let took = first_start.map(|s| s.elapsed()).unwrap_or_default();
    let lag = buckets(&metrics, "firedrill_schedule_start_lag_seconds");
    let wait = buckets(&metrics, "firedrill_schedule_queue_wait_seconds");
    let (rss, _) = d.usage();
    println!(
        "burst of {burst} due at once (limit 100): all ran within {:.2} s of the first start ({:.1} s after loading); RSS {:.1} MiB",
        took.as_secs_f64(),
        loaded.elapsed().as_secs_f64(),
        rss as f64 / 1024.0
    );
    println!(
        "  start lag, {} runs that found a slot: p50 <= {:.1} ms, p99 <= {:.1} ms",
        lag.1,
        quantile(&lag, 0.5) * 1000.0,
        quantile(&lag, 0.99) * 1000.0
    );
    println!(
        "  wait of {} runs held by the limit: p50 <= {:.0} ms, p99 <= {:.0} ms",
        wait.1,
        quantile(&wait, 0.5) * 1000.0,
        quantile(&wait, 0.99) * 1000.0
    );
    assert!(lag.1 + wait.1 >= burst, "every run started: {} + {}", lag.1, wait.1);
}
