//! Reading an object's JSON the way the printers read the typed object: an absent field is the Go
//! zero value, and label maps and selectors are written as `labels.FormatLabels` and
//! `metav1.FormatLabelSelector` write them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::age;

/// The Name cell of any object.
pub(super) fn name(obj: &Value) -> Value {
    json!(text(&obj["metadata"]["name"]))
}

/// The Age cell of any object, as of `now`.
pub(super) fn age_of(obj: &Value, now: DateTime<Utc>) -> Value {
    json!(age::since(&obj["metadata"]["creationTimestamp"], now))
}

/// A string field; absent or not a string reads as `""`.
pub(super) fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// An integer field; absent reads as 0.
pub(super) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The elements of a list field; absent reads as empty.
pub(super) fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The number of entries in a map or list field.
pub(super) fn len(v: &Value) -> i64 {
    let n = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `<none>` for an empty string.
pub(super) fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".into() } else { s.into() }
}

/// The first condition of `kind` in a `conditions` list.
pub(super) fn condition<'a>(conditions: &'a Value, kind: &str) -> Option<&'a Value> {
    list(conditions).iter().find(|c| c["type"] == kind)
}

/// An `IntOrString` field (`1`, `50%`).
pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub(super) fn labels(map: &Value) -> String {
    let pairs: BTreeMap<&str, &str> =
        map.as_object().map(|m| m.iter().map(|(k, v)| (k.as_str(), text(v))).collect()).unwrap_or_default();
    let joined = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    or_none(&joined)
}

/// `LabelSelectorAsSelector(sel).String()`: requirements sorted by key, `k=v`, `k in (a,b)`,
/// `k notin (a,b)`, `k`, `!k`. A nil or empty selector is `""`; an unknown operator is `None`.
pub(super) fn selector(sel: &Value) -> Option<String> {
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        requirements.extend(m.iter().map(|(k, v)| (k.clone(), format!("{k}={}", text(v)))));
    }
    for expr in list(&sel["matchExpressions"]) {
        let key = text(&expr["key"]);
        let mut values: Vec<&str> = list(&expr["values"]).iter().map(text).collect();
        values.sort_unstable();
        let values = values.join(",");
        let written = match text(&expr["operator"]) {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), written));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: the selector, `<none>` when it selects by nothing, `<error>` when
/// it cannot be read.
pub(super) fn format_selector(sel: &Value) -> String {
    selector(sel).map_or_else(|| "<error>".into(), |s| or_none(&s))
}

/// `layoutContainerCells`: the containers' names and images, comma-separated.
pub(super) fn containers(pod_spec: &Value) -> (String, String) {
    let containers = list(&pod_spec["containers"]);
    let names = containers.iter().map(|c| text(&c["name"])).collect::<Vec<_>>().join(",");
    let images = containers.iter().map(|c| text(&c["image"])).collect::<Vec<_>>().join(",");
    (names, images)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selectors_are_written_sorted_by_key() {
        let sel = json!({"matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(selector(&sel).unwrap(), "app=shop,!canary,env in (dev,prod),tier=web");
        assert_eq!(format_selector(&Value::Null), "<none>");
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(format_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})), "<error>");
    }

    #[test]
    fn label_maps_are_sorted_pairs_or_none() {
        assert_eq!(labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(labels(&json!({})), "<none>");
        assert_eq!(labels(&Value::Null), "<none>");
    }
}
