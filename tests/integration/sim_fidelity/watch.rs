//! Watch streams: framing, resourceVersions, bookmarks, the in-band 410, exact resumption,
//! selector transitions, and kube-rs's `watcher` and `await_condition` on top of them.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use super::{Backup, BackupSpec, BackupStatus, Wire, configmap, events, kinds_and_names, read_to_end, rv_of, shop};
use crate::support;

/// Ref §0 item 1, §1.7 "Too-old resourceVersion", Appendix A "Watch: in-band 410": a watch from
/// a compacted resourceVersion is answered HTTP 200, then exactly one
/// `{"type":"ERROR","object":<Status 410 Expired>}` line, then the end of the stream. The message
/// is the watch cache's `too old resource version: <rv> (<oldest-1>)`.
#[tokio::test]
async fn a_stale_watch_is_http_200_then_one_in_band_410_error_line_then_the_end() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    wire.post("/api/v1/namespaces/shop/configmaps", configmap("a")).await.expect(201);
    let compacted = wire.compact().await;

    let resp = wire.open("/api/v1/namespaces/shop/configmaps?watch=true&resourceVersion=1").await;
    assert_eq!(resp.status().as_u16(), 200, "a stale watch is not an HTTP-level error");
    let body = read_to_end(resp, Duration::from_secs(10)).await;
    let lines = events(&body);
    assert_eq!(lines.len(), 1, "one ERROR line, then the stream ends: {body}");
    assert_eq!(lines[0]["type"], "ERROR");
    assert_eq!(
        lines[0]["object"],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("too old resource version: 1 ({compacted})"), "reason": "Expired", "code": 410})
    );
    sim.shutdown().await;
}

/// Ref §0 item 1, §1.14 step 5: kube-rs's `watcher` relists (`Init` … `InitDone`) when its watch
/// gets the in-band 410 — which is the only signal it relists on. The watcher is polled lazily,
/// so compacting between its list and its watch makes that watch start from a stale
/// resourceVersion.
#[tokio::test]
async fn kube_rs_watcher_relists_after_a_stale_resource_version() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client(&sim), "shop");
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    assert!(matches!(next(&mut stream).await, Ok(watcher::Event::Init)));
    assert!(!initial_names(&mut stream).await.contains(&"made-meanwhile".to_string()));

    // While the watcher is not polled: a change, then the history it would resume from is gone.
    cms.create(&PostParams::default(), &serde_json::from_value(configmap("made-meanwhile")).unwrap()).await.unwrap();
    wire.compact().await;

    match next(&mut stream).await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"), "{status:?}");
        }
        other => panic!("the stale watch must surface as the in-band 410, got {other:?}"),
    }
    assert!(matches!(next(&mut stream).await, Ok(watcher::Event::Init)), "a 410 makes the watcher relist");
    assert!(initial_names(&mut stream).await.contains(&"made-meanwhile".to_string()), "the relist finds the change");
    drop(stream);
    sim.shutdown().await;
}

type Events = futures::stream::BoxStream<'static, watcher::Result<watcher::Event<ConfigMap>>>;

async fn next(stream: &mut Events) -> watcher::Result<watcher::Event<ConfigMap>> {
    tokio::time::timeout(support::SIM_PATIENCE, stream.next()).await.expect("the watcher went quiet").unwrap()
}

/// The names a watcher lists (its `InitApply`s) up to `InitDone`.
async fn initial_names(stream: &mut Events) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match next(stream).await {
            Ok(watcher::Event::InitApply(cm)) => names.push(cm.metadata.name.unwrap_or_default()),
            Ok(watcher::Event::InitDone) => return names,
            other => panic!("a list, then InitDone; got {other:?}"),
        }
    }
}

