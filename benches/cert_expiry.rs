//! cert-expiry's inventory against `openssl x509 -checkend` in a shell loop.
//!
//! ```text
//! cargo bench --bench cert_expiry
//! CERT_BENCH_SECRETS=20000 CERT_BENCH_ENDPOINTS=200 cargo bench --bench cert_expiry
//! ```
//!
//! Mints 10,000 distinct certificates (ECDSA P-256, expiring between 3 days ago and 100 days
//! from now) as `kubernetes.io/tls` Secrets held in memory, and starts 100 TLS servers on
//! loopback. Times, best of 3: reading every Secret's `tls.crt` and judging it at a 30-day
//! horizon (what the drill does once the Secrets are listed; the listing itself is the API
//! server's time), and fetching and judging the 100 endpoints. Prints the process's peak memory
//! (`VmHWM`, which includes the minted certificates and the servers) and the resident memory
//! before the inventory. Then writes the same PEMs to files and times
//! `for f in *.pem; do openssl x509 -checkend 2592000 -noout -in "$f"; done`, and checks both
//! count the same certificates as expiring. Under `cargo test --all-targets` (no `--bench`
//! argument) it runs with 200 Secrets, 5 endpoints and no openssl: a check that it works.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use firedrill::clock::{Clock, Timestamp};
use firedrill::drills::cert_expiry::analysis::{self, FindingCode, Inventory};
use firedrill::drills::cert_expiry::fixtures::{Mint, Minted, tls_server};
use firedrill::drills::cert_expiry::inventory::{self, Counts};
use firedrill::drills::cert_expiry::spec::{Endpoint, Params};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const HORIZON: Duration = Duration::from_secs(30 * 86_400);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn proc_status(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Certificate `i` expires `(i % 104) − 3` days and 12 hours from now: never on the horizon's edge.
fn mint(i: usize, now: Timestamp) -> Minted {
    let until = Timestamp::from_millis(now.millis() + ((i % 104) as i64 - 3) * 86_400_000 + 43_200_000);
    let from = Timestamp::from_millis(now.millis() - 200 * 86_400_000);
    Mint::leaf(&format!("svc-{i}.example.com")).valid(from, until).self_signed()
}

fn secret(i: usize, m: &Minted) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("tls-{i}")),
            namespace: Some(format!("ns-{}", i % 50)),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([("tls.crt".to_string(), ByteString(m.pem.clone().into_bytes()))])),
        ..Secret::default()
    }
}

fn expiring(findings: &[analysis::Finding], prefix: &str) -> usize {
    findings
        .iter()
        .filter(|f| f.object.starts_with(prefix))
        .filter(|f| matches!(f.code, FindingCode::Expired | FindingCode::ExpiresWithinHorizon))
        .count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, e) =
        if bench { (env_or("CERT_BENCH_SECRETS", 10_000), env_or("CERT_BENCH_ENDPOINTS", 100)) } else { (200, 5) };
    let clock = Clock::system();
    let now = clock.now();
    let started = Instant::now();
    let minted: Vec<Minted> = (0..n).map(|i| mint(i, now)).collect();
    let secrets: Vec<Secret> = minted.iter().enumerate().map(|(i, m)| secret(i, m)).collect();
    let mut endpoints = Vec::new();
    for m in minted.iter().take(e) {
        let port = tls_server(&[m], m).await;
        endpoints.push(Endpoint { host: "127.0.0.1".into(), port, sni: None, ca: None });
    }
    println!("minted {n} certificates and started {e} TLS servers in {:.2?}", started.elapsed());
    let params = Params {
        cluster: Default::default(),
        horizon: HORIZON,
        fail_on: analysis::Severity::Warning,
        files: Vec::new(),
        kubeconfigs: Vec::new(),
        endpoints,
        endpoint_timeout: Duration::from_secs(5),
        rehearsal: None,
    };
    let rss_before = proc_status("VmRSS:");

    let (mut best_secrets, mut best_endpoints) = (Duration::MAX, Duration::MAX);
    let mut findings = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let inv = Inventory { items: inventory::secret_items(&secrets, &HashMap::new()), ..Inventory::default() };
        findings = analysis::analyse(&inv, clock.now(), HORIZON);
        best_secrets = best_secrets.min(t.elapsed());
        let t = Instant::now();
        let mut inv = Inventory::default();
        inventory::from_endpoints(&params, clock, &mut inv, &mut Counts::default()).await;
        let served = analysis::analyse(&inv, clock.now(), HORIZON);
        best_endpoints = best_endpoints.min(t.elapsed());
        assert!(inv.items.iter().all(|i| i.certs.is_ok()), "every endpoint answered");
        assert_eq!(expiring(&served, "endpoint "), (0..e).filter(|i| i % 104 < 33).count());
    }
    let ours = expiring(&findings, "Secret ");
    assert_eq!(ours, (0..n).filter(|i| i % 104 < 33).count(), "certificates expiring within 30 days");
    println!(
        "firedrill: {n} Secrets read and judged in {best_secrets:.2?}; {e} endpoints fetched and judged in {best_endpoints:.2?} (best of 3); {ours} Secrets expire within 30 days"
    );
    println!("memory: VmRSS before the inventory {rss_before}, peak VmHWM {}", proc_status("VmHWM:"));
    if !bench {
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    for (i, m) in minted.iter().enumerate() {
        std::fs::write(dir.path().join(format!("tls-{i}.pem")), &m.pem).unwrap();
    }
    let script = format!(
        "n=0; for f in {}/*.pem; do openssl x509 -checkend {} -noout -in \"$f\" >/dev/null || n=$((n+1)); done; echo $n",
        dir.path().display(),
        HORIZON.as_secs()
    );
    let t = Instant::now();
    let out = std::process::Command::new("sh").arg("-c").arg(&script).output().expect("run sh");
    let openssl = t.elapsed();
    let theirs: usize = String::from_utf8_lossy(&out.stdout).trim().parse().expect("openssl's count");
    assert_eq!(theirs, ours, "openssl and firedrill disagree on which certificates expire");
    println!("openssl x509 -checkend loop: {n} files in {openssl:.2?}; {theirs} expire within 30 days");
    println!("ratio: openssl loop / firedrill Secrets = {:.0}x", openssl.as_secs_f64() / best_secrets.as_secs_f64());
}
