//! `firedrill run`: a drill or scenario now, in the foreground.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::{Global, RunOutput};
use crate::clock::Clock;
use crate::engine::{Abort, Runner, janitor, scenario};
use crate::ledger::record::{Outcome, Trigger};
use crate::ledger::{Appended, Ledger};
use crate::measure::human;
use crate::notify::{self, Notifier};
use crate::plan::{DrillPlan, ScenarioPlan};
use crate::progress::{Lines, Progress, Quiet, Terminal};
use crate::spec::Catalog;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A drill or scenario file, or the name of one in drills/ or scenarios/.
    pub target: String,
    /// Print the plan and what would change, run the read-only preflight, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short, long, value_enum, default_value_t = RunOutput::Text)]
    pub output: RunOutput,
    /// Who is running this (recorded as the operator).
    #[arg(long)]
    pub operator: Option<String>,
    /// More directories of drills that scenarios may name.
    #[arg(long = "drills")]
    pub drills: Vec<PathBuf>,
}

enum Target {
    Drill(Arc<DrillPlan>),
    Scenario(Arc<ScenarioPlan>),
}

/// Loads the target and every drill it may name; fails if any file is invalid.
fn load(args: &RunArgs) -> anyhow::Result<Target> {
    let as_path = Path::new(&args.target);
    let mut paths = args.drills.clone();
    let by_name = !as_path.is_file();
    if by_name {
        paths.extend(super::default_spec_paths());
    } else {
        paths.push(as_path.to_path_buf());
        let sibling = as_path.parent().and_then(Path::parent).map(|p| p.join("drills"));
        paths.extend(sibling.into_iter().chain([PathBuf::from("drills")]).filter(|p| p.is_dir()));
    }
    let catalog = Catalog::load(&paths).map_err(|e| anyhow::anyhow!("{e}\nnothing was run"))?;
    if by_name {
        return match (catalog.drill(&args.target), catalog.scenario(&args.target)) {
            (Some(d), None) => Ok(Target::Drill(d.clone())),
            (None, Some(s)) => Ok(Target::Scenario(s.clone())),
            (Some(_), Some(_)) => {
                anyhow::bail!("`{}` names both a drill and a scenario: give the file instead", args.target)
            }
            (None, None) => {
                anyhow::bail!("no drill or scenario file or name `{}` (looked in drills/ and scenarios/)", args.target)
            }
        };
    }
    let canonical = as_path.canonicalize()?;
    let same = |f: &Path| f.canonicalize().ok().as_ref() == Some(&canonical);
    if let Some(s) = catalog.scenarios.iter().find(|s| same(&s.file)) {
        return Ok(Target::Scenario(s.clone()));
    }
    catalog
        .drills
        .iter()
        .find(|d| same(&d.file))
        .cloned()
        .map(Target::Drill)
        .context("the file holds no drill or scenario")
}

fn progress(output: RunOutput) -> Arc<dyn Progress> {
    match output {
        RunOutput::Json => Arc::new(Quiet),
        RunOutput::Text if std::io::stderr().is_terminal() => Arc::new(Terminal::new()),
        RunOutput::Text => Arc::new(Lines::new()),
    }
}

/// First Ctrl-C or SIGTERM aborts the run (cleanup still runs); a second one exits at once,
/// leaving the cleanup to the next run's janitor.
fn handle_signals(abort: Abort) {
    tokio::spawn(async move {
        use std::io::Write;
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        let mut seen = 0;
        loop {
            let name = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT (Ctrl-C)" };
            seen += 1;
            // Act first and write without panicking: stderr may be a pipe nobody reads any more.
            if seen > 1 {
                let _ = writeln!(
                    std::io::stderr(),
                    "firedrill: {name} again: exiting now; the next run's janitor will finish the cleanup"
                );
                std::process::exit(130);
            }
            abort.trigger(format!("stopped by {name}"));
            let _ =
                writeln!(std::io::stderr(), "firedrill: {name}: aborting, cleaning up (send it again to exit at once)");
        }
    });
}

