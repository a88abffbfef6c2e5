//! The simulator's HTTP face: the Kubernetes REST API (discovery, OpenAPI, resources, watches)
//! and the admin endpoints under `/firedrill/v1/`.
//!
//! Every request goes through one handler that parses the path itself, so that the odd paths
//! clients send (kube-rs's trailing `?`, `namespaces/{name}/finalize`) route exactly as on a real
//! server, and every error is a `Status` with the real reason and message.

pub mod discovery;
pub mod path;
pub mod resources;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::server::SimState;
use super::status::{self, ApiError};
use path::Route;

/// The router serving everything.
pub fn router(state: Arc<SimState>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

/// A JSON response.
pub fn json(code: StatusCode, body: &Value) -> Response {
    json_as(code, body, "application/json")
}

pub fn json_as(code: StatusCode, body: &Value, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An error response: the Status body, its code, and `Retry-After` when it asks for one.
pub fn error(e: &ApiError) -> Response {
    let mut r = json(StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &e.status());
    if let Some(secs) = e.retry_after.filter(|s| *s > 0) {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// The query string as a map (later values win; repeated `dryRun` is fine).
pub fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

async fn dispatch(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query(&uri);
    if let Some(injected) = state.faults.before(&method, uri.path(), &q).await {
        state.stats.count_injected_error();
        return error(&injected);
    }
    let registry = state.store.registry.clone();
    let Some(route) = path::parse(uri.path(), &registry) else {
        return error(&status::path_not_found());
    };
    let get_only = |f: &dyn Fn() -> Option<Value>| -> Response {
        if method != Method::GET {
            return error(&status::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            )));
        }
        match f() {
            Some(v) => json(StatusCode::OK, &v),
            None => error(&status::path_not_found()),
        }
    };
    match route {
        Route::Version => get_only(&|| Some(discovery::version())),
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::CoreVersions => get_only(&|| Some(discovery::core_versions(&state.address))),
        Route::Groups => get_only(&|| Some(discovery::groups(&registry))),
        Route::Group(g) => get_only(&|| discovery::group(&registry, &g)),
        Route::GroupVersion { group, version } => get_only(&|| Some(discovery::resources(&registry, &group, &version))),
        Route::OpenApiRoot => get_only(&|| Some(discovery::openapi_root(&registry))),
        Route::OpenApi { group, version } => {
            get_only(&|| registry.serves(&group, &version).then(|| discovery::openapi(&registry, &group, &version)))
        }
        Route::OpenApiV2 => error(&status::path_not_found()),
        Route::Admin(what) => super::admin::handle(&state, &method, &what, &q, &body).await,
        Route::Resource(p) => resources::handle(&state, &method, p, &q, &headers, body).await,
    }
}
