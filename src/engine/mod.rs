//! The drill contract and the machinery that drives it.
//!
//! A drill implements [`Drill`]: it checks what it needs (preflight), names what it will create
//! (claim), prepares (setup), recovers (act), waits for the recovery to be up (wait), checks it
//! (verify) and cleans up. Cleanup works from the claim alone: by default it is the registered
//! cleanup of the drill type ([`crate::drills::cleanup`]), the very function the janitor runs
//! for a run whose process died. The [`runner`] drives the phases with timeouts, aborts and the
//! ledger.

pub mod abort;
pub mod context;
pub mod janitor;
pub mod marker;
pub mod owner;
pub mod runner;
pub mod scenario;

use async_trait::async_trait;

pub use abort::Abort;
pub use context::RunContext;
pub use runner::Runner;

use crate::measure::Check;

/// How a phase of a drill went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrillError {
    /// Recovery does not work: the drill ran and found the problem (a corrupt snapshot, a
    /// restore that does not start). The verdict is `Failed`.
    #[error("{0}")]
    Failed(String),
    /// The drill could not do its work (a missing tool, an unreachable source, no permission).
    /// The verdict is `Error`.
    #[error("{0}")]
    Error(String),
    /// A guard refused to go on. The verdict is `Aborted`.
    #[error("{0}")]
    Aborted(String),
}

/// What a run will create, in the drill's own terms (JSON), written into the intent record
/// before anything changes.
pub type Claim = serde_json::Value;

/// The contract every drill implements. Methods run in this order; any error ends the run,
/// after which the runner always calls the drill type's cleanup with the claim.
#[async_trait]
pub trait Drill: Send + Sync {
    /// The registered drill type (`etcd-restore`).
    fn kind(&self) -> &'static str;

    /// What a run changes, in words, for `--dry-run` and the intent record.
    fn planned_changes(&self) -> Vec<String>;

    /// Checks tools, access and guards. Must not change anything.
    async fn preflight(&mut self, ctx: &RunContext) -> Result<(), DrillError>;

    /// Names everything the run will create. Must not change anything either: the claim is
    /// recorded before [`Drill::setup`] runs.
    fn claim(&mut self, ctx: &RunContext) -> Result<Claim, DrillError>;

    /// Prepares, before the disaster is declared (t0).
    async fn setup(&mut self, _ctx: &RunContext) -> Result<(), DrillError> {
        Ok(())
    }

    /// Recovers. The recovery clock (RTO) runs from the start of this phase.
    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError>;

    /// Waits until the recovered system is up.
    async fn wait(&mut self, ctx: &RunContext) -> Result<(), DrillError>;

    /// Checks the recovered system. The RTO clock stops when this returns with every check passed.
    async fn verify(&mut self, ctx: &RunContext) -> Result<Vec<Check>, DrillError>;

    /// Removes what `claim` names; idempotent. Returns what it did, in words. Override only in
    /// tests: a real drill's cleanup must be the registered one, which the janitor also runs.
    async fn cleanup(&mut self, claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
        crate::drills::cleanup(self.kind(), claim, ctx).await
    }
}
