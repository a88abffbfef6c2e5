//! Scratch etcd members: started on free loopback ports, found again by their data directory,
//! stopped for good.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::EtcdError;
use super::tools::Tools;

/// A running member that firedrill started.
#[derive(Debug)]
pub struct Member {
    child: Child,
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
}

/// Two free loopback ports (client, peer). Another process may take one before etcd binds it;
/// the member then fails to start and says so in its log.
pub fn free_ports() -> Result<(u16, u16), EtcdError> {
    let bind = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let a = bind().map_err(|e| EtcdError::Io(format!("no free loopback port: {e}")))?;
    let mut b = bind().map_err(|e| EtcdError::Io(format!("no free loopback port: {e}")))?;
    while b == a {
        b = bind().map_err(|e| EtcdError::Io(format!("no free loopback port: {e}")))?;
    }
    Ok((a, b))
}

impl Member {
    /// Starts `etcd` on a restored `data_dir` as the one-member cluster `name` at `peer_url`.
    pub fn start(
        tools: &Tools,
        data_dir: &Path,
        name: &str,
        client_port: u16,
        peer_url: &str,
        log_file: &Path,
    ) -> Result<Self, EtcdError> {
        let client_url = format!("http://127.0.0.1:{client_port}");
        let mut cmd = Command::new(&tools.etcd);
        cmd.arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={name}={peer_url}"))
            .arg("--logger=zap")
            .arg(format!("--log-outputs={}", log_file.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Dropping the handle leaves the member running: cleanup stops it by its data dir, the
        // same way the janitor does after a crash. If firedrill itself is killed, the kernel
        // kills the member (the janitor's cleanup remains the guarantee; this only keeps an
        // orphan from outliving us).
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| EtcdError::Io(format!("cannot start {}: {e}", tools.etcd.display())))?;
        Ok(Self {
            child,
            name: name.to_string(),
            client_url,
            peer_url: peer_url.to_string(),
            data_dir: data_dir.to_path_buf(),
            log_file: log_file.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `Some(why)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("etcd exited ({status}); last log lines: {}", log_tail(&self.log_file))),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }
}

/// The last error-ish lines of an etcd log, for a person.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

/// The etcd processes on this host whose `--data-dir` is `data_dir`.
pub fn processes_using(data_dir: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let want = data_dir.as_os_str().to_string_lossy().to_string();
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let is_etcd = args.first().is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "etcd"));
            is_etcd
                && args.iter().enumerate().any(|(i, a)| {
                    a.strip_prefix("--data-dir=").is_some_and(|d| d == want)
                        || (a == "--data-dir" && args.get(i + 1).is_some_and(|d| *d == want))
                })
        })
        .collect()
}

/// Stops every etcd using `data_dir`: SIGTERM, then SIGKILL after `grace`. Returns the pids.
pub async fn stop_all(data_dir: &Path, grace: Duration) -> Vec<u32> {
    let pids = processes_using(data_dir);
    for pid in &pids {
        // SAFETY: kill(2) on a pid we just found running etcd with our data dir.
        unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        // SAFETY: as above; it ignored SIGTERM.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    while pids.iter().any(|p| alive(*p)) && tokio::time::Instant::now() < deadline + grace {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pids
}

/// Running, and not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}
