//! Where a BackupStorageLocation points, as an object store firedrill can open.
//!
//! Velero reaches object storage through a provider plugin. The simulator speaks two providers:
//!
//! - `aws` (also `velero.io/aws`), for S3 and S3-compatible stores, configured as the AWS plugin
//!   is: `objectStorage.bucket` and `prefix`; `config.region`, `config.s3Url`,
//!   `config.s3ForcePathStyle` and `config.profile`; `credential` naming a key of a Secret in the
//!   location's namespace that holds an AWS credentials file. Without `credential` the settings
//!   come from the `AWS_*` environment, where a real Velero would use its default credentials.
//! - `firedrill.dev/file`, which real Velero does not have: a simulator-only provider for tests
//!   and rehearsals, whose `objectStorage.bucket` is an absolute directory path (`prefix` is a
//!   directory under it). The directory must exist, as a bucket must.
//!
//! Credentials never leave this module except inside the options handed to the object store
//! client: errors name the Secret and key, never what they hold, and [`Opener`] has no `Debug`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use object_store::ObjectStore;
use object_store::path::Path as Key;
use serde_json::Value;

use crate::store::{self, Location, Profile, StoreError};

/// The simulator-only provider whose bucket is a local directory.
pub const FILE_PROVIDER: &str = "firedrill.dev/file";

/// The top-level directories Velero allows under a location's root (`ObjectStoreLayout`).
const VALID_DIRS: [&str; 6] = ["backups", "restores", "restic", "kopia", "metadata", "plugins"];

/// Why a location cannot be used; the message is what follows `BackupStorageLocation "<name>"
/// is unavailable: ` in the location's status.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The location names no provider.
    #[error("object storage provider name must not be empty")]
    NoProvider,
    /// No plugin serves the provider.
    #[error("unable to locate ObjectStore plugin named {0}")]
    UnknownProvider(String),
    /// `objectStorage.bucket` is empty.
    #[error("backup storage location's bucket name must not be empty")]
    NoBucket,
    /// A bucket with a `/`: a prefix written into the bucket field.
    #[error(
        "backup storage location's bucket name {0:?} must not contain a '/' (if using a prefix, put it in the 'Prefix' field instead)"
    )]
    SlashInBucket(String),
    /// The file provider's bucket is not an absolute path.
    #[error(
        "provider {FILE_PROVIDER} needs objectStorage.bucket to be an absolute directory path, and {0:?} is not one"
    )]
    RelativeDirectory(String),
    /// The file provider's directory does not exist (the bucket does not exist).
    #[error("the directory {0} does not exist or is not a directory")]
    NoDirectory(String),
    /// `config.s3Url` is not a URL.
    #[error("invalid s3Url {0:?}: write a URL such as https://minio.example:9000")]
    BadUrl(String),
    /// Virtual-hosted-style requests to an endpoint without a host name for `<bucket>.<host>`.
    #[error(
        "s3Url {0:?} has no host name to put the bucket in front of, as virtual-hosted-style requests do: set config.s3ForcePathStyle to \"true\""
    )]
    HostedStyle(String),
    /// The credentials Secret, its key or its content cannot be used.
    #[error("unable to get credentials: {0}")]
    Credentials(String),
    /// The store client could not be built.
    #[error("{0}")]
    Open(StoreError),
    /// A request to the store failed.
    #[error("rpc error: code = Unknown desc = {0}")]
    Request(String),
    /// The location's root holds directories Velero did not write.
    #[error("Backup store contains invalid top-level directories: {0}")]
    InvalidDirectories(String),
    /// Reading or writing Velero's format failed.
    #[error("{0}")]
    Format(#[from] super::format::FormatError),
    /// Store I/O could not be run or did not finish in time.
    #[error("{0}")]
    Io(String),
}

