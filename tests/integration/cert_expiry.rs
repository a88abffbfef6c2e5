//! The cert-expiry drill end to end through `firedrill run`: certificates minted with exact
//! validity windows in TLS Secrets on the simulator, in files and a kubeconfig, and served by
//! TLS servers on loopback; bad input of every kind; the renewal rehearsal with a working and a
//! broken issuer.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use firedrill::clock::{Clock, Timestamp};
use firedrill::drills::cert_expiry::fixtures::{Mint, tls_server};
use firedrill::ledger::record::Outcome;
use firedrill::measure::Verdict;
use firedrill::sim::config::SimConfig;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::{self, Firedrill, text, write};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn tls_secret(name: &str, crt: &[u8], ca: Option<&[u8]>) -> Value {
    let mut data = json!({"tls.crt": b64(crt), "tls.key": b64(b"-----BEGIN PRIVATE KEY-----\nnot read\n-----END PRIVATE KEY-----\n")});
    if let Some(ca) = ca {
        data["ca.crt"] = json!(b64(ca));
    }
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": name, "namespace": "default"}, "data": data})
}

/// A plain TCP server that answers like HTTP; or, with `silent`, one that never says anything.
async fn plain_server(silent: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            if silent {
                held.push(tcp);
            } else {
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        }
    });
    port
}

async fn run(fd: &Firedrill, file: &std::path::Path) -> (Outcome, i32) {
    let mut cmd = tokio::process::Command::from(fd.command(&["run", file.to_str().unwrap(), "-o", "json"]));
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.unwrap().unwrap();
    let outcome: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (outcome, out.status.code().unwrap())
}

/// The margin as text (`-3.0`): f64 has no order.
type Row = (String, String, String, Option<String>, Option<String>);

/// `(code, object, field, position, margin days)` of every finding.
fn rows(outcome: &Outcome) -> BTreeSet<Row> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    outcome.details["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                s(&f["code"]),
                s(&f["object"]),
                s(&f["field"]),
                f["position"].as_str().map(str::to_string),
                f["marginDays"].as_f64().map(|d| format!("{d:.1}")),
            )
        })
        .collect()
}

