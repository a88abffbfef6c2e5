//! `deploy/`: the Helm chart re-rendered and compared with the checked-in manifests (helm is not
//! installable on the build machines, so `template` renders the subset of Go templates the chart
//! uses), every manifest document read as the Kubernetes type it claims to be, and what the
//! chart promises: a non-root, read-only Deployment wired as `firedrill serve`'s contract says,
//! and RBAC that grants each drill's rules only when its switch is on.
//!
//! `FIREDRILL_RENDER=1 cargo test --test integration deploy::` (or `deploy/render`) rewrites
//! `deploy/manifests/` from the chart instead of comparing.

mod chart;
mod template;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use chart::{Chart, Document, NAMESPACE, chart_dir, manifest_text, parse_manifest_text, read_yaml};

/// Each checked-in manifests file and the values it is rendered with (over values.yaml).
fn manifest_files() -> Vec<(PathBuf, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/manifests");
    vec![
        (root.join("firedrill.yaml"), json!({})),
        (root.join("firedrill-all-drills.yaml"), read_yaml(&chart_dir().join("ci/all-drills-values.yaml"))),
    ]
}

fn render(overrides: Value) -> Vec<Document> {
    Chart::load()
        .unwrap_or_else(|e| panic!("the chart does not parse: {e}"))
        .render(&overrides)
        .unwrap_or_else(|e| panic!("the chart does not render with {overrides}: {e}"))
}

fn json_of(doc: &Document) -> Value {
    serde_saphyr::from_str(&doc.text).unwrap_or_else(|e| panic!("{} is not YAML: {e}\n{}", doc.source, doc.text))
}

fn of_kind<K: DeserializeOwned>(docs: &[Document], kind: &str) -> Vec<K> {
    docs.iter()
        .filter(|d| d.kind() == kind)
        .map(|d| serde_json::from_value(json_of(d)).unwrap_or_else(|e| panic!("{}: {e}", d.source)))
        .collect()
}

fn the<K: DeserializeOwned>(docs: &[Document], kind: &str) -> K {
    let mut all = of_kind::<K>(docs, kind);
    assert_eq!(all.len(), 1, "expected exactly one {kind}");
    all.remove(0)
}

#[test]
fn the_checked_in_manifests_are_the_chart_rendered() {
    let write = std::env::var_os("FIREDRILL_RENDER").is_some_and(|v| v == "1");
    for (path, overrides) in manifest_files() {
        let docs = render(overrides);
        if write {
            std::fs::write(&path, manifest_text(&docs)).unwrap();
            eprintln!("wrote {}", path.display());
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let checked_in = parse_manifest_text(&text);
        let shown = |ds: &[Document]| ds.iter().map(|d| format!("{} ({})", d.source, d.kind())).collect::<Vec<_>>();
        assert_eq!(
            shown(&checked_in),
            shown(&docs),
            "{}: the documents differ from the chart's; run deploy/render",
            path.display()
        );
        for (got, want) in checked_in.iter().zip(&docs) {
            if got.text != want.text {
                let line = got.text.lines().zip(want.text.lines()).position(|(a, b)| a != b);
                panic!(
                    "{}: the {} document from {} differs from the chart's at line {:?}; run deploy/render\n--- checked in\n{}\n--- rendered\n{}",
                    path.display(),
                    got.kind(),
                    got.source,
                    line.map(|l| l + 1),
                    got.text,
                    want.text
                );
            }
        }
        assert_eq!(text, manifest_text(&docs), "{}: spacing differs; run deploy/render", path.display());
    }
}

/// Where `typed` (the value read back through its Rust type) lost or changed what `original`
/// says: a field the type does not know is dropped on the way.
fn differences(path: &str, original: &Value, typed: &Value, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                match t.get(k) {
                    Some(tv) => differences(&format!("{path}.{k}"), v, tv, out),
                    None => out.push(format!("{path}.{k} is not a field of the type")),
                }
            }
            for k in t.keys().filter(|k| !o.contains_key(*k)) {
                out.push(format!("{path}.{k} appeared"));
            }
        }
        (Value::Array(o), Value::Array(t)) if o.len() == t.len() => {
            for (i, (a, b)) in o.iter().zip(t).enumerate() {
                differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

fn round_trip<K: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: K = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    differences("", doc, &back, &mut out);
    if out.is_empty() { Ok(()) } else { Err(out.join("; ")) }
}

/// The ServiceMonitor's CRD is not in k8s-openapi: its required fields, and nothing else.
fn service_monitor(doc: &Value) -> Result<(), String> {
    let known_spec = ["selector", "namespaceSelector", "endpoints", "jobLabel"];
    let spec = doc["spec"].as_object().ok_or("no spec")?;
    if let Some(k) = spec.keys().find(|k| !known_spec.contains(&k.as_str())) {
        return Err(format!("spec.{k} is not a field this chart writes"));
    }
    if doc["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        return Err("no metadata.name".into());
    }
    if doc["spec"]["selector"]["matchLabels"].as_object().is_none_or(|m| m.is_empty()) {
        return Err("no spec.selector.matchLabels".into());
    }
    let endpoints = doc["spec"]["endpoints"].as_array().filter(|e| !e.is_empty()).ok_or("no spec.endpoints")?;
    for e in endpoints {
        let known = ["port", "path", "interval", "scheme"];
        if let Some(k) = e.as_object().ok_or("an endpoint is not a map")?.keys().find(|k| !known.contains(&k.as_str()))
        {
            return Err(format!("endpoints[].{k} is not a field this chart writes"));
        }
        if e["port"].as_str().is_none() {
            return Err("an endpoint names no port".into());
        }
    }
    Ok(())
}

/// Reads a manifest document as the type its apiVersion and kind claim.
fn check_typed(doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trip::<ClusterRoleBinding>(doc),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(doc),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => service_monitor(doc),
        (a, k) => Err(format!("{a} {k} is not a kind this check knows")),
    }
}

