//! When each scheduled drill or scenario fires: plain functions and one small state, no I/O and
//! no clock of their own (the daemon passes `now`), so that every rule is tested with made-up
//! instants, across daylight-saving changes included.
//!
//! - A schedule's fire times come from [`Schedule::upcoming`] in its time zone (a wall-clock time
//!   that occurs twice when daylight saving ends fires once; one that does not occur is skipped,
//!   as cron does).
//! - **Jitter** delays each start by a pseudo-random amount below `jitter`, fixed by the name and
//!   the fire time, so that a restarted daemon or a second replica computes the same start.
//! - **Missed runs** after downtime: the state remembers the last fire time each job handled.
//!   `skip` forgets what was missed; `runOnce` starts one run at once for all that was missed.
//!   A job never seen before starts at its next fire time.
//! - **Window**: a run that cannot start (no free slot) within `window` of its fire time is
//!   skipped. Without a window it waits for a slot.
//! - **Limits**: at most `global` runs at once, and at most `per_cluster` on one cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::plan::{MissedRuns, Schedule};

/// A drill or a scenario with a schedule.
#[derive(Debug, Clone)]
pub struct Job {
    /// The drill's or scenario's name; unique among jobs (a drill and a scenario of the same
    /// name are told apart by `kind`).
    pub name: String,
    pub kind: JobKind,
    pub schedule: Schedule,
    /// The clusters it acts on (for the per-cluster limit).
    pub clusters: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    Drill,
    Scenario,
}

impl Job {
    /// `drill/<name>` or `scenario/<name>`: the key of its state and metrics.
    pub fn key(&self) -> String {
        format!("{}/{}", if self.kind == JobKind::Drill { "drill" } else { "scenario" }, self.name)
    }
}

/// One start the daemon should make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Due {
    pub key: String,
    /// The fire time it is for.
    pub scheduled: Timestamp,
    /// The fire time plus jitter: not before this.
    pub start_at: Timestamp,
    /// Not after this (the fire time plus the window), if there is a window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_start: Option<Timestamp>,
    /// Started for fire times missed while the daemon was down (`runOnce`).
    pub catch_up: bool,
}

/// The jitter of `key`'s run for fire time `at`: below `max`, the same every time it is asked.
pub fn jitter(key: &str, at: Timestamp, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (key, at.millis()).hash(&mut h);
    Duration::from_millis(h.finish() % max.as_millis().max(1) as u64)
}

fn due(job: &Job, scheduled: Timestamp, catch_up: bool) -> Due {
    let key = job.key();
    let start_at = scheduled + jitter(&key, scheduled, job.schedule.jitter);
    Due { start_at, latest_start: job.schedule.window.map(|w| scheduled + w), scheduled, key, catch_up }
}

/// What the daemon remembers across restarts: the last fire time handled per job key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub last: BTreeMap<String, Timestamp>,
}

impl State {
    /// The runs of `job` due by `now`, and marks them handled. At most one: a job behind by
    /// several fire times runs once (`runOnce`) or not at all (`skip`), never once per miss.
    /// A job seen for the first time has missed nothing.
    pub fn take_due(&mut self, job: &Job, now: Timestamp) -> Option<Due> {
        let key = job.key();
        let Some(&last) = self.last.get(&key) else {
            // First sight: the fire time just before now counts as handled.
            let previous = self.previous_fire(job, now);
            self.last.insert(key, previous);
            return None;
        };
        let passed: Vec<Timestamp> = upcoming_until(&job.schedule, last, now);
        let newest = *passed.last()?;
        self.last.insert(key, newest);
        // The newest fire time is "now" if it is within a minute or the window: started late
        // by a busy daemon or a short sleep, not missed.
        let grace = job.schedule.window.unwrap_or(Duration::from_secs(60));
        let missed_only = now.since(newest).is_some_and(|late| late > grace);
        match (missed_only, job.schedule.missed_runs) {
            (false, _) => Some(due(job, newest, passed.len() > 1)),
            (true, MissedRuns::RunOnce) => {
                let mut d = due(job, newest, true);
                // A catch-up starts now, jitter still applied, and its window counts from now.
                d.start_at = now + jitter(&d.key, newest, job.schedule.jitter);
                d.latest_start = job.schedule.window.map(|w| now + w);
                Some(d)
            }
            (true, MissedRuns::Skip) => None,
        }
    }

    /// The next instant `job` fires after what it has handled (before jitter).
    pub fn next_fire(&self, job: &Job, now: Timestamp) -> Option<Timestamp> {
        let from = self.last.get(&job.key()).copied().unwrap_or(now).max(now);
        job.schedule.upcoming(from, 1).first().copied()
    }

