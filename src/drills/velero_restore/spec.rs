//! The `veleroRestore` block of a drill file, and its validation.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::selection::{Choice, Selection};
use super::storage::Credentials;
use crate::probes;
use crate::spec::raw::DurationText;
use crate::spec::{Loc, Validator};

/// Restore a Velero backup of a namespace into a scratch namespace, wait until its workloads are
/// available, verify it with probes, measure RTO and RPO (from a restored canary, else from the
/// backup's start time), and delete everything it created.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "VeleroRestore")]
pub struct Spec {
    /// The namespace the backup was taken of; it is restored under another name, never over itself.
    pub namespace: Loc<String>,
    /// The namespace Velero runs in, where its Backups live and the Restore is created (`velero`).
    #[serde(default)]
    pub velero_namespace: Option<Loc<String>>,
    /// Restore this Backup. Without `backupName` and `schedule`: the newest `Completed` backup of
    /// `namespace` (within `window`).
    #[serde(default)]
    pub backup_name: Option<Loc<String>>,
    /// Restore the newest `Completed` backup of this Velero Schedule.
    #[serde(default)]
    pub schedule: Option<Loc<String>>,
    /// Only backups started within this long before the run (e.g. `7d`); any age when unset.
    #[serde(default)]
    pub window: Option<Loc<DurationText>>,
    /// Which backup of the window: `latest` (default) or `random`, so that older backups get
    /// tested too.
    #[serde(default)]
    pub selection: Option<Selection>,
    /// Accept a `PartiallyFailed` backup, and a restore that ends `PartiallyFailed` (reported as
    /// a warning with Velero's counts). Off by default: either fails the drill.
    #[serde(default)]
    pub allow_partially_failed: bool,
    /// The scratch namespace's name; by default `fd-<drill name>-<run id tail>`. It must not
    /// exist unless firedrill created it for this run.
    #[serde(default)]
    pub scratch_namespace: Option<Loc<String>>,
    /// The scratch namespace's ResourceQuota `hard` limits (`pods: "50"`, `requests.cpu: "8"`);
    /// `pods: "100"` by default.
    #[serde(default)]
    pub quota: Option<Loc<BTreeMap<String, String>>>,
    /// How long Velero may take to finish the restore (`30m` by default).
    #[serde(default)]
    pub restore_timeout: Option<Loc<DurationText>>,
    /// How long the restored Deployments and StatefulSets may take to become available and
    /// the PersistentVolumeClaims to be Bound (`10m` by default).
    #[serde(default)]
    pub ready_timeout: Option<Loc<DurationText>>,
    /// How long cleanup waits for the scratch namespace to be gone (`2m` by default).
    #[serde(default)]
    pub delete_timeout: Option<Loc<DurationText>>,
    /// Before restoring, read the backup's files where its BackupStorageLocation points and check
    /// them: `velero-backup.json` and the tarball exist, the metadata agrees with the Backup
    /// object, and the tarball holds objects of `namespace`. Off when unset.
    #[serde(default)]
    pub check_storage: Option<Loc<CheckStorageSpec>>,
    /// Checks of the restored application, run after its workloads are available. `kubernetes`
    /// probes look in the scratch namespace and `job` probes run there; `$(SCRATCH_NAMESPACE)` in
    /// a URL, address, query or command is replaced by its name.
    #[serde(default)]
    pub probes: Vec<Loc<probes::Spec>>,
}

/// How to read the backup's files (`checkStorage: {}` for the defaults).
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "VeleroCheckStorage")]
pub struct CheckStorageSpec {
    /// `location` (default): the credentials file in the Secret the BackupStorageLocation names
    /// (firedrill needs `get` on it), else the environment; `environment`: only firedrill's own
    /// `AWS_*` environment or workload identity, never the Secret.
    #[serde(default)]
    pub credentials: Option<Credentials>,
}

/// The validated parameters of a `velero-restore` drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub cluster: crate::cluster::Target,
    /// The drill's name, for the scratch namespace's.
    pub drill: String,
    pub namespace: String,
    pub velero_namespace: String,
    pub choice: Choice,
    pub allow_partially_failed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_namespace: Option<String>,
    pub quota: BTreeMap<String, String>,
    /// Check the backup's files in object storage before restoring, reading them with these
    /// credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_storage: Option<Credentials>,
    /// The drill's RPO target: a backup older than this fails the drill before anything is restored.
    #[serde(skip_serializing_if = "Option::is_none", with = "crate::measure::opt_ms")]
    pub rpo_target: Option<Duration>,
    #[serde(with = "crate::measure::ms")]
    pub restore_timeout: Duration,
    #[serde(with = "crate::measure::ms")]
    pub ready_timeout: Duration,
    #[serde(with = "crate::measure::ms")]
    pub delete_timeout: Duration,
    pub probes: Vec<probes::Probe>,
}

