//! Probes: small checks that a service still answers (an HTTP(S) GET, a TCP connect, a
//! Prometheus query within a threshold: [`prometheus`]) or that Kubernetes objects are there
//! (an object exists or reports a condition, a namespace holds as many objects of a kind as
//! another: [`kubernetes`]; a command in a Job succeeds: [`job`]), run once, continuously while
//! a drill disturbs the cluster, or as verification after a recovery ([`verify`]).
//!
//! A drill that verifies a namespace it created (velero-restore's scratch namespace) may use
//! `$(SCRATCH_NAMESPACE)` in HTTP and Prometheus URLs, Prometheus queries, TCP addresses and
//! job commands; [`Probe::in_namespace`] fills it in. (`${...}` is taken: it names environment
//! variables when the file is loaded.) `kubernetes` and `job` probes need that namespace.
//!
//! This module owns the `probes` entries of drill files, their validation, one check (with
//! timeout and retries) and a [`Monitor`] that repeats the checks in the background and tallies
//! them. It records nothing itself and never returns a header value or URL credentials in
//! anything it reports: callers put its tallies into records.

pub mod job;
pub mod kubernetes;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Timestamp};
use crate::spec::raw::{DurationText, EnvText};
use crate::spec::{Loc, Validator};
pub use job::JobSpec;
pub use kubernetes::{Condition, KubernetesSpec};
pub use prometheus::{Bound, PrometheusSpec};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_RETRIES: u32 = 1;

/// The placeholder for the namespace a drill verifies, in URLs and addresses.
pub const NAMESPACE_PLACEHOLDER: &str = "$(SCRATCH_NAMESPACE)";

/// One probe: exactly one of `http`, `tcp`, `prometheus`, `kubernetes` and `job`.
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
    /// A PromQL instant query whose value must lie within a threshold.
    #[serde(default)]
    pub prometheus: Option<Loc<PrometheusSpec>>,
    /// A command in a short-lived Job in the namespace the drill verifies, which must exit 0
    /// (only for drills that restore into a namespace: velero-restore).
    #[serde(default)]
    pub job: Option<Loc<JobSpec>>,
    /// How long one attempt may take (default `2s`; `4m` for a `job` probe).
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

