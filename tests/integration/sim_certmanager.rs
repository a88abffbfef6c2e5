//! The simulator's cert-manager stand-in, driven through kube-rs as a drill drives it: a
//! self-signed ClusterIssuer, a CA issuer built on the root it signs, Certificates issued into
//! real TLS Secrets, renewal on the simulated clock, broken issuers, expiry and re-issuance.
//! Every scenario runs in its own simulator, stops it even when it fails, and dumps the
//! cert-manager objects (never Secrets: they hold private keys) when it does.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use chrono::{DateTime, TimeDelta, Utc};
use firedrill::sim::config::SimConfig;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use crate::support;

/// The cert-manager side of a running simulator.
struct CertManager {
    client: kube::Client,
    url: String,
    http: reqwest::Client,
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cert-manager.io", "v1", kind), plural)
}

impl CertManager {
    fn certificates(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &resource("Certificate", "certificates"))
    }

    fn requests(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &resource("CertificateRequest", "certificaterequests"))
    }

    fn issuers(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &resource("Issuer", "issuers"))
    }

    fn cluster_issuers(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &resource("ClusterIssuer", "clusterissuers"))
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn create(&self, api: &Api<DynamicObject>, manifest: Value) {
        let obj: DynamicObject = serde_json::from_value(manifest).expect("a cert-manager manifest");
        api.create(&PostParams::default(), &obj).await.expect("create");
    }

    /// Polls `api`'s object `name` until `holds`; returns it as JSON.
    async fn until(&self, api: &Api<DynamicObject>, name: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
        let holds = &holds;
        support::until(what, || async move {
            let obj = api.get_opt(name).await.ok()??;
            let v = serde_json::to_value(obj).ok()?;
            holds(&v).then_some(v)
        })
        .await
    }

    /// The TLS Secret `name` once it holds a certificate other than `not`.
    async fn secret(&self, ns: &str, name: &str, not: Option<&[u8]>) -> Secret {
        let secrets = &self.secrets(ns);
        support::until(&format!("Secret {ns}/{name} with a new certificate"), || async move {
            let s = secrets.get_opt(name).await.ok()??;
            let crt = s.data.as_ref()?.get("tls.crt")?.0.clone();
            (Some(crt.as_slice()) != not).then_some(s)
        })
        .await
    }

    async fn advance_clock(&self, by: &str) {
        let r = self.http.post(format!("{}/firedrill/v1/clock/advance?by={by}", self.url)).send().await.unwrap();
        assert!(r.status().is_success(), "advance the clock: {}", r.status());
    }

    async fn set_broken_issuers(&self, issuers: &[&str]) {
        let r = self
            .http
            .put(format!("{}/firedrill/v1/faults", self.url))
            .json(&json!({"brokenIssuers": issuers}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "set faults: {}", r.status());
    }

    /// Prints every cert-manager object, for a failed test.
    async fn dump(&self) {
        for plural in ["clusterissuers", "issuers", "certificates", "certificaterequests"] {
            let url = format!("{}/apis/cert-manager.io/v1/{plural}", self.url);
            if let Ok(r) = self.http.get(&url).send().await
                && let Ok(list) = r.json::<Value>().await
            {
                eprintln!("--- {plural}:\n{}", serde_json::to_string_pretty(&list["items"]).unwrap_or_default());
            }
        }
    }
}

/// Runs `scenario` against a fresh simulator, stops it whatever happens, and dumps state on failure.
async fn with_cert_manager<F, Fut>(config: SimConfig, scenario: F)
where
    F: FnOnce(CertManager) -> Fut,
    Fut: Future<Output = ()>,
{
    let sim = support::sim(config).await;
    let cm = || CertManager { client: support::kube_client(&sim), url: sim.url(), http: reqwest::Client::new() };
    let outcome = AssertUnwindSafe(scenario(cm())).catch_unwind().await;
    if outcome.is_err() {
        cm().dump().await;
    }
    sim.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// (status, reason, message) of a condition.
fn condition(obj: &Value, kind: &str) -> Option<(String, String, String)> {
    let c = obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)?;
    let text = |f: &str| c[f].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

fn has(obj: &Value, kind: &str, status: &str, reason: &str) -> bool {
    condition(obj, kind).is_some_and(|(s, r, _)| s == status && r == reason)
}

fn ready_at_revision(obj: &Value, revision: i64) -> bool {
    has(obj, "Ready", "True", "Ready") && obj["status"]["revision"] == revision && condition(obj, "Issuing").is_none()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).unwrap().with_timezone(&Utc)
}

