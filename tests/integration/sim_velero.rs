//! The simulator's Velero stand-in, driven through kube-rs as a drill drives Velero: a storage
//! location on a directory and on a real S3 server, backups landing in Velero's layout, restores
//! into mapped namespaces whose workloads come up, the existing-resource policies, a restore
//! that partially fails, an unavailable location, a backup written by hand (not by the
//! simulator) that is synced in and restored, and schedules. Every scenario runs in its own
//! simulator, stops it even when it fails, and dumps the Velero objects when it does.

use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use base64::Engine;
use firedrill::sim::config::{AppSpec, SimConfig};
use firedrill::sim::faults::FaultConfig;
use firedrill::sim::velero::format::{BackupItem, gunzip, read_tarball};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::support;

/// The Velero side of a running simulator.
struct Velero {
    client: kube::Client,
    url: String,
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

impl Velero {
    fn api(&self, kind: &str, plural: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), "velero", &resource(kind, plural))
    }

    async fn create(&self, kind: &str, plural: &str, manifest: Value) {
        let obj: DynamicObject = serde_json::from_value(manifest).expect("a Velero manifest");
        self.api(kind, plural).create(&PostParams::default(), &obj).await.expect("create");
    }

    /// Polls Velero object `name` until `holds`; returns it as JSON.
    async fn until(&self, kind: &str, plural: &str, name: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
        let (api, holds) = (&self.api(kind, plural), &holds);
        support::until(what, || async move {
            let v = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
            holds(&v).then_some(v)
        })
        .await
    }

    /// The object once its phase is one of `phases`.
    async fn phase(&self, kind: &str, plural: &str, name: &str, phases: &[&str]) -> Value {
        let what = format!("{kind} {name} in phase {phases:?}");
        self.until(kind, plural, name, &what, |o| phases.iter().any(|p| o["status"]["phase"] == *p)).await
    }

    async fn location_on(&self, name: &str, dir: &Path) -> Value {
        self.create(
            "BackupStorageLocation",
            "backupstoragelocations",
            json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": name},
                   "spec": {"provider": "firedrill.dev/file", "default": true,
                            "objectStorage": {"bucket": dir.display().to_string()}}}),
        )
        .await;
        self.phase("BackupStorageLocation", "backupstoragelocations", name, &["Available", "Unavailable"]).await
    }

    async fn backup(&self, name: &str, spec: Value) -> Value {
        self.create(
            "Backup",
            "backups",
            json!({"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        self.phase("Backup", "backups", name, &["Completed", "PartiallyFailed", "Failed", "FailedValidation"]).await
    }

    async fn restore(&self, name: &str, spec: Value) -> Value {
        self.create(
            "Restore",
            "restores",
            json!({"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        self.phase("Restore", "restores", name, &["Completed", "PartiallyFailed", "Failed", "FailedValidation"]).await
    }

    /// Prints every Velero object, for a failed test (never Secrets: they hold credentials).
    async fn dump(&self) {
        let http = reqwest::Client::new();
        for plural in ["backupstoragelocations", "backups", "restores", "schedules"] {
            let url = format!("{}/apis/velero.io/v1/{plural}", self.url);
            if let Ok(r) = http.get(&url).send().await
                && let Ok(list) = r.json::<Value>().await
            {
                eprintln!("--- {plural}:\n{}", serde_json::to_string_pretty(&list["items"]).unwrap_or_default());
            }
        }
    }
}

/// Runs `scenario` against a fresh simulator, stops it whatever happens, and dumps state on failure.
async fn with_velero<F, Fut>(config: SimConfig, scenario: F)
where
    F: FnOnce(Velero) -> Fut,
    Fut: Future<Output = ()>,
{
    let sim = support::sim(config).await;
    let velero = || Velero { client: support::kube_client(&sim), url: sim.url() };
    let outcome = AssertUnwindSafe(scenario(velero())).catch_unwind().await;
    if outcome.is_err() {
        velero().dump().await;
    }
    sim.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Namespace `shop` with Deployment `web` (2 replicas), ConfigMap `app-config` and Secret `db`.
fn shop() -> SimConfig {
    SimConfig {
        namespaces: vec!["shop".into()],
        apps: vec![AppSpec { name: "web".into(), namespace: "shop".into(), replicas: Some(2), ..AppSpec::default() }],
        objects: vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "shop"},
                   "data": {"mode": "live"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                   "data": {"password": "aHVudGVyMg=="}}),
        ],
        ..SimConfig::default()
    }
}

fn labels(v: &Value) -> (&str, &str) {
    let l = &v["metadata"]["labels"];
    (l["velero.io/backup-name"].as_str().unwrap_or_default(), l["velero.io/restore-name"].as_str().unwrap_or_default())
}

fn read_json_gz(path: &Path) -> Value {
    serde_json::from_slice(&gunzip(&std::fs::read(path).unwrap()).unwrap()).unwrap()
}

/// (group-resource, namespace, name) of each item of a tarball.
fn catalogue(items: &[BackupItem]) -> Vec<(String, String, String)> {
    items.iter().map(|i| (i.group_resource.clone(), i.namespace.clone().unwrap_or_default(), i.name.clone())).collect()
}

/// Waits until Deployment `name` in `ns` has `n` available replicas.
async fn available(client: &kube::Client, ns: &str, name: &str, n: i32) -> Deployment {
    let api: &Api<Deployment> = &Api::namespaced(client.clone(), ns);
    support::until(&format!("Deployment {ns}/{name} with {n} available replicas"), || async move {
        let d = api.get_opt(name).await.ok()??;
        (d.status.as_ref()?.available_replicas? == n).then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_lands_in_velero_s_layout_and_restores_into_a_mapped_namespace_where_the_app_comes_up() {
    let dir = &tempfile::tempdir().unwrap();
    with_velero(shop(), |v| async move {
        let bsl = v.location_on("local", dir.path()).await;
        assert_eq!(bsl["status"]["phase"], "Available", "{bsl}");
        assert!(bsl["status"]["lastValidationTime"].is_string());
        available(&v.client, "shop", "web", 2).await;

        let b = v.backup("shop-1", json!({"includedNamespaces": ["shop"]})).await;
        assert_eq!(b["status"]["phase"], "Completed", "{b}");
        let status = &b["status"];
        assert_eq!((status["formatVersion"].as_str(), status["version"].as_i64()), (Some("1.1.0"), Some(1)));
        assert!(status["startTimestamp"].is_string() && status["completionTimestamp"].is_string());
        assert!(status["expiration"].is_string());
        assert_eq!(b["spec"]["ttl"], "720h0m0s");
        assert_eq!(b["metadata"]["labels"]["velero.io/storage-location"], "local");
        let total = status["progress"]["totalItems"].as_u64().unwrap();
        assert_eq!(status["progress"]["itemsBackedUp"].as_u64(), Some(total));

        let root = dir.path().join("backups/shop-1");
        for file in [
            "velero-backup.json",
            "shop-1.tar.gz",
            "shop-1-logs.gz",
            "shop-1-results.gz",
            "shop-1-resource-list.json.gz",
        ] {
            assert!(root.join(file).is_file(), "{file} is in the location");
        }
        let stored: Value = serde_json::from_slice(&std::fs::read(root.join("velero-backup.json")).unwrap()).unwrap();
        assert_eq!((stored["kind"].as_str(), stored["status"]["phase"].as_str()), (Some("Backup"), Some("Completed")));
        let items = read_tarball(&std::fs::read(root.join("shop-1.tar.gz")).unwrap()).unwrap();
        assert_eq!(items.len() as u64, total);
        let catalogue = catalogue(&items);
        for wanted in [
            ("deployments.apps", "shop", "web"),
            ("configmaps", "shop", "app-config"),
            ("secrets", "shop", "db"),
            ("namespaces", "", "shop"),
        ] {
            let wanted = (wanted.0.to_string(), wanted.1.to_string(), wanted.2.to_string());
            assert!(catalogue.contains(&wanted), "{wanted:?} in {catalogue:?}");
        }
        assert!(catalogue.iter().all(|(gr, ns, _)| ns == "shop" || gr == "namespaces"), "only shop: {catalogue:?}");
        let list = read_json_gz(&root.join("shop-1-resource-list.json.gz"));
        assert_eq!(list["apps/v1/Deployment"], json!(["shop/web"]));
        assert_eq!(read_json_gz(&root.join("shop-1-results.gz")), json!({"errors": {}, "warnings": {}}));

        let r = v
            .restore(
                "shop-dr-1",
                json!({"backupName": "shop-1", "includedNamespaces": ["*"], "namespaceMapping": {"shop": "shop-dr"}}),
            )
            .await;
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        assert!(r["status"]["warnings"].is_null() && r["status"]["errors"].is_null(), "{r}");
        let restored = r["status"]["progress"]["itemsRestored"].as_u64().unwrap();
        assert_eq!(r["status"]["progress"]["totalItems"].as_u64(), Some(restored));
        assert!(r["spec"]["excludedResources"].as_array().unwrap().contains(&json!("nodes")));

        let ns: Api<Namespace> = Api::all(v.client.clone());
        ns.get("shop-dr").await.expect("the mapped namespace is created");
        let d = available(&v.client, "shop-dr", "web", 2).await;
        let d = serde_json::to_value(d).unwrap();
        assert_eq!(labels(&d), ("shop-1", "shop-dr-1"));
        let pods: Api<Pod> = Api::namespaced(v.client.clone(), "shop-dr");
        let ready = support::ready_pods(&pods, "web", 2).await;
        assert!(
            ready.iter().all(|p| p.metadata.labels.as_ref().unwrap().get("velero.io/restore-name").is_none()),
            "pods are the restored Deployment's own, not restored copies"
        );
        let cm: Api<ConfigMap> = Api::namespaced(v.client.clone(), "shop-dr");
        let cm = serde_json::to_value(cm.get("app-config").await.unwrap()).unwrap();
        assert_eq!((cm["data"]["mode"].as_str(), labels(&cm)), (Some("live"), ("shop-1", "shop-dr-1")));
        let secret: Api<Secret> = Api::namespaced(v.client.clone(), "shop-dr");
        assert!(secret.get("db").await.is_ok());

        let out = dir.path().join("restores/shop-dr-1");
        let results = read_json_gz(&out.join("restore-shop-dr-1-results.gz"));
        assert_eq!(results, json!({"errors": {}, "warnings": {}}));
        let list = read_json_gz(&out.join("restore-shop-dr-1-resource-list.json.gz"));
        assert_eq!(list["apps/v1/Deployment"], json!(["shop-dr/web(created)"]));
        assert_eq!(list["v1/Namespace"], json!(["shop-dr(created)"]));
        assert!(out.join("restore-shop-dr-1-logs.gz").is_file());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_are_skipped_with_a_warning_or_updated_as_the_policy_says() {
    let dir = &tempfile::tempdir().unwrap();
    with_velero(shop(), |v| async move {
        v.location_on("local", dir.path()).await;
        assert_eq!(v.backup("shop-1", json!({"includedNamespaces": ["shop"]})).await["status"]["phase"], "Completed");
        let cms: Api<ConfigMap> = Api::namespaced(v.client.clone(), "shop");
        let changed = json!({"data": {"mode": "changed"}});
        cms.patch("app-config", &PatchParams::default(), &Patch::Merge(&changed)).await.unwrap();

        let r = v.restore("in-place", json!({"backupName": "shop-1", "existingResourcePolicy": "none"})).await;
        assert_eq!(r["status"]["phase"], "Completed", "warnings do not fail a restore: {r}");
        assert!(r["status"]["warnings"].as_u64().unwrap() >= 1, "{r}");
        let cm = cms.get("app-config").await.unwrap();
        assert_eq!(cm.data.unwrap()["mode"], "changed", "policy none leaves the object as it is");
        let results = read_json_gz(&dir.path().join("restores/in-place/restore-in-place-results.gz"));
        let shop = results["warnings"]["namespaces"]["shop"].as_array().unwrap();
        let expected = "could not restore, ConfigMap \"app-config\" already exists. Warning: the in-cluster version is different than the backed-up version.";
        assert!(shop.contains(&json!(expected)), "{results}");

        let r = v.restore("update", json!({"backupName": "shop-1", "existingResourcePolicy": "update"})).await;
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        let cm = serde_json::to_value(cms.get("app-config").await.unwrap()).unwrap();
        assert_eq!((cm["data"]["mode"].as_str(), labels(&cm)), (Some("live"), ("shop-1", "update")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partially_failed_fault_ends_a_restore_partially_failed_with_its_errors_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        SimConfig { faults: Some(FaultConfig { partially_fail_restores: true, ..FaultConfig::default() }), ..shop() };
    with_velero(config, |v| async move {
        v.location_on("local", dir.path()).await;
        v.backup("shop-1", json!({"includedNamespaces": ["shop"]})).await;
        let r = v.restore("dr", json!({"backupName": "shop-1", "namespaceMapping": {"shop": "shop-dr"}})).await;
        assert_eq!(r["status"]["phase"], "PartiallyFailed", "{r}");
        assert_eq!(r["status"]["errors"].as_u64(), Some(1), "one error per restored namespace: {r}");
        assert!(r["status"]["completionTimestamp"].is_string());
        let results = read_json_gz(&dir.path().join("restores/dr/restore-dr-results.gz"));
        assert_eq!(results["errors"]["namespaces"]["shop-dr"].as_array().map(Vec::len), Some(1), "{results}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_location_fails_backups_and_restores_validation_with_velero_s_messages() {
    let dir = tempfile::tempdir().unwrap();
    let missing = &dir.path().join("not-there");
    with_velero(shop(), |v| async move {
        let bsl = v.location_on("gone", missing).await;
        assert_eq!(bsl["status"]["phase"], "Unavailable");
        let message = bsl["status"]["message"].as_str().unwrap();
        assert!(message.starts_with("BackupStorageLocation \"gone\" is unavailable: "), "{message}");

        let b = v.backup("b1", json!({"storageLocation": "gone"})).await;
        assert_eq!(b["status"]["phase"], "FailedValidation");
        assert_eq!(
            b["status"]["validationErrors"],
            json!(["backup can't be created because BackupStorageLocation gone is in Unavailable status."])
        );
        assert!(b["status"]["startTimestamp"].is_null(), "no start time for FailedValidation");

        // A backup that was on the location before it went away.
        v.create(
            "Backup",
            "backups",
            json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "old", "labels": {"velero.io/storage-location": "gone"}},
            "spec": {"storageLocation": "gone"}, "status": {"phase": "Completed"}}),
        )
        .await;
        let r = v.restore("r1", json!({"backupName": "old"})).await;
        assert_eq!(r["status"]["phase"], "FailedValidation");
        assert_eq!(r["status"]["validationErrors"], json!(["The BSL gone is unavailable, cannot retrieve the backup"]));

        let r = v.restore("r2", json!({"backupName": "nope"})).await;
        assert_eq!(
            r["status"]["validationErrors"],
            json!(["Error retrieving backup: can't find backup velero/nope: backups.velero.io \"nope\" not found"])
        );
        let r = v.restore("r3", json!({"backupName": "old", "scheduleName": "nightly"})).await;
        assert_eq!(
            r["status"]["validationErrors"],
            json!(["Either a backup or schedule must be specified as a source for the restore, but not both"])
        );
    })
    .await;
}

/// A gzip'd tar as `tar czf` writes it over a directory: `./` paths, directory entries, 0644.
pub fn hand_made_tarball(files: &[(&str, Value)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "./resources/", std::io::empty()).unwrap();
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("./metadata/version", b"1.1.0\n");
    for (path, obj) in files {
        add(path, obj.to_string().as_bytes());
    }
    let gz = tar.into_inner().unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_written_by_hand_in_velero_s_layout_is_synced_in_and_restores() {
    let dir = &tempfile::tempdir().unwrap();
    let tarball = hand_made_tarball(&[
        (
            "./resources/namespaces/cluster/legacy.json",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy", "labels": {"team": "billing"}}}),
        ),
        (
            "./resources/configmaps/namespaces/legacy/settings.json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "legacy",
                "uid": "0c3f", "resourceVersion": "123", "creationTimestamp": "2025-01-01T00:00:00Z"}, "data": {"region": "eu"}}),
        ),
        (
            "./resources/deployments.apps/namespaces/legacy/api.json",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "legacy"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                         "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "registry.example/api:2"}]}}},
                "status": {"availableReplicas": 1}}),
        ),
    ]);
    let root = dir.path().join("backups/handmade");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("handmade.tar.gz"), &tarball).unwrap();
    let metadata = json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "handmade", "namespace": "velero", "uid": "from-another-cluster"},
        "spec": {"includedNamespaces": ["legacy"], "storageLocation": "their-default", "ttl": "720h0m0s"},
        "status": {"phase": "Completed", "version": 1, "formatVersion": "1.1.0",
                   "startTimestamp": "2025-01-01T00:00:00Z", "completionTimestamp": "2025-01-01T00:01:00Z"}});
    let mut f = std::fs::File::create(root.join("velero-backup.json")).unwrap();
    f.write_all(serde_json::to_string_pretty(&metadata).unwrap().as_bytes()).unwrap();

    with_velero(SimConfig::default(), |v| async move {
        v.create(
            "BackupStorageLocation",
            "backupstoragelocations",
            json!({"apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation", "metadata": {"name": "archive"},
            "spec": {"provider": "firedrill.dev/file", "backupSyncPeriod": "1s",
                     "objectStorage": {"bucket": dir.path().display().to_string()}}}),
        )
        .await;
        let synced =
            v.until("Backup", "backups", "handmade", "the stored backup synced into the cluster", |_| true).await;
        assert_eq!(synced["spec"]["storageLocation"], "archive");
        assert_eq!(synced["metadata"]["labels"]["velero.io/storage-location"], "archive");
        assert_eq!(synced["status"]["phase"], "Completed");

        let r = v
            .restore("from-hand", json!({"backupName": "handmade", "namespaceMapping": {"legacy": "legacy-dr"}}))
            .await;
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        let ns: Api<Namespace> = Api::all(v.client.clone());
        let created = ns.get("legacy-dr").await.unwrap();
        assert_eq!(created.metadata.labels.unwrap()["team"], "billing", "the namespace keeps its backed-up labels");
        let cm: Api<ConfigMap> = Api::namespaced(v.client.clone(), "legacy-dr");
        let cm = serde_json::to_value(cm.get("settings").await.unwrap()).unwrap();
        assert_eq!((cm["data"]["region"].as_str(), labels(&cm)), (Some("eu"), ("handmade", "from-hand")));
        assert_ne!(cm["metadata"]["uid"], "0c3f", "the server assigns a new uid");
        available(&v.client, "legacy-dr", "api", 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_go_through_a_real_s3_server_with_credentials_from_a_secret() {
    let s3 = &support::S3::start();
    with_velero(shop(), |v| async move {
        let credentials =
            format!("[default]\naws_access_key_id={}\naws_secret_access_key={}\n", support::S3_KEY, support::S3_SECRET);
        let secrets: Api<Secret> = Api::namespaced(v.client.clone(), "velero");
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "cloud-credentials"}, "data": {"cloud": encoded}}))
                .unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        v.create(
            "BackupStorageLocation",
            "backupstoragelocations",
            json!({"apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation", "metadata": {"name": "default"},
            "spec": {"provider": "aws", "default": true,
                     "objectStorage": {"bucket": s3.bucket, "prefix": "cluster-a"},
                     "config": {"region": "us-east-1", "s3Url": s3.endpoint, "s3ForcePathStyle": "true"},
                     "credential": {"name": "cloud-credentials", "key": "cloud"}}}),
        )
        .await;
        let bsl =
            v.phase("BackupStorageLocation", "backupstoragelocations", "default", &["Available", "Unavailable"]).await;
        assert_eq!(bsl["status"]["phase"], "Available", "{bsl}");
        assert!(!bsl.to_string().contains(support::S3_SECRET), "no credential in the object");

        let b = v.backup("shop-s3", json!({"includedNamespaces": ["shop"]})).await;
        assert_eq!(b["status"]["phase"], "Completed", "{b}");
        let listed = s3
            .sdk()
            .await
            .list_objects_v2()
            .bucket(&s3.bucket)
            .prefix("cluster-a/backups/shop-s3/")
            .send()
            .await
            .unwrap();
        let keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
        for file in ["velero-backup.json", "shop-s3.tar.gz", "shop-s3-results.gz", "shop-s3-resource-list.json.gz"] {
            assert!(keys.contains(&format!("cluster-a/backups/shop-s3/{file}")), "{file} in {keys:?}");
        }

        let r =
            v.restore("shop-s3-dr", json!({"backupName": "shop-s3", "namespaceMapping": {"shop": "shop-s3-dr"}})).await;
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        available(&v.client, "shop-s3-dr", "web", 2).await;
        let cm: Api<ConfigMap> = Api::namespaced(v.client.clone(), "shop-s3-dr");
        assert_eq!(cm.get("app-config").await.unwrap().data.unwrap()["mode"], "live");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_creates_labelled_backups_and_a_bad_expression_fails_validation() {
    let dir = &tempfile::tempdir().unwrap();
    with_velero(shop(), |v| async move {
        v.location_on("local", dir.path()).await;
        v.create(
            "Schedule",
            "schedules",
            json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": "often"},
            "spec": {"schedule": "@every 1s", "template": {"includedNamespaces": ["shop"], "ttl": "1h0m0s"}}}),
        )
        .await;
        let s = v
            .until("Schedule", "schedules", "often", "the schedule's first backup", |o| {
                o["status"]["lastBackup"].is_string()
            })
            .await;
        assert_eq!(s["status"]["phase"], "Enabled");
        let backups = v.api("Backup", "backups");
        let made = support::until("a backup of the schedule", || async {
            let list =
                backups.list(&kube::api::ListParams::default().labels("velero.io/schedule-name=often")).await.ok()?;
            list.items.into_iter().next()
        })
        .await;
        let name = made.metadata.name.clone().unwrap();
        assert!(name.starts_with("often-") && name.len() == "often-".len() + 14, "{name}");
        let done = v.phase("Backup", "backups", &name, &["Completed"]).await;
        assert_eq!(done["spec"]["ttl"], "1h0m0s");

        let r = v
            .restore("from-schedule", json!({"scheduleName": "often", "namespaceMapping": {"shop": "shop-again"}}))
            .await;
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        assert!(r["spec"]["backupName"].as_str().unwrap().starts_with("often-"));

        v.create(
            "Schedule",
            "schedules",
            json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": "bad"}, "spec": {"schedule": "0 3 * *", "template": {}}}),
        )
        .await;
        let bad = v.phase("Schedule", "schedules", "bad", &["FailedValidation"]).await;
        assert_eq!(
            bad["status"]["validationErrors"],
            json!(["invalid schedule: expected exactly 5 fields, found 4: [0 3 * *]"])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_a_namespace_still_being_deleted_waits_for_it_to_go_and_brings_the_app_back() {
    let dir = &tempfile::tempdir().unwrap();
    with_velero(shop(), |v| async move {
        v.location_on("local", dir.path()).await;
        available(&v.client, "shop", "web", 2).await;
        assert_eq!(v.backup("shop-1", json!({"includedNamespaces": ["shop"]})).await["status"]["phase"], "Completed");
        let namespaces: Api<Namespace> = Api::all(v.client.clone());
        namespaces.delete("shop", &Default::default()).await.unwrap();

        let r = v.restore("back", json!({"backupName": "shop-1"})).await;
        assert_eq!(r["status"]["phase"], "Completed", "{r}");
        assert!(r["status"]["warnings"].is_null(), "nothing was left to collide with: {r}");
        let shop = namespaces.get("shop").await.unwrap();
        assert_eq!(shop.status.unwrap().phase.as_deref(), Some("Active"));
        available(&v.client, "shop", "web", 2).await;
        let cm: Api<ConfigMap> = Api::namespaced(v.client.clone(), "shop");
        assert_eq!(cm.get("app-config").await.unwrap().data.unwrap()["mode"], "live");
    })
    .await;
}
