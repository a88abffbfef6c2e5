//! Certificates the way cert-manager's SelfSigned and CA issuers make them, and when it renews them.
//!
//! Owns: a `Certificate` spec checked into a [`CertSpec`] with the admission webhook's messages,
//! real X.509 issuance (key generation, subject, SANs, usages, basic constraints, the CA issuer's
//! chain and its cap at the CA's expiry), reading validity back, the Secret's `data` and
//! annotations, Go duration syntax, and `RenewalTime`. It takes `now` as an argument and never reads
//! a clock, touches the store or logs; private key material leaves only through [`Issued::key_pem`]
//! and no error message carries any of it.
//!
//! Sources read: cert-manager `internal/apis/certmanager/validation/certificate.go`,
//! `pkg/util/pki/{generate,csr,certificatetemplate,parse_certificate_chain,renewaltime,validity}.go`,
//! `pkg/controller/certificaterequests/{selfsigned,ca}`, `internal/controller/certificates/secrets.go`
//! and Go's `time.ParseDuration` / `Duration.String`. Two gaps come from rcgen and are reported as
//! [`PkiError::Unsupported`]: RSA keys other than 2048, 3072 or 4096 bits, and more than one value for
//! one subject attribute (two organizations, say).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeDelta, Utc};
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData, RsaKeySize, SanType, SerialNumber, SignatureAlgorithm,
};
use serde_json::Value;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// `spec.duration` when unset: 90 days.
pub const DEFAULT_DURATION: TimeDelta = TimeDelta::hours(2160);
/// The shortest `spec.duration` the webhook accepts.
pub const MINIMUM_DURATION: TimeDelta = TimeDelta::hours(1);
/// The shortest `spec.renewBefore` the webhook accepts.
pub const MINIMUM_RENEW_BEFORE: TimeDelta = TimeDelta::minutes(5);
/// Usages applied when `spec.usages` is empty (`DefaultKeyUsages`, whatever the key algorithm).
pub const DEFAULT_USAGES: [&str; 2] = ["digital signature", "key encipherment"];

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Why a spec cannot be issued, a certificate not read, or a duration not parsed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The spec fails cert-manager's admission checks; one entry per field error, worded as the
    /// webhook words it. Displayed like a Kubernetes aggregate: one message, or `[a, b]`.
    #[error("{}", aggregate(.0))]
    Invalid(Vec<String>),
    /// Text Go's `time.ParseDuration` rejects; the message is Go's.
    #[error("{0}")]
    Duration(String),
    /// cert-manager would issue this, the simulator cannot (an rcgen limit).
    #[error("unsupported by the simulator: {0}")]
    Unsupported(String),
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed: {0}")]
    Generation(String),
    /// PEM that holds no parseable X.509 certificate, or CA certificates that do not form one chain.
    #[error("invalid certificate data: {0}")]
    BadCertificate(String),
    /// A private key PEM that does not parse. Deliberately says nothing about its content.
    #[error("the private key PEM could not be parsed")]
    BadKey,
    /// The CA issuer's private key is not the key of its certificate.
    #[error("the CA private key does not match the CA certificate")]
    CaKeyMismatch,
    /// The CA certificate has expired, so every leaf it signed would already be expired.
    #[error("the CA certificate expired at {0}")]
    CaExpired(DateTime<Utc>),
}

fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `spec.privateKey.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    Ecdsa,
    Ed25519,
}

/// `spec.privateKey.encoding`: PKCS#1 (the default; SEC 1 for ECDSA, PKCS#8 for Ed25519) or PKCS#8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    Pkcs1,
    Pkcs8,
}

/// `spec.privateKey` with cert-manager's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateKeySpec {
    pub algorithm: KeyAlgorithm,
    /// Bits: RSA modulus (default 2048), ECDSA curve (default 256), 256 for Ed25519.
    pub size: u32,
    pub encoding: KeyEncoding,
}

/// `spec.subject` (the common name is [`CertSpec::common_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub organizations: Vec<String>,
    pub countries: Vec<String>,
    pub organizational_units: Vec<String>,
    pub localities: Vec<String>,
    pub provinces: Vec<String>,
    pub street_addresses: Vec<String>,
    pub postal_codes: Vec<String>,
    pub serial_number: String,
}

/// The issuance-relevant part of a validated `Certificate` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Empty when unset, as in Go.
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    pub subject: Subject,
    /// Requested lifetime, defaulted to [`DEFAULT_DURATION`].
    pub duration: TimeDelta,
    pub renew_before: Option<TimeDelta>,
    pub renew_before_percentage: Option<i32>,
    pub is_ca: bool,
    /// The names as written (validated); empty means [`DEFAULT_USAGES`].
    pub usages: Vec<String>,
    pub private_key: PrivateKeySpec,
}

impl CertSpec {
    /// When a certificate with this validity is due for renewal under this spec (see [`renewal_time`]).
    pub fn renewal_time(&self, not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
        let percentage = self.renew_before_percentage.and_then(|p| u32::try_from(p).ok());
        renewal_time(not_before, not_after, self.renew_before, percentage)
    }
}

/// A freshly issued key pair and certificate, as the issuer returns them.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// `tls.crt`: the leaf first, then any intermediates; a self-signed root is left out.
    pub cert_pem: String,
    /// `tls.key`, encoded as `spec.privateKey.encoding` asks.
    pub key_pem: String,
    /// `ca.crt`: the certificate itself for SelfSigned, the top of the CA's chain for CA issuers.
    pub ca_pem: Option<String>,
    /// Read back from the certificate (whole seconds).
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[private key elided]")
            .field("ca_pem", &self.ca_pem)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Checks a `Certificate`'s `spec` the way the API server's schema and cert-manager's webhook do