fn row(code: &str, object: &str, field: &str, position: Option<&str>, margin: Option<f64>) -> Row {
    (code.into(), object.into(), field.into(), position.map(str::to_string), margin.map(|d| format!("{d:.1}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finding_is_exact_bad_input_is_a_finding_and_healthy_certificates_give_none() {
    let now = Clock::system().now();
    let days = |n: i64| Timestamp::from_millis(now.millis() + n * 86_400_000);
    let root = Mint::ca("Drill Root").valid(days(-100), days(3650)).self_signed();
    let mid = Mint::ca("Drill Intermediate").valid(days(-10), days(200)).signed_by(&root);
    let healthy = Mint::leaf("web.example.com").valid(days(-1), days(365)).signed_by(&root);
    let long_leaf = Mint::leaf("long.example.com").valid(days(-1), days(365)).signed_by(&mid);
    let good_mid = Mint::ca("Good Intermediate").valid(days(-10), days(900)).signed_by(&root);
    let served_leaf = Mint::leaf("api.example.com").valid(days(-1), days(365)).signed_by(&good_mid);
    let expired = Mint::leaf("old.example.com").expiring(now, -3).self_signed();
    let soon = Mint::leaf("soon.example.com").expiring(now, 5).self_signed();
    let client_cert = Mint::leaf("admin").expiring(now, 5).self_signed();

    let webhook = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy", "annotations": {"cert-manager.io/inject-ca-from": "default/policy"}},
        "webhooks": [{"name": "check.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "clientConfig": {"url": "https://policy.example.com/check", "caBundle": b64(root.pem.as_bytes())}}]});
    let ingress = |name: &str, secret: &str, host: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"tls": [{"secretName": secret, "hosts": [host]}], "rules": [{"host": host}]}})
    };
    let config = SimConfig {
        objects: vec![
            tls_secret("healthy", healthy.pem.as_bytes(), Some(root.pem.as_bytes())),
            tls_secret("expired", expired.pem.as_bytes(), None),
            tls_secret("soon", soon.pem.as_bytes(), None),
            tls_secret("long", format!("{}{}", long_leaf.pem, mid.pem).as_bytes(), None),
            tls_secret("der", &healthy.der, None),
            tls_secret("garbage", b"this is not a certificate", None),
            webhook,
            ingress("web", "healthy", "web.example.com"),
            ingress("wrong-host", "healthy", "shop.example.com"),
            ingress("dangling", "nowhere", "x.example.com"),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "local", "namespace": "default"}, "spec": {"selfSigned": {}}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "managed", "namespace": "default"},
                   "spec": {"secretName": "managed-tls", "dnsNames": ["managed.example.com"], "privateKey": {"algorithm": "ECDSA"}, "issuerRef": {"name": "local"}}}),
        ],
        ..SimConfig::default()
    };
    let sim = support::sim(config).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(support::kube_client(&sim), "default");
    support::until("the managed Certificate issued", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("managed-tls").await.ok()?.map(|_| ()) }
    })
    .await;

    let full = tls_server(&[&served_leaf, &good_mid], &served_leaf).await;
    let leaf_only = tls_server(&[&served_leaf], &served_leaf).await;
    let expiring = tls_server(&[&soon], &soon).await;
    let not_tls = plain_server(false).await;
    let silent = plain_server(true).await;
    let closed = support::free_port();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let pem_file = write(dir.path(), "chain.pem", &format!("{}{}", served_leaf.pem, good_mid.pem));
    let der_file = dir.path().join("leaf.der");
    std::fs::write(&der_file, &soon.der).unwrap();
    let client_kc = write(
        dir.path(),
        "admin.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\ncontexts:\n- name: prod\n  context: {{cluster: prod, user: admin}}\ncurrent-context: prod\n",
            b64(root.pem.as_bytes()),
            b64(client_cert.pem.as_bytes())
        ),
    );
    let drill = format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: certs\ncluster:\n  kubeconfig: {}\ncertExpiry:\n  horizon: 30d\n  endpointTimeout: 1s\n  files: [{}, {}]\n  kubeconfigs: [{}]\n  endpoints:\n    - {{address: 127.0.0.1:{full}, sni: api.example.com}}\n    - {{address: 127.0.0.1:{leaf_only}, sni: api.example.com}}\n    - {{address: 127.0.0.1:{full}, sni: other.example.com}}\n    - {{address: 127.0.0.1:{expiring}, sni: soon.example.com}}\n    - {{address: 127.0.0.1:{not_tls}}}\n    - {{address: 127.0.0.1:{silent}}}\n    - {{address: 127.0.0.1:{closed}}}\n",
        kubeconfig.display(),
        pem_file.display(),
        der_file.display(),
        client_kc.display()
    );
    let file = write(dir.path(), "certs.yaml", &drill);
    let (outcome, code) = run(&Firedrill::new(), &file).await;
    sim.shutdown().await;

    let ep = |p: u16| format!("endpoint 127.0.0.1:{p}");
    let kc = format!("kubeconfig {}", client_kc.display());
    let expected: BTreeSet<Row> = [
        row("expired", "Secret default/expired", "tls.crt", Some("leaf"), Some(-3.0)),
        row("expires-within-horizon", "Secret default/soon", "tls.crt", Some("leaf"), Some(5.0)),
        row("intermediate-expires-before-leaf", "Secret default/long", "tls.crt", Some("intermediate"), Some(200.0)),
        row("unreadable", "Secret default/garbage", "tls.crt", None, None),
        row("hostname-mismatch", "Secret default/healthy", "tls.crt", Some("leaf"), Some(365.0)),
        row("secret-missing", "Ingress default/dangling", "", None, None),
        row("expires-within-horizon", &format!("file {}", der_file.display()), "certificate", Some("leaf"), Some(5.0)),
        row("expires-within-horizon", &kc, "client certificate of user admin", Some("leaf"), Some(5.0)),
        row("chain-incomplete", &ep(leaf_only), "served chain (SNI api.example.com)", None, None),
        row("hostname-mismatch", &ep(full), "served chain (SNI other.example.com)", Some("leaf"), Some(365.0)),
        row("expires-within-horizon", &ep(expiring), "served chain (SNI soon.example.com)", Some("leaf"), Some(5.0)),
        row("endpoint-not-tls", &ep(not_tls), "served chain", None, None),
        row("endpoint-timeout", &ep(silent), "served chain", None, None),
        row("endpoint-unreachable", &ep(closed), "served chain", None, None),
    ]
    .into_iter()
    // An unreadable Secret gets `unreadable` alone: nothing is known of its certificate.
    .chain(
        ["healthy", "expired", "soon", "long", "der"]
            .map(|s| row("unmanaged", &format!("Secret default/{s}"), "tls.crt", None, None)),
    )
    .collect();
    let found = rows(&outcome);
    assert_eq!(
        found.difference(&expected).collect::<Vec<_>>(),
        Vec::<&Row>::new(),
        "false findings; missing: {:?}",
        expected.difference(&found).collect::<Vec<_>>()
    );
    assert_eq!(expected.difference(&found).collect::<Vec<_>>(), Vec::<&Row>::new(), "missing findings");
    assert_eq!((outcome.verdict, code), (Verdict::Failed, 1), "{}", outcome.reason);
    assert!(outcome.reason.contains("critical certificate findings"), "{}", outcome.reason);
    let inv = &outcome.details["inventory"];
    assert_eq!(
        (inv["tlsSecrets"].as_u64(), inv["certificates"].as_u64(), inv["endpoints"].as_u64()),
        (Some(7), Some(1), Some(7)),
        "{inv}"
    );
    let garbage = outcome.details["findings"].as_array().unwrap().iter().find(|f| f["code"] == "unreadable").unwrap();
    assert!(garbage["message"].as_str().unwrap().contains("holds no certificate"), "{garbage}");
    let record = serde_json::to_string(&outcome).unwrap();
    assert!(!record.contains("PRIVATE KEY") && !record.contains("not read"), "a private key reached the record");
    assert_eq!(outcome.rto_ms, None, "cert-expiry measures no recovery");
}

