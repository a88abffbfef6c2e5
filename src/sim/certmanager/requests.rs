//! CertificateRequests: one per issuance attempt, as cert-manager's request manager creates them,
//! so that `kubectl get certificaterequests` tells a drill what happened to each revision.
//!
//! Names are `<certificate>-<revision>` (cert-manager's `StableCertificateRequestName`, on by default
//! since v1.16), with annotations `cert-manager.io/certificate-name` and
//! `cert-manager.io/certificate-revision`, a controller owner reference to the Certificate, and a
//! real CSR for the key. Status: `Approved` (by `cert-manager.io`), then `Ready` True/`Issued` with
//! `certificate` and `ca`, False/`Pending` while the issuer cannot sign, or False/`Failed` with
//! `failureTime`. `spec.revisionHistoryLimit` prunes the oldest.
//!
//! Differences, each a consequence of [`super::pki`] making keys only while issuing: the request is
//! written after signing rather than before; a Pending or Failed request carries a CSR for a key
//! that is then discarded, and when its revision is finally signed it is replaced by a new request
//! for the new key. There is no `nextPrivateKeySecretName` Secret, and no requester identity
//! (`username`, `groups`), which the admission webhook would fill in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use serde_json::{Value, json};

use super::pki::{self, CertSpec, Issued};
use super::{Condition, cm_type, set_condition, stamp};
use crate::sim::controllers::pods::owner_reference;
use crate::sim::server::SimState;
use crate::sim::status::ApiError;
use crate::sim::store::{DeleteOptions, Obj, Part};

const NAME: &str = "cert-manager.io/certificate-name";
const REVISION: &str = "cert-manager.io/certificate-revision";

/// How an attempt ended.
#[derive(Debug)]
pub enum RequestState<'a> {
    Issued(&'a Issued),
    Failed(String),
    /// Waiting for the issuer, with the message; `None` for an external issuer, whose requests
    /// no controller here looks at (no conditions at all, not even `Approved`).
    Pending(Option<String>),
}

/// The request of a revision: `<certificate>-<revision>`, the certificate's name shortened as
/// `DNSSafeShortenTo52Characters` does.
pub fn name(certificate: &str, revision: i64) -> String {
    let mut base: String = certificate.chars().take(52).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{revision}")
}

fn owned(request: &Value, certificate: &Value) -> bool {
    let uid = &certificate["metadata"]["uid"];
    request["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["uid"] == *uid))
}

/// The request of `revision` of the Certificate, if it is still there and is this Certificate's.
pub fn current(state: &SimState, certificate: &Value, revision: Option<i64>) -> Option<Obj> {
    let revision = revision?;
    let ns = certificate["metadata"]["namespace"].as_str()?;
    let cert_name = certificate["metadata"]["name"].as_str()?;
    let request = state.store.get(&cm_type(state, "certificaterequests"), ns, &name(cert_name, revision)).ok()?;
    let a = &request["metadata"]["annotations"];
    let same_revision = a[REVISION].as_str().and_then(|r| r.parse::<i64>().ok()) == Some(revision);
    (a[NAME] == cert_name && same_revision && owned(&request, certificate)).then_some(request)
}

/// Records an attempt at `revision`. A Pending request already there only has its message
/// updated; any other earlier request of the revision is replaced.
pub fn record(
    state: &SimState,
    certificate: &Value,
    spec: &CertSpec,
    revision: i64,
    what: RequestState,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let t = cm_type(state, "certificaterequests");
    let ns = certificate["metadata"]["namespace"].as_str().unwrap_or_default();
    let cert_name = certificate["metadata"]["name"].as_str().unwrap_or_default();
    let request_name = name(cert_name, revision);
    let now_stamp = stamp(now);
    if let Ok(existing) = state.store.get(&t, ns, &request_name) {
        let pending = existing["status"]["conditions"]
            .as_array()
            .is_none_or(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["reason"] == "Pending"));
        if matches!(what, RequestState::Pending(_)) && pending && owned(&existing, certificate) {
            state.store.mutate(&t, ns, &request_name, Part::Status, false, |old| {
                let mut new = old.clone();
                write_status(&mut new["status"], &what, &now_stamp);
                Ok(Some(new))
            })?;
            return Ok(());
        }
        match state.store.delete(&t, ns, &request_name, &DeleteOptions::default()) {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    let key_pem = match &what {
        RequestState::Issued(issued) => Some(issued.key_pem.clone()),
        _ => unsigned_key(spec, now),
    };
    let mut request_spec = json!({
        "issuerRef": certificate["spec"]["issuerRef"],
        "duration": pki::format_go_duration(spec.duration),
        "isCA": spec.is_ca,
    });
    if !spec.usages.is_empty() {
        request_spec["usages"] = json!(spec.usages);
    }
    if let Some(csr) = key_pem.as_deref().and_then(|k| csr_pem(spec, k)) {
        request_spec["request"] = json!(STANDARD.encode(csr));
    }
    let mut labels = certificate["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let request = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": request_name,
            "namespace": ns,
            "labels": labels,
            "annotations": {NAME: cert_name, REVISION: revision.to_string()},
            "ownerReferences": [owner_reference(certificate)],
        },
        "spec": request_spec,
    });
    state.store.create(&t, ns, request, false)?;
    if !matches!(what, RequestState::Pending(None)) {
        state.store.mutate(&t, ns, &request_name, Part::Status, false, |old| {
            let mut new = old.clone();
            write_status(&mut new["status"], &what, &now_stamp);
            Ok(Some(new))
        })?;
    }
    if matches!(what, RequestState::Issued(_)) {
        prune(state, certificate, revision)?;
    }
    Ok(())
}

