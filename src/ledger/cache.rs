//! A local cache of the run summaries that `history` shows, so that listing a ledger of 100,000
//! records does not read 100,000 objects each time.
//!
//! Records never change once written, so a summary read once stays true. Each cached line keeps
//! its record's hash; the cache is trusted only while the store still holds the last cached
//! record with that hash, and is rebuilt otherwise. It is a convenience for reading, never
//! evidence: `evidence verify` always reads the store itself.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::record::{DrillRef, ScenarioRef, sha256_hex};
use crate::clock::Timestamp;
use crate::measure::{TargetResult, Verdict};

/// One record, as the cache keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cached {
    pub seq: u64,
    pub sha256: String,
    /// Set for outcome records; other records are kept only to keep the sequence whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSummary>,
}

/// What `history` shows of a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The outcome record's number in the chain.
    pub seq: u64,
    pub started: Timestamp,
    pub drill: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rto_ms: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rto_target_ms: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rpo_ms: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rpo_target_ms: Option<Duration>,
    pub run_id: String,
    pub reason: String,
}

/// Just the parts of a record a summary needs; everything else is skipped while parsing.
#[derive(Deserialize)]
struct Light {
    entry: LightEntry,
}

#[derive(Deserialize)]
struct LightEntry {
    #[serde(default)]
    outcome: Option<LightOutcome>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LightOutcome {
    run_id: String,
    drill: DrillRef,
    #[serde(default)]
    scenario: Option<ScenarioRef>,
    verdict: Verdict,
    reason: String,
    timeline: LightTimeline,
    #[serde(default, with = "crate::measure::opt_ms")]
    rto_ms: Option<Duration>,
    #[serde(default, with = "crate::measure::opt_ms")]
    rpo_ms: Option<Duration>,
    targets: Vec<TargetResult>,
}

#[derive(Deserialize)]
struct LightTimeline {
    started: Timestamp,
}

/// Summarizes one stored record.
pub fn summarize(seq: u64, bytes: &[u8]) -> Cached {
    let run = serde_json::from_slice::<Light>(bytes).ok().and_then(|l| l.entry.outcome).map(|o| {
        let target = |f: &str| o.targets.iter().find(|t| t.figure == f).map(|t| t.target_ms);
        RunSummary {
            seq,
            started: o.timeline.started,
            drill: o.drill.name,
            kind: o.drill.kind,
            scenario: o.scenario.map(|s| s.name),
            verdict: o.verdict,
            rto_ms: o.rto_ms,
            rto_target_ms: target("rto"),
            rpo_ms: o.rpo_ms,
            rpo_target_ms: target("rpo"),
            run_id: o.run_id,
            reason: o.reason,
        }
    });
    Cached { seq, sha256: sha256_hex(bytes), run }
}

/// The cache file of one ledger.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
}

impl Cache {
    pub fn new(data_dir: &Path, ledger_url: &str) -> Self {
        let key = &sha256_hex(ledger_url.trim_end_matches('/').as_bytes())[..16];
        Self { path: data_dir.join("cache").join(key).join("history.jsonl") }
    }

    /// The cached records `0..n`, in order. Reading stops at the first line that does not
    /// continue the sequence (a torn write, another writer's duplicate).
    pub fn load(&self) -> Vec<Cached> {
        let Ok(file) = File::open(&self.path) else { return Vec::new() };
        let mut out: Vec<Cached> = Vec::new();
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Cached>(&line) {
                Ok(c) if c.seq == out.len() as u64 => out.push(c),
                Ok(c) if c.seq < out.len() as u64 => {}
                _ => break,
            }
        }
        out
    }

    /// Appends `entries` (which continue the cached sequence).
    pub fn append(&self, entries: &[Cached]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(self.path.parent().unwrap_or(Path::new(".")))?;
        let mut file = File::options().create(true).append(true).open(&self.path)?;
        file.lock()?;
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e)?;
            buf.push(b'\n');
        }
        file.write_all(&buf)
    }

    /// Replaces the whole cache with `entries` (none: no cache file).
    pub fn replace(&self, entries: &[Cached]) -> std::io::Result<()> {
        if entries.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut out = std::io::BufWriter::new(tmp);
        for e in entries {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(seq: u64) -> Cached {
        Cached { seq, sha256: format!("{seq:064}"), run: None }
    }

    #[test]
    fn the_cache_keeps_a_whole_sequence_and_stops_at_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), "memory://x");
        assert!(cache.load().is_empty());
        cache.replace(&[cached(0), cached(1)]).unwrap();
        cache.append(&[cached(2)]).unwrap();
        cache.append(&[cached(1), cached(3)]).unwrap();
        assert_eq!(cache.load().iter().map(|c| c.seq).collect::<Vec<_>>(), [0, 1, 2, 3], "a duplicate is skipped");
        let mut f = File::options().append(true).open(&cache.path).unwrap();
        f.write_all(b"{\"seq\":4,\"sha").unwrap();
        cache.append(&[cached(5)]).unwrap();
        assert_eq!(cache.load().len(), 4, "nothing after a torn line or a gap is trusted");
    }
}
