//! `firedrill serve` as a process against the simulator: a drill runs on its schedule and is
//! recorded while a bad file beside it is reported and skipped; a file added later is picked up;
//! SIGTERM mid-drill ends with the cleanup done and the run `Aborted`; two daemons elect one
//! leader through a Lease and the other takes over when the leader is killed; a failure reaches a
//! webhook receiver, and a receiver that fails changes no verdict.

use std::path::Path;
use std::time::Duration;

use firedrill::clock::Clock;
use firedrill::ledger::Ledger;
use firedrill::ledger::record::{Entry, Outcome};
use firedrill::measure::Verdict;
use firedrill::sim::config::SimConfig;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::support::{self, Firedrill, write};

/// A pdb-check drill against the simulator, every two seconds.
fn check_drill(name: &str, kubeconfig: &Path) -> String {
    format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: {name}\nschedule:\n  cron: \"*/2 * * * * *\"\ncluster:\n  kubeconfig: {}\npdbCheck:\n  failOn: critical\n",
        kubeconfig.display()
    )
}

/// A running `firedrill serve`.
struct Daemon {
    child: tokio::process::Child,
    url: String,
}

impl Daemon {
    fn start(fd: &Firedrill, specs: &Path, extra: &[&str]) -> Self {
        let port = support::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen, "--specs", specs.to_str().unwrap()];
        if !extra.contains(&"--reload-interval") {
            args.extend(["--reload-interval", "200ms"]);
        }
        args.extend_from_slice(extra);
        let mut cmd = tokio::process::Command::from(fd.command(&args));
        // Its log, for a failing test to show.
        let log = std::fs::File::create(fd.data_dir.path().join(format!("serve-{port}.log"))).unwrap();
        cmd.kill_on_drop(true).stdout(std::process::Stdio::null()).stderr(log).env("RUST_LOG", "firedrill=info");
        Daemon { child: cmd.spawn().unwrap(), url: format!("http://{listen}") }
    }

    async fn get(&self, path: &str) -> Option<String> {
        reqwest::get(format!("{}{path}", self.url)).await.ok()?.text().await.ok()
    }

    async fn schedule(&self) -> Option<Value> {
        serde_json::from_str(&self.get("/schedule").await?).ok()
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.unwrap().unwrap().code()
    }
}

/// The drill outcomes in a ledger, oldest first.
async fn outcomes(url: &str, data_dir: &Path) -> Vec<Outcome> {
    let Ok(ledger) = Ledger::open_read(url, data_dir, Clock::system()) else { return Vec::new() };
    let records = ledger.records().await.unwrap_or_default();
    records
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Outcome(o) => Some(*o),
            _ => None,
        })
        .collect()
}

/// How many runs the process `pid` started (its intents) in a ledger.
async fn started_by(url: &str, data_dir: &Path, pid: u32) -> usize {
    let Ok(ledger) = Ledger::open_read(url, data_dir, Clock::system()) else { return 0 };
    let records = ledger.records().await.unwrap_or_default();
    records.iter().filter(|r| matches!(&r.entry, Entry::Intent(i) if i.owner.pid == pid)).count()
}

