//! Open-run markers: a small local file per run, from its intent until its outcome is recorded,
//! updated at every phase. A marker left behind by a dead process is how the janitor finds a
//! crashed run, what it had claimed, and how far it got.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ledger::record::{Intent, Outcome};
use crate::measure::{Phase, Timeline};

/// What a marker holds.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MarkerData {
    pub intent: Intent,
    /// The ledger the intent went to: the outcome must go to the same one.
    pub ledger: String,
    /// The phase that was running at the last update.
    pub phase: Option<Phase>,
    pub timeline: Timeline,
    /// Set when the run finished but its outcome could be recorded nowhere: the janitor then
    /// records this outcome instead of an `Aborted` one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Box<Outcome>>,
}

/// A run's marker file.
#[derive(Debug)]
pub struct Marker {
    path: PathBuf,
    pub data: MarkerData,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn write_atomic(path: &Path, data: &MarkerData) -> std::io::Result<()> {
    let parent = dir_of(path);
    fs::create_dir_all(parent)?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
    tmp.write_all(&serde_json::to_vec(data)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl Marker {
    /// Writes the marker of a run whose intent was just recorded.
    pub fn create(data_dir: &Path, data: MarkerData) -> std::io::Result<Self> {
        let path = dir(data_dir).join(format!("{}.json", data.intent.run_id));
        write_atomic(&path, &data)?;
        Ok(Self { path, data })
    }

    /// Notes that `phase` has begun. Best effort: a failed update only makes the janitor's
    /// account of a crash less precise.
    pub fn enter(&mut self, phase: Phase, timeline: &Timeline) {
        self.data.phase = Some(phase);
        self.data.timeline = timeline.clone();
        if let Err(e) = write_atomic(&self.path, &self.data) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not update the run marker");
        }
    }

    /// Keeps a finished run's outcome that could not be recorded, for the janitor to record.
    pub fn keep_outcome(&mut self, outcome: &Outcome) {
        self.data.outcome = Some(Box::new(outcome.clone()));
        if let Err(e) = write_atomic(&self.path, &self.data) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not keep the unrecorded outcome in the run marker");
        }
    }

    /// Gives a taken marker back (its outcome could not be recorded): the next janitor tries again.
    pub fn release(self) {
        let back = dir_of(&self.path).join(format!("{}.json", self.data.intent.run_id));
        if let Err(e) = fs::rename(&self.path, &back) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not give the run marker back");
        }
    }

    /// Removes the marker once the outcome is recorded.
    pub fn remove(self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the run marker");
        }
    }

    /// Every marker in `data_dir` that is not being handled by a janitor.
    pub fn list(data_dir: &Path) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(dir(data_dir)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
    }

    /// Takes a marker for cleanup: renames it so that no other janitor takes it too. `None`
    /// when another process was first.
    pub fn take(path: &Path) -> Option<Self> {
        let taken = path.with_extension(format!("janitor-{}", std::process::id()));
        fs::rename(path, &taken).ok()?;
        let data = fs::read(&taken).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match data {
            Some(data) => Some(Self { path: taken, data }),
            None => {
                tracing::warn!(path = %taken.display(), "unreadable run marker left for a person to inspect");
                None
            }
        }
    }

    /// Reads a marker without taking it.
    pub fn peek(path: &Path) -> Option<MarkerData> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }
}
