//! API errors as the real server writes them: `Status` objects with the exact `reason` strings
//! and messages clients match on (kube-rs compares `reason`; people read `message`).

use serde_json::{Value, json};

use super::registry::ResourceType;

/// An API error: the HTTP code and the `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `Conflict`, ...; empty for the eviction "multiple PDBs" 500.
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
    /// Sent as `Retry-After` and `details.retryAfterSeconds` when set.
    pub retry_after: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), message: message.into(), details: None, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        // `reason` is `omitempty` in Go: the eviction "more than one PDB" 500 has none at all.
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            d["retryAfterSeconds"] = json!(secs);
        }
        if let Some(d) = details {
            s["details"] = d;
        }
        s
    }

    pub fn is_not_found(&self) -> bool {
        self.reason == "NotFound"
    }

    pub fn is_conflict(&self) -> bool {
        self.reason == "Conflict"
    }
}

fn details(t: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": t.plural});
    if !t.group.is_empty() {
        d["group"] = json!(t.group);
    }
    d
}

/// The 422 of a PUT without `metadata.resourceVersion` on a type that forbids unconditional
/// updates (every custom resource). The registry builds it with the *resource* where the kind
/// belongs (`GroupKind{Group, Kind: Resource}`, a TODO in `registry/generic/registry/store.go`), so
/// it reads `backups.velero.io "b1" is invalid: …` with `details.kind: backups`.
pub fn resource_version_required(t: &ResourceType, name: &str) -> ApiError {
    let detail = "Invalid value: 0x0: must be specified for an update";
    let mut d = details(t, name);
    d["causes"] = json!([{"reason": "FieldValueInvalid", "message": detail, "field": "metadata.resourceVersion"}]);
    ApiError::new(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: metadata.resourceVersion: {detail}", t.group_resource()),
    )
    .with_details(d)
}

/// `pods "web-1" not found`
pub fn not_found(t: &ResourceType, name: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", t.group_resource()))
        .with_details(details(t, name))
}

/// A namespace that does not exist, for creates into it.
pub fn namespace_not_found(ns: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        .with_details(json!({"name": ns, "kind": "namespaces"}))
}

pub fn already_exists(t: &ResourceType, name: &str) -> ApiError {
    ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", t.group_resource()))
        .with_details(details(t, name))
}

/// The optimistic-lock conflict.
pub fn conflict(t: &ResourceType, name: &str) -> ApiError {
    conflict_with(
        t,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

pub fn conflict_with(t: &ResourceType, name: &str, detail: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on {} \"{name}\": {detail}", t.group_resource()),
    )
    .with_details(details(t, name))
}

/// 422 with one field error (`causes[0]`).
pub fn invalid(t: &ResourceType, name: &str, field: &str, cause: &str, detail: &str) -> ApiError {
    let mut d = json!({"name": name, "kind": t.kind, "causes": [{"reason": cause, "message": detail, "field": field}]});
    if !t.group.is_empty() {
        d["group"] = json!(t.group);
    }
    ApiError::new(422, "Invalid", format!("{} \"{name}\" is invalid: {field}: {detail}", t.group_kind()))
        .with_details(d)
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

pub fn forbidden(t: &ResourceType, name: &str, why: &str) -> ApiError {
    ApiError::new(403, "Forbidden", format!("{} \"{name}\" is forbidden: {why}", t.group_resource()))
        .with_details(details(t, name))
}

/// A create into a namespace that is being deleted.
pub fn namespace_terminating(t: &ResourceType, name: &str, ns: &str) -> ApiError {
    let mut d = details(t, name);
    d["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
    ApiError::new(
        403,
        "Forbidden",
        format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            t.group_resource()
        ),
    )
    .with_details(d)
}

pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
    ApiError::new(405, "MethodNotAllowed", message)
}

pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
    )
}

/// The too-old-resourceVersion error of watches and continue tokens.
pub fn expired(message: impl Into<String>) -> ApiError {
    ApiError::new(410, "Expired", message)
}

pub fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
}

/// The path does not name anything served. The real body has an empty `details` object (the
/// `NotFound` of an empty group-resource and name).
pub fn path_not_found() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
}

/// A `Status{status: Success}` body for deletes that return no object.
pub fn success(t: &ResourceType, name: &str, uid: &str) -> Value {
    let mut d = details(t, name);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::registry::Registry;

    #[test]
    fn statuses_carry_the_exact_reasons_and_messages() {
        let r = Registry::new();
        let deploy = r.find("apps", "v1", "deployments").unwrap();
        let s = not_found(&deploy, "web").status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            (s["reason"].as_str(), s["code"].as_u64(), s["status"].as_str()),
            (Some("NotFound"), Some(404), Some("Failure"))
        );
        assert_eq!(s["details"], json!({"name": "web", "kind": "deployments", "group": "apps"}));
        let c = conflict(&deploy, "web").status();
        assert_eq!(
            c["message"],
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let pods = r.find("", "v1", "pods").unwrap();
        let t = namespace_terminating(&pods, "p", "scratch").status();
        assert_eq!(t["details"]["causes"][0]["reason"], "NamespaceTerminating");
        assert!(!t["details"].as_object().unwrap().contains_key("group"));
        let tm = ApiError::new(429, "TooManyRequests", "x").retry_after(10).status();
        assert_eq!(tm["details"]["retryAfterSeconds"], 10);
    }
}