#[test]
fn every_manifest_document_is_the_kubernetes_type_it_claims() {
    let mut kinds = BTreeSet::new();
    for (path, _) in manifest_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in parse_manifest_text(&text) {
            kinds.insert(doc.kind());
            if let Err(e) = check_typed(&json_of(&doc)) {
                panic!("{}: the {} from {}: {e}", path.display(), doc.kind(), doc.source);
            }
        }
    }
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ];
    assert_eq!(kinds, expected.iter().map(|k| k.to_string()).collect(), "the kinds the manifests hold");
}

#[test]
fn a_misspelt_field_fails_the_type_check() {
    let docs = render(json!({}));
    let deployment = docs.iter().find(|d| d.kind() == "Deployment").unwrap();
    let typo = deployment.text.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem");
    let err = check_typed(&serde_saphyr::from_str(&typo).unwrap()).unwrap_err();
    assert!(err.contains("readOnlyRootFileSystem is not a field of the type"), "{err}");
    let monitor = render(json!({"serviceMonitor": {"enabled": true}}));
    let monitor = monitor.iter().find(|d| d.kind() == "ServiceMonitor").unwrap();
    let typo = monitor.text.replace("interval:", "intervall:");
    let err = check_typed(&serde_saphyr::from_str(&typo).unwrap()).unwrap_err();
    assert!(err.contains("intervall"), "{err}");
}

fn container(d: &Deployment) -> Container {
    let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 1, "one container");
    spec.containers[0].clone()
}

#[test]
fn the_deployment_is_two_non_root_read_only_replicas_with_limits_and_probes() {
    let docs = render(json!({}));
    let d: Deployment = the(&docs, "Deployment");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!((psc.run_as_non_root, psc.run_as_user, psc.run_as_group), (Some(true), Some(65532), Some(65532)));
    assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let c = container(&d);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.as_ref().unwrap().drop, Some(vec!["ALL".to_string()]));
    let resources = c.resources.as_ref().unwrap();
    for (what, map) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        let map = map.as_ref().unwrap_or_else(|| panic!("no {what}"));
        assert!(map.contains_key("cpu") && map.contains_key("memory"), "{what}: {map:?}");
    }
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (get.path.clone().unwrap(), serde_json::to_value(&get.port).unwrap())
    };
    assert_eq!(probe_path(&c.liveness_probe), ("/healthz".to_string(), json!("http")));
    assert_eq!(probe_path(&c.readiness_probe), ("/readyz".to_string(), json!("http")));
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.container_port), (Some("http"), 8080));
    let sa: ServiceAccount = the(&docs, "ServiceAccount");
    assert_eq!(pod.service_account_name, sa.metadata.name, "the pods run as the chart's ServiceAccount");
    let pdb: PodDisruptionBudget = the(&docs, "PodDisruptionBudget");
    assert_eq!(serde_json::to_value(pdb.spec.unwrap().min_available).unwrap(), json!(1));
    // The daemon stops drills within shutdownTimeout (5m); Kubernetes must wait longer.
    assert!(pod.termination_grace_period_seconds.unwrap() > 300);
}

