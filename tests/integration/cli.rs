//! The firedrill command as a person or a CI job uses it.

use std::path::Path;

use crate::support::{Etcd, Firedrill, text, write};

fn drill(name: &str) -> String {
    format!(
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: {name}\netcdRestore:\n  snapshot:\n    fromStore:\n      url: ${{SNAPSHOTS}}\n"
    )
}

#[test]
fn an_invalid_file_among_the_drills_stops_a_scenario_before_anything_runs() {
    let tree = tempfile::tempdir().unwrap();
    write(tree.path(), "drills/good.yaml", &drill("good"));
    write(tree.path(), "drills/broken.yaml", &drill("broken").replace("etcdRestore:", "etcdRestore:\n  retries: 3"));
    let scenario = write(
        tree.path(),
        "scenarios/s.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Scenario\nname: s\nsteps:\n  - drill: good\n",
    );
    let fd = Firedrill::new().env("SNAPSHOTS", "file:///nonexistent");
    let out = fd.run(&["run", scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("drills/broken.yaml:5:3: unknown field `retries`"), "{stderr}");
    assert!(stderr.contains("nothing was run"), "{stderr}");
    assert!(!fd.data_dir.path().join("ledger").exists(), "nothing was recorded either");
}

#[test]
fn a_dry_run_runs_the_read_only_preflight_and_changes_nothing() {
    let etcd = Etcd::start();
    etcd.put("/a", "1");
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}/", store.path().display());
    let fd = Firedrill::new().env("SNAPSHOTS", url.clone());
    assert!(fd.run(&["etcd", "snapshot", "--endpoint", &etcd.url, "--upload", &url]).status.success());
    let before = listing(store.path());
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "d.yaml", &drill("dry"));
    let out = fd.run(&["run", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would change:\n  - download the newest snapshot"), "{stdout}");
    assert!(stdout.contains("preflight: ok (nothing was changed)"), "{stdout}");
    assert_eq!(listing(store.path()), before);
    assert_eq!(listing(fd.data_dir.path()), Vec::<String>::new(), "no ledger, no scratch, no marker");

    let empty = tempfile::tempdir().unwrap();
    let fd = Firedrill::new().env("SNAPSHOTS", format!("file://{}/", empty.path().display()));
    let out = fd.run(&["run", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("there is nothing to restore (nothing was changed)"),
        "{}",
        text(&out)
    );
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.file_name().to_string_lossy().to_string());
        if e.path().is_dir() {
            out.extend(listing(&e.path()).into_iter().map(|n| format!("{}/{n}", e.file_name().to_string_lossy())));
        }
    }
    out.sort();
    out
}

#[test]
fn the_monthly_scenario_runs_and_its_evidence_reports_and_verifies() {
    let etcd = Etcd::start();
    etcd.fill("/firedrill/demo/items/", 50);
    etcd.put("/firedrill/demo/config", "on");
    etcd.put("/firedrill/canary", &firedrill::clock::Clock::system().now().to_string());
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}/", store.path().display());
    let fd =
        Firedrill::new().env("FIREDRILL_ETCD_SNAPSHOTS", url.clone()).env("FIREDRILL_ETCD_ENDPOINT", etcd.url.clone());
    assert!(fd.run(&["etcd", "snapshot", "--endpoint", &etcd.url, "--upload", &url]).status.success());

    let out = fd.run(&["run", "scenarios/monthly-restore-test.yaml", "--operator", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("scenario monthly-restore-test: Passed — all 2 steps passed"), "{stdout}");

    let history: Vec<serde_json::Value> = serde_json::from_slice(&fd.run(&["history", "-o", "json"]).stdout).unwrap();
    let names: Vec<&str> = history.iter().map(|r| r["drill"].as_str().unwrap()).collect();
    assert_eq!(names, ["etcd-restore", "etcd-restore-live"]);
    assert!(history.iter().all(|r| r["verdict"] == "Passed" && r["scenario"] == "monthly-restore-test"));
    let only: Vec<serde_json::Value> = serde_json::from_slice(
        &fd.run(&["history", "--drill", "etcd-restore-live", "--since", "1h", "-o", "json"]).stdout,
    )
    .unwrap();
    assert_eq!(only.len(), 1);
    let yaml = fd.run(&["history", "-o", "yaml"]);
    assert!(String::from_utf8_lossy(&yaml.stdout).contains("verdict: Passed"));

    let md = fd.run(&["report", "--since", "1d", "--format", "md"]);
    let md = String::from_utf8_lossy(&md.stdout).to_string();
    assert!(md.contains("The hash chain of all 5 records verified"), "{md}");
    assert!(md.contains("| etcd-restore | etcd-restore | 1 | 1 | 0 | 0 | 0 |"), "{md}");
    assert!(md.contains("ISO/IEC 27001:2022 A.8.13"));
    let junit = String::from_utf8_lossy(&fd.run(&["report", "--format", "junit"]).stdout).to_string();
    assert!(
        junit.contains("<testsuites name=\"firedrill\" tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"0\">"),
        "{junit}"
    );
    let csv = String::from_utf8_lossy(&fd.run(&["report", "--format", "csv"]).stdout).to_string();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("started,drill,type,scenario,verdict,rto_ms"));
    let json: serde_json::Value = serde_json::from_slice(&fd.run(&["report", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);

    let verify = fd.run(&["evidence", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    // One character changed in one record: verify and the report both say so.
    let record = fd.data_dir.path().join("ledger/records/00000000000000000001.json");
    let edited = std::fs::read_to_string(&record).unwrap().replacen("Passed", "Failed", 1);
    std::fs::write(&record, edited).unwrap();
    let verify = fd.run(&["evidence", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(text(&verify).contains("record 2 names"), "{}", text(&verify));
    let report = fd.run(&["report", "--format", "md"]);
    assert_eq!(report.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&report.stdout).contains("The hash chain did not verify"));
}
