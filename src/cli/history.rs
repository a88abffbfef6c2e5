//! `firedrill history` and `firedrill report`: reading runs back from the ledger.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::Global;
use super::output::{Format, Tabular, print_rows};
use crate::clock::{Clock, Timestamp};
use crate::ledger::Ledger;
use crate::ledger::record::{Entry, Outcome, Record, ScenarioOutcome};
use crate::measure::{Verdict, human};
use crate::report;

fn parse_age(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration ({e}): write e.g. 90d, 24h, 30m"))
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Only runs of this drill (or scenario).
    #[arg(long)]
    pub drill: Option<String>,
    /// Only runs that started within this long before now (e.g. 90d).
    #[arg(long, value_parser = parse_age)]
    pub since: Option<Duration>,
    /// At most this many runs, the newest.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// A run as `history` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    started: Timestamp,
    drill: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<String>,
    verdict: Verdict,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    rto_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    rto_target_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    rpo_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    rpo_target_ms: Option<Duration>,
    run_id: String,
    reason: String,
}

fn against(v: Option<Duration>, t: Option<Duration>) -> String {
    match (v, t) {
        (Some(v), Some(t)) => format!("{} / {}", human(v), human(t)),
        (Some(v), None) => human(v),
        (None, Some(t)) => format!("– / {}", human(t)),
        (None, None) => "–".into(),
    }
}

impl Tabular for Row {
    fn headers() -> Vec<&'static str> {
        vec!["STARTED", "DRILL", "VERDICT", "RTO / TARGET", "RPO / TARGET", "RUN", "REASON"]
    }
    fn cells(&self) -> Vec<String> {
        let name = match &self.scenario {
            Some(s) => format!("{} ({s})", self.drill),
            None => self.drill.clone(),
        };
        let mut reason = self.reason.clone();
        if reason.chars().count() > 80 {
            reason = reason.chars().take(77).collect::<String>() + "...";
        }
        vec![
            self.started.to_string(),
            name,
            self.verdict.to_string(),
            against(self.rto_ms, self.rto_target_ms),
            against(self.rpo_ms, self.rpo_target_ms),
            self.run_id.chars().take(13).collect(),
            reason,
        ]
    }
}

fn row(o: &Outcome) -> Row {
    let target = |f: &str| o.targets.iter().find(|t| t.figure == f).map(|t| t.target_ms);
    Row {
        started: o.timeline.started,
        drill: o.drill.name.clone(),
        kind: o.drill.kind.clone(),
        scenario: o.scenario.as_ref().map(|s| s.name.clone()),
        verdict: o.verdict,
        rto_ms: o.rto_ms,
        rto_target_ms: target("rto"),
        rpo_ms: o.rpo_ms,
        rpo_target_ms: target("rpo"),
        run_id: o.run_id.clone(),
        reason: o.reason.clone(),
    }
}

fn open(global: &Global) -> anyhow::Result<Ledger> {
    Ok(Ledger::open(&global.ledger_url(), &global.data_dir(), Clock::system())?)
}

/// The outcomes and scenario outcomes in `records` that started at or after `from`.
pub fn runs_since(records: &[Record], from: Option<Timestamp>) -> (Vec<&Outcome>, Vec<&ScenarioOutcome>) {
    let mut outcomes = Vec::new();
    let mut scenarios = Vec::new();
    for r in records {
        match &r.entry {
            Entry::Outcome(o) if from.is_none_or(|f| o.timeline.started >= f) => outcomes.push(o.as_ref()),
            Entry::Scenario(s) if from.is_none_or(|f| s.started >= f) => scenarios.push(s.as_ref()),
            _ => {}
        }
    }
    (outcomes, scenarios)
}

pub async fn history(global: &Global, args: HistoryArgs) -> anyhow::Result<i32> {
    let ledger = open(global)?;
    let records = ledger.records().await?;
    let now = Clock::system().now();
    let (outcomes, _) = runs_since(&records, args.since.map(|d| now - d));
    let mut rows: Vec<Row> = outcomes
        .into_iter()
        .filter(|o| {
            args.drill.as_ref().is_none_or(|d| &o.drill.name == d || o.scenario.as_ref().is_some_and(|s| &s.name == d))
        })
        .map(row)
        .collect();
    if let Some(limit) = args.limit {
        rows.drain(..rows.len().saturating_sub(limit));
    }
    if rows.is_empty() && args.output == Format::Table {
        eprintln!(
            "no runs recorded in {}{}",
            ledger.url(),
            args.since.map(|d| format!(" in the last {}", human(d))).unwrap_or_default()
        );
    }
    print_rows(&rows, args.output);
    Ok(0)
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Md,
    Json,
    Junit,
    Csv,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The period: runs that started within this long before now.
    #[arg(long, value_parser = parse_age, default_value = "30d")]
    pub since: Duration,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn report(global: &Global, args: ReportArgs) -> anyhow::Result<i32> {
    let ledger = open(global)?;
    let chain = ledger.verify(None).await?;
    let records = ledger.records().await?;
    let now = Clock::system().now();
    let from = now - args.since;
    let (runs, scenarios) = runs_since(&records, Some(from));
    let data = report::ReportData {
        ledger: ledger.url(),
        from,
        to: now,
        generated: now,
        chain: &chain,
        drills: report::summarize(&runs),
        runs,
        scenarios,
    };
    let text = match args.format {
        ReportFormat::Md => report::markdown(&data),
        ReportFormat::Json => report::json(&data),
        ReportFormat::Junit => report::junit(&data),
        ReportFormat::Csv => report::csv(&data),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(if chain.ok() { 0 } else { 1 })
}
