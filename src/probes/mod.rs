//! Probes: small checks that a service still answers (an HTTP(S) GET, a TCP connect) or that
//! Kubernetes objects are there (an object exists, a namespace holds as many objects of a kind
//! as another), run once, continuously while a drill disturbs the cluster, or as verification
//! after a recovery ([`verify`]).
//!
//! A drill that verifies a namespace it created (velero-restore's scratch namespace) may use
//! `$(SCRATCH_NAMESPACE)` in HTTP URLs and TCP addresses; [`Probe::in_namespace`] fills it in.
//! (`${...}` is taken: it names environment variables when the file is loaded.)
//!
//! This module owns the `probes` entries of drill files, their validation, one check (with
//! timeout and retries) and a [`Monitor`] that repeats the checks in the background and tallies
//! them. It records nothing itself and never returns a header value or URL credentials in
//! anything it reports: callers put its tallies into records.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Timestamp};
use crate::spec::raw::{DurationText, EnvText};
use crate::spec::{Loc, Validator};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_RETRIES: u32 = 1;

/// The placeholder for the namespace a drill verifies, in URLs and addresses.
pub const NAMESPACE_PLACEHOLDER: &str = "$(SCRATCH_NAMESPACE)";

/// One probe: exactly one of `http`, `tcp` and `kubernetes`.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Probe")]
pub struct Spec {
    /// A name for the record (`shop-frontend`).
    pub name: Loc<String>,
    #[serde(default)]
    pub http: Option<Loc<HttpSpec>>,
    #[serde(default)]
    pub tcp: Option<Loc<TcpSpec>>,
    /// Kubernetes objects in the namespace the drill verifies (only for drills that restore into
    /// a namespace: velero-restore).
    #[serde(default)]
    pub kubernetes: Option<Loc<KubernetesSpec>>,
    /// How long one attempt may take (default `2s`).
    #[serde(default)]
    pub timeout: Option<Loc<DurationText>>,
    /// How often the probe runs while it is monitoring (default `1s`).
    #[serde(default)]
    pub interval: Option<Loc<DurationText>>,
    /// Further attempts after a failed one before a check counts as failed (default 1): right
    /// after it while monitoring, `interval` after it when verifying a recovery.
    #[serde(default)]
    pub retries: Option<u32>,
}

/// An HTTP(S) GET.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "HttpProbe")]
pub struct HttpSpec {
    /// `http://` or `https://` URL. Credentials belong in `headers`, not here.
    pub url: Loc<EnvText>,
    /// The status the answer must have (default: any 2xx).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Request headers (`Authorization: Bearer ${TOKEN}`). Their values are never recorded.
    #[serde(default)]
    pub headers: BTreeMap<String, EnvText>,
}

/// A TCP connect.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "TcpProbe")]
pub struct TcpSpec {
    /// `host:port`.
    pub address: Loc<EnvText>,
}

/// Objects of one kind in the namespace a drill verifies: exactly one of `name` and
/// `sameCountAsSource`.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "KubernetesProbe")]
pub struct KubernetesSpec {
    /// `v1` (default) or `group/version`, e.g. `apps/v1`.
    #[serde(default)]
    pub api_version: Option<Loc<String>>,
    /// The kind, e.g. `Deployment`, `ConfigMap`, `PersistentVolumeClaim`.
    pub kind: Loc<String>,
    /// This object must exist.
    #[serde(default)]
    pub name: Option<Loc<String>>,
    /// The namespace must hold as many objects of the kind (not counting firedrill's own, labelled
    /// `app.kubernetes.io/managed-by: firedrill`) as the source namespace (the one a
    /// backup was taken of). Only counts are compared and recorded, never contents.
    #[serde(default)]
    pub same_count_as_source: bool,
}

