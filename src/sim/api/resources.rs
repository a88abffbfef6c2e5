//! Resource requests: get, list, watch, create, update, patch, delete, deletecollection, and the
//! `status`, `scale`, `eviction`, `binding`, `log` and `finalize` subresources.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::path::ResourcePath;
use super::watch::{self, WatchParams};
use super::{error, json, json_as};
use crate::sim::patch::{self, PatchType};
use crate::sim::registry::ResourceType;
use crate::sim::selector::{FieldSelector, LabelSelector};
use crate::sim::server::SimState;
use crate::sim::status::{self, ApiError};
use crate::sim::store::{DeleteOptions, Deleted, Part};
use crate::sim::table::{self, IncludeObject};

type Query = HashMap<String, String>;

fn truthy(q: &Query, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn dry_run(q: &Query) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

/// Parses a request body as JSON, or YAML when the content type says so.
fn body_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let parsed: Result<Value, String> = if ct.contains("yaml") {
        serde_saphyr::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| status::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

/// Built-in list items are written without `kind`/`apiVersion`, custom resources' with.
/// A stored object as an item of a list, serialized straight from the store without a copy:
/// built-in types' items carry no `kind` and `apiVersion` (the list says them once).
struct ListItem<'a> {
    object: &'a Value,
    bare: bool,
}

impl serde::Serialize for ListItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.object.as_object() {
            Some(m) if self.bare => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in m.iter().filter(|(k, _)| !matches!(k.as_str(), "kind" | "apiVersion")) {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            _ => self.object.serialize(s),
        }
    }
}

/// A list's body, in the field order the API server writes.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<ListItem<'a>>,
}

fn list_item(t: &ResourceType, o: &Value) -> Value {
    if !t.builtin {
        return o.clone();
    }
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(table::wants_table)
}

