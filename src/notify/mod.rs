//! Notifications: telling people about a drill's outcome once it is recorded.
//!
//! The whole API, for `firedrill run` and for the scheduler alike:
//!
//! ```no_run
//! # async fn f(ledger: &firedrill::ledger::Ledger, outcome: &firedrill::ledger::record::Outcome) -> anyhow::Result<()> {
//! // Once at start-up: `None` when no webhook is configured; an error names a bad variable.
//! if let Some(notifier) = firedrill::notify::from_env()? {
//!     // After each drill's outcome is in the ledger: sends what the outcome calls for, to each
//!     // configured channel, and records each delivery as a `Notification` ledger entry.
//!     for d in firedrill::notify::after_run(&notifier, ledger, outcome).await {
//!         eprintln!("{}", d.describe());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What is sent ([`event_for`]): `failure` for a `Failed`, `Error` or `Aborted` run; `recovery`
//! for a pass after a run of the same drill that did not pass; `run` for any other run, only
//! with `FIREDRILL_NOTIFY_ON=always`. Channels: a Slack-compatible incoming webhook and a generic
//! JSON webhook ([`payload`]); settings come from the environment only ([`config`]).
//!
//! This module must not fail a drill: delivery problems are returned and recorded, never raised,
//! and no webhook URL (the credential) is ever logged, printed or recorded.

pub mod config;
pub mod deliver;
pub mod payload;

use std::fmt;

pub use config::NotifyOn;
pub use deliver::RetryPolicy;

use crate::clock::Clock;
use crate::ledger::record::{Channel, Entry, Notification, NotificationEvent, Outcome};
use crate::ledger::{Appended, Ledger, RunSummary};
use crate::measure::Verdict;

/// Errors of notification settings. Delivery itself has no errors: see [`Delivery`].
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// An environment variable holds something unusable; `problem` says what would be valid and
    /// never repeats a URL.
    #[error("{variable}: {problem}")]
    Config { variable: &'static str, problem: String },
    /// The HTTP client could not be built (no TLS provider, ...).
    #[error("cannot build the HTTP client for notifications: {0}")]
    Client(String),
}

/// A webhook URL. Its `Debug` hides it: the URL is the credential.
#[derive(Clone)]
struct Secret(reqwest::Url);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<webhook URL>")
    }
}

/// The configured channels and how to reach them.
#[derive(Debug, Clone)]
pub struct Notifier {
    slack: Option<Secret>,
    webhook: Option<Secret>,
    on: NotifyOn,
    policy: RetryPolicy,
    clock: Clock,
    http: reqwest::Client,
}

/// The notifier the environment configures; `None` when no webhook URL is set.
pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
    let settings = config::read(|name| std::env::var(name).ok())?;
    if settings.slack.is_none() && settings.webhook.is_none() {
        return Ok(None);
    }
    Notifier::new(settings.slack.as_deref(), settings.webhook.as_deref(), settings.on).map(Some)
}

impl Notifier {
    /// A notifier for explicit URLs (either may be absent), with the default retry policy and
    /// the system clock.
    pub fn new(slack: Option<&str>, webhook: Option<&str>, on: NotifyOn) -> Result<Self, NotifyError> {
        let slack = slack.map(|u| config::check_url(config::SLACK_URL, u)).transpose()?.map(Secret);
        let webhook = webhook.map(|u| config::check_url(config::WEBHOOK_URL, u)).transpose()?.map(Secret);
        let http = reqwest::Client::builder()
            // A redirect would carry the payload somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("firedrill/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client(if e.is_builder() { "bad settings".into() } else { "failed".into() }))?;
        Ok(Self { slack, webhook, on, policy: RetryPolicy::default(), clock: Clock::system(), http })
    }

