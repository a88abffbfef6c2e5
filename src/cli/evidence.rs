//! `firedrill evidence verify`.

use clap::Subcommand;

use super::Global;
use super::output::{Format, print_value};
use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::store;

#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// Check the whole hash chain; exit 1 if any record was edited, removed, reordered or inserted.
    Verify {
        /// A head hash kept from an earlier report: the chain must still contain it.
        #[arg(long)]
        expect_head: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

pub async fn run(global: &Global, command: EvidenceCommand) -> anyhow::Result<i32> {
    match command {
        EvidenceCommand::Verify { expect_head, output } => {
            let url = global.ledger_url();
            if let store::Target::Dir(dir) = store::parse(&url)?
                && !dir.exists()
            {
                anyhow::bail!("there is no ledger at {url} ({} does not exist)", dir.display());
            }
            let ledger = Ledger::open_read(&url, &global.data_dir(), Clock::system())?;
            let report = ledger.verify(expect_head.as_deref()).await?;
            let spooled = ledger.spool().count();
            if output == Format::Table {
                if report.ok() {
                    let head = report
                        .head
                        .as_ref()
                        .map(|h| format!("; head: record {} sha256 {}", h.seq, h.sha256))
                        .unwrap_or_default();
                    println!("ok: {} records in {} verified{head}", report.records, ledger.url());
                } else {
                    println!(
                        "FAILED: {} problem(s) in {} ({} records):",
                        report.problems.len(),
                        ledger.url(),
                        report.records
                    );
                    for p in &report.problems {
                        println!("  - {p}");
                    }
                }
                if spooled > 0 {
                    println!(
                        "note: {spooled} record(s) are spooled locally and not yet in the chain (the next run appends them)"
                    );
                }
            } else {
                print_value(&serde_json::json!({"ledger": ledger.url(), "report": report, "spooled": spooled}), output);
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
    }
}
