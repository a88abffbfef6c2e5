//! JSON Schemas of the file kinds (drills, scenarios, simulated clusters), generated from the
//! stage-one types.
//!
//! The checked-in copies live in `docs/schema/`; `firedrill schema --out docs/schema` rewrites
//! them, and a test fails when they are stale.

use super::raw::{DrillFile, ScenarioFile};

/// `(file name, pretty JSON)` for each schema.
pub fn all() -> Vec<(&'static str, String)> {
    let render = |schema: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        ("drill.schema.json", render(schemars::schema_for!(DrillFile))),
        ("scenario.schema.json", render(schemars::schema_for!(ScenarioFile))),
        ("sim-cluster.schema.json", render(schemars::schema_for!(crate::sim::config::SimFile))),
    ]
}