/// (DNS SANs, issuer CN, lifetime, notAfter) of the first certificate of a PEM bundle.
fn leaf(pem: &[u8]) -> (Vec<String>, String, TimeDelta, DateTime<Utc>) {
    let (_, block) = parse_x509_pem(pem).expect("PEM");
    let cert = block.parse_x509().expect("an X.509 certificate");
    let sans = cert
        .subject_alternative_name()
        .unwrap()
        .map(|ext| {
            ext.value.general_names.iter().filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
        })
        .into_iter()
        .flatten()
        .collect();
    let issuer = cert.issuer().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default();
    let (nb, na) = (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    let not_after = DateTime::from_timestamp(na, 0).unwrap();
    (sans, issuer.to_string(), TimeDelta::seconds(na - nb), not_after)
}

fn data<'a>(secret: &'a Secret, key: &str) -> &'a [u8] {
    secret.data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.as_slice()).unwrap_or_default()
}

/// The cluster resource namespace `cert-manager` is seeded; a scenario that lists it too still starts.
#[tokio::test]
async fn a_ca_issuer_built_on_a_self_signed_root_issues_renews_on_the_clock_and_reissues_a_lost_secret() {
    let config = SimConfig { namespaces: vec!["cert-manager".into()], ..SimConfig::default() };
    with_cert_manager(config, |cm| async move {
        let (issuers, roots, certs) =
            (cm.cluster_issuers(), cm.certificates("cert-manager"), cm.certificates("default"));
        cm.create(
            &issuers,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                                   "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
        )
        .await;
        let s = cm
            .until(&issuers, "selfsigned", "the self-signed issuer Ready", |o| has(o, "Ready", "True", "IsReady"))
            .await;
        assert_eq!(condition(&s, "Ready").unwrap().2, "", "SelfSigned is Ready without a message");

        cm.create(
            &roots,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "root-ca", "namespace": "cert-manager"},
            "spec": {"isCA": true, "commonName": "Drill Root CA", "secretName": "root-ca", "duration": "8760h",
                     "privateKey": {"algorithm": "ECDSA", "size": 256},
                     "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}),
        )
        .await;
        cm.create(
            &issuers,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                                   "metadata": {"name": "drill-ca"}, "spec": {"ca": {"secretName": "root-ca"}}}),
        )
        .await;
        let ca =
            cm.until(&issuers, "drill-ca", "the CA issuer Ready", |o| has(o, "Ready", "True", "KeyPairVerified")).await;
        assert_eq!(condition(&ca, "Ready").unwrap().2, "Signing CA verified");
        let root = cm.secret("cert-manager", "root-ca", None).await;

        cm.create(
            &certs,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com", "www.example.com"],
                     "secretTemplate": {"labels": {"team": "web"}},
                     "issuerRef": {"name": "drill-ca", "kind": "ClusterIssuer"}}}),
        )
        .await;
        let first = cm.until(&certs, "web", "web issued (revision 1)", |o| ready_at_revision(o, 1)).await;
        assert_eq!(condition(&first, "Ready").unwrap().2, "Certificate is up to date and has not expired");
        let (not_before, not_after) = (time(&first["status"]["notBefore"]), time(&first["status"]["notAfter"]));
        assert_eq!(not_after - not_before, TimeDelta::days(90), "the default duration");
        assert_eq!(
            time(&first["status"]["renewalTime"]),
            not_after - TimeDelta::days(30),
            "renewal at 2/3 of the lifetime"
        );

        let secret = cm.secret("default", "web-tls", None).await;
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let (sans, issuer, lifetime, cert_not_after) = leaf(data(&secret, "tls.crt"));
        assert_eq!(sans, ["web.example.com", "www.example.com"]);
        assert_eq!((issuer.as_str(), lifetime, cert_not_after), ("Drill Root CA", TimeDelta::days(90), not_after));
        assert_eq!(data(&secret, "ca.crt"), data(&root, "tls.crt"), "ca.crt is the root");
        assert!(
            data(&secret, "tls.key").starts_with(b"-----BEGIN RSA PRIVATE KEY-----"),
            "RSA 2048, PKCS#1 by default"
        );
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        for (k, v) in [
            ("certificate-name", "web"),
            ("issuer-name", "drill-ca"),
            ("issuer-kind", "ClusterIssuer"),
            ("alt-names", "web.example.com,www.example.com"),
        ] {
            assert_eq!(annotations.get(&format!("cert-manager.io/{k}")).map(String::as_str), Some(v), "{k}");
        }
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("team").map(String::as_str), Some("web"), "secretTemplate");
        let request = cm
            .until(&cm.requests("default"), "web-1", "the request of revision 1", |o| has(o, "Ready", "True", "Issued"))
            .await;
        assert_eq!(request["metadata"]["annotations"]["cert-manager.io/certificate-revision"], "1");

        cm.advance_clock("61d").await;
        let second = cm.until(&certs, "web", "web renewed (revision 2)", |o| ready_at_revision(o, 2)).await;
        assert!(time(&second["status"]["notAfter"]) >= not_after + TimeDelta::days(60), "{second}");
        let renewed = cm.secret("default", "web-tls", Some(data(&secret, "tls.crt"))).await;
        assert_eq!(leaf(data(&renewed, "tls.crt")).3, time(&second["status"]["notAfter"]));

        cm.secrets("default").delete("web-tls", &DeleteParams::default()).await.unwrap();
        cm.until(&certs, "web", "web re-issued after its Secret was deleted (revision 3)", |o| ready_at_revision(o, 3))
            .await;
        let reissued = cm.secret("default", "web-tls", None).await;
        assert_eq!(leaf(data(&reissued, "tls.crt")).0, ["web.example.com", "www.example.com"]);
    })
    .await;
}

