//! What is sent: the generic JSON webhook's object and the Slack incoming-webhook message, both
//! built from a recorded [`Outcome`] alone. Pure: no I/O, no clock.
//!
//! The generic object's fields are a documented contract (docs/notifications.md): add fields,
//! never rename or remove them. Outcomes never hold secrets, and nothing else goes in.

use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::Timestamp;
use crate::ledger::record::{NotificationEvent, Outcome, ScenarioRef};
use crate::measure::{TargetResult, Verdict, human};

/// The generic webhook's body. Every field is always present (`null` when unknown), so receivers
/// can rely on the shape.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Generic<'a> {
    pub event: NotificationEvent,
    pub drill: &'a str,
    /// The drill type (`etcd-restore`).
    pub kind: &'a str,
    pub run_id: &'a str,
    pub verdict: Verdict,
    pub reason: &'a str,
    pub rto_ms: Option<u128>,
    pub rpo_ms: Option<u128>,
    pub targets: &'a [TargetResult],
    /// The Kubernetes API server the drill ran against, when it ran against one.
    pub cluster: Option<&'a str>,
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
    pub scenario: Option<&'a ScenarioRef>,
}

/// The generic webhook's body for `outcome`.
pub fn generic(event: NotificationEvent, outcome: &Outcome) -> Value {
    let body = Generic {
        event,
        drill: &outcome.drill.name,
        kind: &outcome.drill.kind,
        run_id: &outcome.run_id,
        verdict: outcome.verdict,
        reason: &outcome.reason,
        rto_ms: outcome.rto_ms.map(|d| d.as_millis()),
        rpo_ms: outcome.rpo_ms.map(|d| d.as_millis()),
        targets: &outcome.targets,
        cluster: cluster(outcome),
        started: outcome.timeline.started,
        ended: outcome.timeline.ended,
        scenario: outcome.scenario.as_ref(),
    };
    serde_json::to_value(body).unwrap_or(Value::Null)
}

fn cluster(outcome: &Outcome) -> Option<&str> {
    outcome.target.get("cluster").map(String::as_str)
}

/// Slack's limits: a header's text (150 characters), a section's text (3000), a field (2000).
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;

/// Slack `mrkdwn` treats `&`, `<` and `>` as control characters: they must be escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    text.chars().take(max - 1).collect::<String>() + "…"
}

/// `1m 12s / target 15m (met)`.
fn figure(value: Option<std::time::Duration>, target: Option<&TargetResult>) -> String {
    let value = value.map_or_else(|| "not measured".to_string(), human);
    match target {
        Some(t) => format!("{value} / target {} ({})", human(t.target_ms), if t.met { "met" } else { "MISSED" }),
        None => format!("{value} (no target)"),
    }
}

fn field(title: &str, text: &str) -> Value {
    json!({"type": "mrkdwn", "text": clip(&format!("*{title}*\n{}", escape(text)), FIELD_MAX)})
}

