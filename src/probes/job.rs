//! `job` probes: a command run in a short-lived Job in the namespace a drill verifies (the
//! scratch namespace), which passes when the Job completes and fails with its container's exit
//! code. Each attempt is its own Job, watched (never polled) to `Complete` or `Failed` and
//! deleted afterwards, also when the attempt times out; the scratch namespace's deletion is the
//! backstop.
//!
//! The Job and its pods carry `app.kubernetes.io/managed-by: firedrill`, so `sameCountAsSource`
//! probes do not count them. The record shows the image and the command, which are the drill
//! file's own text.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{Check, Namespaces, ProbeError};
use crate::spec::{Loc, Validator};

/// How long a job probe's attempt may take when the probe sets no `timeout`: an image pull and
/// a pod start take far longer than an HTTP answer. With the default retry, two attempts still
/// fit the velero-restore drill's 10-minute verify phase.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(240);

/// How long Kubernetes keeps a finished probe Job should firedrill's own deletion not happen.
const TTL_SECONDS_AFTER_FINISHED: i64 = 60;

/// A command run once in a Job's pod.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "JobProbe")]
pub struct JobSpec {
    /// The container image, e.g. `busybox:1.36`.
    pub image: Loc<String>,
    /// The command and its arguments, e.g. `[sh, -c, "nc -z web 80"]`; exit code 0 passes.
    /// `$(SCRATCH_NAMESPACE)` is replaced by the namespace's name (the container also has it
    /// as the environment variable `SCRATCH_NAMESPACE`).
    pub command: Loc<Vec<String>>,
    /// Annotations for the Job's pod (e.g. for a service mesh or the simulator).
    #[serde(default)]
    pub pod_annotations: BTreeMap<String, String>,
    /// The ServiceAccount the pod runs as (the namespace's `default` otherwise).
    #[serde(default)]
    pub service_account_name: Option<Loc<String>>,
}

pub(super) fn validate(v: &mut Validator, spec: &Loc<JobSpec>) -> Option<Check> {
    let j = &spec.value;
    let image = v.non_empty(&j.image, "job.image");
    if j.command.value.is_empty() || j.command.value[0].trim().is_empty() {
        v.error(
            j.command.at(),
            "a job probe runs a command: write it as a list, e.g. `command: [sh, -c, \"nc -z web 80\"]`",
        );
        return None;
    }
    let service_account_name = match &j.service_account_name {
        Some(s) => Some(v.non_empty(s, "job.serviceAccountName")?),
        None => None,
    };
    Some(Check::Job {
        image: image?,
        command: j.command.value.clone(),
        pod_annotations: j.pod_annotations.clone(),
        service_account_name,
    })
}

/// A Job name for one attempt of probe `probe`: `fd-probe-<probe>-<5 random>`, lowercase
/// letters, digits and `-`, at most 63 characters (a Job's name becomes its pods' label value).
pub fn job_name(probe: &str, rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut base: String =
        probe.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    base.truncate(63 - "fd-probe-".len() - "-xxxxx".len());
    let base = base.trim_matches('-');
    let suffix: String = (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    if base.is_empty() { format!("fd-probe-{suffix}") } else { format!("fd-probe-{base}-{suffix}") }
}

/// What one attempt runs.
pub(super) struct Run<'a> {
    pub probe: &'a str,
    pub image: &'a str,
    pub command: &'a [String],
    pub pod_annotations: &'a BTreeMap<String, String>,
    pub service_account_name: Option<&'a str>,
    pub timeout: Duration,
}

/// The Job for one attempt in `namespace`.
pub(super) fn manifest(run: &Run<'_>, name: &str, namespace: &str) -> Result<Job, ProbeError> {
    let labels = json!({"app.kubernetes.io/managed-by": "firedrill", "app.kubernetes.io/component": "probe"});
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": "probe",
            "image": run.image,
            "command": run.command,
            "env": [{"name": "SCRATCH_NAMESPACE", "value": namespace}],
        }],
    });
    if let Some(sa) = run.service_account_name {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            // The attempt's timeout, rounded up: Kubernetes stops the pod should firedrill not.
            "activeDeadlineSeconds": run.timeout.as_secs() + u64::from(run.timeout.subsec_nanos() > 0),
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {
                "metadata": {"labels": labels, "annotations": run.pod_annotations},
                "spec": pod_spec,
            },
        },
    });
    serde_json::from_value(job).map_err(|e| ProbeError::Kubernetes(format!("cannot build the probe's Job: {e}")))
}