#[test]
fn the_container_is_configured_as_the_serve_contract_says() {
    let docs = render(json!({"canary": {"namespaces": ["payments", "shop"]}}));
    let c = container(&the(&docs, "Deployment"));
    assert_eq!(c.args, Some(vec!["serve".to_string()]));
    let env = c.env.unwrap();
    let value = |name: &str| {
        env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no {name}")).value.clone().unwrap_or_default()
    };
    let field = |name: &str| {
        let e = env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no {name}"));
        e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.clone()).unwrap_or_default()
    };
    assert_eq!(value("FIREDRILL_LISTEN"), "0.0.0.0:8080");
    assert_eq!(value("FIREDRILL_SPECS"), "/etc/firedrill/specs");
    assert_eq!(field("FIREDRILL_LEASE_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("FIREDRILL_IDENTITY"), "metadata.name");
    assert_eq!(value("FIREDRILL_LEASE_NAME"), "firedrill");
    assert_eq!(value("FIREDRILL_MAX_CONCURRENT"), "4");
    assert_eq!(value("FIREDRILL_MAX_PER_CLUSTER"), "1");
    assert_eq!(value("FIREDRILL_SHUTDOWN_TIMEOUT"), "5m");
    assert_eq!(value("FIREDRILL_CANARY_NAMESPACES"), "payments,shop");
    assert_eq!(value("FIREDRILL_DATA_DIR"), "/var/lib/firedrill");
    assert!(value("FIREDRILL_LEDGER").starts_with("s3://"), "the ledger must outlive the pod");
    assert_eq!(value("FIREDRILL_NOTIFY_ON"), "changes");
    let mounts: Vec<(String, bool)> =
        c.volume_mounts.unwrap().iter().map(|m| (m.mount_path.clone(), m.read_only.unwrap_or(false))).collect();
    for (path, read_only) in [("/etc/firedrill/specs", true), ("/var/lib/firedrill", false), ("/tmp", false)] {
        assert!(mounts.contains(&(path.to_string(), read_only)), "{path} in {mounts:?}");
    }
    // Secrets come by reference, and notification keys are optional.
    let docs = render(json!({
        "ledger": {"s3": {"credentials": {"existingSecret": "s3"}}},
        "notifications": {"existingSecret": "hooks"},
    }));
    let env = container(&the(&docs, "Deployment")).env.unwrap();
    for (name, secret, optional) in [
        ("AWS_ACCESS_KEY_ID", "s3", None),
        ("AWS_SECRET_ACCESS_KEY", "s3", None),
        ("FIREDRILL_SLACK_WEBHOOK_URL", "hooks", Some(true)),
        ("FIREDRILL_WEBHOOK_URL", "hooks", Some(true)),
    ] {
        let e = env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no {name}"));
        let r = e.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((r.name.as_str(), r.optional), (secret, optional), "{name}");
    }
}

/// Every rule of every Role and ClusterRole, as (object name, rule).
fn rules(docs: &[Document]) -> Vec<(String, PolicyRule)> {
    let mut out = Vec::new();
    for r in of_kind::<ClusterRole>(docs, "ClusterRole") {
        out.extend(r.rules.unwrap_or_default().into_iter().map(|x| (r.metadata.name.clone().unwrap(), x)));
    }
    for r in of_kind::<Role>(docs, "Role") {
        out.extend(r.rules.unwrap_or_default().into_iter().map(|x| (r.metadata.name.clone().unwrap(), x)));
    }
    out
}

fn grants(docs: &[Document], resource: &str, verb: &str) -> Vec<String> {
    rules(docs)
        .into_iter()
        .filter(|(_, r)| {
            r.resources.as_ref().is_some_and(|rs| rs.iter().any(|x| x == resource)) && r.verbs.iter().any(|v| v == verb)
        })
        .map(|(n, _)| n)
        .collect()
}

fn names(docs: &[Document], kind: &str) -> BTreeSet<String> {
    docs.iter().filter(|d| d.kind() == kind).map(|d| json_of(d)["metadata"]["name"].as_str().unwrap().into()).collect()
}

#[test]
fn each_drills_rules_are_granted_only_when_its_switch_is_on() {
    let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<String>>();
    // By default: the Lease, the cluster's identity and the read-only pdb-check.
    let default = render(json!({}));
    assert_eq!(names(&default, "ClusterRole"), set(&["firedrill-cluster-identity", "firedrill-pdb-check"]));
    assert_eq!(names(&default, "Role"), set(&["firedrill-leader"]));
    for (resource, verb) in [
        ("pods/eviction", "create"),
        ("nodes", "patch"),
        ("restores", "create"),
        ("secrets", "list"),
        ("namespaces", "create"),
    ] {
        assert!(grants(&default, resource, verb).is_empty(), "{verb} {resource} granted by default");
    }
    let off = render(json!({"drills": {"pdbCheck": {"enabled": false}}}));
    assert_eq!(names(&off, "ClusterRole"), set(&["firedrill-cluster-identity"]));
    assert_eq!(names(&off, "ClusterRoleBinding"), set(&["firedrill-cluster-identity"]));

    let drain = render(json!({"drills": {"nodeDrain": {"enabled": true}}}));
    assert_eq!(grants(&drain, "pods/eviction", "create"), ["firedrill-node-drain"]);
    assert_eq!(grants(&drain, "nodes", "patch"), ["firedrill-node-drain"]);
    assert!(grants(&drain, "pods", "delete").is_empty(), "deleting pods needs allowPodDelete");
    assert!(grants(&drain, "restores", "create").is_empty());

    let velero = render(json!({"drills": {"veleroRestore": {"enabled": true}}}));
    let role: Role = of_kind::<Role>(&velero, "Role")
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some("firedrill-velero-restore"))
        .unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some("velero"));
    assert_eq!(grants(&velero, "restores", "delete"), ["firedrill-velero-restore"]);
    assert_eq!(grants(&velero, "namespaces", "delete"), ["firedrill-velero-restore"]);
    assert!(grants(&velero, "secrets", "get").is_empty(), "no Secret unless locationCredentialSecrets names it");
    assert!(grants(&velero, "pods/eviction", "create").is_empty());

    let certs = render(json!({"drills": {"certExpiry": {"enabled": true}}}));
    assert_eq!(grants(&certs, "secrets", "list"), ["firedrill-cert-expiry"]);
    assert!(grants(&certs, "namespaces", "create").is_empty(), "the rehearsal has its own switch");

    // etcd-restore talks to etcd and object storage, never to the Kubernetes API.
    let etcd = render(json!({"drills": {"pdbCheck": {"enabled": false}, "etcdRestore": {"enabled": true}}}));
    assert_eq!(names(&etcd, "ClusterRole"), set(&["firedrill-cluster-identity"]));
}

