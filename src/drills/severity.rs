//! How bad a finding of a checking drill (pdb-check, cert-expiry) is, and the threshold
//! (`failOn`) at which findings fail the run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::measure::Check;

/// How bad a finding is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; breaks nothing.
    Info,
    /// Something breaks unless someone acts (a drain or rollout at risk, a certificate expiring
    /// within the horizon), or it could not be checked.
    Warning,
    /// Broken now: evictions fail, a drain can never complete, a certificate has expired.
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The checks of a checking drill: one per severity at or above `fail_on`, most severe first,
/// each passed only when there is no such finding; what it saw names up to three of them.
/// `findings` pairs each finding's severity with how it is named ("missing-pdb in shop").
pub fn threshold_checks(findings: &[(Severity, String)], fail_on: Severity, what: &str) -> Vec<Check> {
    Severity::ALL
        .iter()
        .filter(|s| **s >= fail_on)
        .rev()
        .map(|&s| {
            let of: Vec<&str> = findings.iter().filter(|(f, _)| *f == s).map(|(_, n)| n.as_str()).collect();
            let mut observed = of.len().to_string();
            if !of.is_empty() {
                let more = if of.len() > 3 { ", ..." } else { "" };
                observed = format!("{observed} ({}{more})", of[..of.len().min(3)].join(", "));
            }
            Check::new(format!("{} {what}", s.name()), of.is_empty()).saw(0, observed)
        })
        .collect()
}

/// How many of `severities` are `severity`.
pub fn count(severities: impl IntoIterator<Item = Severity>, severity: Severity) -> usize {
    severities.into_iter().filter(|s| *s == severity).count()
}
