//! Notifications from `firedrill run`: a pdb-check drill on the simulator, failing then passing,
//! with both webhooks pointing at a receiver on a loopback port (axum, in the test). Nothing
//! reaches the network.

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use firedrill::ledger::record::Outcome;
use firedrill::measure::Verdict;
use firedrill::sim::config::{AppSpec, SimConfig};
use serde_json::{Value, json};

use crate::support::{self, Firedrill, text, write};

/// The token in the webhook paths: it stands for the credential a real webhook URL holds.
pub const TOKEN: &str = "T000-secret-token";

/// What the receiver got: `(channel, body)` of each request.
pub type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// Takes every POST to `/slack/{token}` and `/hooks/{token}`, keeps `(channel, body)`, and
/// answers `status`.
pub struct Receiver {
    base: String,
    got: Got,
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        let got: Got = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route(
                "/{channel}/{token}",
                post(
                    |State((got, status)): State<(Got, u16)>,
                     UrlPath((channel, _token)): UrlPath<(String, String)>,
                     body: axum::Json<Value>| async move {
                        got.lock().unwrap().push((channel, body.0));
                        StatusCode::from_u16(status).unwrap()
                    },
                ),
            )
            .with_state((got.clone(), status));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, got }
    }

    pub fn slack_url(&self) -> String {
        format!("{}/slack/{TOKEN}", self.base)
    }

    pub fn hook_url(&self) -> String {
        format!("{}/hooks/{TOKEN}", self.base)
    }

    /// What arrived since the last call.
    pub fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// One app with a single replica and a PDB that never lets it go: a critical finding.
pub fn stuck_db() -> SimConfig {
    SimConfig {
        apps: vec![AppSpec {
            name: "db".into(),
            namespace: "default".into(),
            replicas: Some(1),
            pdb: Some(json!({"minAvailable": 1})),
            ..AppSpec::default()
        }],
        ..SimConfig::default()
    }
}

/// The drill `budgets`: failing on the critical finding, or (`accept`) accepting every finding in
/// `default`, which makes it pass.
fn budgets(dir: &Path, kubeconfig: &Path, accept: bool) -> String {
    let ignore = if accept { "  whatIf: false\n  ignore:\n    - namespace: default\n" } else { "" };
    let body = format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: budgets\ncluster:\n  kubeconfig: {}\npdbCheck:\n  failOn: critical\n{ignore}",
        kubeconfig.display()
    );
    let name = if accept { "budgets-accepting.yaml" } else { "budgets.yaml" };
    write(dir, name, &body).to_str().unwrap().to_string()
}

/// Runs `firedrill run FILE -o json` (plus `extra` arguments) off the test's runtime, which
/// serves the simulator and the receiver meanwhile.
async fn run(fd: &Arc<Firedrill>, file: &str, extra: &[&str]) -> (Outcome, Output) {
    let (fd, mut args) = (fd.clone(), vec!["run".to_string(), file.to_string(), "-o".into(), "json".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || fd.run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap();
    let outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (outcome, out)
}

/// Every file under `dir`, as text, with its path.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.display().to_string(), String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into()));
        }
    }
    out
}