#[test]
fn every_reference_between_the_objects_resolves() {
    for (path, overrides) in manifest_files() {
        let docs = render(overrides);
        let ctx = path.display();
        let sa = the::<ServiceAccount>(&docs, "ServiceAccount").metadata;
        let subject_ok = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
            subjects.as_ref().is_some_and(|s| {
                s.len() == 1
                    && s[0].kind == "ServiceAccount"
                    && Some(&s[0].name) == sa.name.as_ref()
                    && s[0].namespace.as_deref() == Some(NAMESPACE)
            })
        };
        let cluster_roles = names(&docs, "ClusterRole");
        for b in of_kind::<ClusterRoleBinding>(&docs, "ClusterRoleBinding") {
            assert!(cluster_roles.contains(&b.role_ref.name) && b.role_ref.kind == "ClusterRole", "{ctx}: {b:?}");
            assert!(subject_ok(&b.subjects), "{ctx}: {b:?}");
        }
        let roles: Vec<Role> = of_kind(&docs, "Role");
        for b in of_kind::<RoleBinding>(&docs, "RoleBinding") {
            let found = roles.iter().any(|r| {
                r.metadata.name.as_ref() == Some(&b.role_ref.name) && r.metadata.namespace == b.metadata.namespace
            });
            assert!(found && b.role_ref.kind == "Role", "{ctx}: {b:?} names no Role in its namespace");
            assert!(subject_ok(&b.subjects), "{ctx}: {b:?}");
        }
        let d: Deployment = the(&docs, "Deployment");
        let spec = d.spec.unwrap();
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        let selects = |m: &std::collections::BTreeMap<String, String>| {
            !m.is_empty() && m.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
        };
        assert!(selects(spec.selector.match_labels.as_ref().unwrap()), "{ctx}: the Deployment's selector");
        let svc: Service = the(&docs, "Service");
        assert!(selects(svc.spec.as_ref().unwrap().selector.as_ref().unwrap()), "{ctx}: the Service's selector");
        let pdb: PodDisruptionBudget = the(&docs, "PodDisruptionBudget");
        assert!(selects(pdb.spec.unwrap().selector.unwrap().match_labels.as_ref().unwrap()), "{ctx}: the PDB's");
        let np: NetworkPolicy = the(&docs, "NetworkPolicy");
        assert!(selects(np.spec.unwrap().pod_selector.unwrap().match_labels.as_ref().unwrap()), "{ctx}: the policy's");
        let cm = spec.template.spec.unwrap().volumes.unwrap().into_iter().find_map(|v| v.config_map).unwrap();
        assert!(names(&docs, "ConfigMap").contains(&cm.name), "{ctx}: the specs volume names {}", cm.name);
        let svc_labels = svc.metadata.labels.unwrap();
        for m in docs.iter().filter(|d| d.kind() == "ServiceMonitor").map(json_of) {
            let want = m["spec"]["selector"]["matchLabels"].as_object().unwrap();
            assert!(want.iter().all(|(k, v)| svc_labels.get(k).map(String::as_str) == v.as_str()), "{ctx}: {m}");
            assert_eq!(m["spec"]["endpoints"][0]["port"], "http", "{ctx}: the Service's port name");
        }
    }
}