fn write_status(status: &mut Value, what: &RequestState, now: &str) {
    let approved = Condition::new(
        "Approved",
        "True",
        "cert-manager.io",
        "Certificate request has been approved by cert-manager.io",
    );
    set_condition(status, &approved, now, None);
    let ready = match what {
        RequestState::Issued(issued) => {
            status["certificate"] = json!(STANDARD.encode(&issued.cert_pem));
            if let Some(ca) = issued.ca_pem.as_deref().filter(|ca| !ca.is_empty()) {
                status["ca"] = json!(STANDARD.encode(ca));
            }
            Condition::new("Ready", "True", "Issued", "Certificate fetched from issuer successfully")
        }
        RequestState::Failed(message) => {
            status["failureTime"] = json!(now);
            Condition::new("Ready", "False", "Failed", message.clone())
        }
        RequestState::Pending(message) => {
            Condition::new("Ready", "False", "Pending", message.clone().unwrap_or_default())
        }
    };
    set_condition(status, &ready, now, None);
}

/// A key of the kind the spec asks for, for a request that is not signed now. [`pki`] makes keys
/// only while issuing, so the way to one is a throwaway self-signed certificate; when even that
/// fails (the spec asks for a key the simulator cannot make), a P-256 key stands in.
fn unsigned_key(spec: &CertSpec, now: DateTime<Utc>) -> Option<String> {
    match pki::issue_self_signed(spec, now) {
        Ok(issued) => Some(issued.key_pem),
        Err(_) => KeyPair::generate().ok().map(|k| k.serialize_pem()),
    }
}

/// A PEM CSR for the spec's subject common name and SANs, signed with the key.
pub(super) fn csr_pem(spec: &CertSpec, key_pem: &str) -> Option<String> {
    let key = KeyPair::from_pem(key_pem).ok()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if !spec.common_name.is_empty() {
        params.distinguished_name.push(DnType::CommonName, spec.common_name.as_str());
    }
    let ia5 = |s: &String| Ia5String::try_from(s.as_str()).ok();
    let mut sans: Vec<SanType> = spec.dns_names.iter().filter_map(ia5).map(SanType::DnsName).collect();
    sans.extend(spec.email_addresses.iter().filter_map(ia5).map(SanType::Rfc822Name));
    sans.extend(spec.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
    sans.extend(spec.uris.iter().filter_map(ia5).map(SanType::URI));
    params.subject_alt_names = sans;
    params.serialize_request(&key).ok()?.pem().ok()
}

/// Deletes the Certificate's requests older than the newest `spec.revisionHistoryLimit` (none
/// when it is unset, as in cert-manager).
fn prune(state: &SimState, certificate: &Value, revision: i64) -> Result<(), ApiError> {
    let Some(limit) = certificate["spec"]["revisionHistoryLimit"].as_i64().filter(|l| *l >= 1) else {
        return Ok(());
    };
    let t = cm_type(state, "certificaterequests");
    let ns = certificate["metadata"]["namespace"].as_str().unwrap_or_default();
    let cert_name = &certificate["metadata"]["name"];
    for request in state.store.all(&t, Some(ns)) {
        let a = &request["metadata"]["annotations"];
        let old = a[REVISION].as_str().and_then(|r| r.parse::<i64>().ok()).is_some_and(|r| r <= revision - limit);
        if a[NAME] == *cert_name && old && owned(&request, certificate) {
            let name = request["metadata"]["name"].as_str().unwrap_or_default();
            match state.store.delete(&t, ns, name, &DeleteOptions::default()) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::pem::parse_x509_pem;
    use x509_parser::prelude::FromDer;

    use super::*;

    #[test]
    fn request_names_are_stable_and_dns_safe() {
        assert_eq!(name("web", 3), "web-3");
        let long = format!("{}-tail", "a".repeat(51));
        assert_eq!(name(&long, 1), format!("{}-1", "a".repeat(51)), "cut at 52 and trailing '-' dropped");
    }

    #[test]
    fn a_request_carries_a_csr_for_the_issued_key_and_names() {
        let spec = pki::cert_spec(&json!({"secretName": "s", "issuerRef": {"name": "i"}, "commonName": "web",
                                          "dnsNames": ["web.example.com"], "ipAddresses": ["10.0.0.1"],
                                          "privateKey": {"algorithm": "ECDSA"}}))
        .unwrap();
        let issued = pki::issue_self_signed(&spec, Utc::now()).unwrap();
        let pem = csr_pem(&spec, &issued.key_pem).unwrap();
        let (_, block) = parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&block.contents).unwrap();
        let cn = csr.certification_request_info.subject.iter_common_name().next().unwrap().as_str().unwrap();
        assert_eq!(cn, "web");
        assert!(csr.requested_extensions().is_some_and(|mut e| e.any(|x| matches!(
            x,
            x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) if san.general_names.len() == 2
        ))));
        assert!(unsigned_key(&spec, Utc::now()).is_some_and(|k| k.contains("PRIVATE KEY")));
    }

    #[test]
    fn request_statuses_say_issued_pending_or_failed() {
        let mut s = json!({});
        write_status(
            &mut s,
            &RequestState::Pending(Some("Referenced issuer does not have a Ready status condition".into())),
            "t",
        );
        assert_eq!(s["conditions"][0]["type"], "Approved");
        assert_eq!(
            (s["conditions"][1]["reason"].as_str(), s["conditions"][1]["status"].as_str()),
            (Some("Pending"), Some("False"))
        );
        write_status(&mut s, &RequestState::Failed("Error signing certificate: x".into()), "t2");
        assert_eq!((s["conditions"][1]["reason"].as_str(), s["failureTime"].as_str()), (Some("Failed"), Some("t2")));
    }
}
