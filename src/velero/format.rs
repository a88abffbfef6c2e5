//! Velero's backup format and object-storage layout, read and written for real.
//!
//! This module owns the bytes Velero puts in a backup storage location: the gzip'd tarball of
//! backed-up objects (format 1.1.0, and the older layouts Velero still restores), the JSON side
//! files (results, resource list), the keys under a location's root, and the order in which a
//! backup's objects are uploaded. A backup the simulator writes can therefore be restored by a
//! real Velero, and a backup a real Velero wrote can be restored by the simulator.
//!
//! It must not decide what goes into a backup or how items are restored (the Velero controllers
//! do that), and it never touches the simulated API server.
//!
//! Learned from Velero's `pkg/persistence/object_store_layout.go` and `object_store.go` (keys,
//! upload order, `ListBackups`), `pkg/backup/backup.go` and `item_backupper.go` (tar entries),
//! `pkg/archive/parser.go` and `pkg/restore/restore.go` (what a restore reads), `pkg/util/results`
//! and `pkg/backup/backed_up_items_map.go` (results and resource list).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tar::{Builder, EntryType, Header};

use crate::store::Location;

/// The tarball format Velero writes (`BackupFormatVersion`), stored in `metadata/version`.
pub const FORMAT_VERSION: &str = "1.1.0";
/// The suffix of the directory that holds each object again under its preferred API version.
pub const PREFERRED_VERSION_SUFFIX: &str = "-preferredversion";

const RESOURCES_DIR: &str = "resources";
const METADATA_DIR: &str = "metadata";
const VERSION_FILE: &str = "version";
const CLUSTER_DIR: &str = "cluster";
const NAMESPACES_DIR: &str = "namespaces";
const BACKUP_METADATA_FILE: &str = "velero-backup.json";
/// Velero writes every tar entry with this mode, directories never.
const ENTRY_MODE: u32 = 0o755;

/// Errors reading or writing Velero's format and layout.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Data that should be gzip-compressed does not start with gzip's magic bytes.
    #[error("{what} is not gzip-compressed (it does not start with the gzip magic bytes 1f 8b)")]
    NotGzip { what: String },
    /// A gzip stream is damaged or truncated.
    #[error("{what} is gzip-compressed but cannot be decompressed: {reason}")]
    Gzip { what: String, reason: String },
    /// The decompressed backup contents are not a tar archive.
    #[error("the backup tarball is gzip-compressed but is not a tar archive: {0}")]
    NotTar(String),
    /// `metadata/version` names a format this reader does not understand.
    #[error(
        "backup format version `{0}` is not supported: firedrill reads Velero's format 1 \
         (`metadata/version` absent, `1`, `1.0.0`, `1.1.0` or a later 1.x)"
    )]
    UnsupportedVersion(String),
    /// A tar entry path climbs out of the archive.
    #[error("tarball entry `{0}` climbs out of the archive with `..`")]
    UnsafePath(String),
    /// An object file in the tarball cannot be restored.
    #[error("tarball entry `{path}`: {reason}")]
    Item { path: String, reason: String },
    /// A name that cannot be one segment of a key or tar path.
    #[error(
        "`{0}` cannot be used as a name in Velero's layout: write a non-empty name without `/` that is not `.` or `..`"
    )]
    InvalidName(String),
    /// The Backup handed to [`upload_backup`] has no `metadata.name`.
    #[error("the Backup to upload has no metadata.name, so it has no place in the layout")]
    Unnamed,
    /// A value could not be encoded as JSON.
    #[error("cannot encode {what} as JSON")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Writing the tarball or a gzip stream in memory failed.
    #[error("cannot write {what}: {reason}")]
    Write { what: &'static str, reason: String },
    /// `velero-backup.json` is not a Velero Backup.
    #[error("{key} in {url} is not a Velero Backup: {reason}")]
    Metadata { key: String, url: String, reason: String },
    /// The location holds no `velero-backup.json` for that backup.
    #[error("backup `{name}` is not in {url}: there is no backups/{name}/velero-backup.json")]
    BackupNotFound { name: String, url: String },
    /// The backup's metadata is there but its tarball is not.
    #[error("backup `{name}` in {url} has metadata but no contents: backups/{name}/{name}.tar.gz is missing")]
    ContentsNotFound { name: String, url: String },
    /// A request to the object store failed.
    #[error("cannot {op} {key} in {url}")]
    Store {
        op: &'static str,
        key: String,
        url: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// An upload failed, and removing the objects uploaded before it failed too.
    #[error("cannot put {key} in {url}, and removing the backup's earlier objects failed too: {cleanup}")]
    Cleanup {
        key: String,
        url: String,
        cleanup: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

/// One backed-up object.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupItem {
    /// `resource.group` as Velero's `GroupResource.String()` writes it: `pods`, `deployments.apps`.
    pub group_resource: String,
    /// `None` for a cluster-scoped object.
    pub namespace: Option<String>,
    pub name: String,
    /// The preferred API version the object was read at, e.g. `v1`.
    pub version: String,
    /// The object as read from the API, status included.
    pub object: Value,
}

impl BackupItem {
    /// The namespace, with Velero's convention that an empty one means cluster-scoped.
    fn scope(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|ns| !ns.is_empty())
    }
}

/// Messages a backup or restore produced, kept apart by where they arose (Velero's
/// `results.Result`; empty lists are left out of the JSON, as Go's `omitempty` does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// About Velero itself: the store, the tarball, plugins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub velero: Vec<String>,
    /// About cluster-scoped resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// About namespaced resources, by namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl Results {
    /// The number of messages: what Velero puts in a status's `errors` or `warnings`.
    pub fn count(&self) -> usize {
        self.velero.len() + self.cluster.len() + self.namespaces.values().map(Vec::len).sum::<usize>()
    }
}

/// The `{"errors":…,"warnings":…}` document of `<b>-results.gz` and `restore-<r>-results.gz`.
pub fn results(errors: &Results, warnings: &Results) -> Value {
    serde_json::json!({ "errors": errors, "warnings": warnings })
}

