//! The command line: argument parsing, and each command as a thin adapter over the library.
//! Exit codes: 0 passed/ok, 1 a drill failed (or the evidence did not verify), 2 could not run
//! (bad input, unreachable store), 3 aborted.

mod canary;
mod etcd;
mod evidence;
mod history;
mod output;
mod run;
mod serve;
mod sim;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::Format;

/// Disaster-recovery drills for Kubernetes and etcd: run them, measure RTO and RPO, keep
/// tamper-evident evidence.
#[derive(Parser, Debug)]
#[command(name = "firedrill", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where firedrill keeps its ledger (by default), spool, run markers, history cache and
    /// scratch space.
    /// Default: $XDG_DATA_HOME/firedrill (~/.local/share/firedrill).
    #[arg(long, global = true, env = "FIREDRILL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The evidence ledger: file:///path, s3://bucket/prefix or memory://name.
    /// Default: file://<data-dir>/ledger.
    #[arg(long, global = true, env = "FIREDRILL_LEDGER")]
    pub ledger: Option<String>,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| dirs::data_dir().map(|d| d.join("firedrill")))
            .unwrap_or_else(|| PathBuf::from(".firedrill"))
    }

    pub fn ledger_url(&self) -> String {
        self.ledger.clone().unwrap_or_else(|| {
            format!("file://{}", std::path::absolute(self.data_dir().join("ledger")).unwrap_or_default().display())
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check drill and scenario files; exit 0 when all are valid, 2 otherwise.
    Validate {
        /// Files or directories (one level of *.yaml). Default: drills/ and scenarios/.
        paths: Vec<PathBuf>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Run a drill or a scenario now.
    Run(run::RunArgs),
    /// List past runs from the ledger.
    History(history::HistoryArgs),
    /// Render a report of a period from the ledger.
    Report(history::ReportArgs),
    /// Work with the evidence ledger.
    Evidence {
        #[command(subcommand)]
        command: evidence::EvidenceCommand,
    },
    /// Write the RPO canary (ConfigMap firedrill-canary with a UTC timestamp) into namespaces,
    /// every interval, for restore drills to measure RPO from the data.
    Canary(canary::CanaryArgs),
    /// etcd helpers.
    Etcd {
        #[command(subcommand)]
        command: etcd::EtcdCommand,
    },
    /// A simulated Kubernetes cluster for tests and rehearsals.
    Sim {
        #[command(subcommand)]
        command: sim::SimCommand,
    },
    /// The scheduler daemon: run every scheduled drill and scenario, unattended, with leader
    /// election, metrics and health endpoints.
    Serve(serve::ServeArgs),
    /// Show the scheduled drills and scenarios and when they fire next.
    Schedule {
        #[command(subcommand)]
        command: serve::ScheduleCommand,
    },
    /// Write the JSON Schemas of drill and scenario files.
    Schema {
        /// Directory to write them into.
        #[arg(long, default_value = "docs/schema")]
        out: PathBuf,
    },
}

/// How `run` prints its result.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutput {
    Text,
    Json,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "firedrill=info,warn",
        _ => "firedrill=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Runs the command; returns the process exit code.
pub async fn main(cli: Cli) -> anyhow::Result<i32> {
    init_logging(cli.global.verbose);
    match cli.command {
        Command::Validate { paths, output } => Ok(validate(paths, output)),
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::History(args) => history::history(&cli.global, args).await,
        Command::Report(args) => history::report(&cli.global, args).await,
        Command::Evidence { command } => evidence::run(&cli.global, command).await,
        Command::Canary(args) => canary::run(args).await,
        Command::Etcd { command } => etcd::run(command).await,
        Command::Sim { command } => sim::run(&cli.global, command).await,
        Command::Serve(args) => serve::serve(&cli.global, args).await,
        Command::Schedule { command } => serve::schedule(command).await,
        Command::Schema { out } => {
            std::fs::create_dir_all(&out)?;
            for (name, text) in crate::spec::schema::all() {
                std::fs::write(out.join(name), text)?;
                println!("wrote {}", out.join(name).display());
            }
            Ok(0)
        }
    }
}

/// The default spec paths: `drills/` and `scenarios/` where they exist.
fn default_spec_paths() -> Vec<PathBuf> {
    ["drills", "scenarios"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect()
}

fn validate(paths: Vec<PathBuf>, output: Format) -> i32 {
    let paths = if paths.is_empty() { default_spec_paths() } else { paths };
    match crate::spec::Catalog::load(&paths) {
        Ok(catalog) => {
            let rows: Vec<output::ValidRow> = catalog
                .drills
                .iter()
                .map(|d| output::ValidRow::drill(d))
                .chain(catalog.scenarios.iter().map(|s| output::ValidRow::scenario(s)))
                .chain(catalog.sim_clusters.iter().map(|f| output::ValidRow::sim_cluster(f)))
                .collect();
            output::print_rows(&rows, output);
            0
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error{} found; nothing was run.", errors.0.len(), if errors.0.len() == 1 { "" } else { "s" });
            2
        }
    }
}
