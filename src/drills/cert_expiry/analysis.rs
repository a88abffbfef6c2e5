//! The pure core of cert-expiry: certificates found in the cluster, in files and on endpoints,
//! judged at `now + horizon`. No Kubernetes client and no wall clock: the caller passes both
//! the inventory and `now`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::chain::Cert;
use crate::clock::Timestamp;

pub use crate::drills::severity::Severity;

/// What a finding is about: a stable code to filter on.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// The certificate has expired already.
    Expired,
    /// The certificate expires within the horizon and nothing is scheduled to renew it in time.
    ExpiresWithinHorizon,
    /// The certificate expires within the horizon, but cert-manager has a renewal scheduled
    /// before then and the Certificate is Ready.
    RenewalScheduled,
    /// A cert-manager Certificate whose `renewalTime` has passed without a renewal.
    RenewalOverdue,
    /// A cert-manager Certificate whose Ready condition is not True.
    CertificateNotReady,
    /// A TLS Secret no cert-manager Certificate manages: a person must renew it.
    Unmanaged,
    /// A certificate further up the chain expires before the leaf it signs.
    IntermediateExpiresBeforeLeaf,
    /// An endpoint serves a chain that does not lead to a root.
    ChainIncomplete,
    /// The leaf does not name the host it is served or referenced for.
    HostnameMismatch,
    /// Bytes that should hold certificates do not parse.
    Unreadable,
    /// An endpoint refused the connection or could not be resolved.
    EndpointUnreachable,
    /// An endpoint answered, but not with a TLS handshake.
    EndpointNotTls,
    /// An endpoint did not complete a handshake within the timeout.
    EndpointTimeout,
    /// An Ingress names a TLS Secret that does not exist.
    SecretMissing,
}

impl FindingCode {
    pub fn name(self) -> &'static str {
        match self {
            FindingCode::Expired => "expired",
            FindingCode::ExpiresWithinHorizon => "expires-within-horizon",
            FindingCode::RenewalScheduled => "renewal-scheduled",
            FindingCode::RenewalOverdue => "renewal-overdue",
            FindingCode::CertificateNotReady => "certificate-not-ready",
            FindingCode::Unmanaged => "unmanaged",
            FindingCode::IntermediateExpiresBeforeLeaf => "intermediate-expires-before-leaf",
            FindingCode::ChainIncomplete => "chain-incomplete",
            FindingCode::HostnameMismatch => "hostname-mismatch",
            FindingCode::Unreadable => "unreadable",
            FindingCode::EndpointUnreachable => "endpoint-unreachable",
            FindingCode::EndpointNotTls => "endpoint-not-tls",
            FindingCode::EndpointTimeout => "endpoint-timeout",
            FindingCode::SecretMissing => "secret-missing",
        }
    }

    fn severity(self) -> Severity {
        match self {
            FindingCode::Expired | FindingCode::HostnameMismatch | FindingCode::SecretMissing => Severity::Critical,
            FindingCode::RenewalScheduled | FindingCode::Unmanaged => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// Who renews a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "by")]
pub enum Renewer {
    /// A cert-manager Certificate (`namespace/name`) and its issuer (`ClusterIssuer/name`).
    CertManager { certificate: String, issuer: String },
    /// cert-manager's CA injector, from the annotation `cert-manager.io/inject-ca-from`.
    CaInjector { from: String },
    /// Nobody: a person must.
    Person,
    /// Whoever runs the endpoint; firedrill cannot see it.
    Unknown,
}

impl fmt::Display for Renewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Renewer::CertManager { certificate, issuer } => {
                write!(f, "cert-manager (Certificate {certificate}, {issuer})")
            }
            Renewer::CaInjector { from } => write!(f, "cert-manager's CA injector (from {from})"),
            Renewer::Person => f.write_str("nobody: a person must renew it"),
            Renewer::Unknown => f.write_str("unknown: whoever runs the endpoint"),
        }
    }
}

/// How the certificates of an item relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Leaf first, then the certificates that issued it (`tls.crt`, a served chain).
    Chain,
    /// Trust anchors, each on its own (`ca.crt`, a `caBundle`).
    Bundle,
}

/// Where a certificate stands in its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Leaf,
    Intermediate,
    Root,
    /// A trust anchor in a CA bundle.
    Ca,
}

/// Why an item's certificates could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub code: FindingCode,
    pub reason: String,
}

