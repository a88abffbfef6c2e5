//! Printers for cluster plumbing: Node, Namespace, Event, Lease, the webhook configurations and
//! APIService (whose table comes from the aggregator's own convertor, not the printers).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::cells::{self, age_of, int, list, name, text};
use super::{Column, Printer, Row, age, docs};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let (columns, row): (Vec<Column>, super::RowFn) = match (group, kind) {
        ("", "Node") => (node_columns(), node),
        ("", "Namespace") => (namespace_columns(), namespace),
        ("", "Event") => (event_columns(), event),
        ("coordination.k8s.io", "Lease") => (lease_columns(), lease),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
            (webhook_columns(), webhooks)
        }
        ("apiregistration.k8s.io", "APIService") => (api_service_columns(), api_service),
        _ => return None,
    };
    Some(Printer::builtin(columns, row))
}

fn node_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Status", "string", "The status of the node"),
        Column::new("Roles", "string", "The roles of the node"),
        Column::age(),
        Column::new("Version", "string", docs::KUBELET_VERSION),
        Column::new("Internal-IP", "string", docs::NODE_ADDRESSES).wide(),
        Column::new("External-IP", "string", docs::NODE_ADDRESSES).wide(),
        Column::new("OS-Image", "string", docs::OS_IMAGE).wide(),
        Column::new("Kernel-Version", "string", docs::KERNEL_VERSION).wide(),
        Column::new("Container-Runtime", "string", docs::CONTAINER_RUNTIME).wide(),
    ]
}

fn node(n: &Value, now: DateTime<Utc>) -> Row {
    let info = &n["status"]["nodeInfo"];
    let reported = |key: &str| {
        let v = text(&info[key]);
        if v.is_empty() { "<unknown>".to_string() } else { v.to_string() }
    };
    vec![
        name(n),
        json!(node_status(n)),
        json!(cells::or_none(&node_roles(n).join(","))),
        age_of(n, now),
        json!(text(&info["kubeletVersion"])),
        json!(address(n, "InternalIP")),
        json!(address(n, "ExternalIP")),
        json!(reported("osImage")),
        json!(reported("kernelVersion")),
        json!(reported("containerRuntimeVersion")),
    ]
    .into()
}

/// `Ready`, `NotReady` or `Unknown` from the Ready condition, then `SchedulingDisabled` when cordoned.
fn node_status(n: &Value) -> String {
    // The printer keeps the last condition of each type.
    let ready = list(&n["status"]["conditions"]).iter().rev().find(|c| c["type"] == "Ready");
    let mut status = vec![match ready {
        Some(c) if c["status"] == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if n["spec"]["unschedulable"] == true {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and the `kubernetes.io/role` label's
/// value, sorted and without repeats.
fn node_roles(n: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (key, value) in n["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/").filter(|r| !r.is_empty()) {
            roles.insert(role.to_string());
        } else if key == "kubernetes.io/role" && !text(value).is_empty() {
            roles.insert(text(value).to_string());
        }
    }
    roles.into_iter().collect()
}

/// The node's first address of `kind`, or `<none>`.
fn address(n: &Value, kind: &str) -> String {
    list(&n["status"]["addresses"])
        .iter()
        .find(|a| a["type"] == kind)
        .map_or_else(|| "<none>".into(), |a| text(&a["address"]).into())
}

fn namespace_columns() -> Vec<Column> {
    vec![Column::name(), Column::new("Status", "string", "The status of the namespace"), Column::age()]
}

fn namespace(ns: &Value, now: DateTime<Utc>) -> Row {
    vec![name(ns), json!(text(&ns["status"]["phase"])), age_of(ns, now)].into()
}

fn event_columns() -> Vec<Column> {
    vec![
        Column::new("Last Seen", "string", docs::EVENT_LAST),
        Column::new("Type", "string", docs::EVENT_TYPE),
        Column::new("Reason", "string", docs::EVENT_REASON),
        Column::new("Object", "string", docs::EVENT_OBJECT),
        Column::new("Subobject", "string", docs::EVENT_FIELD_PATH).wide(),
        Column::new("Source", "string", docs::EVENT_SOURCE).wide(),
        Column::new("Message", "string", docs::EVENT_MESSAGE),
        Column::new("First Seen", "string", docs::EVENT_FIRST).wide(),
        Column::new("Count", "string", docs::EVENT_COUNT).wide(),
        Column { priority: 1, ..Column::name() },
    ]
}

/// LAST SEEN falls back to FIRST SEEN, which falls back to `eventTime`; a series carries its own
/// last time and count; a singleton with no count counts once.
fn event(e: &Value, now: DateTime<Utc>) -> Row {
    let first = if age::time(&e["firstTimestamp"]).is_some() {
        age::since(&e["firstTimestamp"], now)
    } else {
        age::since(&e["eventTime"], now)
    };
    let mut last =
        if age::time(&e["lastTimestamp"]).is_some() { age::since(&e["lastTimestamp"], now) } else { first.clone() };
    let mut count = int(&e["count"]);
    let series = &e["series"];
    if series.is_object() {
        last = age::since(&series["lastObservedTime"], now);
        count = int(&series["count"]);
    } else if count == 0 {
        count = 1;
    }
    let involved = &e["involvedObject"];
    let kind = text(&involved["kind"]).to_lowercase();
    let target = match text(&involved["name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    vec![
        json!(last),
        json!(text(&e["type"])),
        json!(text(&e["reason"])),
        json!(target),
        json!(text(&involved["fieldPath"])),
        json!(event_source(e)),
        json!(text(&e["message"]).trim()),
        json!(first),
        json!(count),
        name(e),
    ]
    .into()
}

/// `kubelet, node-a`: the source component and host, or the reporting controller and instance.
fn event_source(e: &Value) -> String {
    let first = |a: &str, b: &str| if a.is_empty() { text(&e[b]).to_string() } else { a.to_string() };
    let component = first(text(&e["source"]["component"]), "reportingComponent");
    let instance = first(text(&e["source"]["host"]), "reportingInstance");
    if instance.is_empty() { component } else { format!("{component}, {instance}") }
}

fn lease_columns() -> Vec<Column> {
    vec![Column::name(), Column::new("Holder", "string", docs::LEASE_HOLDER), Column::age()]
}

fn lease(l: &Value, now: DateTime<Utc>) -> Row {
    vec![name(l), json!(text(&l["spec"]["holderIdentity"])), age_of(l, now)].into()
}

fn webhook_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        Column::age(),
    ]
}

fn webhooks(w: &Value, now: DateTime<Utc>) -> Row {
    vec![name(w), json!(cells::len(&w["webhooks"])), age_of(w, now)].into()
}

fn api_service_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Service", "string", "The reference to the service that hosts this API endpoint."),
        Column::new("Available", "string", "Whether this service is available."),
        Column::age(),
    ]
}

