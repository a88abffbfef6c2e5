//! The `nodeDrain` block of a drill file, and its validation into [`Params`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::Target;
use crate::probes;
use crate::spec::raw::DurationText;
use crate::spec::{Loc, Validator};

/// How long evictions may take, by default, before the drill fails naming what blocked them.
pub const DEFAULT_EVICTION_TIMEOUT: Duration = Duration::from_secs(300);

/// Cordon a node, evict its pods through the Eviction API honouring PodDisruptionBudgets, wait
/// until every displaced workload is available again elsewhere, and uncordon it.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "NodeDrain")]
pub struct Spec {
    /// The node to drain, by name. Give this or `selector`.
    #[serde(default)]
    pub node: Option<Loc<String>>,
    /// A label selector (`pool=web,zone in (a,b)`) naming the candidate nodes; `strategy`
    /// picks one. Give this or `node`.
    #[serde(default)]
    pub selector: Option<Loc<String>>,
    /// How to pick among the nodes `selector` names: `busiest` (most pods to evict, the
    /// default), `random`, or `safe` (the busiest node that pdb-check's what-if says drains
    /// completely).
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// At least this many Ready, schedulable nodes must remain besides the drained one (default
    /// 1: never drain the last Ready node).
    #[serde(default)]
    pub min_ready_nodes: Option<u32>,
    /// At most this many nodes (`2`) or this share of them (`10%`, rounded up) may be
    /// unschedulable or NotReady at once, the drained one included (default 1).
    #[serde(default)]
    pub max_unavailable_nodes: Option<Loc<CountOrShare>>,
    /// Leave DaemonSet-managed pods on the node, as `kubectl drain --ignore-daemonsets`
    /// (default `true`; `false` refuses to drain a node that runs any).
    #[serde(default)]
    pub ignore_daemon_sets: Option<bool>,
    /// Evict pods that use emptyDir volumes, whose data is lost, as
    /// `--delete-emptydir-data` (default `false`, like kubectl: such pods make the drill refuse).
    #[serde(default)]
    pub delete_empty_dir_data: Option<bool>,
    /// Evict pods that no controller manages (they are not recreated), as `--force`
    /// (default `false`: such pods make the drill refuse).
    #[serde(default)]
    pub force: Option<bool>,
    /// Termination grace period for the evicted pods (`0s`..); each pod's own when unset.
    #[serde(default)]
    pub grace_period: Option<Loc<DurationText>>,
    /// How long evictions may take in all, PDB waits included (default `5m`); then the drill
    /// fails naming the blocking PDBs. Keep it below `timeouts.act`.
    #[serde(default)]
    pub eviction_timeout: Option<Loc<DurationText>>,
    /// Leave the node cordoned at the end (default `false`: it is always uncordoned).
    #[serde(default)]
    pub leave_cordoned: Option<bool>,
    /// Delete pods directly instead of evicting them: PodDisruptionBudgets are bypassed
    /// (default `false`; the record says so when set).
    #[serde(default)]
    pub disable_eviction: Option<bool>,
    /// Probes run throughout the drain (a failure is an SLO breach that fails the drill) and
    /// once after it.
    #[serde(default)]
    pub probes: Vec<Loc<probes::Spec>>,
}

/// How to pick a node among those a selector names.
#[derive(Deserialize, Serialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    #[default]
    Busiest,
    Random,
    Safe,
}

/// A number of nodes or a share of them.
#[derive(Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum CountOrShare {
    Count(u32),
    /// A percentage, `10%`.
    Share(String),
}

/// Which node to drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Choice {
    Named(String),
    Selected { selector: String, strategy: Strategy },
}

/// A validated node budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Budget {
    Count(u32),
    Percent(u32),
}

