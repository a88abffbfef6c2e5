//! Unit tests of the pure analysis: findings, budget rounding, what-ifs and the rolling drain.

use serde_json::json;

use super::analysis::{FindingCode, Scope, Severity, analyse, drain_what_if};
use super::fixtures::{Pdb, World};
use super::index::{Index, budget};
use super::whatif::rounds_for;

fn codes(w: &World) -> Vec<(Severity, FindingCode, Vec<String>)> {
    analyse(&w.inv, &Scope::AllButKubeSystem, false)
        .findings
        .into_iter()
        .map(|f| (f.severity, f.code, f.object_names()))
        .collect()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[test]
fn a_well_configured_app_has_no_findings() {
    let w = World::nodes(3).system_pods().deployment("web", 3).pdb(Pdb::for_app("web").max_unavailable(1));
    assert_eq!(codes(&w), vec![]);
}

#[test]
fn percentages_round_up_as_the_disruption_controller_does() {
    let pdb = |w: World| w.inv.pdbs[0].clone();
    let p = pdb(World::nodes(1).pdb(Pdb::for_app("a").min_available("50%")));
    assert_eq!(budget(&p, 7, 0, 7).desired, 4, "50% of 7 rounds up to 4");
    assert_eq!(budget(&p, 7, 0, 7).steady_allowed, 3);
    let p = pdb(World::nodes(1).pdb(Pdb::for_app("a").max_unavailable("10%")));
    assert_eq!(budget(&p, 3, 0, 3).steady_allowed, 1, "maxUnavailable 10% of 3 rounds up to 1");
    let p = pdb(World::nodes(1).pdb(Pdb::for_app("a").min_available("90%")));
    let b = budget(&p, 3, 0, 3);
    assert_eq!((b.desired, b.steady_allowed), (3, 0), "minAvailable 90% of 3 rounds up to 3");
    assert_eq!(b.explain, "minAvailable: 90% of 3 = 3");
}

#[test]
fn budgets_that_never_allow_a_disruption_are_critical() {
    let w = World::nodes(3)
        .deployment("zero", 3)
        .pdb(Pdb::for_app("zero").max_unavailable(0))
        .deployment("all", 3)
        .pdb(Pdb::for_app("all").min_available(3))
        .deployment("pct", 3)
        .pdb(Pdb::for_app("pct").min_available("90%"))
        .deployment("zeropct", 4)
        .pdb(Pdb::for_app("zeropct").max_unavailable("0%"))
        .deployment("fine", 3)
        .pdb(Pdb::for_app("fine").min_available("60%"));
    let never = FindingCode::PdbNeverAllowsDisruption;
    let crit = Severity::Critical;
    assert_eq!(
        codes(&w),
        vec![
            (crit, never, strings(&["PodDisruptionBudget/all", "Deployment/all"])),
            (crit, never, strings(&["PodDisruptionBudget/pct", "Deployment/pct"])),
            (crit, never, strings(&["PodDisruptionBudget/zero", "Deployment/zero"])),
            (crit, never, strings(&["PodDisruptionBudget/zeropct", "Deployment/zeropct"])),
        ]
    );
}

#[test]
fn overlapping_pdbs_are_reported_once_per_set_with_their_pods() {
    let w = World::nodes(2)
        .deployment("web", 2)
        .pdb(Pdb::for_app("web").max_unavailable(1))
        .pdb(Pdb::for_app("web").named("web-extra").max_unavailable(1));
    assert_eq!(
        codes(&w),
        vec![(
            Severity::Critical,
            FindingCode::PodsUnderSeveralPdbs,
            strings(&["PodDisruptionBudget/web", "PodDisruptionBudget/web-extra", "Pod/web-0", "Pod/web-1"])
        )]
    );
    let node = drain_what_if(&w.inv, "node-1");
    assert!(!node.completes);
    assert_eq!(node.blocked_by, strings(&["default/web", "default/web-extra"]));
}

#[test]
fn selectors_with_match_expressions_are_matched_through_the_index() {
    let sel = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}, {"key": "canary", "operator": "DoesNotExist"}]});
    let w = World::nodes(3)
        .deployment("web", 3)
        .deployment("api", 3)
        .pdb(Pdb::for_app("front").selector(sel).max_unavailable(1));
    assert_eq!(codes(&w), vec![], "one PDB covers both apps");
    let exists = json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]});
    let w = World::nodes(1).deployment("web", 2).pdb(Pdb::for_app("any").selector(exists).min_available(2));
    assert_eq!(codes(&w)[0].1, FindingCode::PdbNeverAllowsDisruption, "an unindexable selector is still matched");
}