fn ledger_of(fd: &Firedrill) -> String {
    format!("file://{}", fd.data_dir.path().join("ledger").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_runs_on_its_schedule_and_is_recorded_while_a_bad_file_is_reported_and_skipped() {
    let sim = support::sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    write(&specs, "check.yaml", &check_drill("check", &kubeconfig));
    write(
        &specs,
        "broken.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: broken\npdbCheck:\n  failOn: sometimes\n",
    );
    let fd = Firedrill::new();
    let kc = kubeconfig.to_str().unwrap();
    let mut d =
        Daemon::start(&fd, &specs, &["--canary-namespace", "default", "--canary-interval", "1s", "--kubeconfig", kc]);

    let view = support::until("the daemon serves its schedule", || async { d.schedule().await }).await;
    let keys: Vec<&str> = view["jobs"].as_array().unwrap().iter().map(|j| j["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["drill/check"], "{view:#}");
    let errors = view["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{view:#}");
    assert!(errors[0].as_str().unwrap().contains("broken.yaml:5:"), "file, line and column: {view:#}");

    let ran = support::until("a scheduled run is recorded", || async {
        let runs = outcomes(&ledger_of(&fd), fd.data_dir.path()).await;
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    assert_eq!(ran[0].drill.name, "check");
    assert_eq!(ran[0].trigger.by, "schedule");
    assert_eq!(ran[0].verdict, Verdict::Passed, "{}", ran[0].reason);
    let metrics = support::until("the run is in the metrics", || async {
        d.get("/metrics").await.filter(|m| m.contains("firedrill_drill_runs_total{drill=\"check\",verdict=\"Passed\"}"))
    })
    .await;
    assert!(metrics.contains("firedrill_spec_errors 1"), "{metrics}");
    // Every metric the chart's dashboard and alerts use is exported.
    for name in crate::deploy::SERVE_METRICS {
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(metrics.contains(&format!("# TYPE {family} ")), "{name} is not exported:\n{metrics}");
    }
    assert!(metrics.contains("firedrill_drill_last_verdict{drill=\"check\",verdict=\"Passed\"} 1"), "{metrics}");
    assert!(!metrics.contains("firedrill_schedule_start_lag_seconds_count 0"), "a start lag was observed: {metrics}");

    // A file added while it runs is picked up, and the bad one fixed.
    write(&specs, "second.yaml", &check_drill("second", &kubeconfig));
    std::fs::remove_file(specs.join("broken.yaml")).unwrap();
    support::until("the new file is loaded", || async {
        let v = d.schedule().await?;
        let n = v["jobs"].as_array()?.len();
        (n == 2 && v["errors"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let offline = fd.run(&["schedule", "list", "--server", &d.url]);
    let listed = String::from_utf8_lossy(&offline.stdout).to_string();
    assert!(listed.contains("drill/second") && listed.contains("leader"), "{listed}");

    // The canary writer runs inside the daemon.
    let canary: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(support::kube_client(&sim), "default");
    let written = support::until("the daemon writes the canary", || async {
        canary.get_opt("firedrill-canary").await.ok()?.and_then(|c| c.data?.get("timestamp").cloned())
    })
    .await;
    assert!(written.parse::<firedrill::clock::Timestamp>().is_ok(), "{written}");

    d.signal(libc::SIGTERM);
    assert_eq!(d.exit_code().await, Some(0));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_drill_cleans_up_and_records_the_run_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = support::sim(support::payments_cluster(dir.path())).await;
    let client = support::kube_client(&sim);
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let backups = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        "velero",
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("velero.io", "v1", "Backup"),
            "backups",
        ),
    );
    support::until("the seeded backup completed", || async {
        let b = backups.get_opt("payments-seeded").await.ok()??;
        (b.data["status"]["phase"] == "Completed").then_some(())
    })
    .await;
    // Velero stops: the run waits on its Restore until it is stopped.
    let mut faults = sim.state.faults.get();
    faults.stalled_controllers = vec!["velero".into()];
    sim.state.faults.set(faults);
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    write(
        &specs,
        "restore.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: restore\nschedule:\n  cron: \"*/2 * * * * *\"\ncluster:\n  kubeconfig: {}\nveleroRestore:\n  namespace: payments\n  restoreTimeout: 10m\n  deleteTimeout: 20s\n",
            kubeconfig.display()
        ),
    );
    let fd = Firedrill::new();
    let mut d = Daemon::start(&fd, &specs, &["--shutdown-timeout", "60s", "--canary-interval", "1h"]);
    let scratch: Api<Namespace> = Api::all(client.clone());
    support::until("the scheduled run created its scratch namespace", || async {
        let l = scratch.list(&ListParams::default().labels("firedrill.dev/run-id")).await.ok()?;
        (!l.items.is_empty()).then_some(())
    })
    .await;

    d.signal(libc::SIGTERM);
    assert_eq!(d.exit_code().await, Some(0), "the daemon stops on its own after the cleanup");
    let runs = outcomes(&ledger_of(&fd), fd.data_dir.path()).await;
    assert_eq!(runs.len(), 1, "one run, and none started after SIGTERM");
    assert_eq!(runs[0].verdict, Verdict::Aborted, "{}", runs[0].reason);
    assert!(runs[0].reason.contains("SIGTERM"), "{}", runs[0].reason);
    assert!(runs[0].cleanup.done, "{:?}", runs[0].cleanup);
    let left = scratch.list(&ListParams::default().labels("firedrill.dev/run-id")).await.unwrap();
    assert!(left.items.is_empty(), "the scratch namespace was deleted");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_elect_one_leader_and_the_other_takes_over_when_it_is_killed() {
    let sim = support::sim(SimConfig::default()).await;
    let client = support::kube_client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    write(&specs, "check.yaml", &check_drill("check", &kubeconfig));
    // One ledger for both, as in a cluster (the data directories are each replica's own).
    let ledger = format!("file://{}", dir.path().join("ledger").display());
    let replica = || Firedrill::new().env("FIREDRILL_LEDGER", &ledger);
    let (fa, fb) = (replica(), replica());
    let kc = kubeconfig.to_str().unwrap();
    let election = |id: &'static str| -> Vec<String> {
        ["--lease-namespace", "default", "--identity", id, "--lease-duration", "2s", "--lease-retry", "200ms"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--kubeconfig".to_string(), kc.to_string()])
            .collect()
    };
    let args_a = election("a");
    let mut a = Daemon::start(&fa, &specs, &args_a.iter().map(String::as_str).collect::<Vec<_>>());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder = || async { leases.get_opt("firedrill").await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty()) };
    assert_eq!(support::until("a takes the Lease", || async { holder().await }).await, "a");
    let args_b = election("b");
    let b = Daemon::start(&fb, &specs, &args_b.iter().map(String::as_str).collect::<Vec<_>>());
    support::until("both serve their metrics", || async {
        let (ma, mb) = (a.get("/metrics").await?, b.get("/metrics").await?);
        (ma.contains("firedrill_leader 1") && mb.contains("firedrill_leader 0")).then_some(())
    })
    .await;
    let (pid_a, pid_b) = (a.pid(), b.pid());
    let data = dir.path().to_path_buf();
    let runs_by = |pid: u32| {
        let (ledger, data) = (ledger.clone(), data.clone());
        async move { started_by(&ledger, &data, pid).await }
    };
    support::until("a runs the drill", || async { (runs_by(pid_a).await >= 1).then_some(()) }).await;
    assert_eq!(runs_by(pid_b).await, 0, "the standby runs nothing");

    a.child.kill().await.unwrap();
    assert_eq!(support::until("b takes the Lease over", || async { holder().await.filter(|h| h == "b") }).await, "b");
    support::until("b runs the drill", || async { (runs_by(pid_b).await >= 1).then_some(()) }).await;
    assert!(b.get("/metrics").await.unwrap().contains("firedrill_leader 1"));
    let verify = replica().run(&["evidence", "verify"]);
    assert!(verify.status.success(), "one consistent chain: {}", support::text(&verify));
    b.signal(libc::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_failure_reaches_the_webhook_and_a_failing_receiver_changes_no_verdict() {
    use crate::notify::{Receiver, TOKEN, stuck_db};
    let sim = support::sim(stuck_db()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    // The single-replica app's PDB never lets its pod go: a critical finding, so the drill fails.
    write(&specs, "budgets.yaml", &check_drill("budgets", &kubeconfig));
    let (slack, hook) = (Receiver::start(200).await, Receiver::start(500).await);
    let fd = Firedrill::new()
        .env("FIREDRILL_SLACK_WEBHOOK_URL", slack.slack_url())
        .env("FIREDRILL_WEBHOOK_URL", hook.hook_url());
    // Files are looked at only on SIGHUP here.
    let mut d = Daemon::start(&fd, &specs, &["--canary-interval", "1h", "--reload-interval", "1h"]);

    let got = support::until("Slack is told of the failure", || async {
        let got = slack.take();
        (!got.is_empty()).then_some(got)
    })
    .await;
    let text = got[0].1["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("budgets") && text.contains("Failed"), "{:#}", got[0].1);
    let metrics = support::until("the failed webhook delivery is counted", || async {
        d.get("/metrics")
            .await
            .filter(|m| m.contains("firedrill_notifications_total{channel=\"webhook\",result=\"failed\"}"))
    })
    .await;
    assert!(metrics.contains("firedrill_notifications_total{channel=\"slack\",result=\"delivered\"}"), "{metrics}");
    let runs = outcomes(&ledger_of(&fd), fd.data_dir.path()).await;
    assert!(!runs.is_empty() && runs.iter().all(|o| o.verdict == Verdict::Failed), "the drill's own verdict");
    assert!(!hook.take().is_empty(), "the failing receiver was tried");

    write(&specs, "later.yaml", &check_drill("later", &kubeconfig));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.schedule().await.unwrap()["jobs"].as_array().unwrap().len(), 1, "not read before SIGHUP");
    d.signal(libc::SIGHUP);
    support::until("SIGHUP reloads the files", || async {
        (d.schedule().await?["jobs"].as_array()?.len() == 2).then_some(())
    })
    .await;

    d.signal(libc::SIGTERM);
    assert_eq!(d.exit_code().await, Some(0));
    for entry in std::fs::read_dir(fd.data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            assert!(!log.contains(TOKEN), "the webhook URL is not logged: {log}");
        }
    }
    sim.shutdown().await;
}
