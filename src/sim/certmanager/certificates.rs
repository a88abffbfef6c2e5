//! The Certificate controller: cert-manager's trigger, issuing and readiness controllers in one
//! reconcile. Each pass decides, from the Certificate, its Secret and the simulated time:
//!
//! 1. If `Issuing` is True, attempt the issuance ([`issuance::attempt`]) — this is also how a
//!    manually set `Issuing` condition (`cmctl renew`) forces a new revision.
//! 2. Run the trigger chain ([`policies::trigger`]); when it finds a reason and no failure backoff
//!    holds (1h × 2^(attempts−1), at most 32h, skipped once the spec changed), set `Issuing`
//!    True with that reason. The next pass issues, so watchers see `Issuing` come and go.
//! 3. Write `Ready` ([`policies::readiness`]), `notBefore`, `notAfter`, `renewalTime`, and what the
//!    attempt changed: `revision` and the end of `Issuing` on success; `lastFailureTime`,
//!    `failedIssuanceAttempts` and `Issuing` False/`Failed` on failure.
//!
//! A spec the admission webhook would refuse (cert-manager validates Certificates in its webhook,
//! which the simulator does not run, so such objects are stored) is reported as `Ready` False with
//! reason `ConfigError` and the webhook's messages, and nothing is issued for it.
//!
//! Status is written only as computed; unchanged passes write nothing. The controller follows the
//! simulated clock, so advancing it past a renewal time renews at once.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::issuance::{self, Outcome};
use super::policies::{self, Input, Validity};
use super::{
    CERTIFICATE_REQUESTS, CERTIFICATES, CLUSTER_ISSUERS, Condition, GROUP, ISSUERS, IssuerRef, SECRETS, cm_type,
    parse_stamp, pki, remove_condition, requests, secrets, set_condition, stamp, status_condition,
};
use crate::sim::controllers::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{Event, Part};

/// The first retry after a failed issuance; each further failure doubles it.
const INITIAL_BACKOFF: TimeDelta = TimeDelta::hours(1);
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(32);