#[tokio::test]
async fn a_broken_issuer_leaves_new_certificates_unready_and_lets_issued_ones_expire() {
    with_cert_manager(SimConfig::default(), |cm| async move {
        let (issuers, certs, requests) = (cm.issuers("default"), cm.certificates("default"), cm.requests("default"));
        cm.create(&issuers, json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                                   "metadata": {"name": "local", "namespace": "default"}, "spec": {"selfSigned": {}}})).await;
        let cert = |name: &str| json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"secretName": format!("{name}-tls"), "dnsNames": [format!("{name}.example.com")], "duration": "24h",
                     "privateKey": {"algorithm": "ECDSA"}, "issuerRef": {"name": "local"}}});
        cm.create(&certs, cert("api")).await;
        let issued = cm.until(&certs, "api", "api issued", |o| ready_at_revision(o, 1)).await;
        let not_after = time(&issued["status"]["notAfter"]);

        cm.set_broken_issuers(&["default/local"]).await;
        let broken = cm.until(&issuers, "local", "the issuer reported broken", |o| has(o, "Ready", "False", "ErrInitIssuer")).await;
        assert!(condition(&broken, "Ready").unwrap().2.starts_with("Error initializing issuer: "));

        cm.create(&certs, cert("fresh")).await;
        let fresh = cm.until(&certs, "fresh", "fresh waiting for its issuer", |o| {
            has(o, "Ready", "False", "DoesNotExist") && has(o, "Issuing", "True", "DoesNotExist")
        })
        .await;
        assert_eq!(condition(&fresh, "Ready").unwrap().2, "Issuing certificate as Secret does not exist");
        let pending = cm.until(&requests, "fresh-1", "fresh's request pending", |o| has(o, "Ready", "False", "Pending")).await;
        assert_eq!(condition(&pending, "Ready").unwrap().2, "Referenced issuer does not have a Ready status condition");

        cm.advance_clock("25h").await;
        let expired = cm.until(&certs, "api", "api expired", |o| has(o, "Ready", "False", "Expired")).await;
        let message = condition(&expired, "Ready").unwrap().2;
        assert_eq!(message, format!("Certificate expired on {}", not_after.format("%a, %d %b %Y %H:%M:%S UTC")));
        assert_eq!(expired["status"]["revision"], 1, "nothing was issued");
        assert!(has(&expired, "Issuing", "True", "Renewing"), "{expired}");
        assert!(expired["status"].get("lastFailureTime").is_none(), "a pending request is not a failure");

        cm.set_broken_issuers(&[]).await;
        cm.until(&certs, "api", "api renewed once the issuer is back", |o| ready_at_revision(o, 2)).await;
        cm.until(&certs, "fresh", "fresh issued once the issuer is back", |o| ready_at_revision(o, 1)).await;
        cm.until(&requests, "fresh-1", "fresh's request issued", |o| has(o, "Ready", "True", "Issued")).await;
    })
    .await;
}

