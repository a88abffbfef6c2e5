//! `firedrill history` and `firedrill report`: reading runs back from the ledger.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Global;
use super::output::{Format, Tabular, print_rows};
use crate::clock::{Clock, Timestamp};
use crate::ledger::record::{Entry, Outcome, Record, ScenarioOutcome};
use crate::ledger::{Ledger, RunSummary};
use crate::measure::human;
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

fn against(v: Option<Duration>, t: Option<Duration>) -> String {
    match (v, t) {
        (Some(v), Some(t)) => format!("{} / {}", human(v), human(t)),
        (Some(v), None) => human(v),
        (None, Some(t)) => format!("– / {}", human(t)),
        (None, None) => "–".into(),
    }
}

impl Tabular for RunSummary {
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

fn open(global: &Global) -> anyhow::Result<Ledger> {
    Ok(Ledger::open_read(&global.ledger_url(), &global.data_dir(), Clock::system())?)
}

/// The outcomes and scenario outcomes in `records` that started at or after `from`.
pub fn runs_since(records: &[Record], from: Timestamp) -> (Vec<&Outcome>, Vec<&ScenarioOutcome>) {
    let mut outcomes = Vec::new();
    let mut scenarios = Vec::new();
    for r in records {
        match &r.entry {
            Entry::Outcome(o) if o.timeline.started >= from => outcomes.push(o.as_ref()),
            Entry::Scenario(s) if s.started >= from => scenarios.push(s.as_ref()),
            _ => {}
        }
    }
    (outcomes, scenarios)
}

pub async fn history(global: &Global, args: HistoryArgs) -> anyhow::Result<i32> {
    let ledger = open(global)?;
    let now = Clock::system().now();
    let from = args.since.map(|d| now - d);
    let mut rows: Vec<RunSummary> = ledger
        .summaries()
        .await?
        .into_iter()
        .filter(|r| from.is_none_or(|f| r.started >= f))
        .filter(|r| args.drill.as_ref().is_none_or(|d| &r.drill == d || r.scenario.as_ref() == Some(d)))
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
    let now = Clock::system().now();
    let from = now - args.since;
    // Every record is read: an outcome may be appended long after its run started (the janitor's,
    // a spooled one), so the chain's order is not the runs' order.
    let records = ledger.records().await?;
    let (runs, scenarios) = runs_since(&records, from);
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
