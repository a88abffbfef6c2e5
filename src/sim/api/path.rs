//! What a request path names: discovery documents, OpenAPI documents, the simulator's admin
//! endpoints, or a resource (collection, object, subresource).

use std::sync::Arc;

use crate::sim::registry::{Registry, ResourceType};

/// A parsed request path.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Version,
    /// `/api`: the core API versions.
    CoreVersions,
    /// `/apis`: the API groups.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`: the resources of a group version.
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/openapi/v3`.
    OpenApiRoot,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
    OpenApi {
        group: String,
        version: String,
    },
    /// `/openapi/v2`: not served (kubectl then uses v3).
    OpenApiV2,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/firedrill/v1/<what>`: the simulator's admin endpoints.
    Admin(String),
    /// A resource request.
    Resource(ResourcePath),
}

/// A resource request's path.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePath {
    pub rtype: Arc<ResourceType>,
    /// The namespace segment, when the path has one.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `path` (without the query). `None`: nothing is served there.
pub fn parse(path: &str, registry: &Registry) -> Option<Route> {
    let segments: Vec<&str> = path.trim_end_matches('?').split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["openapi", "v3"] => Some(Route::OpenApiRoot),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3", "api", version] => {
            Some(Route::OpenApi { group: String::new(), version: version.to_string() })
        }
        ["openapi", "v3", "apis", group, version] => {
            Some(Route::OpenApi { group: group.to_string(), version: version.to_string() })
        }
        ["firedrill", "v1", rest @ ..] if !rest.is_empty() => Some(Route::Admin(rest.join("/"))),
        ["apis", group] => registry.all().iter().any(|t| t.group == *group).then(|| Route::Group(group.to_string())),
        ["api", version, rest @ ..] => resource("", version, rest, registry),
        ["apis", group, version, rest @ ..] => resource(group, version, rest, registry),
        _ => None,
    }
}

fn resource(group: &str, version: &str, rest: &[&str], registry: &Registry) -> Option<Route> {
    if !registry.serves(group, version) {
        return None;
    }
    let find = |plural: &str| registry.find(group, version, plural);
    let (namespace, rest) = match rest {
        // `namespaces/{ns}/{plural}...`, but `namespaces/{name}` alone is the namespace object.
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|t| t.namespaced) => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let route = match rest.as_slice() {
        [] => Route::GroupVersion { group: group.to_string(), version: version.to_string() },
        [plural] => Route::Resource(ResourcePath { rtype: find(plural)?, namespace, name: None, subresource: None }),
        [plural, name] => Route::Resource(ResourcePath {
            rtype: find(plural)?,
            namespace,
            name: Some(name.to_string()),
            subresource: None,
        }),
        [plural, name, sub] => Route::Resource(ResourcePath {
            rtype: find(plural)?,
            namespace,
            name: Some(name.to_string()),
            subresource: Some(sub.to_string()),
        }),
        _ => return None,
    };
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(route: Option<Route>) -> ResourcePath {
        match route {
            Some(Route::Resource(r)) => r,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn paths_name_what_kube_rs_and_kubectl_ask_for() {
        let r = Registry::new();
        let p = res(parse("/api/v1/namespaces/a/pods/p/eviction", &r));
        assert_eq!(
            (p.rtype.plural.as_str(), p.namespace.as_deref(), p.name.as_deref(), p.subresource.as_deref()),
            ("pods", Some("a"), Some("p"), Some("eviction"))
        );
        let p = res(parse("/api/v1/pods?", &r));
        assert_eq!((p.namespace, p.name), (None, None), "all-namespaces list, with kube-rs's trailing `?`");
        let n = res(parse("/api/v1/namespaces/scratch", &r));
        assert_eq!((n.rtype.plural.as_str(), n.name.as_deref()), ("namespaces", Some("scratch")));
        let f = res(parse("/api/v1/namespaces/scratch/finalize", &r));
        assert_eq!((f.name.as_deref(), f.subresource.as_deref()), (Some("scratch"), Some("finalize")));
        let d = res(parse("/apis/apps/v1/namespaces/a/deployments/web/scale", &r));
        assert_eq!(d.subresource.as_deref(), Some("scale"));
        assert_eq!(
            parse("/apis/apps/v1", &r),
            Some(Route::GroupVersion { group: "apps".into(), version: "v1".into() })
        );
        assert_eq!(parse("/apis/nope.io/v1/things", &r), None);
        assert_eq!(parse("/api/v1/widgets", &r), None);
        assert_eq!(
            parse("/openapi/v3/apis/apps/v1", &r),
            Some(Route::OpenApi { group: "apps".into(), version: "v1".into() })
        );
        assert_eq!(parse("/firedrill/v1/clock", &r), Some(Route::Admin("clock".into())));
    }
}
