//! The workloads a drain displaces, and waiting (by watch) until the evicted pods are gone from
//! the node. Waiting until a workload is available again is shared with other drills:
//! [`crate::drills::workloads`].

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use std::collections::{BTreeSet, HashSet};

use super::pods::{self, Workload};
pub use crate::drills::workloads::{await_available, counts};

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
