//! Reports rendered from ledger records: Markdown for people and auditors, JSON for tools, JUnit
//! XML for CI dashboards, CSV for spreadsheets. Pure: records in, text out.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::ledger::Report as ChainReport;
use crate::ledger::record::{Outcome, ScenarioOutcome};
use crate::measure::{Verdict, human};

/// Everything a report shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportData<'a> {
    pub ledger: &'a str,
    pub from: Timestamp,
    pub to: Timestamp,
    pub generated: Timestamp,
    pub chain: &'a ChainReport,
    pub drills: Vec<DrillSummary>,
    pub runs: Vec<&'a Outcome>,
    pub scenarios: Vec<&'a ScenarioOutcome>,
}

/// One drill's runs in the period.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DrillSummary {
    pub name: String,
    pub kind: String,
    pub runs: usize,
    pub passed: usize,
    pub failed: usize,
    pub error: usize,
    pub aborted: usize,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    pub rto_median_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    pub rto_worst_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    pub rto_target_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    pub rpo_worst_ms: Option<Duration>,
    #[serde(with = "crate::measure::opt_ms", skip_serializing_if = "Option::is_none")]
    pub rpo_target_ms: Option<Duration>,
    pub last_run: Timestamp,
    pub last_verdict: Verdict,
}

fn target(o: &Outcome, figure: &str) -> Option<Duration> {
    o.targets.iter().find(|t| t.figure == figure).map(|t| t.target_ms)
}

/// Per-drill figures over `runs` (in chain order).
pub fn summarize(runs: &[&Outcome]) -> Vec<DrillSummary> {
    let mut by: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in runs {
        by.entry(o.drill.name.as_str()).or_default().push(o);
    }
    by.into_values()
        .map(|rs| {
            let last = rs[rs.len() - 1];
            let count = |v: Verdict| rs.iter().filter(|o| o.verdict == v).count();
            let mut rtos: Vec<Duration> = rs.iter().filter_map(|o| o.rto_ms).collect();
            rtos.sort();
            DrillSummary {
                name: last.drill.name.clone(),
                kind: last.drill.kind.clone(),
                runs: rs.len(),
                passed: count(Verdict::Passed),
                failed: count(Verdict::Failed),
                error: count(Verdict::Error),
                aborted: count(Verdict::Aborted),
                rto_median_ms: rtos.get(rtos.len().saturating_sub(1) / 2).copied().filter(|_| !rtos.is_empty()),
                rto_worst_ms: rtos.last().copied(),
                rto_target_ms: target(last, "rto"),
                rpo_worst_ms: rs.iter().filter_map(|o| o.rpo_ms).max(),
                rpo_target_ms: target(last, "rpo"),
                last_run: last.timeline.started,
                last_verdict: last.verdict,
            }
        })
        .collect()
}

fn opt(d: Option<Duration>) -> String {
    d.map(human).unwrap_or_else(|| "–".into())
}

