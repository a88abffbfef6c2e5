//! Label selectors compiled once, with the semantics a PDB's selector has in `policy/v1`: no
//! selector selects nothing, `{}` selects every pod of the namespace, and an invalid selector
//! (an unknown operator, `In` without values) is ignored by the eviction handler, so it too
//! selects nothing. Borrows its strings from the objects it was compiled from.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement<'a> {
    Equals(&'a str, &'a str),
    In(&'a str, Vec<&'a str>),
    NotIn(&'a str, Vec<&'a str>),
    Exists(&'a str),
    DoesNotExist(&'a str),
}

/// A selector, ready to match label sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector<'a> {
    /// No selector at all: matches no pod.
    Nothing,
    /// A selector the API server would ignore, with the reason.
    Invalid(String),
    /// Every requirement must hold (no requirement: every pod).
    All(Vec<Requirement<'a>>),
}

impl<'a> Selector<'a> {
    pub fn compile(selector: Option<&'a LabelSelector>) -> Self {
        let Some(s) = selector else { return Selector::Nothing };
        let mut reqs: Vec<Requirement<'a>> = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            reqs.push(Requirement::Equals(k, v));
        }
        for e in s.match_expressions.iter().flatten() {
            let values: Vec<&'a str> = e.values.iter().flatten().map(String::as_str).collect();
            let req = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Selector::Invalid(format!("`{}` on `{}` needs at least one value", e.operator, e.key));
                }
                "In" => Requirement::In(&e.key, values),
                "NotIn" => Requirement::NotIn(&e.key, values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Selector::Invalid(format!("`{}` on `{}` takes no values", e.operator, e.key));
                }
                "Exists" => Requirement::Exists(&e.key),
                "DoesNotExist" => Requirement::DoesNotExist(&e.key),
                other => return Selector::Invalid(format!("unknown operator `{other}` on `{}`", e.key)),
            };
            reqs.push(req);
        }
        Selector::All(reqs)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let Selector::All(reqs) = self else { return false };
        reqs.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(*k).is_some_and(|x| x == v),
            Requirement::In(k, vs) => labels.get(*k).is_some_and(|x| vs.contains(&x.as_str())),
            Requirement::NotIn(k, vs) => labels.get(*k).is_none_or(|x| !vs.contains(&x.as_str())),
            Requirement::Exists(k) => labels.contains_key(*k),
            Requirement::DoesNotExist(k) => !labels.contains_key(*k),
        })
    }

    /// The `(key, value)` pairs of which a matching label set must hold at least one: what an
    /// index can file this selector under. `None` when no such pairs exist (`{}`, only
    /// `Exists`/`NotIn`), so candidates must be scanned.
    pub fn index_keys(&self) -> Option<Vec<(&'a str, &'a str)>> {
        let Selector::All(reqs) = self else { return Some(Vec::new()) };
        if let Some((k, v)) = reqs.iter().find_map(|r| match r {
            Requirement::Equals(k, v) => Some((*k, *v)),
            _ => None,
        }) {
            return Some(vec![(k, v)]);
        }
        reqs.iter().find_map(|r| match r {
            Requirement::In(k, vs) => Some(vs.iter().map(|v| (*k, *v)).collect()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn no_selector_matches_nothing_and_an_empty_one_matches_everything() {
        assert!(!Selector::compile(None).matches(&labels(&[("app", "web")])));
        let empty = LabelSelector::default();
        assert!(Selector::compile(Some(&empty)).matches(&labels(&[])));
        assert_eq!(Selector::compile(Some(&empty)).index_keys(), None, "`{{}}` must be scanned");
    }

    #[test]
    fn match_expressions_follow_kubernetes_semantics() {
        let s = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["front", "edge"]),
                expr("track", "NotIn", &["canary"]),
                expr("team", "Exists", &[]),
                expr("legacy", "DoesNotExist", &[]),
            ]),
        };
        let sel = Selector::compile(Some(&s));
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "edge"), ("team", "a")])));
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front"), ("team", "a"), ("track", "stable")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "back"), ("team", "a")])), "In");
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "edge"), ("team", "a"), ("track", "canary")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "edge")])), "Exists");
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "edge"), ("team", "a"), ("legacy", "1")])));
        assert_eq!(sel.index_keys(), Some(vec![("app", "web")]), "equality is the best index key");
    }

    #[test]
    fn in_is_indexed_under_each_value_and_invalid_selectors_match_nothing() {
        let s = LabelSelector { match_expressions: Some(vec![expr("app", "In", &["a", "b"])]), match_labels: None };
        assert_eq!(Selector::compile(Some(&s)).index_keys(), Some(vec![("app", "a"), ("app", "b")]));
        let bad = LabelSelector { match_expressions: Some(vec![expr("app", "Near", &["a"])]), match_labels: None };
        let sel = Selector::compile(Some(&bad));
        assert!(matches!(sel, Selector::Invalid(ref m) if m.contains("Near")));
        assert!(!sel.matches(&labels(&[("app", "a")])));
        let no_values = LabelSelector { match_expressions: Some(vec![expr("app", "In", &[])]), match_labels: None };
        assert!(matches!(Selector::compile(Some(&no_values)), Selector::Invalid(_)));
    }
}