/// What a probe checks, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
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
        #[serde(skip_serializing_if = "Option::is_none", flatten)]
        condition: Option<Condition>,
        same_count_as_source: bool,
    },
    Job {
        image: String,
        /// The drill file's own text.
        command: Vec<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pod_annotations: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        service_account_name: Option<String>,
    },
    Prometheus {
        /// The base URL without any `user:password@`.
        url: String,
        #[serde(skip)]
        full_url: String,
        query: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        at_least: Option<Bound>,
        #[serde(skip_serializing_if = "Option::is_none")]
        at_most: Option<Bound>,
        /// Header names only: the values may be secrets.
        header_names: Vec<String>,
        #[serde(skip)]
        headers: Vec<(String, String)>,
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
    /// The probe with [`NAMESPACE_PLACEHOLDER`] replaced by `namespace` in its URL, address,
    /// query or command.
    pub fn in_namespace(&self, namespace: &str) -> Probe {
        let fill = |text: &mut String| *text = text.replace(NAMESPACE_PLACEHOLDER, namespace);
        let mut p = self.clone();
        match &mut p.check {
            Check::Http { url, full_url, .. } => {
                fill(url);
                fill(full_url);
            }
            Check::Prometheus { url, full_url, query, .. } => {
                fill(url);
                fill(full_url);
                fill(query);
            }
            Check::Tcp { address } => fill(address),
            Check::Job { command, .. } => command.iter_mut().for_each(fill),
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

/// An `http://` or `https://` URL, which may hold [`NAMESPACE_PLACEHOLDER`]: the URL as
/// shown (without credentials) and as requested.
fn http_url(v: &mut Validator, text: &Loc<EnvText>, what: &str, example: &str) -> Option<(String, String)> {
    let full = v.expand(text)?;
    // The placeholder is no host name: check (and show) the URL with a stand-in for it.
    const STAND_IN: &str = "firedrill-scratch-namespace-stand-in";
    let sample = full.replace(NAMESPACE_PLACEHOLDER, STAND_IN);
    let parsed = url::Url::parse(&sample).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(parsed) = parsed else {
        v.error(text.at(), format!("{what} is an http:// or https:// URL, e.g. `{example}`"));
        return None;
    };
    Some((redact(&parsed).replace(STAND_IN, NAMESPACE_PLACEHOLDER), full))
}

/// Header names and values with the environment filled in; errors point at the probe's block.
fn header_values<T>(
    v: &mut Validator,
    block: &Loc<T>,
    headers: &BTreeMap<String, EnvText>,
) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, val) in headers {
        let at = Loc { value: val.clone(), line: block.line, column: block.column };
        out.push((k.clone(), v.expand(&at)?));
    }
    Some(out)
}

/// Validates one `probes` entry; `own_namespace` says whether the drill verifies a namespace of
/// its own, where `kubernetes` probes look, `job` probes run and `$(SCRATCH_NAMESPACE)` points.
pub fn validate_in(v: &mut Validator, spec: &Loc<Spec>, own_namespace: bool) -> Option<Probe> {
    let s = &spec.value;
    let name = v.non_empty(&s.name, "a probe's name");
    let given = [s.http.is_some(), s.tcp.is_some(), s.prometheus.is_some(), s.kubernetes.is_some(), s.job.is_some()];
    let check = if given.iter().filter(|g| **g).count() != 1 {
        let kinds = if own_namespace {
            "`http` (a GET), `tcp` (a connect), `prometheus` (a query), `kubernetes` (objects) and `job` (a command)"
        } else {
            "`http` (a GET), `tcp` (a connect) and `prometheus` (a query)"
        };
        v.error(spec.at(), format!("a probe is exactly one of {kinds}"));
        None
    } else if let Some(h) = &s.http {
        http(v, h)
    } else if let Some(t) = &s.tcp {
        let address = v.expand(&t.value.address)?;
        if address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            v.error(t.value.address.at(), format!("`{address}` is not `host:port`"));
            return None;
        }
        Some(Check::Tcp { address })
    } else if let Some(p) = &s.prometheus {
        prometheus::validate(v, p)
    } else if !own_namespace {
        let (at, kind, what) = match &s.job {
            Some(j) => (j.at(), "job", "runs in the namespace a drill restores into"),
            None => (
                s.kubernetes.as_ref().map_or(spec.at(), Loc::at),
                "kubernetes",
                "checks the namespace a drill restores into",
            ),
        };
        v.error(at, format!("a {kind} probe {what}, and this drill has none: use `http`, `tcp` or `prometheus`"));
        None
    } else if let Some(k) = &s.kubernetes {
        kubernetes::validate(v, k)
    } else {
        s.job.as_ref().and_then(|j| job::validate(v, j))
    };
    let default_timeout = if s.job.is_some() { job::DEFAULT_TIMEOUT } else { DEFAULT_TIMEOUT };
    let timeout = s.timeout.as_ref().map_or(Some(default_timeout), |t| v.duration(t, "a probe's timeout"));
    let interval = s.interval.as_ref().map_or(Some(DEFAULT_INTERVAL), |t| v.duration(t, "a probe's interval"));
    Some(Probe {
        name: name?,
        check: check?,
        timeout: timeout?,
        interval: interval?,
        retries: s.retries.unwrap_or(DEFAULT_RETRIES),
    })
}

