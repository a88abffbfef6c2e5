//! One issuance attempt for a Certificate whose `Issuing` condition is True: find its issuer, sign
//! (SelfSigned or CA, through [`pki`]), store the key pair in the Secret, and record the attempt as
//! a CertificateRequest. What cert-manager spreads over its key-manager, request-manager, issuer
//! and issuing controllers happens here in one step, so a request is never left half-done.
//!
//! The issuer checks follow cert-manager's CertificateRequest controllers: a missing or not-Ready
//! issuer, or a CA Secret that cannot be read, leaves the request Pending (no failure is counted,
//! the certificate keeps its `Issuing` condition); an error while signing fails it. External
//! issuers (another `issuerRef.group`) have no controller here, so their requests stay Pending.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::pki::{self, CertSpec, Issued};
use super::requests::{self, RequestState};
use super::{IssuerRef, cm_type, is_true, resource_namespace, secret_bytes, secrets};
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::Part;

/// What an attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret holds a new key pair; this is the Certificate's new revision.
    Issued { revision: i64 },
    /// Signing failed; the request's message.
    Failed { message: String },
    /// The issuer cannot sign yet.
    Pending,
}

/// How to sign.
enum Signer {
    SelfSigned,
    Ca { cert_pem: String, key_pem: String },
}

/// Attempts the issuance of the Certificate's next revision at `now` (the simulated time).
pub fn attempt(
    state: &SimState,
    certificate: &Value,
    spec: &CertSpec,
    now: DateTime<Utc>,
) -> Result<Outcome, ApiError> {
    let ns = certificate["metadata"]["namespace"].as_str().unwrap_or_default();
    let revision = certificate["status"]["revision"].as_i64().unwrap_or(0) + 1;
    let issuer = IssuerRef::of(certificate);
    let signer = match signer(state, &issuer, ns) {
        Ok(signer) => signer,
        Err(why) => {
            record(state, certificate, spec, revision, RequestState::Pending(why), now);
            return Ok(Outcome::Pending);
        }
    };
    let signed = match &signer {
        Signer::SelfSigned => pki::issue_self_signed(spec, now),
        Signer::Ca { cert_pem, key_pem } => pki::issue_from_ca(spec, cert_pem, key_pem, now),
    };
    match signed {
        // `PkiError` messages never carry key material.
        Err(e) => {
            let message = format!("Error signing certificate: {e}");
            record(state, certificate, spec, revision, RequestState::Failed(message.clone()), now);
            Ok(Outcome::Failed { message })
        }
        Ok(issued) => {
            store_secret(state, certificate, &issuer, &issued)?;
            record(state, certificate, spec, revision, RequestState::Issued(&issued), now);
            Ok(Outcome::Issued { revision })
        }
    }
}

/// Records the attempt. A request that cannot be written (its namespace is going away) must not
/// undo an issuance whose Secret is already stored, so this only logs.
fn record(
    state: &SimState,
    certificate: &Value,
    spec: &CertSpec,
    revision: i64,
    what: RequestState,
    now: DateTime<Utc>,
) {
    if let Err(e) = requests::record(state, certificate, spec, revision, what, now) {
        let name = certificate["metadata"]["name"].as_str().unwrap_or_default();
        tracing::debug!(certificate = name, revision, error = %e.message, "CertificateRequest not recorded");
    }
}

/// The issuer's signing material, or why the request must wait: `Err(None)` for an external
/// issuer (no condition at all), `Err(Some(message))` for the Pending message.
fn signer(state: &SimState, r: &IssuerRef, ns: &str) -> Result<Signer, Option<String>> {
    if !r.builtin() {
        return Err(None);
    }
    let (plural, issuer_ns, lower) =
        if r.cluster() { ("clusterissuers", "", "clusterissuer") } else { ("issuers", ns, "issuer") };
    let issuer = state.store.get(&cm_type(state, plural), issuer_ns, &r.name).map_err(|_| {
        Some(format!("Referenced {:?} not found: {lower}.cert-manager.io {:?} not found", r.kind, r.name))
    })?;
    let not_ready = || Some("Referenced issuer does not have a Ready status condition".to_string());
    if !is_true(&issuer, "Ready") || state.faults.issuer_broken(&r.fault_key(ns)) {
        return Err(not_ready());
    }
    if issuer["spec"].get("selfSigned").is_some_and(Value::is_object) {
        return Ok(Signer::SelfSigned);
    }
    let name = issuer["spec"]["ca"]["secretName"].as_str().ok_or_else(not_ready)?;
    let rns = resource_namespace(r.cluster(), ns);
    let secret = state
        .store
        .get(&secrets(state), rns, name)
        .map_err(|_| Some(format!("Referenced secret {rns}/{name} not found: secret {name:?} not found")))?;
    let (cert, key) = (secret_bytes(&secret, "tls.crt"), secret_bytes(&secret, "tls.key"));
    if cert.is_empty() || key.is_empty() {
        let missing = if key.is_empty() { "tls.key" } else { "tls.crt" };
        return Err(Some(format!(
            "Failed to parse signing CA keypair from secret {rns}/{name}: no data for {missing:?} in secret '{rns}/{name}'"
        )));
    }
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Ok(Signer::Ca { cert_pem: text(cert), key_pem: text(key) })
}

