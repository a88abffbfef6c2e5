//! Object storage locations: `file://`, `s3://` and `memory://` URLs turned into an
//! [`ObjectStore`] and a key prefix.
//!
//! The ledger and the etcd snapshots both go through here. S3 settings other than bucket and
//! prefix come from the standard `AWS_*` environment variables (credentials, region,
//! `AWS_ENDPOINT_URL` for S3-compatible stores, `AWS_ALLOW_HTTP` for plain-HTTP test servers), so
//! no secret is ever written in a spec or a record.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// Errors opening a store location.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL has a scheme firedrill does not speak.
    #[error("unsupported store URL `{0}`: use file:///path, s3://bucket/prefix or memory://name")]
    Scheme(String),
    /// The URL could not be parsed or lacks a bucket.
    #[error("invalid store URL `{url}`: {reason}")]
    Invalid { url: String, reason: String },
    /// The store client could not be built or the directory created.
    #[error("cannot open {url}: {reason}")]
    Open { url: String, reason: String },
}

/// How requests should fail: fast for small records that can be spooled, patiently for large
/// snapshot transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Small objects; give up within seconds so that the caller can spool.
    Records,
    /// Large objects; no limit on a transfer's total time.
    Bulk,
}

/// A store and the key prefix under which firedrill works.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The URL as given, for records and messages (it never holds credentials).
    pub url: String,
    /// For a local directory, its path: bulk readers may read its files directly, which avoids
    /// the two thread hand-offs object_store's local store makes per object.
    pub local_dir: Option<PathBuf>,
}

impl Location {
    /// The key `name` under this location's prefix.
    pub fn key(&self, name: &str) -> Path {
        let mut key = self.prefix.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            key = key.clone().join(part);
        }
        key
    }

    /// `key` relative to this location's prefix.
    pub fn relative(&self, key: &Path) -> String {
        match key.prefix_match(&self.prefix) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
            None => key.to_string(),
        }
    }
}

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);

/// Where a store URL points, checked but not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Dir(PathBuf),
    Memory { name: String, prefix: String },
    S3 { bucket: String, prefix: String },
}

/// Checks the shape of `url` without touching anything. A plain path (no scheme) is a local
/// directory.
pub fn parse(url: &str) -> Result<Target, StoreError> {
    let invalid = |reason: &str| StoreError::Invalid { url: url.to_string(), reason: reason.to_string() };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(Target::Dir(PathBuf::from(url)));
    };
    let split = |rest: &str| {
        let (a, b) = rest.split_once('/').unwrap_or((rest, ""));
        (a.to_string(), b.trim_end_matches('/').to_string())
    };
    match scheme {
        "file" => {
            let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
            let path = parsed
                .to_file_path()
                .map_err(|_| invalid("a file URL needs an absolute path: file:///var/lib/firedrill"))?;
            Ok(Target::Dir(path))
        }
        "memory" => {
            let (name, prefix) = split(rest);
            Ok(Target::Memory { name, prefix })
        }
        "s3" | "s3a" => {
            let (bucket, prefix) = split(rest);
            if bucket.is_empty() {
                return Err(invalid("no bucket: write s3://bucket/prefix"));
            }
            Ok(Target::S3 { bucket, prefix })
        }
        _ => Err(StoreError::Scheme(url.to_string())),
    }
}

/// Opens `url` (see [`parse`]); a local directory is created if missing. S3 settings come from
/// the `AWS_*` environment.
pub fn open(url: &str, profile: Profile) -> Result<Location, StoreError> {
    open_with(url, profile, &[])
}

