//! The Job controller: runs `parallelism` pods until `completions` have succeeded (condition
//! `Complete`) or more than `backoffLimit` have failed (condition `Failed`). Pods run no
//! containers: how long they take and how they end come from the Job's annotations
//! `firedrill.dev/sim-duration` (default 1s) and `firedrill.dev/sim-result` (`Succeeded` by
//! default, or `Failed`), copied onto its pods.

use std::time::Duration;

use serde_json::{Value, json};

use super::kubelet::{DURATION, RESULT};
use super::pods::{self, controller_ref, from_template, owned_pods, phase, rtype, set_condition, terminating, uid};
use super::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{Event, Part};

const JOBS: &str = "batch/jobs";

pub fn controller() -> Controller {
    Controller {
        name: "job",
        interests,
        keys: |s| keys_of(s, "batch", "jobs"),
        reconcile,
        resync: Duration::from_secs(30),
        follows_clock: false,
    }
}

fn interests(_: &SimState, e: &Event) -> Vec<Key> {
    if e.type_key == JOBS {
        return vec![Key::of(e)];
    }
    if e.type_key == "/pods" {
        return [Some(&e.object), e.previous.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|o| controller_ref(o).filter(|r| r["kind"] == "Job"))
            .map(|r| Key::new(JOBS, &e.namespace, r["name"].as_str().unwrap_or_default()))
            .collect();
    }
    Vec::new()
}

fn finished(job: &Value) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let t = rtype(state, "batch", "jobs");
    let job = state.store.get(&t, &key.namespace, &key.name)?;
    if terminating(&job) {
        return Ok(None);
    }
    let owned = owned_pods(state, &key.namespace, &job);
    let succeeded = owned.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = owned.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let active = owned.iter().filter(|p| !terminating(p) && !matches!(phase(p), "Succeeded" | "Failed")).count() as i64;
    let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
    let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
    let backoff = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    let done = finished(&job) || succeeded >= completions || failed > backoff;
    if !done && job["spec"]["suspend"] != true {
        let to_start = (parallelism.min(completions - succeeded) - active).max(0);
        let pod_type = pods::pods(state);
        for _ in 0..to_start {
            let job_uid = uid(&job).to_string();
            let mut pod = from_template(
                &job["spec"]["template"],
                &job,
                &[
                    ("batch.kubernetes.io/job-name", &key.name),
                    ("batch.kubernetes.io/controller-uid", &job_uid),
                    ("job-name", &key.name),
                    ("controller-uid", &job_uid),
                ],
            );
            pod["metadata"]["generateName"] = json!(format!("{}-", key.name));
            for a in [DURATION, RESULT] {
                if let Some(v) = job["metadata"]["annotations"][a].as_str() {
                    pod["metadata"]["annotations"][a] = json!(v);
                }
            }
            if pod["metadata"]["annotations"][DURATION].is_null() {
                pod["metadata"]["annotations"][DURATION] = json!("1s");
            }
            state.store.create(&pod_type, &key.namespace, pod, false)?;
        }
    }
    let now = state.store.clock.stamp();
    let ready = owned.iter().filter(|p| pods::ready(p)).count();
    state.store.mutate(&t, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        {
            let s = &mut new["status"];
            if s.get("startTime").is_none() {
                s["startTime"] = json!(now);
            }
            s["active"] = json!(if done { 0 } else { active });
            s["succeeded"] = json!(succeeded);
            s["failed"] = json!(failed);
            s["ready"] = json!(ready);
            s["terminating"] = json!(owned.iter().filter(|p| terminating(p)).count());
            s["uncountedTerminatedPods"] = json!({});
            for zeroable in ["active", "succeeded", "failed"] {
                if s[zeroable] == 0 {
                    s.as_object_mut().map(|m| m.remove(zeroable));
                }
            }
        }
        if !finished(old) {
            if succeeded >= completions {
                set_condition(
                    &mut new,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                );
                set_condition(
                    &mut new,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                );
                new["status"]["completionTime"] = json!(now);
            } else if failed > backoff {
                set_condition(
                    &mut new,
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    &now,
                );
                set_condition(
                    &mut new,
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    &now,
                );
            }
        }
        Ok(Some(new))
    })?;
    Ok(None)
}