/// The ledger's notification entries, in chain order.
fn notifications(fd: &Firedrill) -> Vec<Value> {
    let mut records: Vec<(String, String)> = files(&fd.data_dir.path().join("ledger/records"));
    records.sort();
    records
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap())
        .filter_map(|r| r["entry"].get("notification").cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_webhooks_hear_of_a_failure_then_of_the_recovery_and_never_see_the_url_leak() {
    let sim = support::sim(stuck_db()).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(support::kube_client(&sim), "default");
    support::ready_pods(&pods, "db", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let receiver = Receiver::start(200).await;
    let fd = Arc::new(
        Firedrill::new()
            .env("FIREDRILL_SLACK_WEBHOOK_URL", receiver.slack_url())
            .env("FIREDRILL_WEBHOOK_URL", receiver.hook_url()),
    );

    let (failed, out1) = run(&fd, &budgets(dir.path(), &kubeconfig, false), &["-vv"]).await;
    assert_eq!((failed.verdict, out1.status.code()), (Verdict::Failed, Some(1)), "{}", text(&out1));
    let got = receiver.take();
    let channels: Vec<&str> = got.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(channels.iter().filter(|c| **c == "slack").count(), 1, "{got:?}");
    assert_eq!(channels.iter().filter(|c| **c == "hooks").count(), 1, "{got:?}");
    let hook = &got.iter().find(|(c, _)| c == "hooks").unwrap().1;
    assert_eq!(hook["event"], "failure");
    assert_eq!(hook["drill"], "budgets");
    assert_eq!(hook["kind"], "pdb-check");
    assert_eq!(hook["verdict"], "Failed");
    assert_eq!(hook["runId"], failed.run_id.as_str());
    assert_eq!(hook["reason"], failed.reason.as_str());
    assert_eq!(hook["cluster"], sim.url().trim_end_matches('/'));
    assert_eq!(hook["started"], failed.timeline.started.to_string());
    assert!(hook["targets"].is_array() && hook["scenario"].is_null(), "{hook}");
    let slack = &got.iter().find(|(c, _)| c == "slack").unwrap().1;
    assert_eq!(slack["blocks"][0]["text"]["text"], "Drill failed: budgets", "{slack}");
    assert!(slack["text"].as_str().unwrap().contains("budgets (pdb-check) Failed"), "{slack}");

    let (passed, out2) = run(&fd, &budgets(dir.path(), &kubeconfig, true), &[]).await;
    assert_eq!((passed.verdict, out2.status.code()), (Verdict::Passed, Some(0)), "{}", text(&out2));
    let got = receiver.take();
    assert_eq!(got.len(), 2, "{got:?}");
    let hook = &got.iter().find(|(c, _)| c == "hooks").unwrap().1;
    assert_eq!((hook["event"].as_str(), hook["verdict"].as_str()), (Some("recovery"), Some("Passed")));
    assert_eq!(hook["runId"], passed.run_id.as_str());
    let slack = &got.iter().find(|(c, _)| c == "slack").unwrap().1;
    assert_eq!(slack["blocks"][0]["text"]["text"], "Drill recovered: budgets");
    assert!(
        String::from_utf8_lossy(&out2.stderr).contains("webhook: recovery delivered (1 attempt)"),
        "{}",
        text(&out2)
    );

    // A third pass is no change: nobody is told.
    let (_, out3) = run(&fd, &budgets(dir.path(), &kubeconfig, true), &[]).await;
    assert_eq!(out3.status.code(), Some(0), "{}", text(&out3));
    assert!(receiver.take().is_empty());
    sim.shutdown().await;

    let n = notifications(&fd);
    let told: Vec<(&str, &str, bool)> = n
        .iter()
        .map(|n| (n["channel"].as_str().unwrap(), n["event"].as_str().unwrap(), n["delivered"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("slack", "failure", true),
            ("webhook", "failure", true),
            ("slack", "recovery", true),
            ("webhook", "recovery", true)
        ]
    );
    assert_eq!(n[0]["runId"], failed.run_id.as_str());
    assert_eq!(n[2]["runId"], passed.run_id.as_str());

    for out in [&out1, &out2, &out3] {
        assert!(!text(out).contains(TOKEN), "the webhook URL leaked into the output: {}", text(out));
    }
    for (path, body) in files(fd.data_dir.path()) {
        assert!(!body.contains(TOKEN), "the webhook URL leaked into {path}");
    }
    let history: Vec<Value> = serde_json::from_slice(&fd.run(&["history", "-o", "json"]).stdout).unwrap();
    let verdicts: Vec<&str> = history.iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["Failed", "Passed", "Passed"], "history shows runs, not notifications");
    let verify = fd.run(&["evidence", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_always_fails_changes_neither_verdict_nor_exit_code_and_is_recorded_undelivered() {
    let sim = support::sim(stuck_db()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let receiver = Receiver::start(500).await;
    // The URL from a file, as a mounted Secret key provides it.
    let secret = write(dir.path(), "secret/url", &format!("{}\n", receiver.hook_url()));
    let fd = Arc::new(
        Firedrill::new()
            .env("FIREDRILL_WEBHOOK_URL_FILE", secret.to_str().unwrap())
            .env("FIREDRILL_NOTIFY_ON", "always"),
    );
    let (outcome, out) = run(&fd, &budgets(dir.path(), &kubeconfig, true), &[]).await;
    sim.shutdown().await;
    assert_eq!((outcome.verdict, out.status.code()), (Verdict::Passed, Some(0)), "{}", text(&out));
    let got = receiver.take();
    assert_eq!(got.len(), 4, "one request and three retries: {got:?}");
    assert!(got.iter().all(|(_, b)| b["event"] == "run"));
    let n = notifications(&fd);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["runId"], outcome.run_id.as_str());
    assert_eq!(
        (&n[0]["channel"], &n[0]["event"], &n[0]["delivered"], &n[0]["attempts"], &n[0]["status"], &n[0]["error"]),
        (&json!("webhook"), &json!("run"), &json!(false), &json!(4), &json!(500), &json!("HTTP 500"))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("webhook: run NOT delivered after 4 attempts: HTTP 500"), "{stderr}");
    assert!(!text(&out).contains(TOKEN), "{}", text(&out));
    for (path, body) in files(fd.data_dir.path()) {
        assert!(!body.contains(TOKEN), "the webhook URL leaked into {path}");
    }
}

#[test]
fn a_bad_notification_setting_stops_the_run_before_anything_runs_and_hides_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "d.yaml", "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: d\npdbCheck: {}\n");
    let fd = Firedrill::new().env("FIREDRILL_NOTIFY_ON", "sometimes");
    let out = fd.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FIREDRILL_NOTIFY_ON") && stderr.contains("`changes`") && stderr.contains("`always`"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was run"), "{stderr}");
    assert!(!fd.data_dir.path().join("ledger").exists(), "nothing was recorded");

    let fd = Firedrill::new().env("FIREDRILL_SLACK_WEBHOOK_URL", format!("hooks.example/{TOKEN}"));
    let out = fd.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("FIREDRILL_SLACK_WEBHOOK_URL"), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN), "{}", text(&out));
}