/// Markdown, for people and auditors.
pub fn markdown(r: &ReportData) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# firedrill report: {} to {}\n", r.from, r.to);
    let _ = writeln!(s, "Generated {} from the evidence ledger `{}`.\n", r.generated, r.ledger);
    let _ = writeln!(s, "## Evidence integrity\n");
    if r.chain.ok() {
        let head = r
            .chain
            .head
            .as_ref()
            .map(|h| format!("record {} with SHA-256 `{}`", h.seq, h.sha256))
            .unwrap_or_else(|| "empty".into());
        let _ = writeln!(
            s,
            "The hash chain of all {} records verified: none was edited, removed, reordered or inserted. Its head is {head}; keep this value to prove later that nothing before it changed (`firedrill evidence verify --expect-head <sha256>`).\n",
            r.chain.records
        );
    } else {
        let _ = writeln!(s, "**The hash chain did not verify.** The records below may have been altered:\n");
        for p in &r.chain.problems {
            let _ = writeln!(s, "- {p}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Drills\n");
    if r.drills.is_empty() {
        let _ = writeln!(s, "No drill ran in this period.\n");
    } else {
        let _ = writeln!(
            s,
            "| drill | type | runs | passed | failed | error | aborted | median RTO | worst RTO | RTO target | worst RPO | RPO target | last |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for d in &r.drills {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} {} |",
                d.name,
                d.kind,
                d.runs,
                d.passed,
                d.failed,
                d.error,
                d.aborted,
                opt(d.rto_median_ms),
                opt(d.rto_worst_ms),
                opt(d.rto_target_ms),
                opt(d.rpo_worst_ms),
                opt(d.rpo_target_ms),
                d.last_verdict,
                d.last_run
            );
        }
        let _ = writeln!(s);
    }
    if !r.scenarios.is_empty() {
        let _ = writeln!(s, "## Scenarios\n");
        for sc in &r.scenarios {
            let steps: Vec<String> = sc
                .steps
                .iter()
                .map(|st| {
                    format!("{} {}", st.drill, st.verdict.map(|v| v.to_string()).unwrap_or_else(|| "skipped".into()))
                })
                .collect();
            let _ =
                writeln!(s, "- {} {} — **{}**: {} ({})", sc.started, sc.name, sc.verdict, sc.reason, steps.join(", "));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Runs\n");
    if r.runs.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        let _ = writeln!(s, "| started | drill | verdict | RTO | RPO (method) | reason | run |");
        let _ = writeln!(s, "|---|---|---|---:|---|---|---|");
        for o in &r.runs {
            let method = o.recovery_point.as_ref().map(|p| format!(" ({})", p.method.describe())).unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {}{} | {} | `{}` |",
                o.timeline.started,
                o.drill.name,
                o.verdict,
                opt(o.rto_ms),
                opt(o.rpo_ms),
                method,
                o.reason.replace('|', "\\|"),
                o.run_id
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Controls this evidence supports\n");
    let _ = writeln!(
        s,
        "- ISO/IEC 27001:2022 A.8.13 (information backup): backups were restored and their contents verified, with the run records above."
    );
    let _ = writeln!(
        s,
        "- ISO/IEC 27001:2022 A.5.30 (ICT readiness for business continuity): recovery time and data loss were measured against the targets shown."
    );
    let _ = writeln!(
        s,
        "- SOC 2 A1.3 (recovery plan testing): each run is a dated, verified test of a recovery procedure, kept in a tamper-evident record."
    );
    let _ = writeln!(
        s,
        "- DORA articles 11 and 12 (response and recovery; backup and restoration): restoration from backups was tested, with RTO/RPO evidence."
    );
    s
}

/// JSON, for tools.
pub fn json(r: &ReportData) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// CSV: one row per run.
pub fn csv(r: &ReportData) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis().to_string()).unwrap_or_default();
    let _ = w.write_record([
        "started",
        "drill",
        "type",
        "scenario",
        "verdict",
        "rto_ms",
        "rto_target_ms",
        "rpo_ms",
        "rpo_target_ms",
        "rpo_method",
        "run_id",
        "reason",
    ]);
    for o in &r.runs {
        let _ = w.write_record([
            o.timeline.started.to_string(),
            o.drill.name.clone(),
            o.drill.kind.clone(),
            o.scenario.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            o.verdict.to_string(),
            ms(o.rto_ms),
            ms(target(o, "rto")),
            ms(o.rpo_ms),
            ms(target(o, "rpo")),
            o.recovery_point.as_ref().map(|p| p.method.name().to_string()).unwrap_or_default(),
            o.run_id.clone(),
            o.reason.clone(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Escapes text for XML 1.0, dropping the control characters it cannot hold.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per drill, a test case per run (its time is the RTO). `Failed` runs are
/// failures, `Error` runs errors, `Aborted` runs skipped.
pub fn junit(r: &ReportData) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = r.runs.len();
    let count = |v: Verdict| r.runs.iter().filter(|o| o.verdict == v).count();
    let _ = writeln!(
        s,
        "<testsuites name=\"firedrill\" tests=\"{total}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        count(Verdict::Failed),
        count(Verdict::Error),
        count(Verdict::Aborted)
    );
    for d in &r.drills {
        let runs: Vec<&&Outcome> = r.runs.iter().filter(|o| o.drill.name == d.name).collect();
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
            xml_escape(&d.name),
            d.runs,
            d.failed,
            d.error,
            d.aborted
        );
        for o in runs {
            let secs = o.rto_ms.unwrap_or_default().as_secs_f64();
            let _ = write!(
                s,
                "    <testcase classname=\"firedrill.{}\" name=\"{} {}\" time=\"{secs:.3}\"",
                xml_escape(&o.drill.kind),
                o.timeline.started,
                xml_escape(&o.run_id)
            );
            let reason = xml_escape(&o.reason);
            match o.verdict {
                Verdict::Passed => s.push_str("/>\n"),
                Verdict::Failed => {
                    let _ = writeln!(
                        s,
                        ">\n      <failure message=\"{reason}\">{}</failure>\n    </testcase>",
                        xml_escape(&o.errors.join("\n"))
                    );
                }
                Verdict::Error => {
                    let _ = writeln!(
                        s,
                        ">\n      <error message=\"{reason}\">{}</error>\n    </testcase>",
                        xml_escape(&o.errors.join("\n"))
                    );
                }
                Verdict::Aborted => {
                    let _ = writeln!(s, ">\n      <skipped message=\"{reason}\"/>\n    </testcase>");
                }
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_handles_markup_quotes_and_control_characters() {
        assert_eq!(xml_escape("a<b & \"c\" 'd'>\u{1}\n"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\n");
    }
}