    /// The newest fire time not after `now`, or `now` when there is none within a year. Looks
    /// back a minute, an hour, a day, a month, a year: a schedule every few seconds is not
    /// walked through for a whole year.
    fn previous_fire(&self, job: &Job, now: Timestamp) -> Timestamp {
        [60, 3_600, 86_400, 32 * 86_400, 366 * 86_400]
            .into_iter()
            .find_map(|back| upcoming_until(&job.schedule, now - Duration::from_secs(back), now).last().copied())
            .unwrap_or(now)
    }
}

/// Fire times after `after`, up to and including `until`.
fn upcoming_until(schedule: &Schedule, after: Timestamp, until: Timestamp) -> Vec<Timestamp> {
    let mut out = Vec::new();
    let mut from = after;
    loop {
        let batch = schedule.upcoming(from, 64);
        let Some(&last) = batch.last() else { return out };
        out.extend(batch.into_iter().take_while(|t| *t <= until));
        if last > until {
            return out;
        }
        from = last;
    }
}

/// How many runs may go at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub global: usize,
    pub per_cluster: usize,
}

/// The runs going now, by job key, with their clusters.
#[derive(Debug, Clone, Default)]
pub struct Running {
    runs: BTreeMap<String, BTreeSet<String>>,
}

impl Running {
    /// Whether `job` may start under `limits` (and is not running already: a job never overlaps
    /// itself).
    pub fn admits(&self, job: &Job, limits: Limits) -> bool {
        if self.runs.contains_key(&job.key()) || self.runs.len() >= limits.global {
            return false;
        }
        job.clusters.iter().all(|c| self.runs.values().filter(|cs| cs.contains(c)).count() < limits.per_cluster)
    }

    pub fn start(&mut self, job: &Job) {
        self.runs.insert(job.key(), job.clusters.clone());
    }

    pub fn contains(&self, key: &str) -> bool {
        self.runs.contains_key(key)
    }

    pub fn finish(&mut self, key: &str) {
        self.runs.remove(key);
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, tz: &str, missed: MissedRuns, jitter: Duration, window: Option<Duration>) -> Schedule {
        Schedule {
            cron: cron.into(),
            parsed: format!("0 {cron}").parse().expect("a cron expression"),
            time_zone: tz.parse().unwrap(),
            jitter,
            window,
            missed_runs: missed,
        }
    }

