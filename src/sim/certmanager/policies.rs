//! When a Certificate needs issuing, and whether it is Ready: cert-manager's trigger and readiness
//! policy chains (`internal/controller/certificates/policies/{policies,checks}.go`), as pure
//! functions of the Certificate, its Secret, the CertificateRequest of its current revision and
//! the simulated time. Both chains share every check but the last: the trigger chain ends with
//! "renewal time reached", the readiness chain with "expired". The first failing check decides,
//! with cert-manager's reason and message.
//!
//! Not modelled: the keystore, additional-output-format and managed-fields checks, and the
//! renewal windows of cert-manager ≥ 1.21 (only `renewal.policy: Disabled` is honoured).

use chrono::{DateTime, Utc};
use serde_json::Value;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::drift;
use super::issuers::decode_private_key;
use super::pki::{self, CertSpec};
use super::{Condition, GROUP, secret_bytes};

/// Why a check failed: the reason and message cert-manager writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: &'static str,
    pub message: String,
}

fn violation(reason: &'static str, message: impl Into<String>) -> Violation {
    Violation { reason, message: message.into() }
}

/// What the checks look at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub certificate: &'a Value,
    pub spec: &'a CertSpec,
    /// The Secret `spec.secretName`, if it exists.
    pub secret: Option<&'a Value>,
    /// The CertificateRequest of `status.revision`, if it is still there.
    pub current_request: Option<&'a Value>,
    pub now: DateTime<Utc>,
}

/// The issued certificate, once the shared checks have passed.
struct Leaf {
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

/// The trigger chain: why the Certificate must be (re-)issued, if it must.
pub fn trigger(input: &Input) -> Option<Violation> {
    match shared(input) {
        Err(v) => Some(v),
        Ok(leaf) => renewal_due(input, &leaf),
    }
}

/// The readiness chain, as the `Ready` condition.
pub fn readiness(input: &Input) -> Condition {
    let verdict = shared(input).and_then(|leaf| {
        if input.now > leaf.not_after {
            return Err(violation("Expired", format!("Certificate expired on {}", rfc1123(leaf.not_after))));
        }
        Ok(())
    });
    match verdict {
        Ok(()) => Condition::new("Ready", "True", "Ready", "Certificate is up to date and has not expired"),
        Err(v) => Condition::new("Ready", "False", v.reason, v.message),
    }
}

/// `status.notBefore`, `notAfter` and `renewalTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// None with `renewal.policy: Disabled`.
    pub renewal: Option<DateTime<Utc>>,
}

/// The [`Validity`] of the certificate in the Secret; none when there is none that parses.
pub fn validity(input: &Input) -> Option<Validity> {
    let pem = String::from_utf8_lossy(&secret_bytes(input.secret?, "tls.crt")).into_owned();
    let (not_before, not_after) = pki::validity(&pem).ok()?;
    let renewal = (!renewal_disabled(input.certificate)).then(|| input.spec.renewal_time(not_before, not_after));
    Some(Validity { not_before, not_after, renewal })
}

/// `spec.renewal.policy: Disabled` (cert-manager ≥ 1.21): no renewal time is computed.
pub fn renewal_disabled(certificate: &Value) -> bool {
    certificate["spec"]["renewal"]["policy"] == "Disabled"
}