/// Whether `name` is a valid namespace name (a DNS-1123 label).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn namespace(v: &mut Validator, text: &Loc<String>, what: &str) -> Option<String> {
    let name = v.non_empty(text, what)?;
    if !is_dns_label(&name) {
        v.error(
            text.at(),
            format!("`{name}` is not a namespace name: 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
        );
        return None;
    }
    Some(name)
}

fn duration_or(v: &mut Validator, text: &Option<Loc<DurationText>>, what: &str, default: Duration) -> Duration {
    text.as_ref().and_then(|t| v.duration(t, what)).unwrap_or(default)
}

fn choice(v: &mut Validator, spec: &Loc<Spec>) -> Option<Choice> {
    let s = &spec.value;
    let window = s.window.as_ref().and_then(|w| v.duration(w, "window"));
    match (&s.backup_name, &s.schedule) {
        (Some(_), Some(sc)) => {
            v.error(sc.at(), "name the backup either by `backupName` or by `schedule`, not both: remove one");
            None
        }
        (Some(_), None) | (None, Some(_)) if s.window.is_some() || s.selection.is_some() => {
            let at = s.window.as_ref().map(Loc::at).unwrap_or(spec.at());
            v.error(
                at,
                "`window` and `selection` choose among a namespace's backups: with `backupName` or `schedule` remove them",
            );
            None
        }
        (Some(b), None) => Some(Choice::Named(v.non_empty(b, "backupName")?)),
        (None, Some(sc)) => Some(Choice::Schedule(v.non_empty(sc, "schedule")?)),
        (None, None) => Some(Choice::Latest { window, selection: s.selection.unwrap_or_default() }),
    }
}

/// Validates the `veleroRestore` block. `drill` is the drill's name; `rpo_target` its
/// `targets.rpo` (already checked with the targets).
pub fn validate(
    v: &mut Validator,
    spec: &Loc<Spec>,
    cluster: crate::cluster::Target,
    drill: &str,
    rpo_target: Option<Duration>,
) -> Option<Params> {
    let s = &spec.value;
    let ns = namespace(v, &s.namespace, "namespace");
    let velero_namespace = match &s.velero_namespace {
        Some(n) => namespace(v, n, "veleroNamespace"),
        None => Some("velero".to_string()),
    };
    let scratch_namespace = match &s.scratch_namespace {
        Some(n) => {
            let name = namespace(v, n, "scratchNamespace");
            if name.is_some() && name == ns {
                v.error(
                    n.at(),
                    "the scratch namespace must differ from `namespace`: a drill never restores over the source",
                );
            }
            name
        }
        None => None,
    };
    let quota = match &s.quota {
        Some(q) if q.value.is_empty() => {
            v.error(q.at(), "an empty quota limits nothing: name limits such as `pods: \"50\"`, or remove `quota`");
            None
        }
        Some(q) => Some(q.value.clone()),
        None => Some(BTreeMap::from([("pods".to_string(), "100".to_string())])),
    };
    let choice = choice(v, spec);
    let probes: Vec<probes::Probe> = s.probes.iter().filter_map(|p| probes::validate_in(v, p, true)).collect();
    Some(Params {
        cluster,
        drill: drill.to_string(),
        namespace: ns?,
        velero_namespace: velero_namespace?,
        choice: choice?,
        allow_partially_failed: s.allow_partially_failed,
        scratch_namespace,
        quota: quota?,
        check_storage: s.check_storage.as_ref().map(|c| c.value.credentials.unwrap_or_default()),
        rpo_target,
        restore_timeout: duration_or(v, &s.restore_timeout, "restoreTimeout", Duration::from_secs(1800)),
        ready_timeout: duration_or(v, &s.ready_timeout, "readyTimeout", Duration::from_secs(600)),
        delete_timeout: duration_or(v, &s.delete_timeout, "deleteTimeout", Duration::from_secs(120)),
        probes,
    })
}
