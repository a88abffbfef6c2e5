//! The notifier against a local receiver (axum on a loopback port, answering as each test
//! scripts it), and the choice of what to send.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::*;
use crate::clock::Timestamp;
use crate::ledger::record::{CleanupReport, DrillRef, Trigger};
use crate::measure::{TargetResult, Timeline};

/// A finished run of `drill` with a missed RTO target, against a cluster.
pub(crate) fn outcome(drill: &str, verdict: Verdict) -> Outcome {
    let started: Timestamp = "2026-11-21T02:00:00.000Z".parse().unwrap();
    let mut timeline = Timeline::new(started);
    timeline.ended = Some("2026-11-21T02:01:12.000Z".parse().unwrap());
    Outcome {
        run_id: format!("{drill}-{verdict}-0193"),
        drill: DrillRef { name: drill.into(), kind: "pdb-check".into(), spec_sha256: "0".repeat(64) },
        scenario: None,
        trigger: Trigger { by: "cli".into(), operator: None },
        tool_version: "0.1.0".into(),
        target: BTreeMap::from([("cluster".to_string(), "https://api.example:6443".to_string())]),
        labels: BTreeMap::new(),
        verdict,
        reason: "1 critical finding".into(),
        timeline,
        rto_ms: Some(Duration::from_secs(72)),
        rpo_ms: None,
        recovery_point: None,
        targets: vec![TargetResult {
            figure: "rto".into(),
            target_ms: Duration::from_secs(60),
            achieved_ms: Some(Duration::from_secs(72)),
            met: false,
        }],
        checks: Vec::new(),
        details: BTreeMap::new(),
        warnings: Vec::new(),
        errors: Vec::new(),
        cleanup: CleanupReport { done: true, actions: Vec::new(), error: None },
        log: Vec::new(),
    }
}

#[test]
fn failures_always_notify_a_pass_after_a_failure_is_a_recovery_and_other_passes_only_with_always() {
    use NotificationEvent::*;
    use Verdict::*;
    for v in [Failed, Error, Aborted] {
        for prev in [None, Some(Passed), Some(Failed)] {
            assert_eq!(event_for(v, prev, NotifyOn::Changes), Some(Failure), "{v} after {prev:?}");
        }
    }
    for prev in [Failed, Error, Aborted] {
        assert_eq!(event_for(Passed, Some(prev), NotifyOn::Changes), Some(Recovery), "after {prev}");
        assert_eq!(event_for(Passed, Some(prev), NotifyOn::Always), Some(Recovery), "after {prev}");
    }
    assert_eq!(event_for(Passed, Some(Passed), NotifyOn::Changes), None);
    assert_eq!(event_for(Passed, None, NotifyOn::Changes), None, "a first pass is no change");
    assert_eq!(event_for(Passed, Some(Passed), NotifyOn::Always), Some(Run));
    assert_eq!(event_for(Passed, None, NotifyOn::Always), Some(Run));
}

fn summary(seq: u64, drill: &str, run_id: &str, verdict: Verdict) -> RunSummary {
    RunSummary {
        seq,
        started: Timestamp::from_millis(seq as i64),
        drill: drill.into(),
        kind: "pdb-check".into(),
        scenario: None,
        verdict,
        rto_ms: None,
        rto_target_ms: None,
        rpo_ms: None,
        rpo_target_ms: None,
        run_id: run_id.into(),
        reason: String::new(),
    }
}

#[test]
fn the_previous_verdict_is_the_same_drills_last_run_before_this_one() {
    let runs = [
        summary(1, "a", "r1", Verdict::Failed),
        summary(3, "b", "r2", Verdict::Passed),
        summary(5, "a", "r3", Verdict::Passed),
        summary(7, "b", "r4", Verdict::Error),
        summary(9, "a", "r5", Verdict::Aborted),
    ];
    assert_eq!(previous_in(&runs, "a", "r5"), Some(Verdict::Passed), "not its own verdict");
    assert_eq!(previous_in(&runs, "a", "r3"), Some(Verdict::Failed), "only runs before it");
    assert_eq!(previous_in(&runs, "b", "r4"), Some(Verdict::Passed), "not another drill's");
    assert_eq!(previous_in(&runs, "a", "r1"), None, "the first run has none");
    assert_eq!(previous_in(&runs, "a", "spooled"), Some(Verdict::Aborted), "not chained: the last one");
    assert_eq!(previous_in(&runs, "c", "r9"), None);
}

/// A webhook receiver that answers with the scripted statuses in turn (200 once they run out)
/// and keeps every body it got.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

