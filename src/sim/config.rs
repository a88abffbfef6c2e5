//! What a simulated cluster starts with: nodes, namespaces, apps (a Deployment or StatefulSet with
//! its PDB), any other manifests, timings and faults. Read from the `sim` section of a
//! `kind: SimCluster` file; unknown fields are errors, as in every firedrill file.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::faults::FaultConfig;
use super::server::{SimState, Timings};
use super::status::ApiError;
use crate::spec::raw::DurationText;

/// A simulated cluster's starting state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    /// Nodes; three Ready nodes `node-1`..`node-3` when empty.
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// Namespaces to create (besides `default`, `kube-system`, `kube-public`, `kube-node-lease`,
    /// `velero` and `cert-manager`, which always exist).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Workloads, each with its pods and optionally a PDB.
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// `kubernetes.io/tls` Secrets holding real self-signed certificates with a chosen validity
    /// (for rehearsing certificate expiry).
    #[serde(default)]
    pub tls_secrets: Vec<TlsSecretSpec>,
    /// Any other objects, as manifests (ConfigMaps, Secrets, PDBs, Velero BackupStorageLocations
    /// and Backups, cert-manager Issuers and Certificates, ...), created in order.
    #[serde(default)]
    pub objects: Vec<Value>,
    #[serde(default)]
    pub timings: Option<TimingsSpec>,
    #[serde(default)]
    pub faults: Option<FaultConfig>,
    /// A cluster where Velero is not installed: no `velero.io` API group, no `velero` namespace,
    /// no Velero controller (for rehearsing what a drill says there).
    #[serde(default)]
    pub without_velero: bool,
}

/// One node (or `count` of them named `<name>-1`..`<name>-<count>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Allocatable CPU (`4`, `3500m`); 4 by default.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Allocatable memory (`8Gi`); 16Gi by default.
    #[serde(default)]
    pub memory: Option<String>,
    /// Maximum pods; 110 by default.
    #[serde(default)]
    pub pods: Option<u32>,
    #[serde(default)]
    pub unschedulable: bool,
    /// Starts NotReady.
    #[serde(default)]
    pub not_ready: bool,
    #[serde(default)]
    pub taints: Vec<Value>,
}

/// A workload and its disruption budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    pub namespace: String,
    /// `Deployment` (default), `StatefulSet` or `DaemonSet`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Labels of the pods (`app: <name>` is always added).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// CPU each pod requests (`100m`).
    #[serde(default)]
    pub cpu: Option<String>,
    /// The pods use an emptyDir volume.
    #[serde(default)]
    pub empty_dir: bool,
    /// A PodDisruptionBudget `spec` for the app (`minAvailable`, `maxUnavailable`, ...); its
    /// selector is the app's.
    #[serde(default)]
    pub pdb: Option<Value>,
    /// Each pod gets a PersistentVolumeClaim of this size (StatefulSets use a claim template).
    #[serde(default)]
    pub volume: Option<String>,
}

/// A TLS Secret with a real certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSecretSpec {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// The certificate's whole lifetime (`90d` by default).
    #[serde(default)]
    pub valid_for: Option<DurationText>,
    /// How long until it expires, from the cluster's start: `5d`, or `-3d` for one that expired
    /// three days ago. Its whole lifetime by default (freshly issued).
    #[serde(default)]
    pub expires_in: Option<DurationText>,
}

/// Timings; the defaults keep tests fast.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimingsSpec {
    #[serde(default)]
    pub ready_after: Option<DurationText>,
    #[serde(default)]
    pub terminate_after: Option<DurationText>,
    #[serde(default)]
    pub velero_after: Option<DurationText>,
    #[serde(default)]
    pub bind_volume_after: Option<DurationText>,
    #[serde(default)]
    pub bookmark_interval: Option<DurationText>,
}

/// A `kind: SimCluster` file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub sim: SimConfig,
}

fn dur(d: &Option<DurationText>, default: Duration) -> Duration {
    d.as_ref().and_then(|t| humantime::parse_duration(t.0.trim()).ok()).unwrap_or(default)
}

impl SimConfig {
    pub fn timings(&self) -> Timings {
        let d = Timings::default();
        let Some(t) = &self.timings else { return d };
        Timings {
            ready_after: dur(&t.ready_after, d.ready_after),
            terminate_after: dur(&t.terminate_after, d.terminate_after),
            velero_after: dur(&t.velero_after, d.velero_after),
            bind_volume_after: dur(&t.bind_volume_after, d.bind_volume_after),
            bookmark_interval: dur(&t.bookmark_interval, d.bookmark_interval),
        }
    }
}

