//! The runner and the drill contract, with a scripted drill under tokio's paused clock: every
//! figure is exact to the millisecond.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use firedrill::clock::Clock;
use firedrill::drills::{DrillParams, etcd_restore};
use firedrill::engine::marker::{Marker, MarkerData};
use firedrill::engine::{Abort, Claim, Drill, DrillError, RunContext, Runner, janitor, scenario};
use firedrill::ledger::Ledger;
use firedrill::ledger::record::{Entry, Intent, Owner, Trigger};
use firedrill::measure::{Check, Phase, RecoveryPoint, RpoMethod, Targets, Timeline, Verdict};
use firedrill::plan::{DrillPlan, OnFailure, ScenarioPlan, Step as PlanStep};
use firedrill::progress::Quiet;
use serde_json::json;

/// What one phase of the scripted drill does.
#[derive(Clone, Copy, Debug)]
enum Does {
    Take(u64),
    Fail,
    Break,
    Hang,
}

#[derive(Clone, Debug)]
struct Script {
    preflight: Does,
    setup: Does,
    act: Does,
    wait: Does,
    verify: Does,
    checks_pass: bool,
    /// The recovery point, this long before t0.
    data_age: Option<Duration>,
    cleanup_breaks: bool,
}

impl Script {
    fn passing() -> Self {
        Self {
            preflight: Does::Take(100),
            setup: Does::Take(1_000),
            act: Does::Take(3_000),
            wait: Does::Take(2_000),
            verify: Does::Take(500),
            checks_pass: true,
            data_age: Some(Duration::from_secs(600)),
            cleanup_breaks: false,
        }
    }
}

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Scripted {
    script: Script,
    calls: Calls,
}

async fn perform(does: Does, what: &str) -> Result<(), DrillError> {
    match does {
        Does::Take(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        }
        Does::Fail => Err(DrillError::Failed(format!("{what} found the backup unusable"))),
        Does::Break => Err(DrillError::Error(format!("{what} could not reach the target"))),
        Does::Hang => std::future::pending().await,
    }
}

#[async_trait]
impl Drill for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn planned_changes(&self) -> Vec<String> {
        vec!["create scratch thing".into()]
    }
    async fn preflight(&mut self, _: &RunContext) -> Result<(), DrillError> {
        self.calls.push("preflight");
        perform(self.script.preflight, "preflight").await
    }
    fn claim(&mut self, ctx: &RunContext) -> Result<Claim, DrillError> {
        self.calls.push("claim");
        Ok(json!({"scratch": format!("thing-{}", ctx.run_id)}))
    }
    async fn setup(&mut self, _: &RunContext) -> Result<(), DrillError> {
        self.calls.push("setup");
        perform(self.script.setup, "setup").await
    }
    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        self.calls.push("act");
        if let Some(age) = self.script.data_age {
            ctx.recovery_point(RecoveryPoint { at: ctx.now() - age, method: RpoMethod::Canary, source: "test".into() });
        }
        ctx.mark("acting");
        perform(self.script.act, "act").await
    }
    async fn wait(&mut self, _: &RunContext) -> Result<(), DrillError> {
        self.calls.push("wait");
        perform(self.script.wait, "wait").await
    }
    async fn verify(&mut self, _: &RunContext) -> Result<Vec<Check>, DrillError> {
        self.calls.push("verify");
        perform(self.script.verify, "verify").await?;
        Ok(vec![Check::equal("answer", 42, if self.script.checks_pass { 42 } else { 41 })])
    }
    async fn cleanup(&mut self, claim: &Claim, _: &RunContext) -> Result<Vec<String>, DrillError> {
        self.calls.push(format!("cleanup {}", claim["scratch"].as_str().unwrap_or_default()));
        if self.script.cleanup_breaks {
            return Err(DrillError::Error("the scratch thing is stuck".into()));
        }
        Ok(vec!["removed scratch thing".into()])
    }
}

fn plan(name: &str, targets: Targets) -> DrillPlan {
    let params = etcd_restore::Params {
        source: etcd_restore::Source::Store { url: "memory://unused".into(), pattern: "*.db".into() },
        expect_keys: vec![],
        prefix_counts: vec![],
        canary_key: None,
        tools: Default::default(),
        allow_missing_hash: false,
    };
    let params = DrillParams::EtcdRestore(params);
    let mut timeouts = params.default_timeouts();
    timeouts.act = Duration::from_secs(10);
    timeouts.wait = Duration::from_secs(10);
    DrillPlan {
        name: name.into(),
        description: None,
        labels: BTreeMap::new(),
        file: PathBuf::from(format!("drills/{name}.yaml")),
        spec_sha256: "0".repeat(64),
        targets,
        schedule: None,
        timeouts,
        params,
    }
}

