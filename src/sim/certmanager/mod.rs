//! The cert-manager stand-in: the Issuer/ClusterIssuer and Certificate controllers of cert-manager
//! v1.1x, for the `selfSigned` and `ca` issuer types, over the simulator's store and its clock.
//!
//! Owns: issuer readiness ([`issuers`]), the policy chains that decide when a Certificate needs
//! issuing and whether it is Ready ([`policies`]) and the spec comparisons they use ([`drift`]),
//! issuance into the Certificate's Secret ([`issuance`]), the CertificateRequests that record each
//! attempt ([`requests`]), and the controller that ties them together ([`certificates`]). X.509
//! work lives in [`pki`].
//! It must not read the wall clock for anything the cluster observes: validity, renewal and
//! backoff follow `state.store.clock`, so advancing it rehearses a renewal in milliseconds.

pub mod certificates;
pub mod drift;
pub mod issuance;
pub mod issuers;
pub mod pki;
pub mod policies;
pub mod requests;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::controllers::Controller;
use super::registry::ResourceType;
use super::server::SimState;

/// The API group of every cert-manager type.
pub const GROUP: &str = "cert-manager.io";

/// Where ClusterIssuers read their Secrets: cert-manager's `--cluster-resource-namespace`. The
/// binary defaults to `kube-system`, but the Helm chart (how nearly everyone installs it) passes
/// the namespace it is installed in, conventionally `cert-manager`; the simulator seeds it.
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// Storage keys ([`ResourceType::key`]) of the types the controllers watch.
pub const CERTIFICATES: &str = "cert-manager.io/certificates";
pub const CERTIFICATE_REQUESTS: &str = "cert-manager.io/certificaterequests";
pub const ISSUERS: &str = "cert-manager.io/issuers";
pub const CLUSTER_ISSUERS: &str = "cert-manager.io/clusterissuers";
pub const SECRETS: &str = "/secrets";

/// The controllers of the stand-in. Both are named `certmanager`, so `stalledControllers:
/// [certmanager]` stalls the whole of cert-manager, as scaling its Deployment to zero would.
pub fn controllers() -> Vec<Controller> {
    vec![issuers::controller(), certificates::controller()]
}

/// A cert-manager type by plural.
pub fn cm_type(state: &SimState, plural: &str) -> Arc<ResourceType> {
    state.store.registry.find(GROUP, "v1", plural).expect("cert-manager types are served")
}

pub fn secrets(state: &SimState) -> Arc<ResourceType> {
    state.store.registry.find("", "v1", "secrets").expect("secrets are served")
}

/// A timestamp as `metav1.Time` serialises it.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads a `metav1.Time`.
pub fn parse_stamp(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?).ok().map(|t| t.with_timezone(&Utc))
}

/// One status condition, as cert-manager writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn new(kind: &'static str, status: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { kind, status, reason: reason.to_string(), message: message.into() }
    }
}

/// Sets a condition in `status.conditions` the way cert-manager's `SetCertificateCondition` and
/// `SetIssuerCondition` do: replaced in place (so unchanged conditions keep their position and no
/// write happens), `lastTransitionTime` moved only when the status changes, `observedGeneration`
/// recorded when given (CertificateRequest conditions have none).
pub fn set_condition(status: &mut Value, c: &Condition, now: &str, generation: Option<i64>) {
    if !status.is_object() {
        *status = json!({});
    }
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let previous = conditions.iter().position(|x| x["type"] == c.kind);
    let since = match previous.map(|i| &conditions[i]) {
        Some(p) if p["status"] == c.status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut new = json!({"type": c.kind, "status": c.status, "lastTransitionTime": since});
    if !c.reason.is_empty() {
        new["reason"] = json!(c.reason);
    }
    if !c.message.is_empty() {
        new["message"] = json!(c.message);
    }
    if let Some(g) = generation {
        new["observedGeneration"] = json!(g);
    }
    match previous {
        Some(i) => conditions[i] = new,
        None => conditions.push(new),
    }
    status["conditions"] = json!(conditions);
}

/// Removes a condition by type.
pub fn remove_condition(status: &mut Value, kind: &str) {
    if let Some(cs) = status["conditions"].as_array_mut() {
        cs.retain(|c| c["type"] != kind);
    }
}

/// A condition of an object, by type.
pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    status_condition(&obj["status"], kind)
}