/// The Slack incoming-webhook message for `outcome`: `text` is the fallback shown in
/// notifications, `blocks` the message (header, reason, figures, run).
pub fn slack(event: NotificationEvent, outcome: &Outcome, previous: Option<Verdict>) -> Value {
    let o = outcome;
    let headline = match event {
        NotificationEvent::Failure => format!("Drill {}: {}", o.verdict.to_string().to_lowercase(), o.drill.name),
        NotificationEvent::Recovery => format!("Drill recovered: {}", o.drill.name),
        NotificationEvent::Run => format!("Drill passed: {}", o.drill.name),
    };
    let text = format!("firedrill: {} ({}) {}: {}", o.drill.name, o.drill.kind, o.verdict, o.reason);
    let target = |f: &str| o.targets.iter().find(|t| t.figure == f);
    let verdict = match previous {
        Some(p) if event == NotificationEvent::Recovery => format!("{} (previous run: {p})", o.verdict),
        _ => o.verdict.to_string(),
    };
    let mut fields = vec![
        field("Verdict", &verdict),
        field("Drill type", &o.drill.kind),
        field("RTO", &figure(o.rto_ms, target("rto"))),
        field("RPO", &figure(o.rpo_ms, target("rpo"))),
    ];
    if let Some(c) = cluster(o) {
        fields.push(field("Cluster", c));
    }
    if let Some(s) = &o.scenario {
        fields.push(field("Scenario", &s.name));
    }
    let context = format!("run `{}` · started {}", o.run_id, o.timeline.started);
    json!({
        "text": clip(&escape(&text), SECTION_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": clip(&headline, HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(&escape(&o.reason), SECTION_MAX)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&context)}]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::outcome;

    #[test]
    fn the_generic_object_has_every_documented_field_even_when_unknown() {
        let o = outcome("budgets", Verdict::Failed);
        let v = generic(NotificationEvent::Failure, &o);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "cluster", "drill", "ended", "event", "kind", "reason", "rpoMs", "rtoMs", "runId", "scenario",
                "started", "targets", "verdict"
            ]
        );
        assert_eq!(v["event"], "failure");
        assert_eq!(v["verdict"], "Failed");
        assert_eq!(v["drill"], "budgets");
        assert_eq!(v["kind"], "pdb-check");
        assert_eq!(v["rtoMs"], 72_000);
        assert_eq!(v["rpoMs"], Value::Null);
        assert_eq!(v["targets"][0], json!({"figure": "rto", "targetMs": 60_000, "achievedMs": 72_000, "met": false}));
        assert_eq!(v["cluster"], "https://api.example:6443");
        assert_eq!(v["started"], "2026-11-21T02:00:00.000Z");
        assert_eq!(v["ended"], "2026-11-21T02:01:12.000Z");
        assert_eq!(v["scenario"], Value::Null);
    }

    #[test]
    fn the_slack_message_has_a_fallback_text_and_blocks_with_the_figures() {
        let mut o = outcome("budgets", Verdict::Passed);
        o.reason = "verified <all> & within targets".into();
        let v = slack(NotificationEvent::Recovery, &o, Some(Verdict::Failed));
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .starts_with("firedrill: budgets (pdb-check) Passed: verified &lt;all&gt; &amp;")
        );
        let blocks = v["blocks"].as_array().unwrap();
        let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["header", "section", "section", "context"]);
        assert_eq!(blocks[0]["text"], json!({"type": "plain_text", "text": "Drill recovered: budgets"}));
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert_eq!(blocks[1]["text"]["text"], "verified &lt;all&gt; &amp; within targets", "mrkdwn is escaped");
        let fields: Vec<&str> =
            blocks[2]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "*Verdict*\nPassed (previous run: Failed)",
                "*Drill type*\npdb-check",
                "*RTO*\n1m 12s / target 1m (MISSED)",
                "*RPO*\nnot measured (no target)",
                "*Cluster*\nhttps://api.example:6443",
            ]
        );
        let context = blocks[3]["elements"][0]["text"].as_str().unwrap();
        assert!(context.contains(&o.run_id) && context.contains("2026-11-21T02:00:00.000Z"), "{context}");
    }

    #[test]
    fn a_long_reason_is_clipped_to_slacks_limits() {
        let mut o = outcome("budgets", Verdict::Failed);
        o.reason = "x".repeat(5000);
        o.drill.name = "d".repeat(200);
        let v = slack(NotificationEvent::Failure, &o, None);
        assert_eq!(v["blocks"][0]["text"]["text"].as_str().unwrap().chars().count(), HEADER_MAX);
        assert!(v["blocks"][0]["text"]["text"].as_str().unwrap().starts_with("Drill failed: ddd"));
        assert_eq!(v["blocks"][1]["text"]["text"].as_str().unwrap().chars().count(), SECTION_MAX);
        assert_eq!(v["text"].as_str().unwrap().chars().count(), SECTION_MAX);
    }
}
