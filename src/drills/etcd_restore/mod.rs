//! `etcd-restore`: restore an etcd snapshot into a scratch member and prove it serves the data.
//!
//! setup: (fromEndpoint) take the snapshot — the backup that exists when disaster strikes.
//! act: (fromStore) fetch the newest snapshot; check its integrity; restore it into a scratch
//! data dir; start a member on free loopback ports. wait: until it serves. verify: revision,
//! key count, expected keys, prefix counts, canary. cleanup: stop the member, remove the
//! scratch dir — only a directory that carries this run's marker file.

mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use spec::{Params, Source, Spec, validate};

use crate::clock::Timestamp;
use crate::engine::{Claim, Drill, DrillError, RunContext};
use crate::etcd::gateway::Gateway;
use crate::etcd::member::{self, Member};
use crate::etcd::snapshots::{self, META_FORMAT};
use crate::etcd::tools::{SnapshotStatus, Tools};
use crate::etcd::{EtcdError, integrity};
use crate::measure::{Check, RecoveryPoint, RpoMethod};
use crate::plan::Timeouts;
use crate::store::{self, Profile};

pub const KIND: &str = "etcd-restore";

pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    preflight: Duration::from_secs(30),
    setup: Duration::from_secs(300),
    act: Duration::from_secs(600),
    wait: Duration::from_secs(120),
    verify: Duration::from_secs(120),
    cleanup: Duration::from_secs(60),
};

/// The file in a scratch directory that says which run owns it. Cleanup removes a directory
/// only when this file names the run being cleaned up.
const OWNER_FILE: &str = ".firedrill-run";

/// What a run creates: written into the intent before anything exists.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClaim {
    /// The scratch directory: snapshot, restored data dir and member log all live inside it.
    pub scratch_dir: PathBuf,
    pub member_name: String,
}

impl EtcdClaim {
    fn snapshot_file(&self) -> PathBuf {
        self.scratch_dir.join("snapshot.db")
    }
    fn member_dir(&self) -> PathBuf {
        self.scratch_dir.join("member")
    }
    fn log_file(&self) -> PathBuf {
        self.scratch_dir.join("etcd.log")
    }
}

/// What is known about the snapshot being restored.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    status: Option<SnapshotStatus>,
    /// Live keys at the snapshot's revision, when firedrill counted them at save time.
    keys: Option<i64>,
    /// SHA-256 of the whole file, from metadata.
    sha256: Option<String>,
}

pub struct EtcdRestore {
    params: Params,
    tools: Option<Tools>,
    claim: Option<EtcdClaim>,
    found: Option<snapshots::Found>,
    snapshot: Snapshot,
    /// The scratch member and a client for it.
    member: Option<(Member, Gateway)>,
}

fn err(e: EtcdError) -> DrillError {
    DrillError::Error(e.to_string())
}

impl EtcdRestore {
    pub fn new(params: Params) -> Self {
        Self { params, tools: None, claim: None, found: None, snapshot: Snapshot::default(), member: None }
    }

    fn tools(&self) -> Result<&Tools, DrillError> {
        self.tools.as_ref().ok_or_else(|| DrillError::Error("preflight did not run".into()))
    }

    fn claimed(&self) -> Result<&EtcdClaim, DrillError> {
        self.claim.as_ref().ok_or_else(|| DrillError::Error("nothing was claimed".into()))
    }

    fn store_location(url: &str) -> Result<store::Location, DrillError> {
        store::open_existing(url, Profile::Bulk).map_err(|e| DrillError::Error(e.to_string()))
    }

    /// fromEndpoint: take the snapshot, count the source's live keys at its revision.
    async fn take_snapshot(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let Source::Endpoint(endpoint) = &self.params.source else {
            return Ok(());
        };
        let file = self.claimed()?.snapshot_file();
        ctx.waiting_for(&format!("etcdctl snapshot save from {}", endpoint.url));
        let started = ctx.now();
        self.tools()?.snapshot_save(endpoint, &file).await.map_err(err)?;
        ctx.mark("snapshot-saved");
        let status = self
            .tools()?
            .snapshot_status(&file)
            .await
            .map_err(|e| DrillError::Failed(format!("the snapshot does not pass etcd's integrity check: {e}")))?;
        let (keys, _) = self.tools()?.count(endpoint, Some(status.revision)).await.map_err(err)?;
        self.snapshot = Snapshot { status: Some(status), keys: Some(keys), sha256: None };
        ctx.recovery_point(RecoveryPoint {
            at: started,
            method: RpoMethod::SnapshotMetadata,
            source: format!("snapshot taken by this run from {}", endpoint.url),
        });
        Ok(())
    }