/// One place that holds certificates.
#[derive(Debug, Clone)]
pub struct Item {
    /// `Secret payments/web-tls`, `endpoint 10.0.0.1:443`, `file /etc/x.pem`.
    pub object: String,
    pub namespace: Option<String>,
    /// `tls.crt`, `ca.crt`, `caBundle of webhook x`, `served chain`, `client certificate`.
    pub field: String,
    pub layout: Layout,
    pub certs: Result<Vec<Cert>, Unreadable>,
    pub renewer: Renewer,
    /// Names the leaf must cover (an endpoint's host or SNI, an Ingress's hosts).
    pub expected_names: Vec<String>,
    /// For a served chain: check that it leads to a root, with these CA certificates as the
    /// anchors when given.
    pub served: Option<Vec<Cert>>,
}

/// A cert-manager Certificate, as its status says.
#[derive(Debug, Clone)]
pub struct Managed {
    /// `namespace/name`.
    pub certificate: String,
    pub namespace: String,
    pub issuer: String,
    /// `(status, reason, message)` of the Ready condition, when there is one.
    pub ready: Option<(String, String, String)>,
    pub renewal_time: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
}

impl Managed {
    fn is_ready(&self) -> bool {
        self.ready.as_ref().is_some_and(|r| r.0 == "True")
    }
}

/// Everything found, before judgement.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub items: Vec<Item>,
    pub certificates: Vec<Managed>,
    /// Findings made while collecting (an Ingress naming a missing Secret).
    pub found: Vec<Finding>,
}

/// One thing wrong, or worth knowing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    pub code: FindingCode,
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// Days from now to `notAfter`, to one decimal; negative when expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_days: Option<f64>,
    pub renewed_by: String,
    pub message: String,
}

impl Finding {
    pub fn new(code: FindingCode, object: &str, namespace: Option<&str>, renewer: &Renewer, message: String) -> Self {
        Self {
            severity: code.severity(),
            code,
            object: object.to_string(),
            namespace: namespace.map(str::to_string),
            field: None,
            subject: None,
            position: None,
            not_after: None,
            margin_days: None,
            renewed_by: renewer.to_string(),
            message,
        }
    }

    fn of_cert(mut self, field: &str, cert: &Cert, position: Position, now: Timestamp) -> Self {
        self.field = Some(field.to_string());
        self.subject = Some(cert.subject.clone());
        self.position = Some(position);
        self.not_after = Some(cert.not_after);
        self.margin_days = Some(margin_days(cert.not_after, now));
        self
    }
}

/// Days from `now` to `at`, to one decimal.
pub fn margin_days(at: Timestamp, now: Timestamp) -> f64 {
    let days = (at.millis() - now.millis()) as f64 / 86_400_000.0;
    (days * 10.0).round() / 10.0
}

fn position(layout: Layout, index: usize, cert: &Cert) -> Position {
    match layout {
        Layout::Bundle => Position::Ca,
        Layout::Chain if index == 0 => Position::Leaf,
        Layout::Chain if cert.self_issued() => Position::Root,
        Layout::Chain => Position::Intermediate,
    }
}

/// Judges the inventory at `now + horizon`. Findings come most severe first.
pub fn analyse(inv: &Inventory, now: Timestamp, horizon: Duration) -> Vec<Finding> {
    let until = now + horizon;
    let mut out = inv.found.clone();
    for item in &inv.items {
        item_findings(inv, item, now, until, &mut out);
    }
    for c in &inv.certificates {
        let renewer = Renewer::CertManager { certificate: c.certificate.clone(), issuer: c.issuer.clone() };
        let object = format!("Certificate {}", c.certificate);
        if let Some((status, reason, message)) = c.ready.as_ref().filter(|r| r.0 != "True") {
            out.push(Finding::new(
                FindingCode::CertificateNotReady,
                &object,
                Some(&c.namespace),
                &renewer,
                format!("Ready is {status} ({reason}): {message}"),
            ));
        } else if c.ready.is_none() {
            out.push(Finding::new(
                FindingCode::CertificateNotReady,
                &object,
                Some(&c.namespace),
                &renewer,
                "has no Ready condition: cert-manager has not processed it (is cert-manager running?)".into(),
            ));
        }
        if let Some(t) = c.renewal_time.filter(|t| *t <= now) {
            let mut f = Finding::new(
                FindingCode::RenewalOverdue,
                &object,
                Some(&c.namespace),
                &renewer,
                format!("renewalTime {t} has passed and the certificate was not renewed"),
            );
            f.not_after = c.not_after;
            f.margin_days = c.not_after.map(|n| margin_days(n, now));
            out.push(f);
        }
    }
    out.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then_with(|| a.object.cmp(&b.object)).then_with(|| a.field.cmp(&b.field))
    });
    out
}

