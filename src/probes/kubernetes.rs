//! `kubernetes` probes: objects in the namespace a drill verifies. One named object exists (and,
//! with `condition`, reports that condition with the wanted status), or the namespace holds as
//! many objects of a kind as the source namespace. Only metadata and `status.conditions` are
//! read: contents (a Secret's data) never are.

use kube::api::{Api, DynamicObject, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Check, Namespaces, ProbeError};
use crate::spec::{Loc, Validator};

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
    /// With `name`: the object's `status.conditions` must hold a condition of this type (e.g.
    /// `Available` for a Deployment, `Complete` for a Job, `Ready` for a cert-manager
    /// Certificate) whose status is `status`.
    #[serde(default)]
    pub condition: Option<Loc<String>>,
    /// The status `condition` must have: `"True"` (default), `"False"` or `"Unknown"`.
    #[serde(default)]
    pub status: Option<Loc<String>>,
    /// The namespace must hold as many objects of the kind (not counting firedrill's own, labelled
    /// `app.kubernetes.io/managed-by: firedrill`) as the source namespace (the one a
    /// backup was taken of). Only counts are compared and recorded, never contents.
    #[serde(default)]
    pub same_count_as_source: bool,
}

/// A condition a named object must report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's `type`, e.g. `Available`.
    #[serde(rename = "condition")]
    pub type_: String,
    /// The status it must have.
    pub status: String,
}

pub(super) fn validate(v: &mut Validator, spec: &Loc<KubernetesSpec>) -> Option<Check> {
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
    let condition = match (&k.condition, &k.status) {
        (Some(c), _) if name.is_none() => {
            v.error(c.at(), "`condition` is a condition of the object `name` names: add `name`, or remove `condition`");
            return None;
        }
        (None, Some(s)) => {
            v.error(
                s.at(),
                "`status` is the status of a `condition`: add `condition` (e.g. `Available`), or remove `status`",
            );
            return None;
        }
        (Some(c), _) if api_version == "v1" && kind == "Secret" => {
            v.error(c.at(), "a Secret has no conditions (and firedrill never reads one): remove `condition`");
            return None;
        }
        (Some(c), s) => {
            let status = match s {
                Some(s) if !matches!(s.value.as_str(), "True" | "False" | "Unknown") => {
                    v.error(
                        s.at(),
                        format!("a condition's status is `\"True\"`, `\"False\"` or `\"Unknown\"`, not `{}`", s.value),
                    );
                    return None;
                }
                Some(s) => s.value.clone(),
                None => "True".to_string(),
            };
            Some(Condition { type_: v.non_empty(c, "kubernetes.condition")?, status })
        }
        (None, None) => None,
    };
    Some(Check::Kubernetes { api_version, kind, name, condition, same_count_as_source: k.same_count_as_source })
}

/// The status of `object`'s condition of type `type_`, if it reports one.
pub fn condition_status<'a>(object: &'a Value, type_: &str) -> Option<&'a str> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)?["status"].as_str()
}

/// Whether `object` reports `want`; the error names the object as `shown`.
pub fn check_condition(object: &Value, shown: &str, want: &Condition) -> Result<(), ProbeError> {
    let got = condition_status(object, &want.type_);
    if got == Some(want.status.as_str()) {
        return Ok(());
    }
    Err(ProbeError::Condition {
        object: shown.to_string(),
        condition: want.type_.clone(),
        expected: want.status.clone(),
        got: got.map(str::to_string),
    })
}

