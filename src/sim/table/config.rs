//! Printers for configuration and policy: ConfigMap, Secret, ServiceAccount, ResourceQuota,
//! PodDisruptionBudget, RoleBinding and ClusterRoleBinding.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::cells::{self, age_of, int, list, name, text};
use super::{Column, Printer, Row, docs};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let (columns, row): (Vec<Column>, super::RowFn) = match (group, kind) {
        ("", "ConfigMap") => (config_map_columns(), config_map),
        ("", "Secret") => (secret_columns(), secret),
        ("", "ServiceAccount") => (service_account_columns(), service_account),
        ("", "ResourceQuota") => (resource_quota_columns(), resource_quota),
        ("policy", "PodDisruptionBudget") => (pdb_columns(), pdb),
        ("rbac.authorization.k8s.io", "RoleBinding") => (binding_columns("roleBinding", docs::ROLE_REF), binding),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            (binding_columns("clusterRoleBinding", docs::CLUSTER_ROLE_REF), binding)
        }
        _ => return None,
    };
    Some(Printer::builtin(columns, row))
}

fn config_map_columns() -> Vec<Column> {
    vec![Column::name(), Column::new("Data", "string", docs::CONFIGMAP_DATA), Column::age()]
}

/// DATA counts `data` and `binaryData` keys.
fn config_map(cm: &Value, now: DateTime<Utc>) -> Row {
    vec![name(cm), json!(cells::len(&cm["data"]) + cells::len(&cm["binaryData"])), age_of(cm, now)].into()
}

fn secret_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Type", "string", docs::SECRET_TYPE),
        Column::new("Data", "string", docs::SECRET_DATA),
        Column::age(),
    ]
}

fn secret(s: &Value, now: DateTime<Utc>) -> Row {
    // The server defaults the type to Opaque.
    let kind = match text(&s["type"]) {
        "" => "Opaque",
        t => t,
    };
    vec![name(s), json!(kind), json!(cells::len(&s["data"])), age_of(s, now)].into()
}

fn service_account_columns() -> Vec<Column> {
    vec![Column::name(), Column::new("Secrets", "string", docs::SA_SECRETS), Column::age()]
}

fn service_account(sa: &Value, now: DateTime<Utc>) -> Row {
    vec![name(sa), json!(cells::len(&sa["secrets"])), age_of(sa, now)].into()
}

fn resource_quota_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column::new(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        Column::age(),
    ]
}

/// `pods: 3/10, requests.cpu: 500m/2` in REQUEST, `limits.*` resources in LIMIT, sorted by name.
fn resource_quota(q: &Value, now: DateTime<Utc>) -> Row {
    let status = &q["status"];
    let mut hard: Vec<(&String, &Value)> = status["hard"].as_object().map(|m| m.iter().collect()).unwrap_or_default();
    hard.sort_by(|a, b| a.0.cmp(b.0));
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (resource, limit) in hard {
        let used = match text(&status["used"][resource.as_str()]) {
            "" => "0",
            u => u,
        };
        let entry = format!("{resource}: {used}/{}", text(limit));
        let is_limit = resource.split_once('.').is_some_and(|(prefix, _)| prefix == "limits");
        if is_limit { limits.push(entry) } else { requests.push(entry) }
    }
    vec![name(q), json!(requests.join(", ")), json!(limits.join(", ")), age_of(q, now)].into()
}

fn pdb_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Min Available", "string", "The minimum number of pods that must be available."),
        Column::new("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
        Column::new("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        Column::age(),
    ]
}

/// MIN AVAILABLE and MAX UNAVAILABLE as written (`1`, `50%`) or `N/A`; ALLOWED DISRUPTIONS from status.
fn pdb(p: &Value, now: DateTime<Utc>) -> Row {
    let bound = |key: &str| {
        let v = &p["spec"][key];
        if v.is_null() { "N/A".to_string() } else { cells::int_or_string(v) }
    };
    vec![
        name(p),
        json!(bound("minAvailable")),
        json!(bound("maxUnavailable")),
        json!(int(&p["status"]["disruptionsAllowed"])),
        age_of(p, now),
    ]
    .into()
}

fn binding_columns(what: &str, role_ref: &str) -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Role", "string", role_ref),
        Column::age(),
        Column::new("Users", "string", &format!("Users in the {what}")).wide(),
        Column::new("Groups", "string", &format!("Groups in the {what}")).wide(),
        Column::new("ServiceAccounts", "string", &format!("ServiceAccounts in the {what}")).wide(),
    ]
}

/// ROLE is `Kind/name`; subjects are split into users, groups and `namespace/name` service accounts.
fn binding(b: &Value, now: DateTime<Utc>) -> Row {
    let role = format!("{}/{}", text(&b["roleRef"]["kind"]), text(&b["roleRef"]["name"]));
    let subjects = list(&b["subjects"]);
    let of_kind = |kind: &str| -> String {
        let names = subjects.iter().filter(|s| s["kind"] == kind);
        let written: Vec<String> = if kind == "ServiceAccount" {
            names.map(|s| format!("{}/{}", text(&s["namespace"]), text(&s["name"]))).collect()
        } else {
            names.map(|s| text(&s["name"]).to_string()).collect()
        };
        written.join(", ")
    };
    vec![
        name(b),
        json!(role),
        age_of(b, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::table::age;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    fn budget(spec: Value, allowed: i64) -> Value {
        json!({"metadata": {"name": "web-pdb", "namespace": "shop", "creationTimestamp": "2024-05-01T08:30:00Z"},
            "spec": spec, "status": {"disruptionsAllowed": allowed, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}})
    }

    #[test]
    fn pdbs_show_their_bounds_and_allowed_disruptions() {
        let min = budget(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}), 1);
        assert_eq!(pdb(&min, now()).cells, [json!("web-pdb"), json!("2"), json!("N/A"), json!(1), json!("3h30m")]);
        let max = budget(json!({"maxUnavailable": "25%"}), 0);
        assert_eq!(pdb(&max, now()).cells[1..4], [json!("N/A"), json!("25%"), json!(0)]);
        let names: Vec<_> = pdb_columns().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]);
    }

    #[test]
    fn quotas_split_requests_from_limits() {
        let q = json!({"metadata": {"name": "team"}, "status": {
            "hard": {"requests.cpu": "2", "limits.memory": "4Gi", "pods": "10"},
            "used": {"requests.cpu": "500m", "pods": "3"}}});
        assert_eq!(
            resource_quota(&q, now()).cells[1..3],
            [json!("pods: 3/10, requests.cpu: 500m/2"), json!("limits.memory: 0/4Gi")]
        );
    }

    #[test]
    fn config_counts_keys_and_bindings_list_subjects() {
        let cm = json!({"metadata": {"name": "app"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(config_map(&cm, now()).cells[1], 3);
        let s =
            json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(secret(&s, now()).cells[1..3], [json!("kubernetes.io/tls"), json!(2)]);
        let rb = json!({"metadata": {"name": "ops"}, "roleRef": {"kind": "ClusterRole", "name": "admin"}, "subjects": [
            {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "sre"},
            {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}, {"kind": "User", "name": "bob"}]});
        assert_eq!(binding(&rb, now()).cells[3..], ["alice, bob", "sre", "ci/deployer"]);
        assert_eq!(binding(&rb, now()).cells[1], "ClusterRole/admin");
    }
}
