//! Label and field selectors, with the real server's syntax and matching rules.
//!
//! Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>N`, `k<N`,
//! comma = AND. `!=` and `notin` match objects without the key. `metav1.LabelSelector` objects
//! (`matchLabels`, `matchExpressions`): nil matches nothing, `{}` matches everything.
//! Field selectors: `=`, `==`, `!=`, comma = AND, `\,` `\=` `\\` escapes; each field must be one
//! the type supports.

use std::collections::BTreeMap;

use serde_json::Value;

use super::registry::ResourceType;
use super::status::{self, ApiError};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::GreaterThan(k, n) => labels.get(k).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => labels.get(k).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
        }
    }
}

/// A label selector. `Nothing` is the nil `metav1.LabelSelector`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

/// The labels of an object, as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl LabelSelector {
    /// Everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `labelSelector=` query form; errors are 400 `BadRequest`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| status::bad_request(format!("unable to parse requirement: {why}"));
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let r = if let Some(k) = part.strip_prefix('!') {
                Requirement::DoesNotExist(k.trim().to_string())
            } else if let Some((k, rest)) = split_word(part, " notin ") {
                Requirement::NotIn(k, parse_set(&rest).ok_or_else(|| bad(&format!("invalid set in `{part}`")))?)
            } else if let Some((k, rest)) = split_word(part, " in ") {
                Requirement::In(k, parse_set(&rest).ok_or_else(|| bad(&format!("invalid set in `{part}`")))?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('>') {
                Requirement::GreaterThan(
                    k.trim().into(),
                    v.trim().parse().map_err(|_| bad(&format!("`{v}` is not an integer")))?,
                )
            } else if let Some((k, v)) = part.split_once('<') {
                Requirement::LessThan(
                    k.trim().into(),
                    v.trim().parse().map_err(|_| bad(&format!("`{v}` is not an integer")))?,
                )
            } else {
                Requirement::Exists(part.to_string())
            };
            let (key, values): (&str, Vec<&str>) = match &r {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, vec![v.as_str()]),
                Requirement::In(k, vs) | Requirement::NotIn(k, vs) => (k, vs.iter().map(String::as_str).collect()),
                Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, vec![]),
                Requirement::GreaterThan(k, _) | Requirement::LessThan(k, _) => (k, vec![]),
            };
            if !valid_key(key) {
                return Err(bad(&format!("invalid label key `{key}`")));
            }
            if let Some(v) = values.iter().find(|v| !valid_value(v)) {
                return Err(bad(&format!("invalid label value `{v}`")));
            }
            requirements.push(r);
        }
        Ok(Self { requirements, nothing: false })
    }

    /// A `metav1.LabelSelector` object (`null` matches nothing, `{}` everything).
    pub fn from_object(sel: &Value) -> Result<Self, String> {
        if sel.is_null() {
            return Ok(Self { requirements: Vec::new(), nothing: true });
        }
        let mut requirements = Vec::new();
        if let Some(m) = sel["matchLabels"].as_object() {
            for (k, v) in m {
                requirements.push(Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
        for e in sel["matchExpressions"].as_array().cloned().unwrap_or_default() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            requirements.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            });
        }
        Ok(Self { requirements, nothing: false })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        !self.nothing && (self.requirements.is_empty() || self.matches(&labels_of(obj)))
    }

    /// Whether this selects everything (`{}` or the empty string).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn split_word(part: &str, word: &str) -> Option<(String, String)> {
    let padded = format!(" {part}");
    let i = padded.find(word)?;
    let key = padded[..i].trim().to_string();
    Some((key, padded[i + word.len()..].trim().to_string()))
}

fn parse_set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