/// The content of `<b>-resource-list.json.gz`: `"<apiVersion>/<Kind>"` → sorted `"ns/name"` (or
/// `"name"` for cluster-scoped objects), as Velero's `BackupResourceList` builds it.
pub fn resource_list(items: &[BackupItem]) -> Value {
    let mut list: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in items {
        let entry = match item.scope() {
            Some(ns) => format!("{ns}/{}", item.name),
            None => item.name.clone(),
        };
        list.entry(resource_key(item)).or_default().push(entry);
    }
    for entries in list.values_mut() {
        entries.sort();
        entries.dedup();
    }
    serde_json::json!(list)
}

/// `<group/version>/<Kind>` of an item, from the object, or from the item's group and version
/// when the object does not say.
fn resource_key(item: &BackupItem) -> String {
    let api_version = match item.object.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => match item.group_resource.split_once('.') {
            Some((_, group)) => format!("{group}/{}", item.version),
            None => item.version.clone(),
        },
    };
    let kind = item.object.get("kind").and_then(Value::as_str).unwrap_or_default();
    format!("{api_version}/{kind}")
}

/// Gzip-compresses `data` at the default level, as Go's `gzip.NewWriter` does.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let fail = |e: std::io::Error| FormatError::Write { what: "a gzip stream", reason: e.to_string() };
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).map_err(fail)?;
    encoder.finish().map_err(fail)
}

/// Decompresses a gzip stream (all members, as Go's reader does).
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, FormatError> {
    gunzip_named(data, "the data")
}

fn gunzip_named(data: &[u8], what: &str) -> Result<Vec<u8>, FormatError> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Err(FormatError::NotGzip { what: what.to_string() });
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| FormatError::Gzip { what: what.to_string(), reason: e.to_string() })?;
    Ok(out)
}

/// JSON followed by a newline, gzip'd: what Go's `json.NewEncoder(gzip.NewWriter(..))` writes.
fn gzip_json(value: &Value, what: &'static str) -> Result<Vec<u8>, FormatError> {
    let mut body = serde_json::to_vec(value).map_err(|source| FormatError::Json { what, source })?;
    body.push(b'\n');
    gzip(&body)
}

/// Checks that `name` can be one path segment.
fn check_name(name: &str) -> Result<(), FormatError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FormatError::InvalidName(name.to_string()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The tarball

/// [`write_tarball_at`] with entries stamped now, as Velero stamps them with `time.Now()`.
pub fn write_tarball(items: &[BackupItem]) -> Result<Vec<u8>, FormatError> {
    write_tarball_at(items, Utc::now())
}

/// The gzip'd tar Velero writes as `<b>.tar.gz`: `metadata/version` first, then each object at
/// its classic path and again under `<version>-preferredversion/`. Entries are USTAR regular
/// files, mode 0755, modified at `modified` (rounded to the second, as Go's `archive/tar` does).
pub fn write_tarball_at(items: &[BackupItem], modified: DateTime<Utc>) -> Result<Vec<u8>, FormatError> {
    let mtime = u64::try_from((modified.timestamp_millis() + 500).div_euclid(1000)).unwrap_or(0);
    let mut tar = Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let version_path = format!("{METADATA_DIR}/{VERSION_FILE}");
    append_file(&mut tar, &version_path, format!("{FORMAT_VERSION}\n").as_bytes(), mtime)?;
    for item in items {
        let body = serde_json::to_vec(&item.object).map_err(|source| FormatError::Json { what: "an item", source })?;
        append_file(&mut tar, &item_path(item, None)?, &body, mtime)?;
        let preferred = format!("{}{PREFERRED_VERSION_SUFFIX}", item.version);
        append_file(&mut tar, &item_path(item, Some(&preferred))?, &body, mtime)?;
    }
    let gz = tar.into_inner().map_err(tar_write_error)?;
    gz.finish().map_err(tar_write_error)
}

fn tar_write_error(e: std::io::Error) -> FormatError {
    FormatError::Write { what: "the backup tarball", reason: e.to_string() }
}

/// `resources/<gr>[/<version_dir>]/(namespaces/<ns>|cluster)/<name>.json`.
fn item_path(item: &BackupItem, version_dir: Option<&str>) -> Result<String, FormatError> {
    let mut parts = vec![RESOURCES_DIR, item.group_resource.as_str()];
    parts.extend(version_dir);
    match item.scope() {
        Some(ns) => parts.extend([NAMESPACES_DIR, ns]),
        None => parts.push(CLUSTER_DIR),
    }
    for part in &parts[1..] {
        check_name(part)?;
    }
    check_name(&item.name)?;
    Ok(format!("{}/{}.json", parts.join("/"), item.name))
}

/// The header Go's `archive/tar` writes for Velero's `tar.Header{Typeflag: TypeReg, Mode: 0755}`.
fn file_header(size: usize, mtime: u64) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(ENTRY_MODE);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size as u64);
    header.set_mtime(mtime);
    header
}

/// Appends one regular file. A path USTAR cannot hold (even split into prefix and name) goes in
/// a PAX record, as Go does, with the name field holding its first 100 bytes.
fn append_file<W: Write>(tar: &mut Builder<W>, path: &str, data: &[u8], mtime: u64) -> Result<(), FormatError> {
    let mut header = file_header(data.len(), mtime);
    if header.set_path(path).is_err() {
        tar.append_pax_extensions([("path", path.as_bytes())]).map_err(tar_write_error)?;
        header = file_header(data.len(), mtime);
        let name = &mut header.as_old_mut().name;
        let n = path.len().min(name.len());
        name[..n].copy_from_slice(&path.as_bytes()[..n]);
    }
    header.set_cksum();
    tar.append(&header, data).map_err(tar_write_error)
}

