//! How what was issued differs from the Certificate's spec now: the comparisons behind
//! cert-manager's `SecretPrivateKeyMismatchesSpec`, `pki.RequestMatchesSpec` and
//! `pki.FuzzyX509AltNamesMatchSpec`. Each answers with the spec fields that differ, in
//! cert-manager's order; [`super::policies`] turns them into reasons and messages.
//!
//! `RequestMatchesSpec` is followed for the fields the stand-in's requests carry: the names of
//! the CSR, and `duration`, `isCA` and `usages` of the request's spec. Subject attributes other
//! than the common name are not compared.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Value, json};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension, SubjectAlternativeName};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use super::pki::{self, CertSpec, KeyAlgorithm, PrivateKeySpec};

/// The fields of `spec.privateKey` a public key does not match.
pub fn private_key(want: &PrivateKeySpec, spki: &SubjectPublicKeyInfo) -> Vec<&'static str> {
    match key_kind(spki) {
        Some((alg, _)) if alg != want.algorithm => vec!["spec.privateKey.algorithm"],
        Some((KeyAlgorithm::Ed25519, _)) => vec![],
        Some((_, bits)) if bits != want.size => vec!["spec.privateKey.size"],
        Some(_) => vec![],
        None => vec!["spec.privateKey.algorithm"],
    }
}

/// The algorithm and size of a public key.
fn key_kind(spki: &SubjectPublicKeyInfo) -> Option<(KeyAlgorithm, u32)> {
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.3.101.112" => Some((KeyAlgorithm::Ed25519, 256)),
        _ => match spki.parsed().ok()? {
            PublicKey::RSA(rsa) => Some((KeyAlgorithm::Rsa, u32::try_from(rsa.key_size()).ok()?)),
            // Bits of one coordinate of the point: P-521's take 66 bytes.
            PublicKey::EC(point) => {
                let bits = u32::try_from(point.key_size()).ok()?;
                Some((KeyAlgorithm::Ecdsa, if bits == 528 { 521 } else { bits }))
            }
            _ => None,
        },
    }
}

/// The DER of a CertificateRequest's CSR, if it decodes.
pub fn request_csr(request: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD.decode(request["spec"]["request"].as_str()?).ok()?;
    Pem::iter_from_buffer(&pem).filter_map(Result::ok).find(|b| b.label == "CERTIFICATE REQUEST").map(|b| b.contents)
}

/// How the current request differs from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDrift {
    /// It matches, or its CSR does not parse (not a reason to re-issue, in cert-manager either).
    None,
    /// Its CSR is for another key than the certificate's.
    OtherKey,
    /// These spec fields changed since it was made.
    Fields(Vec<&'static str>),
}

/// Compares the request (its `spec` and the DER of its CSR) with the Certificate's spec, and its
/// key with the certificate's.
pub fn request(spec: &CertSpec, request_spec: &Value, csr_der: &[u8], cert_key: &SubjectPublicKeyInfo) -> RequestDrift {
    let Ok((_, csr)) = X509CertificationRequest::from_der(csr_der) else { return RequestDrift::None };
    let info = &csr.certification_request_info;
    if info.subject_pki.raw != cert_key.raw {
        return RequestDrift::OtherKey;
    }
    let sans = csr.requested_extensions().and_then(|mut exts| {
        exts.find_map(|e| match e {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
    });
    let (have, want) = (Names::of(&info.subject, sans), Names::wanted(spec));
    let duration = request_spec["duration"].as_str().map_or(Ok(pki::DEFAULT_DURATION), pki::parse_go_duration);
    let fields: Vec<&'static str> = [
        ("spec.commonName", have.common_name == want.common_name),
        ("spec.dnsNames", set(&have.dns) == set(&want.dns)),
        ("spec.ipAddresses", set(&have.ips) == set(&want.ips)),
        ("spec.uris", set(&have.uris) == set(&want.uris)),
        ("spec.emailAddresses", set(&have.emails) == set(&want.emails)),
        ("spec.isCA", request_spec["isCA"].as_bool().unwrap_or(false) == spec.is_ca),
        ("spec.usages", usages(&request_spec["usages"]) == usages(&json!(spec.usages))),
        ("spec.duration", duration.ok() == Some(spec.duration)),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(field, _)| field)
    .collect();
    if fields.is_empty() { RequestDrift::None } else { RequestDrift::Fields(fields) }
}

/// `FuzzyX509AltNamesMatchSpec`: the spec fields the issued certificate's names do not match.
/// Names may move between the common name and the DNS names, as some CAs move them.
pub fn certificate(spec: &CertSpec, cert: &X509Certificate) -> Vec<&'static str> {
    let sans = cert.subject_alternative_name().ok().flatten().map(|ext| ext.value);
    let (have, want) = (Names::of(cert.subject(), sans), Names::wanted(spec));
    let mut fields = Vec::new();
    let mut expected = set(&want.dns);
    let mut all = set(&have.dns);
    if !want.common_name.is_empty() {
        expected.insert(want.common_name.clone());
    }
    if !have.common_name.is_empty() {
        all.insert(have.common_name.clone());
    }
    if all != expected {
        if (!want.common_name.is_empty() && !all.contains(&want.common_name))
            || (!have.common_name.is_empty() && !expected.contains(&have.common_name))
        {
            fields.push("spec.commonName");
        }
        if !want.dns.iter().all(|d| all.contains(d)) || !have.dns.iter().all(|d| expected.contains(d)) {
            fields.push("spec.dnsNames");
        }
    }
    for (field, same) in [
        ("spec.ipAddresses", set(&have.ips) == set(&want.ips)),
        ("spec.uris", set(&have.uris) == set(&want.uris)),
        ("spec.emailAddresses", set(&have.emails) == set(&want.emails)),
    ] {
        if !same {
            fields.push(field);
        }
    }
    fields
}