pub async fn run(global: &Global, args: RunArgs) -> anyhow::Result<i32> {
    let target = load(&args)?;
    let data_dir = global.data_dir();
    let clock = Clock::system();
    if args.dry_run {
        return dry_run(&target, &data_dir, clock).await;
    }
    // Read before anything runs: a bad setting is bad input, not something to find out after
    // the drill (the error names the variable, never the URL).
    let notifier = notify::from_env().map_err(|e| anyhow::anyhow!("{e}\nnothing was run"))?;
    let ledger = Arc::new(Ledger::open(&global.ledger_url(), &data_dir, clock)?);
    let abort = Abort::new();
    handle_signals(abort.clone());
    let operator = args.operator.clone().or_else(|| match &target {
        Target::Scenario(s) => s.operator.clone(),
        Target::Drill(_) => None,
    });
    let runner = Runner {
        clock,
        ledger: ledger.clone(),
        data_dir: data_dir.clone(),
        progress: progress(args.output),
        abort,
        trigger: Trigger { by: "cli".into(), operator },
    };
    match ledger.flush_spool().await {
        Ok(0) => {}
        Ok(n) => eprintln!("firedrill: appended {n} spooled record(s) to {}", ledger.url()),
        Err(e) => eprintln!("firedrill: spooled records stay spooled: {e}"),
    }
    for cleaned in janitor::sweep(&runner).await {
        eprintln!("firedrill: janitor: {} run {}: {}", cleaned.drill.name, cleaned.run_id, cleaned.reason);
        for action in &cleaned.cleanup.actions {
            eprintln!("  {action}");
        }
    }
    match target {
        Target::Drill(plan) => {
            let result = runner.run(&plan, None).await;
            tell(notifier.as_ref(), &ledger, [&result.outcome]).await;
            match args.output {
                RunOutput::Json => println!("{}", serde_json::to_string_pretty(&result.outcome)?),
                RunOutput::Text => print!("{}", outcome_text(&result.outcome, &result.recorded)),
            }
            Ok(result.outcome.verdict.exit_code())
        }
        Target::Scenario(plan) => {
            let result = scenario::run(&runner, &plan).await;
            tell(notifier.as_ref(), &ledger, result.runs.iter().map(|r| &r.outcome)).await;
            match args.output {
                RunOutput::Json => {
                    let runs: Vec<&Outcome> = result.runs.iter().map(|r| &r.outcome).collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({"scenario": result.outcome, "runs": runs}))?
                    )
                }
                RunOutput::Text => {
                    for r in &result.runs {
                        print!("{}", outcome_text(&r.outcome, &r.recorded));
                        println!();
                    }
                    let o = &result.outcome;
                    println!("scenario {}: {} — {}", o.name, o.verdict, o.reason);
                    for (i, s) in o.steps.iter().enumerate() {
                        let v = s.verdict.map(|v| v.to_string()).unwrap_or_else(|| "skipped".into());
                        println!(
                            "  {}. {:<24} {:<8} {}",
                            i + 1,
                            s.drill,
                            v,
                            if s.required { "" } else { "(optional)" }
                        );
                    }
                    println!("  recorded    {}", recorded_text(&result.recorded));
                }
            }
            Ok(result.outcome.verdict.exit_code())
        }
    }
}

/// Notifies about each recorded outcome, when notifications are configured. Says on stderr who
/// was told (stdout stays the run's result); never changes the exit code.
async fn tell<'a>(notifier: Option<&Notifier>, ledger: &Ledger, outcomes: impl IntoIterator<Item = &'a Outcome>) {
    let Some(notifier) = notifier else { return };
    for outcome in outcomes {
        for d in notify::after_run(notifier, ledger, outcome).await {
            eprintln!("firedrill: {} {}: {}", outcome.drill.name, outcome.run_id, d.describe());
        }
    }
}