#[test]
fn the_bundled_specs_are_valid_drill_files() {
    let cm: ConfigMap = the(&render(json!({})), "ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    let data = cm.data.unwrap();
    assert!(!data.is_empty());
    for (file, text) in &data {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let catalog = firedrill::spec::Catalog::load(&[dir.path().to_path_buf()])
        .unwrap_or_else(|e| panic!("the chart's default specs are invalid: {e}"));
    assert_eq!(catalog.drills.len(), data.len());
    let none = render(json!({"existingSpecsConfigMap": "my-drills"}));
    assert!(names(&none, "ConfigMap").is_empty(), "an existing ConfigMap replaces the chart's");
    let pod = the::<Deployment>(&none, "Deployment").spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.volumes.unwrap()[0].config_map.as_ref().unwrap().name, "my-drills");
}

#[test]
fn the_notes_name_the_lease_and_the_ledger() {
    let chart = Chart::load().unwrap();
    let notes = chart.notes(&json!({})).unwrap();
    assert!(notes.contains("get lease firedrill"), "{notes}");
    assert!(notes.contains("FIREDRILL_LEDGER=s3://firedrill-evidence/ledger firedrill evidence verify"), "{notes}");
}

mod renderer {
    use serde_json::json;

    use super::template::{Templates, to_yaml};

    fn render(src: &str, root: serde_json::Value) -> Result<String, String> {
        let mut t = Templates::default();
        t.add("t", src)?;
        t.render("t", &root)
    }

    #[test]
    fn trim_markers_and_comments_remove_whitespace_as_go_does() {
        let out = render("a:\n  {{- /* gone */}}\n  b {{ .x -}}\n\n  c", json!({"x": 1})).unwrap();
        assert_eq!(out, "a:\n  b 1c");
    }

    #[test]
    fn range_over_a_map_is_in_key_order_and_dollar_is_the_root() {
        let src = r#"{{ range $k, $v := .m }}{{ $k }}={{ $v }}/{{ $.n }} {{ end }}"#;
        assert_eq!(render(src, json!({"m": {"b": 2, "a": 1}, "n": "r"})).unwrap(), "a=1/r b=2/r ");
    }

    #[test]
    fn if_else_if_with_and_include() {
        let src = r#"{{ define "x" }}[{{ . }}]{{ end }}{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}{{ with .s }}{{ include "x" . }}{{ else }}none{{ end }}"#;
        assert_eq!(render(src, json!({"a": false, "b": 0, "s": "v"})).unwrap(), "C[v]");
        assert_eq!(render(src, json!({"a": "", "b": [1], "s": ""})).unwrap(), "Bnone");
    }

    #[test]
    fn helm_functions_of_the_subset() {
        let src = r#"{{ default "d" .e | quote }} {{ .l | join "," }} {{ "abc-" | trunc 4 | trimSuffix "-" }}{{ "a\nb" | nindent 2 }}"#;
        assert_eq!(render(src, json!({"e": "", "l": ["x", "y"]})).unwrap(), "\"d\" x,y abc\n  a\n  b");
    }

    #[test]
    fn what_the_subset_cannot_render_faithfully_is_an_error() {
        assert!(render("{{ .missing }}", json!({})).unwrap_err().contains("missing value"));
        assert!(render("{{ .a.b }}", json!({})).unwrap_err().contains("nil pointer"));
        assert!(render("{{ upper .a }}", json!({"a": "x"})).unwrap_err().contains("not in the subset"));
        assert!(render("{{ .f }}", json!({"f": 0.5})).unwrap_err().contains("not in the subset"));
        assert!(to_yaml(&json!({"k": "has space"})).unwrap_err().contains("not in the subset"));
    }

    #[test]
    fn to_yaml_writes_what_go_yaml_v2_writes() {
        let v = json!({"b": [{"x": 1, "a": ["p", "q"]}], "a": {"cpu": "1", "mem": "128Mi", "on": "yes"}, "e": {}});
        let want = "a:\n  cpu: \"1\"\n  mem: 128Mi\n  \"on\": \"yes\"\nb:\n- a:\n  - p\n  - q\n  x: 1\ne: {}\n";
        assert_eq!(to_yaml(&v).unwrap(), want);
    }
}

/// The metrics `firedrill serve` exports, as its contract names them.
pub const SERVE_METRICS: &[&str] = &[
    "firedrill_drill_last_run_timestamp_seconds",
    "firedrill_drill_last_verdict",
    "firedrill_drill_last_rto_seconds",
    "firedrill_drill_last_rpo_seconds",
    "firedrill_drill_target_rto_seconds",
    "firedrill_drill_target_rpo_seconds",
    "firedrill_drill_runs_total",
    "firedrill_drill_run_duration_seconds",
    "firedrill_schedule_next_fire_timestamp_seconds",
    "firedrill_schedule_start_lag_seconds",
    "firedrill_schedule_skipped_total",
    "firedrill_running_drills",
    "firedrill_leader",
    "firedrill_spec_errors",
    "firedrill_notifications_total",
];

/// The `firedrill_*` metric names a PromQL expression uses (a histogram's `_bucket` as itself).
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("firedrill_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        out.push(name.strip_suffix("_bucket").unwrap_or(&name).to_string());
    }
    out
}

#[test]
fn the_dashboard_charts_every_serve_metric_and_only_those() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/firedrill-dashboard.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(d["schemaVersion"].as_i64().unwrap() >= 36);
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "panel ids are unique");
        let g = &p["gridPos"];
        assert!(g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24, "{} fits the grid", p["title"]);
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
            for m in metrics_in(t["expr"].as_str().unwrap()) {
                assert!(SERVE_METRICS.contains(&m.as_str()), "{}: {m} is not a metric of firedrill serve", p["title"]);
                used.insert(m);
            }
        }
    }
    let missing: Vec<&&str> = SERVE_METRICS.iter().filter(|m| !used.contains(**m)).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

#[test]
fn the_alerts_in_the_operations_doc_use_only_serve_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md");
    let text = std::fs::read_to_string(path).unwrap();
    let blocks: Vec<&str> = text.split("```promql").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert!(!blocks.is_empty(), "the doc has PromQL examples");
    for m in blocks.iter().flat_map(|b| metrics_in(b)) {
        assert!(SERVE_METRICS.contains(&m.as_str()), "docs/operations.md alerts on {m}, which serve does not export");
    }
}
