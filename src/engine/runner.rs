//! The runner: drives one drill through its phases and records what happened.
//!
//! Order of a run: preflight → claim → *intent recorded* → setup → t0 → act → wait → verify →
//! cleanup (always, once anything was claimed) → measure → verdict → *outcome recorded*. Each
//! phase has a time limit; an abort (Ctrl-C, SIGTERM, a guard) ends the running phase at once and
//! goes straight to cleanup. Cleanup itself cannot be aborted, only timed out.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::Instrument;

use super::marker::{Marker, MarkerData};
use super::{Abort, Claim, Drill, DrillError, RunContext, owner};
use crate::clock::Clock;
use crate::ledger::record::{CleanupReport, DrillRef, Entry, Intent, Outcome, ScenarioRef, Trigger};
use crate::ledger::{Appended, Ledger};
use crate::measure::{self, Ending, Phase, PhaseSpan, Timeline, Verdict};
use crate::plan::DrillPlan;
use crate::progress::Progress;

/// The version written into every record.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a run needs besides the plan.
#[derive(Clone)]
pub struct Runner {
    pub clock: Clock,
    pub ledger: Arc<Ledger>,
    pub data_dir: PathBuf,
    pub progress: Arc<dyn Progress>,
    pub abort: Abort,
    pub trigger: Trigger,
}

/// A finished run and where its record went.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: Outcome,
    /// `Err` holds why the outcome could be recorded nowhere (it is still printed).
    pub recorded: Result<Appended, String>,
}

/// A fresh run id: a UUIDv7, so ids sort by start time.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The per-run state the phases update.
struct Run<'a> {
    runner: &'a Runner,
    timeline: Timeline,
    marker: Option<Marker>,
    claim: Option<Claim>,
}

fn ending_of(phase: Phase, e: DrillError) -> Ending {
    match e {
        DrillError::Failed(reason) => Ending::Failed { phase, reason },
        DrillError::Error(reason) => Ending::Error { phase, reason },
        DrillError::Aborted(reason) => Ending::Aborted { phase, reason },
    }
}

