//! What-if drains, simulated on the current state with kubectl's algorithm and the eviction
//! handler's rules: which pods would go, whether every eviction would eventually be allowed,
//! how many rounds it takes, which PDB blocks; and a rolling drain of every node (an upgrade).
//!
//! The model: kubectl evicts every pod of the node at once. A pod selected by two PDBs is refused
//! (500) for ever. A PDB lets through as many evictions as it allows now, then, once the evicted
//! pods are back Ready elsewhere, as many as it allows with every pod Ready: one round each
//! time. Displaced pods are assumed to find room on other nodes. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::index::Index;

/// A PDB that would stop a drain for ever, and why.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// `namespace/name` of the PDB (the first of them for pods under several).
    pub pdb: String,
    /// Pods of the node it holds back.
    pub pods: usize,
    pub reason: String,
}

/// What draining one node would do, simulated on the current state.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeWhatIf {
    pub node: String,
    /// Pods that would be evicted (kubectl's filters: not DaemonSet or mirror pods).
    pub pods: usize,
    /// Whether every eviction would eventually be allowed.
    pub completes: bool,
    /// Eviction rounds needed (1 when no PDB throttles, 0 when there is nothing to evict). For a
    /// drain that never completes, the rounds until only blocked pods are left.
    pub rounds: u32,
    /// `namespace/name` of the PDBs that would block for ever or throttle.
    pub blocked_by: Vec<String>,
    /// The PDBs that would block for ever, with the reason.
    pub blockers: Vec<Blocker>,
    /// The PDB that needs the most rounds, when one needs more than one.
    pub bottleneck: Option<String>,
    /// DaemonSet and mirror pods, which a drain leaves in place.
    pub skipped: usize,
    /// Pods with no controller: `kubectl drain` refuses them without `--force`.
    pub unmanaged: usize,
}

/// The order and bottleneck of draining every node one after the other.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollingDrain {
    /// Nodes in the suggested order: those that drain in fewest rounds first, blocked ones last.
    pub order: Vec<String>,
    /// Whether every node would drain.
    pub completes: bool,
    /// Rounds of the whole rolling drain (the sum over the nodes that complete).
    pub total_rounds: u32,
    /// The node that takes the most rounds (or the first blocked one).
    pub bottleneck_node: Option<String>,
    /// The PDB that holds up the most nodes.
    pub bottleneck_pdb: Option<String>,
    /// Nodes whose drain would never complete.
    pub blocked_nodes: Vec<String>,
}

