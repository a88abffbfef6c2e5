//! The Issuer and ClusterIssuer controller: keeps each issuer's `Ready` condition, as cert-manager's
//! `Setup` does for the two issuer types the stand-in implements.
//!
//! - `selfSigned: {}` is always Ready: reason `IsReady`, no message (`pkg/issuer/selfsigned/setup.go`).
//! - `ca: {secretName}` is Ready (`KeyPairVerified`, "Signing CA verified") when the Secret, in the
//!   issuer's namespace or [`CLUSTER_RESOURCE_NAMESPACE`] for a ClusterIssuer, holds a decodable
//!   `tls.crt` and `tls.key` and the certificate is a CA; otherwise `ErrGetKeyPair` or
//!   `ErrInvalidKeyPair` with cert-manager's messages (`pkg/issuer/ca/setup.go`, `pkg/util/kube/pki.go`).
//!   Like cert-manager, it does not check that the key belongs to the certificate: signing does.
//! - An issuer listed in `brokenIssuers` is not Ready (`ErrInitIssuer`, the reason cert-manager
//!   gives a failed `Setup`), and nothing is signed with it.
//!
//! Fault changes emit no store event, so a short resync is what notices them.

use std::time::Duration;

use serde_json::Value;
use x509_parser::pem::Pem;

use super::{
    CLUSTER_ISSUERS, CLUSTER_RESOURCE_NAMESPACE, Condition, GROUP, ISSUERS, SECRETS, cm_type, resource_namespace,
    secret_bytes, secrets, set_condition,
};
use crate::sim::controllers::{Controller, Key, Requeue, keys_of};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{Event, Part};

pub fn controller() -> Controller {
    Controller {
        name: "certmanager",
        interests,
        keys: |s| [keys_of(s, GROUP, "issuers"), keys_of(s, GROUP, "clusterissuers")].concat(),
        reconcile,
        resync: Duration::from_secs(1),
        follows_clock: false,
    }
}

fn interests(state: &SimState, e: &Event) -> Vec<Key> {
    match e.type_key.as_str() {
        ISSUERS | CLUSTER_ISSUERS => vec![Key::of(e)],
        SECRETS => {
            let name = e.object["metadata"]["name"].as_str().unwrap_or_default();
            let uses = |i: &Value| i["spec"]["ca"]["secretName"] == name;
            let mut keys: Vec<Key> = state
                .store
                .all(&cm_type(state, "issuers"), Some(&e.namespace))
                .iter()
                .filter(|i| uses(i))
                .map(|i| Key::new(ISSUERS, &e.namespace, i["metadata"]["name"].as_str().unwrap_or_default()))
                .collect();
            if e.namespace == CLUSTER_RESOURCE_NAMESPACE {
                keys.extend(
                    state
                        .store
                        .all(&cm_type(state, "clusterissuers"), None)
                        .iter()
                        .filter(|i| uses(i))
                        .map(|i| Key::new(CLUSTER_ISSUERS, "", i["metadata"]["name"].as_str().unwrap_or_default())),
                );
            }
            keys
        }
        _ => Vec::new(),
    }
}

fn reconcile(state: &SimState, key: &Key) -> Result<Requeue, ApiError> {
    let cluster = key.kind == CLUSTER_ISSUERS;
    let t = cm_type(state, if cluster { "clusterissuers" } else { "issuers" });
    let issuer = state.store.get(&t, &key.namespace, &key.name)?;
    if issuer["metadata"].get("deletionTimestamp").is_some() {
        return Ok(None);
    }
    let ns = resource_namespace(cluster, &key.namespace);
    let fault_key = if cluster { key.name.clone() } else { format!("{}/{}", key.namespace, key.name) };
    let secret =
        issuer["spec"]["ca"]["secretName"].as_str().and_then(|name| state.store.get(&secrets(state), ns, name).ok());
    let ready = readiness(&issuer["spec"], ns, secret.as_deref(), state.faults.issuer_broken(&fault_key));
    let generation = issuer["metadata"]["generation"].as_i64();
    let now = state.store.clock.stamp();
    state.store.mutate(&t, &key.namespace, &key.name, Part::Status, false, |old| {
        let mut new = old.clone();
        set_condition(&mut new["status"], &ready, &now, generation);
        Ok(Some(new))
    })?;
    Ok(None)
}

/// The `Ready` condition of an issuer with this `spec`, whose Secrets live in `ns`; `ca_secret` is
/// the Secret `spec.ca.secretName` names, if it exists.
pub fn readiness(spec: &Value, ns: &str, ca_secret: Option<&Value>, broken: bool) -> Condition {
    if broken {
        return Condition::new(
            "Ready",
            "False",
            "ErrInitIssuer",
            "Error initializing issuer: injected fault: the issuer is listed in brokenIssuers",
        );
    }
    if spec.get("selfSigned").is_some_and(Value::is_object) {
        return Condition::new("Ready", "True", "IsReady", "");
    }
    let Some(secret_name) = spec["ca"]["secretName"].as_str() else {
        return Condition::new(
            "Ready",
            "False",
            "ErrInitIssuer",
            "Error initializing issuer: the simulator's cert-manager implements only the selfSigned and ca issuer types",
        );
    };
    match verify_ca(ns, secret_name, ca_secret) {
        Ok(()) => Condition::new("Ready", "True", "KeyPairVerified", "Signing CA verified"),
        Err((reason, why)) => {
            Condition::new("Ready", "False", reason, format!("Error getting keypair for CA issuer: {why}"))
        }
    }
}