struct Setup {
    runner: Runner,
    ledger: Arc<Ledger>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed("2026-11-21T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    let url = format!("memory://engine-{}", uuid::Uuid::now_v7());
    let ledger = Arc::new(Ledger::open(&url, dir.path(), clock).unwrap());
    let runner = Runner {
        clock,
        ledger: ledger.clone(),
        data_dir: dir.path().to_path_buf(),
        progress: Arc::new(Quiet),
        abort: Abort::new(),
        trigger: Trigger { by: "test".into(), operator: Some("tester".into()) },
    };
    Setup { runner, ledger, _dir: dir }
}

fn targets(rto: u64, rpo: u64) -> Targets {
    Targets { rto_ms: Some(Duration::from_secs(rto)), rpo_ms: Some(Duration::from_secs(rpo)) }
}

async fn run(s: &Setup, script: Script, plan: &DrillPlan) -> (firedrill::ledger::record::Outcome, Calls) {
    let calls = Calls::default();
    let drill = Box::new(Scripted { script, calls: calls.clone() });
    let result = s.runner.run_with(plan, drill, None).await;
    assert!(result.recorded.is_ok(), "{:?}", result.recorded);
    (result.outcome, calls)
}

#[tokio::test(start_paused = true)]
async fn a_passing_run_measures_to_the_millisecond_and_records_intent_before_outcome() {
    let s = setup();
    let (o, calls) = run(&s, Script::passing(), &plan("d", targets(10, 3600))).await;
    assert_eq!(o.verdict, Verdict::Passed, "{}", o.reason);
    assert_eq!(o.rto_ms, Some(Duration::from_millis(5_500)), "act 3s + wait 2s + verify 0.5s");
    assert_eq!(o.rpo_ms, Some(Duration::from_secs(600)));
    assert_eq!(o.reason, "recovered and verified; RTO 5.500s within the target 10s; RPO 10m within the target 1h");
    let phases: Vec<Phase> = o.timeline.phases.iter().map(|p| p.phase).collect();
    assert_eq!(phases, Phase::ALL);
    assert_eq!(o.timeline.t0.unwrap().to_string(), "2026-11-21T00:00:01.100Z");
    assert_eq!(o.timeline.marks[0].name, "acting");
    assert_eq!(
        calls.all(),
        ["preflight", "claim", "setup", "act", "wait", "verify", format!("cleanup thing-{}", o.run_id).as_str()]
    );

    let records = s.ledger.records().await.unwrap();
    assert_eq!(records.len(), 2);
    let Entry::Intent(intent) = &records[0].entry else { panic!("first record is not the intent: {:?}", records[0]) };
    assert_eq!(intent.run_id, o.run_id);
    assert_eq!(intent.claim, json!({"scratch": format!("thing-{}", o.run_id)}));
    assert_eq!(intent.changes, ["create scratch thing"]);
    assert_eq!(intent.trigger.operator.as_deref(), Some("tester"));
    assert!(matches!(&records[1].entry, Entry::Outcome(out) if out.run_id == o.run_id));
    assert!(Marker::list(&s.runner.data_dir).is_empty(), "the marker goes once the outcome is recorded");
    assert!(s.ledger.verify(None).await.unwrap().ok());
}

#[tokio::test(start_paused = true)]
async fn a_recovery_phase_that_times_out_fails_and_still_cleans_up() {
    let s = setup();
    let mut p = plan("d", targets(60, 3600));
    p.timeouts.wait = Duration::from_secs(2);
    let (o, calls) = run(&s, Script { wait: Does::Hang, ..Script::passing() }, &p).await;
    assert_eq!(o.verdict, Verdict::Failed);
    assert!(
        o.reason.starts_with("failed during wait: recovery did not complete: wait timed out after 2s"),
        "{}",
        o.reason
    );
    let wait = o.timeline.phases.iter().find(|p| p.phase == Phase::Wait).unwrap();
    assert_eq!((wait.ended.millis() - wait.started.millis(), wait.ok), (2_000, false));
    assert_eq!(o.rto_ms, None, "nothing was verified");
    assert!(calls.all().last().unwrap().starts_with("cleanup"));
    assert!(o.cleanup.done);
}

#[tokio::test(start_paused = true)]
async fn a_preflight_error_changes_nothing_and_records_only_the_outcome() {
    let s = setup();
    let (o, calls) = run(&s, Script { preflight: Does::Break, ..Script::passing() }, &plan("d", targets(60, 60))).await;
    assert_eq!(o.verdict, Verdict::Error);
    assert_eq!(o.verdict.exit_code(), 2);
    assert_eq!(o.reason, "could not run (preflight): preflight could not reach the target");
    assert_eq!(calls.all(), ["preflight"], "no claim, no setup, no cleanup");
    assert_eq!(o.cleanup.actions, ["nothing was claimed, so nothing to clean up"]);
    let records = s.ledger.records().await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(matches!(records[0].entry, Entry::Outcome(_)));
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_claim_is_cleaned_up() {
    let s = setup();
    let (o, calls) = run(&s, Script { act: Does::Fail, ..Script::passing() }, &plan("d", targets(60, 60))).await;
    assert_eq!(o.verdict, Verdict::Failed);
    assert_eq!(o.reason, "failed during act: act found the backup unusable");
    assert_eq!(calls.all().len(), 5, "{:?}", calls.all());
    assert!(calls.all()[4].starts_with("cleanup"));
    assert_eq!(o.rpo_ms, Some(Duration::from_secs(600)), "the recovery point is still reported");
}

#[tokio::test(start_paused = true)]
async fn an_abort_stops_the_running_phase_cleans_up_and_records_aborted() {
    let s = setup();
    let abort = s.runner.abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        abort.trigger("stopped by SIGTERM");
    });
    let (o, calls) = run(&s, Script { wait: Does::Hang, ..Script::passing() }, &plan("d", targets(60, 60))).await;
    assert_eq!(o.verdict, Verdict::Aborted);
    assert_eq!(o.verdict.exit_code(), 3);
    assert_eq!(o.reason, "aborted during wait: stopped by SIGTERM");
    let wait = o.timeline.phases.iter().find(|p| p.phase == Phase::Wait).unwrap();
    assert_eq!(wait.ended.millis() - o.timeline.started.millis(), 5_000);
    assert!(calls.all().last().unwrap().starts_with("cleanup"));
    assert!(o.cleanup.done, "cleanup is not aborted");
}

