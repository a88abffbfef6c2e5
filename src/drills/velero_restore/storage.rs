//! Checking a backup against its files in object storage, before restoring it (`checkStorage`):
//! `velero-backup.json` and the tarball exist where the BackupStorageLocation points, the
//! metadata agrees with the Backup object the cluster shows, and the tarball holds objects of
//! the source namespace. A Backup object can outlive its files (a bucket lifecycle rule, a
//! deleted prefix, another cluster's sync): the restore would then fail late, or restore nothing.
//!
//! The location is opened as Velero's AWS plugin opens it ([`crate::velero::location`]), with the
//! credentials file from the Secret the location names (`credentials: location`) or firedrill's
//! own `AWS_*` environment or workload identity (`credentials: environment`). Credentials never
//! appear in messages: the opener scrubs them from any store error.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::selection::Backup;
use crate::engine::DrillError;
use crate::store::Profile;
use crate::velero::format::{self, FormatError, Layout};
use crate::velero::location;

/// Where the credentials for reading the location come from.
#[derive(Deserialize, Serialize, JsonSchema, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Credentials {
    /// The Secret the BackupStorageLocation names in `spec.credential` (firedrill needs `get`
    /// on it); the environment when it names none.
    #[default]
    Location,
    /// firedrill's own `AWS_*` environment (or workload identity): the Secret is never read.
    Environment,
}

/// What the check found, for the record.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    /// The location's URL (`s3://bucket/prefix`), without credentials.
    pub location: String,
    /// The files read, relative to the location.
    pub files: Vec<String>,
    /// Objects in the tarball, and how many of them are in the source namespace.
    pub items: usize,
    pub items_in_namespace: usize,
}

/// The differences between the Backup object and its `velero-backup.json`.
fn disagreements(cluster: &Backup, stored: &Backup) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what} is {a} in the cluster but {b} in velero-backup.json"));
        }
    };
    let time = |t: &Option<crate::clock::Timestamp>| t.map_or("unset".to_string(), |t| t.to_string());
    differ("the name", cluster.name.clone(), stored.name.clone());
    differ("the phase", cluster.phase.clone(), stored.phase.clone());
    differ("status.startTimestamp", time(&cluster.started), time(&stored.started));
    differ("status.completionTimestamp", time(&cluster.completed), time(&stored.completed));
    differ(
        "spec.includedNamespaces",
        format!("{:?}", cluster.included_namespaces),
        format!("{:?}", stored.included_namespaces),
    );
    differ(
        "spec.excludedNamespaces",
        format!("{:?}", cluster.excluded_namespaces),
        format!("{:?}", stored.excluded_namespaces),
    );
    out
}

/// Reads backup `backup` from location `bsl` (the BackupStorageLocation as JSON) and checks it.
/// Missing or disagreeing files are `Failed` (the backup is not what the cluster says it is);
/// a location firedrill cannot open or read is an `Error`.
pub async fn check(
    client: &Client,
    bsl: &Value,
    backup: &Backup,
    source: &str,
    credentials: Credentials,
) -> Result<Checked, DrillError> {
    let bsl_name = bsl["metadata"]["name"].as_str().unwrap_or_default();
    let secret = match (credentials, location::credential(bsl)) {
        (Credentials::Location, Some(r)) => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
            let s = api.get_opt(&r.name).await.map_err(|e| {
                DrillError::Error(format!(
                    "cannot read Secret {}/{} that BackupStorageLocation {bsl_name} names for its credentials: {e}",
                    r.namespace, r.name
                ))
            })?;
            s.map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
        }
        _ => None,
    };
    let opener = location::opener(bsl, secret.as_ref())
        .map_err(|e| DrillError::Error(format!("cannot open BackupStorageLocation {bsl_name}: {e}")))?;
    let loc = opener
        .open(Profile::Bulk)
        .map_err(|e| DrillError::Error(opener.scrub(format!("cannot open BackupStorageLocation {bsl_name}: {e}"))))?;
    let (metadata, items) = match format::download_backup(&loc, &backup.name).await {
        Ok(found) => found,
        Err(e @ (FormatError::BackupNotFound { .. } | FormatError::ContentsNotFound { .. })) => {
            return Err(DrillError::Failed(opener.scrub(format!(
                "Backup {} exists in the cluster, but its files do not: {e}; Velero could not restore it",
                backup.name
            ))));
        }
        Err(e @ FormatError::Store { .. }) => {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            return Err(DrillError::Error(opener.scrub(format!("{e}{cause}"))));
        }
        Err(e) => {
            return Err(DrillError::Failed(opener.scrub(format!(
                "the files of Backup {} in {} are damaged: {e}",
                backup.name,
                opener.url()
            ))));
        }
    };
    let stored = Backup::from_object(&metadata);
    let differences = disagreements(backup, &stored);
    if !differences.is_empty() {
        return Err(DrillError::Failed(format!(
            "Backup {}'s files in {} disagree with its Backup object: {}",
            backup.name,
            opener.url(),
            differences.join("; ")
        )));
    }
    let in_namespace = items.iter().filter(|i| i.namespace.as_deref() == Some(source)).count();
    if in_namespace == 0 {
        return Err(DrillError::Failed(format!(
            "Backup {}'s tarball in {} holds {} object(s), none of them in namespace {source}: the restore would bring nothing back",
            backup.name,
            opener.url(),
            items.len()
        )));
    }
    let layout = Layout::default();
    Ok(Checked {
        location: opener.url().to_string(),
        files: vec![layout.backup_metadata(&backup.name), layout.backup_contents(&backup.name)],
        items: items.len(),
        items_in_namespace: in_namespace,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn backup(phase: &str, started: &str) -> Backup {
        Backup::from_object(&json!({
            "metadata": {"name": "nightly"},
            "spec": {"includedNamespaces": ["payments"]},
            "status": {"phase": phase, "startTimestamp": started, "completionTimestamp": "2026-11-20T03:01:00Z"}
        }))
    }

    #[test]
    fn metadata_that_agrees_has_no_disagreements_and_each_difference_is_named() {
        let cluster = backup("Completed", "2026-11-20T03:00:00Z");
        assert!(disagreements(&cluster, &cluster.clone()).is_empty());
        let stored = backup("PartiallyFailed", "2026-11-19T03:00:00Z");
        let said = disagreements(&cluster, &stored);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("the phase is Completed in the cluster but PartiallyFailed"), "{said:?}");
        assert!(said[1].contains("startTimestamp"), "{said:?}");
    }
}