fn include_object(q: &Query) -> IncludeObject {
    match q.get("includeObject").map(String::as_str) {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

fn table_response(
    state: &SimState,
    t: &ResourceType,
    items: &[Arc<Value>],
    rv: &str,
    cont: Option<&str>,
    q: &Query,
) -> Response {
    let body = table::table(t, items, rv, cont, include_object(q), state.store.clock.now());
    json_as(StatusCode::OK, &body, "application/json;as=Table;v=v1;g=meta.k8s.io")
}

/// Handles one resource request.
pub async fn handle(
    state: &Arc<SimState>,
    method: &Method,
    p: ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let t = p.rtype.clone();
    if (t.namespaced && p.namespace.is_none() && p.name.is_some()) || (!t.namespaced && p.namespace.is_some()) {
        return error(&status::path_not_found());
    }
    let ns = p.namespace.clone().unwrap_or_default();
    if let (Some(name), Some(sub)) = (p.name.as_deref(), p.subresource.as_deref())
        && !has_subresource(&t, sub)
    {
        // A subresource the type does not have is not served: for a custom resource the CRD
        // handler answers the object's NotFound (Velero's Backup has no `/status`), for a
        // built-in type the path matches no route. Never 405.
        return error(&if t.builtin { status::path_not_found() } else { status::not_found(&t, name) });
    }
    let result = match (method.clone(), p.name.as_deref(), p.subresource.as_deref()) {
        (Method::GET, None, None) if truthy(q, "watch") => return watch_collection(state, &t, p.namespace.clone(), q),
        (Method::GET, None, None) => list(state, &t, p.namespace.as_deref(), q, headers),
        (Method::POST, None, None) => create(state, &t, &ns, q, headers, &body),
        (Method::DELETE, None, None) => delete_collection(state, &t, p.namespace.as_deref(), q, &body),
        (Method::GET, Some(name), None) => get(state, &t, &ns, name, q, headers),
        (Method::PUT, Some(name), None) => update(state, &t, &ns, name, q, headers, &body, Part::Main),
        (Method::PATCH, Some(name), None) => patch_object(state, &t, &ns, name, q, headers, &body, Part::Main),
        (Method::DELETE, Some(name), None) => delete(state, &t, &ns, name, q, &body),
        (Method::GET, Some(name), Some("status")) if t.status => get(state, &t, &ns, name, q, headers),
        (Method::PUT, Some(name), Some("status")) if t.status => {
            update(state, &t, &ns, name, q, headers, &body, Part::Status)
        }
        (Method::PATCH, Some(name), Some("status")) if t.status => {
            patch_object(state, &t, &ns, name, q, headers, &body, Part::Status)
        }
        (Method::PUT, Some(name), Some("finalize")) if t.key() == "/namespaces" => {
            update(state, &t, &ns, name, q, headers, &body, Part::Finalize)
        }
        (Method::GET, Some(name), Some("scale")) if t.scale => get_scale(state, &t, &ns, name),
        (Method::PUT | Method::PATCH, Some(name), Some("scale")) if t.scale => {
            set_scale(state, &t, &ns, name, method, headers, &body, q)
        }
        (Method::POST, Some(name), Some("eviction")) if t.key() == "/pods" => {
            crate::sim::eviction::evict(state, &ns, name, &body, dry_run(q)).await
        }
        (Method::POST, Some(name), Some("binding")) if t.key() == "/pods" => bind(state, &t, &ns, name, headers, &body),
        (Method::GET, Some(name), Some("log")) if t.key() == "/pods" => {
            return match state.store.get(&t, &ns, name) {
                Ok(pod) => log_response(&pod),
                Err(e) => error(&e),
            };
        }
        (m, _, _) => Err(status::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    };
    match result {
        Ok(r) => r,
        Err(e) => error(&e),
    }
}

/// Whether objects of type `t` have the subresource `sub`.
fn has_subresource(t: &ResourceType, sub: &str) -> bool {
    match sub {
        "status" => t.status,
        "scale" => t.scale,
        "eviction" | "binding" | "log" => t.key() == "/pods",
        "finalize" => t.key() == "/namespaces",
        _ => false,
    }
}

fn log_response(pod: &Value) -> Response {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let mut r =
        Response::new(Body::from(format!("firedrill simulator: pod {name} runs no container, so it has no log\n")));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn selectors(t: &ResourceType, q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), t)?;
    Ok((labels, fields))
}

fn get(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let obj = state.store.get(t, ns, name)?;
    if wants_table(headers) {
        let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
        return Ok(table_response(state, t, &[obj], &rv, None, q));
    }
    Ok(json(StatusCode::OK, &obj))
}

fn list(
    state: &SimState,
    t: &ResourceType,
    ns: Option<&str>,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if truthy(q, "sendInitialEvents") {
        return Err(status::invalid(
            t,
            "",
            "sendInitialEvents",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents is forbidden for list",
        ));
    }
    let (labels, fields) = selectors(t, q)?;
    let limit = match q.get("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| status::bad_request(format!("invalid limit: {l}")))?),
        None => None,
    };
    let page = state.store.list(t, ns, &labels, &fields, limit, q.get("continue").map(String::as_str))?;
    let rv = page.resource_version.to_string();
    if wants_table(headers) {
        return Ok(table_response(state, t, &page.items, &rv, page.continue_token.as_deref(), q));
    }
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(page.remaining.unwrap_or(0));
    }
    let items = page.items.iter().map(|o| ListItem { object: o, bare: t.builtin }).collect();
    let body = ListBody { kind: t.list_kind(), api_version: t.api_version(), metadata: meta, items };
    let bytes = serde_json::to_vec(&body).map_err(|e| status::internal(e.to_string()))?;
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

fn watch_collection(state: &Arc<SimState>, t: &Arc<ResourceType>, ns: Option<String>, q: &Query) -> Response {
    let (labels, fields) = match selectors(t, q) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    if truthy(q, "sendInitialEvents") {
        // The WatchList feature gate is off in 1.33 (beta, disabled): streaming lists are refused.
        return error(&ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    }
    let resource_version = match q.get("resourceVersion").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return error(&status::bad_request(format!("invalid resource version: {v}"))),
        },
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let params = WatchParams {
        resource_version,
        timeout,
        bookmarks: truthy(q, "allowWatchBookmarks"),
        bookmark_interval: state.bookmark_interval,
        labels,
        fields,
        drop_after: state.faults.watch_drop_after(&t.plural),
    };
    let rx = watch::start(state.store.clone(), t.clone(), ns, params);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    r
}

fn check_kind(t: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    if (!api_version.is_empty() && api_version != t.api_version()) || (!kind.is_empty() && kind != t.kind) {
        return Err(status::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {api_version}, Kind={kind} is not {}, Kind={}",
            t.kind,
            t.api_version(),
            t.kind
        )));
    }
    Ok(())
}