/// Every check both chains run, in cert-manager's order.
fn shared(input: &Input) -> Result<Leaf, Violation> {
    let Some(secret) = input.secret else {
        return Err(violation("DoesNotExist", "Issuing certificate as Secret does not exist"));
    };
    if !secret["data"].is_object() {
        return Err(violation("MissingData", "Issuing certificate as Secret does not contain any data"));
    }
    let key = secret_bytes(secret, "tls.key");
    let cert = secret_bytes(secret, "tls.crt");
    if key.is_empty() {
        return Err(violation("MissingData", "Issuing certificate as Secret does not contain a private key"));
    }
    if cert.is_empty() {
        return Err(violation("MissingData", "Issuing certificate as Secret does not contain a certificate"));
    }
    if let Err(why) = decode_private_key(&key) {
        return Err(violation(
            "InvalidKeyPair",
            format!("Issuing certificate as Secret contains invalid private key data: {why}"),
        ));
    }
    let der = first_certificate(&cert).ok_or_else(|| {
        violation(
            "InvalidCertificate",
            "Issuing certificate as Secret contains an invalid certificate: error decoding certificate PEM block",
        )
    })?;
    let (cert_pem, key_pem) = (String::from_utf8_lossy(&cert), String::from_utf8_lossy(&key));
    if !pki::key_matches(&cert_pem, &key_pem) {
        return Err(violation(
            "InvalidKeyPair",
            "Issuing certificate as Secret contains a private key that does not match the certificate",
        ));
    }
    let Ok((_, x509)) = X509Certificate::from_der(&der) else {
        return Err(violation("InvalidCertificate", "Issuing certificate as Secret contains an invalid certificate"));
    };
    issuer_annotations(input, secret)?;
    certificate_name_annotation(input, secret)?;
    private_key_spec(input, x509.public_key())?;
    match input.current_request.and_then(|r| Some((r, drift::request_csr(r)?))) {
        Some((request, csr_der)) => request_matches(input, request, &csr_der, x509.public_key())?,
        None => secret_matches(input, &x509)?,
    }
    let (not_before, not_after) = pki::validity(&cert_pem).map_err(|e| {
        violation("InvalidCertificate", format!("Issuing certificate as Secret contains an invalid certificate: {e}"))
    })?;
    Ok(Leaf { not_before, not_after })
}

/// `SecretIssuerAnnotationsMismatch`, Go's operator precedence included: the name is compared only
/// when some issuer annotation is present, kind and group always (so a Secret without annotations
/// for a ClusterIssuer's Certificate counts as issued by someone else).
fn issuer_annotations(input: &Input, secret: &Value) -> Result<(), Violation> {
    let a = &secret["metadata"]["annotations"];
    let get = |k: &str| a[format!("cert-manager.io/{k}")].as_str();
    let (name, kind, group) = (get("issuer-name"), get("issuer-kind"), get("issuer-group"));
    let wanted = &input.certificate["spec"]["issuerRef"];
    let or = |v: Option<&str>, default: &'static str| v.filter(|s| !s.is_empty()).unwrap_or(default).to_string();
    let want_kind = or(wanted["kind"].as_str(), "Issuer");
    let want_group = or(wanted["group"].as_str(), GROUP);
    let any = name.is_some() || kind.is_some() || group.is_some();
    if (any && name.unwrap_or_default() != wanted["name"].as_str().unwrap_or_default())
        || or(kind, "Issuer") != want_kind
        || or(group, GROUP) != want_group
    {
        let was = format!("{}.{}/{}", or(kind, "Issuer"), or(group, GROUP), name.unwrap_or_default());
        return Err(violation(
            "IncorrectIssuer",
            format!("Issuing certificate as Secret was previously issued by {was:?}"),
        ));
    }
    Ok(())
}

fn certificate_name_annotation(input: &Input, secret: &Value) -> Result<(), Violation> {
    let mine = input.certificate["metadata"]["name"].as_str().unwrap_or_default();
    match secret["metadata"]["annotations"]["cert-manager.io/certificate-name"].as_str() {
        Some(name) if name != mine => Err(violation(
            "IncorrectCertificate",
            format!(
                "Secret was issued for {name:?}. If this message is not transient, you might have two conflicting Certificates pointing to the same secret."
            ),
        )),
        _ => Ok(()),
    }
}

/// `SecretPrivateKeyMismatchesSpec`, read from the certificate's public key (the key pair check
/// has passed). Skipped with `rotationPolicy: Never`, since the key could not change anyway.
fn private_key_spec(input: &Input, spki: &SubjectPublicKeyInfo) -> Result<(), Violation> {
    if input.certificate["spec"]["privateKey"]["rotationPolicy"] == "Never" {
        return Ok(());
    }
    match drift::private_key(&input.spec.private_key, spki).as_slice() {
        [] => Ok(()),
        fields => Err(violation(
            "SecretMismatch",
            format!("Existing private key is not up to date for spec: {}", go_list(fields)),
        )),
    }
}