impl Run<'_> {
    /// Runs one phase under its time limit and the abort.
    async fn phase<T>(
        &mut self,
        phase: Phase,
        plan: &DrillPlan,
        fut: impl Future<Output = Result<T, DrillError>>,
    ) -> Result<T, Ending> {
        let r = self.runner;
        r.progress.phase(phase);
        if let Some(m) = &mut self.marker {
            m.enter(phase, &self.timeline);
        }
        let started = r.clock.now();
        let limit = plan.timeouts.get(phase);
        let result = tokio::select! {
            biased;
            _ = r.abort.triggered() => Err(Ending::Aborted { phase, reason: r.abort.reason() }),
            out = r.clock.timeout(limit, fut.instrument(tracing::info_span!("phase", %phase))) => match out {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(ending_of(phase, e)),
                Err(elapsed) => Err(timed_out(phase, elapsed)),
            },
        };
        self.timeline.phases.push(PhaseSpan { phase, started, ended: r.clock.now(), ok: result.is_ok() });
        result
    }

    async fn drive(
        &mut self,
        plan: &DrillPlan,
        drill: &mut dyn Drill,
        ctx: &RunContext,
        scenario: Option<&ScenarioRef>,
    ) -> Ending {
        if let Err(e) = self.phase(Phase::Preflight, plan, drill.preflight(ctx)).await {
            return e;
        }
        let claim = match drill.claim(ctx) {
            Ok(c) => c,
            Err(e) => return ending_of(Phase::Setup, e),
        };
        if let Err(reason) = self.record_intent(plan, drill, ctx, scenario, claim).await {
            return Ending::Error { phase: Phase::Setup, reason };
        }
        if let Err(e) = self.phase(Phase::Setup, plan, drill.setup(ctx)).await {
            return e;
        }
        self.timeline.t0 = Some(self.runner.clock.now());
        self.runner.progress.mark("disaster declared (t0)");
        if let Err(e) = self.phase(Phase::Act, plan, drill.act(ctx)).await {
            return e;
        }
        if let Err(e) = self.phase(Phase::Wait, plan, drill.wait(ctx)).await {
            return e;
        }
        let checks = match self.phase(Phase::Verify, plan, drill.verify(ctx)).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        if checks.iter().all(|c| c.passed) {
            self.timeline.verified = self.timeline.phases.last().map(|p| p.ended);
        }
        Ending::Completed(checks)
    }

    /// Records the intent, then the local marker. Nothing has changed yet, so if either cannot
    /// be written the run stops here.
    async fn record_intent(
        &mut self,
        plan: &DrillPlan,
        drill: &dyn Drill,
        ctx: &RunContext,
        scenario: Option<&ScenarioRef>,
        claim: Claim,
    ) -> Result<(), String> {
        let r = self.runner;
        let intent = Intent {
            run_id: ctx.run_id.clone(),
            drill: drill_ref(plan),
            scenario: scenario.cloned(),
            trigger: r.trigger.clone(),
            tool_version: TOOL_VERSION.to_string(),
            owner: owner::current(),
            started: self.timeline.started,
            deadline: self.timeline.started + plan.timeouts.total(),
            targets: plan.targets,
            changes: drill.planned_changes(),
            claim: claim.clone(),
        };
        match r.ledger.append(&Entry::Intent(Box::new(intent.clone()))).await {
            Ok(Appended::Chained { seq, .. }) => ctx.log(format!("intent recorded as ledger record {seq}")),
            Ok(Appended::Spooled { cause }) => ctx.warn(format!(
                "the ledger could not be reached ({cause}); the intent was spooled to local disk and the next run will append it"
            )),
            Err(e) => return Err(format!("cannot record the intent, so nothing was changed: {e}")),
        }
        let data = MarkerData {
            intent,
            ledger: r.ledger.url().to_string(),
            phase: None,
            timeline: self.timeline.clone(),
            outcome: None,
        };
        let marker = Marker::create(&r.data_dir, data).map_err(|e| {
            format!("cannot write the run marker in {}, so nothing was changed: {e}", r.data_dir.display())
        })?;
        self.marker = Some(marker);
        self.claim = Some(claim);
        Ok(())
    }

    /// Cleanup: once anything was claimed, always; not abortable, only time-limited.
    async fn cleanup(&mut self, plan: &DrillPlan, drill: &mut dyn Drill, ctx: &RunContext) -> CleanupReport {
        let Some(claim) = self.claim.clone() else {
            return CleanupReport {
                done: true,
                actions: vec!["nothing was claimed, so nothing to clean up".into()],
                error: None,
            };
        };
        let r = self.runner;
        r.progress.phase(Phase::Cleanup);
        if let Some(m) = &mut self.marker {
            m.enter(Phase::Cleanup, &self.timeline);
        }
        let started = r.clock.now();
        let limit = plan.timeouts.cleanup;
        let report = cleanup_report(r.clock.timeout(limit, drill.cleanup(&claim, ctx)).await);
        self.timeline.phases.push(PhaseSpan { phase: Phase::Cleanup, started, ended: r.clock.now(), ok: report.done });
        report
    }
}

/// What a cleanup that ran under a time limit did.
pub fn cleanup_report(result: Result<Result<Vec<String>, DrillError>, crate::clock::Elapsed>) -> CleanupReport {
    match result {
        Ok(Ok(actions)) => CleanupReport { done: true, actions, error: None },
        Ok(Err(e)) => CleanupReport { done: false, actions: vec![], error: Some(e.to_string()) },
        Err(elapsed) => CleanupReport { done: false, actions: vec![], error: Some(format!("cleanup {elapsed}")) },
    }
}

fn timed_out(phase: Phase, elapsed: crate::clock::Elapsed) -> Ending {
    match phase {
        Phase::Act | Phase::Wait | Phase::Verify => Ending::Failed {
            phase,
            reason: format!(
                "recovery did not complete: {phase} {elapsed} (raise timeouts.{phase} if that is expected)"
            ),
        },
        _ => Ending::Error { phase, reason: format!("{phase} {elapsed} (raise timeouts.{phase} if that is expected)") },
    }
}

pub fn drill_ref(plan: &DrillPlan) -> DrillRef {
    DrillRef { name: plan.name.clone(), kind: plan.kind().to_string(), spec_sha256: plan.spec_sha256.clone() }
}

impl Runner {
    /// Runs `plan` with its registered drill.
    pub async fn run(&self, plan: &DrillPlan, scenario: Option<&ScenarioRef>) -> RunResult {
        self.run_with(plan, plan.params.instantiate(), scenario).await
    }