/// Annotation keys cert-manager derives from the issued certificate; ones a new certificate no
/// longer has are dropped, others' annotations (cainjector's, a user's) are kept.
fn written_by_issuance(key: &str) -> bool {
    key.strip_prefix("cert-manager.io/").is_some_and(|k| {
        k.starts_with("subject-")
            || [
                "common-name",
                "alt-names",
                "ip-sans",
                "uri-sans",
                "email-sans",
                "certificate-name",
                "issuer-name",
                "issuer-kind",
                "issuer-group",
            ]
            .contains(&k)
    })
}

/// Writes the key pair into `spec.secretName` (`type: kubernetes.io/tls`), with cert-manager's
/// annotations, its `controller.cert-manager.io/fao` label and `spec.secretTemplate`. Data keys
/// other than `tls.crt`, `tls.key` and `ca.crt` are kept, as cert-manager's apply keeps them.
fn store_secret(state: &SimState, certificate: &Value, r: &IssuerRef, issued: &Issued) -> Result<(), ApiError> {
    let t = secrets(state);
    let ns = certificate["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = certificate["spec"]["secretName"].as_str().unwrap_or_default();
    let data = pki::secret_data(issued);
    let annotations = pki::secret_annotations(certificate, &r.kind, &r.name, &r.group);
    let apply = |secret: &mut Value| {
        let mut d = secret["data"].as_object().cloned().unwrap_or_default();
        d.retain(|k, _| !["tls.crt", "tls.key", "ca.crt"].contains(&k.as_str()));
        d.extend(data.iter().map(|(k, v)| (k.clone(), json!(v))));
        secret["data"] = Value::Object(d);
        let mut a = secret["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        a.retain(|k, _| !written_by_issuance(k));
        a.extend(annotations.iter().map(|(k, v)| (k.clone(), json!(v))));
        secret["metadata"]["annotations"] = Value::Object(a);
        secret["metadata"]["labels"]["controller.cert-manager.io/fao"] = json!("true");
        apply_template(secret, certificate);
    };
    match state.store.get(&t, ns, name) {
        Err(e) if e.is_not_found() => {
            let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                    "metadata": {"name": name, "namespace": ns}});
            apply(&mut secret);
            state.store.create(&t, ns, secret, false).map(|_| ())
        }
        Err(e) => Err(e),
        Ok(_) => state
            .store
            .mutate(&t, ns, name, Part::Main, false, |old| {
                let mut new = old.clone();
                apply(&mut new);
                Ok(Some(new))
            })
            .map(|_| ()),
    }
}

/// Puts `spec.secretTemplate`'s labels and annotations on a Secret.
fn apply_template(secret: &mut Value, certificate: &Value) {
    let template = &certificate["spec"]["secretTemplate"];
    for field in ["labels", "annotations"] {
        for (k, v) in template[field].as_object().into_iter().flatten() {
            secret["metadata"][field][k] = v.clone();
        }
    }
}

/// Keeps the template on a Secret this Certificate issued when only the template changed, as
/// cert-manager's post-issuance policy does without re-issuing. Labels or annotations removed from
/// the template stay on the Secret (cert-manager tracks them through managed fields).
pub fn sync_template(state: &SimState, certificate: &Value, secret: &Value) -> Result<(), ApiError> {
    let mine = certificate["metadata"]["name"].as_str().unwrap_or_default();
    if secret["metadata"]["annotations"]["cert-manager.io/certificate-name"] != mine {
        return Ok(());
    }
    let mut wanted = secret.clone();
    apply_template(&mut wanted, certificate);
    if wanted == *secret {
        return Ok(());
    }
    let ns = secret["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = secret["metadata"]["name"].as_str().unwrap_or_default();
    state.store.mutate(&secrets(state), ns, name, Part::Main, false, |old| {
        let mut new = old.clone();
        apply_template(&mut new, certificate);
        Ok(Some(new))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_annotations_issuance_derives_are_replaced() {
        for k in ["cert-manager.io/alt-names", "cert-manager.io/subject-organizations", "cert-manager.io/issuer-kind"] {
            assert!(written_by_issuance(k), "{k}");
        }
        for k in ["cert-manager.io/allow-direct-injection", "example.com/owner", "alt-names"] {
            assert!(!written_by_issuance(k), "{k}");
        }
    }

    #[test]
    fn the_secret_template_adds_labels_and_annotations() {
        let cert = json!({"spec": {"secretTemplate": {"labels": {"team": "web"}, "annotations": {"note": "drill"}}}});
        let mut secret = json!({"metadata": {"labels": {"keep": "me"}}});
        apply_template(&mut secret, &cert);
        assert_eq!(
            secret["metadata"],
            json!({"labels": {"keep": "me", "team": "web"}, "annotations": {"note": "drill"}})
        );
    }
}