/// `SecretPublicKeyDiffersFromCurrentCertificateRequest` and `CurrentCertificateRequestMismatchesSpec`.
fn request_matches(
    input: &Input,
    request: &Value,
    csr_der: &[u8],
    cert_key: &SubjectPublicKeyInfo,
) -> Result<(), Violation> {
    match drift::request(input.spec, &request["spec"], csr_der, cert_key) {
        drift::RequestDrift::None => Ok(()),
        drift::RequestDrift::OtherKey => Err(violation(
            "SecretMismatch",
            "Secret contains a private key that does not match the current CertificateRequest",
        )),
        drift::RequestDrift::Fields(fields) => Err(violation(
            "RequestChanged",
            format!("Fields on existing CertificateRequest resource not up to date: {}", go_list(&fields)),
        )),
    }
}

/// `currentSecretValidForSpec`, used when the current request is gone.
fn secret_matches(input: &Input, cert: &X509Certificate) -> Result<(), Violation> {
    match drift::certificate(input.spec, cert).as_slice() {
        [] => Ok(()),
        fields => Err(violation(
            "SecretMismatch",
            format!("Issuing certificate as Existing issued Secret is not up to date for spec: {}", go_list(fields)),
        )),
    }
}

/// `CurrentCertificateNearingExpiry`: due once the simulated time reaches the renewal time.
fn renewal_due(input: &Input, leaf: &Leaf) -> Option<Violation> {
    if renewal_disabled(input.certificate) {
        return None;
    }
    let at = input.spec.renewal_time(leaf.not_before, leaf.not_after);
    if at > input.now {
        return None;
    }
    // cert-manager prints `status.renewalTime` with Go's `Time.String`.
    let scheduled = super::parse_stamp(&input.certificate["status"]["renewalTime"]).unwrap_or(at);
    Some(violation("Renewing", format!("Renewing certificate as renewal was scheduled at {}", go_time(scheduled))))
}

/// The first certificate of a PEM bundle, as DER.
fn first_certificate(pem: &[u8]) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(pem).filter_map(Result::ok).find(|b| b.label == "CERTIFICATE").map(|b| b.contents)
}