/// What a probe checks, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    Http {
        /// The URL without any `user:password@`.
        url: String,
        #[serde(skip)]
        full_url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body_contains: Option<String>,
        /// Header names only: the values may be secrets.
        header_names: Vec<String>,
        #[serde(skip)]
        headers: Vec<(String, String)>,
    },
    Tcp {
        address: String,
    },
    Kubernetes {
        api_version: String,
        kind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        same_count_as_source: bool,
    },
}

/// A validated probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub name: String,
    pub check: Check,
    #[serde(with = "crate::measure::ms")]
    pub timeout: Duration,
    #[serde(with = "crate::measure::ms")]
    pub interval: Duration,
    pub retries: u32,
}

/// `url` without credentials, for records and messages.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

impl Probe {
    /// The probe with [`NAMESPACE_PLACEHOLDER`] replaced by `namespace` in its URL or address.
    pub fn in_namespace(&self, namespace: &str) -> Probe {
        let mut p = self.clone();
        match &mut p.check {
            Check::Http { url, full_url, .. } => {
                *url = url.replace(NAMESPACE_PLACEHOLDER, namespace);
                *full_url = full_url.replace(NAMESPACE_PLACEHOLDER, namespace);
            }
            Check::Tcp { address } => *address = address.replace(NAMESPACE_PLACEHOLDER, namespace),
            Check::Kubernetes { .. } => {}
        }
        p
    }
}

/// Validates one `probes` entry of a drill that has no namespace of its own to verify: a
/// `kubernetes` probe is refused.
pub fn validate(v: &mut Validator, spec: &Loc<Spec>) -> Option<Probe> {
    validate_in(v, spec, false)
}

fn kubernetes(v: &mut Validator, spec: &Loc<KubernetesSpec>) -> Option<Check> {
    let k = &spec.value;
    let api_version = match &k.api_version {
        Some(a) => v.non_empty(a, "kubernetes.apiVersion")?,
        None => "v1".to_string(),
    };
    let kind = v.non_empty(&k.kind, "kubernetes.kind")?;
    let name = match &k.name {
        Some(n) => Some(v.non_empty(n, "kubernetes.name")?),
        None => None,
    };
    if name.is_some() == k.same_count_as_source {
        v.error(
            spec.at(),
            "a kubernetes probe checks exactly one thing: `name` (that object exists) or `sameCountAsSource: true`",
        );
        return None;
    }
    Some(Check::Kubernetes { api_version, kind, name, same_count_as_source: k.same_count_as_source })
}