/// [`open`], with S3 settings (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, ... as
/// object_store names them) given here taking precedence over the environment. For programs
/// that embed firedrill and hold their configuration themselves.
pub fn open_with(url: &str, profile: Profile, s3_options: &[(&str, &str)]) -> Result<Location, StoreError> {
    match parse(url)? {
        Target::Dir(dir) => open_dir(url, dir),
        Target::Memory { name, prefix } => {
            let store = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default().clone();
            Ok(Location { store, prefix: Path::from(prefix), url: url.to_string(), local_dir: None })
        }
        Target::S3 { bucket, prefix } => {
            let mut client = ClientOptions::new().with_connect_timeout(Duration::from_secs(5));
            let retry = match profile {
                Profile::Records => {
                    client = client.with_timeout(Duration::from_secs(15));
                    RetryConfig {
                        backoff: BackoffConfig {
                            init_backoff: Duration::from_millis(100),
                            max_backoff: Duration::from_secs(2),
                            base: 2.0,
                        },
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(10),
                    }
                }
                Profile::Bulk => {
                    client = client.with_timeout_disabled();
                    RetryConfig { max_retries: 5, retry_timeout: Duration::from_secs(120), ..RetryConfig::default() }
                }
            };
            // from_env reads AWS_ALLOW_HTTP into client options that ours replace: keep that choice.
            let allow_http = s3_options
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("aws_allow_http"))
                .map(|(_, v)| v.to_string())
                .or_else(|| std::env::var("AWS_ALLOW_HTTP").ok());
            if allow_http.is_some_and(|v| v == "true" || v == "1") {
                client = client.with_allow_http(true);
            }
            let mut builder = AmazonS3Builder::from_env();
            for (key, value) in s3_options {
                let key = key.parse().map_err(|e: object_store::Error| StoreError::Open {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
                builder = builder.with_config(key, *value);
            }
            let store = builder
                .with_bucket_name(bucket)
                .with_retry(retry)
                .with_client_options(client)
                .build()
                .map_err(|e| StoreError::Open { url: url.to_string(), reason: e.to_string() })?;
            Ok(Location { store: Arc::new(store), prefix: Path::from(prefix), url: url.to_string(), local_dir: None })
        }
    }
}

fn open_dir(url: &str, dir: PathBuf) -> Result<Location, StoreError> {
    let fail = |e: &dyn std::fmt::Display| StoreError::Open { url: url.to_string(), reason: e.to_string() };
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| fail(&e))?.with_automatic_cleanup(true);
    let local_dir = dir.canonicalize().ok();
    Ok(Location { store: Arc::new(store), prefix: Path::from(""), url: display_dir(url, &dir), local_dir })
}

/// [`open`] for reading only: a local directory that does not exist is not created, and reads
/// as empty.
pub fn open_existing(url: &str, profile: Profile) -> Result<Location, StoreError> {
    match parse(url)? {
        Target::Dir(dir) if !dir.exists() => Ok(Location {
            store: Arc::new(InMemory::new()),
            prefix: Path::from(""),
            url: display_dir(url, &dir),
            local_dir: None,
        }),
        _ => open(url, profile),
    }
}

fn display_dir(url: &str, dir: &FsPath) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("file://{}", std::path::absolute(dir).unwrap_or(dir.to_path_buf()).display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_store_and_prefix() {
        let m = open("memory://t-store/a/b", Profile::Records).unwrap();
        assert_eq!(m.prefix.as_ref(), "a/b");
        assert_eq!(m.key("records/1.json").as_ref(), "a/b/records/1.json");
        assert_eq!(m.relative(&m.key("x/y")), "x/y");
        let dir = tempfile::tempdir().unwrap();
        let f = open(&format!("file://{}", dir.path().join("l").display()), Profile::Records).unwrap();
        assert_eq!(f.prefix.as_ref(), "");
        assert!(dir.path().join("l").is_dir(), "the directory is created");
        assert!(matches!(open("ftp://x", Profile::Records), Err(StoreError::Scheme(_))));
        assert!(matches!(open("file://relative/path", Profile::Records), Err(StoreError::Invalid { .. })));
        assert!(matches!(open("s3:///prefix", Profile::Records), Err(StoreError::Invalid { .. })));
    }

    #[test]
    fn memory_stores_of_the_same_name_are_shared() {
        let a = open("memory://t-shared", Profile::Records).unwrap();
        let b = open("memory://t-shared/p", Profile::Records).unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
    }
}