    fn job(name: &str, s: Schedule, clusters: &[&str]) -> Job {
        Job {
            name: name.into(),
            kind: JobKind::Drill,
            schedule: s,
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// Steps `now` minute by minute from `from` to `to`, collecting what fires.
    fn fired(job: &Job, from: &str, to: &str) -> Vec<String> {
        let mut state = State::default();
        let mut now = at(from);
        state.take_due(job, now);
        let mut out = Vec::new();
        while now < at(to) {
            now = now + Duration::from_secs(60);
            if let Some(d) = state.take_due(job, now) {
                out.push(d.scheduled.to_string());
            }
        }
        out
    }

    #[test]
    fn a_daily_schedule_fires_at_its_local_time_across_both_daylight_saving_changes() {
        // 02:30 Europe/Berlin: on 29 March 2026 02:30 does not exist (clocks go 02:00 → 03:00);
        // on 25 October 2026 it occurs twice (03:00 → 02:00) and fires once.
        let j = job("d", schedule("30 2 * * *", "Europe/Berlin", MissedRuns::Skip, Duration::ZERO, None), &[]);
        assert_eq!(
            fired(&j, "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z"),
            ["2026-03-28T01:30:00.000Z", "2026-03-30T00:30:00.000Z", "2026-03-31T00:30:00.000Z"],
            "no 02:30 on the 29th; UTC+1 before, UTC+2 after"
        );
        assert_eq!(
            fired(&j, "2026-10-23T12:00:00Z", "2026-10-27T12:00:00Z"),
            [
                "2026-10-24T00:30:00.000Z",
                "2026-10-25T00:30:00.000Z",
                "2026-10-26T01:30:00.000Z",
                "2026-10-27T01:30:00.000Z"
            ],
            "the repeated 02:30 of the 25th fires once, at its first occurrence"
        );
    }

    #[test]
    fn an_hourly_schedule_in_new_york_fires_23_and_24_times_on_the_23_and_25_hour_days() {
        let j = job("h", schedule("0 * * * *", "America/New_York", MissedRuns::Skip, Duration::ZERO, None), &[]);
        // 8 March 2026 is 23 hours long in New York; 1 November 2026 is 25 hours long, but the
        // repeated 01:00 fires once.
        assert_eq!(fired(&j, "2026-03-08T04:59:00Z", "2026-03-09T03:59:00Z").len(), 23);
        assert_eq!(fired(&j, "2026-11-01T03:59:00Z", "2026-11-02T04:59:00Z").len(), 24);
    }

    #[test]
    fn jitter_stays_below_its_bound_and_is_the_same_every_time_it_is_asked() {
        let max = Duration::from_secs(300);
        let t = at("2026-11-21T03:00:00Z");
        let mut spread = BTreeSet::new();
        for i in 0..1000 {
            let j = jitter(&format!("drill/d{i}"), t, max);
            assert!(j < max, "{j:?}");
            assert_eq!(j, jitter(&format!("drill/d{i}"), t, max));
            spread.insert(j.as_secs() / 30);
        }
        assert_eq!(spread.len(), 10, "1000 jobs land in every 30 s tenth of the 5 min bound");
        assert_eq!(jitter("drill/x", t, Duration::ZERO), Duration::ZERO);
        let j = job("j", schedule("0 3 * * *", "UTC", MissedRuns::Skip, max, None), &[]);
        let mut state = State::default();
        state.take_due(&j, at("2026-11-21T02:59:00Z"));
        let d = state.take_due(&j, at("2026-11-21T03:00:00Z")).unwrap();
        assert_eq!(d.scheduled, t);
        assert!(d.start_at >= t && d.start_at.since(t).unwrap() < max, "{d:?}");
    }

    #[test]
    fn after_downtime_skip_forgets_the_missed_runs_and_run_once_runs_one() {
        let hourly = |m| job("h", schedule("0 * * * *", "UTC", m, Duration::ZERO, None), &[]);
        for (policy, expected) in [(MissedRuns::Skip, None), (MissedRuns::RunOnce, Some(true))] {
            let j = hourly(policy);
            let mut state = State::default();
            state.take_due(&j, at("2026-11-21T00:30:00Z"));
            // Down from 00:30 to 05:20: 01:00 … 05:00 were missed.
            let d = state.take_due(&j, at("2026-11-21T05:20:00Z"));
            assert_eq!(d.as_ref().map(|d| d.catch_up), expected, "{policy:?}: {d:?}");
            if let Some(d) = d {
                assert_eq!(d.scheduled, at("2026-11-21T05:00:00Z"), "one run, for the newest missed time");
                assert_eq!(d.start_at, at("2026-11-21T05:20:00Z"), "at once");
            }
            assert_eq!(state.take_due(&j, at("2026-11-21T05:21:00Z")), None, "{policy:?}: only one");
            let next = state.take_due(&j, at("2026-11-21T06:00:00Z")).expect("the next hour fires as usual");
            assert!(!next.catch_up);
            assert_eq!(state.next_fire(&j, at("2026-11-21T06:00:30Z")), Some(at("2026-11-21T07:00:00Z")));
        }
    }

    #[test]
    fn a_job_seen_first_has_missed_nothing_and_a_late_tick_is_not_a_miss() {
        let j = job("d", schedule("0 3 * * *", "UTC", MissedRuns::Skip, Duration::ZERO, None), &[]);
        let mut state = State::default();
        assert_eq!(state.take_due(&j, at("2026-11-21T10:00:00Z")), None, "03:00 today passed before it was known");
        assert_eq!(state.take_due(&j, at("2026-11-22T03:00:40Z")).map(|d| d.catch_up), Some(false), "40 s late");
        let w = job(
            "w",
            schedule("0 3 * * *", "UTC", MissedRuns::Skip, Duration::ZERO, Some(Duration::from_secs(600))),
            &[],
        );
        let mut state = State::default();
        state.take_due(&w, at("2026-11-21T10:00:00Z"));
        let d = state.take_due(&w, at("2026-11-22T03:09:00Z")).expect("inside the 10 min window");
        assert_eq!(d.latest_start, Some(at("2026-11-22T03:10:00Z")));
        assert_eq!(state.take_due(&w, at("2026-11-23T03:11:00Z")), None, "11 min late: skipped");
    }

    #[test]
    fn limits_hold_globally_per_cluster_and_a_job_never_overlaps_itself() {
        let s = || schedule("* * * * *", "UTC", MissedRuns::Skip, Duration::ZERO, None);
        let (a1, a2, b1, c) =
            (job("a1", s(), &["a"]), job("a2", s(), &["a"]), job("b1", s(), &["b"]), job("c", s(), &["c"]));
        let limits = Limits { global: 2, per_cluster: 1 };
        let mut running = Running::default();
        assert!(running.admits(&a1, limits));
        running.start(&a1);
        assert!(!running.admits(&a1, limits), "not twice at once");
        assert!(!running.admits(&a2, limits), "cluster a is busy");
        assert!(running.admits(&b1, limits));
        running.start(&b1);
        assert!(!running.admits(&c, limits), "two runs: the global limit");
        running.finish(&a1.key());
        assert!(running.admits(&a2, limits) && running.admits(&c, limits));
        assert_eq!(running.len(), 1);
    }
}