/// Reads a backup tarball into its items, each once, in archive order.
///
/// Like Velero's restore (`archive.Parser` over the extracted tarball), the catalogue of items is
/// the classic layout — `resources/<gr>/cluster/` and `resources/<gr>/namespaces/<ns>/` — which
/// every format version has; the `-preferredversion` copies only tell an item's version, and
/// non-preferred version directories (`--features=EnableAPIGroupVersions`) are ignored. An item's
/// version comes from its `-preferredversion` directory when there is one, else from the
/// object's `apiVersion`. Directory entries, links and unexpected files are skipped, as Velero
/// skips them; `./` prefixes (as `tar -C dir .` writes) are accepted.
///
/// `metadata/version` absent means format 1.0 (Velero before 0.11 wrote no version file; Velero
/// never reads the file when restoring, and reads the classic paths whatever the version), and
/// it is read the same way. `1` (what Velero 0.11–1.3 wrote) and `1.x.y` are accepted: Velero
/// promises that minor versions stay restorable. Any other version is refused.
pub fn read_tarball(bytes: &[u8]) -> Result<Vec<BackupItem>, FormatError> {
    let tar = gunzip_named(bytes, "the backup tarball")?;
    let mut contents = Contents::default();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().map_err(|e| FormatError::NotTar(e.to_string()))? {
        let mut entry = entry.map_err(|e| FormatError::NotTar(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| FormatError::NotTar(format!("reading `{path}`: {e}")))?;
        contents.add(&path, data)?;
    }
    contents.into_items()
}

/// Where a tar entry sits in Velero's layout.
#[derive(Debug, PartialEq)]
enum Place<'a> {
    /// `metadata/version`.
    Version,
    /// The classic path of an item.
    Classic { gr: &'a str, ns: Option<&'a str>, file: &'a str },
    /// An item's copy under a version directory (`v1-preferredversion`, or `v1beta1`).
    Versioned { gr: &'a str, dir: &'a str, ns: Option<&'a str>, file: &'a str },
    /// Anything else.
    Other,
}

/// The path's segments without empty and `.` ones; `..` is refused.
fn segments(path: &str) -> Result<Vec<&str>, FormatError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(FormatError::UnsafePath(path.to_string()));
    }
    Ok(parts)
}

fn place<'a>(parts: &[&'a str]) -> Place<'a> {
    match parts {
        [METADATA_DIR, VERSION_FILE] => Place::Version,
        [RESOURCES_DIR, gr, CLUSTER_DIR, file] => Place::Classic { gr, ns: None, file },
        [RESOURCES_DIR, gr, NAMESPACES_DIR, ns, file] => Place::Classic { gr, ns: Some(ns), file },
        [RESOURCES_DIR, gr, dir, CLUSTER_DIR, file] => Place::Versioned { gr, dir, ns: None, file },
        [RESOURCES_DIR, gr, dir, NAMESPACES_DIR, ns, file] => Place::Versioned { gr, dir, ns: Some(ns), file },
        _ => Place::Other,
    }
}

/// `(group_resource, namespace, name)`.
type ItemKey = (String, Option<String>, String);

fn item_key(gr: &str, ns: Option<&str>, name: &str) -> ItemKey {
    (gr.to_string(), ns.map(str::to_string), name.to_string())
}

/// What a tarball holds, gathered entry by entry.
#[derive(Default)]
struct Contents {
    version: Option<String>,
    /// Classic item files in archive order: key, entry path, bytes.
    items: Vec<(ItemKey, String, Vec<u8>)>,
    index: HashMap<ItemKey, usize>,
    /// The version of each item that has a `-preferredversion` copy.
    preferred: HashMap<ItemKey, String>,
}

impl Contents {
    fn add(&mut self, path: &str, data: Vec<u8>) -> Result<(), FormatError> {
        let parts = segments(path)?;
        match place(&parts) {
            Place::Version => self.version = Some(String::from_utf8_lossy(&data).into_owned()),
            Place::Classic { gr, ns, file } => {
                let Some(name) = file.strip_suffix(".json") else { return Ok(()) };
                let key = item_key(gr, ns, name);
                match self.index.get(&key) {
                    // Extraction would overwrite the earlier file: the later one wins.
                    Some(&i) => self.items[i] = (key, path.to_string(), data),
                    None => {
                        self.index.insert(key.clone(), self.items.len());
                        self.items.push((key, path.to_string(), data));
                    }
                }
            }
            Place::Versioned { gr, dir, ns, file } => {
                if let (Some(version), Some(name)) =
                    (dir.strip_suffix(PREFERRED_VERSION_SUFFIX), file.strip_suffix(".json"))
                {
                    self.preferred.insert(item_key(gr, ns, name), version.to_string());
                }
            }
            Place::Other => {}
        }
        Ok(())
    }

    fn into_items(self) -> Result<Vec<BackupItem>, FormatError> {
        if let Some(version) = &self.version {
            check_format_version(version)?;
        }
        let preferred = self.preferred;
        self.items.into_iter().map(|(key, path, data)| parse_item(key, &path, &data, &preferred)).collect()
    }
}

/// Accepts the format versions Velero's format 1 has had.
fn check_format_version(text: &str) -> Result<(), FormatError> {
    let version = text.trim();
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric && parts.len() <= 3 && parts[0] == "1" {
        Ok(())
    } else {
        Err(FormatError::UnsupportedVersion(version.to_string()))
    }
}

fn parse_item(
    key: ItemKey,
    path: &str,
    data: &[u8],
    preferred: &HashMap<ItemKey, String>,
) -> Result<BackupItem, FormatError> {
    let invalid = |reason: String| FormatError::Item { path: path.to_string(), reason };
    let object: Value = serde_json::from_slice(data).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if !object.is_object() {
        return Err(invalid("not a JSON object".to_string()));
    }
    let version = match preferred.get(&key) {
        Some(v) => v.clone(),
        None => version_of(&object)
            .ok_or_else(|| invalid("no apiVersion, and no `-preferredversion` copy to tell the version".to_string()))?,
    };
    let (group_resource, namespace, name) = key;
    Ok(BackupItem { group_resource, namespace, name, version, object })
}

/// The version part of an object's `apiVersion` (`apps/v1` → `v1`, `v1` → `v1`).
fn version_of(object: &Value) -> Option<String> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let version = api_version.rsplit('/').next()?;
    (!version.is_empty()).then(|| version.to_string())
}

// ---------------------------------------------------------------------------------------------
// The object-storage layout

