//! The velero-restore drill end to end through `firedrill run` on the simulator and its Velero
//! stand-in (a `firedrill.dev/file` storage location on a temporary directory): a passing restore
//! with its RTO marks and canary RPO; a backup too old for the RPO target; a restore ending
//! PartiallyFailed; a workload that never becomes ready; no storage location, and an unavailable
//! one; a failing probe; a scratch namespace that is not firedrill's; the backup's files checked
//! on a real S3 server (missing and disagreeing ones fail); a tarball built by hand from
//! manifests; Velero not installed; no room for the restore; a Schedule's backup chosen; a run
//! killed mid-restore and its janitor; injected API errors and latency; a scratch namespace held
//! by a finalizer. Each test checks that no scratch namespace is left behind, and the passing ones
//! that no Secret value reaches the record.

use std::path::Path;
use std::time::Duration;

use firedrill::clock::Timestamp;
use firedrill::ledger::record::Outcome;
use firedrill::measure::{RpoMethod, Verdict};
use firedrill::sim::config::{AppSpec, NodeSpec, SimConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::support::{self, Firedrill, text, write};

/// A Secret value of the app: it must never appear in a record.
const SECRET_VALUE: &str = "payments-db-password-7f3a";

fn velero(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Namespace `payments`: Deployment `web` (2 replicas, with a PDB), Service, ConfigMap, Secret and
/// a PersistentVolumeClaim; fast timings.
fn payments() -> SimConfig {
    let ns = "payments";
    SimConfig {
        namespaces: vec![ns.into(), "payments-copy".into()],
        apps: vec![AppSpec {
            name: "web".into(),
            namespace: ns.into(),
            replicas: Some(2),
            pdb: Some(json!({"maxUnavailable": 1})),
            ..AppSpec::default()
        }],
        objects: vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": ns},
                   "data": {"mode": "live"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
                   "data": {"password": b64(SECRET_VALUE)}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": ns},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ],
        timings: Some(serde_json::from_value(json!({"readyAfter": "50ms", "veleroAfter": "100ms"})).unwrap()),
        ..SimConfig::default()
    }
}

/// A simulator with the payments app and a storage location on a temporary directory.
struct Setup {
    sim: firedrill::sim::Sim,
    client: kube::Client,
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
    /// One data directory for every run of a test: the janitor of one run sees the others.
    fd: Firedrill,
}

impl Setup {
    async fn start(config: SimConfig, location: bool) -> Self {
        let sim = support::sim(config).await;
        let client = support::kube_client(&sim);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
        let s = Self { sim, client, dir, kubeconfig, fd: Firedrill::new() };
        if location {
            let bucket = s.dir.path().join("bucket");
            std::fs::create_dir_all(&bucket).unwrap();
            s.location("default", &bucket).await;
            let bsl = s.phase("BackupStorageLocation", "backupstoragelocations", "default", &["Available"]).await;
            assert_eq!(bsl["status"]["phase"], "Available");
        }
        s
    }

    fn api(&self, kind: &str, plural: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), "velero", &velero(kind, plural))
    }

    async fn create(&self, kind: &str, plural: &str, manifest: Value) {
        let obj: DynamicObject = serde_json::from_value(manifest).unwrap();
        self.api(kind, plural).create(&PostParams::default(), &obj).await.expect("create");
    }

    async fn location(&self, name: &str, bucket: &Path) {
        self.create(
            "BackupStorageLocation",
            "backupstoragelocations",
            json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": name},
                   "spec": {"provider": "firedrill.dev/file", "default": true,
                            "objectStorage": {"bucket": bucket.display().to_string()}}}),
        )
        .await;
    }

    async fn phase(&self, kind: &str, plural: &str, name: &str, phases: &[&str]) -> Value {
        let api = &self.api(kind, plural);
        support::until(&format!("{kind} {name} in {phases:?}"), || async move {
            let v = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
            phases.iter().any(|p| v["status"]["phase"] == *p).then_some(v)
        })
        .await
    }

    /// Writes the canary into `payments` through the CLI; returns the time it wrote.
    fn canary(&self) -> Timestamp {
        let kc = self.kubeconfig.to_str().unwrap();
        let out = Firedrill::new().run(&["canary", "--namespace", "payments", "--once", "--kubeconfig", kc]);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(stdout.contains("wrote ConfigMap payments/firedrill-canary"), "{stdout}");
        stdout.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Takes Backup `name` of `payments` and waits until it is Completed.
    async fn backup(&self, name: &str) -> Value {
        self.create(
            "Backup",
            "backups",
            json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name},
                   "spec": {"includedNamespaces": ["payments"]}}),
        )
        .await;
        let b = self
            .phase("Backup", "backups", name, &["Completed", "PartiallyFailed", "Failed", "FailedValidation"])
            .await;
        assert_eq!(b["status"]["phase"], "Completed", "{b}");
        b
    }

    /// A drill file for this cluster with `extra` lines under `veleroRestore`.
    fn drill(&self, targets: &str, extra: &str) -> std::path::PathBuf {
        let body = format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: payments-restore\n{targets}cluster:\n  kubeconfig: {}\nveleroRestore:\n  namespace: payments\n  restoreTimeout: 20s\n{delete}{ready}{extra}",
            self.kubeconfig.display(),
            delete = if extra.contains("deleteTimeout") { "" } else { "  deleteTimeout: 20s\n" },
            ready = if extra.contains("readyTimeout") { "" } else { "  readyTimeout: 10s\n" },
        );
        write(self.dir.path(), "drill.yaml", &body)
    }

    fn command(&self, file: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.fd.command(&["run", file.to_str().unwrap(), "-o", "json"]));
        cmd.kill_on_drop(true);
        cmd
    }

    async fn run(&self, file: &Path) -> (Outcome, i32, String) {
        let mut cmd = self.command(file);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let outcome: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (outcome, out.status.code().unwrap(), format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }

    /// Namespaces firedrill created (labelled with a run id) that still exist.
    async fn scratch_namespaces(&self) -> Vec<String> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let lp = ListParams::default().labels("firedrill.dev/run-id");
        api.list(&lp).await.unwrap().items.into_iter().filter_map(|n| n.metadata.name).collect()
    }

    async fn restores(&self) -> Vec<String> {
        let list = self.api("Restore", "restores").list(&ListParams::default()).await.unwrap();
        list.items.into_iter().filter_map(|r| r.metadata.name).collect()
    }

    async fn finish(self) {
        assert_eq!(self.scratch_namespaces().await, Vec::<String>::new(), "no scratch namespace is left");
        self.sim.shutdown().await;
    }
}

