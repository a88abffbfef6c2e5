//! Real etcd: the command-line tools, the HTTP gateway of a member, scratch members, snapshot
//! files and their storage.
//!
//! Snapshots are saved, inspected and restored with etcd's own tools (`etcdctl` in 3.4,
//! `etcdutl` from 3.5 on, whichever is installed); a running member is asked questions through
//! its JSON gateway (`/v3/kv/range`, `/health`), which every etcd ≥ 3.4 serves on its client URL.

pub mod gateway;
pub mod integrity;
pub mod member;
pub mod snapshots;
pub mod tools;

/// Errors talking to etcd or its tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// A tool is not installed where it was looked for.
    #[error(
        "{tool} not found ({looked}): install Debian's etcd-server and etcd-client, or set its path in etcdRestore.tools"
    )]
    ToolMissing { tool: String, looked: String },
    /// A tool ran and failed.
    #[error("`{command}` failed: {message}")]
    Tool { command: String, message: String },
    /// A member did not answer, or answered nonsense.
    #[error("etcd at {endpoint}: {message}")]
    Endpoint { endpoint: String, message: String },
    /// A local file or process operation failed.
    #[error("{0}")]
    Io(String),
}

/// TLS files for a client connection to etcd.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
}

/// An etcd client endpoint and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}