/// The keys of Velero's files under a backup storage location's root (`<bucket>/<prefix>/`), as
/// `ObjectStoreLayout` names them. Keys are relative to the bucket; with the default (empty)
/// root they are relative to the location's prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The prefix with one trailing `/`, or empty.
    root: String,
}

impl Layout {
    /// The layout under `prefix` (leading and trailing slashes are ignored, as Velero trims them).
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        Self { root: if prefix.is_empty() { String::new() } else { format!("{prefix}/") } }
    }

    /// `backups/`: one directory per backup, as backup sync lists them.
    pub fn backups_dir(&self) -> String {
        format!("{}backups/", self.root)
    }

    /// `backups/<b>/`.
    pub fn backup_dir(&self, backup: &str) -> String {
        format!("{}{backup}/", self.backups_dir())
    }

    /// `backups/<b>/velero-backup.json`: the Backup object; its presence is what makes a backup exist.
    pub fn backup_metadata(&self, backup: &str) -> String {
        format!("{}{BACKUP_METADATA_FILE}", self.backup_dir(backup))
    }

    /// `backups/<b>/<b>.tar.gz`: the backed-up objects.
    pub fn backup_contents(&self, backup: &str) -> String {
        format!("{}{backup}.tar.gz", self.backup_dir(backup))
    }

    /// `backups/<b>/<b>-logs.gz`.
    pub fn backup_log(&self, backup: &str) -> String {
        format!("{}{backup}-logs.gz", self.backup_dir(backup))
    }

    /// `backups/<b>/<b>-results.gz`.
    pub fn backup_results(&self, backup: &str) -> String {
        format!("{}{backup}-results.gz", self.backup_dir(backup))
    }

    /// `backups/<b>/<b>-resource-list.json.gz`.
    pub fn backup_resource_list(&self, backup: &str) -> String {
        format!("{}{backup}-resource-list.json.gz", self.backup_dir(backup))
    }

    /// `restores/<r>/`.
    pub fn restore_dir(&self, restore: &str) -> String {
        format!("{}restores/{restore}/", self.root)
    }

    /// `restores/<r>/restore-<r>-logs.gz`.
    pub fn restore_log(&self, restore: &str) -> String {
        format!("{}restore-{restore}-logs.gz", self.restore_dir(restore))
    }

    /// `restores/<r>/restore-<r>-results.gz`.
    pub fn restore_results(&self, restore: &str) -> String {
        format!("{}restore-{restore}-results.gz", self.restore_dir(restore))
    }

    /// `restores/<r>/restore-<r>-resource-list.json.gz`.
    pub fn restore_resource_list(&self, restore: &str) -> String {
        format!("{}restore-{restore}-resource-list.json.gz", self.restore_dir(restore))
    }
}

fn store_error(loc: &Location, op: &'static str, key: &Key) -> impl Fn(object_store::Error) -> FormatError + use<> {
    let (key, url) = (key.to_string(), loc.url.clone());
    move |source| FormatError::Store { op, key: key.clone(), url: url.clone(), source: Box::new(source) }
}

async fn put(loc: &Location, key: &Key, body: Vec<u8>) -> Result<(), object_store::Error> {
    loc.store.put(key, PutPayload::from(body)).await.map(|_| ())
}

/// The object at `key`, or `None` when there is none.
async fn get(loc: &Location, key: &Key) -> Result<Option<Vec<u8>>, FormatError> {
    let fail = store_error(loc, "read", key);
    match loc.store.get(key).await {
        Ok(result) => Ok(Some(result.bytes().await.map_err(fail)?.to_vec())),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(fail(e)),
    }
}

/// Deletes `keys` (a missing one is not an error); returns what could not be deleted.
async fn remove(loc: &Location, keys: &[&Key]) -> Vec<String> {
    let mut failures = Vec::new();
    for key in keys {
        match loc.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => failures.push(format!("{key}: {e}")),
        }
    }
    failures
}

/// Undoes a partial upload after `key` failed, as Velero's `PutBackup` does.
async fn fail_upload(loc: &Location, key: &Key, source: object_store::Error, written: &[&Key]) -> FormatError {
    let failures = remove(loc, written).await;
    if failures.is_empty() {
        FormatError::Store { op: "put", key: key.to_string(), url: loc.url.clone(), source: Box::new(source) }
    } else {
        FormatError::Cleanup {
            key: key.to_string(),
            url: loc.url.clone(),
            cleanup: failures.join("; "),
            source: Box::new(source),
        }
    }
}

/// The Backup as Velero stores it in `velero-backup.json`: pretty JSON (the Kubernetes
/// serializer's pretty form), with `apiVersion` and `kind` set as a typed encoder sets them.
fn backup_metadata_body(backup: &Value) -> Result<Vec<u8>, FormatError> {
    let mut backup = backup.clone();
    if let Some(fields) = backup.as_object_mut() {
        fields.entry("apiVersion").or_insert_with(|| "velero.io/v1".into());
        fields.entry("kind").or_insert_with(|| "Backup".into());
    }
    serde_json::to_vec_pretty(&backup).map_err(|source| FormatError::Json { what: "the Backup", source })
}

/// Uploads a finished backup in Velero's order (`PutBackup`): the log first, best-effort (a
/// failure is only logged); then `velero-backup.json`, whose failure stops everything; then the
/// tarball, whose failure removes the metadata; then results and resource list, whose failure
/// removes tarball and metadata. A backup is thus either complete or absent to backup sync.
pub async fn upload_backup(
    loc: &Location,
    backup: &Value,
    tarball: &[u8],
    log: &str,
    results: &Value,
    resource_list: &Value,
) -> Result<(), FormatError> {
    let name = backup.pointer("/metadata/name").and_then(Value::as_str).ok_or(FormatError::Unnamed)?;
    check_name(name)?;
    let layout = Layout::default();
    let metadata_key = loc.key(&layout.backup_metadata(name));
    let contents_key = loc.key(&layout.backup_contents(name));
    let metadata = backup_metadata_body(backup)?;
    let rest = [
        (loc.key(&layout.backup_results(name)), gzip_json(results, "the backup results")?),
        (loc.key(&layout.backup_resource_list(name)), gzip_json(resource_list, "the backup resource list")?),
    ];

    let log_key = loc.key(&layout.backup_log(name));
    if let Err(e) = put(loc, &log_key, gzip(log.as_bytes())?).await {
        tracing::warn!(backup = name, key = %log_key, error = %e, "cannot upload the backup log; going on without it");
    }
    put(loc, &metadata_key, metadata).await.map_err(store_error(loc, "put", &metadata_key))?;
    if let Err(e) = put(loc, &contents_key, tarball.to_vec()).await {
        return Err(fail_upload(loc, &contents_key, e, &[&metadata_key]).await);
    }
    for (key, body) in rest {
        if let Err(e) = put(loc, &key, body).await {
            return Err(fail_upload(loc, &key, e, &[&contents_key, &metadata_key]).await);
        }
    }
    Ok(())
}

