//! `firedrill etcd snapshot`: take a snapshot and, with `--upload`, store it with the metadata
//! that drills use for RPO (etcd snapshots carry no timestamp of their own).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::clock::Clock;
use crate::etcd::snapshots::{self, META_FORMAT, SnapshotMeta};
use crate::etcd::tools::{ToolPaths, Tools};
use crate::etcd::{Endpoint, TlsFiles, integrity};
use crate::store::{self, Profile};

#[derive(Subcommand, Debug)]
pub enum EtcdCommand {
    /// Save a snapshot of one member; upload it with metadata and/or keep it as a file.
    Snapshot {
        /// The member's client URL.
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        cacert: Option<PathBuf>,
        #[arg(long)]
        cert: Option<PathBuf>,
        #[arg(long)]
        key: Option<PathBuf>,
        /// Store URL to upload to (s3://bucket/prefix, file:///dir, memory://name).
        #[arg(long)]
        upload: Option<String>,
        /// Object name (default etcd-<UTC time>.db).
        #[arg(long)]
        name: Option<String>,
        /// Keep the snapshot at this path too.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn run(command: EtcdCommand) -> anyhow::Result<i32> {
    let EtcdCommand::Snapshot { endpoint, cacert, cert, key, upload, name, out } = command;
    if cert.is_some() != key.is_some() {
        anyhow::bail!("--cert and --key go together: give both for client-certificate auth, or neither");
    }
    if upload.is_none() && out.is_none() {
        anyhow::bail!("say where the snapshot goes: --upload <store URL>, --out <file>, or both");
    }
    let tls = (cacert.is_some() || cert.is_some() || key.is_some()).then_some(TlsFiles {
        ca_file: cacert,
        cert_file: cert,
        key_file: key,
    });
    let endpoint = Endpoint { url: endpoint, tls };
    let tools = Tools::find(&ToolPaths::default())?;
    let clock = Clock::system();
    let dir = tempfile::tempdir()?;
    let file = out.clone().unwrap_or_else(|| dir.path().join("snapshot.db"));
    let save_started = clock.now();
    tools.snapshot_save(&endpoint, &file).await?;
    let save_finished = clock.now();
    let status = tools.snapshot_status(&file).await?;
    let (keys, _) = tools.count(&endpoint, Some(status.revision)).await?;
    let checked = integrity::check(&file, false).map_err(anyhow::Error::msg)?;
    println!(
        "snapshot of {} saved at {save_started}: revision {}, {keys} live keys, {} bytes, sha256 {}",
        endpoint.url, status.revision, checked.size_bytes, checked.file_sha256
    );
    if let Some(url) = upload {
        let loc = store::open(&url, Profile::Bulk)?;
        let name = name.unwrap_or_else(|| format!("etcd-{}.db", save_started.datetime().format("%Y%m%dT%H%M%S%.3fZ")));
        let meta = SnapshotMeta {
            format: META_FORMAT.into(),
            save_started,
            save_finished,
            endpoint: endpoint.url.clone(),
            revision: status.revision,
            keys,
            total_key: status.total_key,
            size_bytes: checked.size_bytes,
            sha256: checked.file_sha256,
            etcd_version: tools.etcd_version().await,
            tool_version: crate::engine::runner::TOOL_VERSION.into(),
        };
        let key = snapshots::upload(&loc, &name, &file, &meta).await.with_context(|| format!("uploading to {url}"))?;
        println!("uploaded {key} and {key}{} to {url}", snapshots::META_SUFFIX);
    }
    if let Some(out) = out {
        println!("kept {}", out.display());
    }
    Ok(0)
}
