//! Evicting the selected pods, all at once, each retried when the PDB that refused it changes
//! (never on a fixed sleep), under one overall time limit; every attempt and every block is
//! recorded per pod.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, EvictParams, PostParams};
use kube::core::Status;
use kube::{Api, Client};
use serde::Serialize;

use super::budgets::Budgets;
use super::pods::{self, block_message, blocking_pdb};
use crate::clock::{Clock, Timestamp};

/// How one pod's eviction went.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// Eviction (or delete) requests sent.
    pub attempts: u32,
    /// Time spent refused by a PDB, waiting for it to allow a disruption.
    pub blocked_ms: u64,
    /// The PDB that refused it, as `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// What the last refusal said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<String>,
    /// `evicted`, `deleted`, `gone` (already), `failed` or `pending` (the time limit came first).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    blocked_since: Option<Timestamp>,
}

/// How to remove the pods.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// Plain deletes, PDBs bypassed.
    pub delete: bool,
    pub grace_period_seconds: Option<i64>,
}

/// The records of every pod, by `namespace/name`.
pub type Records = Arc<Mutex<BTreeMap<String, PodRecord>>>;

fn update(records: &Records, pod: &str, f: impl FnOnce(&mut PodRecord)) {
    if let Some(r) = records.lock().unwrap_or_else(|e| e.into_inner()).get_mut(pod) {
        f(r);
    }
}

fn ms_between(from: Timestamp, to: Timestamp) -> u64 {
    to.since(from).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One eviction request. kube-rs's `Api::evict` spells the options `delete_options`, a key
/// the API server ignores (ref §1.13), so with a grace period the Eviction goes to the same
/// subresource with the field as the API defines it.
async fn request(client: &Client, pod: &Pod, method: Method) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if method.delete {
        let dp =
            DeleteParams { grace_period_seconds: method.grace_period_seconds.map(|g| g as u32), ..Default::default() };
        return api.delete(name, &dp).await.map(drop);
    }
    let Some(grace) = method.grace_period_seconds else {
        return api.evict(name, &EvictParams::default()).await.map(drop);
    };
    let body = serde_json::json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": {"gracePeriodSeconds": grace},
    });
    let req = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
        .create_subresource("eviction", name, &PostParams::default(), body.to_string().into_bytes())
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Status>(req).await.map(drop)
}

/// Evicts one pod until it is accepted, gone, or refused for good.
async fn evict_one(client: &Client, budgets: &Budgets, records: &Records, clock: Clock, pod: &Pod, method: Method) {
    let k = pods::key(pod);
    loop {
        let before = budgets.versions();
        update(records, &k, |r| r.attempts += 1);
        let outcome = request(client, pod, method).await;
        let now = clock.now();
        let close_block = |r: &mut PodRecord| {
            if let Some(since) = r.blocked_since.take() {
                r.blocked_ms += ms_between(since, now);
            }
        };
        match outcome {
            Ok(()) => {
                return update(records, &k, |r| {
                    close_block(r);
                    r.result = if method.delete { "deleted" } else { "evicted" };
                });
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return update(records, &k, |r| {
                    close_block(r);
                    r.result = "gone";
                });
            }
            Err(kube::Error::Api(s)) if s.code == 429 => {
                let named =
                    blocking_pdb(&s).map(|n| format!("{}/{n}", pod.metadata.namespace.as_deref().unwrap_or_default()));
                let pdb = named.filter(|p| budgets.knows(p)).or_else(|| budgets.pdbs_of(pod).into_iter().next());
                update(records, &k, |r| {
                    r.blocked_since.get_or_insert(now);
                    r.blocked_by.clone_from(&pdb);
                    r.last_refusal = Some(block_message(&s));
                });
                match pdb {
                    Some(p) => {
                        let _ = budgets.changed(&p, &before).await;
                    }
                    // Not a PDB's refusal (API priority and fairness): the server says when.
                    None => {
                        let after = s.details.as_ref().map_or(1, |d| d.retry_after_seconds.max(1));
                        clock.sleep(Duration::from_secs(u64::from(after))).await;
                    }
                }
            }
            Err(kube::Error::Api(s)) if s.code == 500 && s.message.contains("more than one PodDisruptionBudget") => {
                let pdbs = budgets.pdbs_of(pod);
                return update(records, &k, |r| {
                    close_block(r);
                    r.result = "failed";
                    r.error = Some(format!(
                        "it is selected by {} PodDisruptionBudgets ({}), and the Eviction API refuses such pods (500): make one PDB select it",
                        pdbs.len(),
                        pdbs.join(", ")
                    ));
                });
            }
            Err(e) => {
                return update(records, &k, |r| {
                    close_block(r);
                    r.result = "failed";
                    r.error = Some(e.to_string());
                });
            }
        }
    }
}

/// Evicts `pods` concurrently, within `limit`. Returns every pod's record; pods the limit cut
/// off are `pending`, with their blocked time counted up to the limit.
pub async fn evict_all(
    client: &Client,
    budgets: &Budgets,
    clock: Clock,
    pods: &[Pod],
    method: Method,
    limit: Duration,
) -> BTreeMap<String, PodRecord> {
    let records: Records = Arc::new(Mutex::new(
        pods.iter().map(|p| (pods::key(p), PodRecord { result: "pending", ..PodRecord::default() })).collect(),
    ));
    let all = futures::future::join_all(pods.iter().map(|p| evict_one(client, budgets, &records, clock, p, method)));
    let _ = clock.timeout(limit, all).await;
    let now = clock.now();
    let mut out = records.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for r in out.values_mut() {
        if let Some(since) = r.blocked_since.take() {
            r.blocked_ms += ms_between(since, now);
        }
    }
    out
}