/// Go's `fmt` of a `[]string`: `[a b]`.
fn go_list(items: &[&str]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.RFC1123` of a UTC time.
pub fn rfc1123(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

/// Go's `Time.String` of a UTC time with whole seconds.
fn go_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use chrono::TimeDelta;
    use serde_json::json;

    use super::super::requests::csr_pem;
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const ISSUED_AT: &str = "2026-01-01T00:00:00Z";

    fn certificate(spec: Value) -> Value {
        let mut base =
            json!({"secretName": "web-tls", "issuerRef": {"name": "ca"}, "privateKey": {"algorithm": "ECDSA"}});
        base.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": base})
    }

    fn parse(certificate: &Value) -> CertSpec {
        pki::cert_spec(&certificate["spec"]).unwrap()
    }

    fn issue(certificate: &Value) -> pki::Issued {
        pki::issue_self_signed(&parse(certificate), at(ISSUED_AT)).unwrap()
    }

    fn secret(issued: &pki::Issued, issuer: &str) -> Value {
        json!({"metadata": {"annotations": {"cert-manager.io/issuer-name": issuer, "cert-manager.io/issuer-kind": "Issuer",
                                            "cert-manager.io/issuer-group": "", "cert-manager.io/certificate-name": "web"}},
               "data": {"tls.crt": STANDARD.encode(&issued.cert_pem), "tls.key": STANDARD.encode(&issued.key_pem)}})
    }

    fn request(certificate: &Value, key_pem: &str) -> Value {
        let spec = parse(certificate);
        json!({"spec": {"request": STANDARD.encode(csr_pem(&spec, key_pem).unwrap()),
                        "duration": pki::format_go_duration(spec.duration), "isCA": spec.is_ca}})
    }

    /// (trigger reason and message, readiness reason) at `now`.
    fn judge(
        certificate: &Value,
        secret: Option<&Value>,
        request: Option<&Value>,
        now: &str,
    ) -> (Option<Violation>, String) {
        let spec = parse(certificate);
        let input = Input { certificate, spec: &spec, secret, current_request: request, now: at(now) };
        (trigger(&input), readiness(&input).reason)
    }

    fn reason(v: &Option<Violation>) -> Option<(&str, &str)> {
        v.as_ref().map(|v| (v.reason, v.message.as_str()))
    }

    #[test]
    fn an_up_to_date_secret_is_ready_and_needs_nothing() {
        let c = certificate(json!({"dnsNames": ["web.example.com"]}));
        let issued = issue(&c);
        let s = secret(&issued, "ca");
        let (t, ready) = judge(&c, Some(&s), None, "2026-01-02T00:00:00Z");
        assert_eq!((t, ready.as_str()), (None, "Ready"));
        let r = request(&c, &issued.key_pem);
        assert_eq!(judge(&c, Some(&s), Some(&r), "2026-01-02T00:00:00Z"), (None, "Ready".into()));
    }

    #[test]
    fn a_missing_or_incomplete_secret_is_reported_first() {
        let c = certificate(json!({"dnsNames": ["web.example.com"]}));
        let (t, ready) = judge(&c, None, None, ISSUED_AT);
        assert_eq!(
            (reason(&t), ready.as_str()),
            (Some(("DoesNotExist", "Issuing certificate as Secret does not exist")), "DoesNotExist")
        );
        let no_key = json!({"data": {"tls.crt": "eA=="}});
        assert_eq!(
            reason(&judge(&c, Some(&no_key), None, ISSUED_AT).0),
            Some(("MissingData", "Issuing certificate as Secret does not contain a private key"))
        );
        let (a, b) = (issue(&c), issue(&c));
        let mut crossed = secret(&a, "ca");
        crossed["data"]["tls.key"] = json!(STANDARD.encode(&b.key_pem));
        assert_eq!(
            reason(&judge(&c, Some(&crossed), None, ISSUED_AT).0),
            Some((
                "InvalidKeyPair",
                "Issuing certificate as Secret contains a private key that does not match the certificate"
            ))
        );
    }

    #[test]
    fn another_issuer_or_certificate_in_the_annotations_means_reissue() {
        let c = certificate(json!({"dnsNames": ["web.example.com"]}));
        let issued = issue(&c);
        let (t, _) = judge(&c, Some(&secret(&issued, "old-ca")), None, ISSUED_AT);
        assert_eq!(
            reason(&t),
            Some((
                "IncorrectIssuer",
                "Issuing certificate as Secret was previously issued by \"Issuer.cert-manager.io/old-ca\""
            ))
        );
        let mut bare = secret(&issued, "ca");
        bare["metadata"] = json!({});
        let cluster =
            certificate(json!({"dnsNames": ["web.example.com"], "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}));
        assert_eq!(
            judge(&cluster, Some(&bare), None, ISSUED_AT).0.unwrap().reason,
            "IncorrectIssuer",
            "Go's precedence"
        );
        let mut other = secret(&issued, "ca");
        other["metadata"]["annotations"]["cert-manager.io/certificate-name"] = json!("api");
        assert_eq!(judge(&c, Some(&other), None, ISSUED_AT).0.unwrap().reason, "IncorrectCertificate");
    }

    #[test]
    fn changed_names_are_found_through_the_request_or_else_the_certificate() {
        let c = certificate(json!({"commonName": "web", "dnsNames": ["web.example.com"]}));
        let issued = issue(&c);
        let s = secret(&issued, "ca");
        let r = request(&c, &issued.key_pem);
        let renamed = certificate(json!({"commonName": "web", "dnsNames": ["www.example.com"], "duration": "48h"}));
        assert_eq!(
            reason(&judge(&renamed, Some(&s), Some(&r), ISSUED_AT).0),
            Some((
                "RequestChanged",
                "Fields on existing CertificateRequest resource not up to date: [spec.dnsNames spec.duration]"
            ))
        );
        let (t, ready) = judge(&renamed, Some(&s), None, ISSUED_AT);
        assert_eq!(
            reason(&t),
            Some((
                "SecretMismatch",
                "Issuing certificate as Existing issued Secret is not up to date for spec: [spec.dnsNames]"
            ))
        );
        assert_eq!(ready, "SecretMismatch");
        let moved = certificate(json!({"dnsNames": ["web.example.com", "web"]}));
        assert_eq!(judge(&moved, Some(&s), None, ISSUED_AT).0, None, "a name may move between CN and SANs");
        let foreign = request(&c, &issue(&c).key_pem);
        assert_eq!(
            reason(&judge(&c, Some(&s), Some(&foreign), ISSUED_AT).0),
            Some((
                "SecretMismatch",
                "Secret contains a private key that does not match the current CertificateRequest"
            ))
        );
    }

    #[test]
    fn a_key_unlike_the_spec_asks_for_a_new_one_unless_rotation_is_never() {
        let c = certificate(json!({"dnsNames": ["web.example.com"]}));
        let s = secret(&issue(&c), "ca");
        let bigger =
            certificate(json!({"dnsNames": ["web.example.com"], "privateKey": {"algorithm": "ECDSA", "size": 384}}));
        assert_eq!(
            reason(&judge(&bigger, Some(&s), None, ISSUED_AT).0),
            Some(("SecretMismatch", "Existing private key is not up to date for spec: [spec.privateKey.size]"))
        );
        let rsa = certificate(
            json!({"dnsNames": ["web.example.com"], "privateKey": {"algorithm": "RSA", "rotationPolicy": "Never"}}),
        );
        assert_eq!(judge(&rsa, Some(&s), None, ISSUED_AT).0, None);
        let ed = certificate(json!({"dnsNames": ["web.example.com"], "privateKey": {"algorithm": "Ed25519"}}));
        assert_eq!(
            judge(&ed, Some(&s), None, ISSUED_AT).0.unwrap().message,
            "Existing private key is not up to date for spec: [spec.privateKey.algorithm]"
        );
    }

    #[test]
    fn a_90_day_certificate_renews_at_day_60_and_expires_after_day_90() {
        let c = certificate(json!({"dnsNames": ["web.example.com"]}));
        let s = secret(&issue(&c), "ca");
        assert_eq!(judge(&c, Some(&s), None, "2026-03-01T23:59:59Z").0, None);
        let (t, ready) = judge(&c, Some(&s), None, "2026-03-02T00:00:00Z");
        assert_eq!(
            reason(&t),
            Some(("Renewing", "Renewing certificate as renewal was scheduled at 2026-03-02 00:00:00 +0000 UTC"))
        );
        assert_eq!(ready, "Ready", "renewing is not unready");
        let spec = parse(&c);
        let late = Input {
            certificate: &c,
            spec: &spec,
            secret: Some(&s),
            current_request: None,
            now: at("2026-04-01T00:00:01Z"),
        };
        let expired = readiness(&late);
        assert_eq!((expired.status, expired.reason.as_str()), ("False", "Expired"));
        assert_eq!(expired.message, "Certificate expired on Wed, 01 Apr 2026 00:00:00 UTC");
        let v = validity(&late).unwrap();
        assert_eq!((v.not_after - v.not_before, v.renewal), (TimeDelta::days(90), Some(at("2026-03-02T00:00:00Z"))));
    }

    #[test]
    fn renewal_policy_disabled_never_renews() {
        let c = certificate(json!({"dnsNames": ["web.example.com"], "renewal": {"policy": "Disabled"}}));
        let s = secret(&issue(&c), "ca");
        assert_eq!(judge(&c, Some(&s), None, "2026-03-31T00:00:00Z").0, None);
        let spec = parse(&c);
        let input = Input { certificate: &c, spec: &spec, secret: Some(&s), current_request: None, now: at(ISSUED_AT) };
        assert_eq!(validity(&input).unwrap().renewal, None);
    }
}