fn item_findings(inv: &Inventory, item: &Item, now: Timestamp, until: Timestamp, out: &mut Vec<Finding>) {
    let ns = item.namespace.as_deref();
    let new = |code, message| Finding::new(code, &item.object, ns, &item.renewer, message);
    let certs = match &item.certs {
        Ok(c) => c,
        Err(u) => {
            let mut f = new(u.code, u.reason.clone());
            f.field = Some(item.field.clone());
            out.push(f);
            return;
        }
    };
    if item.renewer == Renewer::Person && item.object.starts_with("Secret ") && item.field == "tls.crt" {
        out.push(
            new(
                FindingCode::Unmanaged,
                "no cert-manager Certificate manages this Secret: a person must renew it".into(),
            )
            .with_field(&item.field),
        );
    }
    let managed = match &item.renewer {
        Renewer::CertManager { certificate, .. } => inv.certificates.iter().find(|c| &c.certificate == certificate),
        _ => None,
    };
    for (i, cert) in certs.iter().enumerate() {
        let pos = position(item.layout, i, cert);
        if cert.not_after <= now {
            out.push(new(FindingCode::Expired, format!("expired on {}", cert.not_after)).of_cert(
                &item.field,
                cert,
                pos,
                now,
            ));
        } else if cert.not_after <= until {
            // cert-manager renews a Ready leaf at its renewalTime; anything else needs someone.
            let scheduled = managed.filter(|m| {
                pos == Position::Leaf && m.is_ready() && m.renewal_time.is_some_and(|t| t > now && t < cert.not_after)
            });
            let f = match scheduled.and_then(|m| m.renewal_time) {
                Some(t) => new(
                    FindingCode::RenewalScheduled,
                    format!("expires on {} within the horizon; cert-manager renews it at {t}", cert.not_after),
                ),
                None => new(
                    FindingCode::ExpiresWithinHorizon,
                    format!("expires on {}, within the horizon (until {until})", cert.not_after),
                ),
            };
            out.push(f.of_cert(&item.field, cert, pos, now));
        }
    }
    let Some(leaf) = certs.first().filter(|_| item.layout == Layout::Chain) else { return };
    for (i, cert) in certs.iter().enumerate().skip(1) {
        if cert.not_after < leaf.not_after {
            let pos = position(item.layout, i, cert);
            out.push(
                new(
                    FindingCode::IntermediateExpiresBeforeLeaf,
                    format!(
                        "{} expires on {}, before the leaf it signs ({}): the chain breaks first",
                        cert.subject, cert.not_after, leaf.not_after
                    ),
                )
                .of_cert(&item.field, cert, pos, now),
            );
        }
    }
    for name in &item.expected_names {
        if !leaf.names(name) {
            let mut sans: Vec<String> = leaf.dns_names.clone();
            sans.extend(leaf.ip_addresses.iter().map(ToString::to_string));
            out.push(
                new(
                    FindingCode::HostnameMismatch,
                    format!(
                        "the leaf does not name `{name}`; it names {}",
                        if sans.is_empty() { "nothing (no SANs)".into() } else { sans.join(", ") }
                    ),
                )
                .of_cert(&item.field, leaf, Position::Leaf, now),
            );
        }
    }
    if let Some(gap) = item.served.as_ref().and_then(|anchors| chain_gap(certs, anchors)) {
        out.push(new(FindingCode::ChainIncomplete, gap).with_field(&item.field));
    }
}

impl Finding {
    fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
}

/// Follows a served chain from the leaf by issuer names. Without `anchors`, a chain is
/// incomplete when its leaf is served without the certificate that issued it (public CAs never
/// sign leaves with a root), or when served certificates do not link. With `anchors` (the CA
/// certificates the spec gives), it must reach a self-issued certificate or an anchor.
pub fn chain_gap(served: &[Cert], anchors: &[Cert]) -> Option<String> {
    let mut current = served.first()?;
    let mut used = vec![false; served.len()];
    used[0] = true;
    loop {
        if current.self_issued() || anchors.iter().any(|a| a.subject == current.issuer) {
            break;
        }
        match served.iter().enumerate().find(|(i, c)| !used[*i] && c.subject == current.issuer) {
            Some((i, c)) => {
                used[i] = true;
                current = c;
            }
            None if !anchors.is_empty() => {
                return Some(format!(
                    "the served chain stops at `{}`, issued by `{}`, which neither the server sends nor the given CA holds",
                    current.subject, current.issuer
                ));
            }
            None if std::ptr::eq(current, &served[0]) => {
                return Some(format!(
                    "the server sends only the leaf; its issuer `{}` is missing (send the intermediate with it)",
                    current.issuer
                ));
            }
            None => break,
        }
    }
    let unlinked: Vec<&str> = served.iter().zip(&used).filter(|(_, u)| !**u).map(|(c, _)| c.subject.as_str()).collect();
    (!unlinked.is_empty())
        .then(|| format!("the served chain holds certificates that do not link to the leaf: {}", unlinked.join("; ")))
}