/// cert-manager's CA `Setup`: the certificate first (`SecretTLSCert`), then the key
/// (`SecretTLSKey`), then `IsCA`. Errors are (reason, the wrapped error's text).
fn verify_ca(ns: &str, name: &str, secret: Option<&Value>) -> Result<(), (&'static str, String)> {
    let get = "ErrGetKeyPair";
    let secret = secret.ok_or_else(|| (get, format!("secret \"{name}\" not found")))?;
    let missing = |key: &str| (get, format!("no data for \"{key}\" in secret '{ns}/{name}'"));
    if secret["data"].get("tls.crt").is_none() {
        return Err(missing("tls.crt"));
    }
    let cert = secret_bytes(secret, "tls.crt");
    let is_ca = first_certificate_is_ca(&cert).ok_or_else(|| (get, "error decoding certificate PEM block".into()))?;
    if secret["data"].get("tls.key").is_none() {
        return Err(missing("tls.key"));
    }
    decode_private_key(&secret_bytes(secret, "tls.key")).map_err(|why| (get, why))?;
    if !is_ca {
        return Err(("ErrInvalidKeyPair", "certificate is not a CA".into()));
    }
    Ok(())
}

/// Whether the first certificate of a PEM bundle has `CA:TRUE` (Go's `IsCA`); `None` when no
/// certificate decodes.
fn first_certificate_is_ca(pem: &[u8]) -> Option<bool> {
    let block = Pem::iter_from_buffer(pem).filter_map(Result::ok).find(|b| b.label == "CERTIFICATE")?;
    let cert = block.parse_x509().ok()?;
    Some(cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca))
}

/// `DecodePrivateKeyBytes`: the first PEM block must be a private key of a known type that
/// parses. Messages follow Go's; none carries any of the key.
pub fn decode_private_key(pem: &[u8]) -> Result<(), String> {
    let block = Pem::iter_from_buffer(pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| "error decoding private key PEM block".to_string())?;
    let what = match block.label.as_str() {
        "PRIVATE KEY" => "pkcs#8",
        "EC PRIVATE KEY" => "ecdsa",
        "RSA PRIVATE KEY" => "rsa",
        other => return Err(format!("unknown private key type: {other}")),
    };
    let text = std::str::from_utf8(pem).map_err(|_| "error decoding private key PEM block".to_string())?;
    rcgen::KeyPair::from_pem(text).map(|_| ()).map_err(|_| format!("error parsing {what} private key"))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use super::super::pki;
    use super::*;

    fn secret(cert: &str, key: &str) -> Value {
        json!({"data": {"tls.crt": STANDARD.encode(cert), "tls.key": STANDARD.encode(key)}})
    }

    fn issued(is_ca: bool) -> pki::Issued {
        let spec = pki::cert_spec(&json!({"secretName": "s", "issuerRef": {"name": "i"}, "commonName": "root",
                                          "isCA": is_ca, "privateKey": {"algorithm": "ECDSA"}}))
        .unwrap();
        pki::issue_self_signed(&spec, chrono::Utc::now()).unwrap()
    }

    fn ready(spec: Value, secret: Option<&Value>, broken: bool) -> (String, String, String) {
        let c = readiness(&spec, "cert-manager", secret, broken);
        (c.status.to_string(), c.reason, c.message)
    }

    #[test]
    fn a_self_signed_issuer_is_ready_without_a_message_unless_broken() {
        assert_eq!(ready(json!({"selfSigned": {}}), None, false), ("True".into(), "IsReady".into(), String::new()));
        let (status, reason, message) = ready(json!({"selfSigned": {}}), None, true);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "ErrInitIssuer"));
        assert!(message.starts_with("Error initializing issuer: "));
    }

    #[test]
    fn a_ca_issuer_is_ready_only_with_a_decodable_ca_key_pair() {
        let ca = issued(true);
        let spec = json!({"ca": {"secretName": "root"}});
        let good = secret(&ca.cert_pem, &ca.key_pem);
        assert_eq!(ready(spec.clone(), Some(&good), false).2, "Signing CA verified");
        assert_eq!(ready(spec.clone(), Some(&good), false).1, "KeyPairVerified");
        assert_eq!(
            ready(spec.clone(), None, false),
            (
                "False".into(),
                "ErrGetKeyPair".into(),
                "Error getting keypair for CA issuer: secret \"root\" not found".into()
            )
        );
        let no_key = json!({"data": {"tls.crt": good["data"]["tls.crt"]}});
        assert_eq!(
            ready(spec.clone(), Some(&no_key), false).2,
            "Error getting keypair for CA issuer: no data for \"tls.key\" in secret 'cert-manager/root'"
        );
        let junk = secret("not a certificate", &ca.key_pem);
        assert_eq!(
            ready(spec.clone(), Some(&junk), false).2,
            "Error getting keypair for CA issuer: error decoding certificate PEM block"
        );
        let bad_key = secret(&ca.cert_pem, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
        assert_eq!(
            ready(spec.clone(), Some(&bad_key), false).2,
            "Error getting keypair for CA issuer: error parsing rsa private key"
        );
        let leaf = issued(false);
        let (_, reason, message) = ready(spec, Some(&secret(&leaf.cert_pem, &leaf.key_pem)), false);
        assert_eq!(
            (reason.as_str(), message.as_str()),
            ("ErrInvalidKeyPair", "Error getting keypair for CA issuer: certificate is not a CA")
        );
    }

    #[test]
    fn issuer_types_the_simulator_lacks_are_reported_not_ready() {
        let (status, reason, message) = ready(json!({"acme": {"server": "https://acme.example"}}), None, false);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "ErrInitIssuer"));
        assert!(message.contains("selfSigned and ca"));
    }
}
