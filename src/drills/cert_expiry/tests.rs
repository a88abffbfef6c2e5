use std::time::Duration;

use super::analysis::{self, FindingCode, Inventory, Item, Layout, Managed, Position, Renewer, Severity};
use super::chain::{self, ChainError};
use super::fixtures::Mint;
use super::rehearsal::namespace_for;
use crate::clock::Timestamp;

const DAY: i64 = 86_400_000;

fn now() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

fn days(n: i64) -> Timestamp {
    Timestamp::from_millis(now().millis() + n * DAY)
}

fn item(object: &str, field: &str, layout: Layout, pem: &str, renewer: Renewer) -> Item {
    Item {
        object: object.into(),
        namespace: Some("default".into()),
        field: field.into(),
        layout,
        certs: chain::parse(pem.as_bytes())
            .map_err(|e| analysis::Unreadable { code: FindingCode::Unreadable, reason: e.to_string() }),
        renewer,
        expected_names: Vec::new(),
        served: None,
    }
}

/// `(code, object, field, position, margin)` of a finding.
type Row = (FindingCode, String, Option<String>, Option<Position>, Option<f64>);

/// Every finding, in order.
fn summary(inv: &Inventory) -> Vec<Row> {
    analysis::analyse(inv, now(), Duration::from_secs(30 * 86_400))
        .into_iter()
        .map(|f| (f.code, f.object, f.field, f.position, f.margin_days))
        .collect()
}

#[test]
fn pem_with_several_certificates_der_and_garbage_parse_as_they_should() {
    let root = Mint::ca("Root").valid(days(-10), days(3650)).self_signed();
    let leaf = Mint::leaf("web.example.com").valid(days(-1), days(90)).signed_by(&root);
    let both = format!("{}{}", leaf.pem, root.pem);
    let parsed = chain::parse(both.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!((parsed[0].subject.as_str(), parsed[0].issuer.as_str()), ("CN=web.example.com", "CN=Root"));
    assert_eq!(parsed[0].not_after, days(90));
    assert!(parsed[1].is_ca && parsed[1].self_issued() && !parsed[0].is_ca);
    assert_eq!(chain::parse(&leaf.der).unwrap()[0], parsed[0], "DER reads as PEM does");
    // A combined file: the key block is skipped, not decoded.
    let combined = format!("{}{}", leaf.key_pem, leaf.pem);
    assert_eq!(chain::parse(combined.as_bytes()).unwrap().len(), 1);
    assert_eq!(chain::parse(b"not a certificate"), Err(ChainError::NotACertificate));
    assert_eq!(chain::parse(b"  \n"), Err(ChainError::Empty));
    assert_eq!(chain::parse(leaf.key_pem.as_bytes()), Err(ChainError::NotACertificate));
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(chain::parse(broken.as_bytes()), Err(ChainError::BadCertificate { index: 0, .. })));
}

#[test]
fn wildcards_cover_one_label_and_ip_addresses_match_ip_sans() {
    let mut c = chain::parse(Mint::leaf("*.example.com").self_signed().pem.as_bytes()).unwrap().remove(0);
    assert!(c.names("web.example.com") && c.names("WEB.example.com."));
    assert!(!c.names("example.com") && !c.names("a.web.example.com"));
    c.ip_addresses.push("127.0.0.1".parse().unwrap());
    assert!(c.names("127.0.0.1") && !c.names("127.0.0.2"));
}