/// Reads backup `name`: its `velero-backup.json` and the items of its tarball.
pub async fn download_backup(loc: &Location, name: &str) -> Result<(Value, Vec<BackupItem>), FormatError> {
    check_name(name)?;
    let layout = Layout::default();
    let metadata_key = loc.key(&layout.backup_metadata(name));
    let not_found = || FormatError::BackupNotFound { name: name.to_string(), url: loc.url.clone() };
    let metadata = get(loc, &metadata_key).await?.ok_or_else(not_found)?;
    let backup = parse_backup_metadata(&metadata).map_err(|reason| FormatError::Metadata {
        key: metadata_key.to_string(),
        url: loc.url.clone(),
        reason,
    })?;
    let contents_key = loc.key(&layout.backup_contents(name));
    let missing = || FormatError::ContentsNotFound { name: name.to_string(), url: loc.url.clone() };
    let tarball = get(loc, &contents_key).await?.ok_or_else(missing)?;
    Ok((backup, read_tarball(&tarball)?))
}

/// Parses `velero-backup.json`, which Velero decodes as a `velero.io/v1` Backup or refuses.
fn parse_backup_metadata(data: &[u8]) -> Result<Value, String> {
    let backup: Value = serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| backup.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    if field("kind") != "Backup" || field("apiVersion") != "velero.io/v1" {
        return Err(format!(
            "apiVersion `{}` and kind `{}` where velero.io/v1 and Backup were expected",
            field("apiVersion"),
            field("kind")
        ));
    }
    Ok(backup)
}

/// The backups in a location: the directory names under `backups/`, as Velero's backup sync
/// lists them (`ListCommonPrefixes` with delimiter `/`), sorted. A directory without
/// `velero-backup.json` is listed too; sync skips it when it cannot read the metadata.
pub async fn list_backups(loc: &Location) -> Result<Vec<String>, FormatError> {
    let dir = loc.key(&Layout::default().backups_dir());
    let listing = loc.store.list_with_delimiter(Some(&dir)).await.map_err(store_error(loc, "list", &dir))?;
    let mut names: Vec<String> =
        listing.common_prefixes.iter().filter_map(|p| p.filename()).map(str::to_string).collect();
    names.sort();
    Ok(names)
}

