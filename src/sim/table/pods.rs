//! The pod printer (`printPod`): READY counts ready containers (sidecars included), STATUS is the
//! phase overridden by the first telling container state, RESTARTS adds when the last restart was.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::cells::{self, int, list, text};
use super::{Column, Printer, Row, age, docs};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    (group.is_empty() && kind == "Pod").then(|| Printer::builtin(columns(), row))
}

fn columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        Column::new("Status", "string", "The aggregate status of the containers in this pod."),
        Column::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        Column::age(),
        Column::new("IP", "string", docs::POD_IP).wide(),
        Column::new("Node", "string", docs::NODE_NAME).wide(),
        Column::new("Nominated Node", "string", docs::NOMINATED_NODE_NAME).wide(),
        Column::new("Readiness Gates", "string", docs::READINESS_GATES).wide(),
    ]
}

/// Restarts counted so far, and when the latest of those containers last terminated.
#[derive(Debug, Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int(&status["restartCount"]);
        self.last = self.last.max(age::time(&status["lastState"]["terminated"]["finishedAt"]));
    }

    /// `2`, or `2 (5m ago)` when a container's last termination is known.
    fn cell(&self, now: DateTime<Utc>) -> String {
        match self.last {
            Some(t) if self.count != 0 => format!("{} ({} ago)", self.count, age::human(now - t)),
            _ => self.count.to_string(),
        }
    }
}

/// What the container statuses add up to.
#[derive(Debug)]
struct Summary {
    reason: String,
    ready: i64,
    total: i64,
    restarts: Restarts,
}

fn row(pod: &Value, now: DateTime<Utc>) -> Row {
    let s = summarize(pod);
    let cells = vec![
        json!(text(&pod["metadata"]["name"])),
        json!(format!("{}/{}", s.ready, s.total)),
        json!(s.reason),
        json!(s.restarts.cell(now)),
        json!(age::since(&pod["metadata"]["creationTimestamp"], now)),
        json!(cells::or_none(pod_ip(pod))),
        json!(cells::or_none(text(&pod["spec"]["nodeName"]))),
        json!(cells::or_none(text(&pod["status"]["nominatedNodeName"]))),
        json!(readiness_gates(pod)),
    ];
    Row { cells, conditions: conditions(pod) }
}

fn summarize(pod: &Value) -> Summary {
    let sidecars = sidecars(pod);
    let total = i64::try_from(list(&pod["spec"]["containers"]).len() + sidecars.len()).unwrap_or(i64::MAX);
    let mut s = Summary { reason: phase_reason(pod), ready: 0, total, restarts: Restarts::default() };
    let (initializing, sidecar_restarts) = init_containers(pod, &sidecars, &mut s);
    if !initializing || condition_true(pod, "Initialized") {
        // Once initialised, only sidecars' restarts count among the init containers'.
        s.restarts = sidecar_restarts;
        app_containers(pod, &mut s);
    }
    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if deleting && pod["status"]["reason"] == "NodeLost" {
        s.reason = "Unknown".into();
    } else if deleting && !matches!(text(&pod["status"]["phase"]), "Succeeded" | "Failed") {
        s.reason = "Terminating".into();
    }
    s
}

/// The status's reason, else its phase; `SchedulingGated` while scheduling gates hold the pod.
fn phase_reason(pod: &Value) -> String {
    let status = &pod["status"];
    let gated =
        list(&status["conditions"]).iter().any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated");
    if gated {
        return "SchedulingGated".into();
    }
    let reason = text(&status["reason"]);
    if reason.is_empty() { text(&status["phase"]).into() } else { reason.into() }
}

/// Init containers with `restartPolicy: Always`: sidecars, which count towards READY.
fn sidecars(pod: &Value) -> Vec<&str> {
    list(&pod["spec"]["initContainers"])
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .map(|c| text(&c["name"]))
        .collect()
}

/// Walks the init container statuses up to the first one still holding the pod back, which sets
/// STATUS (`Init:1/2`, `Init:CrashLoopBackOff`, `Init:ExitCode:1`). Returns whether one did, and the
/// restarts of the sidecars seen.
fn init_containers(pod: &Value, sidecars: &[&str], s: &mut Summary) -> (bool, Restarts) {
    let declared = list(&pod["spec"]["initContainers"]).len();
    let mut sidecar_restarts = Restarts::default();
    for (i, c) in list(&pod["status"]["initContainerStatuses"]).iter().enumerate() {
        s.restarts.add(c);
        let sidecar = sidecars.contains(&text(&c["name"]));
        if sidecar {
            sidecar_restarts.add(c);
        }
        let terminated = &c["state"]["terminated"];
        let waiting = text(&c["state"]["waiting"]["reason"]);
        if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
            continue;
        }
        if sidecar && c["started"] == true {
            s.ready += i64::from(c["ready"] == true);
            continue;
        }
        s.reason = if terminated.is_object() {
            format!("Init:{}", termination(terminated))
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{declared}")
        };
        return (true, sidecar_restarts);
    }
    (false, sidecar_restarts)
}