    /// The same notifier with another retry policy (tests use short waits).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same notifier timing with `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn on(&self) -> NotifyOn {
        self.on
    }

    /// The configured channels, in the order they are sent to.
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.slack.is_some() {
            out.push(Channel::Slack);
        }
        if self.webhook.is_some() {
            out.push(Channel::Webhook);
        }
        out
    }

    /// Sends `event` about `outcome` to every channel at once; one [`Notification`] each, not yet
    /// recorded.
    pub async fn send(
        &self,
        event: NotificationEvent,
        outcome: &Outcome,
        previous: Option<Verdict>,
    ) -> Vec<Notification> {
        let sent = self.clock.now();
        let one = |channel: Channel, url: &Secret| {
            let body = match channel {
                Channel::Slack => payload::slack(event, outcome, previous),
                Channel::Webhook => payload::generic(event, outcome),
            };
            let url = url.0.clone();
            async move {
                let r = deliver::post(&self.http, &url, &body, &self.policy, self.clock).await;
                tracing::info!(
                    channel = channel.as_str(),
                    event = event.as_str(),
                    run_id = %outcome.run_id,
                    delivered = r.delivered,
                    attempts = r.attempts,
                    status = r.status,
                    error = r.error.as_deref(),
                    "notification"
                );
                Notification {
                    run_id: outcome.run_id.clone(),
                    drill: outcome.drill.name.clone(),
                    channel,
                    event,
                    delivered: r.delivered,
                    attempts: r.attempts,
                    status: r.status,
                    error: r.error,
                    sent,
                }
            }
        };
        let slack = async {
            match &self.slack {
                Some(url) => Some(one(Channel::Slack, url).await),
                None => None,
            }
        };
        let webhook = async {
            match &self.webhook {
                Some(url) => Some(one(Channel::Webhook, url).await),
                None => None,
            }
        };
        let (slack, webhook) = futures::join!(slack, webhook);
        slack.into_iter().chain(webhook).collect()
    }
}

/// What the run calls for: `None` when nobody needs to hear about it.
pub fn event_for(verdict: Verdict, previous: Option<Verdict>, on: NotifyOn) -> Option<NotificationEvent> {
    match verdict {
        Verdict::Failed | Verdict::Error | Verdict::Aborted => Some(NotificationEvent::Failure),
        Verdict::Passed if previous.is_some_and(|p| p != Verdict::Passed) => Some(NotificationEvent::Recovery),
        Verdict::Passed if on == NotifyOn::Always => Some(NotificationEvent::Run),
        Verdict::Passed => None,
    }
}

/// The verdict of the last run of `drill` before run `run_id`, in chain order. When `run_id` is
/// not among `runs` (its outcome was spooled, not chained), the last run of `drill` at all.
pub fn previous_in(runs: &[RunSummary], drill: &str, run_id: &str) -> Option<Verdict> {
    let end = runs.iter().rposition(|r| r.run_id == run_id).unwrap_or(runs.len());
    runs[..end].iter().rev().find(|r| r.drill == drill).map(|r| r.verdict)
}

/// The verdict of the run of `outcome`'s drill before it, read from the ledger's run summaries
/// (its local cache, topped up from the store). `None` when there was none, or when the ledger
/// cannot be read: then a pass is not announced as a recovery, and a failure still is.
pub async fn previous_verdict(ledger: &Ledger, outcome: &Outcome) -> Option<Verdict> {
    match ledger.summaries().await {
        Ok(runs) => previous_in(&runs, &outcome.drill.name, &outcome.run_id),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the drill's previous run; a pass is not announced as a recovery");
            None
        }
    }
}

/// One channel told (or not) about a run, and where that fact was recorded.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub notification: Notification,
    /// Where the [`Entry::Notification`] went; `Err` when it could be recorded nowhere.
    pub recorded: Result<Appended, String>,
}

impl Delivery {
    /// One line for a person: `slack: failure delivered (1 attempt)`.
    pub fn describe(&self) -> String {
        let n = &self.notification;
        let tries = format!("{} attempt{}", n.attempts, if n.attempts == 1 { "" } else { "s" });
        let what = if n.delivered {
            format!("delivered ({tries})")
        } else {
            format!("NOT delivered after {tries}: {}", n.error.as_deref().unwrap_or("unknown"))
        };
        let recorded = match &self.recorded {
            Ok(_) => String::new(),
            Err(e) => format!("; not recorded: {e}"),
        };
        format!("{}: {} {what}{recorded}", n.channel.as_str(), n.event.as_str())
    }
}

/// After `outcome` is recorded: decides what it calls for against the drill's previous run,
/// sends it to every configured channel, and appends one `Notification` entry per channel to
/// `ledger`. Returns nothing to send as an empty list. Never fails and never panics.
pub async fn after_run(notifier: &Notifier, ledger: &Ledger, outcome: &Outcome) -> Vec<Delivery> {
    let previous = previous_verdict(ledger, outcome).await;
    let Some(event) = event_for(outcome.verdict, previous, notifier.on) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for notification in notifier.send(event, outcome, previous).await {
        let recorded =
            ledger.append(&Entry::Notification(Box::new(notification.clone()))).await.map_err(|e| e.to_string());
        if let Err(e) = &recorded {
            tracing::warn!(error = %e, channel = notification.channel.as_str(), "the notification could not be recorded");
        }
        out.push(Delivery { notification, recorded });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
