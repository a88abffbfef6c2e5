//! Network printers: Service, Ingress, Endpoints, NetworkPolicy. The server prints wide, so load
//! balancer addresses are never clipped to 16 characters.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::cells::{self, age_of, int, list, name, text};
use super::{Column, Printer, Row, docs};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let (columns, row): (Vec<Column>, super::RowFn) = match (group, kind) {
        ("", "Service") => (service_columns(), service),
        ("", "Endpoints") => (endpoints_columns(), endpoints),
        ("networking.k8s.io", "Ingress") => (ingress_columns(), ingress),
        ("networking.k8s.io", "NetworkPolicy") => (network_policy_columns(), network_policy),
        _ => return None,
    };
    Some(Printer::builtin(columns, row))
}

fn service_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Type", "string", docs::SERVICE_TYPE),
        Column::new("Cluster-IP", "string", docs::CLUSTER_IP),
        Column::new("External-IP", "string", docs::EXTERNAL_IPS),
        Column::new("Port(s)", "string", docs::SERVICE_PORTS),
        Column::age(),
        Column::new("Selector", "string", docs::SERVICE_SELECTOR).wide(),
    ]
}

fn service(svc: &Value, now: DateTime<Utc>) -> Row {
    let spec = &svc["spec"];
    // `clusterIPs[0]`, which the v1 → internal conversion fills from `clusterIP`.
    let cluster_ip = match text(&spec["clusterIPs"][0]) {
        "" => text(&spec["clusterIP"]),
        ip => ip,
    };
    let ports = list(&spec["ports"]).iter().map(port).collect::<Vec<_>>().join(",");
    vec![
        name(svc),
        json!(service_type(svc)),
        json!(cells::or_none(cluster_ip)),
        json!(external_ip(svc)),
        json!(cells::or_none(&ports)),
        age_of(svc, now),
        json!(cells::labels(&spec["selector"])),
    ]
    .into()
}

/// `spec.type`, which the server defaults to ClusterIP.
fn service_type(svc: &Value) -> &str {
    match text(&svc["spec"]["type"]) {
        "" => "ClusterIP",
        t => t,
    }
}

/// `80/TCP`, or `80:30080/TCP` with a node port.
fn port(p: &Value) -> String {
    let protocol = match text(&p["protocol"]) {
        "" => "TCP",
        proto => proto,
    };
    match int(&p["nodePort"]) {
        0 => format!("{}/{protocol}", int(&p["port"])),
        node_port => format!("{}:{node_port}/{protocol}", int(&p["port"])),
    }
}

/// EXTERNAL-IP: external IPs; for a load balancer its ingress addresses first, `<pending>` while it
/// has none; the external name for ExternalName services.
fn external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let external: Vec<&str> = list(&spec["externalIPs"]).iter().map(text).collect();
    match service_type(svc) {
        "ClusterIP" | "NodePort" => cells::or_none(&external.join(",")),
        "LoadBalancer" => {
            let mut all = load_balancer_addresses(&svc["status"]["loadBalancer"]);
            all.extend(external.iter().map(|ip| ip.to_string()));
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
        }
        "ExternalName" => text(&spec["externalName"]).into(),
        _ => "<unknown>".into(),
    }
}

/// The load balancer's ingress IPs (else hostnames), sorted and without repeats.
fn load_balancer_addresses(status: &Value) -> Vec<String> {
    let addresses: BTreeSet<&str> = list(&status["ingress"])
        .iter()
        .map(|i| if text(&i["ip"]).is_empty() { text(&i["hostname"]) } else { text(&i["ip"]) })
        .filter(|a| !a.is_empty())
        .collect();
    addresses.into_iter().map(String::from).collect()
}

fn ingress_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column::new("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        Column::new("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        Column::new("Ports", "string", "Ports of TLS configurations that open"),
        Column::age(),
    ]
}

fn ingress(ing: &Value, now: DateTime<Utc>) -> Row {
    let spec = &ing["spec"];
    let class = if spec["ingressClassName"].is_string() { text(&spec["ingressClassName"]) } else { "<none>" };
    let ports = if list(&spec["tls"]).is_empty() { "80" } else { "80, 443" };
    let address = load_balancer_addresses(&ing["status"]["loadBalancer"]).join(",");
    vec![name(ing), json!(class), json!(hosts(list(&spec["rules"]))), json!(address), json!(ports), age_of(ing, now)]
        .into()
}

