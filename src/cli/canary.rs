//! `firedrill canary`: writes the RPO canary (ConfigMap `firedrill-canary`, data `timestamp`)
//! into the protected namespaces, once or every interval, so that a restore drill can tell how
//! old the restored data is.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::clock::Clock;
use crate::cluster::{Retries, Target};
use crate::drills::velero_restore::canary;

#[derive(Args, Debug)]
pub struct CanaryArgs {
    /// A namespace to write the canary into (repeat for several).
    #[arg(long = "namespace", short = 'n', required = true)]
    pub namespaces: Vec<String>,
    /// How often to write it (`1m`, `30s`).
    #[arg(long, default_value = "1m", value_parser = parse_interval)]
    pub interval: Duration,
    /// Write once and exit (for cron jobs and tests).
    #[arg(long)]
    pub once: bool,
    /// A kubeconfig file; $KUBECONFIG or ~/.kube/config when unset.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig.
    #[arg(long)]
    pub context: Option<String>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err(format!("`{text}` is shorter than a second: write e.g. 30s or 1m")),
        Err(e) => Err(format!("`{text}` is not a duration ({e}): write e.g. 30s or 1m")),
    }
}

/// Writes the canaries; exit 0, or 2 when a write failed with `--once`. Without `--once`, a
/// failed write is reported and tried again at the next interval.
pub async fn run(args: CanaryArgs) -> anyhow::Result<i32> {
    let target = Target { kubeconfig: args.kubeconfig.clone(), context: args.context.clone() };
    let client = target.client(Retries::Client).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = Clock::system();
    loop {
        let mut failed = false;
        for ns in &args.namespaces {
            let now = clock.now();
            match canary::write(&client, ns, now).await {
                Ok(()) => println!("{now} wrote ConfigMap {ns}/{}", canary::NAME),
                Err(e) => {
                    failed = true;
                    eprintln!("{now} cannot write ConfigMap {ns}/{}: {e}", canary::NAME);
                }
            }
        }
        if args.once {
            return Ok(if failed { 2 } else { 0 });
        }
        clock.sleep(args.interval).await;
    }
}