/// The `sim` section of a scenario file (the rest is the scenario's and checked elsewhere).
#[derive(Debug, Clone, Deserialize)]
struct ScenarioSim {
    #[serde(default)]
    sim: Option<SimConfig>,
}

/// The kind of a file.
#[derive(Debug, Clone, Deserialize)]
struct Kind {
    #[serde(default)]
    kind: String,
}

fn parse<T: for<'de> Deserialize<'de>>(path: &std::path::Path, text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        let msg = e.without_snippet().to_string();
        let msg = msg.lines().next().unwrap_or_default().to_string();
        let msg = msg.rfind(" at line ").map(|i| msg[..i].to_string()).unwrap_or(msg);
        format!("{}:{line}:{col}: {msg}", path.display())
    })
}

/// Reads a `kind: SimCluster` file, or the `sim` section of a `kind: Scenario` file; errors
/// name the file, line and column.
pub fn load(path: &std::path::Path) -> Result<SimConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: SimFile = match parse::<Kind>(path, &text)?.kind.as_str() {
        "SimCluster" => parse(path, &text)?,
        "Scenario" => {
            let sim = parse::<ScenarioSim>(path, &text)?.sim.ok_or_else(|| {
                format!("{}:1:1: this scenario has no `sim` section to start a simulated cluster from", path.display())
            })?;
            SimFile { api_version: String::new(), kind: "Scenario".into(), name: None, description: None, sim }
        }
        other => {
            return Err(format!(
                "{}:1:1: kind is `{other}`: a simulator file has `kind: SimCluster` (or is a Scenario with a `sim` section)",
                path.display()
            ));
        }
    };
    for (i, t) in [&file.sim.timings]
        .into_iter()
        .flatten()
        .flat_map(|t| [&t.ready_after, &t.terminate_after, &t.velero_after, &t.bind_volume_after, &t.bookmark_interval])
        .enumerate()
    {
        if let Some(d) = t {
            humantime::parse_duration(d.0.trim())
                .map_err(|e| format!("{}: sim.timings[{i}]: `{}` is not a duration: {e}", path.display(), d.0))?;
        }
    }
    Ok(file.sim)
}

fn node(name: &str, spec: &NodeSpec, now: &str) -> Value {
    let mut labels =
        json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"});
    for (k, v) in &spec.labels {
        labels[k] = json!(v);
    }
    let cpu = spec.cpu.clone().unwrap_or_else(|| "4".into());
    let memory = spec.memory.clone().unwrap_or_else(|| "16Gi".into());
    let pods = spec.pods.unwrap_or(110).to_string();
    let ready = if spec.not_ready { "False" } else { "True" };
    let condition = |t: &str, status: &str, reason: &str, message: &str| json!({"type": t, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now});
    let mut n = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", ready, if spec.not_ready { "KubeletNotReady" } else { "KubeletReady" }, if spec.not_ready { "simulated: not ready" } else { "kubelet is posting ready status" }),
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0", "containerRuntimeVersion": "containerd://2.0.0",
                "osImage": "firedrill simulated node", "kernelVersion": "6.1.0", "operatingSystem": "linux", "architecture": "amd64",
                "machineID": "", "systemUUID": "", "bootID": ""
            }
        }
    });
    if spec.unschedulable {
        n["spec"]["unschedulable"] = json!(true);
    }
    if !spec.taints.is_empty() {
        n["spec"]["taints"] = json!(spec.taints);
    }
    n
}