impl Budget {
    /// The number of nodes this budget allows out of `total` (a share rounds up).
    pub fn of(self, total: usize) -> usize {
        match self {
            Budget::Count(n) => n as usize,
            Budget::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// The validated parameters of a `node-drain` drill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub cluster: Target,
    pub choice: Choice,
    pub min_ready_nodes: u32,
    pub max_unavailable_nodes: Budget,
    pub ignore_daemon_sets: bool,
    pub delete_empty_dir_data: bool,
    pub force: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    #[serde(with = "crate::measure::ms")]
    pub eviction_timeout: Duration,
    pub leave_cordoned: bool,
    pub disable_eviction: bool,
    pub probes: Vec<probes::Probe>,
}

fn budget(v: &mut Validator, spec: &Loc<CountOrShare>) -> Option<Budget> {
    let bad = "maxUnavailableNodes is a number of nodes (`1`) or a share of them (`10%`)";
    match &spec.value {
        CountOrShare::Count(0) => {
            v.error(spec.at(), "maxUnavailableNodes: 0 allows no drain at all: write 1 or more, or a share like `10%`");
            None
        }
        CountOrShare::Count(n) => Some(Budget::Count(*n)),
        CountOrShare::Share(s) => match s.trim().strip_suffix('%').map(|p| p.trim().parse::<u32>()) {
            Some(Ok(p)) if (1..=100).contains(&p) => Some(Budget::Percent(p)),
            _ => {
                v.error(spec.at(), format!("`{s}`: {bad}, between 1% and 100%"));
                None
            }
        },
    }
}

/// Validates the `nodeDrain` block.
pub fn validate(v: &mut Validator, spec: &Loc<Spec>, cluster: Target) -> Option<Params> {
    let s = &spec.value;
    let choice = match (&s.node, &s.selector) {
        (Some(n), None) => {
            if s.strategy.is_some() {
                v.error(
                    n.at(),
                    "`strategy` picks among the nodes of a `selector`; with `node` it has nothing to pick: remove it",
                );
            }
            v.non_empty(n, "node").map(Choice::Named)
        }
        (None, Some(sel)) => {
            // The API server parses the selector (and says what is wrong with it) at preflight.
            let text = v.non_empty(sel, "selector")?;
            Some(Choice::Selected { selector: text, strategy: s.strategy.unwrap_or_default() })
        }
        (Some(_), Some(sel)) => {
            v.error(sel.at(), "give either `node` (drain that node) or `selector` (pick one of these), not both");
            None
        }
        (None, None) => {
            v.error(
                spec.at(),
                "say which node to drain: `node: <name>`, or `selector: <labels>` with `strategy: busiest|random|safe`",
            );
            None
        }
    };
    let max_unavailable_nodes = match &s.max_unavailable_nodes {
        Some(b) => budget(v, b),
        None => Some(Budget::Count(1)),
    };
    let grace_period_seconds = s.grace_period.as_ref().and_then(|g| {
        // `0s` is meaningful here (kill at once), so it is parsed without the positive check.
        match humantime::parse_duration(g.value.0.trim()) {
            Ok(d) => Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => {
                v.error(
                    g.at(),
                    format!("gracePeriod: `{}` is not a duration ({e}): write e.g. `0s` or `30s`", g.value.0),
                );
                None
            }
        }
    });
    let eviction_timeout = match &s.eviction_timeout {
        Some(t) => v.duration(t, "evictionTimeout")?,
        None => DEFAULT_EVICTION_TIMEOUT,
    };
    let probes: Vec<probes::Probe> = s.probes.iter().filter_map(|p| probes::validate(v, p)).collect();
    let mut names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        v.error(spec.at(), format!("two probes are named `{}`: give each its own name", w[0]));
    }
    if probes.len() != s.probes.len() {
        return None;
    }
    Some(Params {
        cluster,
        choice: choice?,
        min_ready_nodes: s.min_ready_nodes.unwrap_or(1),
        max_unavailable_nodes: max_unavailable_nodes?,
        ignore_daemon_sets: s.ignore_daemon_sets.unwrap_or(true),
        delete_empty_dir_data: s.delete_empty_dir_data.unwrap_or(false),
        force: s.force.unwrap_or(false),
        grace_period_seconds,
        eviction_timeout,
        leave_cordoned: s.leave_cordoned.unwrap_or(false),
        disable_eviction: s.disable_eviction.unwrap_or(false),
        probes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_nodes_rounds_up() {
        assert_eq!(Budget::Percent(10).of(3), 1);
        assert_eq!(Budget::Percent(10).of(11), 2);
        assert_eq!(Budget::Percent(50).of(4), 2);
        assert_eq!(Budget::Count(2).of(100), 2);
    }
}
