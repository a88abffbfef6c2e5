//! Which node to drain, and the guards that refuse a drain: never the last Ready nodes, never
//! more nodes unavailable at once than the budget allows. Pure: nodes in, a decision out.

use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

use super::spec::Budget;

/// What the guards and strategies need to know of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    pub ready: bool,
    pub unschedulable: bool,
    /// Pods a drain would evict.
    pub evictable: usize,
}

/// Whether a node's `Ready` condition is `True`.
pub fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn unschedulable(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

impl NodeView {
    pub fn of(node: &Node, evictable: usize) -> Self {
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            ready: ready(node),
            unschedulable: unschedulable(node),
            evictable,
        }
    }
    fn available(&self) -> bool {
        self.ready && !self.unschedulable
    }
}

/// Refuses draining `target` when too few Ready, schedulable nodes would remain, or too many
/// nodes would be unavailable at once. The message says why and what to change.
pub fn guard(nodes: &[NodeView], target: &str, min_ready: u32, budget: Budget) -> Result<(), String> {
    if !nodes.iter().any(|n| n.name == target) {
        return Err(format!("there is no node `{target}`"));
    }
    let others = nodes.iter().filter(|n| n.name != target);
    let remaining = others.clone().filter(|n| n.available()).count();
    if remaining < min_ready as usize {
        return Err(format!(
            "draining {target} would leave {remaining} Ready, schedulable node(s) for its pods, fewer than minReadyNodes ({min_ready}): the drill never drains the last Ready nodes"
        ));
    }
    let down: Vec<&str> = others.filter(|n| !n.available()).map(|n| n.name.as_str()).collect();
    let allowed = budget.of(nodes.len());
    if down.len() + 1 > allowed {
        return Err(format!(
            "{} of {} nodes are already unschedulable or NotReady ({}); draining {target} would make {}, more than maxUnavailableNodes allows ({allowed})",
            down.len(),
            nodes.len(),
            down.join(", "),
            down.len() + 1
        ));
    }
    Ok(())
}

/// The candidate with the most pods to evict (ties: the first by name).
pub fn busiest<'a>(candidates: impl IntoIterator<Item = &'a NodeView>) -> Option<&'a NodeView> {
    let mut all: Vec<&NodeView> = candidates.into_iter().collect();
    all.sort_by(|a, b| b.evictable.cmp(&a.evictable).then_with(|| a.name.cmp(&b.name)));
    all.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, ready: bool, unschedulable: bool, evictable: usize) -> NodeView {
        NodeView { name: name.into(), ready, unschedulable, evictable }
    }

    #[test]
    fn the_last_ready_node_is_never_drained() {
        let nodes = [n("a", true, false, 3), n("b", false, false, 0)];
        let e = guard(&nodes, "a", 1, Budget::Count(5)).unwrap_err();
        assert!(e.contains("would leave 0 Ready, schedulable node(s)"), "{e}");
        assert!(guard(&[n("a", true, false, 3), n("b", true, false, 0)], "a", 1, Budget::Count(1)).is_ok());
        assert!(guard(&nodes, "c", 1, Budget::Count(1)).unwrap_err().contains("no node `c`"));
    }

    #[test]
    fn the_budget_counts_nodes_already_down() {
        let nodes = [n("a", true, false, 3), n("b", true, true, 0), n("c", true, false, 0)];
        let e = guard(&nodes, "a", 1, Budget::Count(1)).unwrap_err();
        assert!(e.contains("1 of 3 nodes are already unschedulable or NotReady (b)"), "{e}");
        assert!(guard(&nodes, "a", 1, Budget::Count(2)).is_ok());
        assert!(guard(&nodes, "a", 1, Budget::Percent(50)).is_ok(), "50% of 3 rounds up to 2");
        // The drained node itself already cordoned counts once.
        assert!(guard(&nodes, "b", 1, Budget::Count(1)).is_ok());
    }

    #[test]
    fn busiest_prefers_most_pods_then_name() {
        let nodes = [n("b", true, false, 2), n("a", true, false, 2), n("c", true, false, 1)];
        assert_eq!(busiest(&nodes).unwrap().name, "a");
    }
}
