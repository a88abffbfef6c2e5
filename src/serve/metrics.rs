//! What `/metrics` exports, in the Prometheus text format (the `prometheus-client` crate).
//! Every metric is prefixed `firedrill_`. Labels are fixed and bounded: drill and schedule names
//! come from the spec files, verdicts are the four verdicts, reasons and channels are fixed words.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ledger::record::Outcome;
use crate::measure::Verdict;

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

const VERDICTS: [Verdict; 4] = [Verdict::Passed, Verdict::Failed, Verdict::Error, Verdict::Aborted];

pub struct Metrics {
    registry: Registry,
    last_run: Family<Labels, FloatGauge>,
    last_verdict: Family<Labels, Gauge>,
    last_rto: Family<Labels, FloatGauge>,
    last_rpo: Family<Labels, FloatGauge>,
    target_rto: Family<Labels, FloatGauge>,
    target_rpo: Family<Labels, FloatGauge>,
    runs: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    pub next_fire: Family<Labels, FloatGauge>,
    pub start_lag: Histogram,
    pub queue_wait: Histogram,
    skipped: Family<Labels, Counter>,
    pub running: Gauge,
    pub leader: Gauge,
    pub spec_errors: Gauge,
    notifications: Family<Labels, Counter>,
}

fn drill(name: &str) -> Labels {
    vec![("drill", name.to_string())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("firedrill"),
            last_run: Family::default(),
            last_verdict: Family::default(),
            last_rto: Family::default(),
            last_rpo: Family::default(),
            target_rto: Family::default(),
            target_rpo: Family::default(),
            runs: Family::default(),
            // 1 s to about 4.5 h.
            duration: Family::new_with_constructor(|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 15))
            }),
            next_fire: Family::default(),
            // 0.25 ms to about 8 s.
            start_lag: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 16)),
            // 10 ms to about 45 h.
            queue_wait: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.01, 2.0, 24)),
            skipped: Family::default(),
            running: Gauge::default(),
            leader: Gauge::default(),
            spec_errors: Gauge::default(),
            notifications: Family::default(),
        };
        let r = &mut m.registry;
        r.register("drill_last_run_timestamp_seconds", "When the drill's last run ended", m.last_run.clone());
        r.register(
            "drill_last_verdict",
            "1 for the verdict of the drill's last run, 0 for the others",
            m.last_verdict.clone(),
        );
        r.register("drill_last_rto_seconds", "The RTO the drill's last run measured", m.last_rto.clone());
        r.register("drill_last_rpo_seconds", "The RPO the drill's last run measured", m.last_rpo.clone());
        r.register("drill_target_rto_seconds", "The drill's RTO target", m.target_rto.clone());
        r.register("drill_target_rpo_seconds", "The drill's RPO target", m.target_rpo.clone());
        r.register("drill_runs", "Runs of the drill, by verdict", m.runs.clone());
        r.register("drill_run_duration_seconds", "How long the drill's runs took, start to end", m.duration.clone());
        r.register(
            "schedule_next_fire_timestamp_seconds",
            "When the schedule fires next (before jitter)",
            m.next_fire.clone(),
        );
        r.register(
            "schedule_start_lag_seconds",
            "How late a run that found a free slot started after its (jittered) start time",
            m.start_lag.clone(),
        );
        r.register(
            "schedule_queue_wait_seconds",
            "How long a run held by the concurrency limits waited after its (jittered) start time",
            m.queue_wait.clone(),
        );
        r.register("schedule_skipped", "Scheduled runs not started, by reason", m.skipped.clone());
        r.register("running_drills", "Drills and scenarios running now", m.running.clone());
        r.register("leader", "1 on the replica that holds the Lease and fires drills", m.leader.clone());
        r.register(
            "spec_errors",
            "Errors in the spec files, whose drills and scenarios are skipped",
            m.spec_errors.clone(),
        );
        r.register("notifications", "Notifications sent, by channel and result", m.notifications.clone());
        m
    }

    /// Records a finished drill run.
    pub fn run_finished(&self, o: &Outcome) {
        let name = &o.drill.name;
        let ended = o.timeline.ended.unwrap_or(o.timeline.started);
        self.last_run.get_or_create(&drill(name)).set(ended.millis() as f64 / 1000.0);
        for v in VERDICTS {
            let labels = vec![("drill", name.clone()), ("verdict", v.to_string())];
            self.last_verdict.get_or_create(&labels).set(i64::from(v == o.verdict));
        }
        self.runs.get_or_create(&vec![("drill", name.clone()), ("verdict", o.verdict.to_string())]).inc();
        if let Some(rto) = o.rto_ms {
            self.last_rto.get_or_create(&drill(name)).set(rto.as_secs_f64());
        }
        if let Some(rpo) = o.rpo_ms {
            self.last_rpo.get_or_create(&drill(name)).set(rpo.as_secs_f64());
        }
        if let Some(took) = ended.since(o.timeline.started) {
            self.duration.get_or_create(&drill(name)).observe(took.as_secs_f64());
        }
    }

    /// Sets a drill's targets (when it is loaded).
    pub fn targets(&self, name: &str, rto: Option<std::time::Duration>, rpo: Option<std::time::Duration>) {
        if let Some(t) = rto {
            self.target_rto.get_or_create(&drill(name)).set(t.as_secs_f64());
        }
        if let Some(t) = rpo {
            self.target_rpo.get_or_create(&drill(name)).set(t.as_secs_f64());
        }
    }

    /// A scheduled run of `name` not started: `window` (no slot in time), `not-leader`, `stopping`.
    pub fn skipped(&self, name: &str, reason: &'static str) {
        self.skipped.get_or_create(&vec![("name", name.to_string()), ("reason", reason.to_string())]).inc();
    }

    pub fn notification(&self, channel: &str, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.notifications.get_or_create(&vec![("channel", channel.to_string()), ("result", result.to_string())]).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_its_prefix() {
        let m = Metrics::new();
        m.targets("etcd-restore", Some(std::time::Duration::from_secs(900)), None);
        m.skipped("drill/x", "window");
        m.leader.set(1);
        let text = m.encode();
        for name in [
            "firedrill_drill_target_rto_seconds{drill=\"etcd-restore\"} 900.0",
            "firedrill_schedule_skipped_total{name=\"drill/x\",reason=\"window\"} 1",
            "firedrill_leader 1",
            "# TYPE firedrill_schedule_start_lag_seconds histogram",
            "# EOF",
        ] {
            assert!(text.contains(name), "{name} in:\n{text}");
        }
    }
}
