//! Test fixtures: inventories built in memory, the way a cluster would hold them.
//! `World::nodes(3).deployment("web", 3).pdb(Pdb::for_app("web").max_unavailable(1))`.

use serde_json::{Value, json};

use super::analysis::Inventory;

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid fixture object")
}

pub struct World {
    pub inv: Inventory,
    nodes: usize,
}

fn ready_pod(ns: &str, name: &str, node: &str, labels: &Value, owner: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner]},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

impl World {
    pub fn nodes(n: usize) -> Self {
        let nodes = (1..=n).map(|i| from(json!({"metadata": {"name": format!("node-{i}")}}))).collect();
        Self { inv: Inventory { nodes, ..Inventory::default() }, nodes: n }
    }

    /// A Deployment `name` in `default` with `replicas` Ready pods `name-0..` spread round-robin
    /// over the nodes, labelled `app: name`.
    pub fn deployment(self, name: &str, replicas: usize) -> Self {
        self.deployment_in("default", name, replicas)
    }

    pub fn deployment_in(mut self, ns: &str, name: &str, replicas: usize) -> Self {
        let labels = json!({"app": name});
        self.inv.deployments.push(from(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}}
        })));
        let rs = format!("{name}-rs");
        self.inv.replicasets.push(from(json!({
            "metadata": {"name": rs, "namespace": ns, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "u", "controller": true}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}}
        })));
        let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "u", "controller": true});
        self.add_pods(ns, name, replicas, &labels, owner)
    }

    pub fn statefulset(mut self, name: &str, replicas: usize) -> Self {
        let labels = json!({"app": name});
        self.inv.statefulsets.push(from(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}}
        })));
        let owner =
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": "u", "controller": true});
        self.add_pods("default", name, replicas, &labels, owner)
    }

    fn add_pods(mut self, ns: &str, name: &str, replicas: usize, labels: &Value, owner: Value) -> Self {
        for i in 0..replicas {
            let node = format!("node-{}", i % self.nodes + 1);
            self.inv.pods.push(from(ready_pod(ns, &format!("{name}-{i}"), &node, labels, owner.clone())));
        }
        self
    }

    /// A DaemonSet pod and a mirror pod on every node.
    pub fn system_pods(mut self) -> Self {
        for i in 1..=self.nodes {
            let node = format!("node-{i}");
            let ds =
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "proxy", "uid": "u", "controller": true});
            self.inv.pods.push(from(ready_pod(
                "kube-system",
                &format!("proxy-{i}"),
                &node,
                &json!({"app": "proxy"}),
                ds,
            )));
            let mut mirror = ready_pod(
                "kube-system",
                &format!("etcd-{node}"),
                &node,
                &json!({"component": "etcd"}),
                json!({"apiVersion": "v1", "kind": "Node", "name": node, "uid": "n", "controller": true}),
            );
            mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
            self.inv.pods.push(from(mirror));
        }
        self
    }

    /// Moves pod `name` to `node`.
    pub fn on(mut self, name: &str, node: &str) -> Self {
        let p = self.inv.pods.iter_mut().find(|p| p.metadata.name.as_deref() == Some(name)).expect("pod exists");
        p.spec.as_mut().expect("spec").node_name = Some(node.to_string());
        self
    }

    /// Makes pod `name` Running but not Ready.
    pub fn not_ready(mut self, name: &str) -> Self {
        let p = self.inv.pods.iter_mut().find(|p| p.metadata.name.as_deref() == Some(name)).expect("pod exists");
        let status = p.status.as_mut().expect("status");
        status.conditions = Some(vec![from(json!({"type": "Ready", "status": "False"}))]);
        self
    }

    pub fn pdb(mut self, pdb: Pdb) -> Self {
        self.inv.pdbs.push(from(pdb.0));
        self
    }
}

/// A PodDisruptionBudget under construction.
pub struct Pdb(Value);

impl Pdb {
    /// Named after the app, selecting `app: <app>` in `default`.
    pub fn for_app(app: &str) -> Self {
        Pdb(
            json!({"metadata": {"name": app, "namespace": "default", "generation": 1}, "spec": {"selector": {"matchLabels": {"app": app}}}}),
        )
    }

    pub fn named(mut self, name: &str) -> Self {
        self.0["metadata"]["name"] = json!(name);
        self
    }

    pub fn selector(mut self, selector: Value) -> Self {
        self.0["spec"]["selector"] = selector;
        self
    }

    pub fn max_unavailable(mut self, v: impl Into<Value>) -> Self {
        self.0["spec"]["maxUnavailable"] = v.into();
        self
    }

    pub fn min_available(mut self, v: impl Into<Value>) -> Self {
        self.0["spec"]["minAvailable"] = v.into();
        self
    }

    pub fn always_allow(mut self) -> Self {
        self.0["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        self
    }

    /// The status the disruption controller wrote, for the current generation.
    pub fn status(mut self, allowed: i32, healthy: i32, desired: i32) -> Self {
        self.0["status"] = json!({"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": healthy});
        self
    }
}
