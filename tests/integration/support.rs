//! Test helpers: real etcd members and a real S3 server on free loopback ports, the firedrill
//! binary, and fixture builders. Everything a test starts is stopped when its handle drops.
//! A missing etcd or s3s-fs is a failure with instructions, never a silent skip.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use firedrill::etcd::Endpoint;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn need(tool: &str) -> PathBuf {
    firedrill::etcd::tools::on_path(tool).unwrap_or_else(|| panic!("{tool} is not installed: run scripts/setup first"))
}

/// A real etcd member in a temporary directory.
pub struct Etcd {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    /// etcdctl's TLS flags for this member.
    ctl_tls: Vec<String>,
}

impl Etcd {
    pub fn start() -> Self {
        Self::start_with(&[], "http", Vec::new())
    }

    /// Starts etcd with extra flags; `scheme` is `https` when the flags configure TLS, and
    /// `ctl_tls` are the flags etcdctl then needs.
    pub fn start_with(extra: &[String], scheme: &str, ctl_tls: Vec<String>) -> Self {
        let etcd = need("etcd");
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(etcd)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--logger=zap")
            .arg(format!("--log-outputs={}", dir.path().join("etcd.log").display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let e = Self { child, url, dir, ctl_tls };
        e.wait_ready();
        e
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ctl(&["endpoint", "health"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "etcd at {} did not become healthy: {}",
            self.url,
            std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
        );
    }

    /// Flags that make etcdctl talk to this member (TLS ones added by callers).
    pub fn ctl_args(&self) -> Vec<String> {
        let mut args = vec![format!("--endpoints={}", self.url)];
        args.extend(self.ctl_tls.iter().cloned());
        args
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(need("etcdctl")).env("ETCDCTL_API", "3").args(self.ctl_args()).args(args).output().unwrap()
    }

    pub fn put(&self, key: &str, value: &str) {
        let out = self.ctl(&["put", key, value]);
        assert!(out.status.success(), "etcdctl put: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Writes `n` keys under `prefix` in transactions of 100 (etcd allows 128 operations).
    pub fn fill(&self, prefix: &str, n: usize) {
        let mut i = 0;
        while i < n {
            let batch: String = (i..(i + 100).min(n)).map(|j| format!("put {prefix}{j:06} value-{j}\n")).collect();
            let mut child = Command::new(need("etcdctl"))
                .env("ETCDCTL_API", "3")
                .args(self.ctl_args())
                .arg("txn")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            // An empty compare block, the puts as the success block, an empty failure block.
            write!(stdin, "\n{batch}\n\n").unwrap();
            drop(stdin);
            assert!(child.wait().unwrap().success());
            i += 100;
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint { url: self.url.clone(), tls: None }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real S3-compatible server (s3s-fs) over a temporary directory, with one bucket.
pub struct S3 {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
    pub bucket: String,
}

pub const S3_KEY: &str = "firedrill-test-key";
pub const S3_SECRET: &str = "firedrill-test-secret";

impl S3 {
    pub fn start() -> Self {
        let bin = need("s3s-fs");
        let dir = tempfile::tempdir().unwrap();
        let bucket = "evidence".to_string();
        std::fs::create_dir_all(dir.path().join(&bucket)).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                S3_KEY,
                "--secret-key",
                S3_SECRET,
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let s = Self { child, endpoint: format!("http://127.0.0.1:{port}"), dir, bucket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// The environment object_store and the AWS SDK read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// An independent client (the AWS SDK) to look at and tamper with what landed in the bucket.
    pub async fn sdk(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(S3_KEY, S3_SECRET, None, None, "test");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus (Debian's package) on a free loopback port, scraping itself every second,
/// with its storage and log in a temporary directory. Killed when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start() -> Self {
        let bin = need("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: self\n    static_configs: [{{targets: [\"127.0.0.1:{port}\"]}}]\n"
        );
        let config = write(dir.path(), "prometheus.yml", &config);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Self { child, url: format!("http://127.0.0.1:{port}"), dir };
        let (http, ready) = (reqwest::Client::new(), format!("{}/-/ready", p.url));
        until("Prometheus ready", || async {
            let ok = http.get(&ready).send().await.is_ok_and(|r| r.status().is_success());
            ok.then_some(())
        })
        .await;
        p
    }

    /// Waits until Prometheus has scraped itself once (`up` has a sample).
    pub async fn wait_for_a_scrape(&self) {
        let (http, query) = (reqwest::Client::new(), format!("{}/api/v1/query?query=up", self.url));
        until("Prometheus's first scrape", || async {
            let answer: serde_json::Value = http.get(&query).send().await.ok()?.json().await.ok()?;
            answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()).then_some(())
        })
        .await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The firedrill binary with a private data directory and no inherited AWS settings.
pub struct Firedrill {
    pub data_dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

impl Firedrill {
    pub fn new() -> Self {
        Self { data_dir: tempfile::tempdir().unwrap(), env: Vec::new(), cwd: PathBuf::from(env!("CARGO_MANIFEST_DIR")) }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_firedrill"));
        c.current_dir(&self.cwd)
            .args(args)
            .env("FIREDRILL_DATA_DIR", self.data_dir.path())
            .env_remove("FIREDRILL_LEDGER");
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Writes `body` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
    p
}

/// A drill file restoring the newest snapshot from `url`, with optional extra YAML lines.
pub fn etcd_drill_from_store(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: {name}\ntargets:\n  rto: 1m\n  rpo: 1h\netcdRestore:\n  snapshot:\n    fromStore:\n      url: {url}\n{extra}"
    )
}

/// A simulated cluster (`firedrill::sim`) for a test, on a free loopback port. Call
/// `shutdown().await` at the end; a test that panics drops its runtime, which stops it too.
pub async fn sim(config: firedrill::sim::config::SimConfig) -> firedrill::sim::Sim {
    sim_with(firedrill::sim::SimOptions { config, ..Default::default() }).await
}

pub async fn sim_with(options: firedrill::sim::SimOptions) -> firedrill::sim::Sim {
    firedrill::sim::Sim::start(options).await.expect("start the simulator")
}

/// A kube-rs client for the simulator, built as drills build theirs: kube 5 retries 429, 503 and
/// 504 inside the client.
pub fn kube_client(sim: &firedrill::sim::Sim) -> kube::Client {
    kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap()
}

/// A kube-rs client that hands every 429, 503 and 504 to its caller (`default_retry = false`).
pub fn kube_client_without_retry(sim: &firedrill::sim::Sim) -> kube::Client {
    let mut config = kube::Config::new(sim.url().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// How long a test waits for the simulator's controllers: far more than they need (they act in
/// milliseconds), so that a loaded CI machine does not fail the test.
pub const SIM_PATIENCE: Duration = Duration::from_secs(30);

/// Waits with kube-rs's `await_condition` (a watch by `metadata.name`) until `cond` holds for
/// `name`; panics saying `what` did not happen.
pub async fn wait_for<K>(
    api: &kube::Api<K>,
    name: &str,
    what: &str,
    cond: impl kube::runtime::wait::Condition<K>,
) -> Option<K>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    match tokio::time::timeout(SIM_PATIENCE, kube::runtime::wait::await_condition(api.clone(), name, cond)).await {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => panic!("waiting until {what}: {e}"),
        Err(_) => panic!("{what}: not within {SIM_PATIENCE:?}"),
    }
}

/// Polls `probe` every 20 ms until it returns `Some` (for what a single watch cannot see, such as
/// several pods at once); panics saying `what` did not happen.
pub async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + SIM_PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {SIM_PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Ready pods of app `app` (label `app=<app>`) that are not being deleted, once there are `n`.
pub async fn ready_pods(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    app: &str,
    n: usize,
) -> Vec<k8s_openapi::api::core::v1::Pod> {
    let lp = &kube::api::ListParams::default().labels(&format!("app={app}"));
    until(&format!("{n} Ready pods of {app}"), || async move {
        let list = pods.list(lp).await.ok()?;
        let ready: Vec<_> =
            list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none() && pod_is_ready(p)).collect();
        (ready.len() == n).then_some(ready)
    })
    .await
}

/// Whether the pod's `Ready` condition is `True`.
pub fn pod_is_ready(p: &k8s_openapi::api::core::v1::Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `(drill, verdict)` of each step of a scenario's JSON result (`skipped` for a step that did not run).
pub fn scenario_steps(result: &serde_json::Value) -> Vec<(&str, &str)> {
    result["scenario"]["steps"]
        .as_array()
        .expect("a scenario result")
        .iter()
        .map(|s| (s["drill"].as_str().unwrap_or_default(), s["verdict"].as_str().unwrap_or("skipped")))
        .collect()
}

/// The cluster of `scenarios/monthly-payments-restore.yaml`'s `sim` section (the payments app, a
/// file-backed BackupStorageLocation and a seeded Backup), with its bucket in `dir`.
pub fn payments_cluster(dir: &Path) -> firedrill::sim::config::SimConfig {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario = std::fs::read_to_string(root.join("scenarios/monthly-payments-restore.yaml")).unwrap();
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let file = write(dir, "payments-sim.yaml", &scenario.replace("/tmp/firedrill-velero", bucket.to_str().unwrap()));
    firedrill::sim::config::load(&file).unwrap()
}
