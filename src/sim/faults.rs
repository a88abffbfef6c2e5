//! Fault injection: latency and errors on chosen verbs and resources, stalled controllers, watches
//! dropped mid-stream, Velero restores that end `PartiallyFailed`. Set from the simulator's
//! config file or at run time through `PUT /firedrill/v1/faults`.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::http::Method;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::status::ApiError;

/// One injection rule: requests that match get `latencyMs` of delay and, with probability
/// `errorRate`, the error `errorCode`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`; any when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// A resource plural (`pods`, `restores`), or `pods/eviction`; any when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default)]
    pub latency_ms: u64,
    /// 0.0 to 1.0.
    #[serde(default)]
    pub error_rate: f64,
    /// 500, 503 or 429; 500 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    /// Sent as `Retry-After` with the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// Every fault the simulator injects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Controllers that do nothing (`deployment`, `replicaset`, `statefulset`, `daemonset`, `job`,
    /// `scheduler`, `kubelet`, `disruption`, `namespace`, `garbagecollector`, `nodelifecycle`,
    /// `velero`, `certmanager`).
    #[serde(default)]
    pub stalled_controllers: Vec<String>,
    /// End watch streams of these resources after this many events (a dropped connection).
    #[serde(default)]
    pub drop_watches_after: BTreeMap<String, usize>,
    /// Velero restores end `PartiallyFailed` with one error per restored namespace.
    #[serde(default)]
    pub partially_fail_restores: bool,
    /// Issuers whose certificates cannot be issued (`namespace/name`, or `name` for a ClusterIssuer).
    #[serde(default)]
    pub broken_issuers: Vec<String>,
}

/// The live fault configuration.
#[derive(Debug, Default)]
pub struct Faults {
    config: RwLock<FaultConfig>,
}

/// The API verb of a request.
pub fn verb(method: &Method, query: &std::collections::HashMap<String, String>, has_name: bool) -> &'static str {
    match *method {
        Method::GET if query.get("watch").is_some_and(|v| v == "true" || v == "1") => "watch",
        Method::GET if has_name => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    }
}

/// The resource (`pods`, `pods/eviction`) and whether an object is named, from a request path.
fn resource_of(path: &str) -> Option<(String, bool)> {
    let segs: Vec<&str> = path.trim_end_matches('?').split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _, plural, tail @ ..] => [&[*plural][..], tail].concat(),
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [plural] => Some((plural.to_string(), false)),
        [plural, _] => Some((plural.to_string(), true)),
        [plural, _, sub] => Some((format!("{plural}/{sub}"), true)),
        _ => None,
    }
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self { config: RwLock::new(config) }
    }

    pub fn get(&self) -> FaultConfig {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, config: FaultConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Applies the rules to a request: sleeps for their latency, and returns the error to send
    /// instead of serving it, if one fires.
    pub async fn before(
        &self,
        method: &Method,
        path: &str,
        query: &std::collections::HashMap<String, String>,
    ) -> Option<ApiError> {
        let (resource, named) = resource_of(path)?;
        let verb = verb(method, query, named);
        let matching: Vec<Rule> = self
            .get()
            .rules
            .into_iter()
            .filter(|r| r.verb.as_deref().is_none_or(|v| v == verb))
            .filter(|r| r.resource.as_deref().is_none_or(|x| x == resource))
            .collect();
        let latency: u64 = matching.iter().map(|r| r.latency_ms).max().unwrap_or(0);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut rng = rand::rng();
        let fired = matching.iter().find(|r| r.error_rate > 0.0 && rng.random_bool(r.error_rate.clamp(0.0, 1.0)))?;
        let code = fired.error_code.unwrap_or(500);
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later".to_string(),
            ),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_string()),
            504 => ("Timeout", "Timeout: the server was unable to return a response in the time allotted".to_string()),
            _ => ("InternalError", format!("Internal error occurred: injected fault on {verb} {resource}")),
        };
        let mut e = ApiError::new(code, reason, message);
        if let Some(s) = fired.retry_after_seconds {
            e = e.retry_after(s);
        }
        Some(e)
    }

    pub fn watch_drop_after(&self, resource: &str) -> Option<usize> {
        self.get().drop_watches_after.get(resource).copied()
    }

    pub fn stalled(&self, controller: &str) -> bool {
        self.get().stalled_controllers.iter().any(|c| c == controller)
    }

    pub fn partially_fail_restores(&self) -> bool {
        self.get().partially_fail_restores
    }

    pub fn issuer_broken(&self, key: &str) -> bool {
        self.get().broken_issuers.iter().any(|i| i == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_fire_on_their_verb_and_resource_only() {
        let f = Faults::new(FaultConfig {
            rules: vec![Rule {
                verb: Some("create".into()),
                resource: Some("pods/eviction".into()),
                error_rate: 1.0,
                error_code: Some(429),
                retry_after_seconds: Some(3),
                ..Rule::default()
            }],
            ..FaultConfig::default()
        });
        let q = std::collections::HashMap::new();
        let e = f.before(&Method::POST, "/api/v1/namespaces/a/pods/p/eviction", &q).await.unwrap();
        assert_eq!((e.code, e.reason.as_str(), e.retry_after), (429, "TooManyRequests", Some(3)));
        assert!(f.before(&Method::POST, "/api/v1/namespaces/a/pods", &q).await.is_none());
        assert!(f.before(&Method::GET, "/api/v1/namespaces/a/pods/p", &q).await.is_none());
        assert!(f.before(&Method::GET, "/version", &q).await.is_none());
    }

    #[test]
    fn verbs_and_resources_are_read_from_requests() {
        let mut q = std::collections::HashMap::new();
        assert_eq!(
            resource_of("/apis/apps/v1/namespaces/a/deployments/web/scale"),
            Some(("deployments/scale".into(), true))
        );
        assert_eq!(resource_of("/api/v1/pods?"), Some(("pods".into(), false)));
        assert_eq!(verb(&Method::GET, &q, false), "list");
        q.insert("watch".into(), "1".into());
        assert_eq!(verb(&Method::GET, &q, false), "watch");
    }
}
