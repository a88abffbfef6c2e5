//! `firedrill serve` (the scheduler daemon) and `firedrill schedule list`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::Global;
use crate::clock::Clock;
use crate::cluster::{Retries, Target};
use crate::engine::{Abort, Runner, janitor};
use crate::ledger::Ledger;
use crate::ledger::record::Trigger;
use crate::progress::Quiet;
use crate::serve::daemon::{self, Config, Daemon, ScheduleView};
use crate::serve::lease::Election;
use crate::serve::scheduler::Limits;

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration ({e}): write e.g. 30s, 5m"))
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where /healthz, /readyz, /metrics and /schedule are served.
    #[arg(long, env = "FIREDRILL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Drill and scenario files or directories (repeat, or comma-separate). Default: drills/ and scenarios/.
    #[arg(long = "specs", env = "FIREDRILL_SPECS", value_delimiter = ',')]
    pub specs: Vec<PathBuf>,
    /// Elect a leader through a Lease in this namespace; without it this process always fires.
    #[arg(long, env = "FIREDRILL_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    #[arg(long, env = "FIREDRILL_LEASE_NAME", default_value = "firedrill")]
    pub lease_name: String,
    /// This replica's name in the Lease (a pod's name). Default: host name and process id.
    #[arg(long, env = "FIREDRILL_IDENTITY")]
    pub identity: Option<String>,
    /// How long a Lease nobody renews stays taken.
    #[arg(long, env = "FIREDRILL_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// How often the leader renews and the others look.
    #[arg(long, env = "FIREDRILL_LEASE_RETRY", default_value = "2s", value_parser = duration)]
    pub lease_retry: Duration,
    /// Runs at once, in all.
    #[arg(long, env = "FIREDRILL_MAX_CONCURRENT", default_value_t = 4)]
    pub max_concurrent: usize,
    /// Runs at once on one cluster.
    #[arg(long, env = "FIREDRILL_MAX_PER_CLUSTER", default_value_t = 1)]
    pub max_per_cluster: usize,
    /// At SIGTERM, how long running drills may take to clean up.
    #[arg(long, env = "FIREDRILL_SHUTDOWN_TIMEOUT", default_value = "5m", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// Write the RPO canary into this namespace too (besides those velero-restore drills restore).
    #[arg(long = "canary-namespace", env = "FIREDRILL_CANARY_NAMESPACES", value_delimiter = ',')]
    pub canary_namespaces: Vec<String>,
    #[arg(long, env = "FIREDRILL_CANARY_INTERVAL", default_value = "1m", value_parser = duration)]
    pub canary_interval: Duration,
    /// How often the spec files are checked for changes (SIGHUP reloads at once).
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub reload_interval: Duration,
    /// The kubeconfig for the Lease and the canary; $KUBECONFIG, ~/.kube/config or in-cluster when unset.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// The scheduled drills and scenarios with their next fire times: from a running daemon
    /// (`--server`) or from the files.
    List {
        /// A running daemon, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: Option<String>,
        /// Files or directories. Default: drills/ and scenarios/.
        paths: Vec<PathBuf>,
        /// How many fire times to show per job (offline).
        #[arg(short = 'n', long, default_value_t = 3)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
}

pub async fn schedule(command: ScheduleCommand) -> anyhow::Result<i32> {
    let ScheduleCommand::List { server, paths, count, json } = command;
    if let Some(server) = server {
        let url = format!("{}/schedule", server.trim_end_matches('/'));
        let view: ScheduleView = reqwest::get(&url).await?.error_for_status()?.json().await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&view)?);
            return Ok(0);
        }
        println!("{} ({})", server, if view.leader { "leader" } else { "standby" });
        for j in &view.jobs {
            let next = j.next_fire.map(|t| t.to_string()).unwrap_or_else(|| "never".into());
            println!(
                "  {:<40} {:<28} next {next}{}",
                j.key,
                format!("{} ({})", j.cron, j.time_zone),
                if j.running { "  running" } else { "" }
            );
        }
        for e in &view.errors {
            println!("  skipped: {e}");
        }
        return Ok(if view.errors.is_empty() { 0 } else { 2 });
    }
    let paths = if paths.is_empty() { super::default_spec_paths() } else { paths };
    let (rows, errors) = daemon::offline(&paths, Clock::system().now(), count);
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"jobs": rows, "errors": errors}))?);
    } else {
        for r in &rows {
            let next: Vec<String> = r.next.iter().map(|t| t.to_string()).collect();
            println!("{:<40} {:<28} {}", r.key, r.schedule, next.join(", "));
        }
        for e in &errors {
            eprintln!("skipped: {e}");
        }
    }
    Ok(if errors.is_empty() { 0 } else { 2 })
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{}-{}", if host.is_empty() { "firedrill" } else { &host }, std::process::id())
}

pub async fn serve(global: &Global, args: ServeArgs) -> anyhow::Result<i32> {
    let data_dir = global.data_dir();
    let clock = Clock::system();
    let notifier =
        crate::notify::from_env().map_err(|e| anyhow::anyhow!("{e}\nthe daemon did not start"))?.map(Arc::new);
    let ledger = Arc::new(Ledger::open(&global.ledger_url(), &data_dir, clock)?);
    let stopping = CancellationToken::new();
    let runner = Runner {
        clock,
        ledger: ledger.clone(),
        data_dir: data_dir.clone(),
        progress: Arc::new(Quiet),
        abort: Abort::new(),
        trigger: Trigger { by: "schedule".into(), operator: None },
    };
    match ledger.flush_spool().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "appended spooled records"),
        Err(e) => tracing::warn!(error = %e, "spooled records stay spooled"),
    }
    for cleaned in janitor::sweep(&runner).await {
        tracing::warn!(drill = %cleaned.drill.name, run = %cleaned.run_id, reason = %cleaned.reason, "janitor");
    }
    let cluster = Target { kubeconfig: args.kubeconfig.clone(), context: None };
    let leader = match &args.lease_namespace {
        Some(ns) => {
            let client = cluster.client(Retries::Client).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            Election {
                api: kube::Api::namespaced(client, ns),
                name: args.lease_name.clone(),
                identity: args.identity.clone().unwrap_or_else(identity),
                duration: args.lease_duration,
                retry: args.lease_retry,
            }
            .spawn(stopping.clone())
        }
        None => tokio::sync::watch::channel(true).1,
    };
    let specs = if args.specs.is_empty() { super::default_spec_paths() } else { args.specs.clone() };
    let config = Config {
        specs,
        limits: Limits { global: args.max_concurrent.max(1), per_cluster: args.max_per_cluster.max(1) },
        shutdown_timeout: args.shutdown_timeout,
        reload_every: args.reload_interval,
        canary_namespaces: args.canary_namespaces.clone(),
        canary_interval: args.canary_interval,
        canary_cluster: cluster,
        state_file: data_dir.join("serve").join("state.json"),
        notifier,
    };
    let daemon = Daemon::new(config, runner, leader, stopping.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("firedrill serve: listening on http://{}", listener.local_addr()?);
    let http_stop = stopping.clone();
    let router = daemon::router(daemon.clone());
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(async move { http_stop.cancelled().await }).await;
    });
    let signals = stopping.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        let name = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
        tracing::warn!("{name}: starting no new runs, letting running ones clean up");
        eprintln!("firedrill serve: {name}: stopping");
        signals.cancel();
    });
    tokio::spawn(daemon.clone().canary_loop());
    daemon.run_until_stopped().await;
    let _ = http.await;
    // Let the election give the Lease up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!("firedrill serve: stopped");
    Ok(0)
}
