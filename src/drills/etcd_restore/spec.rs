//! The `etcdRestore` block of a drill file, and its validation.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::etcd::tools::ToolPaths;
use crate::etcd::{Endpoint, TlsFiles};
use crate::spec::raw::EnvText;
use crate::spec::{Loc, Validator};

/// Restore etcd from a snapshot into a scratch member on this machine and verify it.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdRestore")]
pub struct Spec {
    /// Where the snapshot comes from: exactly one of `fromEndpoint` and `fromStore`.
    pub snapshot: Loc<SnapshotSpec>,
    /// What to check on the restored member, beyond revision and key count.
    #[serde(default)]
    pub verify: Option<VerifySpec>,
    /// Paths of etcd's tools, when they are not on PATH.
    #[serde(default)]
    pub tools: Option<ToolsSpec>,
    /// Restore a raw database copy that has no SHA-256 trailer (default `false`).
    #[serde(default)]
    pub allow_missing_hash: Option<bool>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdSnapshotSource")]
pub struct SnapshotSpec {
    /// Take a fresh snapshot from a live member (`etcdctl snapshot save`) before the disaster.
    #[serde(default)]
    pub from_endpoint: Option<Loc<EndpointSpec>>,
    /// Fetch the newest snapshot from object storage: the real disaster-recovery path.
    #[serde(default)]
    pub from_store: Option<Loc<StoreSpec>>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdEndpoint")]
pub struct EndpointSpec {
    /// One client URL, `http://` or `https://`.
    pub endpoint: Loc<EnvText>,
    #[serde(default)]
    pub tls: Option<TlsSpec>,
}

/// Client TLS for an etcd endpoint (file paths; the files are read at run time).
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdClientTls")]
pub struct TlsSpec {
    /// CA bundle that signed the server's certificate.
    #[serde(default)]
    pub ca_file: Option<Loc<EnvText>>,
    /// Client certificate, for members that require client-certificate auth.
    #[serde(default)]
    pub cert_file: Option<Loc<EnvText>>,
    /// The client certificate's private key. Only its path is ever recorded.
    #[serde(default)]
    pub key_file: Option<Loc<EnvText>>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdSnapshotStore")]
pub struct StoreSpec {
    /// `s3://bucket/prefix/`, `file:///path/` or `memory://name/`. S3 credentials, region and
    /// endpoint come from the `AWS_*` environment variables, never from here.
    pub url: Loc<EnvText>,
    /// Which file names are snapshots (a glob; `*.db` by default). The newest match is restored.
    #[serde(default)]
    pub pattern: Option<Loc<String>>,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdVerify")]
pub struct VerifySpec {
    /// Keys that must exist in the restored data.
    #[serde(default)]
    pub expect_keys: Vec<Loc<String>>,
    /// Key counts under prefixes.
    #[serde(default)]
    pub prefix_counts: Vec<Loc<PrefixCountSpec>>,
    /// A key holding a timestamp, written periodically: its restored value gives the RPO.
    #[serde(default)]
    pub canary: Option<CanarySpec>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdPrefixCount")]
pub struct PrefixCountSpec {
    pub prefix: String,
    /// At least this many keys.
    #[serde(default)]
    pub min: Option<u64>,
    /// Exactly this many keys.
    #[serde(default)]
    pub equals: Option<u64>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdCanary")]
pub struct CanarySpec {
    /// The key; its value is an RFC 3339 timestamp or Unix seconds or milliseconds.
    pub key: Loc<String>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "EtcdTools")]
pub struct ToolsSpec {
    #[serde(default)]
    pub etcd: Option<Loc<EnvText>>,
    #[serde(default)]
    pub etcdctl: Option<Loc<EnvText>>,
    #[serde(default)]
    pub etcdutl: Option<Loc<EnvText>>,
}

/// Where the snapshot comes from, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    Endpoint(Endpoint),
    Store { url: String, pattern: String },
}

/// A prefix count check, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixCount {
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<u64>,
}

/// The validated parameters of an `etcd-restore` drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub source: Source,
    pub expect_keys: Vec<String>,
    pub prefix_counts: Vec<PrefixCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_key: Option<String>,
    pub tools: ToolPaths,
    pub allow_missing_hash: bool,
}

fn path(v: &mut Validator, text: &Option<Loc<EnvText>>) -> Option<PathBuf> {
    text.as_ref().and_then(|t| v.expand(t)).map(PathBuf::from)
}

fn endpoint(v: &mut Validator, spec: &EndpointSpec) -> Option<Endpoint> {
    let url = v.expand(&spec.endpoint)?;
    let parsed = url::Url::parse(&url).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if parsed.is_none() || url.contains(',') {
        v.error(
            spec.endpoint.at(),
            format!("`{url}` is not one etcd client URL: write http://host:2379 or https://host:2379"),
        );
        return None;
    }
    let tls = spec.tls.as_ref().map(|t| TlsFiles {
        ca_file: path(v, &t.ca_file),
        cert_file: path(v, &t.cert_file),
        key_file: path(v, &t.key_file),
    });
    if let (Some(t), Some(spec_tls)) = (&tls, &spec.tls)
        && t.cert_file.is_some() != t.key_file.is_some()
    {
        let at = spec_tls.cert_file.as_ref().or(spec_tls.key_file.as_ref()).map(Loc::at).unwrap_or(spec.endpoint.at());
        v.error(at, "tls.certFile and tls.keyFile go together: give both for client-certificate auth, or neither");
    }
    Some(Endpoint { url, tls })
}

/// Validates the `etcdRestore` block.
pub fn validate(v: &mut Validator, spec: &Loc<Spec>) -> Option<Params> {
    let s = &spec.value;
    let snap = &s.snapshot.value;
    let source = match (&snap.from_endpoint, &snap.from_store) {
        (Some(e), None) => endpoint(v, &e.value).map(Source::Endpoint),
        (None, Some(st)) => {
            let url = v.expand(&st.value.url);
            let pattern = st.value.pattern.as_ref().map(|p| p.value.clone()).unwrap_or_else(|| "*.db".into());
            if let Err(e) = glob::Pattern::new(&pattern) {
                let at = st.value.pattern.as_ref().map(Loc::at).unwrap_or(st.at());
                v.error(at, format!("`{pattern}` is not a glob pattern ({e}): write e.g. `*.db` or `etcd-*.db`"));
            }
            if let Some(Err(e)) = url.as_deref().map(crate::store::parse) {
                v.error(st.value.url.at(), e.to_string());
            }
            url.map(|url| Source::Store { url, pattern })
        }
        _ => {
            v.error(s.snapshot.at(), "snapshot needs exactly one of `fromEndpoint` (take a fresh snapshot) and `fromStore` (fetch the newest one)");
            None
        }
    };
    let verify = s.verify.as_ref();
    let mut prefix_counts = Vec::new();
    for pc in verify.map(|v| v.prefix_counts.as_slice()).unwrap_or_default() {
        let p = &pc.value;
        if p.min.is_none() && p.equals.is_none() {
            v.error(pc.at(), format!("prefixCounts entry for `{}` needs `min` or `equals`", p.prefix));
        }
        prefix_counts.push(PrefixCount { prefix: p.prefix.clone(), min: p.min, equals: p.equals });
    }
    let mut expect_keys = Vec::new();
    for k in verify.map(|v| v.expect_keys.as_slice()).unwrap_or_default() {
        expect_keys.extend(v.non_empty(k, "an expectKeys entry"));
    }
    let canary_key = verify.and_then(|x| x.canary.as_ref()).and_then(|c| v.non_empty(&c.key, "canary.key"));
    let tools = match &s.tools {
        Some(t) => ToolPaths { etcd: path(v, &t.etcd), etcdctl: path(v, &t.etcdctl), etcdutl: path(v, &t.etcdutl) },
        None => ToolPaths::default(),
    };
    Some(Params {
        source: source?,
        expect_keys,
        prefix_counts,
        canary_key,
        tools,
        allow_missing_hash: s.allow_missing_hash.unwrap_or(false),
    })
}
