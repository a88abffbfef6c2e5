//! The evidence ledger: an append-only hash chain of run records in object storage.
//!
//! Layout under the ledger URL: `records/<seq, 20 digits>.json` holds each record's canonical
//! bytes, and `head.json` anchors the last record's number and hash. A record is appended with a
//! create-if-absent write of the next sequence number: of two writers racing for the same number,
//! exactly one succeeds and the other re-reads the head and takes the next one, so the chain
//! cannot fork on any backend (`file://`, `s3://`, `memory://`). When the store cannot be reached
//! the entry is spooled to local disk and appended, in order, by the next run.

pub mod cache;
pub mod record;
pub mod spool;
pub mod verify;

use std::path::Path as FsPath;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::store::{self, Location, Profile};
pub use cache::RunSummary;
use cache::{Cache, Cached};
pub use record::{Entry, GENESIS, Record, sha256_hex};
pub use spool::Spool;
pub use verify::{Head, Problem, Report};

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger URL could not be opened.
    #[error(transparent)]
    Open(#[from] store::StoreError),
    /// The store failed a request.
    #[error("ledger {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// Neither the store nor the local spool could take a record: it is lost unless the caller
    /// keeps it.
    #[error("ledger {url} unreachable ({store}) and the spool failed too: {spool}")]
    Unrecorded { url: String, store: String, spool: String },
    /// The spool directory could not be read or written.
    #[error("spool {0}")]
    Spool(String),
    /// A worker thread hashing or parsing records failed.
    #[error("reading the ledger: {0}")]
    Worker(String),
    /// Other writers kept taking the next slot.
    #[error("ledger {0}: could not append after many attempts; another writer keeps appending")]
    Contention(String),
}

/// Where an appended entry went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Into the chain as record `seq`, whose bytes hash to `sha256`.
    Chained { seq: u64, sha256: String },
    /// Onto local disk, because the store failed with `cause`; the next run appends it.
    Spooled { cause: String },
}

/// One ledger: a store location plus its local spool.
#[derive(Debug)]
pub struct Ledger {
    loc: Location,
    spool: Spool,
    clock: Clock,
    /// The last record (seq, hash) this process knows of; `None` = read it from the store.
    tip: Mutex<Option<Option<(u64, String)>>>,
    /// One flush of the spool at a time in this process (the spool's file lock covers others).
    flushing: Mutex<()>,
    cache: Cache,
}

const RECORDS: &str = "records";
const HEAD: &str = "head.json";
const READ_CONCURRENCY: usize = 64;
/// Records hashed or parsed per blocking task, and how many such tasks run at once.
const SCAN_CHUNK: usize = 512;
const SCAN_WORKERS: usize = 4;

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| LedgerError::Worker(e.to_string()))?
}
/// New records fetched one by one before `summaries` lists the store instead.
const PROBE_LIMIT: usize = 64;

fn record_name(seq: u64) -> String {
    format!("{RECORDS}/{seq:020}.json")
}

impl Ledger {
    /// Opens the ledger at `url`, spooling to `<data_dir>/spool/`.
    pub fn open(url: &str, data_dir: &FsPath, clock: Clock) -> Result<Self, LedgerError> {
        Self::open_with(url, data_dir, clock, &[])
    }

    /// [`Ledger::open`] with explicit S3 settings (see [`store::open_with`]).
    pub fn open_with(
        url: &str,
        data_dir: &FsPath,
        clock: Clock,
        s3_options: &[(&str, &str)],
    ) -> Result<Self, LedgerError> {
        Ok(Self::new(store::open_with(url, Profile::Records, s3_options)?, data_dir, clock))
    }

    /// Opens the ledger at `url` for reading: a local ledger that does not exist yet is not
    /// created, and reads as empty.
    pub fn open_read(url: &str, data_dir: &FsPath, clock: Clock) -> Result<Self, LedgerError> {
        Ok(Self::new(store::open_existing(url, Profile::Records)?, data_dir, clock))
    }