/// Ref §0 item 2, §1.7 "Event rules", Appendix A "Watch: newline-delimited events, bookmarks,
/// timeoutSeconds": every event is one JSON object ending in `\n`; ADDED/MODIFIED/DELETED objects
/// carry their resourceVersion, and the DELETED one the revision of the delete; BOOKMARK objects
/// carry `apiVersion`, `kind` and `metadata.resourceVersion`; the stream ends at `timeoutSeconds`.
#[tokio::test]
async fn watch_events_are_one_json_object_per_line_with_resource_versions_and_bookmarks() {
    let timings =
        firedrill::sim::server::Timings { bookmark_interval: Duration::from_millis(200), ..Default::default() };
    let sim =
        support::sim_with(firedrill::sim::SimOptions { config: shop(), timings: Some(timings), ..Default::default() })
            .await;
    let wire = Wire::new(&sim);
    let list = wire.get("/api/v1/namespaces/shop/configmaps").await.expect(200);
    let from = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let resp = wire
        .open(&format!(
            "/api/v1/namespaces/shop/configmaps?watch=true&resourceVersion={from}&allowWatchBookmarks=true&timeoutSeconds=2"
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let created = wire.post("/api/v1/namespaces/shop/configmaps", configmap("a")).await.expect(201);
    let modified = wire
        .patch("/api/v1/namespaces/shop/configmaps/a", "application/merge-patch+json", json!({"data": {"k": "w"}}))
        .await
        .expect(200);
    wire.delete("/api/v1/namespaces/shop/configmaps/a").await.expect(200);
    let started = std::time::Instant::now();
    let body = read_to_end(resp, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(15), "the stream ends at timeoutSeconds");

    let all = events(&body);
    let changes: Vec<_> = all.iter().filter(|e| e["type"] != "BOOKMARK").cloned().collect();
    assert_eq!(
        kinds_and_names(&changes),
        [("ADDED".into(), "a".into()), ("MODIFIED".into(), "a".into()), ("DELETED".into(), "a".into())]
    );
    assert_eq!(rv_of(&changes[0]["object"]), rv_of(&created));
    assert_eq!(rv_of(&changes[1]["object"]), rv_of(&modified));
    assert!(rv_of(&changes[2]["object"]) > rv_of(&modified), "a DELETED object carries the delete's revision");
    assert_eq!(changes[2]["object"]["data"], json!({"k": "w"}), "…and the last stored state");

    let bookmarks: Vec<_> = all.iter().filter(|e| e["type"] == "BOOKMARK").collect();
    assert!(!bookmarks.is_empty(), "bookmarks were asked for: {body}");
    for b in bookmarks {
        assert_eq!((b["object"]["apiVersion"].as_str(), b["object"]["kind"].as_str()), (Some("v1"), Some("ConfigMap")));
        assert!(rv_of(&b["object"]) >= from.parse().unwrap());
    }
    sim.shutdown().await;
}

/// Ref §1.7 "Starting-point semantics", Appendix A "Watch: RV-exact resume": a watch from
/// resourceVersion N delivers every change after N and nothing else (no synthetic ADDEDs); a
/// watch without one starts with a synthetic ADDED for every object.
#[tokio::test]
async fn a_watch_from_a_resource_version_resumes_exactly_after_it() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let a = wire.post("/api/v1/namespaces/shop/configmaps", configmap("a")).await.expect(201);
    wire.post("/api/v1/namespaces/shop/configmaps", configmap("b")).await.expect(201);
    wire.patch("/api/v1/namespaces/shop/configmaps/a", "application/merge-patch+json", json!({"data": {"k": "2"}}))
        .await
        .expect(200);

    let from_a =
        format!("/api/v1/namespaces/shop/configmaps?watch=true&timeoutSeconds=1&resourceVersion={}", rv_of(&a));
    let resumed = events(&read_to_end(wire.open(&from_a).await, Duration::from_secs(10)).await);
    assert_eq!(kinds_and_names(&resumed), [("ADDED".into(), "b".into()), ("MODIFIED".into(), "a".into())]);

    let fresh = events(
        &read_to_end(
            wire.open("/api/v1/namespaces/shop/configmaps?watch=true&timeoutSeconds=1").await,
            Duration::from_secs(10),
        )
        .await,
    );
    let mut names = kinds_and_names(&fresh);
    names.sort();
    assert_eq!(names, [("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]);
    sim.shutdown().await;
}

/// Ref §1.7 "With a label/field selector…", Appendix A "Watch: selector transitions as
/// ADDED/DELETED": a change that makes an object match is ADDED, one that makes it stop matching
/// is DELETED (at that change's revision), others are MODIFIED; objects never matching are unseen.
#[tokio::test]
async fn selector_transitions_are_sent_as_added_and_deleted() {
    let sim = support::sim(shop()).await;
    let wire = Wire::new(&sim);
    let from = wire.post("/api/v1/namespaces/shop/configmaps", configmap("x")).await.expect(201);
    wire.post("/api/v1/namespaces/shop/configmaps", configmap("never")).await.expect(201);
    let label = |tier: &str| json!({"metadata": {"labels": {"tier": tier}}});
    let path = "/api/v1/namespaces/shop/configmaps/x";
    let merge = "application/merge-patch+json";
    wire.patch(path, merge, label("front")).await.expect(200);
    wire.patch(path, merge, json!({"data": {"k": "2"}})).await.expect(200);
    let left = wire.patch(path, merge, label("back")).await.expect(200);

    let watch = format!(
        "/api/v1/namespaces/shop/configmaps?watch=true&timeoutSeconds=1&labelSelector=tier%3Dfront&resourceVersion={}",
        rv_of(&from)
    );
    let seen = events(&read_to_end(wire.open(&watch).await, Duration::from_secs(10)).await);
    assert_eq!(
        kinds_and_names(&seen),
        [("ADDED".into(), "x".into()), ("MODIFIED".into(), "x".into()), ("DELETED".into(), "x".into())]
    );
    assert_eq!(rv_of(&seen[2]["object"]), rv_of(&left), "it stopped matching at that revision");
    sim.shutdown().await;
}

/// Ref §0 item 6, §1.9 "Every type supports metadata.name", §1.13: `fieldSelector=metadata.name=<n>`
/// selects on a list and on a watch of a custom resource (Velero Backup); a field a CR does not
/// declare is 400 `field label not supported`.
#[tokio::test]
async fn field_selector_metadata_name_works_on_list_and_watch_for_a_cr() {
    let sim = support::sim(super::shop_without_velero()).await;
    let wire = Wire::new(&sim);
    let backups = "/apis/velero.io/v1/namespaces/velero/backups";
    let backup =
        |name: &str| json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name}, "spec": {}});
    let b1 = wire.post(backups, backup("b1")).await.expect(201);
    wire.post(backups, backup("b2")).await.expect(201);

    let list = wire.get(&format!("{backups}?fieldSelector=metadata.name%3Db1")).await.expect(200);
    let names: Vec<_> = list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].clone()).collect();
    assert_eq!(names, [json!("b1")]);
    assert_eq!(list["items"][0]["kind"], "Backup", "custom resource list items carry their kind");

    let resp = wire
        .open(&format!(
            "{backups}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Db1&resourceVersion={}",
            rv_of(&b1) - 1
        ))
        .await;
    let merge = "application/merge-patch+json";
    wire.patch(&format!("{backups}/b2"), merge, json!({"spec": {"ttl": "1h0m0s"}})).await.expect(200);
    wire.patch(&format!("{backups}/b1"), merge, json!({"spec": {"ttl": "2h0m0s"}})).await.expect(200);
    let seen = events(&read_to_end(resp, Duration::from_secs(10)).await);
    assert_eq!(kinds_and_names(&seen), [("ADDED".into(), "b1".into()), ("MODIFIED".into(), "b1".into())]);

    let e = wire.get(&format!("{backups}?fieldSelector=spec.ttl%3D1h")).await.expect(400);
    assert_eq!(
        (e["reason"].as_str(), e["message"].as_str()),
        (Some("BadRequest"), Some("field label not supported: spec.ttl"))
    );
    sim.shutdown().await;
}