/// (`secretName` and `issuerRef` included), collecting every error, and applies the defaults.
/// Like the webhook, the duration rules run only when `duration` or `renewBefore` is set, and
/// `renewBeforePercentage` is checked against `duration × (100 − p) / 100` (the webhook's formula,
/// although renewal uses `duration × p / 100`).
pub fn cert_spec(spec: &Value) -> Result<CertSpec, PkiError> {
    let mut f = Fields::default();
    let secret_name = f.string(&spec["secretName"], "spec.secretName").unwrap_or_default();
    let issuer_name = f.string(&spec["issuerRef"]["name"], "spec.issuerRef.name").unwrap_or_default();
    let issuer_kind = f.string(&spec["issuerRef"]["kind"], "spec.issuerRef.kind").unwrap_or_default();
    let issuer_group = f.string(&spec["issuerRef"]["group"], "spec.issuerRef.group").unwrap_or_default();
    let common_name = f.string(&spec["commonName"], "spec.commonName").unwrap_or_default();
    let dns_names = f.strings(&spec["dnsNames"], "spec.dnsNames");
    let ip_strings = f.strings(&spec["ipAddresses"], "spec.ipAddresses");
    let uris = f.strings(&spec["uris"], "spec.uris");
    let email_addresses = f.strings(&spec["emailAddresses"], "spec.emailAddresses");
    let s = &spec["subject"];
    let subject = Subject {
        organizations: f.strings(&s["organizations"], "spec.subject.organizations"),
        countries: f.strings(&s["countries"], "spec.subject.countries"),
        organizational_units: f.strings(&s["organizationalUnits"], "spec.subject.organizationalUnits"),
        localities: f.strings(&s["localities"], "spec.subject.localities"),
        provinces: f.strings(&s["provinces"], "spec.subject.provinces"),
        street_addresses: f.strings(&s["streetAddresses"], "spec.subject.streetAddresses"),
        postal_codes: f.strings(&s["postalCodes"], "spec.subject.postalCodes"),
        serial_number: f.string(&s["serialNumber"], "spec.subject.serialNumber").unwrap_or_default(),
    };
    let duration = f.duration(&spec["duration"], "spec.duration");
    let renew_before = f.duration(&spec["renewBefore"], "spec.renewBefore");
    let percentage = f.int32(&spec["renewBeforePercentage"], "spec.renewBeforePercentage");
    let is_ca = f.boolean(&spec["isCA"], "spec.isCA").unwrap_or(false);
    let usages = f.strings(&spec["usages"], "spec.usages");
    let algorithm = f.string(&spec["privateKey"]["algorithm"], "spec.privateKey.algorithm").unwrap_or_default();
    let size = f.int32(&spec["privateKey"]["size"], "spec.privateKey.size").unwrap_or(0);
    let encoding = f.string(&spec["privateKey"]["encoding"], "spec.privateKey.encoding").unwrap_or_default();

    let mut errors = f.errors;
    if secret_name.is_empty() {
        errors.push("spec.secretName: Required value: must be specified".into());
    } else if let Some(why) = dns_subdomain_problem(&secret_name) {
        errors.push(format!("spec.secretName: Invalid value: {}: {why}", quoted(&secret_name)));
    }
    errors.extend(issuer_ref_errors(&issuer_name, &issuer_kind, &issuer_group));
    if common_name.is_empty()
        && dns_names.is_empty()
        && uris.is_empty()
        && email_addresses.is_empty()
        && ip_strings.is_empty()
    {
        errors.push(
            "spec: Invalid value: \"\": at least one of commonName (from the commonName field or from a \
             literalSubject), dnsNames, emailSANs, ipAddresses, otherNames, or uriSANs must be set"
                .into(),
        );
    }
    if common_name.len() > 64 {
        errors.push("spec.commonName: Too long: may not be more than 64 bytes".into());
    }
    let mut ip_addresses = Vec::new();
    for (i, ip) in ip_strings.iter().enumerate() {
        match ip.parse::<IpAddr>() {
            Ok(parsed) => ip_addresses.push(parsed),
            Err(_) => errors.push(format!("spec.ipAddresses[{i}]: Invalid value: {}: invalid IP address", quoted(ip))),
        }
    }
    for (i, email) in email_addresses.iter().enumerate() {
        if let Some(why) = email_problem(email) {
            errors.push(format!(
                "spec.emailAddresses[{i}]: Invalid value: {}: invalid email address: {why}",
                quoted(email)
            ));
        }
    }
    let private_key = private_key_spec(&algorithm, size, &encoding, &mut errors);
    if duration.is_some() || renew_before.is_some() {
        errors.extend(duration_errors(duration.unwrap_or(DEFAULT_DURATION), renew_before, percentage));
    }
    for (i, usage) in usages.iter().enumerate() {
        if usage_bit(usage).is_none() {
            errors.push(format!("spec.usages[{i}]: Invalid value: {}: unknown keyusage", quoted(usage)));
        }
    }
    if !errors.is_empty() {
        return Err(PkiError::Invalid(errors));
    }
    Ok(CertSpec {
        common_name,
        dns_names,
        ip_addresses,
        uris,
        email_addresses,
        subject,
        duration: duration.unwrap_or(DEFAULT_DURATION),
        renew_before,
        renew_before_percentage: percentage,
        is_ca,
        usages,
        private_key,
    })
}

fn issuer_ref_errors(name: &str, kind: &str, group: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push("spec.issuerRef.name: Required value: must be specified".into());
    }
    // Kinds are only known for the built-in group; external issuers are not checked.
    if (group.is_empty() || group == "cert-manager.io") && !matches!(kind, "" | "Issuer" | "ClusterIssuer") {
        let hint = if group.is_empty() { " (did you forget to set spec.issuerRef.group?)" } else { "" };
        errors.push(format!(
            "spec.issuerRef.kind: Invalid value: {}: must be one of Issuer or ClusterIssuer{hint}",
            quoted(kind)
        ));
    }
    errors
}

fn private_key_spec(algorithm: &str, size: i32, encoding: &str, errors: &mut Vec<String>) -> PrivateKeySpec {
    let (algorithm, default_size) = match algorithm {
        "" | "RSA" => {
            if size > 0 && !(2048..=8192).contains(&size) {
                errors.push(format!(
                    "spec.privateKey.size: Invalid value: {size}: must be between 2048 and 8192 for rsa keyAlgorithm"
                ));
            }
            (KeyAlgorithm::Rsa, 2048)
        }
        "ECDSA" => {
            if size > 0 && ![256, 384, 521].contains(&size) {
                errors.push(format!(
                    "spec.privateKey.size: Unsupported value: {size}: supported values: \"256\", \"384\", \"521\""
                ));
            }
            (KeyAlgorithm::Ecdsa, 256)
        }
        "Ed25519" => (KeyAlgorithm::Ed25519, 256),
        other => {
            errors.push(format!(
                "spec.privateKey.algorithm: Invalid value: {}: must be either empty or one of rsa, ecdsa or ed25519",
                quoted(other)
            ));
            (KeyAlgorithm::Rsa, 2048)
        }
    };
    let encoding = match encoding {
        "" | "PKCS1" => KeyEncoding::Pkcs1,
        "PKCS8" => KeyEncoding::Pkcs8,
        other => {
            errors.push(format!(
                "spec.privateKey.encoding: Unsupported value: {}: supported values: \"PKCS1\", \"PKCS8\"",
                quoted(other)
            ));
            KeyEncoding::Pkcs1
        }
    };
    let size = match algorithm {
        KeyAlgorithm::Ed25519 => 256,
        _ if size > 0 => size.unsigned_abs(),
        _ => default_size,
    };
    PrivateKeySpec { algorithm, size, encoding }
}

/// The webhook's `ValidateDuration`, messages and quirks included.
fn duration_errors(duration: TimeDelta, renew_before: Option<TimeDelta>, percentage: Option<i32>) -> Vec<String> {
    let g = format_go_duration;
    let mut errors = Vec::new();
    if duration < MINIMUM_DURATION {
        errors.push(format!(
            "spec.duration: Invalid value: {}: certificate duration must be greater than {}",
            g(duration),
            g(MINIMUM_DURATION)
        ));
    }
    if let (Some(rb), Some(p)) = (renew_before, percentage) {
        let why = "renewBefore and renewBeforePercentage are mutually exclusive and cannot both be set";
        errors.push(format!("spec.renewBefore: Invalid value: {}: {why}", g(rb)));
        errors.push(format!("spec.renewBeforePercentage: Invalid value: {p}: {why}"));
    }
    if let Some(rb) = renew_before {
        if rb < MINIMUM_RENEW_BEFORE {
            errors.push(format!(
                "spec.renewBefore: Invalid value: {}: certificate renewBefore must be greater than {}",
                g(rb),
                g(MINIMUM_RENEW_BEFORE)
            ));
        }
        if rb >= duration {
            errors.push(format!(
                "spec.renewBefore: Invalid value: {}: certificate duration {} must be greater than renewBefore {}",
                g(rb),
                g(duration),
                g(rb)
            ));
        }
    }
    if let Some(p) = percentage {
        let implied = from_nanos(nanos(duration) * i128::from(100 - i64::from(p)) / 100);
        if implied < MINIMUM_RENEW_BEFORE {
            errors.push(format!(
                "spec.renewBeforePercentage: Invalid value: {p}: certificate renewBeforePercentage must result in \
                 a renewBefore greater than {}",
                g(MINIMUM_RENEW_BEFORE)
            ));
        }
        if implied >= duration {
            errors.push(format!(
                "spec.renewBeforePercentage: Invalid value: {p}: certificate renewBeforePercentage must result in \
                 a renewBefore less than duration"
            ));
        }
    }
    errors
}

/// Reads typed fields from JSON, recording the API server's schema message for a wrong type.
#[derive(Default)]
struct Fields {
    errors: Vec<String>,
}

impl Fields {
    fn wrong_type(&mut self, path: &str, value: &Value, expected: &str) {
        let found = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        self.errors.push(format!(
            "{path}: Invalid value: \"{found}\": {path} in body must be of type {expected}: \"{found}\""
        ));
    }

    fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(path, other, "string");
                None
            }
        }
    }

    fn strings(&mut self, value: &Value, path: &str) -> Vec<String> {
        match value {
            Value::Null => Vec::new(),
            Value::Array(items) => {
                items.iter().enumerate().filter_map(|(i, item)| self.string(item, &format!("{path}[{i}]"))).collect()
            }
            other => {
                self.wrong_type(path, other, "array");
                Vec::new()
            }
        }
    }

    fn int32(&mut self, value: &Value, path: &str) -> Option<i32> {
        match value {
            Value::Null => None,
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                let fits = n.as_i64().and_then(|i| i32::try_from(i).ok());
                if fits.is_none() {
                    self.errors.push(format!("{path}: Invalid value: {n}: must fit in a 32-bit integer"));
                }
                fits
            }
            other => {
                self.wrong_type(path, other, "integer");
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value, path: &str) -> Option<bool> {
        match value {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, other, "boolean");
                None
            }
        }
    }

    fn duration(&mut self, value: &Value, path: &str) -> Option<TimeDelta> {
        let text = self.string(value, path)?;
        match parse_go_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.errors.push(format!("{path}: Invalid value: {}: {e}", quoted(&text)));
                None
            }
        }
    }
}

fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

/// `apimachinery`'s `IsDNS1123Subdomain`, as `NameIsDNSSubdomain` reports it.
fn dns_subdomain_problem(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    (!name.split('.').all(label_ok)).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
         start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            .into()
    })
}

/// The webhook accepts what Go's `mail.ParseAddress` parses to exactly the input. This covers the
/// dot-atom form and the two mistakes people make (a display name, no `@`); Go's rarer quoted forms
/// are refused.
fn email_problem(email: &str) -> Option<&'static str> {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_atom = |s: &str| !s.is_empty() && s.split('.').all(|part| !part.is_empty() && part.chars().all(atext));
    let addr_spec = |s: &str| s.split_once('@').is_some_and(|(local, domain)| dot_atom(local) && dot_atom(domain));
    if addr_spec(email) {
        return None;
    }
    let angle = email.trim().strip_suffix('>').and_then(|s| s.rsplit_once('<')).map(|(_, inner)| inner);
    if angle.is_some_and(addr_spec) || addr_spec(email.trim()) {
        return Some("make sure the supplied value only contains the email address itself");
    }
    if !email.contains('@') && email.chars().all(|c| atext(c) || c == '.') {
        return Some("mail: missing '@' or angle-addr");
    }
    Some("mail: no angle-addr")
}