/// Uploads what a finished restore leaves in the location: its log, results and restored
/// resource list, in Velero's order. Each is attempted even when an earlier one failed (Velero
/// treats them all as best-effort); the first failure is returned.
pub async fn upload_restore_results(
    loc: &Location,
    restore_name: &str,
    log: &str,
    results: &Value,
    resource_list: &Value,
) -> Result<(), FormatError> {
    check_name(restore_name)?;
    let layout = Layout::default();
    let files = [
        (layout.restore_log(restore_name), gzip(log.as_bytes())?),
        (layout.restore_results(restore_name), gzip_json(results, "the restore results")?),
        (layout.restore_resource_list(restore_name), gzip_json(resource_list, "the restored resource list")?),
    ];
    let mut first_failure = None;
    for (name, body) in files {
        let key = loc.key(&name);
        if let Err(e) = put(loc, &key, body).await {
            first_failure.get_or_insert_with(|| store_error(loc, "put", &key)(e));
        }
    }
    first_failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fmt;
    use std::sync::Arc;

    use futures::TryStreamExt;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions, PutOptions,
        PutResult,
    };
    use serde_json::json;

    use super::*;
    use crate::store::{Profile, open};

    fn item(gr: &str, ns: Option<&str>, name: &str, api_version: &str, kind: &str) -> BackupItem {
        let mut metadata = json!({ "name": name, "uid": format!("uid-{name}") });
        if let Some(ns) = ns {
            metadata["namespace"] = json!(ns);
        }
        BackupItem {
            group_resource: gr.to_string(),
            namespace: ns.map(str::to_string),
            name: name.to_string(),
            version: api_version.rsplit('/').next().unwrap_or_default().to_string(),
            object: json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata, "status": {} }),
        }
    }

    fn sample() -> Vec<BackupItem> {
        vec![
            item("namespaces", None, "shop", "v1", "Namespace"),
            item("pods", Some("shop"), "web-0", "v1", "Pod"),
            item("deployments.apps", Some("shop"), "web", "apps/v1", "Deployment"),
            item("persistentvolumes", None, "pv-1", "v1", "PersistentVolume"),
            item("certificates.cert-manager.io", Some("shop"), "tls", "cert-manager.io/v1", "Certificate"),
        ]
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T10:00:00.700Z").unwrap().with_timezone(&Utc)
    }

    /// Every entry of a gzip'd tar: path, type, mode, mtime, content.
    fn entries(tarball: &[u8]) -> Vec<(String, EntryType, u32, u64, Vec<u8>)> {
        let tar = gunzip(tarball).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((path, header.entry_type(), header.mode().unwrap(), header.mtime().unwrap(), data));
        }
        out
    }

    /// A tarball built by hand, as `tar czf` over a directory would build it.
    fn hand_made(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut dir = Header::new_gnu();
        dir.set_entry_type(EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        tar.append_data(&mut dir, "./resources/", std::io::empty()).unwrap();
        for (path, data) in files {
            let mut header = Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, path, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn memory(test: &str) -> Location {
        open(&format!("memory://format-{test}-{}/velero/cluster-a", uuid::Uuid::new_v4()), Profile::Bulk).unwrap()
    }

    /// Every key under the location's prefix, relative to it.
    async fn keys(loc: &Location) -> BTreeSet<String> {
        let objects: Vec<ObjectMeta> = loc.store.list(Some(&loc.prefix)).try_collect().await.unwrap();
        objects.iter().map(|o| loc.relative(&o.location)).collect()
    }

    async fn read_json_gz(loc: &Location, key: &str) -> Value {
        let bytes = loc.store.get(&loc.key(key)).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&gunzip(&bytes).unwrap()).unwrap()
    }

    fn backup_cr(name: &str) -> Value {
        json!({
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": { "name": name, "namespace": "velero" },
            "spec": { "includedNamespaces": ["shop"], "ttl": "720h0m0s" },
            "status": { "phase": "Completed", "formatVersion": FORMAT_VERSION, "version": 1 },
        })
    }

    #[test]
    fn items_round_trip_namespaced_and_cluster_scoped_core_and_grouped() {
        let items = sample();
        let read = read_tarball(&write_tarball(&items).unwrap()).unwrap();
        assert_eq!(read, items);
    }

    #[test]
    fn tarball_entries_are_exactly_velero_s() {
        let items = vec![
            item("pods", Some("shop"), "web-0", "v1", "Pod"),
            item("deployments.apps", Some("shop"), "web", "apps/v1", "Deployment"),
            item("persistentvolumes", None, "pv-1", "v1", "PersistentVolume"),
        ];
        let listed = entries(&write_tarball_at(&items, at()).unwrap());
        let paths: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata/version",
                "resources/pods/namespaces/shop/web-0.json",
                "resources/pods/v1-preferredversion/namespaces/shop/web-0.json",
                "resources/deployments.apps/namespaces/shop/web.json",
                "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json",
                "resources/persistentvolumes/cluster/pv-1.json",
                "resources/persistentvolumes/v1-preferredversion/cluster/pv-1.json",
            ]
        );
        assert_eq!(listed[0].4, b"1.1.0\n");
        let rounded = u64::try_from(at().timestamp()).unwrap() + 1;
        for (path, kind, mode, mtime, _) in &listed {
            assert_eq!((*kind, *mode, *mtime), (EntryType::Regular, 0o755, rounded), "{path}");
        }
        let web: Value = serde_json::from_slice(&listed[3].4).unwrap();
        assert_eq!(web, items[1].object, "the object's full JSON");
        assert_eq!(listed[3].4, listed[4].4, "the preferred-version copy is the same bytes");
    }

    #[test]
    fn entries_are_ustar_and_long_paths_use_pax_like_go() {
        let long = "a".repeat(120);
        let items = vec![item("configmaps", Some("shop"), &long, "v1", "ConfigMap")];
        let tarball = write_tarball_at(&items, at()).unwrap();
        let tar = gunzip(&tarball).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let raw: Vec<EntryType> =
            archive.entries().unwrap().raw(true).map(|e| e.unwrap().header().entry_type()).collect();
        assert_eq!(raw.iter().filter(|t| **t == EntryType::XHeader).count(), 2, "one PAX record per long path");
        let tar = tar::Archive::new(tar.as_slice()).entries().unwrap().next().unwrap().unwrap().header().clone();
        assert!(tar.as_ustar().is_some(), "USTAR headers, as Go writes");
        let listed = entries(&tarball);
        assert_eq!(listed[1].0, format!("resources/configmaps/namespaces/shop/{long}.json"));
        assert_eq!(read_tarball(&tarball).unwrap(), items);
    }

    #[test]
    fn hand_made_tarball_in_velero_s_layout_without_preferred_copies_reads_back() {
        let deployment = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web", "namespace": "shop" } });
        let namespace = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "shop" } });
        let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "web-0", "namespace": "shop" } });
        let (d, n, p) = (deployment.to_string(), namespace.to_string(), pod.to_string());
        let tarball = hand_made(&[
            ("./resources/namespaces/cluster/shop.json", n.as_bytes()),
            ("./resources/deployments.apps/namespaces/shop/web.json", d.as_bytes()),
            ("./resources/pods/namespaces/shop/web-0.json", p.as_bytes()),
            ("./resources/pods/namespaces/shop/notes.txt", b"not an item"),
        ]);
        let read = read_tarball(&tarball).unwrap();
        let summary: Vec<(&str, Option<&str>, &str, &str)> = read
            .iter()
            .map(|i| (i.group_resource.as_str(), i.namespace.as_deref(), i.name.as_str(), i.version.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("namespaces", None, "shop", "v1"),
                ("deployments.apps", Some("shop"), "web", "v1"),
                ("pods", Some("shop"), "web-0", "v1"),
            ]
        );
        assert_eq!(read[1].object, deployment);
    }

    #[test]
    fn the_preferred_version_directory_names_the_version_and_other_versions_are_ignored() {
        let hpa =
            json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": { "name": "web" } });
        let body = hpa.to_string();
        let tarball = hand_made(&[
            ("metadata/version", b"1.1.0\n"),
            ("resources/horizontalpodautoscalers.autoscaling/namespaces/shop/web.json", body.as_bytes()),
            (
                "resources/horizontalpodautoscalers.autoscaling/v2-preferredversion/namespaces/shop/web.json",
                body.as_bytes(),
            ),
            (
                "resources/horizontalpodautoscalers.autoscaling/v1/namespaces/shop/web.json",
                b"{\"apiVersion\":\"autoscaling/v1\"}",
            ),
            ("resources/pods/v1-preferredversion/namespaces/shop/orphan.json", b"{}"),
        ]);
        let read = read_tarball(&tarball).unwrap();
        assert_eq!(read.len(), 1, "each object once; only the classic layout is the catalogue, as in Velero");
        assert_eq!((read[0].version.as_str(), &read[0].object), ("v2", &hpa));
    }

    #[test]
    fn older_version_files_are_read_and_unknown_ones_refused() {
        let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}"#;
        for version in ["1\n", "1.0.0\n", "1.1.0\n", "1.2.0"] {
            let tarball =
                hand_made(&[("metadata/version", version.as_bytes()), ("resources/pods/namespaces/x/a.json", pod)]);
            assert_eq!(read_tarball(&tarball).unwrap().len(), 1, "version {version:?}");
        }
        for version in ["2.0.0\n", "banana", "1.x", ""] {
            let tarball =
                hand_made(&[("metadata/version", version.as_bytes()), ("resources/pods/namespaces/x/a.json", pod)]);
            let err = read_tarball(&tarball).unwrap_err();
            assert!(matches!(&err, FormatError::UnsupportedVersion(v) if v == version.trim()), "{version:?}: {err}");
        }
    }

    #[test]
    fn what_is_not_a_gzip_d_tar_is_refused() {
        assert!(matches!(read_tarball(b"resources/pods"), Err(FormatError::NotGzip { .. })));
        assert!(matches!(read_tarball(&[0x1f, 0x8b, 0, 1, 2]), Err(FormatError::Gzip { .. })));
        let garbage = gzip(&[b'x'; 2000]).unwrap();
        assert!(matches!(read_tarball(&garbage), Err(FormatError::NotTar(_))));
        let short = gzip(b"{\"not\":\"a tar\"}").unwrap();
        assert!(matches!(read_tarball(&short), Err(FormatError::NotTar(_))));
    }

    #[test]
    fn broken_items_and_escaping_paths_are_refused() {
        let tarball = hand_made(&[("resources/pods/namespaces/x/a.json", b"not json")]);
        assert!(matches!(read_tarball(&tarball), Err(FormatError::Item { path, .. }) if path.ends_with("a.json")));
        let tarball = hand_made(&[("resources/pods/namespaces/x/a.json", b"{\"kind\":\"Pod\"}")]);
        assert!(matches!(read_tarball(&tarball), Err(FormatError::Item { .. })), "no version anywhere");
        let mut invalid = item("pods", Some("x"), "a/b", "v1", "Pod");
        assert!(matches!(write_tarball(&[invalid.clone()]), Err(FormatError::InvalidName(n)) if n == "a/b"));
        invalid.name = "..".to_string();
        assert!(matches!(write_tarball(&[invalid]), Err(FormatError::InvalidName(_))));
        assert!(matches!(segments("resources/../../etc/passwd"), Err(FormatError::UnsafePath(_))));
    }

    #[test]
    fn resource_list_and_results_are_velero_s_documents() {
        let list = resource_list(&sample());
        assert_eq!(
            list,
            json!({
                "apps/v1/Deployment": ["shop/web"],
                "cert-manager.io/v1/Certificate": ["shop/tls"],
                "v1/Namespace": ["shop"],
                "v1/PersistentVolume": ["pv-1"],
                "v1/Pod": ["shop/web-0"],
            })
        );
        let errors = Results {
            velero: vec!["error getting backup".into()],
            namespaces: BTreeMap::from([("shop".into(), vec!["a".into(), "b".into()])]),
            ..Results::default()
        };
        let doc = results(&errors, &Results::default());
        assert_eq!(
            doc,
            json!({ "errors": { "velero": ["error getting backup"], "namespaces": { "shop": ["a", "b"] } }, "warnings": {} })
        );
        assert_eq!((errors.count(), Results::default().count()), (3, 0));
        let back: Results = serde_json::from_value(doc["errors"].clone()).unwrap();
        assert_eq!(back, errors);
    }

    #[test]
    fn gzip_round_trips() {
        let data = b"time=2026-05-01 level=info msg=\"Starting backup\"\n".repeat(50);
        assert_eq!(gunzip(&gzip(&data).unwrap()).unwrap(), data);
        assert!(matches!(gunzip(b"plain"), Err(FormatError::NotGzip { .. })));
    }

    #[test]
    fn layout_keys_are_object_store_layout_s() {
        let l = Layout::new("/velero/cluster-a/");
        assert_eq!(l.backups_dir(), "velero/cluster-a/backups/");
        assert_eq!(l.backup_metadata("b1"), "velero/cluster-a/backups/b1/velero-backup.json");
        assert_eq!(l.backup_contents("b1"), "velero/cluster-a/backups/b1/b1.tar.gz");
        assert_eq!(l.backup_log("b1"), "velero/cluster-a/backups/b1/b1-logs.gz");
        assert_eq!(l.backup_results("b1"), "velero/cluster-a/backups/b1/b1-results.gz");
        assert_eq!(l.backup_resource_list("b1"), "velero/cluster-a/backups/b1/b1-resource-list.json.gz");
        assert_eq!(l.restore_log("r1"), "velero/cluster-a/restores/r1/restore-r1-logs.gz");
        assert_eq!(l.restore_results("r1"), "velero/cluster-a/restores/r1/restore-r1-results.gz");
        assert_eq!(l.restore_resource_list("r1"), "velero/cluster-a/restores/r1/restore-r1-resource-list.json.gz");
        assert_eq!(Layout::new("").backup_contents("b1"), "backups/b1/b1.tar.gz");
    }

    #[tokio::test]
    async fn upload_then_download_through_a_store() {
        let loc = memory("roundtrip");
        let items = sample();
        let tarball = write_tarball(&items).unwrap();
        let res = results(&Results::default(), &Results { cluster: vec!["w".into()], ..Results::default() });
        let list = resource_list(&items);
        upload_backup(&loc, &backup_cr("b1"), &tarball, "level=info msg=done\n", &res, &list).await.unwrap();
        assert_eq!(
            keys(&loc).await,
            BTreeSet::from(
                [
                    "backups/b1/velero-backup.json",
                    "backups/b1/b1.tar.gz",
                    "backups/b1/b1-logs.gz",
                    "backups/b1/b1-results.gz",
                    "backups/b1/b1-resource-list.json.gz",
                ]
                .map(String::from)
            )
        );
        let (backup, read) = download_backup(&loc, "b1").await.unwrap();
        assert_eq!((backup, read), (backup_cr("b1"), items));
        assert_eq!(read_json_gz(&loc, "backups/b1/b1-results.gz").await, res);
        assert_eq!(read_json_gz(&loc, "backups/b1/b1-resource-list.json.gz").await, list);
        let log = loc.store.get(&loc.key("backups/b1/b1-logs.gz")).await.unwrap().bytes().await.unwrap();
        assert_eq!(gunzip(&log).unwrap(), b"level=info msg=done\n");
    }

    #[tokio::test]
    async fn a_missing_backup_is_its_own_error() {
        let loc = memory("missing");
        assert!(
            matches!(download_backup(&loc, "nope").await, Err(FormatError::BackupNotFound { name, .. }) if name == "nope")
        );
        let metadata = serde_json::to_vec(&backup_cr("half")).unwrap();
        loc.store.put(&loc.key("backups/half/velero-backup.json"), metadata.into()).await.unwrap();
        assert!(matches!(download_backup(&loc, "half").await, Err(FormatError::ContentsNotFound { .. })));
        loc.store
            .put(&loc.key("backups/odd/velero-backup.json"), b"{\"kind\":\"Restore\"}".to_vec().into())
            .await
            .unwrap();
        assert!(matches!(download_backup(&loc, "odd").await, Err(FormatError::Metadata { .. })));
    }

    #[tokio::test]
    async fn list_backups_lists_the_directories_under_backups() {
        let loc = memory("list");
        assert!(list_backups(&loc).await.unwrap().is_empty());
        let tarball = write_tarball(&sample()).unwrap();
        let (res, list) = (results(&Results::default(), &Results::default()), json!({}));
        for name in ["nightly-20260501020000", "adhoc"] {
            upload_backup(&loc, &backup_cr(name), &tarball, "", &res, &list).await.unwrap();
        }
        upload_restore_results(&loc, "r1", "", &res, &list).await.unwrap();
        assert_eq!(list_backups(&loc).await.unwrap(), ["adhoc", "nightly-20260501020000"]);
    }

    #[tokio::test]
    async fn restore_results_land_under_restores() {
        let loc = memory("restore");
        let res = results(&Results { velero: vec!["e".into()], ..Results::default() }, &Results::default());
        let list = json!({ "v1/Pod": ["shop/web-0"] });
        upload_restore_results(&loc, "r1", "restored\n", &res, &list).await.unwrap();
        assert_eq!(
            keys(&loc).await,
            BTreeSet::from(
                [
                    "restores/r1/restore-r1-logs.gz",
                    "restores/r1/restore-r1-results.gz",
                    "restores/r1/restore-r1-resource-list.json.gz"
                ]
                .map(String::from)
            )
        );
        assert_eq!(read_json_gz(&loc, "restores/r1/restore-r1-resource-list.json.gz").await, list);
        assert_eq!(read_json_gz(&loc, "restores/r1/restore-r1-results.gz").await["errors"]["velero"], json!(["e"]));
    }

    /// An in-memory store that refuses to store keys ending in `suffix`.
    #[derive(Debug)]
    struct Refusing {
        inner: InMemory,
        suffix: &'static str,
    }

    impl fmt::Display for Refusing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Refusing({})", self.suffix)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Refusing {
        async fn put_opts(&self, key: &Key, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
            if key.as_ref().ends_with(self.suffix) {
                return Err(object_store::Error::Generic { store: "Refusing", source: "refused".into() });
            }
            self.inner.put_opts(key, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            key: &Key,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(key, opts).await
        }
        async fn get_opts(&self, key: &Key, options: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(key, options).await
        }
        fn delete_stream(
            &self,
            keys: BoxStream<'static, object_store::Result<Key>>,
        ) -> BoxStream<'static, object_store::Result<Key>> {
            self.inner.delete_stream(keys)
        }
        fn list(&self, prefix: Option<&Key>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Key>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Key, to: &Key, options: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn refusing(suffix: &'static str) -> Location {
        let store = Arc::new(Refusing { inner: InMemory::new(), suffix });
        Location { store, prefix: Key::from("bsl"), url: "memory://refusing/bsl".into(), local_dir: None }
    }

    #[tokio::test]
    async fn a_failed_upload_leaves_no_backup_behind_as_in_velero() {
        let tarball = write_tarball(&sample()).unwrap();
        let (res, list) = (results(&Results::default(), &Results::default()), json!({}));

        let loc = refusing(".tar.gz");
        let err = upload_backup(&loc, &backup_cr("b1"), &tarball, "log", &res, &list).await.unwrap_err();
        assert!(matches!(&err, FormatError::Store { op: "put", key, .. } if key.ends_with("b1.tar.gz")), "{err}");
        assert_eq!(keys(&loc).await, BTreeSet::from(["backups/b1/b1-logs.gz".to_string()]), "the metadata is removed");

        let loc = refusing("-results.gz");
        assert!(upload_backup(&loc, &backup_cr("b1"), &tarball, "log", &res, &list).await.is_err());
        assert_eq!(keys(&loc).await, BTreeSet::from(["backups/b1/b1-logs.gz".to_string()]), "tarball and metadata go");

        let loc = refusing("velero-backup.json");
        assert!(upload_backup(&loc, &backup_cr("b1"), &tarball, "log", &res, &list).await.is_err());
        assert_eq!(keys(&loc).await.len(), 1, "nothing after the metadata is uploaded");

        let loc = refusing("-logs.gz");
        upload_backup(&loc, &backup_cr("b1"), &tarball, "log", &res, &list).await.unwrap();
        assert_eq!(keys(&loc).await.len(), 4, "the log is best-effort");

        let loc = refusing("-results.gz");
        let err = upload_restore_results(&loc, "r1", "log", &res, &list).await.unwrap_err();
        assert!(matches!(err, FormatError::Store { .. }));
        assert_eq!(keys(&loc).await.len(), 2, "the others are still uploaded");
    }

    #[tokio::test]
    async fn an_unnamed_backup_is_refused() {
        let loc = memory("unnamed");
        let err = upload_backup(&loc, &json!({ "kind": "Backup" }), b"", "", &json!({}), &json!({})).await;
        assert!(matches!(err, Err(FormatError::Unnamed)));
    }
}