/// The names a certificate or request carries, or a spec asks for.
#[derive(Debug, Default, PartialEq)]
struct Names {
    common_name: String,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    uris: Vec<String>,
    emails: Vec<String>,
}

impl Names {
    fn of(subject: &X509Name, sans: Option<&SubjectAlternativeName>) -> Self {
        let cn = subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default();
        let mut n = Names { common_name: cn.to_string(), ..Names::default() };
        for name in sans.map(|s| s.general_names.as_slice()).unwrap_or_default() {
            match name {
                GeneralName::DNSName(d) => n.dns.push(d.to_string()),
                GeneralName::URI(u) => n.uris.push(u.to_string()),
                GeneralName::RFC822Name(e) => n.emails.push(e.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        n.ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        n.ips.push(IpAddr::from(v6).to_canonical());
                    }
                }
                _ => {}
            }
        }
        n
    }

    fn wanted(spec: &CertSpec) -> Self {
        Names {
            common_name: spec.common_name.clone(),
            dns: spec.dns_names.clone(),
            // Go compares IPs by value, where an IPv4-mapped IPv6 address is the IPv4 one.
            ips: spec.ip_addresses.iter().map(|ip| ip.to_canonical()).collect(),
            uris: spec.uris.clone(),
            emails: spec.email_addresses.clone(),
        }
    }
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

/// Usages as a set, [`pki::DEFAULT_USAGES`] when none are written.
fn usages(v: &Value) -> BTreeSet<String> {
    let written: BTreeSet<String> =
        v.as_array().into_iter().flatten().filter_map(|u| u.as_str().map(String::from)).collect();
    if written.is_empty() { pki::DEFAULT_USAGES.iter().map(|u| u.to_string()).collect() } else { written }
}

#[cfg(test)]
mod tests {
    use x509_parser::pem::parse_x509_pem;

    use super::*;

    fn spec(extra: Value) -> CertSpec {
        let mut base = json!({"secretName": "s", "issuerRef": {"name": "i"}, "privateKey": {"algorithm": "ECDSA"}});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        pki::cert_spec(&base).unwrap()
    }

    /// The fuzzy comparison of a certificate issued for `issued_for` with `now`.
    fn fuzzy(issued_for: Value, now: Value) -> Vec<&'static str> {
        let issued = pki::issue_self_signed(&spec(issued_for), chrono::Utc::now()).unwrap();
        let (_, block) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        certificate(&spec(now), &block.parse_x509().unwrap())
    }

    #[test]
    fn names_may_move_between_the_common_name_and_the_dns_names() {
        let issued = json!({"commonName": "web", "dnsNames": ["web.example.com"]});
        assert!(fuzzy(issued.clone(), json!({"dnsNames": ["web", "web.example.com"]})).is_empty());
        assert_eq!(
            fuzzy(issued.clone(), json!({"commonName": "api", "dnsNames": ["web.example.com"]})),
            ["spec.commonName"]
        );
        assert_eq!(
            fuzzy(
                issued,
                json!({"commonName": "web", "dnsNames": ["web.example.com"], "ipAddresses": ["::ffff:10.0.0.1"]})
            ),
            ["spec.ipAddresses"]
        );
        let v4 = json!({"dnsNames": ["a"], "ipAddresses": ["10.0.0.1"]});
        assert!(
            fuzzy(v4, json!({"dnsNames": ["a"], "ipAddresses": ["::ffff:10.0.0.1"]})).is_empty(),
            "compared by value"
        );
    }

    #[test]
    fn a_key_is_judged_by_algorithm_then_size() {
        let issued = pki::issue_self_signed(&spec(json!({"dnsNames": ["a"]})), chrono::Utc::now()).unwrap();
        let (_, block) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let key = |extra: Value| {
            private_key(&spec(json!({"dnsNames": ["a"], "privateKey": extra})).private_key, cert.public_key())
        };
        assert!(key(json!({"algorithm": "ECDSA", "size": 256})).is_empty());
        assert_eq!(key(json!({"algorithm": "ECDSA", "size": 521})), ["spec.privateKey.size"]);
        assert_eq!(key(json!({"algorithm": "Ed25519"})), ["spec.privateKey.algorithm"]);
    }

    #[test]
    fn a_request_is_compared_field_by_field_after_its_key() {
        let s = spec(json!({"commonName": "web", "dnsNames": ["web.example.com"]}));
        let issued = pki::issue_self_signed(&s, chrono::Utc::now()).unwrap();
        let csr_pem = super::super::requests::csr_pem(&s, &issued.key_pem).unwrap();
        let (_, csr) = parse_x509_pem(csr_pem.as_bytes()).unwrap();
        let (_, cert) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let cert = cert.parse_x509().unwrap();
        let written = json!({"duration": "2160h0m0s", "isCA": false});
        assert_eq!(request(&s, &written, &csr.contents, cert.public_key()), RequestDrift::None);
        let changed = spec(
            json!({"commonName": "web", "dnsNames": ["web.example.com"], "isCA": true, "usages": ["server auth"]}),
        );
        assert_eq!(
            request(&changed, &written, &csr.contents, cert.public_key()),
            RequestDrift::Fields(vec!["spec.isCA", "spec.usages"])
        );
        let other = pki::issue_self_signed(&s, chrono::Utc::now()).unwrap();
        let (_, other) = parse_x509_pem(other.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            request(&s, &written, &csr.contents, other.parse_x509().unwrap().public_key()),
            RequestDrift::OtherKey
        );
        assert_eq!(request(&s, &written, b"garbage", cert.public_key()), RequestDrift::None);
    }
}
