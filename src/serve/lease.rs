//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! the leader renews the Lease every `renew_every`; another replica takes it over only when the
//! Lease has not changed for `duration` by its own clock (so clocks that disagree do not matter);
//! every write carries the resourceVersion read, so two replicas cannot both win one round.
//!
//! Leadership is lost **at once** when a renewal fails (an error or a conflict): the daemon then
//! starts no new drill. Drills already running finish (their cleanup must), and the ledger's
//! conditional writes keep the record consistent while two leaders briefly overlap.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How to elect.
#[derive(Clone)]
pub struct Election {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    /// How long a Lease that nobody renews stays taken (client-go's default: 15 s).
    pub duration: Duration,
    /// How often the leader renews and the others look (client-go's retry period: 2 s).
    pub retry: Duration,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// What one round saw of the Lease, to tell whether it changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    holder: Option<String>,
    renew: Option<String>,
}

impl Election {
    /// Runs the election until `stop`; the receiver says whether this replica leads. At `stop`
    /// the leader gives the Lease up (an empty holder), so that another takes over at once.
    pub fn spawn(self, stop: CancellationToken) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut seen: Option<(Seen, Instant)> = None;
            loop {
                let leading = match self.round(&mut seen).await {
                    Ok(leading) => leading,
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "cannot read or write the Lease");
                        false
                    }
                };
                if *tx.borrow() != leading {
                    tracing::info!(lease = %self.name, identity = %self.identity, leading, "leadership changed");
                }
                tx.send_replace(leading);
                tokio::select! {
                    _ = tokio::time::sleep(self.retry) => {}
                    _ = stop.cancelled() => {
                        if *tx.borrow() {
                            tx.send_replace(false);
                            if let Err(e) = self.release().await {
                                tracing::warn!(lease = %self.name, error = %e, "cannot give the Lease up");
                            }
                        }
                        return;
                    }
                }
            }
        });
        rx
    }

    /// One round: create, renew or take over the Lease. `Ok(true)` when this replica leads.
    async fn round(&self, seen: &mut Option<(Seen, Instant)>) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let observed = Seen { holder: holder.clone(), renew: spec.renew_time.as_ref().map(|t| t.0.to_string()) };
        // When the record last changed, by this replica's clock.
        let changed_at = match seen {
            Some((s, at)) if *s == observed => *at,
            _ => {
                *seen = Some((observed, Instant::now()));
                Instant::now()
            }
        };
        let duration = spec.lease_duration_seconds.map_or(self.duration, |s| Duration::from_secs(s.max(1) as u64));
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let expired = holder.is_none() || changed_at.elapsed() >= duration;
        if !mine && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(acquired, transitions));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Someone else wrote it first: they lead this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or_else(now)),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Empties the holder, if it is still this replica.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
    }
}