fn marks(o: &Outcome) -> Vec<&str> {
    o.timeline.marks.iter().map(|m| m.name.as_str()).collect()
}

fn check<'a>(o: &'a Outcome, name: &str) -> &'a firedrill::measure::Check {
    o.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}: {:?}", o.checks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_scratch_namespace_with_rto_marks_and_canary_rpo_and_leaves_nothing() {
    let s = Setup::start(payments(), true).await;
    let written = s.canary();
    s.backup("payments-1").await;
    let file = s.drill(
        "targets:\n  rto: 1m\n  rpo: 1h\n",
        "  probes:\n    - name: web\n      kubernetes: {apiVersion: apps/v1, kind: Deployment, name: web}\n    - name: secrets\n      kubernetes: {kind: Secret, sameCountAsSource: true}\n    - name: configmaps\n      kubernetes: {kind: ConfigMap, sameCountAsSource: true}\n",
    );
    let (o, code, all) = s.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?} {:?}", o.reason, o.checks, o.log);
    assert_eq!(marks(&o), ["backup-chosen", "restore-created", "restore-completed", "workloads-ready"]);
    let t0 = o.timeline.t0.unwrap();
    let at = |m: &str| o.timeline.marks.iter().find(|x| x.name == m).unwrap().at;
    assert!(t0 <= at("restore-created") && at("restore-completed") <= at("workloads-ready"));
    assert!(at("workloads-ready") <= o.timeline.verified.unwrap());
    assert!(o.rto_ms.is_some(), "RTO measured");
    let point = o.recovery_point.clone().unwrap();
    assert_eq!((point.method, point.at), (RpoMethod::Canary, written), "{point:?}");
    assert_eq!(o.rpo_ms, t0.since(written), "RPO = t0 − the canary's time");
    assert_eq!(o.details["rpoMethod"], "canary");
    assert_eq!(o.details["backup"]["name"], "payments-1");
    assert_eq!(o.details["restore"]["phase"], "Completed");
    for probe in ["probe web", "probe secrets", "probe configmaps"] {
        assert!(check(&o, probe).passed, "{:?}", check(&o, probe));
    }
    let scratch = o.target["scratchNamespace"].clone();
    assert!(scratch.starts_with("fd-payments-restore-") && scratch.len() <= 63, "{scratch}");
    assert!(o.cleanup.done, "{:?}", o.cleanup);
    assert!(o.cleanup.actions.contains(&format!("deleted scratch namespace {scratch}")), "{:?}", o.cleanup);
    assert!(o.cleanup.actions.contains(&format!("deleted Velero Restore velero/{scratch}")), "{:?}", o.cleanup);
    assert!(!all.contains(SECRET_VALUE) && !all.contains(&b64(SECRET_VALUE)), "a Secret value reached the record");
    assert_eq!(s.restores().await, Vec::<String>::new());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_older_than_the_rpo_target_fails_before_any_restore_is_created() {
    let mut config = payments();
    let started = Timestamp::from_millis(chrono::Utc::now().timestamp_millis() - 3 * 86_400_000);
    // A backup Velero finished three days ago (written with its status, the simulator leaves it).
    config.objects.push(json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "payments-old", "namespace": "velero", "labels": {"velero.io/storage-location": "default"}},
        "spec": {"includedNamespaces": ["payments"], "storageLocation": "default"},
        "status": {"phase": "Completed", "startTimestamp": started.to_string(), "completionTimestamp": started.to_string()}}));
    // No storage location: Velero's backup sync would delete a Backup whose files are not in it.
    let s = Setup::start(config, false).await;
    let (o, code, _) = s.run(&s.drill("targets:\n  rpo: 1d\n", "")).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(
        o.reason.contains("Backup payments-old started at") && o.reason.contains("older than the RPO target of 1d"),
        "{}",
        o.reason
    );
    assert!(o.timeline.t0.is_none() && marks(&o).is_empty(), "nothing started: {:?}", o.timeline);
    assert_eq!(s.restores().await, Vec::<String>::new(), "no Restore was created");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_ends_partially_failed_fails_with_velero_s_counts_and_rpo_falls_back_to_the_backup() {
    let mut config = payments();
    config.faults = Some(serde_json::from_value(json!({"partiallyFailRestores": true})).unwrap());
    let s = Setup::start(config, true).await;
    s.backup("payments-1").await;
    let (o, code, _) = s.run(&s.drill("", "")).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(o.reason.contains("ended PartiallyFailed with") && o.reason.contains("error(s)"), "{}", o.reason);
    assert_eq!(o.details["restore"]["phase"], "PartiallyFailed");
    assert!(o.cleanup.done, "{:?}", o.cleanup);

    // Allowed, the same restore passes, with the RPO from the backup's metadata (no canary).
    let (o, code, _) = s.run(&s.drill("", "  allowPartiallyFailed: true\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    assert!(o.warnings.iter().any(|w| w.contains("PartiallyFailed")), "{:?}", o.warnings);
    let point = o.recovery_point.clone().unwrap();
    assert_eq!(point.method, RpoMethod::BackupMetadata, "{point:?}");
    assert_eq!(o.details["rpoMethod"], "backupMetadata");
    assert!(o.warnings.iter().any(|w| w.contains("RPO from the backup's start time")), "{:?}", o.warnings);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_never_becomes_ready_fails_the_drill_naming_it() {
    let mut config = payments();
    config.objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "stuck", "namespace": "payments"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stuck"}},
                 "template": {"metadata": {"labels": {"app": "stuck"}},
                              "spec": {"nodeSelector": {"disk": "none-has-this"}, "containers": [{"name": "c", "image": "x"}]}}}}));
    let s = Setup::start(config, true).await;
    s.backup("payments-1").await;
    let (o, code, _) = s.run(&s.drill("", "  readyTimeout: 2s\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    let scratch = o.target["scratchNamespace"].clone();
    assert!(
        o.reason.contains("not ready within 2s (readyTimeout)")
            && o.reason.contains(&format!("Deployment {scratch}/stuck: 0/1 available")),
        "{}",
        o.reason
    );
    assert!(!o.reason.contains(&format!("Deployment {scratch}/web")), "web came up: {}", o.reason);
    assert_eq!(marks(&o), ["backup-chosen", "restore-created", "restore-completed"]);
    assert!(o.cleanup.done, "{:?}", o.cleanup);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unavailable_storage_location_is_an_error_with_the_reason() {
    let mut config = payments();
    let now = firedrill::clock::Clock::system().now();
    config.objects.push(json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "payments-1", "namespace": "velero"},
        "spec": {"includedNamespaces": ["payments"], "storageLocation": "default"},
        "status": {"phase": "Completed", "startTimestamp": now.to_string()}}));
    let s = Setup::start(config, false).await;
    let (o, code, _) = s.run(&s.drill("", "")).await;
    assert_eq!((o.verdict, code), (Verdict::Error, 2), "{}", o.reason);
    assert!(
        o.reason.contains("BackupStorageLocation velero/default, where the backup is stored, does not exist"),
        "{}",
        o.reason
    );

    s.location("default", &s.dir.path().join("no-such-bucket")).await;
    s.phase("BackupStorageLocation", "backupstoragelocations", "default", &["Unavailable"]).await;
    let (o, code, _) = s.run(&s.drill("", "")).await;
    assert_eq!((o.verdict, code), (Verdict::Error, 2), "{}", o.reason);
    assert!(o.reason.contains("BackupStorageLocation velero/default is Unavailable"), "{}", o.reason);
    assert!(o.reason.contains("no-such-bucket"), "Velero's message is kept: {}", o.reason);
    assert_eq!(s.restores().await, Vec::<String>::new());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_probe_fails_the_drill_and_a_foreign_scratch_namespace_aborts_it() {
    let s = Setup::start(payments(), true).await;
    s.backup("payments-1").await;
    let closed = support::free_port();
    let probes = format!(
        "  probes:\n    - name: db-port\n      tcp: {{address: \"127.0.0.1:{closed}\"}}\n      retries: 1\n      interval: 50ms\n    - name: missing\n      kubernetes: {{kind: ConfigMap, name: not-restored}}\n      retries: 0\n"
    );
    let (o, code, _) = s.run(&s.drill("", &probes)).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    let db = check(&o, "probe db-port");
    assert!(!db.passed && db.observed.as_deref().is_some_and(|x| x.contains("(2 attempt(s))")), "{db:?}");
    let missing = check(&o, "probe missing");
    let scratch = o.target["scratchNamespace"].clone();
    assert!(
        !missing.passed
            && missing
                .observed
                .as_deref()
                .is_some_and(|x| x.contains(&format!("ConfigMap {scratch}/not-restored does not exist"))),
        "{missing:?}"
    );
    assert!(o.cleanup.done, "{:?}", o.cleanup);

    // `payments-copy` exists and is not firedrill's: the drill refuses to restore into it.
    let (o, code, _) = s.run(&s.drill("", "  scratchNamespace: payments-copy\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Aborted, 3), "{}", o.reason);
    assert!(o.reason.contains("payments-copy already exists and is not firedrill's"), "{}", o.reason);
    let ns: Api<Namespace> = Api::all(s.client.clone());
    assert!(ns.get_opt("payments-copy").await.unwrap().is_some(), "left as it was");
    assert_eq!(s.restores().await, Vec::<String>::new());
    s.finish().await;
}

/// The shipped drill and the scenario that uses it, against the scenario's own `sim` section, as
/// the docs tell a person to run them (with the bucket in a temporary directory): both pass, with
/// nothing left behind and no Secret value in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_example_and_its_monthly_scenario_pass_on_the_scenario_s_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::start(support::payments_cluster(dir.path()), false).await;
    s.phase("Backup", "backups", "payments-seeded", &["Completed"]).await;
    let fd = Firedrill::new().env("KUBECONFIG", s.kubeconfig.to_str().unwrap());
    // A canary written after the backup is in the source but not in the restore: the drill's
    // count probes do not count firedrill's own objects, so this is no difference.
    let canary = fd.run(&["canary", "--namespace", "payments", "--once"]);
    assert!(canary.status.success(), "{}", text(&canary));
    let out = fd.run(&["run", "drills/velero-restore-payments.yaml", "-o", "json"]);
    let o: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!((o.verdict, out.status.code()), (Verdict::Passed, Some(0)), "{} {:?}", o.reason, o.checks);
    assert_eq!(o.checks.iter().filter(|c| c.name.starts_with("probe ")).count(), 4, "{:?}", o.checks);
    assert_eq!(o.details["rpoMethod"], "backupMetadata");
    let mut all = text(&out);

    let out = fd.run(&["run", "scenarios/monthly-payments-restore.yaml", "-o", "json"]);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{result:#}");
    let steps = support::scenario_steps(&result);
    assert_eq!(steps, [("velero-restore-payments", "Passed"), ("pdb-check", "Passed")]);
    all.push_str(&text(&out));
    assert!(
        !all.contains("not-a-real-password") && !all.contains(&b64("not-a-real-password")),
        "a Secret value reached the record"
    );
    s.finish().await;
}

/// A Completed backup `name` of `payments` with these labels.
async fn labelled_backup(s: &Setup, name: &str, labels: Value) {
    s.create(
        "Backup",
        "backups",
        json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "labels": labels},
               "spec": {"includedNamespaces": ["payments"]}}),
    )
    .await;
    s.phase("Backup", "backups", name, &["Completed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_files_on_a_real_s3_server_are_checked_and_missing_or_disagreeing_ones_fail_before_restoring() {
    let s3 = support::S3::start();
    let s = Setup::start(payments(), false).await;
    let file =
        format!("[default]\naws_access_key_id={}\naws_secret_access_key={}\n", support::S3_KEY, support::S3_SECRET);
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "cloud-credentials"}, "data": {"cloud": b64(&file)}}))
            .unwrap();
    Api::<Secret>::namespaced(s.client.clone(), "velero").create(&PostParams::default(), &secret).await.unwrap();
    s.create(
        "BackupStorageLocation",
        "backupstoragelocations",
        json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": "default"},
               "spec": {"provider": "aws", "default": true,
                        "objectStorage": {"bucket": s3.bucket, "prefix": "cluster-a"},
                        "config": {"region": "us-east-1", "s3Url": s3.endpoint, "s3ForcePathStyle": "true"},
                        "credential": {"name": "cloud-credentials", "key": "cloud"}}}),
    )
    .await;
    s.phase("BackupStorageLocation", "backupstoragelocations", "default", &["Available"]).await;
    s.backup("payments-s3").await;
    let drill = s.drill("targets:\n  rpo: 1h\n", "  checkStorage: {}\n");

    let (o, code, all) = s.run(&drill).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    let storage = &o.details["storage"];
    assert_eq!(storage["location"], "s3://evidence/cluster-a", "{storage}");
    assert_eq!(storage["files"][0], "backups/payments-s3/velero-backup.json", "{storage}");
    let in_ns = storage["itemsInNamespace"].as_u64().unwrap();
    assert!(in_ns >= 5 && in_ns <= storage["items"].as_u64().unwrap(), "{storage}");
    for secret in [support::S3_SECRET, support::S3_KEY, SECRET_VALUE] {
        assert!(!all.contains(secret), "{secret} reached the output");
    }

    // velero-backup.json rewritten with another start time: the files are not the backup the
    // cluster shows.
    let sdk = s3.sdk().await;
    let key = "cluster-a/backups/payments-s3/velero-backup.json";
    let got = sdk.get_object().bucket(&s3.bucket).key(key).send().await.unwrap();
    let mut metadata: Value = serde_json::from_slice(&got.body.collect().await.unwrap().into_bytes()).unwrap();
    metadata["status"]["startTimestamp"] = json!("2020-01-01T00:00:00Z");
    let body = serde_json::to_vec_pretty(&metadata).unwrap();
    sdk.put_object().bucket(&s3.bucket).key(key).body(body.into()).send().await.unwrap();
    let (o, code, _) = s.run(&drill).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(
        o.reason.contains("files in s3://evidence/cluster-a disagree with its Backup object")
            && o.reason.contains("status.startTimestamp is")
            && o.reason.contains("2020-01-01T00:00:00"),
        "{}",
        o.reason
    );

    // The tarball deleted (a lifecycle rule, say): the Backup object is all that is left.
    let tarball = "cluster-a/backups/payments-s3/payments-s3.tar.gz";
    sdk.delete_object().bucket(&s3.bucket).key(tarball).send().await.unwrap();
    let (o, code, _) = s.run(&drill).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(
        o.reason.contains("Backup payments-s3 exists in the cluster, but its files do not")
            && o.reason.contains("payments-s3.tar.gz is missing"),
        "{}",
        o.reason
    );
    assert!(o.timeline.t0.is_none(), "refused before anything started");
    assert_eq!(s.restores().await, Vec::<String>::new(), "no Restore was created");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_tarball_built_by_hand_from_manifests_is_restored_and_verified() {
    let s = Setup::start(payments(), false).await;
    let bucket = s.dir.path().join("bucket");
    let root = bucket.join("backups/handmade");
    std::fs::create_dir_all(&root).unwrap();
    let tarball = crate::sim_velero::hand_made_tarball(&[
        (
            "./resources/namespaces/cluster/legacy.json",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}}),
        ),
        (
            "./resources/configmaps/namespaces/legacy/settings.json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "legacy",
                   "uid": "0c3f", "resourceVersion": "123"}, "data": {"region": "eu"}}),
        ),
        (
            "./resources/deployments.apps/namespaces/legacy/api.json",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "legacy"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                            "template": {"metadata": {"labels": {"app": "api"}},
                                         "spec": {"containers": [{"name": "api", "image": "registry.example/api:2"}]}}}}),
        ),
    ]);
    std::fs::write(root.join("handmade.tar.gz"), tarball).unwrap();
    let metadata = json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "handmade", "namespace": "velero"},
        "spec": {"includedNamespaces": ["legacy"], "storageLocation": "default"},
        "status": {"phase": "Completed", "formatVersion": "1.1.0",
                   "startTimestamp": "2026-01-01T00:00:00Z", "completionTimestamp": "2026-01-01T00:01:00Z"}});
    std::fs::write(root.join("velero-backup.json"), serde_json::to_vec_pretty(&metadata).unwrap()).unwrap();
    s.location("default", &bucket).await;
    s.phase("Backup", "backups", "handmade", &["Completed"]).await;

    let body = format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: legacy-restore\ncluster:\n  kubeconfig: {}\nveleroRestore:\n  namespace: legacy\n  backupName: handmade\n  checkStorage: {{}}\n  restoreTimeout: 20s\n  readyTimeout: 10s\n  deleteTimeout: 20s\n  probes:\n    - name: api\n      kubernetes: {{apiVersion: apps/v1, kind: Deployment, name: api}}\n    - name: settings\n      kubernetes: {{kind: ConfigMap, name: settings}}\n",
        s.kubeconfig.display()
    );
    let (o, code, _) = s.run(&write(s.dir.path(), "legacy.yaml", &body)).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    assert_eq!(o.details["storage"]["itemsInNamespace"], 2, "{}", o.details["storage"]);
    assert_eq!(marks(&o), ["backup-chosen", "restore-created", "restore-completed", "workloads-ready"]);
    assert_eq!(o.details["restore"]["phase"], "Completed");
    let point = o.recovery_point.clone().unwrap();
    assert_eq!((point.method, point.at.to_string()), (RpoMethod::BackupMetadata, "2026-01-01T00:00:00.000Z".into()));
    for probe in ["probe api", "probe settings"] {
        assert!(check(&o, probe).passed, "{:?}", check(&o, probe));
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_velero_is_an_error_that_says_so() {
    let config = SimConfig { without_velero: true, ..payments() };
    let s = Setup::start(config, false).await;
    let (o, code, _) = s.run(&s.drill("", "")).await;
    assert_eq!((o.verdict, code), (Verdict::Error, 2), "{}", o.reason);
    assert!(o.reason.contains("Velero is not installed: the cluster serves no velero.io API group"), "{}", o.reason);
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_room_in_the_quota_or_the_cluster_is_an_error_before_anything_is_restored() {
    let mut config = payments();
    // One node of 1 CPU; the two web pods request 400m each.
    config.nodes = vec![NodeSpec { name: "small".into(), cpu: Some("1".into()), ..NodeSpec::default() }];
    config.apps[0].cpu = Some("400m".into());
    let s = Setup::start(config, true).await;
    s.backup("payments-1").await;
    let (o, code, _) = s.run(&s.drill("", "  quota:\n    pods: \"1\"\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Error, 2), "{}", o.reason);
    assert!(o.reason.starts_with("could not run (preflight): no room for the restore"), "{}", o.reason);
    assert!(
        o.reason.contains(
            "the scratch quota allows 1 pod(s) but namespace payments (what it runs now) needs 2 pod(s): raise `quota`"
        ),
        "{}",
        o.reason
    );
    assert!(
        o.reason.contains("the cluster has 200m CPU free on 1 schedulable node(s) but namespace payments (what it runs now) needs 800m CPU"),
        "{}",
        o.reason
    );
    assert_eq!(o.details["room"]["free"]["cpuMillis"], 200, "{}", o.details["room"]);
    assert_eq!(s.restores().await, Vec::<String>::new());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_s_newest_backup_is_chosen_and_random_selection_picks_one_of_the_window() {
    let s = Setup::start(payments(), true).await;
    let nightly = json!({"velero.io/schedule-name": "nightly"});
    labelled_backup(&s, "nightly-1", nightly.clone()).await;
    labelled_backup(&s, "nightly-2", nightly).await;
    labelled_backup(&s, "adhoc", json!({})).await;

    let (o, code, _) = s.run(&s.drill("", "  schedule: nightly\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    assert_eq!(o.details["backup"]["name"], "nightly-2", "the Schedule's newest, not the newer ad-hoc one");
    assert_eq!(o.details["backup"]["schedule"], "nightly");

    let (o, code, _) = s.run(&s.drill("", "  schedule: weekly\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(o.reason.contains("Schedule weekly has no Completed backup"), "{}", o.reason);

    let (o, code, _) = s.run(&s.drill("", "  window: 1h\n  selection: random\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    let chosen = o.details["backup"]["name"].as_str().unwrap().to_string();
    assert!(["nightly-1", "nightly-2", "adhoc"].contains(&chosen.as_str()), "{chosen}");
    s.finish().await;
}

/// A PersistentVolume labelled as restored by `restore`, claimed from `namespace`.
fn volume(name: &str, labels: Value, namespace: &str) -> PersistentVolume {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": "/data"}, "claimRef": {"namespace": namespace, "name": "ledger"}}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_restore_is_cleaned_up_by_the_next_run_s_janitor_which_deletes_only_its_own() {
    let s = Setup::start(payments(), true).await;
    s.backup("payments-1").await;
    // Velero stops working: the Restore stays New and the run waits on it.
    let mut faults = s.sim.state.faults.get();
    faults.stalled_controllers = vec!["velero".into()];
    s.sim.state.faults.set(faults.clone());
    let file = s.drill("", "");
    let mut child =
        s.command(&file).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let restore =
        support::until("the run created its Restore", || async { s.restores().await.into_iter().next() }).await;
    support::until("the run is waiting with its scratch namespace", || async {
        (s.scratch_namespaces().await == [restore.clone()]).then_some(())
    })
    .await;
    child.kill().await.unwrap();
    assert_eq!(s.restores().await, std::slice::from_ref(&restore), "the killed run left its Restore");

    // Volumes as Velero labels them: one restored for the scratch namespace, one the same Restore
    // made for another namespace, and one that is not Velero's.
    let pvs: Api<PersistentVolume> = Api::all(s.client.clone());
    let ours = json!({"velero.io/restore-name": restore});
    for pv in [
        volume("restored-here", ours.clone(), &restore),
        volume("restored-elsewhere", ours, "payments"),
        volume("not-velero-s", json!({}), &restore),
    ] {
        pvs.create(&PostParams::default(), &pv).await.unwrap();
    }
    faults.stalled_controllers.clear();
    s.sim.state.faults.set(faults);

    // Any next run starts with the janitor.
    let (o, code, all) = s.run(&file).await;
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
    assert!(all.contains("janitor: payments-restore run"), "{all}");
    assert!(!s.restores().await.contains(&restore), "the janitor deleted the killed run's Restore");
    let left: Vec<String> =
        pvs.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|p| p.metadata.name).collect();
    assert!(!left.contains(&"restored-here".to_string()), "{left:?}");
    assert!(left.contains(&"restored-elsewhere".to_string()) && left.contains(&"not-velero-s".to_string()), "{left:?}");
    let history = s.fd.run(&["history", "-o", "json"]);
    let runs: Vec<Value> = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["verdict"], "Aborted");
    assert!(runs[0]["reason"].as_str().unwrap().contains("stopped without recording an outcome"), "{}", runs[0]);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_api_errors_and_latency_leave_the_verdicts_unchanged() {
    let s = Setup::start(payments(), true).await;
    s.canary();
    s.backup("payments-1").await;
    // From here on, 5% of the API requests answer 500 and every one takes 200 ms more.
    let rule = json!({"rules": [{"errorRate": 0.05, "errorCode": 500, "latencyMs": 200}]});
    s.sim.state.faults.set(serde_json::from_value(rule).unwrap());
    let probes = "  probes:\n    - name: web\n      kubernetes: {apiVersion: apps/v1, kind: Deployment, name: web}\n    - name: configmaps\n      kubernetes: {kind: ConfigMap, sameCountAsSource: true}\n";
    // A run makes some 40 requests: run again until errors did fire (almost always once).
    for _ in 0..5 {
        let (o, code, _) = s.run(&s.drill("targets:\n  rpo: 1h\n", probes)).await;
        assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{} {:?}", o.reason, o.checks);
        assert_eq!(o.recovery_point.clone().unwrap().method, RpoMethod::Canary);
        if s.sim.state.stats.injected_errors() > 0 {
            break;
        }
    }
    assert!(s.sim.state.stats.injected_errors() > 0, "errors were injected");
    let missing =
        "  probes:\n    - name: missing\n      kubernetes: {kind: ConfigMap, name: not-restored}\n      retries: 0\n";
    let (o, code, _) = s.run(&s.drill("", missing)).await;
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{}", o.reason);
    assert!(!check(&o, "probe missing").passed && o.checks.iter().filter(|c| !c.passed).count() == 1, "{:?}", o.checks);
    s.sim.state.faults.set(Default::default());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scratch_namespace_held_by_a_finalizer_makes_the_run_an_error_naming_it() {
    let mut config = payments();
    config.objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "payments", "finalizers": ["example.com/hold"]}, "data": {}}));
    let s = Setup::start(config, true).await;
    s.backup("payments-1").await;
    let (o, code, _) = s.run(&s.drill("", "  deleteTimeout: 1s\n")).await;
    assert_eq!((o.verdict, code), (Verdict::Error, 2), "{}", o.reason);
    assert!(!o.cleanup.done, "{:?}", o.cleanup);
    let scratch = o.target["scratchNamespace"].clone();
    let said = format!("{} {:?}", o.reason, o.cleanup);
    assert!(said.contains(&format!("deleted namespace {scratch}, but it is still there after 1s")), "{said}");
    assert!(said.contains("example.com/hold"), "the finalizer is named: {said}");
    // Whoever owns the finalizer lets go; the namespace goes.
    let held: Api<ConfigMap> = Api::namespaced(s.client.clone(), &scratch);
    let release = json!({"metadata": {"finalizers": null}});
    held.patch("held", &PatchParams::default(), &Patch::Merge(&release)).await.unwrap();
    support::until("the scratch namespace is gone", || async { s.scratch_namespaces().await.is_empty().then_some(()) })
        .await;
    s.finish().await;
}