/// Hosts until three are listed, then `+ N more...` counting the rules left; `*` when no rule
/// names a host.
fn hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut listed = Vec::new();
    let mut more = false;
    for host in rules.iter().map(|r| text(&r["host"])) {
        more |= listed.len() == MAX;
        if !more && !host.is_empty() {
            listed.push(host);
        }
    }
    if listed.is_empty() {
        return "*".into();
    }
    let joined = listed.join(",");
    if more { format!("{joined} + {} more...", rules.len() - MAX) } else { joined }
}

fn endpoints_columns() -> Vec<Column> {
    vec![Column::name(), Column::new("Endpoints", "string", docs::ENDPOINT_SUBSETS), Column::age()]
}

fn endpoints(ep: &Value, now: DateTime<Utc>) -> Row {
    vec![name(ep), json!(format_endpoints(list(&ep["subsets"]))), age_of(ep, now)].into()
}

/// Up to three `ip:port` endpoints (bare IPs for port-less subsets), `+ N more...` past them.
fn format_endpoints(subsets: &[Value]) -> String {
    const MAX: usize = 3;
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut shown = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = list(&subset["addresses"]);
        let ports = list(&subset["ports"]);
        let ports: Vec<Option<i64>> =
            if ports.is_empty() { vec![None] } else { ports.iter().map(|p| Some(int(&p["port"]))).collect() };
        for port in ports {
            count += addresses.len();
            for a in addresses.iter().take(MAX.saturating_sub(shown.len())) {
                let ip = text(&a["ip"]);
                shown.push(match port {
                    None => ip.to_string(),
                    Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
                    Some(p) => format!("{ip}:{p}"),
                });
            }
        }
    }
    let joined = shown.join(",");
    if count > MAX { format!("{joined} + {} more...", count - MAX) } else { joined }
}

fn network_policy_columns() -> Vec<Column> {
    vec![Column::name(), Column::new("Pod-Selector", "string", docs::POD_SELECTOR), Column::age()]
}

fn network_policy(np: &Value, now: DateTime<Utc>) -> Row {
    vec![name(np), json!(cells::format_selector(&np["spec"]["podSelector"])), age_of(np, now)].into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::table::age;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    #[test]
    fn services_show_type_ips_and_ports() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.12.4",
            "clusterIPs": ["10.96.12.4"], "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 443, "protocol": "TCP"}]}});
        assert_eq!(
            service(&svc, now()).cells,
            ["web", "NodePort", "10.96.12.4", "<none>", "80:30080/TCP,443/TCP", "<unknown>", "app=web"]
        );
        let lb = json!({"metadata": {"name": "edge"}, "spec": {"type": "LoadBalancer", "clusterIP": "None"}});
        assert_eq!(service(&lb, now()).cells[2..5], ["None", "<pending>", "<none>"]);
        let mut lb = lb;
        lb["status"]["loadBalancer"]["ingress"] = json!([{"hostname": "a1b2c3d4e5f6.elb.eu-west-1.amazonaws.com"}]);
        assert_eq!(service(&lb, now()).cells[3], "a1b2c3d4e5f6.elb.eu-west-1.amazonaws.com", "never clipped");
    }

    #[test]
    fn ingresses_show_class_hosts_and_ports() {
        let ing = json!({"metadata": {"name": "shop"}, "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}],
            "rules": [{"host": "a.example"}, {"host": "b.example"}, {}, {"host": "d.example"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
        assert_eq!(
            ingress(&ing, now()).cells[1..5],
            ["nginx", "a.example,b.example,d.example", "203.0.113.9", "80, 443"]
        );
        let rules: Vec<Value> = ["a", "b", "c", "d", "e"].iter().map(|h| json!({"host": h})).collect();
        assert_eq!(hosts(&rules), "a,b,c + 2 more...");
        assert_eq!(hosts(&[json!({})]), "*");
    }

    #[test]
    fn endpoints_list_three_then_count_the_rest() {
        let addresses = json!([{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}]);
        let subsets = [json!({"addresses": addresses, "ports": [{"port": 8080}]})];
        assert_eq!(format_endpoints(&subsets), "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more...");
        assert_eq!(format_endpoints(&[]), "<none>");
    }
}
