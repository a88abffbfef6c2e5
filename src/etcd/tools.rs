//! etcd's command-line tools: finding them, and the snapshot commands.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::process::Command;

use super::{Endpoint, EtcdError};

/// Paths given in a spec; `None` means "look on PATH".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolPaths {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcdctl: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcdutl: Option<PathBuf>,
}

/// The installed tools. `etcdutl` (3.5+) does offline snapshot work when present; 3.4 has only
/// `etcdctl`, which then does it.
#[derive(Debug, Clone)]
pub struct Tools {
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    pub etcdutl: Option<PathBuf>,
}

/// What `snapshot status -w json` reports.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket, key and value.
    pub hash: u32,
    /// The store's revision in the snapshot.
    pub revision: i64,
    /// 3.4/3.5: every key/value pair in every bucket (all revisions and meta); 3.6: live keys.
    pub total_key: i64,
    pub total_size: i64,
}

/// Finds `name` on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn locate(given: Option<&PathBuf>, name: &str) -> Result<PathBuf, EtcdError> {
    match given {
        Some(p) if p.is_file() => Ok(p.clone()),
        Some(p) => Err(EtcdError::ToolMissing { tool: name.into(), looked: format!("at {}", p.display()) }),
        None => on_path(name).ok_or_else(|| EtcdError::ToolMissing { tool: name.into(), looked: "on PATH".into() }),
    }
}

/// The last few lines of a tool's stderr, for an error message.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

impl Tools {
    pub fn find(paths: &ToolPaths) -> Result<Self, EtcdError> {
        let etcdutl = match &paths.etcdutl {
            Some(p) => Some(locate(Some(p), "etcdutl")?),
            None => on_path("etcdutl"),
        };
        Ok(Self {
            etcd: locate(paths.etcd.as_ref(), "etcd")?,
            etcdctl: locate(paths.etcdctl.as_ref(), "etcdctl")?,
            etcdutl,
        })
    }

    /// The tool that does offline snapshot work (`status`, `restore`).
    fn offline(&self) -> &Path {
        self.etcdutl.as_deref().unwrap_or(&self.etcdctl)
    }

    /// `etcdutl` or `etcdctl`, for records.
    pub fn layout(&self) -> &'static str {
        if self.etcdutl.is_some() { "etcdutl (etcd 3.5+)" } else { "etcdctl (etcd 3.4)" }
    }

    async fn run(&self, program: &Path, args: &[String]) -> Result<Vec<u8>, EtcdError> {
        let command =
            format!("{} {}", program.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), args.join(" "));
        let out = Command::new(program)
            .args(args)
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| EtcdError::Tool { command: command.clone(), message: e.to_string() })?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let mut message = tail(&out.stderr);
            if message.is_empty() {
                message = tail(&out.stdout);
            }
            Err(EtcdError::Tool { command, message: format!("{} ({})", message, out.status) })
        }
    }

    /// `etcd --version`, first line's version.
    pub async fn etcd_version(&self) -> Option<String> {
        let out = self.run(&self.etcd, &["--version".into()]).await.ok()?;
        let text = String::from_utf8_lossy(&out).to_string();
        text.lines().next()?.rsplit(' ').next().map(str::to_string)
    }

    /// etcdctl's flags for reaching `endpoint`.
    fn endpoint_args(endpoint: &Endpoint) -> Vec<String> {
        let mut args = vec![format!("--endpoints={}", endpoint.url)];
        if let Some(tls) = &endpoint.tls {
            for (flag, path) in [("--cacert", &tls.ca_file), ("--cert", &tls.cert_file), ("--key", &tls.key_file)] {
                if let Some(p) = path {
                    args.push(format!("{flag}={}", p.display()));
                }
            }
        }
        args
    }

    /// `etcdctl snapshot save` from `endpoint` into `file`.
    pub async fn snapshot_save(&self, endpoint: &Endpoint, file: &Path) -> Result<(), EtcdError> {
        let mut args = Self::endpoint_args(endpoint);
        args.extend(["snapshot".into(), "save".into(), file.display().to_string()]);
        self.run(&self.etcdctl, &args).await.map(drop)
    }

    /// The number of keys on a live member at `revision` (the latest for `None`), and the
    /// member's current revision. Uses etcdctl rather than the JSON gateway, which production
    /// members may have disabled or may refuse behind client-certificate auth.
    pub async fn count(&self, endpoint: &Endpoint, revision: Option<i64>) -> Result<(i64, i64), EtcdError> {
        #[derive(Deserialize)]
        struct Get {
            header: GetHeader,
            #[serde(default)]
            count: i64,
        }
        #[derive(Deserialize)]
        struct GetHeader {
            revision: i64,
        }
        let mut args = Self::endpoint_args(endpoint);
        args.extend(["get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json"].map(String::from));
        if let Some(rev) = revision {
            args.push(format!("--rev={rev}"));
        }
        let out = self.run(&self.etcdctl, &args).await?;
        let get: Get = serde_json::from_slice(&out).map_err(|e| EtcdError::Tool {
            command: "etcdctl get".into(),
            message: format!("unexpected output `{}`: {e}", String::from_utf8_lossy(&out).trim()),
        })?;
        Ok((get.count, get.header.revision))
    }

    /// `snapshot status -w json`: bbolt's own integrity check, and the revision and counts.
    pub async fn snapshot_status(&self, file: &Path) -> Result<SnapshotStatus, EtcdError> {
        let args = vec!["snapshot".into(), "status".into(), file.display().to_string(), "-w".into(), "json".into()];
        let out = self.run(self.offline(), &args).await?;
        let text = String::from_utf8_lossy(&out);
        // etcdctl 3.5 prints a deprecation line before the JSON.
        let json = text.lines().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
        serde_json::from_str(json).map_err(|e| EtcdError::Tool {
            command: "snapshot status".into(),
            message: format!("unexpected output `{}`: {e}", text.trim()),
        })
    }

    /// `snapshot restore` of `file` into the new data dir `data_dir`, as a one-member cluster
    /// named `name` whose peer URL is `peer_url`.
    pub async fn snapshot_restore(
        &self,
        file: &Path,
        data_dir: &Path,
        name: &str,
        peer_url: &str,
        token: &str,
        skip_hash_check: bool,
    ) -> Result<(), EtcdError> {
        let mut args = vec![
            "snapshot".into(),
            "restore".into(),
            file.display().to_string(),
            format!("--data-dir={}", data_dir.display()),
            format!("--name={name}"),
            format!("--initial-cluster={name}={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster-token={token}"),
        ];
        if skip_hash_check {
            args.push("--skip-hash-check".into());
        }
        self.run(self.offline(), &args).await.map(drop)
    }
}