#[test]
fn each_finding_names_its_objects() {
    let w = World::nodes(3)
        .deployment("nopdb", 3)
        .statefulset("db", 3)
        .deployment("solo", 1)
        .pdb(Pdb::for_app("solo").min_available(1))
        .deployment("single", 1)
        .pdb(Pdb::for_app("single").max_unavailable(1))
        .pdb(Pdb::for_app("ghost").max_unavailable(1))
        .pdb(
            Pdb::for_app("typo")
                .selector(json!({"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]})),
        )
        .deployment("sick", 3)
        .not_ready("sick-1")
        .pdb(Pdb::for_app("sick").max_unavailable(1))
        .deployment("healed", 3)
        .not_ready("healed-2")
        .pdb(Pdb::for_app("healed").max_unavailable(1).always_allow())
        .deployment_in("kube-system", "coredns", 2);
    assert_eq!(
        codes(&w),
        vec![
            (
                Severity::Critical,
                FindingCode::SingleReplicaWithPdb,
                strings(&["PodDisruptionBudget/solo", "Deployment/solo"])
            ),
            (Severity::Warning, FindingCode::MissingPdb, strings(&["Deployment/nopdb"])),
            (Severity::Warning, FindingCode::MissingPdb, strings(&["StatefulSet/db"])),
            (Severity::Warning, FindingCode::PdbSelectsNothing, strings(&["PodDisruptionBudget/ghost"])),
            (Severity::Warning, FindingCode::PdbSelectsNothing, strings(&["PodDisruptionBudget/typo"])),
            (
                Severity::Warning,
                FindingCode::UnhealthyPolicyDefaultWithUnhealthyPods,
                strings(&["PodDisruptionBudget/sick", "Pod/sick-1"])
            ),
            (
                Severity::Info,
                FindingCode::SingleReplicaWithPdb,
                strings(&["PodDisruptionBudget/single", "Deployment/single"])
            ),
        ],
        "kube-system is out of scope by default"
    );
    let only = Scope::Only(["kube-system".to_string()].into());
    let f = analyse(&w.inv, &only, false).findings;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].object_names(), strings(&["Deployment/coredns"]));
}

#[test]
fn rounds_follow_the_budget_now_then_the_steady_one() {
    assert_eq!(rounds_for(0, 0, 0), Some(0));
    assert_eq!(rounds_for(3, 1, 1), Some(3));
    assert_eq!(rounds_for(3, 3, 1), Some(1));
    assert_eq!(rounds_for(5, 2, 2), Some(3), "2 now, then 2 and 1");
    assert_eq!(rounds_for(2, 0, 1), Some(2), "waits for recovery, then one at a time");
    assert_eq!(rounds_for(2, 1, 0), None);
}

#[test]
fn a_throttled_node_needs_one_round_per_budgeted_pod() {
    let w = World::nodes(2)
        .system_pods()
        .deployment("web", 4)
        .on("web-2", "node-1")
        .on("web-3", "node-1")
        .pdb(Pdb::for_app("web").max_unavailable(1));
    let n = drain_what_if(&w.inv, "node-1");
    assert_eq!((n.pods, n.skipped, n.completes, n.rounds), (3, 2, true, 3), "web-0, web-2, web-3; not proxy-1, etcd");
    assert_eq!(n.blocked_by, strings(&["default/web"]));
    assert_eq!(n.bottleneck.as_deref(), Some("default/web"));
    let free = drain_what_if(&w.inv, "node-2");
    assert_eq!((free.pods, free.rounds, free.completes), (1, 1, true), "web-1 goes in the first round");
    let empty = drain_what_if(&World::nodes(1).system_pods().inv, "node-1");
    assert_eq!((empty.pods, empty.skipped, empty.rounds, empty.completes), (0, 2, 0, true));
}

#[test]
fn status_is_used_when_current_and_unhealthy_pods_go_free_under_always_allow() {
    // The status says 0 allowed now (a pod elsewhere is being replaced); with every pod Ready it is 1.
    let w = World::nodes(3).deployment("web", 3).pdb(Pdb::for_app("web").max_unavailable(1).status(0, 2, 2));
    assert_eq!(drain_what_if(&w.inv, "node-1").rounds, 1, "waits, then goes");
    let w = World::nodes(1)
        .deployment("web", 2)
        .not_ready("web-0")
        .not_ready("web-1")
        .pdb(Pdb::for_app("web").min_available(2).always_allow());
    let n = drain_what_if(&w.inv, "node-1");
    assert!(n.completes, "unhealthy pods bypass the budget under AlwaysAllow: {n:?}");
    let w = World::nodes(1).deployment("web", 2).not_ready("web-0").pdb(Pdb::for_app("web").min_available(2));
    let n = drain_what_if(&w.inv, "node-1");
    assert!(!n.completes);
    assert_eq!(n.blockers[0].pdb, "default/web");
    assert!(n.blockers[0].reason.contains("minAvailable: 2 with 2 pods"), "{}", n.blockers[0].reason);
}

#[test]
fn the_rolling_drain_puts_blocked_nodes_last_and_names_the_bottleneck() {
    let w = World::nodes(3)
        .deployment("web", 3)
        .on("web-1", "node-2")
        .on("web-2", "node-2")
        .pdb(Pdb::for_app("web").max_unavailable(1))
        .deployment("db", 1)
        .on("db-0", "node-3")
        .pdb(Pdb::for_app("db").min_available(1));
    let r = analyse(&w.inv, &Scope::AllButKubeSystem, true);
    let rolling = r.rolling_drain.expect("what-if on");
    assert_eq!(rolling.order, strings(&["node-1", "node-2", "node-3"]));
    assert!(!rolling.completes);
    assert_eq!(rolling.blocked_nodes, strings(&["node-3"]));
    assert_eq!(rolling.bottleneck_node.as_deref(), Some("node-3"));
    assert_eq!(rolling.bottleneck_pdb.as_deref(), Some("default/db"));
    assert_eq!(rolling.total_rounds, 1 + 2);
    let ix = Index::build(&w.inv);
    assert_eq!(ix.what_if("node-2").rounds, 2);
}