/// SERVICE is `Local` or `namespace/name`; AVAILABLE is `True`, `False (Reason)` or `Unknown`.
fn api_service(s: &Value, now: DateTime<Utc>) -> Row {
    let svc = &s["spec"]["service"];
    let service =
        if svc.is_object() { format!("{}/{}", text(&svc["namespace"]), text(&svc["name"])) } else { "Local".into() };
    let available = match cells::condition(&s["status"]["conditions"], "Available") {
        None => "Unknown".to_string(),
        Some(c) if c["status"] == "True" || text(&c["reason"]).is_empty() => text(&c["status"]).to_string(),
        Some(c) => format!("{} ({})", text(&c["status"]), text(&c["reason"])),
    };
    vec![name(s), json!(service), json!(available), age_of(s, now)].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    fn control_plane() -> Value {
        json!({"metadata": {"name": "cp-1", "creationTimestamp": "2024-03-17T12:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "cp-1"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": "cp-1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.2", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.8.0-49-generic", "containerRuntimeVersion": "containerd://1.7.24"}}})
    }

    #[test]
    fn a_cordoned_ready_control_plane_node() {
        assert_eq!(
            node(&control_plane(), now()).cells,
            [
                "cp-1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "45d",
                "v1.32.2",
                "172.18.0.2",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.8.0-49-generic",
                "containerd://1.7.24"
            ]
        );
    }

    #[test]
    fn node_status_and_roles_follow_conditions_and_labels() {
        let mut n = control_plane();
        n["spec"] = json!({});
        n["status"]["conditions"][1]["status"] = json!("Unknown");
        n["metadata"]["labels"] = json!({"kubernetes.io/role": "ingress", "node-role.kubernetes.io/worker": "true"});
        assert_eq!((node_status(&n), node_roles(&n).join(",")), ("NotReady".into(), "ingress,worker".into()));
        n["status"] = json!({});
        n["metadata"]["labels"] = json!({});
        assert_eq!(node(&n, now()).cells[1..3], ["Unknown", "<none>"]);
        assert_eq!(node(&n, now()).cells[7..], ["<unknown>", "<unknown>", "<unknown>"]);
    }

    #[test]
    fn events_name_their_object_and_source() {
        let e = json!({"metadata": {"name": "web.17c"}, "type": "Warning", "reason": "BackOff", "count": 5,
            "message": "Back-off restarting failed container\n", "firstTimestamp": "2024-05-01T11:00:00Z",
            "lastTimestamp": "2024-05-01T11:58:00Z", "source": {"component": "kubelet", "host": "node-a"},
            "involvedObject": {"kind": "Pod", "name": "web-7d9f", "fieldPath": "spec.containers{web}"}});
        assert_eq!(
            event(&e, now()).cells,
            [
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-7d9f"),
                json!("spec.containers{web}"),
                json!("kubelet, node-a"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(5),
                json!("web.17c")
            ]
        );
        let new_api = json!({"eventTime": "2024-05-01T11:59:30.000000Z", "reportingComponent": "drill",
            "involvedObject": {"kind": "Node"}});
        let cells = event(&new_api, now()).cells;
        assert_eq!(
            (&cells[0], &cells[3], &cells[5], &cells[8]),
            (&json!("30s"), &json!("node"), &json!("drill"), &json!(1))
        );
    }

    #[test]
    fn api_services_show_their_backing_service() {
        let s = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(api_service(&s, now()).cells[1..3], ["kube-system/metrics-server", "False (MissingEndpoints)"]);
    }
}
