//! The `certExpiry` block of a drill file, and its validation.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::Severity;
use crate::spec::raw::{DurationText, EnvText};
use crate::spec::{Loc, Validator};

/// Find every certificate that would expire within a horizon (TLS Secrets, cert-manager
/// Certificates, Ingress TLS, webhook and APIService CA bundles, files, live endpoints), and
/// optionally rehearse a cert-manager renewal in a scratch namespace.
#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "CertExpiry")]
pub struct Spec {
    /// How far ahead to look (`30d` by default): certificates are judged as they will be then.
    #[serde(default)]
    pub horizon: Option<Loc<DurationText>>,
    /// The least severe finding that fails the drill: `info`, `warning` (default) or `critical`.
    /// Certificates expiring within the horizon are warnings; expired ones are critical.
    #[serde(default)]
    pub fail_on: Option<Severity>,
    /// PEM (one or several certificates) or DER files to check, such as client certificates.
    #[serde(default)]
    pub files: Vec<Loc<EnvText>>,
    /// Kubeconfig files whose client certificates and cluster CAs are checked.
    #[serde(default)]
    pub kubeconfigs: Vec<Loc<EnvText>>,
    /// Live TLS endpoints whose served chain is fetched and checked (without trusting it).
    #[serde(default)]
    pub endpoints: Vec<Loc<EndpointSpec>>,
    /// How long an endpoint has to complete a TLS handshake (`5s` by default).
    #[serde(default)]
    pub endpoint_timeout: Option<Loc<DurationText>>,
    /// Rehearse a cert-manager issuance and renewal in a scratch namespace.
    #[serde(default)]
    pub rehearsal: Option<Loc<RehearsalSpec>>,
}

/// A live TLS endpoint.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "CertExpiryEndpoint")]
pub struct EndpointSpec {
    /// `host:port` (`[::1]:443` for IPv6).
    pub address: Loc<String>,
    /// The server name sent in the handshake, and the name the leaf must cover; the host of
    /// `address` when unset (an IP address is then matched against IP SANs and no SNI is sent).
    #[serde(default)]
    pub sni: Option<Loc<String>>,
    /// A PEM file with the CA certificates the served chain must lead to. Without it, a chain is
    /// incomplete only when the leaf comes without its issuer or the served certificates do not link.
    #[serde(default)]
    pub ca: Option<Loc<EnvText>>,
}

/// The renewal rehearsal.
#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "CertExpiryRehearsal")]
pub struct RehearsalSpec {
    /// The issuer to rehearse with: a ClusterIssuer (the scratch namespace has no Issuer of its
    /// own). A selfSigned Issuer in the scratch namespace when unset.
    #[serde(default)]
    pub issuer_ref: Option<Loc<IssuerRefSpec>>,
    /// The rehearsal certificate's lifetime (`1h` by default; cert-manager's minimum is 1h).
    #[serde(default)]
    pub duration: Option<Loc<DurationText>>,
    /// How long before expiry cert-manager renews it (cert-manager's default, a third of the
    /// lifetime, when unset; at least 5m).
    #[serde(default)]
    pub renew_before: Option<Loc<DurationText>>,
    /// Advance the cluster's clock to the renewal time through the simulator's admin endpoint
    /// (`POST /firedrill/v1/clock/advance`), so the lifecycle takes seconds. Only for
    /// `firedrill sim` clusters; on a real cluster leave it off and the drill waits in real time.
    #[serde(default)]
    pub advance_sim_clock: bool,
    /// How long to wait for issuance, and again for renewal (`2m` by default; on a real cluster
    /// make it longer than `duration − renewBefore`).
    #[serde(default)]
    pub timeout: Option<Loc<DurationText>>,
}

/// A cert-manager `issuerRef`.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "CertExpiryIssuerRef")]
pub struct IssuerRefSpec {
    pub name: Loc<String>,
    /// `ClusterIssuer` (default), or the kind of an external issuer.
    #[serde(default)]
    pub kind: Option<Loc<String>>,
    /// `cert-manager.io` (default), or the group of an external issuer.
    #[serde(default)]
    pub group: Option<Loc<String>>,
}

/// A validated endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

impl Endpoint {
    /// `host:port`, as written.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name the leaf must cover.
    pub fn expected_name(&self) -> &str {
        self.sni.as_deref().unwrap_or(&self.host)
    }
}

/// A validated issuer reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    pub name: String,
    pub kind: String,
    pub group: String,
}

/// The validated rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rehearsal {
    /// None: a selfSigned Issuer in the scratch namespace.
    pub issuer_ref: Option<IssuerRef>,
    #[serde(with = "crate::measure::ms")]
    pub duration: Duration,
    #[serde(skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub renew_before: Option<Duration>,
    pub advance_sim_clock: bool,
    #[serde(with = "crate::measure::ms")]
    pub timeout: Duration,
}

