//! etcd snapshots in object storage, and the metadata firedrill writes beside them.
//!
//! An etcd snapshot file carries no timestamp, so `firedrill etcd snapshot --upload` stores
//! `<name>.meta.json` next to `<name>`: when the save started and finished, the revision, the
//! live key count at that revision and the file's SHA-256. Drills use it for RPO and for an exact
//! key-count check; snapshots without it still restore, with weaker evidence.

use std::path::Path;

use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::clock::Timestamp;
use crate::store::Location;

/// The suffix of a metadata object.
pub const META_SUFFIX: &str = ".meta.json";
/// The `format` every metadata object declares.
pub const META_FORMAT: &str = "firedrill.dev/etcd-snapshot/v1";

/// What firedrill knows about a snapshot it saved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMeta {
    pub format: String,
    /// The save started here: the snapshot holds every write committed before this instant.
    pub save_started: Timestamp,
    pub save_finished: Timestamp,
    /// The member it was taken from (URL only).
    pub endpoint: String,
    pub revision: i64,
    /// Live keys at `revision`, counted on the source member.
    pub keys: i64,
    /// `totalKey` from `snapshot status`.
    pub total_key: i64,
    pub size_bytes: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_version: Option<String>,
    pub tool_version: String,
}

/// A snapshot found in a store.
#[derive(Debug, Clone)]
pub struct Found {
    pub key: Key,
    pub object: ObjectMeta,
    pub meta: Option<SnapshotMeta>,
}

/// Errors of snapshot storage.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    #[error("{url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{0}")]
    Io(String),
}

fn store_error(loc: &Location) -> impl Fn(object_store::Error) -> SnapshotStoreError + '_ {
    move |source| SnapshotStoreError::Store { url: loc.url.clone(), source }
}

/// The newest object under `loc` whose file name matches `pattern` (by last-modified time), and
/// its metadata when there is some.
pub async fn newest(loc: &Location, pattern: &glob::Pattern) -> Result<Option<Found>, SnapshotStoreError> {
    let prefix = (!loc.prefix.as_ref().is_empty()).then_some(&loc.prefix);
    let objects: Vec<ObjectMeta> = loc.store.list(prefix).try_collect().await.map_err(store_error(loc))?;
    let best = objects
        .into_iter()
        .filter(|o| {
            let name = o.location.filename().unwrap_or_default();
            !name.ends_with(META_SUFFIX) && pattern.matches(name)
        })
        .max_by(|a, b| (a.last_modified, &a.location).cmp(&(b.last_modified, &b.location)));
    let Some(object) = best else { return Ok(None) };
    let meta_key = Key::from(format!("{}{META_SUFFIX}", object.location));
    let meta = match loc.store.get(&meta_key).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(store_error(loc))?;
            serde_json::from_slice::<SnapshotMeta>(&bytes).ok().filter(|m| m.format == META_FORMAT)
        }
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(store_error(loc)(e)),
    };
    Ok(Some(Found { key: object.location.clone(), object, meta }))
}

/// Streams `key` into the local file `dest`; returns the bytes written.
pub async fn download(loc: &Location, key: &Key, dest: &Path) -> Result<u64, SnapshotStoreError> {
    let io = |e: std::io::Error| SnapshotStoreError::Io(format!("writing {}: {e}", dest.display()));
    let mut stream = loc.store.get(key).await.map_err(store_error(loc))?.into_stream();
    let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
    let mut written = 0u64;
    while let Some(chunk) = stream.try_next().await.map_err(store_error(loc))? {
        file.write_all(&chunk).await.map_err(io)?;
        written += chunk.len() as u64;
    }
    file.sync_all().await.map_err(io)?;
    Ok(written)
}

/// Uploads the snapshot file (multipart, so size is no limit), then its metadata. A snapshot
/// without metadata is therefore either foreign or an upload that did not finish.
pub async fn upload(loc: &Location, name: &str, file: &Path, meta: &SnapshotMeta) -> Result<Key, SnapshotStoreError> {
    use tokio::io::AsyncReadExt;
    let key = loc.key(name);
    let io = |e: std::io::Error| SnapshotStoreError::Io(format!("reading {}: {e}", file.display()));
    let upload = loc.store.put_multipart(&key).await.map_err(store_error(loc))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
    let mut f = tokio::fs::File::open(file).await.map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(4).await.map_err(store_error(loc))?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(store_error(loc))?;
    let meta_key = loc.key(&format!("{name}{META_SUFFIX}"));
    let body = serde_json::to_vec_pretty(meta).map_err(|e| SnapshotStoreError::Io(e.to_string()))?;
    loc.store.put(&meta_key, PutPayload::from(body)).await.map_err(store_error(loc))?;
    Ok(key)
}
