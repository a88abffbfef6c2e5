//! The registry of built-in drills: each registered by name, with its spec block, its
//! validation, its implementation of the [`Drill`] contract and its cleanup.
//!
//! Adding a drill: a module here, one field in [`crate::spec::raw::DrillFile`], and one arm in
//! each function below.

pub mod etcd_restore;

use serde::Serialize;

use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::plan::Timeouts;
use crate::spec::Validator;
use crate::spec::raw::DrillFile;

/// The validated parameters of a drill, by type.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DrillParams {
    EtcdRestore(etcd_restore::Params),
}

/// `(registered name, spec block)` of every drill type.
pub const KINDS: &[(&str, &str)] = &[(etcd_restore::KIND, "etcdRestore")];

impl DrillParams {
    pub fn kind(&self) -> &'static str {
        match self {
            DrillParams::EtcdRestore(_) => etcd_restore::KIND,
        }
    }

    pub fn default_timeouts(&self) -> Timeouts {
        match self {
            DrillParams::EtcdRestore(_) => etcd_restore::DEFAULT_TIMEOUTS,
        }
    }

    /// A fresh drill for one run.
    pub fn instantiate(&self) -> Box<dyn Drill> {
        match self {
            DrillParams::EtcdRestore(p) => Box::new(etcd_restore::EtcdRestore::new(p.clone())),
        }
    }
}

/// Validates the one drill block of a drill file.
pub fn validate(v: &mut Validator, raw: &DrillFile) -> Option<DrillParams> {
    let blocks = KINDS.iter().map(|(_, block)| format!("`{block}`")).collect::<Vec<_>>().join(", ");
    match &raw.etcd_restore {
        Some(spec) => etcd_restore::validate(v, spec).map(DrillParams::EtcdRestore),
        None => {
            v.error(raw.kind.at(), format!("a Drill needs one drill block saying what to drill: one of {blocks}"));
            None
        }
    }
}

/// Removes what a run of drill type `kind` claimed. Idempotent: safe to run again, and after a
/// crash at any point. Returns what it did, in words.
pub async fn cleanup(kind: &str, claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    match kind {
        etcd_restore::KIND => etcd_restore::cleanup(claim, ctx).await,
        other => {
            Err(DrillError::Error(format!("unknown drill type `{other}`: this firedrill cannot clean up after it")))
        }
    }
}
