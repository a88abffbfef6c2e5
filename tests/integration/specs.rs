//! Drill and scenario files: every invalid file is named with line, column and what to write.

use std::path::{Path, PathBuf};

use firedrill::spec::Catalog;

use crate::support::{Firedrill, text};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Each fixture's first line says the error it must produce: `# expect: LINE:COL: message`.
fn expectation(file: &Path) -> String {
    let first = std::fs::read_to_string(file).unwrap().lines().next().unwrap_or_default().to_string();
    first.strip_prefix("# expect: ").unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display())).to_string()
}

#[test]
fn every_invalid_file_gets_exactly_one_error_at_its_place() {
    let files = fixtures();
    assert!(files.len() >= 20, "the fixtures are missing");
    for file in files {
        let errors =
            Catalog::load(std::slice::from_ref(&file)).expect_err(&format!("{} should be invalid", file.display())).0;
        let want = format!("{}:{}", file.display(), expectation(&file));
        assert_eq!(errors.len(), 1, "{}: {errors:?}", file.display());
        assert!(errors[0].to_string().starts_with(&want), "\n got: {}\nwant: {want}…", errors[0]);
    }
}

#[test]
fn validate_lists_every_error_and_exits_2() {
    let out = Firedrill::new().run(&["validate", "tests/fixtures/invalid"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for file in fixtures() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(stderr.contains(&format!("{name}:{}", expectation(&file))), "{name} missing from:\n{stderr}");
    }
    assert!(stderr.contains("nothing was run"));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_shipped_drills_and_scenarios_are_valid() {
    let out = Firedrill::new().run(&["validate", "drills", "scenarios"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let catalog = Catalog::load(&[PathBuf::from("drills"), PathBuf::from("scenarios")]).unwrap();
    let monthly = catalog.scenario("monthly-restore-test").expect("the monthly scenario");
    assert_eq!(
        monthly.steps.iter().map(|s| s.drill.name.as_str()).collect::<Vec<_>>(),
        ["etcd-restore", "etcd-restore-live"]
    );
    let schedule = catalog.drill("etcd-restore").unwrap().schedule.as_ref().expect("a schedule");
    assert_eq!(schedule.time_zone.name(), "Europe/Berlin");
}

#[test]
fn a_schedule_fires_in_its_time_zone_across_daylight_saving() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::support::write(
        dir.path(),
        "d.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: d\nschedule:\n  cron: \"30 2 * * SUN\"\n  timeZone: Europe/Berlin\netcdRestore:\n  snapshot:\n    fromStore:\n      url: file:///tmp/x\n",
    );
    let catalog = Catalog::load(&[file]).unwrap();
    let schedule = catalog.drills[0].schedule.clone().unwrap();
    let after: firedrill::clock::Timestamp = "2026-10-20T00:00:00Z".parse().unwrap();
    let next: Vec<String> = schedule.upcoming(after, 2).iter().map(|t| t.to_string()).collect();
    // On 25 October 2026 Berlin's clocks go from 03:00 CEST back to 02:00 CET, so 02:30 happens
    // twice: it fires once, at the first (00:30Z); a week later 02:30 CET is 01:30Z.
    assert_eq!(next, ["2026-10-25T00:30:00.000Z", "2026-11-01T01:30:00.000Z"]);

    // Every 30 minutes through the repeated hour: 02:00 and 02:30 once each, then 03:00 CET.
    let mut every = schedule.clone();
    every.parsed = "0 */30 * * * *".parse().unwrap();
    let night: firedrill::clock::Timestamp = "2026-10-24T23:45:00Z".parse().unwrap();
    let fired: Vec<String> = every.upcoming(night, 4).iter().map(|t| t.to_string()).collect();
    assert_eq!(
        fired,
        [
            "2026-10-25T00:00:00.000Z",
            "2026-10-25T00:30:00.000Z",
            "2026-10-25T02:00:00.000Z",
            "2026-10-25T02:30:00.000Z"
        ]
    );
}

#[test]
fn the_checked_in_json_schemas_are_current() {
    for (name, generated) in firedrill::spec::schema::all() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema").join(name);
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale: run `cargo run -- schema --out docs/schema` and commit it",
            path.display()
        );
    }
}

#[test]
fn every_problem_in_a_file_is_reported_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::support::write(
        dir.path(),
        "two.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: two\ntimeouts:\n  wait: soon\netcdRestore:\n  snapshot:\n    fromStore:\n      url: ${FIREDRILL_TEST_NEVER_SET}\n",
    );
    let errors = Catalog::load(&[file]).unwrap_err().0;
    let messages: Vec<String> = errors.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("5:9 timeouts.wait: `soon` is not a duration"), "{messages:?}");
    assert!(messages[1].starts_with("9:12 environment variable `FIREDRILL_TEST_NEVER_SET` is not set"), "{messages:?}");
}