/// One `spec.usages` name: an X.509 key usage bit or an extended key usage OID.
#[derive(Clone, Copy)]
enum UsageBit {
    Key(KeyUsagePurpose),
    Ext(&'static [u64]),
}

/// cert-manager's usage names (`pkg/api/util/usages.go`).
const USAGES: [(&str, UsageBit); 23] = [
    ("signing", UsageBit::Key(KeyUsagePurpose::DigitalSignature)),
    ("digital signature", UsageBit::Key(KeyUsagePurpose::DigitalSignature)),
    ("content commitment", UsageBit::Key(KeyUsagePurpose::ContentCommitment)),
    ("key encipherment", UsageBit::Key(KeyUsagePurpose::KeyEncipherment)),
    ("key agreement", UsageBit::Key(KeyUsagePurpose::KeyAgreement)),
    ("data encipherment", UsageBit::Key(KeyUsagePurpose::DataEncipherment)),
    ("cert sign", UsageBit::Key(KeyUsagePurpose::KeyCertSign)),
    ("crl sign", UsageBit::Key(KeyUsagePurpose::CrlSign)),
    ("encipher only", UsageBit::Key(KeyUsagePurpose::EncipherOnly)),
    ("decipher only", UsageBit::Key(KeyUsagePurpose::DecipherOnly)),
    ("any", UsageBit::Ext(&[2, 5, 29, 37, 0])),
    ("server auth", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 1])),
    ("client auth", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 2])),
    ("code signing", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 3])),
    ("email protection", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 4])),
    ("s/mime", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 4])),
    ("ipsec end system", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 5])),
    ("ipsec tunnel", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 6])),
    ("ipsec user", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 7])),
    ("timestamping", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 8])),
    ("ocsp signing", UsageBit::Ext(&[1, 3, 6, 1, 5, 5, 7, 3, 9])),
    ("microsoft sgc", UsageBit::Ext(&[1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
    ("netscape sgc", UsageBit::Ext(&[2, 16, 840, 1, 113730, 4, 1])),
];

fn usage_bit(name: &str) -> Option<UsageBit> {
    USAGES.iter().find(|(n, _)| *n == name).map(|(_, bit)| *bit)
}

/// `KeyUsagesForCertificateOrCertificateRequest`: defaults when empty, `cert sign` added for CAs,
/// extended usages in the order written.
fn key_usages(spec: &CertSpec) -> (Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>) {
    let mut ku = Vec::new();
    let mut eku = Vec::new();
    if spec.is_ca {
        ku.push(KeyUsagePurpose::KeyCertSign);
    }
    let names: Vec<&str> =
        if spec.usages.is_empty() { DEFAULT_USAGES.to_vec() } else { spec.usages.iter().map(String::as_str).collect() };
    for bit in names.into_iter().filter_map(usage_bit) {
        match bit {
            UsageBit::Key(k) if !ku.contains(&k) => ku.push(k),
            UsageBit::Key(_) => {}
            UsageBit::Ext(oid) => eku.push(ExtendedKeyUsagePurpose::Other(oid.to_vec())),
        }
    }
    (ku, eku)
}

/// Issues a certificate signed by its own new key, as the SelfSigned issuer does: `ca.crt` is the
/// certificate itself, notBefore is `now`, notAfter `now + duration` (both truncated to seconds).
pub fn issue_self_signed(spec: &CertSpec, now: DateTime<Utc>) -> Result<Issued, PkiError> {
    let key = generate_key(&spec.private_key)?;
    let params = leaf_params(spec, now, add(now, spec.duration)?)?;
    let cert_pem = params.self_signed(&key).map_err(generation)?.pem();
    let (not_before, not_after) = validity(&cert_pem)?;
    let key_pem = encode_key(&key, &spec.private_key);
    Ok(Issued { ca_pem: Some(cert_pem.clone()), cert_pem, key_pem, not_before, not_after })
}

/// Issues a certificate signed by a CA, as the CA issuer does. `ca_cert_pem` is the CA Secret's
/// `tls.crt` (the signing certificate first, then its chain; `ca.crt` may be appended). The leaf's
/// notAfter is capped at the earliest notAfter among the CA certificates (`CertificateNotAfterValidity`).
/// `tls.crt` gets the leaf and every non-self-signed ancestor; `ca.crt` the top of the chain
/// (`ParseSingleCertificateChain`).
pub fn issue_from_ca(
    spec: &CertSpec,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    now: DateTime<Utc>,
) -> Result<Issued, PkiError> {
    let ca_ders = certificate_ders(ca_cert_pem)?;
    let ca_key = load_signing_key(ca_key_pem)?;
    let signer = ca_ders.first().ok_or_else(|| PkiError::BadCertificate("no certificate in the CA PEM".into()))?;
    if !der_key_matches(signer, &ca_key) {
        return Err(PkiError::CaKeyMismatch);
    }
    let mut ca_expiry = DateTime::<Utc>::MAX_UTC;
    for der in &ca_ders {
        ca_expiry = ca_expiry.min(parse_der(der)?.1);
    }
    if ca_expiry <= now {
        return Err(PkiError::CaExpired(ca_expiry));
    }
    let key = generate_key(&spec.private_key)?;
    let mut params = leaf_params(spec, now, add(now, spec.duration)?.min(ca_expiry))?;
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_ca_cert_der(&signer.as_slice().into(), &ca_key)
        .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
    let leaf = params.signed_by(&key, &issuer).map_err(generation)?;
    let (cert_pem, ca_pem) = chain_and_ca(leaf.der(), &ca_ders)?;
    let (not_before, not_after) = validity(&cert_pem)?;
    let key_pem = encode_key(&key, &spec.private_key);
    Ok(Issued { cert_pem, key_pem, ca_pem: Some(ca_pem), not_before, not_after })
}

fn generation(e: rcgen::Error) -> PkiError {
    PkiError::Generation(e.to_string())
}

fn add(t: DateTime<Utc>, d: TimeDelta) -> Result<DateTime<Utc>, PkiError> {
    t.checked_add_signed(d)
        .ok_or_else(|| PkiError::Unsupported(format!("{t} + {} is out of range", format_go_duration(d))))
}

/// The certificate template: subject, SANs, usages, basic constraints (always present, as Go writes
/// them), a random serial and the validity, truncated to whole seconds as X.509 encodes it.
fn leaf_params(
    spec: &CertSpec,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(spec)?;
    params.subject_alt_names = subject_alt_names(spec)?;
    params.is_ca = if spec.is_ca { IsCa::Ca(BasicConstraints::Unconstrained) } else { IsCa::ExplicitNoCa };
    (params.key_usages, params.extended_key_usages) = key_usages(spec);
    params.serial_number = Some(random_serial());
    // rcgen's own epoch helper, so this crate need not depend on `time` to build its dates.
    let since_epoch = |t: DateTime<Utc>| {
        u64::try_from(t.timestamp())
            .map(std::time::Duration::from_secs)
            .map_err(|_| PkiError::Unsupported(format!("validity time {t} is before 1970")))
    };
    if not_after.timestamp() >= 253_402_300_800 {
        return Err(PkiError::Unsupported(format!("notAfter {not_after} is past the year 9999")));
    }
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(not_before)?;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(not_after)?;
    Ok(params)
}

/// Go's `x509.CreateCertificate` without a serial: 20 random bytes, top bit cleared so the encoding
/// stays within RFC 5280's 20 octets.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 20] = rand::random();
    bytes[0] &= 0x7f;
    if bytes.iter().all(|b| *b == 0) {
        bytes[19] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

/// The subject in `pkix.Name.ToRDNSequence` order (C, ST, L, street, postal code, O, OU, CN,
/// serialNumber), PrintableString where Go would choose it.
fn distinguished_name(spec: &CertSpec) -> Result<DistinguishedName, PkiError> {
    let s = &spec.subject;
    let serial = [s.serial_number.clone()];
    let cn = [spec.common_name.clone()];
    let attributes: [(&str, DnType, &[String]); 9] = [
        ("countries", DnType::CountryName, &s.countries),
        ("provinces", DnType::StateOrProvinceName, &s.provinces),
        ("localities", DnType::LocalityName, &s.localities),
        ("streetAddresses", DnType::CustomDnType(vec![2, 5, 4, 9]), &s.street_addresses),
        ("postalCodes", DnType::CustomDnType(vec![2, 5, 4, 17]), &s.postal_codes),
        ("organizations", DnType::OrganizationName, &s.organizations),
        ("organizationalUnits", DnType::OrganizationalUnitName, &s.organizational_units),
        ("commonName", DnType::CommonName, &cn),
        ("serialNumber", DnType::CustomDnType(vec![2, 5, 4, 5]), &serial),
    ];
    let mut dn = DistinguishedName::new();
    for (field, ty, values) in attributes {
        let values: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
        match values.as_slice() {
            [] => {}
            [value] => match PrintableString::try_from(value.as_str()) {
                Ok(p) => dn.push(ty, DnValue::PrintableString(p)),
                Err(_) => dn.push(ty, DnValue::Utf8String((*value).clone())),
            },
            many => {
                return Err(PkiError::Unsupported(format!(
                    "subject.{field} has {} values; rcgen encodes one value per attribute",
                    many.len()
                )));
            }
        }
    }
    Ok(dn)
}

/// SANs in Go's `marshalSANs` order: DNS names, emails, IPs, URIs.
fn subject_alt_names(spec: &CertSpec) -> Result<Vec<SanType>, PkiError> {
    let ia5 = |s: &String| {
        Ia5String::try_from(s.as_str()).map_err(|_| PkiError::Unsupported(format!("SAN {s:?} is not ASCII")))
    };
    let mut sans = Vec::new();
    for name in &spec.dns_names {
        sans.push(SanType::DnsName(ia5(name)?));
    }
    for email in &spec.email_addresses {
        sans.push(SanType::Rfc822Name(ia5(email)?));
    }
    sans.extend(spec.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
    for uri in &spec.uris {
        sans.push(SanType::URI(ia5(uri)?));
    }
    Ok(sans)
}

/// A new key, signing with the hash Go pairs with it (RSA ≥ 4096 bits: SHA-512, ≥ 3072: SHA-384;
/// ECDSA by curve).
fn generate_key(pk: &PrivateKeySpec) -> Result<KeyPair, PkiError> {
    let generated = match (pk.algorithm, pk.size) {
        (KeyAlgorithm::Rsa, 2048) => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        (KeyAlgorithm::Rsa, 3072) => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA384, RsaKeySize::_3072),
        (KeyAlgorithm::Rsa, 4096) => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA512, RsaKeySize::_4096),
        (KeyAlgorithm::Rsa, bits) => {
            return Err(PkiError::Unsupported(format!(
                "RSA key size {bits}: only 2048, 3072 and 4096 can be generated"
            )));
        }
        (KeyAlgorithm::Ecdsa, 384) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        (KeyAlgorithm::Ecdsa, 521) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
        (KeyAlgorithm::Ecdsa, _) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        (KeyAlgorithm::Ed25519, _) => KeyPair::generate_for(&rcgen::PKCS_ED25519),
    };
    generated.map_err(generation)
}

/// Loads a CA key in any of PKCS#1, SEC 1 or PKCS#8, choosing the RSA hash by modulus size as Go does.
fn load_signing_key(pem: &str) -> Result<KeyPair, PkiError> {
    let key = KeyPair::from_pem(pem).map_err(|_| PkiError::BadKey)?;
    if key.algorithm() != &rcgen::PKCS_RSA_SHA256 {
        return Ok(key);
    }
    let spki = key.subject_public_key_info();
    let bits = SubjectPublicKeyInfo::from_der(&spki)
        .ok()
        .and_then(|(_, info)| match info.parsed() {
            Ok(PublicKey::RSA(rsa)) => Some(rsa.key_size()),
            _ => None,
        })
        .unwrap_or(0);
    let alg: &'static SignatureAlgorithm = match bits {
        4096.. => &rcgen::PKCS_RSA_SHA512,
        3072.. => &rcgen::PKCS_RSA_SHA384,
        _ => return Ok(key),
    };
    KeyPair::from_pem_and_sign_algo(pem, alg).map_err(|_| PkiError::BadKey)
}

/// `EncodePrivateKey`: PKCS#1 RSA and SEC 1 EC keys by default, PKCS#8 when asked and for Ed25519.
fn encode_key(key: &KeyPair, pk: &PrivateKeySpec) -> String {
    let traditional = match (pk.encoding, pk.algorithm) {
        (KeyEncoding::Pkcs1, KeyAlgorithm::Rsa) => {
            pkcs8_inner_key(key.serialized_der()).map(|k| ("RSA PRIVATE KEY", k))
        }
        (KeyEncoding::Pkcs1, KeyAlgorithm::Ecdsa) => {
            sec1_from_pkcs8(key.serialized_der()).map(|k| ("EC PRIVATE KEY", k))
        }
        _ => None,
    };
    match traditional {
        Some((label, der)) => pem_encode(label, &der),
        None => pem_encode("PRIVATE KEY", key.serialized_der()),
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (for RSA, the PKCS#1 key).
fn pkcs8_inner_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let info = Der::next(pkcs8)?.contents;
    let algorithm = Der::next(Der::next(info)?.rest)?; // after the version
    Some(Der::next(algorithm.rest)?.contents.to_vec())
}

/// A SEC 1 `ECPrivateKey` that names its curve, as Go's `MarshalECPrivateKey` writes it; inside
/// PKCS#8 the curve lives in the algorithm identifier instead.
fn sec1_from_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let info = Der::next(pkcs8)?.contents;
    let algorithm = Der::next(Der::next(info)?.rest)?;
    let curve = Der::next(Der::next(algorithm.contents)?.rest)?.whole;
    let ec_key = Der::next(Der::next(algorithm.rest)?.contents)?.contents;
    let version = Der::next(ec_key)?;
    let secret = Der::next(version.rest)?;
    let mut body = [version.whole, secret.whole].concat();
    if secret.rest.first() != Some(&0xa0) {
        body.extend(der_tlv(0xa0, curve));
    }
    body.extend_from_slice(secret.rest);
    Some(der_tlv(0x30, &body))
}

/// One DER element (header and contents) and the bytes after it.
struct Der<'a> {
    whole: &'a [u8],
    contents: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn next(input: &'a [u8]) -> Option<Self> {
        let (&first, rest) = input.get(1..)?.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let header = input.len() - rest.len();
        Some(Der { whole: &input[..header + len], contents: &rest[..len], rest: &rest[len..] })
    }
}

fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(contents.len()) {
        Ok(len) if len < 0x80 => out.push(len),
        _ => {
            let bytes = contents.len().to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap_or(0));
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    out.extend_from_slice(contents);
    out
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    for (i, c) in STANDARD.encode(der).chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str(&format!("\n-----END {label}-----\n"));
    out
}

/// The DER of every `CERTIFICATE` block, in order.
fn certificate_ders(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut ders = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        if block.label == "CERTIFICATE" {
            ders.push(block.contents);
        }
    }
    if ders.is_empty() {
        return Err(PkiError::BadCertificate("no CERTIFICATE block in the PEM".into()));
    }
    Ok(ders)
}