/// Whether a Job has ended: its `Complete` or `Failed` condition is `True`.
fn ended(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"].into_iter().find(|t| conditions.iter().any(|c| c.type_ == *t && c.status == "True"))
}

/// The verdict on an ended Job from its pods: `Complete` passes; `Failed` reports the exit code
/// of a container that ended, else the Job's own reason (a deadline, a pod that never started).
pub fn outcome(job: &Job, shown: &str, pods: &[Pod]) -> Result<(), ProbeError> {
    if ended(job) == Some("Complete") {
        return Ok(());
    }
    let code = pods
        .iter()
        .flat_map(|p| p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default())
        .filter_map(|c| c.state.and_then(|s| s.terminated).map(|t| t.exit_code))
        .find(|c| *c != 0);
    if let Some(code) = code {
        return Err(ProbeError::Exit { job: shown.to_string(), code });
    }
    let failed = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed" && c.status == "True"));
    let why = failed
        .map(|c| format!("{}: {}", c.reason.as_deref().unwrap_or("no reason"), c.message.as_deref().unwrap_or("")))
        .unwrap_or_else(|| "no reason given".into());
    Err(ProbeError::Kubernetes(format!("{shown} failed before its container ended ({why})")))
}

/// Deletes the attempt's Job when dropped (an attempt cut off by its timeout) unless
/// [`Cleanup::delete`] already did.
struct Cleanup {
    api: Api<Job>,
    name: String,
    armed: bool,
}

impl Cleanup {
    /// Deletes the Job and its pods (in the background, as `kubectl delete job` does).
    async fn delete(mut self) {
        self.armed = false;
        delete(&self.api, &self.name).await;
    }
}

async fn delete(api: &Api<Job>, name: &str) {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(job = name, error = %e, "cannot delete a probe's Job; the namespace's deletion will"),
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (api, name) = (self.api.clone(), std::mem::take(&mut self.name));
            rt.spawn(async move { delete(&api, &name).await });
        }
    }
}

