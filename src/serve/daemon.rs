//! The daemon: loads the spec files, fires each scheduled drill and scenario through the engine's
//! runner on the replica that leads, serves `/healthz`, `/readyz`, `/metrics` and `/schedule`,
//! writes the RPO canary, reloads on file change or SIGHUP, and stops gracefully on SIGTERM.
//!
//! - **Bad input never stops it**: invalid files are reported (log, `/schedule`,
//!   `firedrill_spec_errors`) and skipped; the valid ones keep their schedules.
//! - **Reload** swaps the jobs; a running drill keeps the plan it started with.
//! - **SIGTERM / SIGINT**: no new run starts; running ones are aborted, which sends them through
//!   their cleanup and records them `Aborted`; the daemon waits for them up to the shutdown
//!   timeout, gives the Lease up, and exits.
//! - **State** (the last fire time handled per job) is kept in `<data dir>/serve/state.json`, so
//!   a restart knows what it missed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::scheduler::{Due, Job, JobKind, Limits, Running, State};
use crate::clock::{Clock, Timestamp};
use crate::engine::{Runner, scenario};
use crate::ledger::record::Outcome;
use crate::plan::{DrillPlan, ScenarioPlan};
use crate::spec::{Catalog, SpecError};

/// What the daemon was told.
#[derive(Debug, Clone)]
pub struct Config {
    pub specs: Vec<PathBuf>,
    pub limits: Limits,
    pub shutdown_timeout: Duration,
    /// How often the spec files are looked at for changes.
    pub reload_every: Duration,
    /// Namespaces to write the canary into, besides those velero-restore drills protect.
    pub canary_namespaces: Vec<String>,
    pub canary_interval: Duration,
    /// The cluster the canary is written to (the daemon's own, in a pod).
    pub canary_cluster: crate::cluster::Target,
    pub state_file: PathBuf,
    /// Where failures and recoveries are told (from the environment).
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

/// A job and the plan it runs.
#[derive(Clone)]
enum Target {
    Drill(Arc<DrillPlan>),
    Scenario(Arc<ScenarioPlan>),
}

#[derive(Clone)]
struct Loaded {
    job: Job,
    target: Target,
}

/// Whether a due run may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Started,
    /// No free slot yet.
    Wait,
    /// Never: the reason, for `firedrill_schedule_skipped_total`.
    Skip(&'static str),
}

/// What `/schedule` shows of one job.
#[derive(Serialize, serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub key: String,
    pub name: String,
    pub kind: JobKind,
    pub cron: String,
    pub time_zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_fire: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_handled: Option<Timestamp>,
    pub running: bool,
    pub file: PathBuf,
}

/// What `/schedule` answers.
#[derive(Serialize, serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub leader: bool,
    pub jobs: Vec<JobView>,
    /// Errors in the spec files (`file:line:column: message`); their drills and scenarios are skipped.
    pub errors: Vec<String>,
}

struct Inner {
    /// Shared, so that a tick takes them without copying every schedule.
    jobs: Arc<Vec<Loaded>>,
    /// Each job's next fire time (before jitter), so that a tick looks only at jobs that are due.
    next: std::collections::HashMap<String, Option<Timestamp>>,
    errors: Vec<String>,
    state: State,
    running: Running,
    /// Fingerprint of the spec files (paths, sizes, modification times).
    fingerprint: String,
    loaded: bool,
}

/// The daemon's shared state.
pub struct Daemon {
    config: Config,
    runner: Runner,
    clock: Clock,
    pub metrics: Metrics,
    inner: Mutex<Inner>,
    leader: watch::Receiver<bool>,
    /// Woken when a run finishes (a slot frees) or the jobs change.
    changed: Notify,
    stopping: CancellationToken,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The spec files' fingerprint: a change to any of them (or a new or deleted one) changes it.
fn fingerprint(paths: &[PathBuf]) -> String {
    let mut parts = Vec::new();
    for p in paths {
        let files: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => vec![p.clone()],
        };
        for f in files {
            if let Ok(m) = std::fs::metadata(&f) {
                let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                parts.push(format!("{}:{}:{:?}", f.display(), m.len(), modified));
            }
        }
    }
    parts.sort();
    parts.join("\n")
}

fn load(paths: &[PathBuf]) -> (Vec<Loaded>, Vec<SpecError>) {
    let (catalog, errors) = Catalog::load_lenient(paths);
    (jobs_of(&catalog), errors.0)
}