/// Walks the app container statuses from the last to the first: a waiting or terminated reason
/// becomes STATUS, a ready running container counts towards READY.
fn app_containers(pod: &Value, s: &mut Summary) {
    let mut running = false;
    for c in list(&pod["status"]["containerStatuses"]).iter().rev() {
        s.restarts.add(c);
        let state = &c["state"];
        let waiting = text(&state["waiting"]["reason"]);
        if !waiting.is_empty() {
            s.reason = waiting.into();
        } else if state["terminated"].is_object() {
            s.reason = termination(&state["terminated"]);
        } else if c["ready"] == true && state["running"].is_object() {
            running = true;
            s.ready += 1;
        }
    }
    // A pod whose other containers completed is still Running while one runs.
    if s.reason == "Completed" && running {
        s.reason = if condition_true(pod, "Ready") { "Running" } else { "NotReady" }.into();
    }
}

/// A terminated state's reason, else `Signal:9` or `ExitCode:1`.
fn termination(terminated: &Value) -> String {
    let reason = text(&terminated["reason"]);
    if !reason.is_empty() {
        return reason.into();
    }
    match int(&terminated["signal"]) {
        0 => format!("ExitCode:{}", int(&terminated["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

fn condition_true(pod: &Value, kind: &str) -> bool {
    cells::condition(&pod["status"]["conditions"], kind).is_some_and(|c| c["status"] == "True")
}

/// The first pod IP; `status.podIP` wins, as the v1 → internal conversion makes it.
fn pod_ip(pod: &Value) -> &str {
    let ip = text(&pod["status"]["podIP"]);
    if ip.is_empty() { text(&pod["status"]["podIPs"][0]["ip"]) } else { ip }
}

/// `1/2`: how many readiness gates' conditions are True, or `<none>`.
fn readiness_gates(pod: &Value) -> String {
    let gates = list(&pod["spec"]["readinessGates"]);
    if gates.is_empty() {
        return "<none>".into();
    }
    let met = gates.iter().filter(|g| condition_true(pod, text(&g["conditionType"]))).count();
    format!("{met}/{}", gates.len())
}

/// Succeeded and Failed pods' rows are marked Completed.
fn conditions(pod: &Value) -> Vec<Value> {
    let (reason, message) = match text(&pod["status"]["phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    /// A pod created an hour ago on `node-a` with one app container in `state`.
    fn pod(phase: &str, status: Value) -> Value {
        let mut pod = json!({"metadata": {"name": "web-7d9f", "namespace": "shop", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "nginx:1.27"}]},
            "status": {"phase": phase, "podIP": "10.244.1.7", "containerStatuses": [status]}});
        pod["status"]["conditions"] =
            json!([{"type": "Ready", "status": if phase == "Running" { "True" } else { "False" }}]);
        pod
    }

    fn cells(pod: &Value) -> Vec<Value> {
        row(pod, now()).cells
    }

    #[test]
    fn a_running_pod_with_restarts_shows_when_it_last_restarted() {
        let status = json!({"name": "web", "ready": true, "restartCount": 2, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2024-05-01T11:55:00Z"}}});
        assert_eq!(
            cells(&pod("Running", status)),
            ["web-7d9f", "1/1", "Running", "2 (5m ago)", "60m", "10.244.1.7", "node-a", "<none>", "<none>"]
        );
    }

    #[test]
    fn container_states_override_the_phase() {
        let crash = json!({"ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        assert_eq!(cells(&pod("Running", crash))[1..4], ["0/1", "CrashLoopBackOff", "4"]);
        let killed = json!({"ready": false, "state": {"terminated": {"exitCode": 137, "signal": 9}}});
        assert_eq!(cells(&pod("Running", killed))[2], "Signal:9");
        let done = json!({"ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let succeeded = pod("Succeeded", done);
        assert_eq!(cells(&succeeded)[2], "Completed");
        assert_eq!(row(&succeeded, now()).conditions[0]["reason"], "Succeeded");
    }

    #[test]
    fn deleting_a_pod_shows_terminating_until_it_is_terminal() {
        let mut p = pod("Running", json!({"ready": true, "state": {"running": {}}}));
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T12:00:30Z");
        assert_eq!(cells(&p)[2], "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells(&p)[2], "Unknown");
    }

    #[test]
    fn init_containers_hold_the_status_and_sidecars_count_as_ready() {
        let mut p = pod("Pending", json!({"ready": false, "state": {"waiting": {"reason": "PodInitializing"}}}));
        p["spec"]["initContainers"] = json!([{"name": "migrate"}, {"name": "proxy", "restartPolicy": "Always"}]);
        p["status"]["initContainerStatuses"] =
            json!([{"name": "migrate", "state": {"running": {}}}, {"name": "proxy", "state": {"waiting": {}}}]);
        assert_eq!(cells(&p)[1..3], ["0/2", "Init:0/2"]);
        p["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 0}});
        p["status"]["initContainerStatuses"][1] =
            json!({"name": "proxy", "started": true, "ready": true, "state": {"running": {}}});
        p["status"]["containerStatuses"][0] = json!({"ready": true, "state": {"running": {}}});
        p["status"]["phase"] = json!("Running");
        assert_eq!(cells(&p)[1..3], ["2/2", "Running"]);
    }

    #[test]
    fn wide_columns_fall_back_to_none_and_count_readiness_gates() {
        let mut p = pod("Pending", json!({"state": {"waiting": {"reason": "ContainerCreating"}}}));
        p["spec"]["nodeName"] = Value::Null;
        p["status"]["podIP"] = Value::Null;
        p["spec"]["readinessGates"] = json!([{"conditionType": "Ready"}, {"conditionType": "example.com/lb"}]);
        p["status"]["conditions"] = json!([{"type": "example.com/lb", "status": "True"}]);
        assert_eq!(cells(&p)[5..], ["<none>", "<none>", "<none>", "1/2"]);
    }
}