pub fn controller() -> Controller {
    Controller {
        name: "certmanager",
        interests,
        keys: |s| keys_of(s, GROUP, "certificates"),
        reconcile,
        resync: Duration::from_secs(5),
        follows_clock: true,
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn key_of(certificate: &Value) -> Key {
    Key::new(CERTIFICATES, text(&certificate["metadata"]["namespace"]), text(&certificate["metadata"]["name"]))
}

/// Certificates whose Secret, issuer or request changed.
fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    let name = text(&e.object["metadata"]["name"]);
    let certificates = |ns: Option<&str>| state.store.all(&cm_type(state, "certificates"), ns);
    match e.type_key.as_str() {
        CERTIFICATES => vec![Key::of(e)],
        SECRETS => certificates(Some(&e.namespace))
            .iter()
            .filter(|c| c["spec"]["secretName"] == name)
            .map(|c| key_of(c))
            .collect(),
        ISSUERS | CLUSTER_ISSUERS => {
            let scope = (e.type_key == ISSUERS).then_some(e.namespace.as_str());
            certificates(scope)
                .iter()
                .filter(|c| IssuerRef::of(c).names(&e.type_key, &e.namespace, name, text(&c["metadata"]["namespace"])))
                .map(|c| key_of(c))
                .collect()
        }
        CERTIFICATE_REQUESTS => {
            match e.object["metadata"]["annotations"]["cert-manager.io/certificate-name"].as_str() {
                Some(owner) => vec![Key::new(CERTIFICATES, &e.namespace, owner)],
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = cm_type(state, "certificates");
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    let certificate = state.store.get(&t, ns, name)?;
    if certificate["metadata"].get("deletionTimestamp").is_some() {
        return Ok(None);
    }
    let now = state.store.clock.now();
    let now_stamp = stamp(now);
    let generation = certificate["metadata"]["generation"].as_i64();
    let spec = match pki::cert_spec(&certificate["spec"]) {
        Ok(spec) => spec,
        Err(e) => {
            let ready = Condition::new("Ready", "False", "ConfigError", format!("Resource validation failed: {e}"));
            state.store.mutate(&t, ns, name, Part::Status, false, |old| {
                let mut new = old.clone();
                set_condition(&mut new["status"], &ready, &now_stamp, generation);
                Ok(Some(new))
            })?;
            return Ok(None);
        }
    };
    let outcome = if is_issuing(&certificate["status"]) {
        Some(issuance::attempt(state, &certificate, &spec, now)?)
    } else {
        None
    };
    let revision = match outcome {
        Some(Outcome::Issued { revision }) => Some(revision),
        _ => certificate["status"]["revision"].as_i64(),
    };
    let secret = state.store.get(&secrets(state), ns, text(&certificate["spec"]["secretName"])).ok();
    if let Some(secret) = &secret {
        issuance::sync_template(state, &certificate, secret)?;
    }
    let request = requests::current(state, &certificate, revision);
    let input = Input {
        certificate: &certificate,
        spec: &spec,
        secret: secret.as_deref(),
        current_request: request.as_deref(),
        now,
    };
    let trigger = policies::trigger(&input);
    let ready = policies::readiness(&input);
    let validity = policies::validity(&input);
    let mut waits = None;
    let mut issuing = false;
    state.store.mutate(&t, ns, name, Part::Status, false, |old| {
        let mut new = old.clone();
        let s = &mut new["status"];
        if !s.is_object() {
            *s = json!({});
        }
        match &outcome {
            Some(Outcome::Issued { revision }) => {
                s["revision"] = json!(revision);
                if let Some(m) = s.as_object_mut() {
                    m.remove("lastFailureTime");
                    m.remove("failedIssuanceAttempts");
                }
                remove_condition(s, "Issuing");
            }
            Some(Outcome::Failed { message }) => {
                s["lastFailureTime"] = json!(now_stamp);
                s["failedIssuanceAttempts"] = json!(s["failedIssuanceAttempts"].as_i64().unwrap_or(0) + 1);
                let message = format!("The certificate request has failed to complete and will be retried: {message}");
                set_condition(s, &Condition::new("Issuing", "False", "Failed", message), &now_stamp, generation);
            }
            Some(Outcome::Pending) | None => {}
        }
        waits = backoff_remaining(s, now, generation);
        if let Some(v) = &trigger
            && waits.is_none()
            && !is_issuing(s)
        {
            set_condition(s, &Condition::new("Issuing", "True", v.reason, v.message.clone()), &now_stamp, generation);
        }
        issuing = is_issuing(s);
        set_condition(s, &ready, &now_stamp, generation);
        let fields = [
            ("notBefore", validity.map(|v| v.not_before)),
            ("notAfter", validity.map(|v| v.not_after)),
            ("renewalTime", validity.and_then(|v| v.renewal)),
        ];
        for (field, value) in fields {
            match value {
                Some(t) => s[field] = json!(stamp(t)),
                None => {
                    if let Some(m) = s.as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        Ok(Some(new))
    })?;
    Ok(requeue(now, validity, waits, issuing))
}

/// Whether a status has `Issuing` True.
fn is_issuing(status: &Value) -> bool {
    status_condition(status, "Issuing").is_some_and(|c| c["status"] == "True")
}

/// How long a failed issuance still holds off the next, per cert-manager's trigger controller:
/// 1h × 2^(failedIssuanceAttempts−1), at most 32h, from `lastFailureTime`. A spec changed since
/// the failure (a generation newer than the failed `Issuing` condition's) is tried at once.
pub fn backoff_remaining(status: &Value, now: DateTime<Utc>, generation: Option<i64>) -> Option<TimeDelta> {
    let last = parse_stamp(&status["lastFailureTime"])?;
    let failed_at = status_condition(status, "Issuing")
        .filter(|c| c["status"] == "False")
        .and_then(|c| c["observedGeneration"].as_i64());
    if let (Some(failed_at), Some(generation)) = (failed_at, generation)
        && failed_at < generation
    {
        return None;
    }
    let attempts = status["failedIssuanceAttempts"].as_i64().unwrap_or(0).clamp(1, 7);
    let delay = (INITIAL_BACKOFF * 2i32.pow(u32::try_from(attempts - 1).unwrap_or(0))).min(MAX_BACKOFF);
    let elapsed = now - last;
    (elapsed < delay).then(|| delay - elapsed)
}

/// When to look again without an event: at the renewal time, just after expiry, when a backoff
/// ends, or soon while waiting for an issuer. Simulated time maps 1:1 to real time here; advancing
/// the clock wakes the controller anyway.
fn requeue(now: DateTime<Utc>, validity: Option<Validity>, backoff: Option<TimeDelta>, waiting: bool) -> Requeue {
    let mut due: Vec<TimeDelta> = Vec::new();
    if let Some(v) = validity {
        due.extend(v.renewal.map(|r| r - now));
        due.push(v.not_after - now + TimeDelta::seconds(1));
    }
    due.extend(backoff);
    if waiting {
        due.push(TimeDelta::seconds(1));
    }
    due.into_iter()
        .filter(|d| *d > TimeDelta::zero())
        .min()
        .map(|d| d.to_std().unwrap_or(Duration::MAX).clamp(Duration::from_millis(50), Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn failed(attempts: i64, generation: i64) -> Value {
        json!({"lastFailureTime": "2026-01-01T00:00:00Z", "failedIssuanceAttempts": attempts,
               "conditions": [{"type": "Issuing", "status": "False", "reason": "Failed", "observedGeneration": generation}]})
    }

    #[test]
    fn failures_back_off_exponentially_up_to_32_hours() {
        let now = at("2026-01-01T00:30:00Z");
        assert_eq!(backoff_remaining(&failed(1, 1), now, Some(1)), Some(TimeDelta::minutes(30)));
        assert_eq!(backoff_remaining(&failed(3, 1), now, Some(1)), Some(TimeDelta::hours(4) - TimeDelta::minutes(30)));
        assert_eq!(backoff_remaining(&failed(9, 1), now, Some(1)), Some(TimeDelta::hours(32) - TimeDelta::minutes(30)));
        assert_eq!(backoff_remaining(&failed(1, 1), at("2026-01-01T01:00:00Z"), Some(1)), None, "an hour has passed");
        assert_eq!(backoff_remaining(&failed(1, 1), now, Some(2)), None, "the spec changed since");
        assert_eq!(backoff_remaining(&json!({}), now, Some(1)), None);
    }

    #[test]
    fn requeues_aim_at_the_next_thing_due() {
        let now = at("2026-01-01T00:00:00Z");
        let validity = Some(Validity {
            not_before: now,
            not_after: now + TimeDelta::days(90),
            renewal: Some(now + TimeDelta::milliseconds(200)),
        });
        assert_eq!(requeue(now, validity, None, false), Some(Duration::from_millis(200)));
        assert_eq!(requeue(now, None, None, true), Some(Duration::from_secs(1)));
        assert_eq!(requeue(now, None, Some(TimeDelta::hours(1)), false), Some(Duration::from_secs(300)));
        let yesterday = now - TimeDelta::days(1);
        let past = Some(Validity { not_before: yesterday, not_after: yesterday, renewal: Some(yesterday) });
        assert_eq!(requeue(now, past, None, false), None, "nothing left to wait for");
    }

    #[test]
    fn issuing_is_read_from_the_status() {
        assert!(is_issuing(&json!({"conditions": [{"type": "Issuing", "status": "True"}]})));
        assert!(!is_issuing(&json!({"conditions": [{"type": "Issuing", "status": "False"}]})));
        assert!(!is_issuing(&json!({})));
    }
}