fn jobs_of(catalog: &Catalog) -> Vec<Loaded> {
    let drills = catalog.drills.iter().filter_map(|d| {
        let schedule = d.schedule.clone()?;
        let clusters = BTreeSet::from([d.params.cluster_key()]);
        Some(Loaded {
            job: Job { name: d.name.clone(), kind: JobKind::Drill, schedule, clusters },
            target: Target::Drill(d.clone()),
        })
    });
    let scenarios = catalog.scenarios.iter().filter_map(|s| {
        let schedule = s.schedule.clone()?;
        let clusters = s.steps.iter().map(|st| st.drill.params.cluster_key()).collect();
        Some(Loaded {
            job: Job { name: s.name.clone(), kind: JobKind::Scenario, schedule, clusters },
            target: Target::Scenario(s.clone()),
        })
    });
    drills.chain(scenarios).collect()
}

impl Daemon {
    pub fn new(
        config: Config,
        runner: Runner,
        leader: watch::Receiver<bool>,
        stopping: CancellationToken,
    ) -> Arc<Self> {
        let state =
            std::fs::read(&config.state_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let clock = runner.clock;
        Arc::new(Daemon {
            config,
            runner,
            clock,
            metrics: Metrics::new(),
            inner: Mutex::new(Inner {
                jobs: Arc::default(),
                next: Default::default(),
                errors: Vec::new(),
                state,
                running: Running::default(),
                fingerprint: String::new(),
                loaded: false,
            }),
            leader,
            changed: Notify::new(),
            stopping,
        })
    }

    /// Loads the spec files if they changed (or `force`). Bad files are reported and skipped.
    pub fn reload(&self, force: bool) {
        let print = fingerprint(&self.config.specs);
        let unchanged = {
            let inner = lock(&self.inner);
            inner.loaded && inner.fingerprint == print
        };
        if unchanged && !force {
            return;
        }
        let (jobs, errors) = load(&self.config.specs);
        for e in &errors {
            tracing::error!("{e}: skipped");
        }
        for j in &jobs {
            if let Target::Drill(d) = &j.target {
                self.metrics.targets(&d.name, d.targets.rto_ms, d.targets.rpo_ms);
            }
        }
        tracing::info!(jobs = jobs.len(), errors = errors.len(), "loaded the spec files");
        self.metrics.spec_errors.set(errors.len() as i64);
        let mut inner = lock(&self.inner);
        inner.jobs = Arc::new(jobs);
        inner.next.clear();
        inner.errors = errors.iter().map(|e| e.to_string()).collect();
        inner.fingerprint = print;
        inner.loaded = true;
        drop(inner);
        self.changed.notify_waiters();
    }

    pub fn ready(&self) -> bool {
        lock(&self.inner).loaded
    }

    pub fn leading(&self) -> bool {
        *self.leader.borrow()
    }

    pub fn view(&self) -> ScheduleView {
        let now = self.clock.now();
        let inner = lock(&self.inner);
        ScheduleView {
            leader: self.leading(),
            jobs: inner
                .jobs
                .iter()
                .map(|l| JobView {
                    key: l.job.key(),
                    name: l.job.name.clone(),
                    kind: l.job.kind,
                    cron: l.job.schedule.cron.clone(),
                    time_zone: l.job.schedule.time_zone.name().to_string(),
                    next_fire: inner.state.next_fire(&l.job, now),
                    last_handled: inner.state.last.get(&l.job.key()).copied(),
                    running: inner.running.contains(&l.job.key()),
                    file: match &l.target {
                        Target::Drill(d) => d.file.clone(),
                        Target::Scenario(s) => s.file.clone(),
                    },
                })
                .collect(),
            errors: inner.errors.clone(),
        }
    }

    fn save_state(&self, state: &State) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.config.state_file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.config.state_file.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
            std::fs::rename(&tmp, &self.config.state_file)
        };
        if let Err(e) = write() {
            tracing::warn!(file = %self.config.state_file.display(), error = %e, "cannot save the scheduler's state");
        }
    }

    /// One pass: what is due now, started (on the leader) as tasks; returns when to look again.
    fn tick(self: &Arc<Self>) -> Duration {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let jobs = inner.jobs.clone();
        let mut dues = Vec::new();
        let mut earliest: Option<Timestamp> = None;
        let mut seen_new = false;
        for l in jobs.iter() {
            let key = l.job.key();
            // A job not due yet costs one lookup.
            if let Some(Some(next)) = inner.next.get(&key)
                && *next > now
            {
                earliest = Some(earliest.map_or(*next, |e| e.min(*next)));
                continue;
            }
            seen_new |= !inner.next.contains_key(&key);
            // Every replica keeps its state current, so that a new leader does not catch up on
            // what the old one ran.
            if let Some(due) = inner.state.take_due(&l.job, now) {
                // Started here when it may start now: a burst of due runs is admitted in this
                // one pass, each as soon as it is looked at, not after the rest are spawned.
                let admitted = (self.leading() && due.start_at <= now).then(|| self.admit(&mut inner, &l.job, &due));
                if admitted == Some(Admit::Started) {
                    self.started(&due, false);
                    let (me, l) = (self.clone(), l.clone());
                    tokio::spawn(async move { me.execute(l).await });
                } else {
                    // Tried and refused a slot: it is held by the limits from here.
                    dues.push((l.clone(), due, admitted == Some(Admit::Wait)));
                }
            }
            let next = inner.state.next_fire(&l.job, now);
            if let Some(t) = next {
                self.metrics.next_fire.get_or_create(&vec![("name", key.clone())]).set(t.millis() as f64 / 1000.0);
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            inner.next.insert(key, next);
        }
        let state = (!dues.is_empty() || seen_new).then(|| inner.state.clone());
        drop(inner);
        if let Some(state) = state {
            self.save_state(&state);
        }
        for (loaded, due, held) in dues {
            if !self.leading() {
                tracing::debug!(job = %due.key, "due, but another replica leads");
                self.metrics.skipped(&due.key, "not-leader");
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move { me.dispatch(loaded, due, held).await });
        }
        // Wake for the next fire time, and at least every second (a reload, a clock jump).
        earliest.and_then(|t| t.since(self.clock.now())).unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1))
    }

    /// Whether `job`'s run may start now; takes its slot when it may.
    fn admit(&self, inner: &mut Inner, job: &Job, due: &Due) -> Admit {
        if self.stopping.is_cancelled() {
            return Admit::Skip("stopping");
        }
        if !self.leading() {
            return Admit::Skip("not-leader");
        }
        if due.latest_start.is_some_and(|l| self.clock.now() > l) {
            return Admit::Skip("window");
        }
        if !inner.running.admits(job, self.config.limits) {
            return Admit::Wait;
        }
        inner.running.start(job);
        self.metrics.running.set(inner.running.len() as i64);
        Admit::Started
    }

    /// Notes a start: its lag after the (jittered) start time, apart for runs the limits held.
    fn started(&self, due: &Due, held: bool) {
        let lag = self.clock.now().since(due.start_at).unwrap_or_default();
        let histogram = if held { &self.metrics.queue_wait } else { &self.metrics.start_lag };
        histogram.observe(lag.as_secs_f64());
        tracing::info!(job = %due.key, scheduled = %due.scheduled, lag_ms = lag.as_millis() as u64, held, "starting");
    }

    /// Waits for the start time and a free slot, then runs.
    async fn dispatch(self: Arc<Self>, loaded: Loaded, due: Due, mut held: bool) {
        if let Some(wait) = due.start_at.since(self.clock.now()) {
            tokio::select! {
                _ = self.clock.sleep(wait) => {}
                _ = self.stopping.cancelled() => return self.metrics.skipped(&due.key, "stopping"),
            }
        }
        loop {
            let notified = self.changed.notified();
            let admitted = self.admit(&mut lock(&self.inner), &loaded.job, &due);
            match admitted {
                Admit::Started => break,
                Admit::Skip(reason) => {
                    tracing::info!(job = %due.key, reason, "scheduled run not started");
                    return self.metrics.skipped(&due.key, reason);
                }
                Admit::Wait => held = true,
            }
            // A slot frees, or the window closes.
            let until_window =
                due.latest_start.and_then(|l| l.since(self.clock.now())).unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = notified => {}
                _ = self.clock.sleep(until_window.min(Duration::from_secs(5))) => {}
                _ = self.stopping.cancelled() => {}
            }
        }
        self.started(&due, held);
        self.execute(loaded).await
    }

    /// Runs a started job, records its figures, tells the webhooks, and frees its slot.
    async fn execute(self: Arc<Self>, loaded: Loaded) {
        let outcomes = self.run(&loaded.target).await;
        for o in &outcomes {
            self.metrics.run_finished(o);
            if let Some(notifier) = &self.config.notifier {
                for d in crate::notify::after_run(notifier, &self.runner.ledger, o).await {
                    tracing::info!("notification: {}", d.describe());
                    self.metrics.notification(d.notification.channel.as_str(), d.notification.delivered);
                }
            }
        }
        let mut inner = lock(&self.inner);
        inner.running.finish(&loaded.job.key());
        self.metrics.running.set(inner.running.len() as i64);
        drop(inner);
        self.changed.notify_waiters();
    }

    async fn run(&self, target: &Target) -> Vec<Outcome> {
        match target {
            Target::Drill(plan) => {
                let result = self.runner.run(plan, None).await;
                tracing::info!(drill = %plan.name, verdict = %result.outcome.verdict, reason = %result.outcome.reason, "finished");
                vec![result.outcome]
            }
            Target::Scenario(plan) => {
                let result = scenario::run(&self.runner, plan).await;
                tracing::info!(scenario = %plan.name, verdict = %result.outcome.verdict, "finished");
                result.runs.into_iter().map(|r| r.outcome).collect()
            }
        }
    }

    /// The namespaces to keep a canary in: the configured ones and those velero-restore drills
    /// restore.
    pub fn canary_namespaces(&self) -> Vec<String> {
        let inner = lock(&self.inner);
        // An empty entry (an empty FIREDRILL_CANARY_NAMESPACES) names no namespace.
        let mut out: BTreeSet<String> =
            self.config.canary_namespaces.iter().filter(|n| !n.is_empty()).cloned().collect();
        for l in inner.jobs.iter() {
            let plans: Vec<&Arc<DrillPlan>> = match &l.target {
                Target::Drill(d) => vec![d],
                Target::Scenario(s) => s.steps.iter().map(|st| &st.drill).collect(),
            };
            for d in plans {
                if let crate::drills::DrillParams::VeleroRestore(p) = &d.params {
                    out.insert(p.namespace.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Runs the scheduler until `stopping`, then waits for running drills (up to the shutdown
    /// timeout) after aborting them.
    pub async fn run_until_stopped(self: Arc<Self>) {
        self.reload(true);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last_reload_check = tokio::time::Instant::now();
        loop {
            let wait = self.tick();
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.clock.sleep(wait) => {}
                _ = hangup => {
                    tracing::info!("SIGHUP: reloading the spec files");
                    self.reload(true);
                }
                _ = self.stopping.cancelled() => break,
            }
            if last_reload_check.elapsed() >= self.config.reload_every {
                last_reload_check = tokio::time::Instant::now();
                self.reload(false);
            }
        }
        let running = lock(&self.inner).running.len();
        if running > 0 {
            tracing::info!(running, "stopping: aborting running drills and waiting for their cleanup");
            self.runner.abort.trigger("the daemon is stopping (SIGTERM)");
            let drained = async {
                while !lock(&self.inner).running.is_empty() {
                    let notified = self.changed.notified();
                    if lock(&self.inner).running.is_empty() {
                        break;
                    }
                    notified.await;
                }
            };
            if self.clock.timeout(self.config.shutdown_timeout, drained).await.is_err() {
                tracing::error!(
                    "running drills did not finish within the shutdown timeout; the next start's janitor cleans up"
                );
            }
        }
    }

    /// Writes the canary every interval while this replica leads.
    pub async fn canary_loop(self: Arc<Self>) {
        let client = match self.config.canary_cluster.client(crate::cluster::Retries::Client).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "no cluster to write the canary to");
                return;
            }
        };
        loop {
            if self.leading() {
                for ns in self.canary_namespaces() {
                    let now = self.clock.now();
                    if let Err(e) = crate::drills::velero_restore::canary::write(&client, &ns, now).await {
                        tracing::warn!(namespace = %ns, error = %e, "cannot write the canary");
                    }
                }
            }
            tokio::select! {
                _ = self.clock.sleep(self.config.canary_interval) => {}
                _ = self.stopping.cancelled() => return,
            }
        }
    }
}

type Shared = Arc<Daemon>;

/// `/healthz`, `/readyz`, `/metrics`, `/schedule`.
pub fn router(daemon: Shared) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|AxumState(d): AxumState<Shared>| async move {
                if d.ready() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "the spec files are not loaded yet\n")
                }
            }),
        )
        .route(
            "/metrics",
            get(|AxumState(d): AxumState<Shared>| async move {
                d.metrics.leader.set(i64::from(d.leading()));
                (
                    [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    d.metrics.encode(),
                )
                    .into_response()
            }),
        )
        .route("/schedule", get(|AxumState(d): AxumState<Shared>| async move { axum::Json(d.view()) }))
        .with_state(daemon)
}

/// One scheduled job as `firedrill schedule list` shows it without a daemon.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct OfflineRow {
    pub key: String,
    pub schedule: String,
    pub next: Vec<Timestamp>,
}

/// The jobs of the files in `paths` with their next `n` fire times after `now`, and the errors
/// of the files that were skipped.
pub fn offline(paths: &[PathBuf], now: Timestamp, n: usize) -> (Vec<OfflineRow>, Vec<String>) {
    let (jobs, errors) = load(paths);
    let rows = jobs
        .iter()
        .map(|l| OfflineRow {
            key: l.job.key(),
            schedule: format!("{} ({})", l.job.schedule.cron, l.job.schedule.time_zone.name()),
            next: l.job.schedule.upcoming(now, n),
        })
        .collect();
    (rows, errors.iter().map(|e| e.to_string()).collect())
}