fn qualified(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Rounds a PDB needs to let `n` pods go when it allows `now` at once now and `steady` at once
/// when every pod is Ready; `None` when it never lets them all go.
pub fn rounds_for(n: i64, now: i64, steady: i64) -> Option<u32> {
    if n <= 0 {
        return Some(0);
    }
    let now = now.max(0);
    if now >= n {
        return Some(1);
    }
    if steady <= 0 {
        return None;
    }
    let first = u32::from(now > 0);
    Some(first + u32::try_from((n - now + steady - 1) / steady).unwrap_or(u32::MAX))
}

impl Index<'_> {
    /// Simulates draining `node`.
    pub fn what_if(&self, node: &str) -> NodeWhatIf {
        let mut w = NodeWhatIf { node: node.to_string(), completes: true, ..NodeWhatIf::default() };
        // Pods per PDB that need its budget.
        let mut budgeted: BTreeMap<u32, i64> = BTreeMap::new();
        let mut several: BTreeMap<&[u32], usize> = BTreeMap::new();
        let mut free = false;
        for &i in self.pods_by_node.get(node).map(Vec::as_slice).unwrap_or_default() {
            let pod = &self.pods[i as usize];
            if pod.daemonset || pod.mirror {
                w.skipped += 1;
                continue;
            }
            w.pods += 1;
            w.unmanaged += usize::from(!pod.managed);
            let pdbs = &self.pod_pdbs[i as usize];
            match pdbs.as_slice() {
                _ if pod.bypasses_budgets() => free = true,
                [] => free = true,
                [one] => {
                    let p = &self.pdbs[*one as usize];
                    let (_, healthy, desired) = p.now;
                    let unhealthy_goes =
                        !pod.ready && (p.always_allow_unhealthy || (healthy >= desired && desired > 0));
                    if unhealthy_goes {
                        free = true;
                    } else {
                        *budgeted.entry(*one).or_default() += 1;
                    }
                }
                many => *several.entry(many).or_default() += 1,
            }
        }
        let mut rounds = u32::from(free);
        let mut slowest: Option<(u32, String)> = None;
        for (pdb, n) in budgeted {
            let p = &self.pdbs[pdb as usize];
            let name = qualified(p.ns, p.name);
            match rounds_for(n, p.now.0, p.budget.steady_allowed) {
                Some(r) => {
                    rounds = rounds.max(r);
                    if r > 1 {
                        w.blocked_by.push(name.clone());
                        if slowest.as_ref().is_none_or(|(s, _)| r > *s) {
                            slowest = Some((r, name));
                        }
                    }
                }
                None => {
                    w.completes = false;
                    let now = p.now.0.max(0);
                    rounds = rounds.max(u32::from(now > 0));
                    w.blocked_by.push(name.clone());
                    w.blockers.push(Blocker {
                        pdb: name,
                        pods: usize::try_from(n).unwrap_or_default(),
                        reason: format!(
                            "allows {now} disruption(s) now and none with every pod Ready ({}): {} pod(s) would wait for ever",
                            p.budget.explain,
                            n - now
                        ),
                    });
                }
            }
        }
        for (pdbs, n) in several {
            w.completes = false;
            let names: Vec<String> =
                pdbs.iter().map(|&p| &self.pdbs[p as usize]).map(|p| qualified(p.ns, p.name)).collect();
            w.blocked_by.extend(names.iter().cloned());
            w.blockers.push(Blocker {
                pdb: names[0].clone(),
                pods: n,
                reason: format!(
                    "{n} pod(s) are selected by several PDBs ({}): the Eviction API answers 500 for ever",
                    names.join(", ")
                ),
            });
        }
        w.blocked_by.sort();
        w.blocked_by.dedup();
        w.rounds = rounds;
        w.bottleneck = slowest.map(|(_, n)| n);
        w
    }

    /// What-ifs of every node, in inventory order.
    pub fn what_if_all(&self) -> Vec<NodeWhatIf> {
        self.nodes.iter().map(|n| self.what_if(n)).collect()
    }
}

/// Orders a rolling drain of the nodes of `whatifs` and finds its bottleneck.
pub fn rolling_drain(whatifs: &[NodeWhatIf]) -> RollingDrain {
    let mut sorted: Vec<&NodeWhatIf> = whatifs.iter().collect();
    sorted.sort_by(|a, b| (!a.completes, a.rounds, a.pods, &a.node).cmp(&(!b.completes, b.rounds, b.pods, &b.node)));
    let blocked_nodes: Vec<String> = sorted.iter().filter(|w| !w.completes).map(|w| w.node.clone()).collect();
    let bottleneck_node = match blocked_nodes.first() {
        Some(n) => Some(n.clone()),
        None => sorted.iter().filter(|w| w.rounds > 1).max_by_key(|w| w.rounds).map(|w| w.node.clone()),
    };
    // The PDB that holds up the most nodes; ties go to the first name.
    let mut holds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for w in &sorted {
        for b in &w.blockers {
            holds.entry(b.pdb.as_str()).or_default().0 += 1;
        }
        if let Some(b) = &w.bottleneck {
            holds.entry(b.as_str()).or_default().1 += 1;
        }
    }
    let bottleneck_pdb = holds.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(p, _)| p.to_string());
    RollingDrain {
        order: sorted.iter().map(|w| w.node.clone()).collect(),
        completes: blocked_nodes.is_empty(),
        total_rounds: sorted.iter().filter(|w| w.completes).map(|w| w.rounds).sum(),
        bottleneck_node,
        bottleneck_pdb,
        blocked_nodes,
    }
}