fn http(v: &mut Validator, h: &Loc<HttpSpec>) -> Option<Check> {
    let url = http_url(v, &h.value.url, "a probe's url", "https://shop.example/healthz");
    let headers = header_values(v, h, &h.value.headers)?;
    let (url, full_url) = url?;
    Some(Check::Http {
        url,
        full_url,
        expect_status: h.value.expect_status,
        body_contains: h.value.body_contains.clone(),
        header_names: headers.iter().map(|(k, _)| k.clone()).collect(),
        headers,
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
    /// A named object lacks a condition, or the condition has another status.
    #[error("{object}{}", condition_text(.condition, .expected, .got.as_deref()))]
    Condition { object: String, condition: String, expected: String, got: Option<String> },
    /// A job probe's command exited with a code other than 0.
    #[error("the command exited with code {code} ({job})")]
    Exit { job: String, code: i32 },
    /// A Prometheus query's value outside its threshold.
    #[error("the query returned {value}, expected {expected}")]
    Threshold { value: String, expected: String },
    /// Prometheus answered with an error, or with no single value to compare.
    #[error("Prometheus: {0}")]
    Prometheus(String),
    /// A namespace holds another number of objects than the source.
    #[error("{kind}: {got} in {namespace}, {expected} in the source namespace {source_namespace}")]
    Count { kind: String, namespace: String, got: usize, source_namespace: String, expected: usize },
    /// A kubernetes or job probe without a namespace, a Job that failed without an exit code,
    /// or an API error.
    #[error("{0}")]
    Kubernetes(String),
}

fn condition_text(condition: &str, expected: &str, got: Option<&str>) -> String {
    match got {
        Some(got) => format!(": condition {condition} is {got}, expected {expected}"),
        None => format!(" has no condition {condition} (expected {expected})"),
    }
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

/// reqwest's error text can include the URL (and its credentials): only its kind is reported.
fn request_error(e: reqwest::Error) -> ProbeError {
    ProbeError::Unreachable(if e.is_connect() { "connection failed".into() } else { "request failed".into() })
}

async fn attempt(probe: &Probe, http: &reqwest::Client, ns: Option<&Namespaces>) -> Result<(), ProbeError> {
    match &probe.check {
        Check::Kubernetes { api_version, kind, name, condition, .. } => match ns {
            Some(ns) => kubernetes::attempt(ns, api_version, kind, name.as_deref(), condition.as_ref()).await,
            None => Err(ProbeError::Kubernetes("a kubernetes probe needs a namespace to look in".into())),
        },
        Check::Job { image, command, pod_annotations, service_account_name } => match ns {
            Some(ns) => {
                let run = job::Run {
                    probe: &probe.name,
                    image,
                    command,
                    pod_annotations,
                    service_account_name: service_account_name.as_deref(),
                    timeout: probe.timeout,
                };
                job::attempt(ns, &run).await
            }
            None => Err(ProbeError::Kubernetes("a job probe needs a namespace to run in".into())),
        },
        Check::Prometheus { full_url, query, headers, at_least, at_most, .. } => {
            prometheus::attempt(http, full_url, query, headers, *at_least, *at_most).await
        }
        Check::Tcp { address } => {
            tokio::net::TcpStream::connect(address).await.map_err(|e| ProbeError::Unreachable(e.to_string()))?;
            Ok(())
        }
        Check::Http { full_url, expect_status, body_contains, headers, .. } => {
            let mut req = http.get(full_url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.map_err(request_error)?;
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
                let body = resp.text().await.map_err(request_error)?;
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

/// Validates one probe written as YAML, for tests: the probe, or the errors as
/// `line:column: message`.
#[cfg(test)]
fn validated(yaml: &str, own_namespace: bool) -> Result<Probe, Vec<String>> {
    let spec: Loc<Spec> = serde_saphyr::from_str(yaml).expect("a probe");
    let mut v = Validator::new(std::path::Path::new("p.yaml"));
    match validate_in(&mut v, &spec, own_namespace) {
        Some(p) if v.is_clean() => Ok(p),
        _ => Err(v.into_errors().iter().map(|e| format!("{}:{}: {}", e.line, e.column, e.message)).collect()),
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
