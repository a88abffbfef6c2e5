//! The verification probes velero-restore gained after its first release, end to end: `job`
//! probes (a Job in the scratch namespace, on the simulator, whose pods end as their
//! `firedrill.dev/sim-result` annotation says: `Failed` exits 1), `kubernetes` condition probes,
//! and `prometheus` probes against a real Prometheus scraping itself.
//!
//! The drill runs use the shipped payments fixture, whose Backup the simulator takes at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use firedrill::clock::Clock;
use firedrill::ledger::record::Outcome;
use firedrill::measure::Verdict;
use firedrill::probes::{self, Bound, Check, Namespaces, Probe, ProbeError};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;

use crate::support::{self, Firedrill, Prometheus, text, write};

/// The simulator of `scenarios/monthly-payments-restore.yaml`: the payments app and its seeded
/// Backup `payments-seeded`, Completed.
struct Cluster {
    sim: firedrill::sim::Sim,
    client: kube::Client,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim = support::sim(support::payments_cluster(dir.path())).await;
        let client = support::kube_client(&sim);
        let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
        let backups: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "velero",
            &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", "Backup"), "backups"),
        );
        support::wait_for(&backups, "payments-seeded", "the seeded backup Completed", |b: Option<&DynamicObject>| {
            b.is_some_and(|b| b.data["status"]["phase"] == "Completed")
        })
        .await;
        Self { sim, client, dir, kubeconfig }
    }

    /// A velero-restore drill of `payments` with `probes` (YAML list items, indented 4).
    fn drill(&self, probes: &str) -> PathBuf {
        let body = format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: payments-probes\ncluster:\n  kubeconfig: {}\nveleroRestore:\n  namespace: payments\n  restoreTimeout: 20s\n  readyTimeout: 10s\n  deleteTimeout: 20s\n  probes:\n{probes}",
            self.kubeconfig.display()
        );
        write(self.dir.path(), "drill.yaml", &body)
    }

    async fn run(&self, file: &Path) -> (Outcome, i32) {
        let mut cmd =
            tokio::process::Command::from(Firedrill::new().command(&["run", file.to_str().unwrap(), "-o", "json"]));
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.unwrap().unwrap();
        let outcome: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (outcome, out.status.code().unwrap())
    }

    /// Jobs firedrill's probes created in `namespace` that are still there.
    async fn probe_jobs(&self, namespace: &str) -> Vec<String> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=firedrill");
        jobs.list(&lp).await.unwrap().items.into_iter().filter_map(|j| j.metadata.name).collect()
    }

    async fn finish(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let left = namespaces.list(&ListParams::default().labels("firedrill.dev/run-id")).await.unwrap().items;
        assert!(left.is_empty(), "no scratch namespace is left: {left:?}");
        self.sim.shutdown().await;
    }
}

fn check<'a>(o: &'a Outcome, name: &str) -> &'a firedrill::measure::Check {
    o.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}: {:?}", o.checks))
}