/// (notBefore, notAfter) of one DER certificate.
fn parse_der(der: &[u8]) -> Result<(DateTime<Utc>, DateTime<Utc>), PkiError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let at = |t: i64| {
        DateTime::from_timestamp(t, 0).ok_or_else(|| PkiError::BadCertificate(format!("time {t} out of range")))
    };
    Ok((at(cert.validity().not_before.timestamp())?, at(cert.validity().not_after.timestamp())?))
}

/// notBefore and notAfter of the first certificate in a PEM bundle.
pub fn validity(cert_pem: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), PkiError> {
    let ders = certificate_ders(cert_pem)?;
    parse_der(&ders[0])
}

/// Whether the private key is the key of the first certificate (cert-manager's `InvalidKeyPair` check).
pub fn key_matches(cert_pem: &str, key_pem: &str) -> bool {
    let (Ok(ders), Ok(key)) = (certificate_ders(cert_pem), KeyPair::from_pem(key_pem)) else {
        return false;
    };
    der_key_matches(&ders[0], &key)
}

fn der_key_matches(cert_der: &[u8], key: &KeyPair) -> bool {
    let spki = key.subject_public_key_info();
    match (parse_cert(cert_der), SubjectPublicKeyInfo::from_der(&spki)) {
        (Some(cert), Ok((_, ours))) => {
            let theirs = cert.public_key();
            theirs.algorithm.algorithm == ours.algorithm.algorithm
                && theirs.subject_public_key.data == ours.subject_public_key.data
        }
        _ => false,
    }
}

/// `ParseSingleCertificateChain` over the leaf and the CA certificates: walk up from the leaf; every
/// CA certificate must be on the path. Returns (chain PEM, CA PEM).
fn chain_and_ca(leaf: &[u8], ca_ders: &[Vec<u8>]) -> Result<(String, String), PkiError> {
    let broken = || PkiError::BadCertificate("certificate chain is malformed or broken".into());
    let mut pool: Vec<&[u8]> = Vec::new();
    for der in ca_ders {
        if der.as_slice() != leaf && !pool.contains(&der.as_slice()) {
            pool.push(der);
        }
    }
    let mut path: Vec<&[u8]> = vec![leaf];
    let top_is_root = loop {
        let child = parse_cert(path[path.len() - 1]).ok_or_else(broken)?;
        if issued_by(&child, &child) {
            break true;
        }
        let parent = pool.iter().position(|der| parse_cert(der).is_some_and(|parent| issued_by(&child, &parent)));
        match parent {
            Some(i) => path.push(pool.remove(i)),
            None => break false,
        }
    };
    if !pool.is_empty() {
        return Err(broken());
    }
    let top = path[path.len() - 1];
    let in_chain = if top_is_root && path.len() > 1 { &path[..path.len() - 1] } else { &path[..] };
    let chain = in_chain.iter().map(|der| pem_encode("CERTIFICATE", der)).collect();
    Ok((chain, pem_encode("CERTIFICATE", top)))
}

fn parse_cert(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, cert)| cert)
}

fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw() && child.verify_signature(Some(parent.public_key())).is_ok()
}

/// cert-manager's `RenewalTime` without a `renewal` policy: lifetime = notAfter − notBefore of the
/// issued certificate; renew `renew_before` before expiry if it is positive and shorter than the
/// lifetime, else `lifetime × p / 100` for 0 < p < 100, else `lifetime / 3`; the result is truncated
/// to whole seconds. The certificate is due when `now >= renewal_time`.
pub fn renewal_time(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    renew_before: Option<TimeDelta>,
    renew_before_percentage: Option<u32>,
) -> DateTime<Utc> {
    let lifetime = nanos(not_after - not_before);
    let before = match (renew_before.map(nanos), renew_before_percentage) {
        (Some(rb), _) if rb > 0 && rb < lifetime => rb,
        (_, Some(p)) if p > 0 && p < 100 => lifetime * i128::from(p) / 100,
        _ => lifetime / 3,
    };
    let at = not_after.checked_sub_signed(from_nanos(before)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

fn nanos(d: TimeDelta) -> i128 {
    i128::from(d.num_seconds()) * NANOS_PER_SEC + i128::from(d.subsec_nanos())
}

fn from_nanos(n: i128) -> TimeDelta {
    let secs = i64::try_from(n.div_euclid(NANOS_PER_SEC)).ok();
    let sub = u32::try_from(n.rem_euclid(NANOS_PER_SEC)).unwrap_or(0);
    secs.and_then(|s| TimeDelta::new(s, sub)).unwrap_or(if n < 0 { TimeDelta::MIN } else { TimeDelta::MAX })
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units ns, us (µs, μs), ms, s,
/// m, h, or a bare `0`; at most 2⁶³−1 ns. Errors carry Go's messages.
pub fn parse_go_duration(s: &str) -> Result<TimeDelta, PkiError> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || PkiError::Duration(format!("time: invalid duration {}", go_quote(s.as_bytes())));
    let mut rest = s.as_bytes();
    let mut negative = false;
    if let Some((&sign, tail)) = rest.split_first()
        && (sign == b'-' || sign == b'+')
    {
        negative = sign == b'-';
        rest = tail;
    }
    if rest == b"0" {
        return Ok(TimeDelta::zero());
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !(rest[0] == b'.' || rest[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &rest[..int_digits] {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        rest = &rest[int_digits..];
        let (mut fraction, mut scale, mut frac_digits) = (0u64, 1f64, 0);
        if rest.first() == Some(&b'.') {
            rest = &rest[1..];
            frac_digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &rest[..frac_digits] {
                // Digits past u64 precision are ignored, as Go does.
                if overflow || fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                fraction = fraction * 10 + u64::from(c - b'0');
                scale *= 10.0;
            }
            rest = &rest[frac_digits..];
        }
        if int_digits == 0 && frac_digits == 0 {
            return Err(invalid());
        }
        let unit_len = rest.iter().take_while(|c| !(**c == b'.' || c.is_ascii_digit())).count();
        if unit_len == 0 {
            return Err(PkiError::Duration(format!("time: missing unit in duration {}", go_quote(s.as_bytes()))));
        }
        let unit: u64 = match &rest[..unit_len] {
            b"ns" => 1,
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            other => {
                return Err(PkiError::Duration(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(other),
                    go_quote(s.as_bytes())
                )));
            }
        };
        rest = &rest[unit_len..];
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Go computes the fractional part in float64 too, so 1.1h rounds identically.
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total.checked_add(value).filter(|t| *t <= LIMIT).ok_or_else(invalid)?;
    }
    match (negative, i64::try_from(total)) {
        (false, Ok(n)) => Ok(TimeDelta::nanoseconds(n)),
        (true, Ok(n)) => Ok(TimeDelta::nanoseconds(-n)),
        (true, Err(_)) => Ok(TimeDelta::nanoseconds(i64::MIN)),
        (false, Err(_)) => Err(invalid()),
    }
}

/// Go's `time` package quoting: bytes outside printable ASCII as `\xNN`.
fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..0x80 => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Go's `Duration.String`: `2160h0m0s`, `1h30m0s`, `5m0s`, `1.5s`, `300ms`, `1µs`, `0s`.
pub fn format_go_duration(d: TimeDelta) -> String {
    let n = nanos(d).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    let sign = if n < 0 { "-" } else { "" };
    let u = n.unsigned_abs();
    let fraction = |v: u128, prec: u32| {
        let digits = format!("{:0width$}", v % 10u128.pow(prec), width = prec as usize);
        let digits = digits.trim_end_matches('0');
        (v / 10u128.pow(prec), if digits.is_empty() { String::new() } else { format!(".{digits}") })
    };
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (whole, frac) = fraction(u, prec);
        return format!("{sign}{whole}{frac}{unit}");
    }
    let (secs, frac) = fraction(u, 9);
    let (minutes, hours) = (secs / 60, secs / 3600);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{secs}{frac}s"),
        (0, _) => format!("{sign}{minutes}m{}{frac}s", secs % 60),
        _ => format!("{sign}{hours}h{}m{}{frac}s", minutes % 60, secs % 60),
    }
}

/// The Secret's `data` as the API stores it: base64 `tls.crt`, `tls.key`, and `ca.crt` only when the
/// issuer returned a CA (cert-manager deletes the key otherwise).
pub fn secret_data(issued: &Issued) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([
        ("tls.crt".to_string(), STANDARD.encode(&issued.cert_pem)),
        ("tls.key".to_string(), STANDARD.encode(&issued.key_pem)),
    ]);
    if let Some(ca) = issued.ca_pem.as_deref().filter(|ca| !ca.is_empty()) {
        data.insert("ca.crt".into(), STANDARD.encode(ca));
    }
    data
}

/// The `cert-manager.io/...` annotations cert-manager writes on the Secret: certificate and issuer
/// names, then `AnnotationsForCertificate` of the issued certificate. They are computed from the
/// `Certificate`'s spec, which is exactly what [`issue_self_signed`] and [`issue_from_ca`] encode:
/// `common-name`, `alt-names`, `ip-sans` and `uri-sans` always (possibly empty), the subject and
/// `email-sans` keys only when non-empty; lists are written as one CSV record.
pub fn secret_annotations(
    certificate: &Value,
    issuer_kind: &str,
    issuer_name: &str,
    issuer_group: &str,
) -> BTreeMap<String, String> {
    let spec = &certificate["spec"];
    let list = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        out.insert(format!("cert-manager.io/{key}"), value);
    };
    put("common-name", spec["commonName"].as_str().unwrap_or_default().to_string());
    if let Some(serial) = spec["subject"]["serialNumber"].as_str().filter(|s| !s.is_empty()) {
        put("subject-serialnumber", serial.to_string());
    }
    let ips: Vec<String> =
        list(&spec["ipAddresses"]).iter().filter_map(|ip| ip.parse().ok()).map(go_ip_string).collect();
    let csv_keys = [
        ("subject-organizations", list(&spec["subject"]["organizations"]), false),
        ("subject-organizationalunits", list(&spec["subject"]["organizationalUnits"]), false),
        ("subject-countries", list(&spec["subject"]["countries"]), false),
        ("subject-provinces", list(&spec["subject"]["provinces"]), false),
        ("subject-localities", list(&spec["subject"]["localities"]), false),
        ("subject-postalcodes", list(&spec["subject"]["postalCodes"]), false),
        ("subject-streetaddresses", list(&spec["subject"]["streetAddresses"]), false),
        ("email-sans", list(&spec["emailAddresses"]), false),
        ("alt-names", list(&spec["dnsNames"]), true),
        ("ip-sans", ips, true),
        ("uri-sans", list(&spec["uris"]), true),
    ];
    for (key, values, keep_empty) in csv_keys {
        // A CRLF does not survive the CSV round trip ingress-shim makes, so cert-manager drops that key.
        if (keep_empty || !values.is_empty()) && !values.iter().any(|v| v.contains("\r\n")) {
            put(key, values.iter().map(|v| csv_field(v)).collect::<Vec<_>>().join(","));
        }
    }
    if let Some(name) = certificate["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
        put("certificate-name", name.to_string());
    }
    if !(issuer_name.is_empty() && issuer_kind.is_empty() && issuer_group.is_empty()) {
        put("issuer-name", issuer_name.to_string());
        put("issuer-kind", issuer_kind.to_string());
        put("issuer-group", issuer_group.to_string());
    }
    out
}

