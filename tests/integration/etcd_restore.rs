//! The etcd-restore drill against real etcd members, through the firedrill command.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use firedrill::ledger::record::Outcome;
use firedrill::measure::{RpoMethod, Verdict};

use crate::support::{Etcd, Firedrill, S3, etcd_drill_from_store, text, write};

/// A member holding 200 application keys, a config key and a canary.
fn seeded_etcd() -> Etcd {
    let etcd = Etcd::start();
    etcd.fill("/app/items/", 200);
    etcd.put("/app/config", "replicas=3");
    etcd.put("/firedrill/canary", &firedrill::clock::Clock::system().now().to_string());
    etcd
}

fn upload(fd: &Firedrill, etcd: &Etcd, url: &str) {
    let out = fd.run(&["etcd", "snapshot", "--endpoint", &etcd.url, "--upload", url]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Runs a drill file and returns its outcome and exit code.
fn run(fd: &Firedrill, file: &Path) -> (Outcome, i32) {
    let out = fd.run(&["run", file.to_str().unwrap(), "-o", "json"]);
    let outcome: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (outcome, out.status.code().unwrap())
}

/// Nothing of a run is left: no scratch directory, no marker, no etcd on the data dir.
fn assert_nothing_left(fd: &Firedrill) {
    let data = fd.data_dir.path();
    let scratch: Vec<_> = std::fs::read_dir(data.join("scratch")).map(|r| r.flatten().collect()).unwrap_or_default();
    assert!(scratch.is_empty(), "scratch left behind: {scratch:?}");
    let markers: Vec<_> = std::fs::read_dir(data.join("runs")).map(|r| r.flatten().collect()).unwrap_or_default();
    assert!(markers.is_empty(), "run markers left behind: {markers:?}");
    assert!(etcd_processes_under(data).is_empty(), "a scratch etcd still runs");
}

fn etcd_processes_under(dir: &Path) -> Vec<u32> {
    let want = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.starts_with(firedrill::etcd::tools::on_path("etcd").unwrap().to_str().unwrap()) && cmd.contains(&want)
        })
        .collect()
}

fn drill_with_checks(dir: &Path, name: &str, url: &str) -> std::path::PathBuf {
    let verify = "  verify:\n    expectKeys: [/app/config]\n    prefixCounts:\n      - prefix: /app/items/\n        equals: 200\n    canary:\n      key: /firedrill/canary\n";
    write(dir, &format!("{name}.yaml"), &etcd_drill_from_store(name, url, verify))
}

#[test]
fn the_newest_snapshot_in_a_file_store_restores_and_passes() {
    let etcd = seeded_etcd();
    let fd = Firedrill::new();
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}/etcd/", store.path().display());
    upload(&fd, &etcd, &url);
    // The newer snapshot has one more key: the drill must restore that one.
    std::thread::sleep(std::time::Duration::from_millis(20));
    etcd.put("/app/late", "only in the newest snapshot");
    upload(&fd, &etcd, &url);
    let dir = tempfile::tempdir().unwrap();
    let mut body = std::fs::read_to_string(drill_with_checks(dir.path(), "from-file", &url)).unwrap();
    body = body.replace("expectKeys: [/app/config]", "expectKeys: [/app/config, /app/late]");
    let file = write(dir.path(), "from-file.yaml", &body);

    let (o, code) = run(&fd, &file);
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{o:#?}");
    assert!(o.checks.iter().all(|c| c.passed) && o.checks.len() == 6, "{:#?}", o.checks);
    let point = o.recovery_point.as_ref().unwrap();
    assert_eq!(point.method, RpoMethod::Canary);
    assert!(o.rto_ms.unwrap() > std::time::Duration::ZERO);
    let marks: Vec<&str> = o.timeline.marks.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(marks, ["snapshot-fetched", "snapshot-checked", "restored", "serving"]);
    assert!(o.timeline.verified.unwrap() >= o.timeline.marks[3].at);
    assert_eq!(o.details["snapshot"]["hashVerified"], true);
    assert!(o.target["snapshot"].starts_with("etcd-"), "{:?}", o.target);
    assert_nothing_left(&fd);
}

