//! The resource types the simulator serves: every built-in type a drill or kubectl touches, the
//! custom resources of the Velero and cert-manager stand-ins, and any type a CustomResourceDefinition
//! adds at run time. A type's entry says how the API server treats it (scope, subresources, whether
//! strategic merge patch and unconditional updates are allowed, which field selectors work).

use std::sync::{Arc, RwLock};

/// One served resource type (one version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    /// Has a `/status` subresource (main-resource writes ignore `.status`, `/status` writes ignore the rest).
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: bool,
    /// A built-in type: strategic merge patch is accepted, and PUT without `resourceVersion` updates
    /// unconditionally. Custom resources refuse both (415, 422).
    pub builtin: bool,
    /// `metadata.generation` counts changes to the desired state.
    pub generation: bool,
    /// Field selectors supported beyond `metadata.name` and `metadata.namespace`.
    pub field_labels: Vec<String>,
    /// Discovery categories (`all`).
    pub categories: Vec<String>,
}

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The storage identity: the same for every version of a type.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `pods`, `deployments.apps`: the group-resource of error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `Pod`, `Deployment.apps`: the qualified kind of `Invalid` messages.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `/api/v1` or `/apis/group/version`.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Whether `field` may be used in a field selector on this type.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (self.namespaced && field == "metadata.namespace")
            || self.field_labels.iter().any(|f| f == field)
    }
}

/// The set of served types.
#[derive(Debug, Default)]
pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
}

/// Builds a built-in type.
struct B(ResourceType);

impl B {
    fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        B(ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: Vec::new(),
            namespaced,
            status: false,
            scale: false,
            builtin: true,
            generation: false,
            field_labels: Vec::new(),
            categories: Vec::new(),
        })
    }
    fn status(mut self) -> Self {
        self.0.status = true;
        self
    }
    fn scale(mut self) -> Self {
        self.0.scale = true;
        self
    }
    /// A spec-bearing type: generation counts spec changes.
    fn spec(mut self) -> Self {
        self.0.generation = true;
        self
    }
    fn short(mut self, names: &[&str]) -> Self {
        self.0.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }
    fn fields(mut self, fields: &[&str]) -> Self {
        self.0.field_labels = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    fn all(mut self) -> Self {
        self.0.categories = vec!["all".into()];
        self
    }
    /// A custom resource: no strategic merge, updates need a resourceVersion, generation on any
    /// change but metadata (and status, when it has the subresource).
    fn custom(mut self) -> Self {
        self.0.builtin = false;
        self.0.generation = true;
        self
    }
    fn done(self) -> Arc<ResourceType> {
        Arc::new(self.0)
    }
}

