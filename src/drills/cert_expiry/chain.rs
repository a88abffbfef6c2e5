//! Reading certificates into plain [`Cert`]s: PEM with one or several certificates, or DER.
//!
//! Only `CERTIFICATE` blocks are decoded; any other PEM block (a private key in a combined file)
//! is skipped without being decoded. Nothing here keeps the certificate bytes.

use std::net::IpAddr;

use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::clock::Timestamp;

/// What firedrill needs of one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cert {
    pub subject: String,
    pub issuer: String,
    /// Hexadecimal.
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// `basicConstraints: CA:TRUE`.
    pub is_ca: bool,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl Cert {
    /// Issued by itself (a root, or a self-signed leaf).
    pub fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether the certificate names `host` (a DNS name or an IP address) in its SANs.
    /// A wildcard `*.example.com` covers exactly one label, as RFC 6125 says.
    pub fn names(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ip_addresses.contains(&ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns_names.iter().any(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(parent) => host.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
                None => n == host,
            }
        })
    }
}

/// Why bytes that should hold certificates do not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No bytes at all.
    #[error("is empty")]
    Empty,
    /// Neither PEM with a `CERTIFICATE` block nor a DER certificate.
    #[error("holds no certificate: not PEM with a CERTIFICATE block, nor DER")]
    NotACertificate,
    /// A PEM block that is not valid PEM (bad base64, no END line).
    #[error("PEM block {index} is not valid PEM: {reason}")]
    BadPem { index: usize, reason: String },
    /// A `CERTIFICATE` block whose content is not an X.509 certificate.
    #[error("certificate {index} does not parse as X.509: {reason}")]
    BadCertificate { index: usize, reason: String },
}

/// Parses every certificate in `bytes`, in order: PEM (any number of `CERTIFICATE` blocks) or a
/// single DER certificate.
pub fn parse(bytes: &[u8]) -> Result<Vec<Cert>, ChainError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ChainError::Empty);
    }
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return parse_pem(bytes);
    }
    match X509Certificate::from_der(bytes) {
        Ok((_, c)) => Ok(vec![of(&c)]),
        Err(_) => Err(ChainError::NotACertificate),
    }
}

fn parse_pem(bytes: &[u8]) -> Result<Vec<Cert>, ChainError> {
    let mut certs = Vec::new();
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    let mut index = 0;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or_else(|| bad_pem(index, "no end to the BEGIN line"))?;
        let label = &after[..label_end];
        let end_line = format!("-----END {label}-----");
        let end = after.find(&end_line).ok_or_else(|| bad_pem(index, &format!("no `{end_line}` line")))?;
        if label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE" || label == "X509 CERTIFICATE" {
            let block = &rest[start..start + 11 + end + end_line.len()];
            let (_, pem) =
                x509_parser::pem::parse_x509_pem(block.as_bytes()).map_err(|e| bad_pem(index, &e.to_string()))?;
            let (_, cert) = X509Certificate::from_der(&pem.contents)
                .map_err(|e| ChainError::BadCertificate { index, reason: e.to_string() })?;
            certs.push(of(&cert));
        }
        rest = &after[end + end_line.len()..];
        index += 1;
    }
    if certs.is_empty() { Err(ChainError::NotACertificate) } else { Ok(certs) }
}

fn bad_pem(index: usize, reason: &str) -> ChainError {
    ChainError::BadPem { index, reason: reason.to_string() }
}

fn of(c: &X509Certificate<'_>) -> Cert {
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(a));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(a));
                    }
                }
                _ => {}
            }
        }
    }
    Cert {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: c.raw_serial_as_string(),
        not_before: Timestamp::from_millis(c.validity().not_before.timestamp() * 1000),
        not_after: Timestamp::from_millis(c.validity().not_after.timestamp() * 1000),
        is_ca: c.is_ca(),
        dns_names,
        ip_addresses,
    }
}