/// How to open a location. It may hold credentials, so it is neither `Debug` nor logged.
pub struct Opener {
    /// `s3://bucket/prefix` or the directory, for messages.
    url: String,
    /// S3 options, as object_store names them.
    options: Vec<(&'static str, String)>,
    prefix: String,
    /// The directory of the file provider.
    dir: Option<PathBuf>,
    /// The credential values, which messages must not carry.
    secrets: Vec<String>,
}

impl Opener {
    /// Opens the store (no request is made).
    pub fn open(&self, profile: Profile) -> Result<Location, LocationError> {
        match &self.dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(LocationError::NoDirectory(dir.display().to_string()));
                }
                let mut loc = store::open(&dir.display().to_string(), profile).map_err(LocationError::Open)?;
                loc.prefix = Key::from(self.prefix.as_str());
                Ok(loc)
            }
            None => {
                let options: Vec<(&str, &str)> = self.options.iter().map(|(k, v)| (*k, v.as_str())).collect();
                store::open_with(&self.url, profile, &options).map_err(LocationError::Open)
            }
        }
    }

    /// Where the location points, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A message about this location with any credential value in it replaced: an object
    /// store's error may quote a request or a response, and statuses and logs must not.
    pub fn scrub(&self, message: impl std::fmt::Display) -> String {
        let mut text = message.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        text
    }
}

/// The Secret holding a location's credentials file, when it names one (`spec.credential`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// The Secret `opener` needs for `bsl`, if any.
pub fn credential(bsl: &Value) -> Option<CredentialRef> {
    let name = bsl["spec"]["credential"]["name"].as_str().filter(|n| !n.is_empty())?;
    Some(CredentialRef {
        namespace: bsl["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
        name: name.to_string(),
        key: bsl["spec"]["credential"]["key"].as_str().unwrap_or_default().to_string(),
    })
}

/// The opener of a BackupStorageLocation object. `secret` is the Secret [`credential`] names
/// (as JSON), or `None` when the location names none or it does not exist; without a
/// `credential` the `AWS_*` environment is used.
pub fn opener(bsl: &Value, secret: Option<&Value>) -> Result<Opener, LocationError> {
    let spec = &bsl["spec"];
    let provider = spec["provider"].as_str().unwrap_or_default();
    let raw_bucket = spec["objectStorage"]["bucket"].as_str().unwrap_or_default();
    let prefix = spec["objectStorage"]["prefix"].as_str().unwrap_or_default().trim_matches('/').to_string();
    if provider.is_empty() {
        return Err(LocationError::NoProvider);
    }
    if raw_bucket.trim_matches('/').is_empty() {
        return Err(LocationError::NoBucket);
    }
    match provider {
        FILE_PROVIDER => {
            let dir = PathBuf::from(raw_bucket);
            if !dir.is_absolute() {
                return Err(LocationError::RelativeDirectory(raw_bucket.to_string()));
            }
            let url = format!("file://{}/{prefix}", raw_bucket.trim_end_matches('/'));
            let url = url.trim_end_matches('/').to_string();
            Ok(Opener { url, options: Vec::new(), prefix, dir: Some(dir), secrets: Vec::new() })
        }
        "aws" | "velero.io/aws" => {
            let bucket = raw_bucket.trim_matches('/');
            if bucket.contains('/') {
                return Err(LocationError::SlashInBucket(raw_bucket.to_string()));
            }
            let config: BTreeMap<String, String> = spec["config"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            let credentials = match credential(bsl) {
                None => None,
                Some(r) => {
                    let file = secret_value(secret, &r.name, &r.key).map_err(LocationError::Credentials)?;
                    let profile = config.get("profile").map(String::as_str).unwrap_or("default");
                    Some(parse_aws_credentials(&file, profile).map_err(LocationError::Credentials)?)
                }
            };
            let options = s3_options(&config, bucket, credentials.as_ref())?;
            let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
            let secrets = credentials
                .map(|c| [Some(c.access_key_id), Some(c.secret_access_key), c.session_token])
                .into_iter()
                .flatten()
                .flatten()
                .filter(|v| v.len() >= 4)
                .collect();
            Ok(Opener { url, options, prefix, dir: None, secrets })
        }
        other if other.contains('/') => Err(LocationError::UnknownProvider(other.to_string())),
        other => Err(LocationError::UnknownProvider(format!("velero.io/{other}"))),
    }
}

/// The value under `key` of Secret `name` (as JSON), from `data` (base64) or `stringData`.
fn secret_value(secret: Option<&Value>, name: &str, key: &str) -> Result<String, String> {
    let secret = secret.ok_or_else(|| format!("secrets {name:?} not found"))?;
    if let Some(encoded) = secret["data"][key].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| format!("key {key:?} of secret {name:?} is not base64"))?;
        return String::from_utf8(bytes).map_err(|_| format!("key {key:?} of secret {name:?} is not text"));
    }
    secret["stringData"][key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("key {key:?} not found in secret {name:?}"))
}