#[tokio::test]
async fn spec_changes_reissue_and_what_the_webhook_would_refuse_is_reported_in_status() {
    with_cert_manager(SimConfig::default(), |cm| async move {
        let (issuers, certs) = (cm.issuers("default"), cm.certificates("default"));
        cm.create(
            &issuers,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                                   "metadata": {"name": "local", "namespace": "default"}, "spec": {"selfSigned": {}}}),
        )
        .await;
        cm.create(
            &certs,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "svc", "namespace": "default"},
            "spec": {"secretName": "svc-tls", "dnsNames": ["a.example.com"], "privateKey": {"algorithm": "ECDSA"},
                     "issuerRef": {"name": "local"}}}),
        )
        .await;
        cm.until(&certs, "svc", "svc issued", |o| ready_at_revision(o, 1)).await;
        let before = cm.secret("default", "svc-tls", None).await;

        let patch = json!({"spec": {"dnsNames": ["a.example.com", "b.example.com"]}});
        certs.patch("svc", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        cm.until(&certs, "svc", "svc re-issued for its new names", |o| ready_at_revision(o, 2)).await;
        let after = cm.secret("default", "svc-tls", Some(data(&before, "tls.crt"))).await;
        assert_eq!(leaf(data(&after, "tls.crt")).0, ["a.example.com", "b.example.com"]);

        cm.create(
            &certs,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "short", "namespace": "default"},
            "spec": {"secretName": "short-tls", "dnsNames": ["short.example.com"], "duration": "30m",
                     "issuerRef": {"name": "local"}}}),
        )
        .await;
        let refused =
            cm.until(&certs, "short", "short reported invalid", |o| has(o, "Ready", "False", "ConfigError")).await;
        let message = condition(&refused, "Ready").unwrap().2;
        assert!(message.contains("certificate duration must be greater than 1h0m0s"), "{message}");
        assert!(cm.secrets("default").get_opt("short-tls").await.unwrap().is_none(), "nothing is issued for it");

        let cluster = cm.cluster_issuers();
        cm.create(
            &cluster,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                                   "metadata": {"name": "no-ca"}, "spec": {"ca": {"secretName": "missing"}}}),
        )
        .await;
        let missing = cm
            .until(&cluster, "no-ca", "the CA issuer without its Secret", |o| has(o, "Ready", "False", "ErrGetKeyPair"))
            .await;
        assert_eq!(
            condition(&missing, "Ready").unwrap().2,
            "Error getting keypair for CA issuer: secret \"missing\" not found"
        );
    })
    .await;
}

/// A CA whose certificate expired (its self-signed issuer broken, so it could not renew) makes
/// signing fail: the failure is counted, backed off for an hour of simulated time, and retried.
#[tokio::test]
async fn a_failed_issuance_is_counted_backed_off_and_retried() {
    with_cert_manager(SimConfig::default(), |cm| async move {
        let (issuers, roots, certs) = (cm.cluster_issuers(), cm.certificates("cert-manager"), cm.certificates("default"));
        cm.create(&issuers, json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                                   "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
        cm.create(&roots, json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "short-root", "namespace": "cert-manager"},
            "spec": {"isCA": true, "commonName": "Short Root", "secretName": "short-root", "duration": "2h",
                     "privateKey": {"algorithm": "ECDSA"}, "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer"}}})).await;
        cm.create(&issuers, json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                                   "metadata": {"name": "short-ca"}, "spec": {"ca": {"secretName": "short-root"}}})).await;
        cm.create(&certs, json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"secretName": "app-tls", "dnsNames": ["app.example.com"], "duration": "1h",
                     "privateKey": {"algorithm": "ECDSA"}, "issuerRef": {"name": "short-ca", "kind": "ClusterIssuer"}}})).await;
        cm.until(&certs, "app", "app issued by the short-lived CA", |o| ready_at_revision(o, 1)).await;

        cm.set_broken_issuers(&["selfsigned"]).await;
        cm.until(&issuers, "selfsigned", "the root's issuer broken", |o| has(o, "Ready", "False", "ErrInitIssuer")).await;
        cm.advance_clock("3h").await;
        let failed = cm
            .until(&certs, "app", "app's renewal failed", |o| {
                has(o, "Issuing", "False", "Failed") && o["status"]["failedIssuanceAttempts"] == 1
            })
            .await;
        let message = condition(&failed, "Issuing").unwrap().2;
        let expected = "The certificate request has failed to complete and will be retried: Error signing certificate: \
                        the CA certificate expired at";
        assert!(message.starts_with(expected), "{message}");
        assert!(failed["status"]["lastFailureTime"].is_string(), "{failed}");
        assert!(has(&failed, "Ready", "False", "Expired"), "{failed}");
        cm.until(&cm.requests("default"), "app-2", "the failed request", |o| has(o, "Ready", "False", "Failed")).await;

        cm.set_broken_issuers(&[]).await;
        cm.until(&roots, "short-root", "the root renewed", |o| ready_at_revision(o, 2)).await;
        let waiting = cm.certificates("default").get("app").await.unwrap();
        let waiting = serde_json::to_value(waiting).unwrap();
        assert!(has(&waiting, "Issuing", "False", "Failed"), "still backing off: {waiting}");
        cm.advance_clock("61m").await;
        let renewed = cm.until(&certs, "app", "app retried after the backoff", |o| ready_at_revision(o, 2)).await;
        assert!(renewed["status"].get("failedIssuanceAttempts").is_none(), "{renewed}");
    })
    .await;
}
