//! [`Abort`]: the one way to stop a run early, with the reason a person gave.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Shared by the signal handler, the runner and every phase; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Abort {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Abort {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run; the first reason given is kept.
    pub fn trigger(&self, reason: impl Into<String>) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert_with(|| reason.into());
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn reason(&self) -> String {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| "aborted".into())
    }

    /// Resolves when the run is aborted.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }
}
