//! Which namespaces, resources and labels a backup or restore covers: Velero's
//! `collections.IncludesExcludes` (an empty include list or `*` means everything, excludes win,
//! `*` may appear inside namespace names as a wildcard), its checks of the lists, the resolution
//! of names like `deploy` or `deployments` to `deployments.apps` as discovery does, and label
//! selectors (`labelSelector`, or any of `orLabelSelectors`).

use serde_json::Value;

use super::strings;
use crate::sim::registry::Registry;
use crate::sim::selector::LabelSelector;

/// An include list and an exclude list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncludesExcludes {
    includes: Vec<String>,
    excludes: Vec<String>,
}

impl IncludesExcludes {
    pub fn new(includes: Vec<String>, excludes: Vec<String>) -> Self {
        Self { includes, excludes }
    }

    /// From two JSON string arrays of a spec.
    pub fn from_spec(includes: &Value, excludes: &Value) -> Self {
        Self::new(strings(includes), strings(excludes))
    }

    /// Whether `s` is covered: not excluded, and included by an empty list, `*` or a match.
    pub fn should_include(&self, s: &str) -> bool {
        if self.excludes.iter().any(|p| glob(p, s)) {
            return false;
        }
        self.includes.is_empty() || self.includes.iter().any(|p| p == "*" || glob(p, s))
    }

    /// Everything, nothing excluded (Velero's `IncludeEverything`).
    pub fn include_everything(&self) -> bool {
        self.excludes.is_empty() && (self.includes.is_empty() || self.includes == ["*"])
    }

    pub fn includes(&self) -> &[String] {
        &self.includes
    }

    /// Both lists with each name resolved by `resolve`.
    pub fn resolved(&self, resolve: impl Fn(&str) -> String) -> Self {
        let map = |v: &[String]| v.iter().map(|s| if s == "*" { s.clone() } else { resolve(s) }).collect();
        Self { includes: map(&self.includes), excludes: map(&self.excludes) }
    }
}