#[tokio::test(start_paused = true)]
async fn failed_checks_and_missed_targets_fail_the_run() {
    let s = setup();
    let (o, _) = run(&s, Script { checks_pass: false, ..Script::passing() }, &plan("d", targets(60, 3600))).await;
    assert_eq!(o.verdict, Verdict::Failed);
    assert_eq!(o.reason, "check failed: answer: expected 42, observed 41");
    assert_eq!(o.rto_ms, None);

    let (o, _) = run(&s, Script::passing(), &plan("d", targets(5, 300))).await;
    assert_eq!(o.verdict, Verdict::Failed);
    assert_eq!(o.errors, ["RTO 5.500s exceeds the target 5s", "RPO 10m exceeds the target 5m"]);
}

#[tokio::test(start_paused = true)]
async fn an_unmeasurable_rpo_target_is_not_met() {
    let s = setup();
    let (o, _) = run(&s, Script { data_age: None, ..Script::passing() }, &plan("d", targets(60, 60))).await;
    assert_eq!(o.verdict, Verdict::Failed);
    assert_eq!(o.reason, "RPO target 1m set, but no RPO could be measured");
}

#[tokio::test(start_paused = true)]
async fn cleanup_that_does_not_finish_makes_a_pass_an_error() {
    let s = setup();
    let (o, _) = run(&s, Script { cleanup_breaks: true, ..Script::passing() }, &plan("d", targets(60, 3600))).await;
    assert_eq!(o.verdict, Verdict::Error);
    assert_eq!(o.reason, "cleanup did not finish: the scratch thing is stuck");
    assert!(!o.cleanup.done);
}

#[tokio::test(start_paused = true)]
async fn a_scenario_runs_steps_in_order_stops_on_failure_and_records_itself() {
    let s = setup();
    let step = |name: &str, required| PlanStep { drill: Arc::new(plan(name, targets(60, 3600))), required };
    let sc = ScenarioPlan {
        name: "gameday".into(),
        description: None,
        labels: BTreeMap::new(),
        operator: None,
        file: PathBuf::from("scenarios/gameday.yaml"),
        spec_sha256: "1".repeat(64),
        schedule: None,
        steps: vec![step("first", true), step("second", true), step("third", false)],
        min_passed: None,
        on_failure: OnFailure::Stop,
    };
    let make = |p: &DrillPlan| -> Box<dyn Drill> {
        let script =
            if p.name == "second" { Script { verify: Does::Fail, ..Script::passing() } } else { Script::passing() };
        Box::new(Scripted { script, calls: Calls::default() })
    };
    let result = scenario::run_with(&s.runner, &sc, &make).await;
    let o = &result.outcome;
    assert_eq!(o.verdict, Verdict::Failed);
    assert_eq!(o.reason, "required step 2 (second) ended Failed");
    let verdicts: Vec<Option<Verdict>> = o.steps.iter().map(|s| s.verdict).collect();
    assert_eq!(verdicts, [Some(Verdict::Passed), Some(Verdict::Failed), None]);
    assert_eq!(result.runs.len(), 2);
    assert!(result.runs.iter().all(|r| { r.outcome.scenario.as_ref().is_some_and(|s| s.run_id == o.run_id) }));
    let records = s.ledger.records().await.unwrap();
    assert!(matches!(&records.last().unwrap().entry, Entry::Scenario(sc) if sc.run_id == o.run_id));
}

