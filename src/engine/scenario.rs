//! Running a scenario: its drills in order, then its own verdict and record.

use super::runner::{RunResult, Runner, TOOL_VERSION, new_run_id};
use crate::engine::Drill;
use crate::ledger::Appended;
use crate::ledger::record::{Entry, ScenarioOutcome, ScenarioRef, StepResult};
use crate::measure;
use crate::plan::{DrillPlan, OnFailure, ScenarioPlan};

/// A finished scenario, its drill runs, and where its record went.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub outcome: ScenarioOutcome,
    pub runs: Vec<RunResult>,
    pub recorded: Result<Appended, String>,
}

/// Runs the scenario with each step's registered drill.
pub async fn run(runner: &Runner, plan: &ScenarioPlan) -> ScenarioResult {
    run_with(runner, plan, &|drill| drill.params.instantiate()).await
}

/// Runs the scenario with drills made by `make`.
pub async fn run_with(
    runner: &Runner,
    plan: &ScenarioPlan,
    make: &(dyn Fn(&DrillPlan) -> Box<dyn Drill> + Sync),
) -> ScenarioResult {
    let run_id = new_run_id();
    let started = runner.clock.now();
    let scenario = ScenarioRef { name: plan.name.clone(), run_id: run_id.clone() };
    let mut steps = Vec::new();
    let mut runs = Vec::new();
    let mut stop = false;
    for step in &plan.steps {
        let mut result = StepResult {
            drill: step.drill.name.clone(),
            required: step.required,
            run_id: None,
            verdict: None,
            rto_ms: None,
            rpo_ms: None,
        };
        if !stop && !runner.abort.is_triggered() {
            let run = runner.run_with(&step.drill, make(&step.drill), Some(&scenario)).await;
            let o = &run.outcome;
            result.run_id = Some(o.run_id.clone());
            result.verdict = Some(o.verdict);
            result.rto_ms = o.rto_ms;
            result.rpo_ms = o.rpo_ms;
            stop = o.verdict != measure::Verdict::Passed && plan.on_failure == OnFailure::Stop;
            runs.push(run);
        }
        steps.push(result);
    }
    let decision = measure::scenario_verdict(
        &steps.iter().map(|s| (s.drill.as_str(), s.required, s.verdict)).collect::<Vec<_>>(),
        plan.min_passed,
    );
    let outcome = ScenarioOutcome {
        run_id,
        name: plan.name.clone(),
        spec_sha256: plan.spec_sha256.clone(),
        trigger: runner.trigger.clone(),
        tool_version: TOOL_VERSION.to_string(),
        labels: plan.labels.clone(),
        started,
        ended: runner.clock.now(),
        verdict: decision.verdict,
        reason: decision.reasons.first().cloned().unwrap_or_else(|| format!("all {} steps passed", steps.len())),
        steps,
    };
    let recorded = runner.ledger.append(&Entry::Scenario(Box::new(outcome.clone()))).await.map_err(|e| e.to_string());
    ScenarioResult { outcome, runs, recorded }
}