/// The validated parameters of a `cert-expiry` drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub cluster: crate::cluster::Target,
    #[serde(with = "crate::measure::ms")]
    pub horizon: Duration,
    pub fail_on: Severity,
    pub files: Vec<PathBuf>,
    pub kubeconfigs: Vec<PathBuf>,
    pub endpoints: Vec<Endpoint>,
    #[serde(with = "crate::measure::ms")]
    pub endpoint_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Rehearsal>,
}

const DAY: Duration = Duration::from_secs(86_400);

fn duration_or(v: &mut Validator, text: &Option<Loc<DurationText>>, what: &str, default: Duration) -> Duration {
    text.as_ref().and_then(|t| v.duration(t, what)).unwrap_or(default)
}

fn endpoint(v: &mut Validator, spec: &Loc<EndpointSpec>) -> Option<Endpoint> {
    let address = &spec.value.address;
    let parsed = address.value.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some((host.to_string(), port.parse::<u16>().ok().filter(|p| *p > 0)?)).filter(|(h, _)| !h.is_empty())
    });
    let Some((host, port)) = parsed else {
        v.error(
            address.at(),
            format!("`{}` is not `host:port`: write e.g. `api.example.com:443` or `[::1]:8443`", address.value),
        );
        return None;
    };
    let sni = spec.value.sni.as_ref().and_then(|s| v.non_empty(s, "endpoints.sni"));
    if let Some(s) = &sni
        && rustls::pki_types::ServerName::try_from(s.as_str()).is_err()
    {
        let at = spec.value.sni.as_ref().map(Loc::at).unwrap_or(address.at());
        v.error(at, format!("`{s}` is not a server name: write a DNS name such as `api.example.com`"));
    }
    let ca = spec.value.ca.as_ref().and_then(|c| v.expand(c)).map(PathBuf::from);
    Some(Endpoint { host, port, sni, ca })
}

fn rehearsal(v: &mut Validator, spec: &Loc<RehearsalSpec>) -> Option<Rehearsal> {
    let s = &spec.value;
    let duration = duration_or(v, &s.duration, "rehearsal.duration", Duration::from_secs(3600));
    if duration < Duration::from_secs(3600) {
        let at = s.duration.as_ref().map(Loc::at).unwrap_or(spec.at());
        v.error(at, "cert-manager refuses a certificate duration under 1h: write `1h` or more");
        return None;
    }
    let renew_before = s.renew_before.as_ref().and_then(|t| v.duration(t, "rehearsal.renewBefore"));
    if let (Some(rb), Some(text)) = (renew_before, &s.renew_before)
        && (rb < Duration::from_secs(300) || rb >= duration)
    {
        v.error(
            text.at(),
            "cert-manager wants renewBefore at least 5m and shorter than the duration: write e.g. `20m` for a `1h` duration",
        );
        return None;
    }
    let issuer_ref = match &s.issuer_ref {
        None => None,
        Some(r) => {
            let kind = r.value.kind.as_ref().map(|k| k.value.clone()).unwrap_or_else(|| "ClusterIssuer".into());
            let group = r.value.group.as_ref().map(|g| g.value.clone()).unwrap_or_else(|| "cert-manager.io".into());
            if kind == "Issuer" && group == "cert-manager.io" {
                let at = r.value.kind.as_ref().map(Loc::at).unwrap_or(r.at());
                v.error(
                    at,
                    "the rehearsal runs in a scratch namespace, where no Issuer of yours exists: name a `ClusterIssuer`, or remove issuerRef for a selfSigned Issuer",
                );
                return None;
            }
            Some(IssuerRef { name: v.non_empty(&r.value.name, "rehearsal.issuerRef.name")?, kind, group })
        }
    };
    Some(Rehearsal {
        issuer_ref,
        duration,
        renew_before,
        advance_sim_clock: s.advance_sim_clock,
        timeout: duration_or(v, &s.timeout, "rehearsal.timeout", Duration::from_secs(120)),
    })
}

/// Validates the `certExpiry` block.
pub fn validate(v: &mut Validator, spec: &Loc<Spec>, cluster: crate::cluster::Target) -> Option<Params> {
    let s = &spec.value;
    let horizon = duration_or(v, &s.horizon, "horizon", 30 * DAY);
    let files = s.files.iter().filter_map(|f| v.expand(f)).map(PathBuf::from).collect();
    let kubeconfigs = s.kubeconfigs.iter().filter_map(|f| v.expand(f)).map(PathBuf::from).collect();
    let endpoints = s.endpoints.iter().filter_map(|e| endpoint(v, e)).collect();
    let endpoint_timeout = duration_or(v, &s.endpoint_timeout, "endpointTimeout", Duration::from_secs(5));
    let rehearsal = match &s.rehearsal {
        Some(r) => Some(rehearsal(v, r)?),
        None => None,
    };
    Some(Params {
        cluster,
        horizon,
        fail_on: s.fail_on.unwrap_or(Severity::Warning),
        files,
        kubeconfigs,
        endpoints,
        endpoint_timeout,
        rehearsal,
    })
}
