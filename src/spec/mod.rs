//! Drill and scenario files: loading them, the two-stage parse, and errors that point at the text.
//!
//! Stage one ([`raw`]) parses YAML into the file shapes with unknown fields rejected; stage two
//! ([`validate`]) checks every value and builds the [`crate::plan`]. Every error names the file,
//! the line and the column, and says what would be valid. If any file is invalid, loading fails
//! as a whole: nothing runs on a half-valid set of files.

pub mod raw;
pub mod schema;
pub mod validate;

mod loc;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use loc::Loc;
pub use validate::Validator;

use crate::plan::{DrillPlan, ScenarioPlan};

/// One problem in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is with the file as a whole.
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line.max(1), self.column.max(1), self.message)
    }
}

/// Every problem found while loading a set of files.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecErrors(pub Vec<SpecError>);

/// The drills and scenarios of a set of files, all valid.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub drills: Vec<Arc<DrillPlan>>,
    pub scenarios: Vec<Arc<ScenarioPlan>>,
    /// Simulated-cluster files found among the others (valid).
    pub sim_clusters: Vec<PathBuf>,
}

/// One parsed file, before validation.
enum Parsed {
    Drill(Box<raw::DrillFile>),
    Scenario(Box<raw::ScenarioFile>),
    /// A simulated cluster (`firedrill sim up --config`): checked, not part of the catalog.
    SimCluster,
}

struct Source {
    file: PathBuf,
    sha256: String,
    parsed: Parsed,
}

impl Catalog {
    /// Loads every `*.yaml`/`*.yml` file in `paths` (files, or directories read one level deep)
    /// and the drill files that scenarios name by path.
    pub fn load(paths: &[PathBuf]) -> Result<Catalog, SpecErrors> {
        let (catalog, errors) = Self::load_lenient(paths);
        if errors.0.is_empty() { Ok(catalog) } else { Err(errors) }
    }

    /// Loads what is valid and returns it with every error (sorted): the scheduler's way, where
    /// a bad file is reported and skipped and the rest keep running. A scenario naming an invalid
    /// drill is invalid itself.
    pub fn load_lenient(paths: &[PathBuf]) -> (Catalog, SpecErrors) {
        let mut errors = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            match expand(path) {
                Ok(found) => files.extend(found),
                Err(e) => errors.push(whole_file(path, format!("cannot read: {e}"))),
            }
        }
        // The same file named twice (`drills/x.yaml` and `./drills/x.yaml`) is read once.
        let mut seen = std::collections::HashSet::new();
        files.retain(|f| seen.insert(f.canonicalize().unwrap_or_else(|_| f.clone())));
        files.sort();

        let mut drills = Vec::new();
        let mut scenarios = Vec::new();
        let mut sim_clusters = Vec::new();
        for file in files {
            match read(&file) {
                Ok(Source { file, sha256, parsed: Parsed::Drill(d) }) => drills.push((file, sha256, d)),
                Ok(Source { file, sha256, parsed: Parsed::Scenario(s) }) => scenarios.push((file, sha256, s)),
                Ok(Source { file, parsed: Parsed::SimCluster, .. }) => sim_clusters.push(file),
                Err(e) => errors.push(e),
            }
        }

