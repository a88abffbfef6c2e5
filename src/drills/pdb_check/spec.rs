//! The `pdbCheck` block of a drill file, and its validation.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::{Finding, FindingCode, Scope, Severity};
use crate::spec::{Loc, Validator};

/// Check PodDisruptionBudgets against the workloads they protect, and simulate draining each node
/// and all of them in turn (read-only).
#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "PdbCheck")]
pub struct Spec {
    /// Namespaces whose workloads and PDBs are checked. Every namespace except `kube-system`
    /// when unset; list `kube-system` here to check it too. The what-if always counts every pod
    /// of a node, whatever its namespace, as a real drain does.
    #[serde(default)]
    pub namespaces: Option<Loc<Vec<Loc<String>>>>,
    /// The least severe finding that fails the drill: `info`, `warning` (default) or `critical`.
    #[serde(default)]
    pub fail_on: Option<Severity>,
    /// Simulate draining each node and a rolling drain of every node (default `true`).
    #[serde(default)]
    pub what_if: Option<bool>,
    /// Findings accepted on purpose: an entry ignores the findings that match all the fields it
    /// gives.
    #[serde(default)]
    pub ignore: Vec<Loc<IgnoreSpec>>,
}

/// Findings to ignore: those matching every field given (at least one).
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "PdbCheckIgnore")]
pub struct IgnoreSpec {
    /// A finding code (`missing-pdb`, `single-replica-with-pdb`, ...).
    #[serde(default)]
    pub code: Option<FindingCode>,
    /// The namespace of the finding.
    #[serde(default)]
    pub namespace: Option<Loc<String>>,
    /// The name of one of the objects the finding names (a workload, a PDB, a pod).
    #[serde(default)]
    pub name: Option<Loc<String>>,
}

/// An ignore entry, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<FindingCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Ignore {
    pub fn matches(&self, f: &Finding) -> bool {
        self.code.is_none_or(|c| c == f.code)
            && self.namespace.as_ref().is_none_or(|n| *n == f.namespace)
            && self.name.as_ref().is_none_or(|n| f.objects.iter().any(|o| o.name == *n))
    }
}

/// The validated parameters of a `pdb-check` drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub cluster: crate::cluster::Target,
    pub scope: Scope,
    pub fail_on: Severity,
    pub what_if: bool,
    pub ignore: Vec<Ignore>,
}

/// A namespace name as Kubernetes accepts it (an RFC 1123 label).
fn namespace_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn namespace(v: &mut Validator, text: &Loc<String>, what: &str) -> Option<String> {
    let ns = v.non_empty(text, what)?;
    if !namespace_name(&ns) {
        v.error(
            text.at(),
            format!(
                "`{ns}` is not a namespace name: write lower-case letters, digits and `-` (at most 63), e.g. `payments`"
            ),
        );
        return None;
    }
    Some(ns)
}

/// Validates the `pdbCheck` block.
pub fn validate(v: &mut Validator, spec: &Loc<Spec>, cluster: crate::cluster::Target) -> Option<Params> {
    let s = &spec.value;
    let scope = match &s.namespaces {
        None => Scope::AllButKubeSystem,
        Some(list) if list.value.is_empty() => {
            v.error(
                list.at(),
                "`namespaces` is empty, so nothing would be checked: list namespaces, or remove it to check every namespace but kube-system",
            );
            return None;
        }
        Some(list) => {
            let names: BTreeSet<String> =
                list.value.iter().filter_map(|n| namespace(v, n, "a namespaces entry")).collect();
            Scope::Only(names)
        }
    };
    let mut ignore = Vec::new();
    for entry in &s.ignore {
        let e = &entry.value;
        if e.code.is_none() && e.namespace.is_none() && e.name.is_none() {
            let codes: Vec<&str> = FindingCode::ALL.iter().map(|c| c.name()).collect();
            v.error(
                entry.at(),
                format!(
                    "an ignore entry needs at least one of `code`, `namespace` and `name`; codes are {}",
                    codes.join(", ")
                ),
            );
            continue;
        }
        ignore.push(Ignore {
            code: e.code,
            namespace: e.namespace.as_ref().and_then(|n| namespace(v, n, "ignore.namespace")),
            name: e.name.as_ref().and_then(|n| v.non_empty(n, "ignore.name")),
        });
    }
    Some(Params {
        cluster,
        scope,
        fail_on: s.fail_on.unwrap_or(Severity::Warning),
        what_if: s.what_if.unwrap_or(true),
        ignore,
    })
}
