//! How bad a finding of a checking drill (pdb-check, cert-expiry) is, and the threshold
//! (`failOn`) at which findings fail the run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