#[test]
fn every_certificate_is_judged_at_the_horizon_with_its_margin_and_position() {
    let root = Mint::ca("Root").valid(days(-100), days(3650)).self_signed();
    let short_root = Mint::ca("Short Root").expiring(now(), 10).self_signed();
    let intermediate = Mint::ca("Intermediate").valid(days(-10), days(200)).signed_by(&root);
    let healthy = Mint::leaf("ok.example.com").valid(days(-1), days(365)).signed_by(&root);
    let expired = Mint::leaf("old.example.com").expiring(now(), -3).self_signed();
    let soon = Mint::leaf("soon.example.com").expiring(now(), 5).self_signed();
    let long_leaf = Mint::leaf("long.example.com").valid(days(-1), days(365)).signed_by(&intermediate);
    let person = Renewer::Person;
    let inv = Inventory {
        items: vec![
            item("Secret default/ok", "tls.crt", Layout::Chain, &healthy.pem, person.clone()),
            item("Secret default/ok", "ca.crt", Layout::Bundle, &root.pem, person.clone()),
            item("Secret default/old", "tls.crt", Layout::Chain, &expired.pem, person.clone()),
            item("Secret default/soon", "tls.crt", Layout::Chain, &soon.pem, person.clone()),
            item(
                "Secret default/long",
                "tls.crt",
                Layout::Chain,
                &format!("{}{}", long_leaf.pem, intermediate.pem),
                person.clone(),
            ),
            item(
                "APIService v1.example",
                "caBundle",
                Layout::Bundle,
                &short_root.pem,
                Renewer::CaInjector { from: "x/y".into() },
            ),
        ],
        ..Inventory::default()
    };
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        summary(&inv),
        vec![
            (FindingCode::Expired, "Secret default/old".into(), s("tls.crt"), Some(Position::Leaf), Some(-3.0)),
            (
                FindingCode::ExpiresWithinHorizon,
                "APIService v1.example".into(),
                s("caBundle"),
                Some(Position::Ca),
                Some(10.0)
            ),
            (
                FindingCode::IntermediateExpiresBeforeLeaf,
                "Secret default/long".into(),
                s("tls.crt"),
                Some(Position::Intermediate),
                Some(200.0)
            ),
            (
                FindingCode::ExpiresWithinHorizon,
                "Secret default/soon".into(),
                s("tls.crt"),
                Some(Position::Leaf),
                Some(5.0)
            ),
            (FindingCode::Unmanaged, "Secret default/long".into(), s("tls.crt"), None, None),
            (FindingCode::Unmanaged, "Secret default/ok".into(), s("tls.crt"), None, None),
            (FindingCode::Unmanaged, "Secret default/old".into(), s("tls.crt"), None, None),
            (FindingCode::Unmanaged, "Secret default/soon".into(), s("tls.crt"), None, None),
        ]
    );
    let all = analysis::analyse(&inv, now(), Duration::from_secs(30 * 86_400));
    assert_eq!(all[0].severity, Severity::Critical);
    assert_eq!(all[1].renewed_by, "cert-manager's CA injector (from x/y)");
    assert_eq!(all[3].renewed_by, "nobody: a person must renew it");
}

fn managed(ready: &str, renewal: Timestamp, not_after: Timestamp) -> Managed {
    Managed {
        certificate: "default/web".into(),
        namespace: "default".into(),
        issuer: "ClusterIssuer ca".into(),
        ready: Some((ready.into(), if ready == "True" { "Ready" } else { "Expired" }.into(), "m".into())),
        renewal_time: Some(renewal),
        not_after: Some(not_after),
    }
}

#[test]
fn cert_manager_renews_a_ready_certificate_in_time_and_an_overdue_one_is_named() {
    let leaf = Mint::leaf("web.example.com").valid(days(-70), days(20)).self_signed();
    let renewer = Renewer::CertManager { certificate: "default/web".into(), issuer: "ClusterIssuer ca".into() };
    let inv = |m: Managed| Inventory {
        items: vec![item("Secret default/web-tls", "tls.crt", Layout::Chain, &leaf.pem, renewer.clone())],
        certificates: vec![m],
        ..Inventory::default()
    };
    let scheduled = summary(&inv(managed("True", days(2), days(20))));
    assert_eq!(scheduled.iter().map(|f| f.0).collect::<Vec<_>>(), [FindingCode::RenewalScheduled]);
    let overdue = summary(&inv(managed("True", days(-10), days(20))));
    assert_eq!(
        overdue.iter().map(|f| f.0).collect::<Vec<_>>(),
        [FindingCode::RenewalOverdue, FindingCode::ExpiresWithinHorizon]
    );
    let broken = summary(&inv(managed("False", days(2), days(20))));
    assert_eq!(
        broken.iter().map(|f| f.0).collect::<Vec<_>>(),
        [FindingCode::CertificateNotReady, FindingCode::ExpiresWithinHorizon]
    );
}

#[test]
fn a_served_chain_must_lead_to_a_root() {
    let root = Mint::ca("Root").valid(days(-100), days(3650)).self_signed();
    let mid = Mint::ca("Mid").valid(days(-10), days(900)).signed_by(&root);
    let leaf = Mint::leaf("web.example.com").valid(days(-1), days(365)).signed_by(&mid);
    let p = |pems: &[&str]| chain::parse(pems.concat().as_bytes()).unwrap();
    let anchors = p(&[&root.pem]);
    assert_eq!(analysis::chain_gap(&p(&[&leaf.pem, &mid.pem]), &[]), None);
    assert_eq!(analysis::chain_gap(&p(&[&leaf.pem, &mid.pem]), &anchors), None);
    assert!(analysis::chain_gap(&p(&[&leaf.pem]), &[]).unwrap().contains("sends only the leaf"));
    assert!(analysis::chain_gap(&p(&[&leaf.pem]), &anchors).unwrap().contains("stops at `CN=web.example.com`"));
    let other = Mint::ca("Other").self_signed();
    assert!(analysis::chain_gap(&p(&[&leaf.pem, &mid.pem, &other.pem]), &[]).unwrap().contains("CN=Other"));
    assert_eq!(analysis::chain_gap(&p(&[&Mint::leaf("self").self_signed().pem]), &[]), None);
}

#[test]
fn the_scratch_namespace_takes_the_random_tail_of_the_run_id() {
    assert_eq!(namespace_for("019a8f2e-7b1c-7d3e-9f00-A1b2c3d4e5f6"), "firedrill-cert-a1b2c3d4e5f6");
}
