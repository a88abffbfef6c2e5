//! Delivering one payload to one webhook: a POST with a timeout, retried with exponential
//! backoff. Never panics and never fails: the caller gets what happened, for the record.
//!
//! What is retried: transport failures (timeout, connection refused) and 5xx answers, after
//! 0.5 s, 1 s, 2 s by default; a 429 after its `Retry-After` (seconds or an HTTP date) when it
//! gives one. Any other 4xx is final: the request itself is wrong and would be refused again.
//! reqwest's error text can include the URL, which is the credential: only the kind of failure
//! is ever reported or logged.

use std::time::Duration;

use chrono::DateTime;

use crate::clock::{Clock, Timestamp};

/// How hard delivery tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests in all, the first included.
    pub attempts: u32,
    /// The wait before the first retry; it doubles for each next one.
    pub backoff: Duration,
    /// The limit of one request, answer included.
    pub timeout: Duration,
    /// The longest `Retry-After` honoured: a receiver asking for more is given up on, rather
    /// than holding a finished drill (and a cron job) for minutes.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// What one request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status, with the `Retry-After` header's value if there was one.
    Status { code: u16, retry_after: Option<String> },
    /// No answer; the kind of failure (`timeout`, `connection failed`, `request failed`).
    Failed(&'static str),
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    Retry(Duration),
    /// Stop; the reason, for the record.
    GiveUp(String),
}

impl RetryPolicy {
    /// The decision after attempt number `attempt` (from 1) got `answer`, at `now`.
    pub fn next(&self, attempt: u32, answer: &Answer, now: Timestamp) -> Next {
        let backoff = self.backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        let (wait, error) = match answer {
            Answer::Status { code, .. } if (200..300).contains(code) => return Next::Delivered,
            Answer::Status { code: 429, retry_after } => {
                let wait = retry_after.as_deref().and_then(|v| retry_after_delay(v, now));
                match wait {
                    Some(w) if w > self.max_retry_after => {
                        return Next::GiveUp(format!(
                            "HTTP 429: asked to retry after {}, more than the {} allowed",
                            crate::measure::human(w),
                            crate::measure::human(self.max_retry_after)
                        ));
                    }
                    _ => (wait.unwrap_or(backoff), "HTTP 429".to_string()),
                }
            }
            Answer::Status { code, .. } if (500..600).contains(code) => (backoff, format!("HTTP {code}")),
            Answer::Status { code, .. } => return Next::GiveUp(format!("HTTP {code}")),
            Answer::Failed(kind) => (backoff, kind.to_string()),
        };
        if attempt >= self.attempts { Next::GiveUp(error) } else { Next::Retry(wait) }
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// means now.
pub fn retry_after_delay(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let at = Timestamp::from_datetime(at.to_utc());
    Some(at.since(now).unwrap_or(Duration::ZERO))
}

/// The result of delivering one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub delivered: bool,
    pub attempts: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// reqwest's error text can include the URL: only its kind is kept.
fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// POSTs `body` as JSON to `url` until it is delivered or the policy gives up.
pub async fn post(
    http: &reqwest::Client,
    url: &reqwest::Url,
    body: &serde_json::Value,
    policy: &RetryPolicy,
    clock: Clock,
) -> Attempted {
    let mut attempts = 0;
    let mut status = None;
    loop {
        attempts += 1;
        let answer = match http.post(url.clone()).json(body).timeout(policy.timeout).send().await {
            Ok(resp) => {
                let retry_after =
                    resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
                Answer::Status { code: resp.status().as_u16(), retry_after }
            }
            Err(e) => Answer::Failed(kind(&e)),
        };
        if let Answer::Status { code, .. } = &answer {
            status = Some(*code);
        }
        match policy.next(attempts, &answer, clock.now()) {
            Next::Delivered => return Attempted { delivered: true, attempts, status, error: None },
            Next::GiveUp(error) => return Attempted { delivered: false, attempts, status, error: Some(error) },
            Next::Retry(wait) => {
                tracing::debug!(attempt = attempts, ?answer, ?wait, "webhook not reached yet; retrying");
                clock.sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn status(code: u16) -> Answer {
        Answer::Status { code, retry_after: None }
    }

    const NOW: &str = "2026-11-21T02:00:00.000Z";

    #[test]
    fn server_errors_and_lost_requests_are_retried_with_doubling_backoff_then_given_up() {
        let p = RetryPolicy::default();
        let now = at(NOW);
        assert_eq!(p.next(1, &status(500), now), Next::Retry(Duration::from_millis(500)));
        assert_eq!(p.next(2, &Answer::Failed("timeout"), now), Next::Retry(Duration::from_secs(1)));
        assert_eq!(p.next(3, &status(503), now), Next::Retry(Duration::from_secs(2)));
        assert_eq!(p.next(4, &status(503), now), Next::GiveUp("HTTP 503".into()));
        assert_eq!(p.next(4, &Answer::Failed("connection failed"), now), Next::GiveUp("connection failed".into()));
    }

    #[test]
    fn a_client_error_other_than_429_is_not_retried() {
        let p = RetryPolicy::default();
        for code in [400, 401, 403, 404, 410] {
            assert_eq!(p.next(1, &status(code), at(NOW)), Next::GiveUp(format!("HTTP {code}")));
        }
        assert_eq!(p.next(1, &status(204), at(NOW)), Next::Delivered);
    }

    #[test]
    fn a_429_waits_as_long_as_retry_after_says_in_seconds_or_as_a_date() {
        let p = RetryPolicy::default();
        let now = at(NOW);
        let after = |v: &str| Answer::Status { code: 429, retry_after: Some(v.into()) };
        assert_eq!(p.next(1, &after("7"), now), Next::Retry(Duration::from_secs(7)));
        assert_eq!(p.next(1, &after("Sat, 21 Nov 2026 02:00:12 GMT"), now), Next::Retry(Duration::from_secs(12)));
        assert_eq!(p.next(1, &after("Sat, 21 Nov 2026 01:00:00 GMT"), now), Next::Retry(Duration::ZERO), "past: now");
        assert_eq!(p.next(2, &after("soon"), now), Next::Retry(Duration::from_secs(1)), "unreadable: backoff");
        assert_eq!(p.next(1, &status(429), now), Next::Retry(Duration::from_millis(500)), "absent: backoff");
        match p.next(1, &after("3600"), now) {
            Next::GiveUp(e) => assert!(e.contains("HTTP 429") && e.contains("1h"), "{e}"),
            other => panic!("a wait beyond max_retry_after is given up: {other:?}"),
        }
        assert_eq!(p.next(4, &after("1"), now), Next::GiveUp("HTTP 429".into()), "attempts still run out");
    }
}