/// A field selector, checked against the fields the type supports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `fieldSelector=` query form for type `t`; an unsupported field is 400
    /// `field label not supported: <field>`.
    pub fn parse(text: &str, t: &ResourceType) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = split_op(&term, "!=") {
                (f, false, v)
            } else if let Some((f, v)) = split_op(&term, "==") {
                (f, true, v)
            } else if let Some((f, v)) = split_op(&term, "=") {
                (f, true, v)
            } else {
                return Err(status::bad_request(format!("invalid selector: '{text}'; can't understand '{term}'")));
            };
            let field = if field == "spec.host" && t.key() == "/pods" { "spec.nodeName".to_string() } else { field };
            if !t.supports_field(&field) {
                return Err(status::bad_request(format!("field label not supported: {field}")));
            }
            terms.push((field, equal, unescape(&value)));
        }
        Ok(Self { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| (field_value(obj, field) == *value) == *equal)
    }

    /// The value of an equality term on `field`, if there is one (`metadata.name=x` → `x`).
    pub fn equals(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|(f, eq, _)| f == field && *eq).map(|(_, _, v)| v.as_str())
    }
}

/// The string value of a field for selectors: missing fields are `""`, booleans `true`/`false`.
pub fn field_value(obj: &Value, field: &str) -> String {
    let mut v = obj;
    for part in field.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => {
            // Unset booleans select as false (spec.unschedulable, spec.hostNetwork).
            if field == "spec.unschedulable" || field == "spec.hostNetwork" { "false".into() } else { String::new() }
        }
        other => other.to_string(),
    }
}

fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                let last = parts.last_mut().expect("one part");
                last.push('\\');
                last.push(n);
            }
        } else if c == sep {
            parts.push(String::new());
        } else {
            parts.last_mut().expect("one part").push(c);
        }
    }
    parts
}

fn split_op(term: &str, op: &str) -> Option<(String, String)> {
    let i = term.find(op)?;
    // An escaped `=` is part of the value, not the operator.
    if i > 0 && term.as_bytes()[i - 1] == b'\\' {
        return None;
    }
    Some((term[..i].trim().to_string(), term[i + op.len()..].to_string()))
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::registry::Registry;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors_follow_the_real_rules() {
        let app = labels(&[("app", "web"), ("tier", "front"), ("rank", "7")]);
        let none = labels(&[]);
        let t = |s: &str, l: &BTreeMap<String, String>| LabelSelector::parse(s).unwrap().matches(l);
        assert!(t("app=web,tier==front", &app));
        assert!(!t("app=web,tier=back", &app));
        assert!(t("app!=db", &app) && t("app!=db", &none), "!= matches objects without the key");
        assert!(t("tier in (front, back)", &app) && !t("tier in (front,back)", &none));
        assert!(t("tier notin (back)", &app) && t("tier notin (back)", &none), "notin matches objects without the key");
        assert!(t("app", &app) && !t("app", &none) && t("!app", &none));
        assert!(t("rank>5", &app) && !t("rank<5", &app));
        assert!(t("", &none));
        assert_eq!(LabelSelector::parse("app=we b!").unwrap_err().code, 400);
    }

    #[test]
    fn label_selector_objects_nil_matches_nothing_and_empty_everything() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(!LabelSelector::from_object(&Value::Null).unwrap().matches_object(&pod));
        assert!(LabelSelector::from_object(&json!({})).unwrap().matches_object(&pod));
        let sel =
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]});
        assert!(LabelSelector::from_object(&sel).unwrap().matches_object(&pod));
        assert!(LabelSelector::from_object(&json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})).is_err());
    }

    #[test]
    fn field_selectors_check_the_type_and_match_values() {
        let r = Registry::new();
        let pods = r.find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s, &pods).unwrap();
        assert!(f("spec.nodeName=n1,status.phase!=Pending").matches(&pod));
        assert!(f("spec.host=n1").matches(&pod), "spec.host is the legacy name of spec.nodeName");
        assert!(!f("metadata.name==q").matches(&pod));
        assert_eq!(f("metadata.name=p").equals("metadata.name"), Some("p"));
        let e = FieldSelector::parse("spec.containers=x", &pods).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: spec.containers"));
        let nodes = r.find("", "v1", "nodes").unwrap();
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(FieldSelector::parse("spec.unschedulable=false", &nodes).unwrap().matches(&node));
        let cms = r.find("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "a,b=c"}});
        assert!(FieldSelector::parse(r"metadata.name=a\,b\=c", &cms).unwrap().matches(&cm));
    }
}