    /// Runs `plan` with the given drill implementation.
    pub async fn run_with(
        &self,
        plan: &DrillPlan,
        mut drill: Box<dyn Drill>,
        scenario: Option<&ScenarioRef>,
    ) -> RunResult {
        let run_id = new_run_id();
        let span = tracing::info_span!("run", drill = %plan.name, kind = plan.kind(), run_id = %run_id);
        async move {
            let ctx = RunContext::new(run_id.clone(), self.clock, self.data_dir.clone(), self.progress.clone());
            self.progress.run_started(&plan.name, &run_id);
            let mut run = Run { runner: self, timeline: Timeline::new(self.clock.now()), marker: None, claim: None };
            let ending = run.drive(plan, drill.as_mut(), &ctx, scenario).await;
            let cleanup = run.cleanup(plan, drill.as_mut(), &ctx).await;
            run.timeline.ended = Some(self.clock.now());
            let outcome = outcome(plan, &ctx, run.timeline, ending, cleanup, self.trigger.clone(), scenario.cloned());
            self.progress.run_finished(&plan.name, outcome.verdict, &outcome.reason);
            let mut recorded =
                self.ledger.append(&Entry::Outcome(Box::new(outcome.clone()))).await.map_err(|e| e.to_string());
            match (&mut recorded, run.marker) {
                (Ok(_), Some(m)) => m.remove(),
                (Err(e), Some(mut m)) => {
                    m.keep_outcome(&outcome);
                    e.push_str("; the outcome is kept in the run marker and the next run records it");
                    tracing::error!("the outcome of run {run_id} could not be recorded: {e}");
                }
                (Err(e), None) => tracing::error!("the outcome of run {run_id} could not be recorded: {e}"),
                (Ok(_), None) => {}
            }
            RunResult { outcome, recorded }
        }
        .instrument(span)
        .await
    }
}

/// Measures and decides: the outcome record of a run.
pub fn outcome(
    plan: &DrillPlan,
    ctx: &RunContext,
    mut timeline: Timeline,
    ending: Ending,
    cleanup: CleanupReport,
    trigger: Trigger,
    scenario: Option<ScenarioRef>,
) -> Outcome {
    let reported = ctx.reported();
    let mut warnings = reported.warnings;
    timeline.marks = reported.marks;
    let recovers = plan.params.measures_recovery();
    let rto = measure::rto(&timeline).filter(|_| recovers);
    let rpo = match (timeline.t0, &reported.recovery_point) {
        (Some(t0), Some(point)) => {
            let r = measure::rpo(t0, point);
            if let Some(skew) = r.skew {
                warnings.push(format!(
                    "the recovery point is {} after t0: the clock of whatever wrote it runs ahead of this machine's; RPO reported as 0",
                    measure::human(skew)
                ));
            }
            Some(r.rpo)
        }
        _ => None,
    };
    let targets = measure::compare(&plan.targets, rto, rpo);
    let decision = measure::decide(&ending, &targets, cleanup.error.as_deref());
    let checks = match ending {
        Ending::Completed(checks) => checks,
        _ => Vec::new(),
    };
    let reason = match decision.reasons.first() {
        Some(r) => r.clone(),
        None => summary(recovers, rto, rpo, &targets),
    };
    Outcome {
        run_id: ctx.run_id.clone(),
        drill: drill_ref(plan),
        scenario,
        trigger,
        tool_version: TOOL_VERSION.to_string(),
        target: reported.target,
        labels: plan.labels.clone(),
        verdict: decision.verdict,
        reason,
        timeline,
        rto_ms: rto,
        rpo_ms: rpo,
        recovery_point: reported.recovery_point,
        targets,
        checks,
        details: reported.details,
        warnings,
        errors: if decision.verdict == Verdict::Passed { Vec::new() } else { decision.reasons },
        cleanup,
        log: reported.log.into_iter().collect(),
    }
}

fn summary(
    recovers: bool,
    rto: Option<std::time::Duration>,
    rpo: Option<std::time::Duration>,
    targets: &[measure::TargetResult],
) -> String {
    let mut parts = vec![if recovers { "recovered and verified" } else { "every check passed" }.to_string()];
    for (name, value) in [("rto", rto), ("rpo", rpo)] {
        match (value, targets.iter().find(|t| t.figure == name)) {
            (_, Some(t)) => parts.push(t.explain()),
            (Some(v), None) => parts.push(format!("{} {} (no target)", name.to_uppercase(), measure::human(v))),
            (None, None) => {}
        }
    }
    parts.join("; ")
}

/// Builds the marker-less context the janitor uses to clean up after a dead run.
pub fn janitor_context(runner: &Runner, run_id: &str) -> RunContext {
    RunContext::new(run_id.to_string(), runner.clock, runner.data_dir.clone(), runner.progress.clone())
}