async fn dry_run(target: &Target, data_dir: &Path, clock: Clock) -> anyhow::Result<i32> {
    let drills: Vec<Arc<DrillPlan>> = match target {
        Target::Drill(d) => vec![d.clone()],
        Target::Scenario(s) => {
            println!(
                "scenario {} ({}): {} steps, on failure: {:?}",
                s.name,
                s.file.display(),
                s.steps.len(),
                s.on_failure
            );
            s.steps.iter().map(|st| st.drill.clone()).collect()
        }
    };
    let mut code = 0;
    for plan in drills {
        println!("drill {} ({}), from {}", plan.name, plan.kind(), plan.file.display());
        print!("{}", serde_saphyr::to_string(&*plan).unwrap_or_default());
        let mut drill = plan.params.instantiate();
        println!("would change:");
        for c in drill.planned_changes() {
            println!("  - {c}");
        }
        let ctx = crate::engine::RunContext::new("dry-run".into(), clock, data_dir.to_path_buf(), Arc::new(Quiet));
        match clock.timeout(plan.timeouts.preflight, drill.preflight(&ctx)).await {
            Ok(Ok(())) => println!("preflight: ok (nothing was changed)"),
            Ok(Err(e)) => {
                println!("preflight: {e} (nothing was changed)");
                code = 2;
            }
            Err(e) => {
                println!("preflight: {e} (nothing was changed)");
                code = 2;
            }
        }
        for w in ctx.reported().warnings {
            println!("warning: {w}");
        }
        println!();
    }
    Ok(code)
}

pub fn recorded_text(recorded: &Result<Appended, String>) -> String {
    match recorded {
        Ok(Appended::Chained { seq, sha256 }) => {
            format!("ledger record {seq} (sha256 {})", &sha256[..16])
        }
        Ok(Appended::Spooled { cause }) => {
            format!("spooled to local disk, the ledger was unreachable ({cause}); the next run appends it")
        }
        Err(e) => format!("NOT RECORDED: {e}"),
    }
}

/// A run's result for a person.
pub fn outcome_text(o: &Outcome, recorded: &Result<Appended, String>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{} ({}): {} — {}", o.drill.name, o.drill.kind, o.verdict, o.reason);
    let _ = writeln!(s, "  run         {}", o.run_id);
    let phases: Vec<String> = o
        .timeline
        .phases
        .iter()
        .map(|p| format!("{} {}", p.phase, p.ended.since(p.started).map(human).unwrap_or_default()))
        .collect();
    let _ = writeln!(s, "  phases      {}", phases.join(" | "));
    if let Some(t0) = o.timeline.t0 {
        let verified = o.timeline.verified.map(|at| ("verified", at));
        let marks: Vec<String> = o
            .timeline
            .marks
            .iter()
            .map(|m| (m.name.as_str(), m.at))
            .chain(verified)
            .filter(|(_, at)| *at >= t0)
            .map(|(name, at)| format!("{name} +{}", at.since(t0).map(human).unwrap_or_default()))
            .collect();
        if !marks.is_empty() {
            let _ = writeln!(s, "  after t0    {}", marks.join(", "));
        }
    }
    let figure = |name: &str, v: Option<std::time::Duration>| {
        let target = o.targets.iter().find(|t| t.figure == name);
        match (v, target) {
            (Some(v), Some(t)) => {
                format!("{} (target {}: {})", human(v), human(t.target_ms), if t.met { "met" } else { "MISSED" })
            }
            (Some(v), None) => format!("{} (no target)", human(v)),
            (None, Some(t)) => format!("not measured (target {}: MISSED)", human(t.target_ms)),
            (None, None) => "not measured".into(),
        }
    };
    let _ = writeln!(s, "  RTO         {}", figure("rto", o.rto_ms));
    let mut rpo = figure("rpo", o.rpo_ms);
    if let Some(p) = &o.recovery_point {
        let _ = write!(rpo, " — {} ({})", p.method.describe(), p.source);
    }
    let _ = writeln!(s, "  RPO         {rpo}");
    for c in &o.checks {
        let _ = writeln!(s, "  {} {}", if c.passed { "✓" } else { "✗" }, c.explain());
    }
    for w in &o.warnings {
        let _ = writeln!(s, "  warning     {w}");
    }
    for e in o.errors.iter().skip(1) {
        let _ = writeln!(s, "  error       {e}");
    }
    let cleanup = if o.cleanup.done && o.cleanup.actions.is_empty() {
        "nothing to clean up".to_string()
    } else if o.cleanup.done {
        o.cleanup.actions.join("; ")
    } else {
        format!("INCOMPLETE: {}", o.cleanup.error.clone().unwrap_or_default())
    };
    let _ = writeln!(s, "  cleanup     {cleanup}");
    let _ = writeln!(s, "  recorded    {}", recorded_text(recorded));
    s
}
