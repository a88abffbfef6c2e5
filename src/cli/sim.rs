//! `firedrill sim`: run the simulated cluster in the background (`up`/`down`) or in the
//! foreground (`serve`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::Global;
use crate::sim::{Sim, SimOptions, config};

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Start a simulated cluster in the background, write its kubeconfig, say how to use it.
    Up {
        /// A `kind: SimCluster` file: nodes, namespaces, apps, objects, timings, faults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The port on 127.0.0.1 (a free one by default).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Stop the simulated cluster `up` started.
    Down,
    /// Run a simulated cluster in the foreground until Ctrl-C.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Write the kubeconfig here.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

fn sim_dir(global: &Global) -> PathBuf {
    global.data_dir().join("sim")
}

fn load_config(path: &Option<PathBuf>) -> anyhow::Result<config::SimConfig> {
    match path {
        Some(p) => config::load(p).map_err(|e| anyhow::anyhow!("{e}\nthe simulator was not started")),
        None => Ok(config::SimConfig::default()),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub async fn run(global: &Global, command: SimCommand) -> anyhow::Result<i32> {
    match command {
        SimCommand::Serve { config, port, kubeconfig } => {
            let config = load_config(&config)?;
            let sim = Sim::start(SimOptions { port, config, ..SimOptions::default() }).await?;
            if let Some(path) = kubeconfig {
                std::fs::write(&path, sim.kubeconfig())?;
            }
            eprintln!("firedrill sim: serving {} (Ctrl-C stops it)", sim.url());
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            sim.shutdown().await;
            Ok(0)
        }
        SimCommand::Up { config, port } => {
            // Check the configuration here, so that its errors reach the person who typed `up`.
            load_config(&config)?;
            let dir = sim_dir(global);
            std::fs::create_dir_all(&dir)?;
            let pid_file = dir.join("pid");
            if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok())
                && std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                anyhow::bail!("a simulated cluster already runs (pid {pid}); `firedrill sim down` stops it");
            }
            let port = if port == 0 { free_port()? } else { port };
            let kubeconfig = dir.join("kubeconfig");
            let _ = std::fs::remove_file(&kubeconfig);
            let log = std::fs::File::create(dir.join("sim.log"))?;
            let mut cmd = std::process::Command::new(std::env::current_exe()?);
            cmd.args(["sim", "serve", "--port", &port.to_string(), "--kubeconfig"]).arg(&kubeconfig);
            if let Some(c) = &config {
                cmd.arg("--config").arg(std::path::absolute(c)?);
            }
            cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
            // Its own session, so that closing this terminal does not stop it.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            let child = cmd.spawn().context("starting the simulator")?;
            std::fs::write(&pid_file, child.id().to_string())?;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !kubeconfig.exists() {
                if std::time::Instant::now() > deadline {
                    anyhow::bail!("the simulator did not start; see {}", dir.join("sim.log").display());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!("firedrill sim: a simulated cluster serves http://127.0.0.1:{port} (pid {})", child.id());
            println!("kubeconfig: {}", kubeconfig.display());
            println!();
            println!("  export KUBECONFIG={}", kubeconfig.display());
            println!("  kubectl get nodes,pods -A");
            println!();
            println!("`firedrill sim down` stops it. Its log: {}", dir.join("sim.log").display());
            Ok(0)
        }
        SimCommand::Down => {
            let dir = sim_dir(global);
            let pid_file = dir.join("pid");
            let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) else {
                println!("no simulated cluster runs");
                return Ok(0);
            };
            // SAFETY: kill(2) on the process `up` started and recorded.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::path::Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = std::fs::remove_file(&pid_file);
            let _ = std::fs::remove_file(dir.join("kubeconfig"));
            println!("firedrill sim: stopped (pid {pid})");
            Ok(0)
        }
    }
}