/// One attempt: whether the named object exists (and reports its condition), or how many
/// objects of the kind the namespace holds against the source.
pub(super) async fn attempt(
    ns: &Namespaces,
    api_version: &str,
    kind: &str,
    name: Option<&str>,
    condition: Option<&Condition>,
) -> Result<(), ProbeError> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = kube::discovery::pinned_kind(&ns.client, &gvk)
        .await
        .map_err(|e| ProbeError::Kubernetes(format!("the cluster does not serve {api_version} {kind}: {e}")))?;
    let api = |n: &str| Api::<DynamicObject>::namespaced_with(ns.client.clone(), n, &resource);
    let api_error = |e: kube::Error| ProbeError::Kubernetes(format!("cannot read {kind}: {e}"));
    if let Some(name) = name {
        let shown = format!("{kind} {}/{name}", ns.namespace);
        let Some(want) = condition else {
            return match api(&ns.namespace).get_metadata_opt(name).await.map_err(api_error)? {
                Some(_) => Ok(()),
                None => Err(ProbeError::Missing(shown)),
            };
        };
        // The whole object, for its status: a kind with conditions is no Secret.
        let Some(object) = api(&ns.namespace).get_opt(name).await.map_err(api_error)? else {
            return Err(ProbeError::Missing(shown));
        };
        return check_condition(&object.data, &shown, want);
    }
    // firedrill's own objects (the canary, the scratch namespace's quota, job probes' Jobs and
    // pods) are not the application's: the canary is rewritten in the source after every backup,
    // so counting it would never match.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn available(status: &str) -> Value {
        json!({"status": {"conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Available", "status": status, "reason": "MinimumReplicasAvailable"},
        ]}})
    }

    fn want(type_: &str) -> Condition {
        Condition { type_: type_.into(), status: "True".into() }
    }

    #[test]
    fn a_condition_passes_only_with_the_wanted_status() {
        assert_eq!(check_condition(&available("True"), "Deployment s/web", &want("Available")), Ok(()));
        let err = check_condition(&available("False"), "Deployment s/web", &want("Available")).unwrap_err();
        assert_eq!(err.to_string(), "Deployment s/web: condition Available is False, expected True");
        let unknown = Condition { type_: "Available".into(), status: "Unknown".into() };
        assert!(check_condition(&available("False"), "Deployment s/web", &unknown).is_err());
    }

    #[test]
    fn a_condition_is_validated_with_a_name_and_defaults_to_true() {
        let p = crate::probes::validated(
            "name: web\nkubernetes: {apiVersion: apps/v1, kind: Deployment, name: web, condition: Available}\n",
            true,
        )
        .unwrap();
        let Check::Kubernetes { condition, .. } = &p.check else { panic!("{p:?}") };
        assert_eq!(condition, &Some(Condition { type_: "Available".into(), status: "True".into() }));
        let shown = serde_json::to_value(&p).unwrap();
        assert_eq!(
            (&shown["check"]["kubernetes"]["condition"], &shown["check"]["kubernetes"]["status"]),
            (&json!("Available"), &json!("True"))
        );

        let errors = crate::probes::validated(
            "name: n\nkubernetes: {kind: Secret, sameCountAsSource: true, condition: Ready}\n",
            true,
        );
        assert_eq!(
            errors.unwrap_err(),
            ["2:64: `condition` is a condition of the object `name` names: add `name`, or remove `condition`"]
        );
        let errors = crate::probes::validated("name: n\nkubernetes: {kind: Pod, name: p, status: \"False\"}\n", true);
        assert!(errors.unwrap_err()[0].starts_with("2:42: `status` is the status of a `condition`"));
        let errors = crate::probes::validated(
            "name: n\nkubernetes: {kind: Pod, name: p, condition: Ready, status: yes}\n",
            true,
        );
        assert!(errors.unwrap_err()[0].contains("not `yes`"));
        let errors =
            crate::probes::validated("name: n\nkubernetes: {kind: Secret, name: db, condition: Ready}\n", true);
        assert!(errors.unwrap_err()[0].contains("a Secret has no conditions (and firedrill never reads one)"));
    }

    #[test]
    fn a_missing_condition_is_named_as_missing() {
        let err = check_condition(&available("True"), "Deployment s/web", &want("Ready")).unwrap_err();
        assert_eq!(err.to_string(), "Deployment s/web has no condition Ready (expected True)");
        let err = check_condition(&json!({"spec": {}}), "Deployment s/web", &want("Available")).unwrap_err();
        assert!(err.to_string().contains("has no condition Available"), "{err}");
    }
}