fn app_objects(app: &AppSpec) -> Vec<Value> {
    let mut labels = json!({"app": app.name});
    for (k, v) in &app.labels {
        labels[k] = json!(v);
    }
    let mut container = json!({"name": "app", "image": format!("registry.example/{}:1.0", app.name)});
    if let Some(cpu) = &app.cpu {
        container["resources"] = json!({"requests": {"cpu": cpu}});
    }
    let mut pod_spec = json!({"containers": [container]});
    if app.empty_dir {
        pod_spec["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
        pod_spec["containers"][0]["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
    }
    let kind = app.kind.clone().unwrap_or_else(|| "Deployment".into());
    let mut spec = json!({
        "selector": {"matchLabels": {"app": app.name}},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    });
    if kind != "DaemonSet" {
        spec["replicas"] = json!(app.replicas.unwrap_or(1));
    }
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(app.name);
        if let Some(size) = &app.volume {
            spec["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}]);
        }
    }
    let mut out = vec![
        json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": app.name, "namespace": app.namespace, "labels": {"app": app.name}}, "spec": spec}),
    ];
    if let Some(pdb) = &app.pdb {
        let mut pdb_spec = pdb.clone();
        pdb_spec["selector"] = json!({"matchLabels": {"app": app.name}});
        out.push(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": app.name, "namespace": app.namespace}, "spec": pdb_spec}));
    }
    out
}

/// Creates one manifest through the store.
pub fn create_object(state: &SimState, obj: Value) -> Result<(), ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let t = state.store.registry.by_kind(api_version, kind).ok_or_else(|| {
        ApiError::new(400, "BadRequest", format!("no kind \"{kind}\" is registered for version \"{api_version}\""))
    })?;
    let ns = if t.namespaced {
        obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string()
    } else {
        String::new()
    };
    // Objects written with a status (seeded backups, nodes) keep it: the status subresource is
    // what a controller would have written.
    let status = obj.get("status").cloned();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    state.store.create(&t, &ns, obj, false)?;
    if let Some(s) = status.filter(|_| t.status) {
        state.store.mutate(&t, &ns, &name, super::store::Part::Status, false, |o| {
            let mut n = o.clone();
            n["status"] = s;
            Ok(Some(n))
        })?;
    }
    Ok(())
}

/// Seeds a fresh cluster.
pub async fn seed(state: &SimState, config: &SimConfig) -> Result<(), ApiError> {
    let now = state.store.clock.stamp();
    let defaults: Vec<&str> = ["default", "kube-system", "kube-public", "kube-node-lease", "velero", "cert-manager"]
        .into_iter()
        .filter(|ns| !(config.without_velero && *ns == "velero"))
        .collect();
    // A default namespace listed again (a cert-manager scenario naming `cert-manager`) is created once.
    let listed = config.namespaces.iter().filter(|ns| !defaults.contains(&ns.as_str())).cloned();
    for ns in defaults.iter().map(|s| s.to_string()).chain(listed) {
        create_object(state, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
    }
    let nodes = if config.nodes.is_empty() {
        vec![NodeSpec { name: "node".into(), count: Some(3), ..NodeSpec::default() }]
    } else {
        config.nodes.clone()
    };
    for spec in &nodes {
        match spec.count {
            Some(n) => {
                for i in 1..=n {
                    create_object(state, node(&format!("{}-{i}", spec.name), spec, &now))?;
                }
            }
            None => create_object(state, node(&spec.name, spec, &now))?,
        }
    }
    for app in &config.apps {
        for obj in app_objects(app) {
            create_object(state, obj)?;
        }
    }
    for tls in &config.tls_secrets {
        create_object(state, tls_secret(tls, state.store.clock.now())?)?;
    }
    for obj in &config.objects {
        create_object(state, obj.clone())?;
    }
    Ok(())
}

/// A signed duration: `5d`, `-3d`.
fn signed(text: &str) -> Option<chrono::TimeDelta> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let d = chrono::TimeDelta::from_std(humantime::parse_duration(rest.trim()).ok()?).ok()?;
    Some(if negative { -d } else { d })
}

fn tls_secret(spec: &TlsSecretSpec, now: chrono::DateTime<chrono::Utc>) -> Result<Value, ApiError> {
    let bad =
        |m: String| ApiError::new(400, "BadRequest", format!("sim.tlsSecrets {}/{}: {m}", spec.namespace, spec.name));
    let valid = spec
        .valid_for
        .as_ref()
        .map_or(Some(chrono::TimeDelta::days(90)), |d| signed(&d.0))
        .ok_or_else(|| bad("validFor is not a duration".into()))?;
    let left = match &spec.expires_in {
        Some(d) => signed(&d.0).ok_or_else(|| bad("expiresIn is not a duration".into()))?,
        None => valid,
    };
    let issued_at = now + left - valid;
    let dns: Vec<String> = if spec.dns_names.is_empty() {
        vec![format!("{}.{}.svc", spec.name, spec.namespace)]
    } else {
        spec.dns_names.clone()
    };
    let cert = json!({"secretName": spec.name, "issuerRef": {"name": "firedrill-sim-seed"}, "dnsNames": dns, "duration": format!("{}s", valid.num_seconds())});
    let cert_spec = super::certmanager::pki::cert_spec(&cert).map_err(|e| bad(e.to_string()))?;
    let issued = super::certmanager::pki::issue_self_signed(&cert_spec, issued_at).map_err(|e| bad(e.to_string()))?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "data": super::certmanager::pki::secret_data(&issued),
    }))
}