/// `net.IP.String`: IPv4-mapped IPv6 addresses print as dotted IPv4.
fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// One field as Go's `encoding/csv` writes it.
fn csv_field(field: &str) -> String {
    let needs_quotes = !field.is_empty()
        && (field == r"\." || field.contains([',', '"', '\r', '\n']) || field.starts_with(char::is_whitespace));
    if needs_quotes { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_string() }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
    }

    fn spec(extra: Value) -> CertSpec {
        let mut base = json!({"secretName": "web-tls", "issuerRef": {"name": "ca", "kind": "Issuer"}});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        cert_spec(&base).unwrap()
    }

    fn invalid(extra: Value) -> Vec<String> {
        let mut base = json!({"secretName": "web-tls", "issuerRef": {"name": "ca"}});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        match cert_spec(&base) {
            Err(PkiError::Invalid(errors)) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn parsed(pem: &str) -> Vec<Vec<u8>> {
        certificate_ders(pem).unwrap()
    }

    fn ca(now: DateTime<Utc>, duration: &str) -> Issued {
        let ca_spec = spec(json!({"commonName": "drill-ca", "isCA": true, "duration": duration,
                                  "privateKey": {"algorithm": "ECDSA", "size": 384}}));
        issue_self_signed(&ca_spec, now).unwrap()
    }

    #[test]
    fn a_self_signed_certificate_has_exactly_the_requested_sans_and_validity() {
        let s = spec(json!({"commonName": "web", "dnsNames": ["web.example.com", "www.example.com"],
                            "ipAddresses": ["10.0.0.7", "::1"], "duration": "24h",
                            "privateKey": {"algorithm": "ECDSA"}}));
        let now = at("2025-03-01T10:00:00.750Z");
        let issued = issue_self_signed(&s, now).unwrap();
        assert_eq!((issued.not_before, issued.not_after), (at("2025-03-01T10:00:00Z"), at("2025-03-02T10:00:00Z")));
        assert_eq!(validity(&issued.cert_pem).unwrap(), (issued.not_before, issued.not_after));
        assert_eq!(issued.ca_pem.as_deref(), Some(issued.cert_pem.as_str()), "SelfSigned: ca.crt is the certificate");

        let ders = parsed(&issued.cert_pem);
        let (_, cert) = X509Certificate::from_der(&ders[0]).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
                    Ok(v4) => format!("ip:{}", IpAddr::from(v4)),
                    Err(_) => format!("ip:{}", IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
                },
                other => format!("unexpected:{other:?}"),
            })
            .collect();
        assert_eq!(sans, ["dns:web.example.com", "dns:www.example.com", "ip:10.0.0.7", "ip:::1"]);
        assert_eq!(cert.validity().not_before.timestamp(), issued.not_before.timestamp());
        assert_eq!(cert.issuer().as_raw(), cert.subject().as_raw());
        assert!(cert.verify_signature(None).is_ok(), "signed by its own key");
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca, "CA:FALSE is written explicitly");
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign(), "default usages");
        assert!(cert.extended_key_usage().unwrap().is_none());
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), "web");
        assert!(cert.raw_serial().len() <= 20 && cert.raw_serial()[0] & 0x80 == 0);
        let again = issue_self_signed(&s, now).unwrap();
        let again_ders = parsed(&again.cert_pem);
        let (_, other) = X509Certificate::from_der(&again_ders[0]).unwrap();
        assert_ne!(cert.raw_serial(), other.raw_serial(), "serials are random");
        assert!(key_matches(&issued.cert_pem, &issued.key_pem));
        assert!(issued.key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"), "SEC 1 by default for ECDSA");
    }

    #[test]
    fn the_default_key_is_rsa_2048_in_pkcs1_and_usages_and_subject_follow_the_spec() {
        let s = spec(json!({"commonName": "api", "isCA": false, "usages": ["server auth", "client auth", "signing"],
                            "subject": {"organizations": ["Drills Inc"], "countries": ["DE"]}}));
        assert_eq!(
            s.private_key,
            PrivateKeySpec { algorithm: KeyAlgorithm::Rsa, size: 2048, encoding: KeyEncoding::Pkcs1 }
        );
        assert_eq!(s.duration, TimeDelta::days(90));
        let issued = issue_self_signed(&s, at("2025-01-01T00:00:00Z")).unwrap();
        assert!(issued.key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(key_matches(&issued.cert_pem, &issued.key_pem));
        let ders = parsed(&issued.cert_pem);
        let (_, cert) = X509Certificate::from_der(&ders[0]).unwrap();
        match cert.public_key().parsed().unwrap() {
            PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
            other => panic!("expected RSA, got {other:?}"),
        }
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth && !eku.any);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_encipherment(), "explicit usages replace the defaults");
        assert_eq!(cert.subject().to_string(), "C=DE, O=Drills Inc, CN=api");
        assert_eq!(issued.not_after - issued.not_before, TimeDelta::days(90));
    }

    #[test]
    fn pkcs8_and_ed25519_keys_round_trip() {
        for private_key in
            [json!({"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8"}), json!({"algorithm": "Ed25519"})]
        {
            let s = spec(json!({"commonName": "k", "privateKey": private_key}));
            let issued = issue_self_signed(&s, at("2025-01-01T00:00:00Z")).unwrap();
            assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{private_key}");
            assert!(key_matches(&issued.cert_pem, &issued.key_pem), "{private_key}");
        }
    }

    #[test]
    fn key_matches_is_false_for_another_key_or_garbage() {
        let s = spec(json!({"commonName": "a", "privateKey": {"algorithm": "ECDSA"}}));
        let one = issue_self_signed(&s, at("2025-01-01T00:00:00Z")).unwrap();
        let two = issue_self_signed(&s, at("2025-01-01T00:00:00Z")).unwrap();
        assert!(key_matches(&one.cert_pem, &one.key_pem));
        assert!(!key_matches(&one.cert_pem, &two.key_pem));
        assert!(!key_matches(&one.cert_pem, "not a key"));
        assert!(!key_matches("not a cert", &one.key_pem));
    }

    #[test]
    fn a_ca_issued_leaf_verifies_against_the_ca_and_tls_crt_leaves_the_root_out() {
        let now = at("2025-06-01T00:00:00Z");
        let root = ca(now, "87600h");
        let leaf_spec =
            spec(json!({"dnsNames": ["svc.ns.svc"], "duration": "720h", "privateKey": {"algorithm": "ECDSA"}}));
        let issued = issue_from_ca(&leaf_spec, &root.cert_pem, &root.key_pem, now).unwrap();

        let chain = parsed(&issued.cert_pem);
        assert_eq!(chain.len(), 1, "a self-signed root is not part of tls.crt");
        assert_eq!(issued.ca_pem.as_deref(), Some(root.cert_pem.as_str()));
        let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
        let root_der = parsed(&root.cert_pem);
        let (_, ca_cert) = X509Certificate::from_der(&root_der[0]).unwrap();
        assert!(leaf.verify_signature(Some(ca_cert.public_key())).is_ok(), "the leaf is signed by the CA key");
        assert!(leaf.verify_signature(Some(leaf.public_key())).is_err());
        assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
        assert!(ca_cert.basic_constraints().unwrap().unwrap().value.ca);
        assert!(ca_cert.key_usage().unwrap().unwrap().value.key_cert_sign(), "isCA adds cert sign");
        let has_aki = leaf
            .extensions()
            .iter()
            .any(|e| matches!(e.parsed_extension(), ParsedExtension::AuthorityKeyIdentifier(_)));
        assert!(has_aki, "the leaf names its issuer's key");
        assert_eq!(issued.not_after, now + TimeDelta::hours(720));
        assert!(key_matches(&issued.cert_pem, &issued.key_pem));
    }

    #[test]
    fn the_leaf_is_capped_at_the_ca_not_after_and_an_expired_ca_refuses() {
        let start = at("2025-06-01T00:00:00Z");
        let root = ca(start, "2h");
        let leaf_spec = spec(json!({"commonName": "short", "privateKey": {"algorithm": "ECDSA"}}));
        let later = start + TimeDelta::minutes(30);
        let issued = issue_from_ca(&leaf_spec, &root.cert_pem, &root.key_pem, later).unwrap();
        assert_eq!(issued.not_after, root.not_after, "90 days requested, capped at the CA's expiry");
        assert_eq!(issued.not_before, later);
        let expired = issue_from_ca(&leaf_spec, &root.cert_pem, &root.key_pem, start + TimeDelta::hours(3));
        assert!(matches!(expired, Err(PkiError::CaExpired(t)) if t == root.not_after));
        let other = ca(start, "2h");
        assert!(matches!(
            issue_from_ca(&leaf_spec, &root.cert_pem, &other.key_pem, later),
            Err(PkiError::CaKeyMismatch)
        ));
    }

    #[test]
    fn an_intermediate_ca_goes_into_tls_crt_and_the_root_into_ca_crt() {
        let now = at("2025-06-01T00:00:00Z");
        let root = ca(now, "87600h");
        let mid_spec = spec(json!({"commonName": "drill-intermediate", "isCA": true, "duration": "8760h",
                                   "privateKey": {"algorithm": "ECDSA"}}));
        let mid = issue_from_ca(&mid_spec, &root.cert_pem, &root.key_pem, now).unwrap();
        let mid_bundle = format!("{}{}", mid.cert_pem, root.cert_pem);
        let leaf_spec = spec(json!({"commonName": "leaf", "privateKey": {"algorithm": "Ed25519"}}));
        let leaf = issue_from_ca(&leaf_spec, &mid_bundle, &mid.key_pem, now).unwrap();
        let chain = parsed(&leaf.cert_pem);
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], parsed(&mid.cert_pem)[0]);
        assert_eq!(leaf.ca_pem.as_deref(), Some(root.cert_pem.as_str()));
        assert!(key_matches(&leaf.cert_pem, &leaf.key_pem));
        let unrelated = ca(now, "87600h");
        let broken = format!("{}{}", mid.cert_pem, unrelated.cert_pem);
        assert!(matches!(
            issue_from_ca(&leaf_spec, &broken, &mid.key_pem, now),
            Err(PkiError::BadCertificate(m)) if m == "certificate chain is malformed or broken"
        ));
    }

    #[test]
    fn a_90_day_certificate_renews_at_day_60() {
        let nb = at("2025-01-01T00:00:00Z");
        let na = nb + TimeDelta::days(90);
        assert_eq!(renewal_time(nb, na, None, None), nb + TimeDelta::days(60));
        assert_eq!(renewal_time(nb, na, Some(TimeDelta::days(10)), None), nb + TimeDelta::days(80));
    }

    #[test]
    fn a_renew_before_not_shorter_than_the_lifetime_falls_back() {
        let nb = at("2025-01-01T00:00:00Z");
        let na = nb + TimeDelta::hours(3);
        assert_eq!(renewal_time(nb, na, Some(TimeDelta::hours(3)), None), nb + TimeDelta::hours(2));
        assert_eq!(renewal_time(nb, na, Some(TimeDelta::hours(5)), Some(50)), nb + TimeDelta::minutes(90));
        assert_eq!(renewal_time(nb, na, Some(TimeDelta::zero()), None), nb + TimeDelta::hours(2));
    }

    #[test]
    fn a_percentage_renews_that_share_of_the_lifetime_before_expiry() {
        let nb = at("2025-01-01T00:00:00Z");
        let na = nb + TimeDelta::minutes(60);
        assert_eq!(renewal_time(nb, na, None, Some(25)), nb + TimeDelta::minutes(45));
        assert_eq!(renewal_time(nb, na, None, Some(0)), nb + TimeDelta::minutes(40), "0 is ignored");
        assert_eq!(renewal_time(nb, na, None, Some(100)), nb + TimeDelta::minutes(40), "100 is ignored");
        let s = spec(json!({"commonName": "x", "renewBeforePercentage": 25}));
        assert_eq!(s.renewal_time(nb, na), nb + TimeDelta::minutes(45));
    }

    #[test]
    fn the_renewal_time_is_truncated_to_whole_seconds() {
        let nb = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let na = nb + TimeDelta::seconds(10);
        assert_eq!(renewal_time(nb, na, None, None), nb + TimeDelta::seconds(6), "10s − 3.333s, truncated");
    }

    #[test]
    fn go_durations_parse_as_time_parse_duration_does() {
        let d = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(d("2160h0m0s"), TimeDelta::hours(2160));
        assert_eq!(d("1h30m"), TimeDelta::minutes(90));
        assert_eq!(d("90m"), TimeDelta::minutes(90));
        assert_eq!(d("1.5h"), TimeDelta::minutes(90));
        assert_eq!(d("300ms"), TimeDelta::milliseconds(300));
        assert_eq!(d("1µs"), TimeDelta::microseconds(1));
        assert_eq!(d("1μs") + d("1us"), TimeDelta::microseconds(2));
        assert_eq!(d("-1.5h"), TimeDelta::minutes(-90));
        assert_eq!(d("+.5s"), TimeDelta::milliseconds(500));
        assert_eq!(d("1.h"), TimeDelta::hours(1));
        assert_eq!(d("0"), TimeDelta::zero());
        assert_eq!(d("-9223372036854775808ns"), TimeDelta::nanoseconds(i64::MIN));
        let err = |s: &str| parse_go_duration(s).unwrap_err().to_string();
        assert_eq!(err(""), r#"time: invalid duration """#);
        assert_eq!(err("1"), r#"time: missing unit in duration "1""#);
        assert_eq!(err("3d"), r#"time: unknown unit "d" in duration "3d""#);
        assert_eq!(err(".s"), r#"time: invalid duration ".s""#);
        assert_eq!(err("h"), r#"time: invalid duration "h""#);
        assert_eq!(err("9223372036854775808ns"), r#"time: invalid duration "9223372036854775808ns""#);
        assert_eq!(err("2ü"), r#"time: unknown unit "\xc3\xbc" in duration "2\xc3\xbc""#);
    }

    #[test]
    fn go_durations_print_as_duration_string_does() {
        let f = |s: &str| format_go_duration(parse_go_duration(s).unwrap());
        assert_eq!(f("2160h"), "2160h0m0s");
        assert_eq!(f("1h"), "1h0m0s");
        assert_eq!(f("5m"), "5m0s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("300ms"), "300ms");
        assert_eq!(f("1500ns"), "1.5µs");
        assert_eq!(f("0s"), "0s");
        assert_eq!(f("-90m"), "-1h30m0s");
    }

    #[test]
    fn a_duration_under_an_hour_is_refused_with_the_webhook_message() {
        assert_eq!(
            invalid(json!({"commonName": "a", "duration": "30m"})),
            ["spec.duration: Invalid value: 30m0s: certificate duration must be greater than 1h0m0s"]
        );
        assert!(
            cert_spec(&json!({"secretName": "s", "issuerRef": {"name": "i"}, "commonName": "a", "duration": "1h"}))
                .is_ok()
        );
    }

    #[test]
    fn renew_before_must_be_shorter_than_the_duration_and_at_least_five_minutes() {
        assert_eq!(
            invalid(json!({"commonName": "a", "duration": "24h", "renewBefore": "24h"})),
            [
                "spec.renewBefore: Invalid value: 24h0m0s: certificate duration 24h0m0s must be greater than renewBefore 24h0m0s"
            ]
        );
        assert_eq!(
            invalid(json!({"commonName": "a", "renewBefore": "1m"})),
            ["spec.renewBefore: Invalid value: 1m0s: certificate renewBefore must be greater than 5m0s"]
        );
    }

    #[test]
    fn renew_before_and_a_percentage_are_mutually_exclusive() {
        let e =
            invalid(json!({"commonName": "a", "duration": "24h", "renewBefore": "1h", "renewBeforePercentage": 10}));
        let why = "renewBefore and renewBeforePercentage are mutually exclusive and cannot both be set";
        assert_eq!(
            e,
            [
                format!("spec.renewBefore: Invalid value: 1h0m0s: {why}"),
                format!("spec.renewBeforePercentage: Invalid value: 10: {why}")
            ]
        );
        assert_eq!(PkiError::Invalid(e.clone()).to_string(), format!("[{}, {}]", e[0], e[1]));
    }

    #[test]
    fn other_webhook_checks_report_every_problem() {
        let e = cert_spec(&json!({
            "issuerRef": {"kind": "VaultIssuer"}, "ipAddresses": ["10.0.0.300"],
            "usages": ["server auth", "teleport"], "privateKey": {"algorithm": "ECDSA", "size": 255},
            "emailAddresses": ["Ops <ops@example.com>"], "isCA": "yes"
        }));
        let Err(PkiError::Invalid(errors)) = e else { panic!("{e:?}") };
        assert_eq!(
            errors,
            [
                r#"spec.isCA: Invalid value: "string": spec.isCA in body must be of type boolean: "string""#,
                "spec.secretName: Required value: must be specified",
                "spec.issuerRef.name: Required value: must be specified",
                r#"spec.issuerRef.kind: Invalid value: "VaultIssuer": must be one of Issuer or ClusterIssuer (did you forget to set spec.issuerRef.group?)"#,
                r#"spec.ipAddresses[0]: Invalid value: "10.0.0.300": invalid IP address"#,
                r#"spec.emailAddresses[0]: Invalid value: "Ops <ops@example.com>": invalid email address: make sure the supplied value only contains the email address itself"#,
                r#"spec.privateKey.size: Unsupported value: 255: supported values: "256", "384", "521""#,
                r#"spec.usages[1]: Invalid value: "teleport": unknown keyusage"#,
            ]
        );
        assert_eq!(
            invalid(json!({})),
            [
                "spec: Invalid value: \"\": at least one of commonName (from the commonName field or from a literalSubject), \
              dnsNames, emailSANs, ipAddresses, otherNames, or uriSANs must be set"
            ]
        );
    }

    #[test]
    fn a_percentage_alone_is_not_checked_as_the_webhook_only_runs_with_duration_or_renew_before() {
        assert!(
            cert_spec(
                &json!({"secretName": "s", "issuerRef": {"name": "i"}, "commonName": "a", "renewBeforePercentage": 100})
            )
            .is_ok()
        );
        assert_eq!(
            invalid(json!({"commonName": "a", "duration": "1h", "renewBeforePercentage": 95})),
            [
                "spec.renewBeforePercentage: Invalid value: 95: certificate renewBeforePercentage must result in a renewBefore greater than 5m0s"
            ]
        );
    }

    #[test]
    fn subjects_with_two_values_for_one_attribute_are_unsupported() {
        let s = spec(
            json!({"commonName": "a", "subject": {"organizations": ["A", "B"]}, "privateKey": {"algorithm": "ECDSA"}}),
        );
        assert!(matches!(issue_self_signed(&s, at("2025-01-01T00:00:00Z")), Err(PkiError::Unsupported(_))));
    }

    #[test]
    fn the_secret_holds_base64_pems_and_ca_crt_only_when_there_is_a_ca() {
        let s = spec(json!({"commonName": "a", "privateKey": {"algorithm": "ECDSA"}}));
        let mut issued = issue_self_signed(&s, at("2025-01-01T00:00:00Z")).unwrap();
        let data = secret_data(&issued);
        assert_eq!(data.keys().collect::<Vec<_>>(), ["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(STANDARD.decode(&data["tls.key"]).unwrap(), issued.key_pem.as_bytes());
        issued.ca_pem = None;
        assert!(!secret_data(&issued).contains_key("ca.crt"));
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"), "Debug never prints the key");
    }

    #[test]
    fn secret_annotations_name_the_certificate_issuer_and_subject() {
        let certificate = json!({"metadata": {"name": "web"}, "spec": {
            "commonName": "web", "dnsNames": ["a.example.com", "b.example.com"],
            "ipAddresses": ["::ffff:10.0.0.1", "fd00::1"], "subject": {"organizations": ["Drills, Inc"]}}});
        let a = secret_annotations(&certificate, "ClusterIssuer", "root", "cert-manager.io");
        let expected: BTreeMap<String, String> = [
            ("alt-names", "a.example.com,b.example.com"),
            ("certificate-name", "web"),
            ("common-name", "web"),
            ("ip-sans", "10.0.0.1,fd00::1"),
            ("issuer-group", "cert-manager.io"),
            ("issuer-kind", "ClusterIssuer"),
            ("issuer-name", "root"),
            ("subject-organizations", "\"Drills, Inc\""),
            ("uri-sans", ""),
        ]
        .into_iter()
        .map(|(k, v)| (format!("cert-manager.io/{k}"), v.to_string()))
        .collect();
        assert_eq!(a, expected);
    }
}
