//! Resource quantities as the scheduler counts them (`100m` CPU, `128Mi` memory), and what each
//! node has bound to it: the simulator's store keeps that tally up to date on every pod write, so
//! that scheduling one pod does not read every pod, and the velero-restore drill sums it to see
//! whether the cluster has room for a scratch namespace's quota.

use serde_json::Value;

/// What the pods bound to one node request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub pods: i64,
    pub cpu: i64,
    pub memory: i64,
}

impl std::ops::AddAssign for NodeLoad {
    fn add_assign(&mut self, l: NodeLoad) {
        (self.pods, self.cpu, self.memory) = (self.pods + l.pods, self.cpu + l.cpu, self.memory + l.memory);
    }
}

impl std::ops::SubAssign for NodeLoad {
    fn sub_assign(&mut self, l: NodeLoad) {
        (self.pods, self.cpu, self.memory) = (self.pods - l.pods, self.cpu - l.cpu, self.memory - l.memory);
    }
}

/// The node a pod counts against and what it requests: bound and not finished.
pub fn pod_load(pod: &Value) -> Option<(&str, NodeLoad)> {
    let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())?;
    if matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let (cpu, memory) = requests(pod);
    Some((node, NodeLoad { pods: 1, cpu, memory }))
}

/// CPU in millicores (`100m`, `1`, `0.5`).
pub fn cpu_millis(q: &Value) -> i64 {
    let s = q.as_str().map(str::to_string).unwrap_or_else(|| q.to_string());
    match s.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => (s.parse::<f64>().unwrap_or(0.0) * 1000.0) as i64,
    }
}

/// Memory in bytes (`128Mi`, `1Gi`, `500M`, `1024`).
pub fn memory_bytes(q: &Value) -> i64 {
    let s = q.as_str().map(str::to_string).unwrap_or_else(|| q.to_string());
    let units = [
        ("Ki", 1i64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return (n.parse::<f64>().unwrap_or(0.0) * mult as f64) as i64;
        }
    }
    s.parse().unwrap_or(0)
}

/// The CPU (millicores) and memory (bytes) a pod's containers request.
pub fn requests(pod: &Value) -> (i64, i64) {
    let mut cpu = 0;
    let mut mem = 0;
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        cpu += cpu_millis(&c["resources"]["requests"]["cpu"]);
        mem += memory_bytes(&c["resources"]["requests"]["memory"]);
    }
    (cpu, mem)
}