fn create(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let obj = body_object(headers, body)?;
    check_kind(t, &obj)?;
    if !t.namespaced && !ns.is_empty() {
        return Err(status::path_not_found());
    }
    if t.namespaced && ns.is_empty() {
        return Err(status::path_not_found());
    }
    let created = state.store.create(t, ns, obj, dry_run(q))?;
    Ok(json(StatusCode::CREATED, &created))
}

#[allow(clippy::too_many_arguments)]
fn update(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
    part: Part,
) -> Result<Response, ApiError> {
    let obj = body_object(headers, body)?;
    check_kind(t, &obj)?;
    let updated = state.store.update(t, ns, name, obj, part, dry_run(q))?;
    Ok(json(StatusCode::OK, &updated))
}

fn patch_type(t: &ResourceType, headers: &HeaderMap) -> Result<PatchType, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let accepted: Vec<&str> = if t.builtin {
        PatchType::ALL.to_vec()
    } else {
        PatchType::ALL.iter().copied().filter(|m| !m.contains("strategic")).collect()
    };
    match PatchType::from_content_type(ct) {
        Some(PatchType::Strategic) if !t.builtin => Err(status::unsupported_media_type(&accepted)),
        Some(ty) => Ok(ty),
        None => Err(status::unsupported_media_type(&accepted)),
    }
}

fn patch_error(e: patch::PatchError) -> ApiError {
    let mut err = ApiError::new(e.code(), e.reason(), e.to_string());
    if let Some(cause) = e.cause() {
        err = err.with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": cause}]}));
    }
    err
}

/// Applies a patch to an object (or its status) atomically; server-side apply creates a missing
/// object.
#[allow(clippy::too_many_arguments)]
fn patch_object(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
    part: Part,
) -> Result<Response, ApiError> {
    let ty = patch_type(t, headers)?;
    if ty == PatchType::Apply && q.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    if q.contains_key("force") && ty != PatchType::Apply {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
        ));
    }
    let dry = dry_run(q);
    let missing = state.store.get(t, ns, name).is_err();
    if missing && ty == PatchType::Apply && part == Part::Main {
        let target = json!({"apiVersion": t.api_version(), "kind": t.kind});
        let mut obj = patch::apply(&target, body, ty, &t.kind).map_err(patch_error)?;
        obj["metadata"]["name"] = json!(name);
        let created = state.store.create(t, ns, obj, dry)?;
        return Ok(json(StatusCode::CREATED, &created));
    }
    let patched = state.store.mutate(t, ns, name, part, dry, |old| {
        let new = patch::apply(old, body, ty, &t.kind).map_err(patch_error)?;
        let want = new["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        if !want.is_empty() && want != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(status::conflict(t, name));
        }
        Ok(Some(new))
    })?;
    Ok(json(StatusCode::OK, &patched))
}

fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| status::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?
    };
    let grace = q.get("gracePeriodSeconds").and_then(|v| v.parse().ok()).or_else(|| b["gracePeriodSeconds"].as_i64());
    let propagation =
        q.get("propagationPolicy").cloned().or_else(|| b["propagationPolicy"].as_str().map(str::to_string)).or_else(
            || match b["orphanDependents"].as_bool().or_else(|| q.get("orphanDependents").map(|v| v == "true")) {
                Some(true) => Some("Orphan".to_string()),
                Some(false) => Some("Background".to_string()),
                None => None,
            },
        );
    let dry = q.get("dryRun").is_some_and(|v| v == "All")
        || b["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: b["preconditions"]["resourceVersion"].as_str().map(str::to_string),
        propagation,
        dry_run: dry,
    })
}

/// Types whose DELETE returns the deleted object rather than a Status.
fn returns_deleted_object(t: &ResourceType) -> bool {
    t.group.is_empty() && matches!(t.plural.as_str(), "pods" | "namespaces" | "services")
}

fn delete(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    let opts = delete_options(q, body)?;
    match state.store.delete(t, ns, name, &opts)? {
        Deleted::Marked(obj) => Ok(json(StatusCode::OK, &obj)),
        Deleted::Gone(obj) if returns_deleted_object(t) => Ok(json(StatusCode::OK, &obj)),
        Deleted::Gone(obj) => {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
            Ok(json(StatusCode::OK, &status::success(t, name, uid)))
        }
    }
}

fn delete_collection(
    state: &SimState,
    t: &ResourceType,
    ns: Option<&str>,
    q: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(t, q)?;
    let opts = delete_options(q, body)?;
    let page = state.store.list(t, ns, &labels, &fields, None, None)?;
    let mut items = Vec::new();
    for o in page.items {
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        match state.store.delete(t, ns, name, &opts) {
            Ok(Deleted::Gone(obj) | Deleted::Marked(obj)) => items.push(list_item(t, &obj)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let rv = state.store.resource_version().to_string();
    Ok(json(
        StatusCode::OK,
        &json!({"kind": t.list_kind(), "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
    ))
}

fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| l.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn get_scale(state: &SimState, t: &ResourceType, ns: &str, name: &str) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &scale_of(&*state.store.get(t, ns, name)?)))
}

#[allow(clippy::too_many_arguments)]
fn set_scale(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    q: &Query,
) -> Result<Response, ApiError> {
    let updated = state.store.mutate(t, ns, name, Part::Main, dry_run(q), |old| {
        let current = scale_of(old);
        let wanted = if method == Method::PUT {
            body_object(headers, body)?
        } else {
            let ty = PatchType::from_content_type(
                headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            )
            .ok_or_else(|| status::unsupported_media_type(PatchType::ALL))?;
            patch::apply(&current, body, ty, "Scale").map_err(patch_error)?
        };
        let want_rv = wanted["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        if !want_rv.is_empty() && want_rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() {
            return Err(status::conflict(t, name));
        }
        let replicas = wanted["spec"]["replicas"]
            .as_i64()
            .ok_or_else(|| status::invalid(t, name, "spec.replicas", "FieldValueRequired", "Required value"))?;
        if replicas < 0 {
            return Err(status::invalid(
                t,
                name,
                "spec.replicas",
                "FieldValueInvalid",
                &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            ));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        Ok(Some(new))
    })?;
    Ok(json(StatusCode::OK, &scale_of(&updated)))
}

/// `POST pods/{name}/binding`: what a scheduler does to place a pod.
fn bind(
    state: &SimState,
    t: &ResourceType,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let binding = body_object(headers, body)?;
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(status::invalid(t, name, "target.name", "FieldValueRequired", "Required value"));
    }
    state.store.mutate(t, ns, name, Part::Main, false, |old| {
        if old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
            return Err(status::conflict_with(
                t,
                name,
                &format!(
                    "pod {name} is already assigned to node \"{}\"",
                    old["spec"]["nodeName"].as_str().unwrap_or_default()
                ),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        Ok(Some(new))
    })?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
