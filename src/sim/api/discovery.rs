//! Discovery and OpenAPI documents: `/version`, `/api`, `/apis`, the resource lists of each group
//! version (what kubectl reads to map `kubectl get deploy` to a URL, and to find `pods/eviction`),
//! and the OpenAPI v3 documents kubectl reads to learn that the server validates fields itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::sim::registry::{Registry, ResourceType};

/// The Kubernetes version the simulator answers as (its API matches k8s-openapi's `v1_33`).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-firedrill.sim"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn groups_of(registry: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in registry.all().iter().filter(|t| !t.group.is_empty()) {
        let versions = groups.entry(t.group.clone()).or_default();
        if !versions.contains(&t.version) {
            versions.push(t.version.clone());
        }
    }
    groups
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0]),
    })
}

/// `/apis`.
pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups_of(registry).iter().map(|(n, v)| group_json(n, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = groups_of(registry);
    let mut g = group_json(name, groups.get(name)?);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `/api/v1`, `/apis/{group}/{version}`: each resource and its subresources.
pub fn resources(registry: &Registry, group: &str, version: &str) -> Value {
    let mut out = Vec::new();
    for t in registry.all().iter().filter(|t| t.group == group && t.version == version) {
        let hash = &hex::encode(Sha256::digest(t.key().as_bytes()))[..11];
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
            "storageVersionHash": hash,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        out.push(r);
        let sub = |name: &str, kind: &str, verbs: &[&str], gv: Option<(&str, &str)>| {
            let mut s = json!({"name": format!("{}/{name}", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": kind, "verbs": verbs});
            if let Some((g, v)) = gv {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            s
        };
        if t.status {
            out.push(sub("status", &t.kind, &["get", "patch", "update"], None));
        }
        if t.scale {
            out.push(sub("scale", "Scale", &["get", "patch", "update"], Some(("autoscaling", "v1"))));
        }
        if t.key() == "/pods" {
            out.push(sub("eviction", "Eviction", &["create"], Some(("policy", "v1"))));
            out.push(sub("binding", "Binding", &["create"], None));
            out.push(sub("log", "Pod", &["get"], None));
        }
        if t.key() == "/namespaces" {
            out.push(sub("finalize", "Namespace", &["update"], None));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `/openapi/v3`: where each group version's document is.
pub fn openapi_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(String, String)> = registry.all().iter().map(|t| (t.group.clone(), t.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let doc = openapi(registry, &g, &v);
        let hash = hex::encode(Sha256::digest(doc.to_string().as_bytes())).to_uppercase();
        let path = gv_path(&g, &v);
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", &hash[..32])}));
    }
    json!({"paths": paths})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(t: &ResourceType, action: &str, params: &[&str]) -> Value {
    json!({
        "operationId": format!("{action}{}", t.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
    })
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{g}/{v}`: the paths and operations of each resource,
/// with the query parameters the server accepts (kubectl checks PATCH for `fieldValidation`),
/// and an open schema per kind.
pub fn openapi(registry: &Registry, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let types: Vec<Arc<ResourceType>> =
        registry.all().into_iter().filter(|t| t.group == group && t.version == version).collect();
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    for t in &types {
        let base = if t.namespaced {
            format!("{}/namespaces/{{namespace}}/{}", t.prefix(), t.plural)
        } else {
            format!("{}/{}", t.prefix(), t.plural)
        };
        paths.insert(
            base.clone(),
            json!({
                "get": operation(t, "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch", "timeoutSeconds"]),
                "post": operation(t, "post", &write),
                "delete": operation(t, "deletecollection", &["labelSelector", "fieldSelector", "dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": operation(t, "get", &["pretty"]),
                "put": operation(t, "put", &write),
                "patch": operation(t, "patch", &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
                "delete": operation(t, "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
        let id =
            format!("io.firedrill.sim.{}.{}.{}", if t.group.is_empty() { "core" } else { &t.group }, t.version, t.kind);
        schemas.insert(
            id,
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": t.group, "version": t.version, "kind": t.kind}],
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{MAJOR}.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
