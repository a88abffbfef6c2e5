//! The local spool: entries that could not reach the ledger's store wait here, in order, until a
//! later run appends them. A result is never lost because the store was down.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::record::{Entry, canonical_json, sha256_hex};

/// The spool of one ledger, under `<data-dir>/spool/<hash of the ledger URL>/`.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// Held while one process appends the spool to the chain; others leave it alone.
#[derive(Debug)]
pub struct FlushLock(#[allow(dead_code)] File);

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Spool {
    pub fn new(data_dir: &Path, ledger_url: &str) -> Self {
        let key = &sha256_hex(ledger_url.trim_end_matches('/').as_bytes())[..16];
        Self { dir: data_dir.join("spool").join(key) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `entry` atomically (temporary file, then rename) under a name that sorts in order
    /// of arrival.
    pub fn push(&self, entry: &Entry) -> std::io::Result<PathBuf> {
        fs::create_dir_all(&self.dir)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let name = format!(
            "{:020}-{:010}-{:06}.json",
            now.as_nanos(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000
        );
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&canonical_json(entry))?;
        tmp.as_file().sync_all()?;
        let path = self.dir.join(name);
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    }

    /// How many entries wait in the spool (without reading them).
    pub fn count(&self) -> usize {
        fs::read_dir(&self.dir)
            .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
            .unwrap_or(0)
    }

    /// Takes the flush lock, or `None` when another process holds it.
    pub fn try_lock(&self) -> std::io::Result<Option<FlushLock>> {
        fs::create_dir_all(&self.dir)?;
        let file = File::options().create(true).truncate(false).write(true).open(self.dir.join(".lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FlushLock(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// The spooled entries, oldest first. A file that is not an entry (damaged on disk) is moved
    /// to `rejected/` for a person to look at, so that it cannot hold up the others.
    pub fn pending(&self) -> std::io::Result<Vec<(PathBuf, Entry)>> {
        let mut files = match fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        files.sort();
        let mut entries = Vec::with_capacity(files.len());
        for p in files {
            match serde_json::from_slice(&fs::read(&p)?) {
                Ok(entry) => entries.push((p, entry)),
                Err(e) => {
                    let rejected = self.dir.join("rejected");
                    fs::create_dir_all(&rejected)?;
                    fs::rename(&p, rejected.join(p.file_name().unwrap_or_default()))?;
                    tracing::error!(file = %p.display(), error = %e, "a spooled record is damaged; moved to {}", rejected.display());
                }
            }
        }
        Ok(entries)
    }

    pub fn remove(&self, path: &Path) -> std::io::Result<()> {
        fs::remove_file(path)
    }
}
