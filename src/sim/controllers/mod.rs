//! The controllers of the simulated cluster, each a small module over the same store, and the one
//! loop that drives them all: a controller names the objects an event concerns, and reconciles
//! one object at a time, asking to be called again after a delay when it waits for something
//! (a pod becoming Ready, a backup finishing).

pub mod crds;
pub mod daemonset;
pub mod disruption;
pub mod garbage;
pub mod job;
pub mod kubelet;
pub mod namespace;
pub mod nodes;
pub mod pods;
pub mod replicaset;
pub mod scheduler;
pub mod statefulset;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::server::SimState;
use super::status::ApiError;
use super::store::Event;

/// What a controller works on: a type's storage key (or a controller's own word), a namespace,
/// a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self { kind: kind.into(), namespace: namespace.into(), name: name.into() }
    }

    /// The key of the object an event is about.
    pub fn of(e: &Event) -> Self {
        Self::new(&e.type_key, &e.namespace, e.object["metadata"]["name"].as_str().unwrap_or_default())
    }
}

/// When to reconcile a key again.
pub type Requeue = Option<Duration>;

/// A controller.
pub struct Controller {
    /// Its name in fault configurations (`stalledControllers`).
    pub name: &'static str,
    /// The keys an event concerns (often none).
    pub interests: fn(&SimState, &Event) -> Vec<Key>,
    /// Every key it looks after, for the start and periodic resyncs.
    pub keys: fn(&SimState) -> Vec<Key>,
    pub reconcile: fn(&SimState, &Key) -> Result<Requeue, ApiError>,
    /// How often every key is looked at again even without events.
    pub resync: Duration,
    /// Whether advancing the simulated clock wakes it (certificate renewals).
    pub follows_clock: bool,
}

/// Starts every controller (Velero's only when it is installed).
pub fn spawn_all(state: Arc<SimState>, shutdown: CancellationToken, velero: bool) -> Vec<tokio::task::JoinHandle<()>> {
    let controllers = vec![
        namespace::controller(),
        crds::controller(),
        garbage::controller(),
        disruption::controller(),
        replicaset::deployments(),
        replicaset::replicasets(),
        statefulset::controller(),
        daemonset::controller(),
        job::controller(),
        scheduler::controller(),
        kubelet::controller(),
        nodes::lifecycle(),
        nodes::volumes(),
    ];
    controllers
        .into_iter()
        .chain(velero.then(super::velero::controller))
        .chain(super::certmanager::controllers())
        .map(|c| tokio::spawn(run(state.clone(), c, shutdown.clone())))
        .collect()
}

async fn run(state: Arc<SimState>, c: Controller, shutdown: CancellationToken) {
    let mut events = state.store.subscribe();
    let mut clock = state.store.clock.subscribe();
    let mut dirty: BTreeSet<Key> = (c.keys)(&state).into_iter().collect();
    let mut delayed: BTreeMap<Instant, BTreeSet<Key>> = BTreeMap::new();
    let mut resync = tokio::time::interval(c.resync);
    resync.tick().await;
    loop {
        if state.faults.stalled(c.name) {
            // A stalled controller keeps its work and does none of it.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.cancelled() => return,
            }
            while let Ok(e) = events.try_recv() {
                dirty.extend((c.interests)(&state, &e));
            }
            continue;
        }
        while let Some(key) = dirty.pop_first() {
            match (c.reconcile)(&state, &key) {
                Ok(None) => {}
                Ok(Some(after)) => {
                    delayed.entry(Instant::now() + after).or_default().insert(key);
                }
                // The object went away meanwhile: its removal is an event of its own, and nothing
                // is left to do for this one.
                Err(e) if e.is_not_found() => {}
                // Someone wrote it first: look again at once, with what they wrote.
                Err(e) if e.is_conflict() => {
                    delayed.entry(Instant::now() + Duration::from_millis(50)).or_default().insert(key);
                }
                Err(e) => {
                    tracing::debug!(controller = c.name, key = ?key, error = %e.message, "reconcile failed; retrying");
                    delayed.entry(Instant::now() + Duration::from_millis(500)).or_default().insert(key);
                }
            }
        }
        let next_delayed = delayed.keys().next().copied();
        tokio::select! {
            received = events.recv() => match received {
                Ok(e) => {
                    dirty.extend((c.interests)(&state, &e));
                    while let Ok(e) = events.try_recv() {
                        dirty.extend((c.interests)(&state, &e));
                    }
                }
                Err(RecvError::Lagged(_)) => dirty.extend((c.keys)(&state)),
                Err(RecvError::Closed) => return,
            },
            _ = async { tokio::time::sleep_until(next_delayed.unwrap_or_else(Instant::now)).await }, if next_delayed.is_some() => {
                let now = Instant::now();
                let due: Vec<Instant> = delayed.range(..=now).map(|(t, _)| *t).collect();
                for t in due {
                    if let Some(keys) = delayed.remove(&t) {
                        dirty.extend(keys);
                    }
                }
            }
            _ = resync.tick() => dirty.extend((c.keys)(&state)),
            changed = clock.changed(), if c.follows_clock => {
                if changed.is_ok() {
                    dirty.extend((c.keys)(&state));
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Keys of every object of a type.
pub fn keys_of(state: &SimState, group: &str, plural: &str) -> Vec<Key> {
    let Some(t) = state.store.registry.all().into_iter().find(|t| t.group == group && t.plural == plural) else {
        return Vec::new();
    };
    state
        .store
        .all(&t, None)
        .iter()
        .map(|o| {
            Key::new(
                &t.key(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}
