//! `-o table|json|yaml` for commands whose output is data.

use clap::ValueEnum;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::plan::{DrillPlan, ScenarioPlan};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// A row type that knows its table columns.
pub trait Tabular {
    fn headers() -> Vec<&'static str>;
    fn cells(&self) -> Vec<String>;
}

pub fn table<T: Tabular>(rows: &[T]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(T::headers());
    for r in rows {
        t.add_row(r.cells());
    }
    t.to_string()
}

/// Prints `rows` to stdout in `format`.
pub fn print_rows<T: Tabular + Serialize>(rows: &[T], format: Format) {
    match format {
        Format::Table => println!("{}", table(rows)),
        Format::Json => println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&rows).unwrap_or_default()),
    }
}

/// Prints one value as JSON or YAML (a table is the caller's own rendering).
pub fn print_value<T: Serialize>(value: &T, format: Format) {
    match format {
        Format::Yaml => print!("{}", serde_saphyr::to_string(value).unwrap_or_default()),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

/// A valid file, as `firedrill validate` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidRow {
    pub kind: &'static str,
    pub name: String,
    /// The drill type, or the steps of a scenario.
    pub runs: String,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Timestamp>,
}

impl ValidRow {
    pub fn drill(d: &DrillPlan) -> Self {
        Self {
            kind: "Drill",
            name: d.name.clone(),
            runs: d.kind().to_string(),
            file: d.file.display().to_string(),
            next_run: d
                .schedule
                .as_ref()
                .and_then(|s| s.upcoming(crate::clock::Clock::system().now(), 1).first().copied()),
        }
    }

    pub fn sim_cluster(file: &std::path::Path) -> Self {
        Self {
            kind: "SimCluster",
            name: file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
            runs: "firedrill sim up --config".into(),
            file: file.display().to_string(),
            next_run: None,
        }
    }

    pub fn scenario(s: &ScenarioPlan) -> Self {
        Self {
            kind: "Scenario",
            name: s.name.clone(),
            runs: s.steps.iter().map(|st| st.drill.name.as_str()).collect::<Vec<_>>().join(" → "),
            file: s.file.display().to_string(),
            next_run: s
                .schedule
                .as_ref()
                .and_then(|sc| sc.upcoming(crate::clock::Clock::system().now(), 1).first().copied()),
        }
    }
}

impl Tabular for ValidRow {
    fn headers() -> Vec<&'static str> {
        vec!["KIND", "NAME", "RUNS", "FILE", "NEXT SCHEDULED"]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.kind.into(),
            self.name.clone(),
            self.runs.clone(),
            self.file.clone(),
            self.next_run.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        ]
    }
}