#[test]
fn a_snapshot_in_s3_restores_and_passes() {
    let etcd = seeded_etcd();
    let s3 = S3::start();
    let mut fd = Firedrill::new();
    for (k, v) in s3.env() {
        fd = fd.env(k, v);
    }
    let url = s3.url("etcd/prod/");
    upload(&fd, &etcd, &url);
    let dir = tempfile::tempdir().unwrap();
    let (o, code) = run(&fd, &drill_with_checks(dir.path(), "from-s3", &url));
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{o:#?}");
    assert_eq!(o.details["snapshotDownloadedBytes"], o.details["snapshot"]["sizeBytes"]);
    // What firedrill wrote is in the bucket, seen by another client.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys: Vec<String> = rt.block_on(async {
        let list = s3.sdk().await.list_objects_v2().bucket(&s3.bucket).prefix("etcd/prod/").send().await.unwrap();
        list.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
    });
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(".db.meta.json")));
    assert_nothing_left(&fd);
}

#[test]
fn a_fresh_snapshot_of_a_live_member_restores_with_its_save_time_as_recovery_point() {
    let etcd = seeded_etcd();
    let fd = Firedrill::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "live.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: live\ntargets:\n  rto: 1m\n  rpo: 1m\netcdRestore:\n  snapshot:\n    fromEndpoint:\n      endpoint: {}\n",
            etcd.url
        ),
    );
    let (o, code) = run(&fd, &file);
    assert_eq!((o.verdict, code), (Verdict::Passed, 0), "{o:#?}");
    let point = o.recovery_point.unwrap();
    assert_eq!(point.method, RpoMethod::SnapshotMetadata);
    assert!(o.rpo_ms.unwrap() < std::time::Duration::from_secs(10));
    let keys = o.checks.iter().find(|c| c.name.starts_with("live keys")).unwrap();
    assert_eq!(keys.expected.as_deref(), Some("202"), "200 items, the config and the canary");
    assert_nothing_left(&fd);
}

#[test]
fn a_tls_member_with_client_certificates_restores_and_no_key_reaches_the_record() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "firedrill test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("firedrill", ExtendedKeyUsagePurpose::ClientAuth);
    let pki = tempfile::tempdir().unwrap();
    let p = |n: &str, body: &str| write(pki.path(), n, body).display().to_string();
    let (ca_file, server_cert, server_key) =
        (p("ca.crt", &ca_cert.pem()), p("server.crt", &server_cert), p("server.key", &server_key));
    let (client_cert_file, client_key_file) = (p("client.crt", &client_cert), p("client.key", &client_key));
    let etcd = Etcd::start_with(
        &[
            format!("--cert-file={server_cert}"),
            format!("--key-file={server_key}"),
            format!("--trusted-ca-file={ca_file}"),
            "--client-cert-auth".into(),
        ],
        "https",
        vec![format!("--cacert={ca_file}"), format!("--cert={client_cert_file}"), format!("--key={client_key_file}")],
    );
    etcd.put("/secure/a", "1");
    let fd = Firedrill::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tls.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: tls\netcdRestore:\n  snapshot:\n    fromEndpoint:\n      endpoint: {}\n      tls:\n        caFile: {ca_file}\n        certFile: {client_cert_file}\n        keyFile: {client_key_file}\n  verify:\n    expectKeys: [/secure/a]\n",
            etcd.url
        ),
    );
    let out = fd.run(&["run", file.to_str().unwrap(), "-o", "json", "-vv"]);
    let o: Outcome = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(o.verdict, Verdict::Passed, "{o:#?}");
    let key_body: String = client_key.lines().filter(|l| !l.starts_with("-----")).collect();
    let everything = format!(
        "{}{}",
        text(&out),
        std::fs::read_to_string(fd.data_dir.path().join("ledger/records/00000000000000000001.json")).unwrap()
    );
    assert!(!everything.contains(&key_body[..40]), "the private key leaked into output or the record");

    // Without the client certificate the member refuses us: an Error, not a Failed.
    let no_cert = write(
        dir.path(),
        "no-cert.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: no-cert\netcdRestore:\n  snapshot:\n    fromEndpoint:\n      endpoint: {}\n      tls:\n        caFile: {ca_file}\n",
            etcd.url
        ),
    );
    let (o, code) = run(&fd, &no_cert);
    assert_eq!((o.verdict, code), (Verdict::Error, 2), "{o:#?}");
    assert!(o.reason.contains("the source member does not answer"), "{}", o.reason);
}

