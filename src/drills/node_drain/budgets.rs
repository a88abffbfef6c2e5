//! The PodDisruptionBudgets of the namespaces being drained, kept current by watches, and the
//! pods waiting on them. A pod refused with 429 waits here until its PDB's status changes and
//! allows a disruption again; then only as many waiters as the budget allows are woken, so a
//! throttled drain sends about two eviction requests per pod instead of a retry storm.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::oneshot;

/// One PDB as last seen.
struct Seen {
    pdb: PodDisruptionBudget,
    version: String,
    allowed: i32,
    waiters: VecDeque<oneshot::Sender<()>>,
}

/// The watched PDBs, by `namespace/name`.
#[derive(Default)]
pub struct Budgets {
    seen: Mutex<HashMap<String, Seen>>,
}

fn key(pdb: &PodDisruptionBudget) -> String {
    format!(
        "{}/{}",
        pdb.metadata.namespace.as_deref().unwrap_or_default(),
        pdb.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A snapshot of the versions of the PDBs, taken before an eviction request so that a change
/// between the request and the wait is not missed.
pub type Versions = HashMap<String, String>;

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts watching the PDBs of `namespaces`; returns once every watch has listed them.
    /// The watches end when the returned guard is dropped.
    pub async fn watch(client: &Client, namespaces: &[String]) -> Result<(Arc<Self>, WatchGuard), kube::Error> {
        let budgets = Arc::new(Self::default());
        let mut tasks = Vec::new();
        for ns in namespaces {
            let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
            // Listing first surfaces a permission error at once, instead of a watch retrying it.
            api.list(&kube::api::ListParams::default().limit(1)).await?;
            let (listed_tx, listed_rx) = oneshot::channel::<()>();
            let b = budgets.clone();
            tasks.push(tokio::spawn(async move {
                let mut listed = Some(listed_tx);
                let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
                let mut listing = Vec::new();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::Apply(p)) => b.apply(p),
                        Ok(watcher::Event::Delete(p)) => b.delete(&key(&p)),
                        Ok(watcher::Event::Init) => listing.clear(),
                        Ok(watcher::Event::InitApply(p)) => {
                            listing.push(key(&p));
                            b.apply(p);
                        }
                        Ok(watcher::Event::InitDone) => {
                            b.forget_except(&listing);
                            if let Some(tx) = listed.take() {
                                let _ = tx.send(());
                            }
                        }
                        Err(e) => tracing::debug!("PodDisruptionBudget watch: {e}"),
                    }
                }
            }));
            let _ = listed_rx.await;
        }
        Ok((budgets, WatchGuard(tasks)))
    }

    fn apply(&self, pdb: PodDisruptionBudget) {
        let k = key(&pdb);
        let version = pdb.metadata.resource_version.clone().unwrap_or_default();
        let allowed = pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed);
        let mut seen = self.lock();
        let entry = seen.entry(k).or_insert_with(|| Seen {
            pdb: pdb.clone(),
            version: String::new(),
            allowed: 0,
            waiters: VecDeque::new(),
        });
        if entry.version == version {
            return;
        }
        entry.pdb = pdb;
        entry.version = version;
        entry.allowed = allowed;
        // Wake as many waiters as the budget now allows: the rest would only be refused again.
        let mut wake = usize::try_from(allowed).unwrap_or(0);
        while wake > 0 {
            match entry.waiters.pop_front() {
                // A waiter that gave up (its drain timed out) takes no share of the budget.
                Some(w) => {
                    if w.send(()).is_ok() {
                        wake -= 1;
                    }
                }
                None => break,
            }
        }
    }

    fn delete(&self, k: &str) {
        // A deleted PDB blocks nobody: every waiter may retry.
        if let Some(s) = self.lock().remove(k) {
            for w in s.waiters {
                let _ = w.send(());
            }
        }
    }

    fn forget_except(&self, listed: &[String]) {
        let gone: Vec<String> = self.lock().keys().filter(|k| !listed.contains(k)).cloned().collect();
        gone.iter().for_each(|k| self.delete(k));
    }

    /// The current version of every PDB.
    pub fn versions(&self) -> Versions {
        self.lock().iter().map(|(k, s)| (k.clone(), s.version.clone())).collect()
    }

    /// `namespace/name` of the PDBs selecting `pod`.
    pub fn pdbs_of(&self, pod: &Pod) -> Vec<String> {
        let seen = self.lock();
        super::pods::pdbs_of(pod, seen.values().map(|s| &s.pdb))
    }

    /// Whether a PDB of that key is known.
    pub fn knows(&self, k: &str) -> bool {
        self.lock().contains_key(k)
    }

    /// Each PDB's status as last seen, for the record.
    pub fn statuses(&self) -> BTreeMap<String, serde_json::Value> {
        self.lock().iter().map(|(k, s)| (k.clone(), serde_json::to_value(&s.pdb.status).unwrap_or_default())).collect()
    }

    /// Resolves when PDB `k` may allow the eviction that was refused after `before` was
    /// taken: at once if it changed since and allows a disruption now, else when a change wakes
    /// this waiter. A PDB that is gone resolves at once.
    pub fn changed(&self, k: &str, before: &Versions) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut seen = self.lock();
        match seen.get_mut(k) {
            Some(s) if before.get(k) != Some(&s.version) && s.allowed > 0 => {
                let _ = tx.send(());
            }
            Some(s) => s.waiters.push_back(tx),
            None => {
                let _ = tx.send(());
            }
        }
        rx
    }
}

/// Stops the PDB watches when dropped.
pub struct WatchGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(rv: &str, allowed: i32) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv},
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}}))
        .unwrap()
    }

    #[tokio::test]
    async fn waiters_wake_only_as_many_as_the_budget_allows() {
        let b = Budgets::default();
        b.apply(pdb("1", 0));
        let before = b.versions();
        let mut first = b.changed("shop/web", &before);
        let mut second = b.changed("shop/web", &before);
        b.apply(pdb("2", 0));
        assert!(first.try_recv().is_err(), "a change that allows nothing wakes nobody");
        b.apply(pdb("3", 1));
        assert!(first.try_recv().is_ok(), "the first waiter goes");
        assert!(second.try_recv().is_err(), "the second would be refused again: it keeps waiting");
        b.apply(pdb("4", 1));
        assert!(second.try_recv().is_ok());
    }

    #[tokio::test]
    async fn a_change_between_the_request_and_the_wait_is_not_missed() {
        let b = Budgets::default();
        b.apply(pdb("1", 0));
        let before = b.versions();
        b.apply(pdb("2", 1));
        let mut rx = b.changed("shop/web", &before);
        assert!(rx.try_recv().is_ok());
        let mut rx = b.changed("shop/web", &b.versions());
        assert!(rx.try_recv().is_err(), "no change since the snapshot: wait");
        b.delete("shop/web");
        assert!(rx.try_recv().is_ok(), "a deleted PDB blocks nobody");
    }
}