/// Ref §0 item 6, §1.14 "`await_condition`": kube-rs waits on a CR by name with a
/// `metadata.name` watch; it sees the object created after it started and returns on the first
/// state that satisfies the condition (here a Velero phase written through the main resource).
#[tokio::test]
async fn await_condition_waits_on_a_cr_by_name() {
    let sim = support::sim(super::shop_without_velero()).await;
    let backups: Api<Backup> = Api::namespaced(support::kube_client(&sim), "velero");
    let waiting = {
        let backups = backups.clone();
        tokio::spawn(async move {
            support::wait_for(&backups, "nightly", "the backup completes", |b: Option<&Backup>| {
                b.and_then(|b| b.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Completed")
            })
            .await
        })
    };
    let mut b = Backup::new("nightly", BackupSpec { included_namespaces: vec!["shop".into()], ttl: None });
    b.status = Some(BackupStatus { phase: Some("InProgress".into()) });
    backups.create(&PostParams::default(), &b).await.unwrap();
    backups.create(&PostParams::default(), &Backup::new("other", BackupSpec::default())).await.unwrap();
    backups
        .patch("other", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Completed"}})))
        .await
        .unwrap();
    assert!(!waiting.is_finished(), "another backup's phase does not satisfy the wait");
    backups
        .patch("nightly", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Completed"}})))
        .await
        .unwrap();
    let done = waiting.await.unwrap().expect("the backup exists");
    assert_eq!(done.metadata.name.as_deref(), Some("nightly"));
    assert_eq!(done.status.unwrap().phase.as_deref(), Some("Completed"));

    // The same stream, read by hand: only `nightly`'s events come through the selector.
    let only: Vec<_> = watcher(backups.clone(), watcher::Config::default().fields("metadata.name=nightly"))
        .take_while(|e| futures::future::ready(!matches!(e, Ok(watcher::Event::InitDone))))
        .try_collect()
        .await
        .unwrap();
    let names: Vec<_> = only
        .iter()
        .filter_map(|e| match e {
            watcher::Event::InitApply(b) => b.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["nightly"]);
    sim.shutdown().await;
}
