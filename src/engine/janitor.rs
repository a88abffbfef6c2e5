//! The janitor: finds runs whose process died before recording an outcome, runs their cleanup
//! from the claim in their intent, and records them as `Aborted`.
//!
//! It runs at the start of every `firedrill run`. A run whose owner process is alive on this
//! host is left alone; one owned by another host is touched only after its deadline.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::marker::Marker;
use super::owner::{self, Liveness};
use super::runner::{self, Runner};
use crate::ledger::Ledger;
use crate::ledger::record::{Entry, Outcome};
use crate::measure::{self, Verdict};

/// How long the janitor gives a dead run's cleanup.
const CLEANUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Cleans up after every dead run found in the runner's data directory; returns their records.
pub async fn sweep(runner: &Runner) -> Vec<Outcome> {
    let mut cleaned = Vec::new();
    for path in Marker::list(&runner.data_dir) {
        let Some(data) = Marker::peek(&path) else {
            continue;
        };
        let intent = &data.intent;
        let dead = match owner::liveness(&intent.owner) {
            Liveness::Alive => false,
            Liveness::Dead => true,
            Liveness::Unknown => runner.clock.now() > intent.deadline,
        };
        if !dead {
            continue;
        }
        let Some(marker) = Marker::take(&path) else {
            continue;
        };
        cleaned.push(clean(runner, marker).await);
    }
    cleaned
}

async fn clean(runner: &Runner, marker: Marker) -> Outcome {
    let data = marker.data.clone();
    // The run finished (cleanup included) but could record its outcome nowhere: record it now.
    if let Some(outcome) = &data.outcome {
        record(runner, &data.ledger, outcome, marker).await;
        return (**outcome).clone();
    }
    let intent = &data.intent;
    let ctx = runner::janitor_context(runner, &intent.run_id);
    ctx.log(format!(
        "janitor: run {} of {} was left without an outcome by pid {} on {}",
        intent.run_id, intent.drill.name, intent.owner.pid, intent.owner.host
    ));
    let cleanup = runner::cleanup_report(
        runner.clock.timeout(CLEANUP_LIMIT, crate::drills::cleanup(&intent.drill.kind, &intent.claim, &ctx)).await,
    );
    let mut timeline = data.timeline.clone();
    timeline.ended = Some(runner.clock.now());
    let phase = data.phase.map(|p| p.to_string()).unwrap_or_else(|| "setup".into());
    let reason = format!(
        "aborted during {phase}: the firedrill process (pid {} on {}) stopped without recording an outcome; the janitor cleaned up at {}",
        intent.owner.pid,
        intent.owner.host,
        runner.clock.now()
    );
    let mut errors = vec![reason.clone()];
    if let Some(e) = &cleanup.error {
        errors.push(format!("cleanup did not finish: {e}"));
    }
    let reported = ctx.reported();
    let outcome = Outcome {
        run_id: intent.run_id.clone(),
        drill: intent.drill.clone(),
        scenario: intent.scenario.clone(),
        trigger: intent.trigger.clone(),
        tool_version: runner::TOOL_VERSION.to_string(),
        target: BTreeMap::new(),
        labels: BTreeMap::new(),
        verdict: Verdict::Aborted,
        reason,
        rto_ms: None,
        rpo_ms: None,
        recovery_point: None,
        targets: measure::compare(&intent.targets, None, None),
        checks: Vec::new(),
        details: BTreeMap::new(),
        warnings: reported.warnings,
        errors,
        cleanup,
        log: reported.log.into_iter().collect(),
        timeline,
    };
    record(runner, &data.ledger, &outcome, marker).await;
    outcome
}

/// Appends `outcome` to the ledger the run's intent went to; removes the marker once it is
/// recorded, gives it back for the next janitor otherwise.
async fn record(runner: &Runner, ledger_url: &str, outcome: &Outcome, marker: Marker) {
    let ledger = if ledger_url == runner.ledger.url() {
        Ok(runner.ledger.clone())
    } else {
        Ledger::open(ledger_url, &runner.data_dir, runner.clock).map(Arc::new)
    };
    let recorded = match ledger {
        Ok(l) => l.append(&Entry::Outcome(Box::new(outcome.clone()))).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match recorded {
        Ok(_) => marker.remove(),
        Err(e) => {
            // Cleanup is done: the next janitor only has to record this outcome.
            tracing::error!("janitor: the outcome of run {} could not be recorded: {e}", outcome.run_id);
            let mut marker = marker;
            marker.keep_outcome(outcome);
            marker.release();
        }
    }
}