type Script = Arc<Mutex<VecDeque<(u16, Option<&'static str>)>>>;

async fn answer(
    State((script, bodies)): State<(Script, Arc<Mutex<Vec<serde_json::Value>>>)>,
    body: axum::Json<serde_json::Value>,
) -> (StatusCode, HeaderMap) {
    bodies.lock().unwrap().push(body.0);
    let (code, retry_after) = script.lock().unwrap().pop_front().unwrap_or((200, None));
    let mut headers = HeaderMap::new();
    if let Some(v) = retry_after {
        headers.insert("retry-after", v.parse().unwrap());
    }
    (StatusCode::from_u16(code).unwrap(), headers)
}

async fn receiver(script: &[(u16, Option<&'static str>)]) -> Receiver {
    let script: Script = Arc::new(Mutex::new(script.iter().copied().collect()));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route("/hooks/{token}", post(answer)).with_state((script, bodies.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/T000-secret-token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, bodies }
}

/// Short waits, so that retried tests finish quickly; the waits themselves are the policy's
/// unit tests' business.
fn quick() -> RetryPolicy {
    RetryPolicy { backoff: Duration::from_millis(5), ..RetryPolicy::default() }
}

async fn webhook_delivery(script: &[(u16, Option<&'static str>)]) -> (Notification, usize) {
    let r = receiver(script).await;
    let notifier = Notifier::new(None, Some(&r.url), NotifyOn::Changes).unwrap().with_policy(quick());
    let sent = notifier.send(NotificationEvent::Failure, &outcome("budgets", Verdict::Failed), None).await;
    assert_eq!(sent.len(), 1);
    let got = r.bodies.lock().unwrap().len();
    (sent.into_iter().next().unwrap(), got)
}

#[tokio::test]
async fn a_500_is_retried_until_the_receiver_answers_200() {
    let (n, requests) = webhook_delivery(&[(500, None), (502, None)]).await;
    assert!(n.delivered, "{n:?}");
    assert_eq!((n.attempts, n.status, n.error), (3, Some(200), None));
    assert_eq!(requests, 3);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried() {
    let (n, requests) = webhook_delivery(&[(429, Some("0"))]).await;
    assert!(n.delivered, "{n:?}");
    assert_eq!((n.attempts, requests), (2, 2));
}

#[tokio::test]
async fn a_400_is_not_retried_and_says_so() {
    let (n, requests) = webhook_delivery(&[(400, None)]).await;
    assert!(!n.delivered);
    assert_eq!((n.attempts, requests, n.status, n.error.as_deref()), (1, 1, Some(400), Some("HTTP 400")));
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_after_the_policys_attempts() {
    let (n, requests) = webhook_delivery(&[(500, None); 10]).await;
    assert!(!n.delivered);
    assert_eq!((n.attempts, requests, n.error.as_deref()), (4, 4, Some("HTTP 500")));
}

#[tokio::test]
async fn an_unreachable_receiver_is_reported_by_kind_without_its_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hooks/T000-secret-token");
    let notifier = Notifier::new(None, Some(&url), NotifyOn::Changes).unwrap().with_policy(quick());
    let sent = notifier.send(NotificationEvent::Failure, &outcome("budgets", Verdict::Failed), None).await;
    assert_eq!(sent[0].error.as_deref(), Some("connection failed"));
    assert_eq!((sent[0].delivered, sent[0].attempts, sent[0].status), (false, 4, None));
    assert!(!format!("{notifier:?}").contains("secret-token"), "Debug hides the URL: {notifier:?}");
}

#[tokio::test]
async fn each_channel_gets_its_own_payload() {
    let (slack, hook) = (receiver(&[]).await, receiver(&[]).await);
    let notifier = Notifier::new(Some(&slack.url), Some(&hook.url), NotifyOn::Changes).unwrap();
    assert_eq!(notifier.channels(), [Channel::Slack, Channel::Webhook]);
    let sent = notifier.send(NotificationEvent::Failure, &outcome("budgets", Verdict::Failed), None).await;
    let channels: Vec<Channel> = sent.iter().map(|n| n.channel).collect();
    assert_eq!(channels, [Channel::Slack, Channel::Webhook]);
    assert!(sent.iter().all(|n| n.delivered && n.event == NotificationEvent::Failure));
    let slack_body = slack.bodies.lock().unwrap()[0].clone();
    assert!(slack_body["blocks"].is_array() && slack_body["text"].is_string(), "{slack_body}");
    let hook_body = hook.bodies.lock().unwrap()[0].clone();
    assert_eq!((hook_body["event"].as_str(), hook_body["drill"].as_str()), (Some("failure"), Some("budgets")));
}

#[tokio::test]
async fn after_run_sends_a_recovery_after_a_failure_and_records_each_delivery() {
    let data = tempfile::tempdir().unwrap();
    let ledger = Ledger::open("memory://notify-after-run", data.path(), Clock::system()).unwrap();
    let hook = receiver(&[(503, None)]).await;
    let notifier = Notifier::new(None, Some(&hook.url), NotifyOn::Changes).unwrap().with_policy(quick());

    let passed = outcome("budgets", Verdict::Passed);
    ledger.append(&Entry::Outcome(Box::new(passed.clone()))).await.unwrap();
    assert!(after_run(&notifier, &ledger, &passed).await.is_empty(), "a first pass is no change");

    let failed = outcome("budgets", Verdict::Failed);
    ledger.append(&Entry::Outcome(Box::new(failed.clone()))).await.unwrap();
    let d = after_run(&notifier, &ledger, &failed).await;
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].notification.event, d[0].notification.delivered, d[0].notification.attempts),
        (NotificationEvent::Failure, true, 2)
    );
    assert!(matches!(d[0].recorded, Ok(Appended::Chained { .. })), "{:?}", d[0].recorded);
    assert_eq!(d[0].describe(), "webhook: failure delivered (2 attempts)");

    let mut again = outcome("budgets", Verdict::Passed);
    again.run_id = "budgets-again".into();
    ledger.append(&Entry::Outcome(Box::new(again.clone()))).await.unwrap();
    let d = after_run(&notifier, &ledger, &again).await;
    assert_eq!(d[0].notification.event, NotificationEvent::Recovery);
    assert_eq!(hook.bodies.lock().unwrap().last().unwrap()["event"], "recovery");

    let records = ledger.records().await.unwrap();
    let told: Vec<(&str, NotificationEvent)> = records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Notification(n) => Some((n.run_id.as_str(), n.event)),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [(failed.run_id.as_str(), NotificationEvent::Failure), ("budgets-again", NotificationEvent::Recovery)]
    );
    assert!(ledger.verify(None).await.unwrap().ok(), "notification records keep the chain whole");
    let history: Vec<String> = ledger.summaries().await.unwrap().into_iter().map(|s| s.run_id).collect();
    assert_eq!(
        history,
        [passed.run_id.clone(), failed.run_id.clone(), "budgets-again".into()],
        "history: outcomes only"
    );
}
