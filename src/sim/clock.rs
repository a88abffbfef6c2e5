//! The simulator's clock: real time plus an offset that the admin endpoint can advance, so that a
//! 90-day certificate lifecycle can be rehearsed in seconds. Only what the simulated cluster
//! "observes" (timestamps it writes, certificate validity, renewal times) follows it; controller
//! delays such as pod readiness use real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct SimClock {
    offset_ms: Arc<AtomicI64>,
    advanced: watch::Sender<i64>,
}

impl Default for SimClock {
    fn default() -> Self {
        Self { offset_ms: Arc::new(AtomicI64::new(0)), advanced: watch::channel(0).0 }
    }
}

impl SimClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// RFC 3339 with whole seconds, as `creationTimestamp` and friends are written.
    pub fn stamp(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// RFC 3339 with microseconds, as `metav1.MicroTime` fields are written.
    pub fn micro_stamp(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Moves the clock forward; controllers that depend on it are woken.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let total = self.offset_ms.fetch_add(ms, Ordering::SeqCst) + ms;
        self.advanced.send_replace(total);
    }

    /// How far the clock has been advanced.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.offset_ms.load(Ordering::SeqCst)).unwrap_or(0))
    }

    /// A receiver that changes whenever the clock is advanced.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.advanced.subscribe()
    }
}