        let mut catalog = Catalog { sim_clusters, ..Catalog::default() };
        for (file, sha256, raw) in drills {
            catalog.add_drill(&file, sha256, *raw, &mut errors);
        }
        for (file, sha256, raw) in scenarios {
            let mut v = Validator::new(&file);
            let plan = validate::scenario(&mut v, sha256, *raw, &mut |path, at| catalog.resolve_path(path, at));
            errors.extend(v.into_errors());
            if let Some(plan) = plan {
                if let Some(other) = catalog.scenario(&plan.name) {
                    errors.push(SpecError {
                        file: file.clone(),
                        line: 0,
                        column: 0,
                        message: format!(
                            "a scenario named `{}` is already defined in {}",
                            plan.name,
                            other.file.display()
                        ),
                    });
                }
                catalog.scenarios.push(Arc::new(plan));
            }
        }
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        errors.dedup();
        (catalog, SpecErrors(errors))
    }

    pub fn drill(&self, name: &str) -> Option<&Arc<DrillPlan>> {
        self.drills.iter().find(|d| d.name == name)
    }

    pub fn scenario(&self, name: &str) -> Option<&Arc<ScenarioPlan>> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    fn add_drill(
        &mut self,
        file: &Path,
        sha256: String,
        raw: raw::DrillFile,
        errors: &mut Vec<SpecError>,
    ) -> Option<Arc<DrillPlan>> {
        let mut v = Validator::new(file);
        let name_at = raw.name.at();
        let plan = validate::drill(&mut v, sha256, raw);
        errors.extend(v.into_errors());
        let plan = Arc::new(plan?);
        if let Some(other) = self.drill(&plan.name) {
            errors.push(SpecError {
                file: file.to_path_buf(),
                line: name_at.0,
                column: name_at.1,
                message: format!("a drill named `{}` is already defined in {}", plan.name, other.file.display()),
            });
            return None;
        }
        self.drills.push(plan.clone());
        Some(plan)
    }

    /// Finds (or loads) the drill a scenario step names: a path relative to the scenario file
    /// when it looks like one, else a drill name.
    fn resolve_path(&mut self, reference: &Path, at: (&Path, u32, u32)) -> Result<Arc<DrillPlan>, Vec<SpecError>> {
        let (scenario_file, line, column) = at;
        let here = |message: String| vec![SpecError { file: scenario_file.to_path_buf(), line, column, message }];
        let text = reference.to_string_lossy();
        let looks_like_path = text.contains('/') || text.ends_with(".yaml") || text.ends_with(".yml");
        if !looks_like_path {
            return self.drill(&text).cloned().ok_or_else(|| {
                let mut known: Vec<&str> = self.drills.iter().map(|d| d.name.as_str()).collect();
                known.sort();
                let known = if known.is_empty() { "none loaded".to_string() } else { known.join(", ") };
                here(format!(
                    "no drill named `{text}`: name one of the loaded drills ({known}), or give the path of a drill file relative to this scenario"
                ))
            });
        }
        let path = scenario_file.parent().unwrap_or(Path::new(".")).join(reference);
        let canonical = path.canonicalize().map_err(|e| here(format!("drill file {}: {e}", path.display())))?;
        if let Some(d) = self.drills.iter().find(|d| d.file.canonicalize().ok().as_ref() == Some(&canonical)) {
            return Ok(d.clone());
        }
        match read(&path) {
            Ok(Source { file, sha256, parsed: Parsed::Drill(raw) }) => {
                let mut errors = Vec::new();
                self.add_drill(&file, sha256, *raw, &mut errors).ok_or(errors)
            }
            Ok(Source { .. }) => Err(here(format!("{} is not a Drill, but a step must name one", path.display()))),
            Err(e) => Err(vec![e]),
        }
    }
}

fn whole_file(file: &Path, message: String) -> SpecError {
    SpecError { file: file.to_path_buf(), line: 0, column: 0, message }
}

/// The YAML files a path stands for.
fn expand(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            files.push(p);
        }
    }
    Ok(files)
}

/// Just enough of a file to know which kind it is.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    kind: Option<Loc<String>>,
}

fn read(file: &Path) -> Result<Source, SpecError> {
    let bytes = std::fs::read(file).map_err(|e| whole_file(file, format!("cannot read: {e}")))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let text =
        String::from_utf8(bytes).map_err(|_| whole_file(file, "not UTF-8 text: a spec file must be YAML".into()))?;
    if text.trim().is_empty() {
        return Err(whole_file(
            file,
            "the file is empty: expected a YAML document with `kind: Drill` or `kind: Scenario`".into(),
        ));
    }
    let header: Header = parse(file, &text)?;
    let parsed = match header.kind.as_ref().map(|k| k.value.as_str()) {
        Some("Drill") => Parsed::Drill(Box::new(parse(file, &text)?)),
        Some("Scenario") => Parsed::Scenario(Box::new(parse(file, &text)?)),
        Some("SimCluster") => {
            let sim: crate::sim::config::SimFile = parse(file, &text)?;
            if sim.api_version != raw::API_VERSION {
                return Err(SpecError {
                    file: file.to_path_buf(),
                    line: 1,
                    column: 1,
                    message: format!("unsupported apiVersion `{}`: expected `{}`", sim.api_version, raw::API_VERSION),
                });
            }
            Parsed::SimCluster
        }
        Some(other) => {
            let kind = header.kind.as_ref().map(Loc::at).unwrap_or_default();
            return Err(SpecError {
                file: file.to_path_buf(),
                line: kind.0,
                column: kind.1,
                message: format!("unknown kind `{other}`: expected `Drill`, `Scenario` or `SimCluster`"),
            });
        }
        None => {
            return Err(whole_file(file, "missing field `kind`: expected `kind: Drill` or `kind: Scenario`".into()));
        }
    };
    Ok(Source { file: file.to_path_buf(), sha256, parsed })
}

fn parse<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<T, SpecError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line() as u32, l.column() as u32)).unwrap_or_default();
        SpecError { file: file.to_path_buf(), line, column, message: plain_message(&e) }
    })
}

/// The parser's message without its own location suffix and source snippet: we print the
/// location in front, once, in `file:line:column` form.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = text.lines().next().unwrap_or_default().trim();
    let text = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text,
    };
    explain_parse_error(text)
}

/// The parser's terse messages, said so that a person knows what to write.
fn explain_parse_error(message: &str) -> String {
    let says = match message {
        "expected mapping start" => "expected a mapping here (`key: value` lines)",
        "expected sequence start" => "expected a list here (`- item` lines)",
        "expected string scalar" => "expected a string here",
        "invalid boolean" => "expected `true` or `false`",
        m if m.starts_with("invalid u") => "expected a whole number, 0 or more",
        m if m.starts_with("invalid i") => "expected a whole number",
        m if m.starts_with("invalid f") => "expected a number",
        other => other,
    };
    says.to_string()
}