    /// fromStore: fetch the newest snapshot and adopt its metadata.
    async fn fetch_snapshot(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let (Source::Store { url, .. }, Some(found)) = (&self.params.source, &self.found) else {
            return Ok(());
        };
        let loc = Self::store_location(url)?;
        let file = self.claimed()?.snapshot_file();
        ctx.waiting_for(&format!("download of {}", found.key));
        let bytes = snapshots::download(&loc, &found.key, &file).await.map_err(|e| DrillError::Error(e.to_string()))?;
        ctx.mark("snapshot-fetched");
        ctx.detail("snapshotDownloadedBytes", bytes);
        match &found.meta {
            Some(meta) => {
                self.snapshot.keys = Some(meta.keys);
                self.snapshot.sha256 = Some(meta.sha256.clone());
                ctx.recovery_point(RecoveryPoint {
                    at: meta.save_started,
                    method: RpoMethod::SnapshotMetadata,
                    source: format!("{}{}", found.key, snapshots::META_SUFFIX),
                });
            }
            None => {
                ctx.warn(format!(
                    "{} has no firedrill metadata ({} format): RPO is taken from the object's last-modified time, a lower bound, and the key count cannot be checked exactly",
                    found.key, META_FORMAT
                ));
                ctx.recovery_point(RecoveryPoint {
                    at: Timestamp::from_datetime(found.object.last_modified),
                    method: RpoMethod::ObjectModified,
                    source: found.key.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Integrity: etcd's own trailer hash, the uploaded file's hash, and bbolt's check.
    async fn check_snapshot(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let file = self.claimed()?.snapshot_file();
        let allow = self.params.allow_missing_hash;
        let checked = tokio::task::spawn_blocking(move || integrity::check(&file, allow))
            .await
            .map_err(|e| DrillError::Error(e.to_string()))?
            .map_err(DrillError::Failed)?;
        if let Some(expected) = &self.snapshot.sha256
            && expected != &checked.file_sha256
        {
            return Err(DrillError::Failed(format!(
                "the snapshot differs from the one uploaded: its SHA-256 is {}, the metadata says {expected}",
                checked.file_sha256
            )));
        }
        // A snapshot this run took was inspected right after the save.
        let status =
            match self.snapshot.status {
                Some(status) => status,
                None => self.tools()?.snapshot_status(&self.claimed()?.snapshot_file()).await.map_err(|e| {
                    DrillError::Failed(format!("the snapshot does not pass etcd's integrity check: {e}"))
                })?,
            };
        if let Some(meta) = self.found.as_ref().and_then(|f| f.meta.as_ref())
            && meta.revision != status.revision
        {
            return Err(DrillError::Failed(format!(
                "the snapshot's revision is {}, but its metadata says {}",
                status.revision, meta.revision
            )));
        }
        ctx.detail(
            "snapshot",
            serde_json::json!({
                "sizeBytes": checked.size_bytes,
                "sha256": checked.file_sha256,
                "hashVerified": checked.hash_verified,
                "revision": status.revision,
                "totalKey": status.total_key,
                "totalSize": status.total_size,
                "bboltHash": status.hash,
            }),
        );
        self.snapshot.status = Some(status);
        ctx.mark("snapshot-checked");
        Ok(())
    }
}

#[async_trait]
impl Drill for EtcdRestore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn planned_changes(&self) -> Vec<String> {
        let source = match &self.params.source {
            Source::Endpoint(e) => format!("take a snapshot of {} (read-only for the source member)", e.url),
            Source::Store { url, pattern } => {
                format!("download the newest snapshot matching `{pattern}` from {url} (read-only)")
            }
        };
        vec![
            source,
            "create a scratch directory under <data-dir>/scratch/ for the snapshot and the restored member".into(),
            "start a scratch etcd member on free 127.0.0.1 ports, then stop it".into(),
            "remove the scratch directory".into(),
        ]
    }

    async fn preflight(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let tools = Tools::find(&self.params.tools).map_err(err)?;
        ctx.detail("tools", serde_json::json!({"layout": tools.layout(), "etcdVersion": tools.etcd_version().await}));
        self.tools = Some(tools);
        match &self.params.source {
            Source::Endpoint(endpoint) => {
                ctx.target("etcdEndpoint", &endpoint.url);
                for file in endpoint.tls.iter().flat_map(|t| [&t.ca_file, &t.cert_file, &t.key_file]).flatten() {
                    std::fs::File::open(file)
                        .map_err(|e| DrillError::Error(format!("cannot read {}: {e}", file.display())))?;
                }
                let tools = self.tools()?;
                tools
                    .count(endpoint, None)
                    .await
                    .map_err(|e| DrillError::Error(format!("the source member does not answer: {e}")))?;
            }
            Source::Store { url, pattern } => {
                ctx.target("snapshotStore", url);
                let loc = Self::store_location(url)?;
                let glob = glob::Pattern::new(pattern).map_err(|e| DrillError::Error(e.to_string()))?;
                let found = snapshots::newest(&loc, &glob).await.map_err(|e| DrillError::Error(e.to_string()))?;
                let Some(found) = found else {
                    return Err(DrillError::Failed(format!(
                        "no snapshot matching `{pattern}` in {url}: there is nothing to restore"
                    )));
                };
                ctx.log(format!(
                    "newest snapshot: {} ({} bytes, written {})",
                    found.key, found.object.size, found.object.last_modified
                ));
                ctx.target("snapshot", found.key.to_string());
                self.found = Some(found);
            }
        }
        Ok(())
    }

    fn claim(&mut self, ctx: &RunContext) -> Result<Claim, DrillError> {
        let claim = EtcdClaim {
            scratch_dir: ctx.data_dir.join("scratch").join(&ctx.run_id),
            member_name: format!("firedrill-{}", &ctx.run_id[ctx.run_id.len().saturating_sub(12)..]),
        };
        self.claim = Some(claim.clone());
        serde_json::to_value(claim).map_err(|e| DrillError::Error(e.to_string()))
    }

    async fn setup(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let dir = self.claimed()?.scratch_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| DrillError::Error(format!("cannot create {}: {e}", dir.display())))?;
        std::fs::write(dir.join(OWNER_FILE), &ctx.run_id).map_err(|e| DrillError::Error(e.to_string()))?;
        self.take_snapshot(ctx).await
    }

    async fn act(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        self.fetch_snapshot(ctx).await?;
        self.check_snapshot(ctx).await?;
        let claim = self.claimed()?.clone();
        let (client_port, peer_port) = member::free_ports().map_err(err)?;
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        ctx.waiting_for("snapshot restore");
        let skip_hash = self.params.allow_missing_hash;
        self.tools()?
            .snapshot_restore(
                &claim.snapshot_file(),
                &claim.member_dir(),
                &claim.member_name,
                &peer_url,
                &ctx.run_id,
                skip_hash,
            )
            .await
            .map_err(|e| DrillError::Failed(format!("the snapshot does not restore: {e}")))?;
        ctx.mark("restored");
        let m = Member::start(
            self.tools()?,
            &claim.member_dir(),
            &claim.member_name,
            client_port,
            &peer_url,
            &claim.log_file(),
        )
        .map_err(err)?;
        ctx.detail("member", serde_json::json!({"clientUrl": m.client_url, "pid": m.pid()}));
        let gw = Gateway::new(&m.client_url).map_err(err)?;
        self.member = Some((m, gw));
        Ok(())
    }

    async fn wait(&mut self, ctx: &RunContext) -> Result<(), DrillError> {
        let (member, gw) = self.member.as_mut().ok_or_else(|| DrillError::Error("no member was started".into()))?;
        ctx.waiting_for(&format!("the scratch member at {} to serve", member.client_url));
        // A process start cannot be watched: poll its health endpoint every 10 ms, which bounds
        // the detection lag added to the RTO.
        loop {
            if gw.healthy().await {
                ctx.mark("serving");
                return Ok(());
            }
            if let Some(why) = member.exited() {
                if why.contains("address already in use") {
                    return Err(DrillError::Error(format!(
                        "another process took a port chosen for the scratch member before it could bind it; run the drill again ({why})"
                    )));
                }
                return Err(DrillError::Failed(format!("the restored member did not start: {why}")));
            }
            ctx.clock.sleep(Duration::from_millis(10)).await;
        }
    }

    async fn verify(&mut self, ctx: &RunContext) -> Result<Vec<Check>, DrillError> {
        let (_, gw) = self.member.as_ref().ok_or_else(|| DrillError::Error("no member was started".into()))?;
        let failed = |e: EtcdError| DrillError::Failed(format!("the restored member stopped answering: {e}"));
        let mut checks = Vec::new();
        let (live, revision) = gw.count(None, None).await.map_err(failed)?;
        let status = self.snapshot.status.ok_or_else(|| DrillError::Error("the snapshot was not inspected".into()))?;
        checks.push(Check::equal("revision equals the snapshot's", status.revision, revision));
        match self.snapshot.keys {
            Some(expected) => {
                checks.push(Check::equal("live keys equal the source's at that revision", expected, live))
            }
            None => {
                checks.push(Check::new("live keys present", live > 0).saw("> 0", live));
                ctx.warn("the source's key count is unknown, so only the presence of keys was checked");
            }
        }
        ctx.detail("restored", serde_json::json!({"revision": revision, "liveKeys": live}));
        for key in &self.params.expect_keys {
            let found = gw.get(key.as_bytes()).await.map_err(failed)?.is_some();
            checks.push(
                Check::new(format!("key {key} exists"), found).saw("present", if found { "present" } else { "absent" }),
            );
        }
        for pc in &self.params.prefix_counts {
            let (n, _) = gw.count(Some(pc.prefix.as_bytes()), None).await.map_err(failed)?;
            let n = u64::try_from(n).unwrap_or(0);
            if let Some(min) = pc.min {
                checks.push(
                    Check::new(format!("at least {min} keys under {}", pc.prefix), n >= min)
                        .saw(format!(">= {min}"), n),
                );
            }
            if let Some(eq) = pc.equals {
                checks.push(Check::equal(format!("keys under {}", pc.prefix), eq, n));
            }
        }
        if let Some(key) = &self.params.canary_key {
            let value = gw.get(key.as_bytes()).await.map_err(failed)?;
            let text = value.as_deref().map(String::from_utf8_lossy).unwrap_or_default().to_string();
            match Timestamp::parse_lenient(&text) {
                Some(at) => {
                    checks.push(Check::new(format!("canary {key} holds a timestamp"), true).saw("a timestamp", at));
                    ctx.recovery_point(RecoveryPoint {
                        at,
                        method: RpoMethod::Canary,
                        source: format!("etcd key {key}"),
                    });
                }
                None if value.is_none() => {
                    checks.push(Check::new(format!("canary {key} exists"), false).saw("a timestamp", "no such key"))
                }
                None => checks.push(
                    Check::new(format!("canary {key} holds a timestamp"), false)
                        .saw("a timestamp", format!("{text:?}")),
                ),
            }
        }
        Ok(checks)
    }
}

/// Stops the scratch member and removes the scratch directory named in `claim`. Refuses to
/// remove a directory that does not carry this run's owner file.
pub async fn cleanup(claim: &Claim, ctx: &RunContext) -> Result<Vec<String>, DrillError> {
    let claim: EtcdClaim =
        serde_json::from_value(claim.clone()).map_err(|e| DrillError::Error(format!("unreadable claim: {e}")))?;
    let dir = &claim.scratch_dir;
    if !dir.exists() {
        return Ok(vec![format!("scratch directory {} already gone", dir.display())]);
    }
    // Nothing is touched, not even a process, unless the directory says it is this run's.
    let owner = std::fs::read_to_string(dir.join(OWNER_FILE)).unwrap_or_default();
    // A run that died between creating the directory and writing the owner file left it empty:
    // removing an empty directory cannot destroy anything.
    if owner.is_empty() && std::fs::remove_dir(dir).is_ok() {
        return Ok(vec![format!("removed empty scratch directory {}", dir.display())]);
    }
    if owner.trim() != ctx.run_id {
        return Err(DrillError::Error(format!(
            "refusing to remove {}: it does not carry run {}'s {OWNER_FILE} file",
            dir.display(),
            ctx.run_id
        )));
    }
    let mut actions = Vec::new();
    let stopped = member::stop_all(&claim.member_dir(), Duration::from_secs(5)).await;
    if !stopped.is_empty() {
        let pids = stopped.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        actions.push(format!("stopped scratch etcd member (pid {pids})"));
    }
    let still = member::processes_using(&claim.member_dir());
    if !still.is_empty() {
        return Err(DrillError::Error(format!(
            "etcd pid {still:?} still uses {} after SIGKILL",
            claim.member_dir().display()
        )));
    }
    remove_dir(dir).map_err(|e| DrillError::Error(format!("cannot remove {}: {e}", dir.display())))?;
    actions.push(format!("removed scratch directory {}", dir.display()));
    Ok(actions)
}

fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