/// One attempt: create the Job, watch it until it ends, read its pods' exit codes, delete it.
pub(super) async fn attempt(ns: &Namespaces, run: &Run<'_>) -> Result<(), ProbeError> {
    let name = job_name(run.probe, &mut rand::rng());
    let shown = format!("Job {}/{name}", ns.namespace);
    let jobs: Api<Job> = Api::namespaced(ns.client.clone(), &ns.namespace);
    let job = manifest(run, &name, &ns.namespace)?;
    let api_error = |e: kube::Error| ProbeError::Kubernetes(format!("{shown}: {e}"));
    // Armed before the create: a create cut off by the timeout may still have happened.
    let cleanup = Cleanup { api: jobs.clone(), name: name.clone(), armed: true };
    jobs.create(&PostParams::default(), &job).await.map_err(api_error)?;
    let done = kube::runtime::wait::await_condition(jobs.clone(), &name, |j: Option<&Job>| {
        j.is_none_or(|j| ended(j).is_some())
    })
    .await
    .map_err(|e| ProbeError::Kubernetes(format!("watching {shown}: {e}")))?;
    let result = match done {
        None => Err(ProbeError::Kubernetes(format!("{shown} was deleted before it ended"))),
        Some(job) => {
            let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.namespace);
            let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
            let pods = pods.list(&lp).await.map_err(api_error)?;
            outcome(&job, &shown, &pods.items)
        }
    };
    cleanup.delete().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(command: &'a [String], annotations: &'a BTreeMap<String, String>) -> Run<'a> {
        Run {
            probe: "db check",
            image: "busybox:1.36",
            command,
            pod_annotations: annotations,
            service_account_name: Some("checker"),
            timeout: Duration::from_millis(1500),
        }
    }

    #[test]
    fn job_names_are_dns_labels_of_at_most_63_characters() {
        let mut rng = rand::rng();
        let short = job_name("DB check_1", &mut rng);
        assert!(
            short.starts_with("fd-probe-db-check-1-") && short.len() == "fd-probe-db-check-1-".len() + 5,
            "{short}"
        );
        let long = job_name(&"x".repeat(100), &mut rng);
        assert!(long.len() <= 63, "{long}");
        let odd = job_name("--", &mut rng);
        assert!(odd.starts_with("fd-probe-") && !odd.contains("--"), "{odd}");
        for n in [short, long, odd] {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
            assert!(!n.ends_with('-'), "{n}");
        }
        assert_ne!(job_name("a", &mut rng), job_name("a", &mut rng), "each attempt its own Job");
    }

    #[test]
    fn the_job_runs_once_labelled_as_firedrill_s_with_the_pod_annotations() {
        let command = vec!["sh".to_string(), "-c".into(), "exit 0".into()];
        let annotations = BTreeMap::from([("firedrill.dev/sim-result".to_string(), "Failed".to_string())]);
        let job = serde_json::to_value(manifest(&run(&command, &annotations), "fd-probe-x-abcde", "scratch").unwrap())
            .unwrap();
        assert_eq!(job["metadata"]["labels"]["app.kubernetes.io/managed-by"], "firedrill");
        let spec = &job["spec"];
        assert_eq!((spec["backoffLimit"].as_i64(), spec["activeDeadlineSeconds"].as_i64()), (Some(0), Some(2)));
        assert!(spec["ttlSecondsAfterFinished"].as_i64().is_some());
        let template = &spec["template"];
        assert_eq!(template["metadata"]["labels"]["app.kubernetes.io/managed-by"], "firedrill");
        assert_eq!(template["metadata"]["annotations"]["firedrill.dev/sim-result"], "Failed");
        assert_eq!(template["spec"]["restartPolicy"], "Never");
        assert_eq!(template["spec"]["serviceAccountName"], "checker");
        let container = &template["spec"]["containers"][0];
        assert_eq!((container["image"].as_str(), &container["command"]), (Some("busybox:1.36"), &json!(command)));
        assert_eq!(container["env"][0], json!({"name": "SCRATCH_NAMESPACE", "value": "scratch"}));
    }

    #[test]
    fn a_job_probe_needs_the_drill_s_namespace_and_a_command_and_waits_longer_by_default() {
        let yaml = "name: db\njob: {image: busybox:1.36, command: [sh, -c, \"nc -z db.$(SCRATCH_NAMESPACE) 5432\"]}\n";
        let p = crate::probes::validated(yaml, true).unwrap();
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        let Check::Job { command, .. } = &p.in_namespace("fd-x").check else { panic!("{p:?}") };
        assert_eq!(command[2], "nc -z db.fd-x 5432");
        let timed = crate::probes::validated(&format!("{yaml}timeout: 30s\n"), true).unwrap();
        assert_eq!(timed.timeout, Duration::from_secs(30));

        let errors = crate::probes::validated(yaml, false).unwrap_err();
        assert_eq!(
            errors,
            [
                "2:6: a job probe runs in the namespace a drill restores into, and this drill has none: use `http`, `tcp` or `prometheus`"
            ]
        );
        let errors = crate::probes::validated("name: db\njob: {image: busybox, command: []}\n", true).unwrap_err();
        assert!(errors[0].starts_with("2:32: a job probe runs a command"), "{errors:?}");
    }

    fn job(condition: &str, reason: &str) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": {"conditions": [
            {"type": condition, "status": "True", "reason": reason, "message": "why"}]}}))
        .unwrap()
    }

    fn pod(exit: i64) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [
            {"name": "probe", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": exit}}}]}}))
        .unwrap()
    }

    #[test]
    fn a_failed_job_reports_its_container_s_exit_code_or_else_its_reason() {
        assert_eq!(outcome(&job("Complete", "CompletionsReached"), "Job s/j", &[pod(0)]), Ok(()));
        let err = outcome(&job("Failed", "BackoffLimitExceeded"), "Job s/j", &[pod(3)]).unwrap_err();
        assert_eq!(err, ProbeError::Exit { job: "Job s/j".into(), code: 3 });
        assert_eq!(err.to_string(), "the command exited with code 3 (Job s/j)");
        let err = outcome(&job("Failed", "DeadlineExceeded"), "Job s/j", &[]).unwrap_err();
        assert!(err.to_string().contains("Job s/j failed before its container ended (DeadlineExceeded: why)"), "{err}");
    }
}
