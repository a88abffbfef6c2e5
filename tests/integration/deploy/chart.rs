//! Renders `deploy/helm/firedrill` as `helm template firedrill deploy/helm/firedrill -n firedrill`
//! would, with [`super::template`]: values.yaml merged with an override, every template file,
//! documents ordered by Helm's install order of kinds and then by file, each headed by its
//! `# Source:` line.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::template::{Result, Templates};

pub const RELEASE: &str = "firedrill";
pub const NAMESPACE: &str = "firedrill";

pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/firedrill")
}

/// Reads a YAML file into JSON values, as Helm reads values (numbers become JSON numbers).
pub fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Helm's coalescing of values: maps merge key by key, anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Helm's install order of kinds (pkg/release/util/kind_sorter.go); other kinds come last.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// One rendered document and the template it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub source: String,
    pub text: String,
}

impl Document {
    pub fn kind(&self) -> String {
        self.text.lines().find_map(|l| l.strip_prefix("kind: ")).unwrap_or_default().trim().to_string()
    }
}

/// The parsed chart: its templates and its Chart.yaml as `.Chart`.
pub struct Chart {
    templates: Templates,
    files: Vec<String>,
    chart: Value,
    values: Value,
}

impl Chart {
    pub fn load() -> Result<Chart> {
        let dir = chart_dir();
        let meta = read_yaml(&dir.join("Chart.yaml"));
        let chart = json!({
            "Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"],
            "Description": meta["description"], "Type": meta["type"],
        });
        let mut names: Vec<String> = std::fs::read_dir(dir.join("templates"))
            .map_err(|e| e.to_string())?
            .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut templates = Templates::default();
        let mut files = Vec::new();
        for name in names {
            let src = std::fs::read_to_string(dir.join("templates").join(&name)).map_err(|e| e.to_string())?;
            templates.add(&name, &src)?;
            if name.ends_with(".yaml") {
                files.push(name);
            }
        }
        Ok(Chart { templates, files, chart, values: read_yaml(&dir.join("values.yaml")) })
    }

    fn root(&self, overrides: &Value) -> Value {
        let mut values = self.values.clone();
        merge(&mut values, overrides);
        json!({
            "Values": values,
            "Chart": self.chart,
            "Release": {"Name": RELEASE, "Namespace": NAMESPACE, "Service": "Helm", "IsInstall": true},
        })
    }

    /// Renders every manifest template with values.yaml merged with `overrides`.
    pub fn render(&self, overrides: &Value) -> Result<Vec<Document>> {
        let root = self.root(overrides);
        let mut docs = Vec::new();
        for file in &self.files {
            let text = self.templates.render(file, &root)?;
            for part in split_documents(&text) {
                docs.push(Document { source: format!("firedrill/templates/{file}"), text: part });
            }
        }
        let order = |d: &Document| {
            let kind = d.kind();
            INSTALL_ORDER.iter().position(|k| *k == kind).unwrap_or(INSTALL_ORDER.len())
        };
        // Stable: documents of one kind keep the order of their files and within a file.
        docs.sort_by_key(order);
        Ok(docs)
    }

    /// NOTES.txt, rendered (helm prints it after an install).
    pub fn notes(&self, overrides: &Value) -> Result<String> {
        self.templates.render("NOTES.txt", &self.root(overrides))
    }
}

/// Splits rendered text at `---` lines, as Helm does, dropping documents that are only whitespace.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().expect("at least one document");
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter().map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect()
}

/// The text of a manifests file, as `helm template` prints it.
pub fn manifest_text(docs: &[Document]) -> String {
    docs.iter().map(|d| format!("---\n# Source: {}\n{}\n", d.source, d.text)).collect()
}

/// Reads a manifests file back into its documents.
pub fn parse_manifest_text(text: &str) -> Vec<Document> {
    split_documents(text)
        .into_iter()
        .map(|d| {
            let (first, rest) = d.split_once('\n').unwrap_or((&d, ""));
            match first.strip_prefix("# Source: ") {
                Some(source) => Document { source: source.to_string(), text: rest.to_string() },
                None => Document { source: String::new(), text: d.clone() },
            }
        })
        .collect()
}