/// A seeded member, its snapshot uploaded to a local store, and a drill file that restores the
/// newest snapshot there with every check.
struct Staged {
    _etcd: Etcd,
    fd: Firedrill,
    store: tempfile::TempDir,
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

fn staged(name: &str) -> Staged {
    let etcd = seeded_etcd();
    let fd = Firedrill::new();
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}/", store.path().display());
    upload(&fd, &etcd, &url);
    let dir = tempfile::tempdir().unwrap();
    let file = drill_with_checks(dir.path(), name, &url);
    Staged { _etcd: etcd, fd, store, _dir: dir, file }
}

/// Uploads a snapshot, damages the stored file with `damage`, runs the drill.
fn damaged(damage: impl FnOnce(&Path)) -> (Outcome, i32, Firedrill) {
    let Staged { fd, store, file, _dir, .. } = staged("damaged");
    let db = std::fs::read_dir(store.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .unwrap();
    damage(&db);
    let (o, code) = run(&fd, &file);
    (o, code, fd)
}

#[test]
fn a_corrupted_snapshot_fails_with_the_reason() {
    let (o, code, fd) = damaged(|db| {
        let mut bytes = std::fs::read(db).unwrap();
        bytes[5000] ^= 0x40;
        std::fs::write(db, bytes).unwrap();
    });
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{o:#?}");
    assert!(
        o.reason.starts_with("failed during act: the snapshot is corrupted: its embedded SHA-256 is"),
        "{}",
        o.reason
    );
    assert_nothing_left(&fd);
}

#[test]
fn a_truncated_snapshot_fails_with_the_reason() {
    let (o, code, fd) = damaged(|db| {
        let bytes = std::fs::read(db).unwrap();
        std::fs::write(db, &bytes[..bytes.len() / 2 + 7]).unwrap();
    });
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{o:#?}");
    assert!(o.reason.contains("the snapshot is truncated or not an etcd snapshot"), "{}", o.reason);
    assert_nothing_left(&fd);
}

#[test]
fn a_snapshot_replaced_after_upload_fails_on_its_recorded_hash() {
    // A well-formed snapshot of another member, put where the uploaded one was.
    let other = Etcd::start();
    other.put("/other", "x");
    let replacement = tempfile::tempdir().unwrap();
    let f = replacement.path().join("other.db");
    let out = other.ctl(&["snapshot", "save", f.to_str().unwrap()]);
    assert!(out.status.success());
    let (o, code, _fd) = damaged(|db| {
        std::fs::copy(&f, db).unwrap();
    });
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{o:#?}");
    assert!(o.reason.contains("the snapshot differs from the one uploaded"), "{}", o.reason);
}

#[test]
fn a_file_with_a_valid_trailer_but_no_database_fails_etcds_own_check() {
    let (o, code, fd) = damaged(|db| {
        use sha2::Digest;
        let garbage = vec![0x5a_u8; 8192];
        let mut bytes = garbage.clone();
        bytes.extend_from_slice(&sha2::Sha256::digest(&garbage));
        std::fs::write(db, bytes).unwrap();
        // Without metadata nothing else can tell: etcd's check must.
        std::fs::remove_file(format!("{}.meta.json", db.display())).unwrap();
    });
    assert_eq!((o.verdict, code), (Verdict::Failed, 1), "{o:#?}");
    assert!(o.reason.contains("does not pass etcd's integrity check"), "{}", o.reason);
    assert_eq!(o.recovery_point.unwrap().method, RpoMethod::ObjectModified);
    assert!(o.warnings.iter().any(|w| w.contains("has no firedrill metadata")), "{:?}", o.warnings);
    assert_nothing_left(&fd);
}

#[test]
fn an_empty_store_fails_and_an_unreachable_member_is_an_error() {
    let fd = Firedrill::new();
    let store = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty = write(
        dir.path(),
        "empty.yaml",
        &etcd_drill_from_store("empty", &format!("file://{}/", store.path().display()), ""),
    );
    let (o, code) = run(&fd, &empty);
    assert_eq!((o.verdict, code), (Verdict::Failed, 1));
    assert!(o.reason.contains("there is nothing to restore"), "{}", o.reason);

    let port = crate::support::free_port();
    let gone = write(
        dir.path(),
        "gone.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1alpha1\nkind: Drill\nname: gone\netcdRestore:\n  snapshot:\n    fromEndpoint:\n      endpoint: http://127.0.0.1:{port}\n"
        ),
    );
    let (o, code) = run(&fd, &gone);
    assert_eq!((o.verdict, code), (Verdict::Error, 2));
    assert!(o.reason.starts_with("could not run (preflight): the source member does not answer"), "{}", o.reason);
    assert_nothing_left(&fd);
}

/// Starts `firedrill run` and returns it once the scratch member has been started.
fn start_until_member_started(fd: &Firedrill, file: &Path) -> std::process::Child {
    let mut child =
        fd.command(&["run", file.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let started = line.contains("waiting for the scratch member");
        seen.push(line);
        if started {
            return child;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the run ended before its member started:\n{}", seen.join("\n"));
}

fn history(fd: &Firedrill) -> Vec<serde_json::Value> {
    let out = fd.run(&["history", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_run_killed_with_sigkill_is_cleaned_up_and_recorded_aborted_by_the_next_run() {
    let Staged { fd, file, .. } = &staged("killed");
    let mut child = start_until_member_started(fd, file);
    child.kill().unwrap();
    child.wait().unwrap();
    let scratch = fd.data_dir.path().join("scratch");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 1, "the killed run left its scratch directory");
    assert_eq!(std::fs::read_dir(fd.data_dir.path().join("runs")).unwrap().count(), 1, "and its marker");

    let out = fd.run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("janitor: killed run"), "{}", text(&out));
    assert_nothing_left(fd);
    let runs = history(fd);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["verdict"], "Aborted");
    assert!(runs[0]["reason"].as_str().unwrap().contains("stopped without recording an outcome"), "{}", runs[0]);
    assert_eq!(runs[1]["verdict"], "Passed");
    let verify = fd.run(&["evidence", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn ctrl_c_mid_run_aborts_cleans_up_and_exits_3() {
    let Staged { fd, file, .. } = &staged("interrupted");
    // start_until_member_started stops reading stderr: the handler must not die writing to a
    // closed pipe (it once panicked in eprintln! before triggering the abort).
    let mut child = start_until_member_started(fd, file);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_nothing_left(fd);
    let runs = history(fd);
    assert_eq!(runs[0]["verdict"], "Aborted");
    assert_eq!(runs[0]["reason"], "aborted during wait: stopped by SIGINT (Ctrl-C)");
}

#[tokio::test]
async fn cleanup_removes_only_a_directory_that_carries_the_runs_marker() {
    use firedrill::engine::RunContext;
    let data = tempfile::tempdir().unwrap();
    let scratch = data.path().join("scratch/run-1");
    std::fs::create_dir_all(&scratch).unwrap();
    let ctx = |run: &str| {
        RunContext::new(
            run.into(),
            firedrill::clock::Clock::system(),
            data.path().to_path_buf(),
            std::sync::Arc::new(firedrill::progress::Quiet),
        )
    };
    let claim = serde_json::json!({"scratchDir": scratch, "memberName": "m"});
    // Empty, as a run that died right after creating it leaves it: removed.
    let removed = firedrill::drills::cleanup("etcd-restore", &claim, &ctx("run-1")).await.unwrap();
    assert!(removed[0].starts_with("removed empty scratch directory"), "{removed:?}");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("somebody-elses.db"), "data").unwrap();
    let refused = firedrill::drills::cleanup("etcd-restore", &claim, &ctx("run-1")).await.unwrap_err();
    assert!(refused.to_string().starts_with("refusing to remove"), "{refused}");
    assert!(scratch.join("somebody-elses.db").exists(), "a directory without the run's owner file is left alone");
    std::fs::remove_file(scratch.join("somebody-elses.db")).unwrap();

    // A member running on the scratch data dir is stopped, then the directory removed.
    std::fs::write(scratch.join(".firedrill-run"), "run-1").unwrap();
    let member_dir = scratch.join("member");
    // A member started the way the drill starts one.
    let tools = firedrill::etcd::tools::Tools::find(&Default::default()).unwrap();
    let (client, peer) = firedrill::etcd::member::free_ports().unwrap();
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut member =
        firedrill::etcd::member::Member::start(&tools, &member_dir, "m", client, &peer_url, &scratch.join("etcd.log"))
            .unwrap();
    while firedrill::etcd::member::processes_using(&member_dir).is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let wrong_run = firedrill::drills::cleanup("etcd-restore", &claim, &ctx("run-2")).await.unwrap_err();
    assert!(wrong_run.to_string().contains("does not carry run run-2"), "{wrong_run}");
    let actions = firedrill::drills::cleanup("etcd-restore", &claim, &ctx("run-1")).await.unwrap();
    assert!(actions.iter().any(|a| a.starts_with("stopped scratch etcd member")), "{actions:?}");
    assert!(!scratch.exists());
    assert!(member.exited().is_some(), "the member is gone");
    let again = firedrill::drills::cleanup("etcd-restore", &claim, &ctx("run-1")).await.unwrap();
    assert!(again[0].contains("already gone"), "cleanup is idempotent: {again:?}");
}

#[tokio::test]
async fn snapshots_round_trip_through_an_in_memory_store_and_the_newest_match_wins() {
    use firedrill::etcd::snapshots::{self, META_FORMAT, SnapshotMeta};
    use firedrill::store::{self, Profile};
    let loc = store::open(&format!("memory://snapshots-{}/etcd", uuid::Uuid::now_v7()), Profile::Bulk).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = firedrill::clock::Clock::system().now();
    let mut metas = Vec::new();
    for (i, name) in ["etcd-20261101.db", "etcd-20261102.db", "other-20261103.db"].iter().enumerate() {
        let file = write(dir.path(), name, &format!("snapshot {i}"));
        let meta = SnapshotMeta {
            format: META_FORMAT.into(),
            save_started: now,
            save_finished: now,
            endpoint: "http://127.0.0.1:2379".into(),
            revision: i as i64,
            keys: 10,
            total_key: 20,
            size_bytes: 10,
            sha256: "x".into(),
            etcd_version: None,
            tool_version: "test".into(),
        };
        snapshots::upload(&loc, name, &file, &meta).await.unwrap();
        metas.push(meta);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let found = snapshots::newest(&loc, &glob::Pattern::new("etcd-*.db").unwrap()).await.unwrap().unwrap();
    assert_eq!(
        found.key.as_ref(),
        "etcd/etcd-20261102.db",
        "the newest match; other-* and *.meta.json are not candidates"
    );
    assert_eq!(found.meta.as_ref(), Some(&metas[1]));
    let dest = dir.path().join("fetched.db");
    assert_eq!(snapshots::download(&loc, &found.key, &dest).await.unwrap(), 10);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "snapshot 1");
    assert!(snapshots::newest(&loc, &glob::Pattern::new("*.snap").unwrap()).await.unwrap().is_none());
}