/// A job probe whose simulated pod runs 100ms and ends as `result` says.
fn job_probe(name: &str, result: &str) -> String {
    format!(
        "    - name: {name}\n      job:\n        image: busybox:1.36\n        command: [sh, -c, \"wget -qO- http://web.$(SCRATCH_NAMESPACE)\"]\n        podAnnotations: {{firedrill.dev/sim-result: {result}, firedrill.dev/sim-duration: 100ms}}\n      timeout: 20s\n      retries: 0\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeding_job_probe_and_an_available_deployment_pass_the_drill() {
    let c = Cluster::start().await;
    let probes = format!(
        "{}    - name: web-available\n      kubernetes: {{apiVersion: apps/v1, kind: Deployment, name: web, condition: Available}}\n      retries: 0\n",
        job_probe("smoke", "Succeeded")
    );
    let (o, code) = c.run(&c.drill(&probes)).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    assert!(check(&o, "probe smoke").passed && check(&o, "probe web-available").passed, "{:?}", o.checks);
    let recorded = o.details["probes"].to_string();
    assert!(recorded.contains("\"name\":\"smoke\"") && recorded.contains("\"passed\":true"), "{recorded}");
    assert!(o.cleanup.done, "{:?}", o.cleanup);
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_probe_and_a_missing_condition_fail_the_drill_naming_the_probe_and_exit_code() {
    let c = Cluster::start().await;
    let probes = format!(
        "{}    - name: web-ready\n      kubernetes: {{apiVersion: apps/v1, kind: Deployment, name: web, condition: Ready}}\n      retries: 0\n",
        job_probe("smoke", "Failed")
    );
    let (o, code) = c.run(&c.drill(&probes)).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{} {:?}", o.reason, o.checks);
    let scratch = o.target["scratchNamespace"].clone();
    let smoke = check(&o, "probe smoke");
    let observed = smoke.observed.as_deref().unwrap_or_default();
    assert!(!smoke.passed && observed.contains("the command exited with code 1"), "{smoke:?}");
    assert!(observed.contains(&format!("Job {scratch}/fd-probe-smoke-")), "{smoke:?}");
    assert!(o.reason.contains("probe smoke") && o.reason.contains("exited with code 1"), "{}", o.reason);
    let ready = check(&o, "probe web-ready");
    assert!(
        !ready.passed
            && ready.observed.as_deref().is_some_and(
                |x| x.contains(&format!("Deployment {scratch}/web has no condition Ready (expected True)"))
            ),
        "{ready:?}"
    );
    c.finish().await;
}

fn job(command: &str, annotations: &[(&str, &str)], timeout: Duration) -> Probe {
    Probe {
        name: "smoke".into(),
        check: Check::Job {
            image: "busybox:1.36".into(),
            command: vec!["sh".into(), "-c".into(), command.into()],
            pod_annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            service_account_name: None,
        },
        timeout,
        interval: Duration::from_millis(10),
        retries: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_probe_deletes_its_job_after_each_attempt_and_after_a_timeout() {
    let c = Cluster::start().await;
    let ns = Namespaces { client: c.client.clone(), namespace: "payments".into(), source: "payments".into() };
    let http = probes::http_client();
    let quick = job("true", &[("firedrill.dev/sim-duration", "50ms")], Duration::from_secs(20));
    let v = probes::verify(&quick, &http, Some(&ns), Clock::system()).await;
    assert!(v.passed, "{v:?}");
    assert_eq!(c.probe_jobs("payments").await, Vec::<String>::new(), "deleted right after the attempt");

    // A command that runs for an hour, cut off by the probe's timeout: the Job still goes.
    let slow = job("sleep 3600", &[("firedrill.dev/sim-duration", "1h")], Duration::from_millis(500));
    let v = probes::verify(&slow, &http, Some(&ns), Clock::system()).await;
    assert_eq!((v.passed, v.error.as_deref()), (false, Some(ProbeError::Timeout(slow.timeout).to_string().as_str())));
    support::until("the timed-out probe's Job deleted", || async {
        c.probe_jobs("payments").await.is_empty().then_some(())
    })
    .await;
    c.finish().await;
}

fn prometheus_probe(url: &str, query: &str, at_least: Option<f64>, at_most: Option<f64>) -> Probe {
    Probe {
        name: "up".into(),
        check: Check::Prometheus {
            url: url.into(),
            full_url: url.into(),
            query: query.into(),
            at_least: at_least.map(Bound),
            at_most: at_most.map(Bound),
            header_names: vec!["Authorization".into()],
            headers: vec![("Authorization".into(), "Bearer not-checked".into())],
        },
        timeout: Duration::from_secs(5),
        interval: Duration::from_millis(10),
        retries: 0,
    }
}

/// Against a real Prometheus (Debian's, installed by `scripts/setup`) scraping itself every
/// second: a threshold met, one missed, several series, and a query Prometheus rejects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_probes_compare_a_real_prometheus_s_answer_with_their_thresholds() {
    let prom = Prometheus::start().await;
    prom.wait_for_a_scrape().await;
    let http = probes::http_client();
    let run = |query: &str, at_least, at_most| {
        let p = prometheus_probe(&prom.url, query, at_least, at_most);
        let http = http.clone();
        async move { probes::check(&p, &http).await.1 }
    };
    assert_eq!(run("sum(up)", Some(1.0), None).await, Ok(()));
    assert_eq!(run("sum(up)", Some(1.0), Some(1.0)).await, Ok(()));
    assert_eq!(
        run("sum(up)", None, Some(0.0)).await,
        Err(ProbeError::Threshold { value: "1".into(), expected: "at most 0".into() })
    );
    let scalar = run("scalar(sum(up)) * 2", Some(3.0), None).await;
    assert_eq!(scalar, Err(ProbeError::Threshold { value: "2".into(), expected: "at least 3".into() }));
    let two = run("up or label_replace(up, \"copy\", \"yes\", \"job\", \".*\")", Some(1.0), None).await;
    assert!(matches!(&two, Err(ProbeError::Prometheus(e)) if e.contains("returned 2 series")), "{two:?}");
    let none = run("up{job=\"no-such-job\"}", Some(1.0), None).await;
    assert!(matches!(&none, Err(ProbeError::Prometheus(e)) if e.contains("no series")), "{none:?}");
    let bad = run("sum(up", Some(1.0), None).await;
    assert!(matches!(&bad, Err(ProbeError::Prometheus(e)) if e.starts_with("query failed: bad_data:")), "{bad:?}");
}