/// Validates one `probes` entry; `kubernetes` says whether the drill verifies a namespace of
/// its own, where `kubernetes` probes look and `$(SCRATCH_NAMESPACE)` points.
pub fn validate_in(v: &mut Validator, spec: &Loc<Spec>, kubernetes_allowed: bool) -> Option<Probe> {
    let s = &spec.value;
    let name = v.non_empty(&s.name, "a probe's name");
    let check = match (&s.http, &s.tcp, &s.kubernetes) {
        (None, None, Some(k)) if kubernetes_allowed => kubernetes(v, k),
        (None, None, Some(k)) => {
            v.error(
                k.at(),
                "a kubernetes probe checks the namespace a drill restores into, and this drill has none: use `http` or `tcp`",
            );
            None
        }
        (Some(h), None, None) => {
            let text = v.expand(&h.value.url)?;
            // The placeholder is no host name: check (and show) the URL with a stand-in for it.
            const STAND_IN: &str = "firedrill-scratch-namespace-stand-in";
            let sample = text.replace(NAMESPACE_PLACEHOLDER, STAND_IN);
            let parsed = url::Url::parse(&sample).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
            let Some(parsed) = parsed else {
                v.error(
                    h.value.url.at(),
                    "a probe's url is an http:// or https:// URL, e.g. `https://shop.example/healthz`",
                );
                return None;
            };
            let mut headers = Vec::new();
            for (k, val) in &h.value.headers {
                let at = Loc { value: val.clone(), line: h.line, column: h.column };
                headers.push((k.clone(), v.expand(&at)?));
            }
            let shown = redact(&parsed).replace(STAND_IN, NAMESPACE_PLACEHOLDER);
            Some(Check::Http {
                url: shown,
                full_url: text,
                expect_status: h.value.expect_status,
                body_contains: h.value.body_contains.clone(),
                header_names: headers.iter().map(|(k, _)| k.clone()).collect(),
                headers,
            })
        }
        (None, Some(t), None) => {
            let address = v.expand(&t.value.address)?;
            if address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                v.error(t.value.address.at(), format!("`{address}` is not `host:port`"));
                return None;
            }
            Some(Check::Tcp { address })
        }
        _ => {
            let kinds = if kubernetes_allowed {
                "`http` (a GET), `tcp` (a connect) and `kubernetes` (objects)"
            } else {
                "`http` (a GET) and `tcp` (a connect)"
            };
            v.error(spec.at(), format!("a probe is exactly one of {kinds}"));
            None
        }
    };
    let timeout = s.timeout.as_ref().map_or(Some(DEFAULT_TIMEOUT), |t| v.duration(t, "a probe's timeout"));
    let interval = s.interval.as_ref().map_or(Some(DEFAULT_INTERVAL), |t| v.duration(t, "a probe's interval"));
    Some(Probe {
        name: name?,
        check: check?,
        timeout: timeout?,
        interval: interval?,
        retries: s.retries.unwrap_or(DEFAULT_RETRIES),
    })
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the probe's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection or request failed.
    #[error("{0}")]
    Unreachable(String),
    /// An answer with the wrong status.
    #[error("status {got}, expected {expected}")]
    Status { got: u16, expected: String },
    /// The body lacks the expected text.
    #[error("the body does not contain {0:?}")]
    Body(String),
    /// The object a kubernetes probe names does not exist.
    #[error("{0} does not exist")]
    Missing(String),
    /// A namespace holds another number of objects than the source.
    #[error("{kind}: {got} in {namespace}, {expected} in the source namespace {source_namespace}")]
    Count { kind: String, namespace: String, got: usize, source_namespace: String, expected: usize },
    /// A kubernetes probe without a namespace to look in, or an API error.
    #[error("{0}")]
    Kubernetes(String),
}

/// Where `kubernetes` probes look: the namespace verified, and the source it is compared with.
#[derive(Clone)]
pub struct Namespaces {
    pub client: kube::Client,
    pub namespace: String,
    pub source: String,
}

/// Checks one probe, retrying right away as configured. Returns the attempts made and the last
/// error.
pub async fn check(probe: &Probe, http: &reqwest::Client) -> (u32, Result<(), ProbeError>) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = timed(probe, http, None).await;
        if result.is_ok() || attempts > probe.retries {
            return (attempts, result);
        }
    }
}

async fn timed(probe: &Probe, http: &reqwest::Client, ns: Option<&Namespaces>) -> Result<(), ProbeError> {
    match tokio::time::timeout(probe.timeout, attempt(probe, http, ns)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(probe.timeout)),
    }
}

/// The result of one probe verifying a recovery, for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub name: String,
    pub passed: bool,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Verifies a recovery with one probe: up to `1 + retries` attempts, `interval` apart (a
/// recovered service may need a moment), each within `timeout`.
pub async fn verify(probe: &Probe, http: &reqwest::Client, ns: Option<&Namespaces>, clock: Clock) -> Verified {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = timed(probe, http, ns).await;
        if result.is_ok() || attempts > probe.retries {
            return Verified {
                name: probe.name.clone(),
                passed: result.is_ok(),
                attempts,
                error: result.err().map(|e| e.to_string()),
            };
        }
        clock.sleep(probe.interval).await;
    }
}