fn rehearsal_drill(kubeconfig: &str, rehearsal: &str) -> String {
    format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: renew\ncluster:\n  kubeconfig: {kubeconfig}\ncertExpiry:\n  rehearsal:\n{rehearsal}"
    )
}

async fn scratch_namespaces(client: &kube::Client) -> Vec<String> {
    let all = Api::<Namespace>::all(client.clone()).list(&ListParams::default()).await.unwrap().items;
    all.into_iter().filter_map(|n| n.metadata.name).filter(|n| n.starts_with("firedrill-cert-")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rehearsal_issues_renews_on_the_simulated_clock_and_cleans_up() {
    let sim = support::sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let file = write(
        dir.path(),
        "renew.yaml",
        &rehearsal_drill(
            kubeconfig.to_str().unwrap(),
            "    duration: 2h\n    renewBefore: 30m\n    advanceSimClock: true\n",
        ),
    );
    let (outcome, code) = run(&Firedrill::new(), &file).await;
    assert_eq!((outcome.verdict, code), (Verdict::Passed, 0), "{} {:?}", outcome.reason, outcome.log);
    let marks: Vec<&str> = outcome.timeline.marks.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(marks, ["inventory-loaded", "analysed", "rehearsal-issued", "rehearsal-renewed"]);
    let r = &outcome.details["rehearsal"];
    let t = |k: &str| r[k].as_str().unwrap().parse::<Timestamp>().unwrap();
    assert!(t("renewedNotAfter") > t("firstNotAfter"), "{r}");
    assert_ne!(r["firstSerial"], r["renewedSerial"]);
    // Renewal at notAfter − renewBefore: 90 minutes after issuance, and one second more.
    assert_eq!(r["simClockAdvancedS"].as_u64().map(|s| (5390..=5401).contains(&s)), Some(true), "{r}");
    assert!(r["issuance"].as_u64().is_some() && r["renewal"].as_u64().is_some(), "{r}");
    let ns = r["namespace"].as_str().unwrap();
    assert!(
        outcome.cleanup.done && outcome.cleanup.actions.iter().any(|a| a == &format!("deleted scratch namespace {ns}")),
        "{:?}",
        outcome.cleanup
    );
    assert_eq!(scratch_namespaces(&support::kube_client(&sim)).await, Vec::<String>::new());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rehearsal_fails_with_the_reason_when_the_issuer_is_broken() {
    let issuer = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "broken-ca"}, "spec": {"selfSigned": {}}});
    let config = SimConfig {
        objects: vec![issuer],
        faults: Some(serde_json::from_value(json!({"brokenIssuers": ["broken-ca"]})).unwrap()),
        ..SimConfig::default()
    };
    let sim = support::sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig());
    let file = write(
        dir.path(),
        "renew.yaml",
        &rehearsal_drill(
            kubeconfig.to_str().unwrap(),
            "    issuerRef: {name: broken-ca}\n    advanceSimClock: true\n    timeout: 20s\n",
        ),
    );
    let (outcome, code) = run(&Firedrill::new(), &file).await;
    assert_eq!((outcome.verdict, code), (Verdict::Failed, 1), "{}", outcome.reason);
    let check = outcome.checks.iter().find(|c| c.name == "renewal rehearsal").unwrap();
    let observed = check.observed.clone().unwrap_or_default();
    assert!(
        observed.contains("ClusterIssuer broken-ca is not Ready (False, ErrInitIssuer): Error initializing issuer"),
        "{check:?}"
    );
    assert!(outcome.cleanup.done, "{:?}", outcome.cleanup);
    assert_eq!(scratch_namespaces(&support::kube_client(&sim)).await, Vec::<String>::new());
    sim.shutdown().await;
}

#[test]
fn validation_points_at_what_cert_manager_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: b\ntargets:\n  rto: 5m\ncertExpiry:\n  endpoints:\n    - {address: example.com}\n  rehearsal:\n    duration: 30m\n",
    );
    let out = Firedrill::new().run(&["validate", bad.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("bad.yaml:5:8: cert-expiry recovers nothing"), "{t}");
    assert!(t.contains("bad.yaml:8:17: `example.com` is not `host:port`"), "{t}");
    assert!(t.contains("bad.yaml:10:15: cert-manager refuses a certificate duration under 1h"), "{t}");
    let bad = write(
        dir.path(),
        "bad2.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: b\ncertExpiry:\n  rehearsal:\n    issuerRef: {name: ca, kind: Issuer}\n",
    );
    let t = text(&Firedrill::new().run(&["validate", bad.to_str().unwrap()]));
    assert!(t.contains("bad2.yaml:6:") && t.contains("name a `ClusterIssuer`"), "{t}");
}