fn builtins() -> Vec<Arc<ResourceType>> {
    let pod_fields = [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];
    let event_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    vec![
        B::new("", "v1", "Namespace", "namespaces", false).status().short(&["ns"]).fields(&["status.phase"]).done(),
        B::new("", "v1", "Node", "nodes", false).status().short(&["no"]).fields(&["spec.unschedulable"]).done(),
        B::new("", "v1", "Pod", "pods", true).status().short(&["po"]).fields(&pod_fields).all().done(),
        B::new("", "v1", "Service", "services", true)
            .status()
            .short(&["svc"])
            .fields(&["spec.clusterIP", "spec.type"])
            .all()
            .done(),
        B::new("", "v1", "Endpoints", "endpoints", true).short(&["ep"]).done(),
        B::new("", "v1", "ConfigMap", "configmaps", true).short(&["cm"]).done(),
        B::new("", "v1", "Secret", "secrets", true).fields(&["type"]).done(),
        B::new("", "v1", "ServiceAccount", "serviceaccounts", true).short(&["sa"]).done(),
        B::new("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true).status().short(&["pvc"]).done(),
        B::new("", "v1", "PersistentVolume", "persistentvolumes", false).status().short(&["pv"]).done(),
        B::new("", "v1", "Event", "events", true).short(&["ev"]).fields(&event_fields).done(),
        B::new("", "v1", "ResourceQuota", "resourcequotas", true).status().short(&["quota"]).done(),
        B::new("", "v1", "LimitRange", "limitranges", true).short(&["limits"]).done(),
        B::new("apps", "v1", "Deployment", "deployments", true).status().scale().spec().short(&["deploy"]).all().done(),
        B::new("apps", "v1", "ReplicaSet", "replicasets", true).status().scale().spec().short(&["rs"]).all().done(),
        B::new("apps", "v1", "StatefulSet", "statefulsets", true).status().scale().spec().short(&["sts"]).all().done(),
        B::new("apps", "v1", "DaemonSet", "daemonsets", true).status().spec().short(&["ds"]).all().done(),
        B::new("apps", "v1", "ControllerRevision", "controllerrevisions", true).done(),
        B::new("batch", "v1", "Job", "jobs", true).status().spec().fields(&["status.successful"]).all().done(),
        B::new("batch", "v1", "CronJob", "cronjobs", true).status().spec().short(&["cj"]).all().done(),
        B::new("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true)
            .status()
            .spec()
            .short(&["pdb"])
            .done(),
        B::new("coordination.k8s.io", "v1", "Lease", "leases", true).done(),
        B::new("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false)
            .status()
            .spec()
            .short(&["crd", "crds"])
            .done(),
        B::new("networking.k8s.io", "v1", "Ingress", "ingresses", true).status().spec().short(&["ing"]).done(),
        B::new("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true).spec().short(&["netpol"]).done(),
        B::new("rbac.authorization.k8s.io", "v1", "Role", "roles", true).done(),
        B::new("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true).done(),
        B::new("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false).done(),
        B::new("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false).done(),
        B::new(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
        )
        .spec()
        .done(),
        B::new(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
        )
        .spec()
        .done(),
        B::new("apiregistration.k8s.io", "v1", "APIService", "apiservices", false).status().spec().done(),
        B::new("storage.k8s.io", "v1", "StorageClass", "storageclasses", false).short(&["sc"]).done(),
        // The Velero stand-in's types: no status subresource, as in Velero's CRDs.
        B::new("velero.io", "v1", "Backup", "backups", true).custom().done(),
        B::new("velero.io", "v1", "Restore", "restores", true).custom().done(),
        B::new("velero.io", "v1", "Schedule", "schedules", true).custom().done(),
        B::new("velero.io", "v1", "BackupStorageLocation", "backupstoragelocations", true)
            .custom()
            .short(&["bsl"])
            .done(),
        B::new("velero.io", "v1", "DeleteBackupRequest", "deletebackuprequests", true).custom().done(),
        // The cert-manager stand-in's types, with status subresources as in cert-manager's CRDs.
        B::new("cert-manager.io", "v1", "Certificate", "certificates", true)
            .custom()
            .status()
            .short(&["cert", "certs"])
            .done(),
        B::new("cert-manager.io", "v1", "CertificateRequest", "certificaterequests", true)
            .custom()
            .status()
            .short(&["cr", "crs"])
            .done(),
        B::new("cert-manager.io", "v1", "Issuer", "issuers", true).custom().status().done(),
        B::new("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers", false).custom().status().done(),
    ]
}

impl Registry {
    /// The built-in types and the stand-ins' custom resources.
    pub fn new() -> Self {
        Self { types: RwLock::new(builtins()) }
    }

    /// The same without the types of API group `group` (a cluster where that component is not
    /// installed).
    pub fn without_group(group: &str) -> Self {
        Self { types: RwLock::new(builtins().into_iter().filter(|t| t.group != group).collect()) }
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The type served at `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all().into_iter().find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type of objects with this `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.all().into_iter().find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// The type with storage identity `key` (any version).
    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceType>> {
        self.all().into_iter().find(|t| t.key() == key)
    }

    /// Whether any type is served under `group`/`version`.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.all().iter().any(|t| t.group == group && t.version == version)
    }

    /// Adds (or replaces) the types a CustomResourceDefinition declares; returns them.
    pub fn register(&self, types: Vec<ResourceType>) -> Vec<Arc<ResourceType>> {
        let mut all = self.types.write().unwrap_or_else(|e| e.into_inner());
        let mut added = Vec::new();
        for t in types {
            all.retain(|x| !(x.group == t.group && x.version == t.version && x.plural == t.plural));
            let t = Arc::new(t);
            all.push(t.clone());
            added.push(t);
        }
        added
    }

    /// Removes the custom types of `group` with `plural` (their CRD was deleted).
    pub fn unregister(&self, group: &str, plural: &str) {
        self.types
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t| t.builtin || !(t.group == group && t.plural == plural));
    }
}

/// The types a CustomResourceDefinition object declares (one per served version).
pub fn from_crd(crd: &serde_json::Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceType {
            group: s(&spec["group"]),
            version: s(&v["name"]),
            kind: s(&names["kind"]),
            plural: s(&names["plural"]),
            singular: if names["singular"].is_string() {
                s(&names["singular"])
            } else {
                s(&names["kind"]).to_lowercase()
            },
            short_names: names["shortNames"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            status: v["subresources"].get("status").is_some(),
            scale: v["subresources"].get("scale").is_some(),
            builtin: false,
            generation: true,
            field_labels: v["selectableFields"]
                .as_array()
                .map(|a| a.iter().map(|f| s(&f["jsonPath"]).trim_start_matches('.').to_string()).collect())
                .unwrap_or_default(),
            categories: names["categories"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_type_come_out_as_the_api_server_writes_them() {
        let r = Registry::new();
        let d = r.find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            (d.api_version(), d.group_resource(), d.prefix()),
            ("apps/v1".into(), "deployments.apps".into(), "/apis/apps/v1".into())
        );
        let p = r.by_kind("v1", "Pod").unwrap();
        assert_eq!((p.group_resource(), p.prefix(), p.key()), ("pods".into(), "/api/v1".into(), "/pods".into()));
        assert!(p.supports_field("spec.nodeName") && !p.supports_field("spec.host"));
        let b = r.find("velero.io", "v1", "backups").unwrap();
        assert!(!b.status && !b.builtin, "Velero's Backup has no status subresource and is a custom resource");
        assert!(r.find("cert-manager.io", "v1", "certificates").unwrap().status);
    }

    #[test]
    fn a_crd_adds_its_served_versions() {
        let r = Registry::new();
        let crd = serde_json::json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "subresources": {"status": {}}}, {"name": "v0", "served": false}]}});
        let added = r.register(from_crd(&crd));
        assert_eq!(added.len(), 1);
        let w = r.find("example.com", "v1", "widgets").unwrap();
        assert!(w.status && w.namespaced && !w.builtin);
        assert_eq!(w.short_names, ["wd"]);
        r.unregister("example.com", "widgets");
        assert!(r.find("example.com", "v1", "widgets").is_none());
    }
}