/// How many objects of a kind a namespace holds, or whether one named object exists.
async fn kubernetes_attempt(
    ns: &Namespaces,
    api_version: &str,
    kind: &str,
    name: Option<&str>,
) -> Result<(), ProbeError> {
    use kube::api::{Api, DynamicObject, ListParams};
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = kube::discovery::pinned_kind(&ns.client, &gvk)
        .await
        .map_err(|e| ProbeError::Kubernetes(format!("the cluster does not serve {api_version} {kind}: {e}")))?;
    let api = |n: &str| Api::<DynamicObject>::namespaced_with(ns.client.clone(), n, &resource);
    let api_error = |e: kube::Error| ProbeError::Kubernetes(format!("cannot read {kind}: {e}"));
    if let Some(name) = name {
        return match api(&ns.namespace).get_metadata_opt(name).await.map_err(api_error)? {
            Some(_) => Ok(()),
            None => Err(ProbeError::Missing(format!("{kind} {}/{name}", ns.namespace))),
        };
    }
    // firedrill's own objects (the canary, the scratch namespace's quota) are not the application's:
    // the canary is rewritten in the source after every backup, so counting it would never match.
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by!=firedrill");
    let got = api(&ns.namespace).list_metadata(&lp).await.map_err(api_error)?.items.len();
    let expected = api(&ns.source).list_metadata(&lp).await.map_err(api_error)?.items.len();
    if got == expected {
        Ok(())
    } else {
        Err(ProbeError::Count {
            kind: kind.to_string(),
            namespace: ns.namespace.clone(),
            got,
            source_namespace: ns.source.clone(),
            expected,
        })
    }
}

async fn attempt(probe: &Probe, http: &reqwest::Client, ns: Option<&Namespaces>) -> Result<(), ProbeError> {
    match &probe.check {
        Check::Kubernetes { api_version, kind, name, .. } => match ns {
            Some(ns) => kubernetes_attempt(ns, api_version, kind, name.as_deref()).await,
            None => Err(ProbeError::Kubernetes("a kubernetes probe needs a namespace to look in".into())),
        },
        Check::Tcp { address } => {
            tokio::net::TcpStream::connect(address).await.map_err(|e| ProbeError::Unreachable(e.to_string()))?;
            Ok(())
        }
        Check::Http { full_url, expect_status, body_contains, headers, .. } => {
            let mut req = http.get(full_url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            // reqwest's error text can include the URL: only its kind is reported.
            let unreachable = |e: reqwest::Error| {
                ProbeError::Unreachable(if e.is_connect() {
                    "connection failed".into()
                } else {
                    "request failed".into()
                })
            };
            let resp = req.send().await.map_err(unreachable)?;
            let got = resp.status().as_u16();
            let ok = match expect_status {
                Some(want) => got == *want,
                None => resp.status().is_success(),
            };
            if !ok {
                let expected = expect_status.map_or("2xx".to_string(), |s| s.to_string());
                return Err(ProbeError::Status { got, expected });
            }
            if let Some(want) = body_contains {
                let body = resp.text().await.map_err(unreachable)?;
                if !body.contains(want.as_str()) {
                    return Err(ProbeError::Body(want.clone()));
                }
            }
            Ok(())
        }
    }
}

/// The tally of one probe over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub name: String,
    pub checks: u32,
    pub attempts: u32,
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Tally {
    fn add(&mut self, at: Timestamp, attempts: u32, result: &Result<(), ProbeError>) {
        self.checks += 1;
        self.attempts += attempts;
        if let Err(e) = result {
            self.failures += 1;
            self.first_failure.get_or_insert(at);
            self.last_error = Some(e.to_string());
        }
    }
}

/// A client for HTTP probes.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap_or_default()
}

/// Runs every probe once; one tally each.
pub async fn run_once(probes: &[Probe], clock: Clock) -> Vec<Tally> {
    let http = http_client();
    let checks = probes.iter().map(|p| {
        let http = http.clone();
        async move {
            let mut t = Tally { name: p.name.clone(), ..Tally::default() };
            let (attempts, result) = check(p, &http).await;
            t.add(clock.now(), attempts, &result);
            t
        }
    });
    futures::future::join_all(checks).await
}

