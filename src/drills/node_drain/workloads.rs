//! The workloads a drain displaces, and waiting (by watch) until they are available again and
//! until the evicted pods are gone from the node.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::pods::{self, Workload};
use crate::clock::Clock;

/// The workloads owning `evicted`: a ReplicaSet's Deployment, a StatefulSet, a ReplicaSet that no
/// Deployment owns. Pods of other controllers (Jobs) and bare pods have nothing to wait for.
pub async fn displaced(client: &Client, evicted: &[Pod]) -> Result<BTreeSet<Workload>, kube::Error> {
    let mut out = BTreeSet::new();
    for pod in evicted.iter().filter(|p| !pods::terminal(p)) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let Some((kind, name)) = pods::owner(pod) else { continue };
        let workload = match kind.as_str() {
            "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), &ns).get_opt(&name).await?;
                let deployment = rs
                    .and_then(|rs| rs.metadata.owner_references)
                    .and_then(|os| os.into_iter().find(|o| o.controller == Some(true) && o.kind == "Deployment"));
                match deployment {
                    Some(d) => Workload { kind: "Deployment".into(), namespace: ns, name: d.name },
                    None => Workload { kind, namespace: ns, name },
                }
            }
            "StatefulSet" => Workload { kind, namespace: ns, name },
            _ => continue,
        };
        out.insert(workload);
    }
    Ok(out)
}

/// `(desired, ready, available)` replicas of a workload, read from its spec and status.
trait Replicas {
    fn replicas(&self) -> (i32, i32, i32);
    /// Whether its controller has seen its current generation.
    fn observed(&self) -> bool;
}

macro_rules! replicas {
    ($t:ty) => {
        impl Replicas for $t {
            fn replicas(&self) -> (i32, i32, i32) {
                let s = self.status.clone().unwrap_or_default();
                let desired = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (desired, s.ready_replicas.unwrap_or(0), s.available_replicas.unwrap_or(0))
            }
            fn observed(&self) -> bool {
                self.status.as_ref().and_then(|s| s.observed_generation) >= self.metadata.generation
            }
        }
    };
}
replicas!(Deployment);
replicas!(StatefulSet);
replicas!(ReplicaSet);

/// Whether a workload is fully available: every desired replica Ready and available, for the
/// generation its controller has seen. A workload that is gone has nothing to wait for.
fn available<K: Replicas>(w: Option<&K>) -> bool {
    w.is_none_or(|w| {
        let (desired, ready, avail) = w.replicas();
        w.observed() && ready >= desired && avail >= desired
    })
}

async fn get<K>(client: &Client, w: &Workload) -> Result<Option<(i32, i32, i32)>, kube::Error>
where
    K: Replicas
        + kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), &w.namespace).get_opt(&w.name).await?.map(|k| k.replicas()))
}

/// `(desired, ready, available)` of the workload now; `None` if it no longer exists.
pub async fn counts(client: &Client, w: &Workload) -> Result<Option<(i32, i32, i32)>, kube::Error> {
    match w.kind.as_str() {
        "Deployment" => get::<Deployment>(client, w).await,
        "StatefulSet" => get::<StatefulSet>(client, w).await,
        _ => get::<ReplicaSet>(client, w).await,
    }
}

async fn await_one(client: &Client, w: &Workload) -> Result<(), kube::runtime::wait::Error> {
    let ns = &w.namespace;
    match w.kind.as_str() {
        "Deployment" => {
            let api = Api::<Deployment>::namespaced(client.clone(), ns);
            await_condition(api, &w.name, available::<Deployment>).await.map(drop)
        }
        "StatefulSet" => {
            let api = Api::<StatefulSet>::namespaced(client.clone(), ns);
            await_condition(api, &w.name, available::<StatefulSet>).await.map(drop)
        }
        _ => {
            let api = Api::<ReplicaSet>::namespaced(client.clone(), ns);
            await_condition(api, &w.name, available::<ReplicaSet>).await.map(drop)
        }
    }
}

/// Waits until `w` is available. `await_condition` gives up on the first watch error (ref
/// §1.14), so a failed watch is started again after a short pause.
pub async fn await_available(client: &Client, clock: Clock, w: &Workload) {
    while let Err(e) = await_one(client, w).await {
        tracing::debug!("watching {w}: {e}; watching again");
        clock.sleep(Duration::from_millis(200)).await;
    }
}

/// Waits, by one watch of the node's pods, until none of the pods with `uids` is left on it.
pub async fn await_gone(client: &Client, node: &str, uids: HashSet<String>) {
    let api: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut present: HashSet<String> = HashSet::new();
    let mut listing: HashSet<String> = HashSet::new();
    let mut listed = false;
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(p)) => {
                listing.insert(uid(&p));
            }
            Ok(watcher::Event::InitDone) => {
                present = listing.intersection(&uids).cloned().collect();
                listed = true;
            }
            Ok(watcher::Event::Apply(p)) => {
                if uids.contains(&uid(&p)) {
                    present.insert(uid(&p));
                }
            }
            Ok(watcher::Event::Delete(p)) => {
                present.remove(&uid(&p));
            }
            Err(e) => tracing::debug!("watching the pods of {node}: {e}"),
        }
        if listed && present.is_empty() {
            return;
        }
    }
}