/// A condition of a `status`, by type.
pub fn status_condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

/// Whether an object has condition `kind` with status `True`.
pub fn is_true(obj: &Value, kind: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == "True")
}

/// A Certificate's `spec.issuerRef`, with cert-manager's defaults where it applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRef {
    pub name: String,
    /// `Issuer` when unset (`apiutil.IssuerKind`).
    pub kind: String,
    /// As written: the Secret annotation keeps an empty group empty.
    pub group: String,
}

impl IssuerRef {
    pub fn of(certificate: &Value) -> Self {
        let r = &certificate["spec"]["issuerRef"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let kind = text(&r["kind"]);
        Self {
            name: text(&r["name"]),
            kind: if kind.is_empty() { "Issuer".into() } else { kind },
            group: text(&r["group"]),
        }
    }

    /// Whether cert-manager itself serves this issuer (not an external issuer's group).
    pub fn builtin(&self) -> bool {
        self.group.is_empty() || self.group == GROUP
    }

    pub fn cluster(&self) -> bool {
        self.kind == "ClusterIssuer"
    }

    /// The issuer's name in `brokenIssuers`: `namespace/name`, or `name` for a ClusterIssuer.
    pub fn fault_key(&self, namespace: &str) -> String {
        if self.cluster() { self.name.clone() } else { format!("{namespace}/{}", self.name) }
    }

    /// Whether this reference names the issuer `name` of storage type `type_key` seen from `namespace`.
    pub fn names(&self, type_key: &str, issuer_namespace: &str, name: &str, certificate_namespace: &str) -> bool {
        self.builtin()
            && self.name == name
            && match type_key {
                CLUSTER_ISSUERS => self.cluster(),
                ISSUERS => self.kind == "Issuer" && issuer_namespace == certificate_namespace,
                _ => false,
            }
    }
}

/// The namespace an issuer reads its Secrets from.
pub fn resource_namespace(cluster: bool, issuer_namespace: &str) -> &str {
    if cluster { CLUSTER_RESOURCE_NAMESPACE } else { issuer_namespace }
}

/// A Secret's `data[key]`, decoded (empty when absent or not base64).
pub fn secret_bytes(secret: &Value, key: &str) -> Vec<u8> {
    use base64::Engine;
    secret["data"][key]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_place_and_transition_time_while_its_status_holds() {
        let mut s = json!({});
        set_condition(&mut s, &Condition::new("Ready", "False", "DoesNotExist", "x"), "t1", Some(1));
        set_condition(&mut s, &Condition::new("Issuing", "True", "DoesNotExist", "x"), "t1", Some(1));
        set_condition(&mut s, &Condition::new("Ready", "False", "MissingData", "y"), "t2", Some(2));
        let cs = s["conditions"].as_array().unwrap();
        assert_eq!(cs[0]["type"], "Ready", "replaced in place");
        assert_eq!((cs[0]["lastTransitionTime"].as_str(), cs[0]["observedGeneration"].as_i64()), (Some("t1"), Some(2)));
        set_condition(&mut s, &Condition::new("Ready", "True", "Ready", ""), "t3", None);
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "t3");
        assert!(s["conditions"][0].get("message").is_none() && s["conditions"][0].get("observedGeneration").is_none());
        remove_condition(&mut s, "Issuing");
        assert_eq!(s["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn issuer_refs_default_the_kind_and_name_issuers_by_scope() {
        let r = IssuerRef::of(&json!({"spec": {"issuerRef": {"name": "ca"}}}));
        assert_eq!((r.kind.as_str(), r.group.as_str(), r.fault_key("web")), ("Issuer", "", "web/ca".to_string()));
        assert!(r.names(ISSUERS, "web", "ca", "web") && !r.names(ISSUERS, "other", "ca", "web"));
        assert!(!r.names(CLUSTER_ISSUERS, "", "ca", "web"));
        let c = IssuerRef::of(&json!({"spec": {"issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}));
        assert!(c.names(CLUSTER_ISSUERS, "", "ca", "anywhere") && c.fault_key("web") == "ca");
        let external = IssuerRef::of(&json!({"spec": {"issuerRef": {"name": "x", "group": "example.com"}}}));
        assert!(!external.builtin() && !external.names(ISSUERS, "web", "x", "web"));
    }
}