/// Probes running in the background, each at its interval, until [`Monitor::stop`].
pub struct Monitor {
    stop: CancellationToken,
    tallies: Arc<Mutex<Vec<Tally>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Monitor {
    /// Starts one task per probe; the first check runs at once.
    pub fn start(probes: &[Probe], clock: Clock) -> Self {
        let stop = CancellationToken::new();
        let tallies: Vec<Tally> = probes.iter().map(|p| Tally { name: p.name.clone(), ..Tally::default() }).collect();
        let tallies = Arc::new(Mutex::new(tallies));
        let http = http_client();
        let tasks = probes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (p, stop, tallies, http) = (p.clone(), stop.clone(), tallies.clone(), http.clone());
                tokio::spawn(async move {
                    loop {
                        let at = clock.now();
                        let checked = tokio::select! {
                            _ = stop.cancelled() => return,
                            c = check(&p, &http) => c,
                        };
                        if let Some(t) = tallies.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
                            t.add(at, checked.0, &checked.1);
                        }
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = clock.sleep(p.interval) => {}
                        }
                    }
                })
            })
            .collect();
        Self { stop, tallies, tasks }
    }

    /// The tallies so far.
    pub fn tallies(&self) -> Vec<Tally> {
        self.tallies.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops every probe (a check under way is dropped) and returns the tallies.
    pub async fn stop(mut self) -> Vec<Tally> {
        self.stop.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        self.tallies()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(address: String) -> Probe {
        Probe {
            name: "t".into(),
            check: Check::Tcp { address },
            timeout: Duration::from_millis(500),
            interval: Duration::from_millis(10),
            retries: 2,
        }
    }

    #[tokio::test]
    async fn a_tcp_probe_passes_on_a_listener_and_fails_with_its_retries_without() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let http = http_client();
        assert_eq!(check(&tcp(addr.clone()), &http).await, (1, Ok(())));
        drop(l);
        let (attempts, result) = check(&tcp(addr), &http).await;
        assert_eq!(attempts, 3, "one attempt and two retries");
        assert!(matches!(result, Err(ProbeError::Unreachable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_http_probe_checks_status_and_body_and_never_reports_credentials() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "all good" }));
            axum::serve(l, app).await.unwrap();
        });
        let url = url::Url::parse(&format!("http://user:secret@127.0.0.1:{port}/healthz")).unwrap();
        let probe = |expect_status, body: &str| Probe {
            name: "h".into(),
            check: Check::Http {
                url: redact(&url),
                full_url: url.to_string(),
                expect_status,
                body_contains: Some(body.into()),
                header_names: vec!["Authorization".into()],
                headers: vec![("Authorization".into(), "Bearer hunter2".into())],
            },
            timeout: Duration::from_secs(2),
            interval: Duration::from_millis(10),
            retries: 0,
        };
        let http = http_client();
        assert_eq!(check(&probe(None, "good"), &http).await.1, Ok(()));
        assert_eq!(check(&probe(Some(200), "bad"), &http).await.1, Err(ProbeError::Body("bad".into())));
        assert_eq!(
            check(&probe(Some(204), "good"), &http).await.1,
            Err(ProbeError::Status { got: 200, expected: "204".into() })
        );
        let shown = serde_json::to_string(&probe(None, "good")).unwrap();
        assert!(!shown.contains("secret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Authorization"), "header names are kept: {shown}");
    }

    #[tokio::test]
    async fn a_monitor_tallies_failures_until_stopped() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let mut p = tcp(addr);
        p.retries = 0;
        let m = Monitor::start(&[p], Clock::system());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = m.stop().await;
        assert!(t[0].checks >= 2 && t[0].failures == t[0].checks, "{t:?}");
        assert!(t[0].first_failure.is_some() && t[0].last_error.is_some());
    }
}
