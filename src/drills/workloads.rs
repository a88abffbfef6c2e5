//! Workloads (Deployments, StatefulSets, ReplicaSets) and waiting, by watch, until they are
//! available: every desired replica Ready and available for the generation their controller has
//! seen. Shared by the drills that bring workloads back (node-drain, velero-restore). Reads only.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde::Serialize;

use crate::clock::Clock;

/// A workload, by kind (`Deployment`, `StatefulSet`, `ReplicaSet`), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
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

/// Whether a PersistentVolumeClaim is Bound (a claim that is gone has nothing to wait for).
fn bound(pvc: Option<&PersistentVolumeClaim>) -> bool {
    pvc.is_none_or(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
}

/// Waits by watch until PersistentVolumeClaim `ns/name` is Bound; a failed watch is started again.
pub async fn await_bound(client: &Client, clock: Clock, ns: &str, name: &str) {
    let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    while let Err(e) = await_condition(api.clone(), name, bound).await {
        tracing::debug!("watching PersistentVolumeClaim {ns}/{name}: {e}; watching again");
        clock.sleep(Duration::from_millis(200)).await;
    }
}

/// The Deployments and StatefulSets of namespace `ns`.
pub async fn in_namespace(client: &Client, ns: &str) -> Result<Vec<Workload>, kube::Error> {
    let lp = kube::api::ListParams::default();
    let workload = |kind: &str, name: Option<String>| Workload {
        kind: kind.into(),
        namespace: ns.to_string(),
        name: name.unwrap_or_default(),
    };
    let mut out: Vec<Workload> = Api::<Deployment>::namespaced(client.clone(), ns)
        .list_metadata(&lp)
        .await?
        .items
        .into_iter()
        .map(|d| workload("Deployment", d.metadata.name))
        .collect();
    out.extend(
        Api::<StatefulSet>::namespaced(client.clone(), ns)
            .list_metadata(&lp)
            .await?
            .items
            .into_iter()
            .map(|s| workload("StatefulSet", s.metadata.name)),
    );
    Ok(out)
}
