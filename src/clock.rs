//! The one clock of a run.
//!
//! Every timestamp, wait and timeout in firedrill goes through [`Clock`]: wall time (UTC, millisecond
//! precision) anchored once and advanced by tokio's monotonic clock, so a wall-clock step during a
//! drill cannot bend a measured RTO. Tests build a clock with [`Clock::fixed`] under tokio's paused
//! time and get exact, repeatable figures. This module must not read the wall clock anywhere else.

use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision, serialised as RFC 3339 (`2026-11-21T02:19:50.961Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Truncates `t` to whole milliseconds.
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Self::from_millis(t.timestamp_millis())
    }

    /// The instant `ms` milliseconds after the Unix epoch (clamped to chrono's range).
    pub fn from_millis(ms: i64) -> Self {
        Self(DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// `self − earlier`, or `None` when `earlier` is later than `self`.
    pub fn since(self, earlier: Timestamp) -> Option<Duration> {
        u64::try_from(self.millis() - earlier.millis()).ok().map(Duration::from_millis)
    }

    /// Parses an RFC 3339 timestamp, or a Unix time in seconds (10 digits) or milliseconds
    /// (13 digits): the forms canary writers commonly store.
    pub fn parse_lenient(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::from_datetime(t.with_timezone(&Utc)));
        }
        let n: i64 = text.parse().ok()?;
        match text.trim_start_matches('-').len() {
            13 => Some(Self::from_millis(n)),
            10 => Some(Self::from_millis(n.checked_mul(1000)?)),
            _ => None,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl FromStr for Timestamp {
    type Err = chrono::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_datetime(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp::from_datetime(self.0 + TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp::from_datetime(self.0 - TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX))
    }
}

/// The clock injected into everything that measures or waits.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: DateTime<Utc>,
    mono: tokio::time::Instant,
}

/// A wait that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {}", crate::measure::human(*.0))]
pub struct Elapsed(pub Duration);

impl Clock {
    /// The real clock: wall time read once, now, then advanced monotonically.
    pub fn system() -> Self {
        Self::fixed(Utc::now())
    }

    /// A clock that reads `wall` at this instant of tokio's clock. Under
    /// `#[tokio::test(start_paused = true)]` it only moves when the test lets time pass.
    pub fn fixed(wall: DateTime<Utc>) -> Self {
        Self { wall, mono: tokio::time::Instant::now() }
    }

    pub fn now(&self) -> Timestamp {
        let elapsed = TimeDelta::from_std(self.mono.elapsed()).unwrap_or(TimeDelta::MAX);
        Timestamp::from_datetime(self.wall + elapsed)
    }

    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Runs `f` for at most `limit`.
    pub async fn timeout<F: Future>(&self, limit: Duration, f: F) -> Result<F::Output, Elapsed> {
        tokio::time::timeout(limit, f).await.map_err(|_| Elapsed(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn timestamps_keep_milliseconds_and_print_them_always() {
        let t = at("2026-11-21T02:19:50.961789Z");
        assert_eq!(t.to_string(), "2026-11-21T02:19:50.961Z");
        assert_eq!(at("2026-11-21T02:19:50Z").to_string(), "2026-11-21T02:19:50.000Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-11-21T02:19:50.961Z\"");
    }

    #[test]
    fn lenient_parse_accepts_rfc3339_and_unix_seconds_or_millis() {
        let t = at("2026-11-21T02:19:50Z");
        assert_eq!(Timestamp::parse_lenient("2026-11-21T03:19:50+01:00"), Some(t));
        assert_eq!(Timestamp::parse_lenient(&(t.millis() / 1000).to_string()), Some(t));
        assert_eq!(Timestamp::parse_lenient(&t.millis().to_string()), Some(t));
        assert_eq!(Timestamp::parse_lenient("yesterday"), None);
        assert_eq!(Timestamp::parse_lenient("12345"), None);
    }

    #[test]
    fn since_is_none_when_the_order_is_reversed() {
        let a = at("2026-11-21T00:00:00Z");
        let b = a + Duration::from_millis(1500);
        assert_eq!(b.since(a), Some(Duration::from_millis(1500)));
        assert_eq!(a.since(b), None);
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_clock_moves_only_with_tokio_time() {
        let clock = Clock::fixed(at("2026-11-21T00:00:00Z").datetime());
        assert_eq!(clock.now().to_string(), "2026-11-21T00:00:00.000Z");
        clock.sleep(Duration::from_millis(2500)).await;
        assert_eq!(clock.now().to_string(), "2026-11-21T00:00:02.500Z");
        let r = clock.timeout(Duration::from_secs(1), std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed(Duration::from_secs(1))));
        assert_eq!(clock.now().to_string(), "2026-11-21T00:00:03.500Z");
    }
}
