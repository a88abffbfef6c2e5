//! Starting and stopping a simulated cluster: the HTTP server on a loopback port, the
//! controllers, the seed objects (default namespaces, nodes, apps from a config), and the
//! kubeconfig that points clients at it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::clock::SimClock;
use super::config::SimConfig;
use super::faults::Faults;
use super::registry::Registry;
use super::store::Store;

/// Timings of the simulated cluster.
#[derive(Debug, Clone)]
pub struct Timings {
    /// How long after a pod is bound until it is Ready.
    pub ready_after: Duration,
    /// How long a kubelet takes to confirm a graceful deletion (capped by the grace period).
    pub terminate_after: Duration,
    /// How long a Velero backup or restore takes.
    pub velero_after: Duration,
    /// How long until a pending claim is bound.
    pub bind_volume_after: Duration,
    /// How often the watch bookmarks come.
    pub bookmark_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            ready_after: Duration::from_millis(200),
            terminate_after: Duration::from_millis(100),
            velero_after: Duration::from_millis(300),
            bind_volume_after: Duration::from_millis(100),
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// Counters a test reads back (how many eviction POSTs a pod got, for instance).
#[derive(Debug, Default)]
pub struct Stats {
    evictions: Mutex<BTreeMap<String, u64>>,
    injected: std::sync::atomic::AtomicU64,
}

impl Stats {
    pub fn count_eviction(&self, ns: &str, name: &str) {
        *self.evictions.lock().unwrap_or_else(|e| e.into_inner()).entry(format!("{ns}/{name}")).or_default() += 1;
    }

    pub fn evictions(&self) -> BTreeMap<String, u64> {
        self.evictions.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn count_injected_error(&self) {
        self.injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many requests were answered with an injected error (fault rules).
    pub fn injected_errors(&self) -> u64 {
        self.injected.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Everything the HTTP handlers and controllers share.
pub struct SimState {
    pub store: Arc<Store>,
    /// `127.0.0.1:<port>`.
    pub address: String,
    pub bookmark_interval: Duration,
    pub timings: Timings,
    pub faults: Faults,
    pub stats: Stats,
    /// Instants controllers remember between reconciles (when a pod started, when a deletion
    /// is due), by a key of their own.
    pub memo: Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
}

impl SimState {
    /// The instant remembered under `key`, remembering `now` first if there is none.
    pub fn since(&self, key: &str) -> tokio::time::Instant {
        *self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_insert_with(tokio::time::Instant::now)
    }

    pub fn forget(&self, key: &str) {
        self.memo.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// A running simulated cluster.
pub struct Sim {
    pub state: Arc<SimState>,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How to start one.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// 0 picks a free port.
    pub port: u16,
    pub config: SimConfig,
    pub timings: Option<Timings>,
    /// Events kept for watches (older resourceVersions get 410); 10,000 by default, about the
    /// window a real API server's watch cache keeps for a busy type.
    pub history: Option<usize>,
}

impl Sim {
    /// Binds 127.0.0.1:`port`, starts the controllers and seeds the cluster.
    pub async fn start(opts: SimOptions) -> std::io::Result<Sim> {
        let timings = opts.timings.clone().unwrap_or_else(|| opts.config.timings());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let clock = SimClock::default();
        let registry = if opts.config.without_velero { Registry::without_group("velero.io") } else { Registry::new() };
        let store = Arc::new(Store::new(Arc::new(registry), clock, opts.history.unwrap_or(10_000)));
        let state = Arc::new(SimState {
            store,
            address: addr.to_string(),
            bookmark_interval: timings.bookmark_interval,
            timings,
            faults: Faults::new(opts.config.faults.clone().unwrap_or_default()),
            stats: Stats::default(),
            memo: Mutex::new(std::collections::HashMap::new()),
        });
        let shutdown = CancellationToken::new();
        let mut tasks = super::controllers::spawn_all(state.clone(), shutdown.clone(), !opts.config.without_velero);
        super::config::seed(&state, &opts.config).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        let router = super::api::router(state.clone());
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        }));
        Ok(Sim { state, addr, shutdown, tasks })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for the cluster (context `firedrill-sim`, namespace `default`).
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// Stops the server and the controllers.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// A kubeconfig pointing at `server`.
pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: firedrill-sim\n  cluster:\n    server: {server}\ncontexts:\n- name: firedrill-sim\n  context:\n    cluster: firedrill-sim\n    user: firedrill-sim\n    namespace: default\ncurrent-context: firedrill-sim\nusers:\n- name: firedrill-sim\n  user: {{}}\n"
    )
}