/// `*` in `pattern` stands for any run of characters; anything else matches itself.
fn glob(pattern: &str, s: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == s;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Velero's checks of an include and an exclude list (`ValidateIncludesExcludes`).
pub fn validate(includes: &[String], excludes: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    if includes.len() > 1 && includes.iter().any(|i| i == "*") {
        errors.push("includes list must either contain '*' only, or a non-empty list of items".to_string());
    }
    if excludes.iter().any(|e| e == "*") {
        errors.push("excludes list cannot contain '*'".to_string());
    }
    let mut excludes: Vec<&String> = excludes.iter().collect();
    excludes.sort();
    excludes.dedup();
    for e in excludes {
        if includes.contains(e) {
            errors.push(format!("excludes list cannot contain an item in the includes list: {e}"));
        }
    }
    errors
}

/// The `resource.group` a name the user wrote stands for, as discovery resolves it: a full
/// `plural.group`, a plural, a singular, a short name or a kind, core group first. An unknown
/// name stays as written (and matches nothing).
pub fn resolve_resource(registry: &Registry, name: &str) -> String {
    let lower = name.to_lowercase();
    let mut types = registry.all();
    // The core group wins ties, as it does in discovery.
    types.sort_by_key(|t| !t.group.is_empty());
    if let Some(t) = types.iter().find(|t| t.group_resource() == lower) {
        return t.group_resource();
    }
    let (resource, group) = match lower.split_once('.') {
        Some((r, g)) => (r.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    types
        .iter()
        .filter(|t| group.as_ref().is_none_or(|g| t.group == *g || t.group.starts_with(&format!("{g}."))))
        .find(|t| {
            t.plural == resource
                || t.singular == resource
                || t.kind.to_lowercase() == resource
                || t.short_names.contains(&resource)
        })
        .map(|t| t.group_resource())
        .unwrap_or(lower)
}

/// The label selection of a backup or restore spec.
#[derive(Debug, Clone)]
pub struct Labels {
    single: Option<LabelSelector>,
    any_of: Vec<LabelSelector>,
}

impl Labels {
    /// No selection: everything matches.
    pub fn everything() -> Self {
        Self { single: None, any_of: Vec::new() }
    }

    /// Reads `labelSelector` and `orLabelSelectors`; a selector that cannot be read is an error.
    pub fn from_spec(spec: &Value) -> Result<Self, String> {
        let single = match &spec["labelSelector"] {
            Value::Null => None,
            s => Some(LabelSelector::from_object(s)?),
        };
        let any_of = spec["orLabelSelectors"]
            .as_array()
            .map(|a| a.iter().map(LabelSelector::from_object).collect::<Result<Vec<_>, _>>())
            .transpose()?
            .unwrap_or_default();
        Ok(Self { single, any_of })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if !self.any_of.is_empty() {
            return self.any_of.iter().any(|s| s.matches_object(obj));
        }
        self.single.as_ref().is_none_or(|s| s.matches_object(obj))
    }

    /// Whether any selector is set.
    pub fn is_set(&self) -> bool {
        self.single.is_some() || !self.any_of.is_empty()
    }
}

/// The message Velero gives when both selector fields are set, for a `backup` or `restore` spec.
pub fn both_selectors(spec: &Value, what: &str) -> Option<String> {
    (!spec["labelSelector"].is_null() && !spec["orLabelSelectors"].is_null()).then(|| {
        format!("encountered labelSelector as well as orLabelSelectors in {what} spec, only one can be specified")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ie(inc: &[&str], exc: &[&str]) -> IncludesExcludes {
        IncludesExcludes::new(inc.iter().map(|s| s.to_string()).collect(), exc.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn empty_and_star_include_everything_and_excludes_win() {
        assert!(ie(&[], &[]).should_include("shop"));
        assert!(ie(&["*"], &["kube-system"]).should_include("shop"));
        assert!(!ie(&["*"], &["kube-system"]).should_include("kube-system"));
        assert!(!ie(&["shop"], &[]).should_include("billing"));
        assert!(ie(&["shop-*"], &[]).should_include("shop-eu"));
        assert!(!ie(&["shop-*"], &["*-eu"]).should_include("shop-eu"));
        assert!(ie(&["*"], &[]).include_everything() && !ie(&["*"], &["a"]).include_everything());
        assert!(!ie(&["shop"], &[]).include_everything());
    }

    #[test]
    fn lists_are_checked_as_velero_checks_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(validate(&s(&["shop"]), &s(&["kube-system"])).is_empty());
        assert_eq!(validate(&s(&["*", "shop"]), &[]).len(), 1);
        assert_eq!(validate(&[], &s(&["*"])), ["excludes list cannot contain '*'"]);
        assert_eq!(
            validate(&s(&["shop"]), &s(&["shop"])),
            ["excludes list cannot contain an item in the includes list: shop"]
        );
    }

    #[test]
    fn resource_names_resolve_as_discovery_resolves_them() {
        let r = Registry::new();
        assert_eq!(resolve_resource(&r, "deployments"), "deployments.apps");
        assert_eq!(resolve_resource(&r, "deploy"), "deployments.apps");
        assert_eq!(resolve_resource(&r, "Deployment"), "deployments.apps");
        assert_eq!(resolve_resource(&r, "deployments.apps"), "deployments.apps");
        assert_eq!(resolve_resource(&r, "pods"), "pods");
        assert_eq!(resolve_resource(&r, "cm"), "configmaps");
        assert_eq!(resolve_resource(&r, "backups.velero.io"), "backups.velero.io");
        assert_eq!(resolve_resource(&r, "widgets"), "widgets");
    }

    #[test]
    fn label_selection_is_one_selector_or_any_of_several() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        assert!(Labels::from_spec(&json!({})).unwrap().matches(&obj));
        assert!(Labels::from_spec(&json!({"labelSelector": {"matchLabels": {"app": "web"}}})).unwrap().matches(&obj));
        assert!(!Labels::from_spec(&json!({"labelSelector": {"matchLabels": {"app": "db"}}})).unwrap().matches(&obj));
        let any = json!({"orLabelSelectors": [{"matchLabels": {"app": "db"}}, {"matchLabels": {"tier": "front"}}]});
        assert!(Labels::from_spec(&any).unwrap().matches(&obj));
        assert!(both_selectors(&json!({"labelSelector": {}, "orLabelSelectors": []}), "restore").is_some());
    }
}