fn marker(s: &Setup, owner: Owner, scratch: &std::path::Path) -> MarkerData {
    let now = s.runner.clock.now();
    let intent = Intent {
        run_id: format!("crashed-{}", owner.pid),
        drill: firedrill::ledger::record::DrillRef {
            name: "nightly".into(),
            kind: "etcd-restore".into(),
            spec_sha256: "0".repeat(64),
        },
        scenario: None,
        trigger: Trigger { by: "cli".into(), operator: None },
        tool_version: "test".into(),
        owner,
        started: now,
        deadline: now + Duration::from_secs(3600),
        targets: Targets::default(),
        changes: vec![],
        claim: json!({"scratchDir": scratch, "memberName": "m"}),
    };
    let mut timeline = Timeline::new(now);
    timeline.t0 = Some(now);
    MarkerData { intent, ledger: s.ledger.url().to_string(), phase: Some(Phase::Wait), timeline, outcome: None }
}

#[tokio::test(start_paused = true)]
async fn the_janitor_records_dead_runs_as_aborted_and_leaves_live_ones_alone() {
    let s = setup();
    let me = firedrill::engine::owner::current();
    let gone = tempfile::tempdir().unwrap();
    let dead = Owner { pid: me.pid + 1_000_000, ..me.clone() };
    let dead_run = Marker::create(&s.runner.data_dir, marker(&s, dead, &gone.path().join("scratch"))).unwrap();
    let live_run = Marker::create(&s.runner.data_dir, marker(&s, me, &gone.path().join("other"))).unwrap();
    let dead_id = dead_run.data.intent.run_id.clone();

    let cleaned = janitor::sweep(&s.runner).await;
    assert_eq!(cleaned.len(), 1);
    let o = &cleaned[0];
    assert_eq!((o.run_id.as_str(), o.verdict), (dead_id.as_str(), Verdict::Aborted));
    assert!(o.reason.starts_with("aborted during wait: the firedrill process (pid"), "{}", o.reason);
    assert!(o.cleanup.done, "{:?}", o.cleanup);
    assert!(o.cleanup.actions[0].contains("already gone"), "{:?}", o.cleanup.actions);
    let records = s.ledger.records().await.unwrap();
    assert!(matches!(&records[..], [r] if matches!(&r.entry, Entry::Outcome(x) if x.run_id == dead_id)));
    let left = Marker::list(&s.runner.data_dir);
    assert_eq!(left.len(), 1, "the live run's marker stays");
    assert_eq!(Marker::peek(&left[0]).unwrap().intent.run_id, live_run.data.intent.run_id);
    assert!(janitor::sweep(&s.runner).await.is_empty(), "a second sweep finds nothing to do");
}

#[tokio::test(start_paused = true)]
async fn the_janitor_records_the_outcome_a_finished_run_could_not_record() {
    let s = setup();
    let me = firedrill::engine::owner::current();
    let gone = tempfile::tempdir().unwrap();
    let mut data = marker(&s, Owner { pid: me.pid + 1_000_001, ..me }, gone.path());
    let Entry::Outcome(mut kept) = serde_json::from_str(include_str!("../../benches/fixtures/outcome.json")).unwrap()
    else {
        panic!("the fixture is an outcome")
    };
    kept.run_id = data.intent.run_id.clone();
    data.outcome = Some(kept.clone());
    Marker::create(&s.runner.data_dir, data).unwrap();

    let cleaned = janitor::sweep(&s.runner).await;
    assert_eq!(cleaned.len(), 1);
    assert_eq!(cleaned[0].verdict, Verdict::Passed, "the run's own verdict, not Aborted");
    let records = s.ledger.records().await.unwrap();
    assert!(matches!(&records[..], [r] if r.entry == Entry::Outcome(kept.clone())));
    assert!(Marker::list(&s.runner.data_dir).is_empty());
}