/// The keys of an AWS credentials file profile.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Says which keys are there, never what they are.
impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Reads profile `profile` of an AWS shared credentials file (INI: `[profile]` sections of
/// `key = value` lines, `#` and `;` comments). Errors never quote the file.
pub fn parse_aws_credentials(text: &str, profile: &str) -> Result<AwsCredentials, String> {
    let mut section: Option<String> = None;
    let mut found = false;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().trim_start_matches("profile ").trim().to_string();
            found |= name == profile;
            section = Some(name);
            continue;
        }
        if section.as_deref() == Some(profile)
            && let Some((k, v)) = line.split_once('=')
        {
            values.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    if !found {
        return Err(format!("the credentials file has no [{profile}] profile"));
    }
    let take = |k: &str| values.get(k).filter(|v| !v.is_empty()).cloned();
    let missing = |k: &str| format!("profile [{profile}] of the credentials file has no {k}");
    Ok(AwsCredentials {
        access_key_id: take("aws_access_key_id").ok_or_else(|| missing("aws_access_key_id"))?,
        secret_access_key: take("aws_secret_access_key").ok_or_else(|| missing("aws_secret_access_key"))?,
        session_token: take("aws_session_token"),
    })
}

/// object_store S3 options from the AWS plugin's `config` and credentials.
pub fn s3_options(
    config: &BTreeMap<String, String>,
    bucket: &str,
    credentials: Option<&AwsCredentials>,
) -> Result<Vec<(&'static str, String)>, LocationError> {
    let mut options = vec![("aws_region", config.get("region").cloned().unwrap_or_else(|| "us-east-1".to_string()))];
    let path_style = config.get("s3ForcePathStyle").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(s3_url) = config.get("s3Url").filter(|u| !u.is_empty()) {
        let mut url = url::Url::parse(s3_url).map_err(|_| LocationError::BadUrl(s3_url.clone()))?;
        if url.scheme() == "http" {
            options.push(("aws_allow_http", "true".to_string()));
        }
        if !path_style {
            // Virtual-hosted style against a custom endpoint: the bucket leads the host name.
            let host = match url.host() {
                Some(url::Host::Domain(d)) => d.to_string(),
                _ => return Err(LocationError::HostedStyle(s3_url.clone())),
            };
            url.set_host(Some(&format!("{bucket}.{host}"))).map_err(|_| LocationError::HostedStyle(s3_url.clone()))?;
            options.push(("aws_virtual_hosted_style_request", "true".to_string()));
        }
        options.push(("aws_endpoint", url.as_str().trim_end_matches('/').to_string()));
    } else if !path_style {
        options.push(("aws_virtual_hosted_style_request", "true".to_string()));
    }
    if let Some(c) = credentials {
        options.push(("aws_access_key_id", c.access_key_id.clone()));
        options.push(("aws_secret_access_key", c.secret_access_key.clone()));
        if let Some(token) = &c.session_token {
            options.push(("aws_session_token", token.clone()));
        }
    }
    Ok(options)
}

/// Velero's `IsValid`: the root can be listed and holds no directories but Velero's own.
pub async fn validate(loc: &Location) -> Result<(), LocationError> {
    let listing =
        loc.store.list_with_delimiter(Some(&loc.prefix)).await.map_err(|e| LocationError::Request(e.to_string()))?;
    let invalid: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename())
        .filter(|d| !VALID_DIRS.contains(d))
        .map(str::to_string)
        .collect();
    match invalid.len() {
        0 => Ok(()),
        1..=3 => Err(LocationError::InvalidDirectories(format!("[{}]", invalid.join(" ")))),
        n => {
            Err(LocationError::InvalidDirectories(format!("{n} of them, among them [{} ...]", invalid[..3].join(" "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    const FILE: &str = "# comment\n[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key=s3cr3t\n\n[other]\naws_access_key_id=x\naws_secret_access_key=y\naws_session_token=z\n";

    #[test]
    fn credentials_files_are_read_by_profile() {
        let c = parse_aws_credentials(FILE, "default").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str(), c.session_token.as_deref()),
            ("AKIAEXAMPLE", "s3cr3t", None)
        );
        assert_eq!(parse_aws_credentials(FILE, "other").unwrap().session_token.as_deref(), Some("z"));
        let err = parse_aws_credentials(FILE, "prod").unwrap_err();
        assert!(err.contains("[prod]"));
        assert!(!format!("{c:?}").contains("s3cr3t"), "Debug never shows a secret");
        let err = parse_aws_credentials("[default]\naws_access_key_id=AKIAEXAMPLE\n", "default").unwrap_err();
        assert!(err.contains("aws_secret_access_key") && !err.contains("AKIAEXAMPLE"), "{err}");
    }

    #[test]
    fn the_aws_plugin_config_becomes_s3_options() {
        let config: BTreeMap<String, String> =
            [("region", "minio"), ("s3Url", "http://127.0.0.1:9000"), ("s3ForcePathStyle", "true")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let creds = parse_aws_credentials(FILE, "default").unwrap();
        let options = s3_options(&config, "velero", Some(&creds)).unwrap();
        let get = |k: &str| options.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("aws_region"), Some("minio"));
        assert_eq!(get("aws_endpoint"), Some("http://127.0.0.1:9000"));
        assert_eq!(get("aws_allow_http"), Some("true"));
        assert_eq!(get("aws_virtual_hosted_style_request"), None);
        assert_eq!(get("aws_access_key_id"), Some("AKIAEXAMPLE"));

        let mut hosted = config.clone();
        hosted.remove("s3ForcePathStyle");
        assert!(matches!(s3_options(&hosted, "velero", None), Err(LocationError::HostedStyle(_))));
        hosted.insert("s3Url".into(), "https://minio.example:9000".into());
        let options = s3_options(&hosted, "velero", None).unwrap();
        let endpoint = options.iter().find(|(k, _)| *k == "aws_endpoint").map(|(_, v)| v.as_str());
        assert_eq!(endpoint, Some("https://velero.minio.example:9000"));
        assert!(matches!(
            s3_options(&[("s3Url".to_string(), "::".to_string())].into(), "b", None),
            Err(LocationError::BadUrl(_))
        ));
    }

    #[test]
    fn messages_about_a_location_never_carry_its_credentials() {
        let opener = Opener {
            url: "s3://b".into(),
            options: Vec::new(),
            prefix: String::new(),
            dir: None,
            secrets: vec!["AKIAEXAMPLE".into(), "s3cr3t".into()],
        };
        let said = opener.scrub("403 SignatureDoesNotMatch: AWSAccessKeyId AKIAEXAMPLE, key s3cr3t");
        assert_eq!(said, "403 SignatureDoesNotMatch: AWSAccessKeyId <redacted>, key <redacted>");
    }

    #[tokio::test]
    async fn only_velero_s_directories_may_sit_at_the_root() {
        let loc =
            store::open(&format!("memory://velero-location-{}/root", uuid::Uuid::new_v4()), Profile::Records).unwrap();
        validate(&loc).await.unwrap();
        for key in ["backups/b1/velero-backup.json", "restores/r1/x", "kopia/repo"] {
            loc.store.put(&loc.key(key), b"{}".to_vec().into()).await.unwrap();
        }
        validate(&loc).await.unwrap();
        loc.store.put(&loc.key("photos/cat.jpg"), b"".to_vec().into()).await.unwrap();
        let err = validate(&loc).await.unwrap_err();
        assert_eq!(err.to_string(), "Backup store contains invalid top-level directories: [photos]");
    }
}