    fn new(loc: Location, data_dir: &FsPath, clock: Clock) -> Self {
        let spool = Spool::new(data_dir, &loc.url);
        let cache = Cache::new(data_dir, &loc.url);
        Self { loc, spool, clock, tip: Mutex::new(None), flushing: Mutex::new(()), cache }
    }

    pub fn url(&self) -> &str {
        &self.loc.url
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    fn store_error(&self, source: object_store::Error) -> LedgerError {
        LedgerError::Store { url: self.loc.url.clone(), source }
    }

    /// Appends `entry`: to the chain, or to the spool when the store fails. Entries spooled
    /// earlier are appended first, so the chain keeps the order in which things happened.
    pub async fn append(&self, entry: &Entry) -> Result<Appended, LedgerError> {
        let result = match self.flush_spool().await {
            Ok(_) => self.chain(entry).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((seq, sha256)) => Ok(Appended::Chained { seq, sha256 }),
            Err(e) => {
                let cause = e.to_string();
                tracing::warn!(ledger = %self.loc.url, error = %cause, "ledger unreachable; spooling the record");
                match self.spool.push(entry) {
                    Ok(_) => Ok(Appended::Spooled { cause }),
                    Err(spool) => Err(LedgerError::Unrecorded {
                        url: self.loc.url.clone(),
                        store: cause,
                        spool: spool.to_string(),
                    }),
                }
            }
        }
    }

    /// Appends every spooled entry, oldest first, removing each once it is in the chain.
    /// Returns how many were appended.
    pub async fn flush_spool(&self) -> Result<usize, LedgerError> {
        let spool_error = |e: std::io::Error| LedgerError::Spool(e.to_string());
        let _in_process = self.flushing.lock().await;
        let mut flushed = 0;
        loop {
            if self.spool.pending().map_err(spool_error)?.is_empty() {
                return Ok(flushed);
            }
            let Some(_lock) = self.spool.try_lock().map_err(spool_error)? else {
                return Err(LedgerError::Spool(format!(
                    "{}: another firedrill process is appending it",
                    self.spool.dir().display()
                )));
            };
            // Read again under the lock: another process may have appended them meanwhile.
            for (path, entry) in &self.spool.pending().map_err(spool_error)? {
                self.chain(entry).await?;
                self.spool.remove(path).map_err(spool_error)?;
                flushed += 1;
            }
        }
    }

    async fn chain(&self, entry: &Entry) -> Result<(u64, String), LedgerError> {
        let mut tip = self.tip.lock().await;
        for _ in 0..100 {
            let last = match tip.as_ref() {
                Some(known) => known.clone(),
                None => self.find_last().await?,
            };
            let (seq, prev) = match &last {
                Some((s, h)) => (s + 1, h.clone()),
                None => (0, GENESIS.to_string()),
            };
            let record = Record { seq, prev, appended_at: self.clock.now(), entry: entry.clone() };
            let bytes = record.canonical();
            let sha256 = sha256_hex(&bytes);
            let create = PutOptions { mode: PutMode::Create, ..Default::default() };
            match self.loc.store.put_opts(&self.loc.key(&record_name(seq)), PutPayload::from(bytes), create).await {
                Ok(_) => {
                    *tip = Some(Some((seq, sha256.clone())));
                    self.write_head(seq, &sha256).await;
                    return Ok((seq, sha256));
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    *tip = None;
                }
                Err(e) => {
                    *tip = None;
                    return Err(self.store_error(e));
                }
            }
        }
        Err(LedgerError::Contention(self.loc.url.clone()))
    }

    /// The head anchor is advisory for appends (they re-check it) and the tail check for
    /// `verify`. A failed write only delays it to the next append.
    async fn write_head(&self, seq: u64, sha256: &str) {
        let head = serde_json::to_vec(&Head { seq, sha256: sha256.to_string() }).unwrap_or_default();
        if let Err(e) = self.loc.store.put(&self.loc.key(HEAD), PutPayload::from(head)).await {
            tracing::warn!(ledger = %self.loc.url, error = %e, "could not update the head anchor");
        }
    }

    /// The head anchor, if there is one.
    pub async fn head(&self) -> Result<Option<Head>, LedgerError> {
        Ok(self.get(&self.loc.key(HEAD)).await?.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    async fn get(&self, key: &Path) -> Result<Option<Bytes>, LedgerError> {
        match self.loc.store.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.store_error(e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_error(e)),
        }
    }

    /// The last record of the chain: from the head anchor, checked and walked forward, or by
    /// listing when the anchor is missing or names a record that is not there.
    async fn find_last(&self) -> Result<Option<(u64, String)>, LedgerError> {
        let mut last = None;
        if let Some(head) = self.head().await?
            && let Some(bytes) = self.get(&self.loc.key(&record_name(head.seq))).await?
        {
            last = Some((head.seq, sha256_hex(&bytes)));
        }
        if last.is_none()
            && let Some(seq) = self.list().await?.0.into_iter().max()
            && let Some(bytes) = self.get(&self.loc.key(&record_name(seq))).await?
        {
            last = Some((seq, sha256_hex(&bytes)));
        }
        loop {
            let next = last.as_ref().map_or(0, |(s, _)| s + 1);
            match self.get(&self.loc.key(&record_name(next))).await? {
                Some(bytes) => last = Some((next, sha256_hex(&bytes))),
                None => return Ok(last),
            }
        }
    }

    /// The sequence numbers of the stored records, and any other keys found under `records/`.
    async fn list(&self) -> Result<(Vec<u64>, Vec<String>), LedgerError> {
        let names: Vec<String> = match self.local_records() {
            Some(dir) => match std::fs::read_dir(&dir) {
                Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(LedgerError::Worker(format!("{}: {e}", dir.display()))),
            },
            None => {
                let prefix = self.loc.key(RECORDS);
                let metas: Vec<_> =
                    self.loc.store.list(Some(&prefix)).try_collect().await.map_err(|e| self.store_error(e))?;
                metas.into_iter().map(|m| self.loc.relative(&m.location)[RECORDS.len() + 1..].to_string()).collect()
            }
        };
        let mut seqs = Vec::with_capacity(names.len());
        let mut foreign = Vec::new();
        for name in names {
            match name.strip_suffix(".json").filter(|n| n.len() == 20).and_then(|n| n.parse::<u64>().ok()) {
                Some(seq) => seqs.push(seq),
                None => foreign.push(format!("{RECORDS}/{name}")),
            }
        }
        seqs.sort_unstable();
        Ok((seqs, foreign))
    }

    /// The directory of the record files, when the ledger is a local directory.
    fn local_records(&self) -> Option<std::path::PathBuf> {
        self.loc.local_dir.as_ref().map(|d| d.join(self.loc.prefix.as_ref()).join(RECORDS))
    }

    /// Reads every stored record with `seq >= from` and maps each with `f` on blocking threads,
    /// in chunks, so hashing and parsing use every core. Returns the results in chain order and
    /// the keys under `records/` that are not records.
    async fn scan<T: Send + 'static>(
        &self,
        from: u64,
        f: fn(u64, &[u8]) -> T,
    ) -> Result<(Vec<T>, Vec<String>), LedgerError> {
        let (seqs, foreign) = self.list().await?;
        let seqs: Vec<u64> = seqs.into_iter().filter(|s| *s >= from).collect();
        let chunks: Vec<Vec<T>> = match self.local_records() {
            // A local ledger: each worker reads its chunk's files itself.
            Some(dir) => {
                futures::stream::iter(seqs.chunks(SCAN_CHUNK).map(<[u64]>::to_vec))
                    .map(|chunk| {
                        let dir = dir.clone();
                        blocking(move || {
                            let mut out = Vec::with_capacity(chunk.len());
                            for seq in chunk {
                                match std::fs::read(dir.join(format!("{seq:020}.json"))) {
                                    Ok(bytes) => out.push(f(seq, &bytes)),
                                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                                    Err(e) => return Err(LedgerError::Worker(e.to_string())),
                                }
                            }
                            Ok(out)
                        })
                    })
                    .buffered(SCAN_WORKERS)
                    .try_collect()
                    .await?
            }
            // Any other store: fetch concurrently, then hash and parse in chunks.
            None => {
                futures::stream::iter(seqs)
                    .map(|seq| async move {
                        Ok::<_, LedgerError>(self.get(&self.loc.key(&record_name(seq))).await?.map(|b| (seq, b)))
                    })
                    .buffered(READ_CONCURRENCY)
                    .chunks(SCAN_CHUNK)
                    .map(|chunk| async move {
                        let chunk: Vec<(u64, Bytes)> =
                            chunk.into_iter().filter_map(Result::transpose).collect::<Result<_, _>>()?;
                        blocking(move || Ok(chunk.iter().map(|(seq, bytes)| f(*seq, bytes)).collect())).await
                    })
                    .buffered(SCAN_WORKERS)
                    .try_collect()
                    .await?
            }
        };
        Ok((chunks.into_iter().flatten().collect(), foreign))
    }

    /// Every record that parses, in chain order. Use [`Ledger::verify`] to know that none was
    /// changed.
    pub async fn records(&self) -> Result<Vec<Record>, LedgerError> {
        let (records, _) = self.scan(0, |_, bytes| serde_json::from_slice::<Record>(bytes).ok()).await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// Checks the whole chain; `expect` is a head hash kept elsewhere (a previous report).
    pub async fn verify(&self, expect: Option<&str>) -> Result<Report, LedgerError> {
        let head = self.head().await?;
        let (digests, foreign) = self.scan(0, verify::digest).await?;
        let mut report = verify::verify(&digests, &foreign, head.as_ref(), expect);
        // Explain the damage: was a record rewritten by hand (same content, other bytes)?
        let suspects: Vec<u64> = report
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::BrokenLink { seq, .. } => seq.checked_sub(1),
                Problem::HeadMismatch { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        for seq in suspects {
            if let Some(bytes) = self.get(&self.loc.key(&record_name(seq))).await?
                && serde_json::from_slice::<serde_json::Value>(&bytes).is_ok()
                && !verify::is_canonical(&bytes)
            {
                report.problems.push(Problem::NotCanonical { seq });
            }
        }
        Ok(report)
    }

    /// The summaries of every run in the ledger, for `history`: from the local cache, plus the
    /// records appended since it was written.
    pub async fn summaries(&self) -> Result<Vec<RunSummary>, LedgerError> {
        let mut cached = self.cache.load();
        // Trust the cache only if the store still holds its last record, unchanged.
        if let Some(last) = cached.last() {
            let same =
                self.get(&self.loc.key(&record_name(last.seq))).await?.is_some_and(|b| sha256_hex(&b) == last.sha256);
            if !same {
                cached.clear();
            }
        }
        let rebuild = cached.is_empty();
        let mut next = cached.last().map_or(0, |c| c.seq + 1);
        let mut fresh = Vec::new();
        if !rebuild {
            // A few new records are probed one by one; many are listed and read in parallel.
            while fresh.len() < PROBE_LIMIT {
                match self.get(&self.loc.key(&record_name(next))).await? {
                    Some(bytes) => fresh.push(cache::summarize(next, &bytes)),
                    None => break,
                }
                next += 1;
            }
        }
        if rebuild || fresh.len() == PROBE_LIMIT {
            fresh.extend(self.scan(next, cache::summarize).await?.0);
        }
        let saved = if rebuild {
            let contiguous: Vec<Cached> =
                fresh.iter().enumerate().take_while(|(i, c)| c.seq == *i as u64).map(|(_, c)| c.clone()).collect();
            self.cache.replace(&contiguous)
        } else {
            let start = cached.len() as u64;
            let contiguous: Vec<Cached> = fresh
                .iter()
                .enumerate()
                .take_while(|(i, c)| c.seq == start + *i as u64)
                .map(|(_, c)| c.clone())
                .collect();
            self.cache.append(&contiguous)
        };
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not update the history cache");
        }
        Ok(cached.into_iter().chain(fresh).filter_map(|c| c.run).collect())
    }
}
