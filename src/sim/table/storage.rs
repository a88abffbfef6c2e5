//! Storage printers: PersistentVolume, PersistentVolumeClaim, StorageClass. Quantities are printed
//! as stored; the store keeps them as the client wrote them, so `1024Mi` is not canonicalised to `1Gi`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::cells::{age_of, list, text};
use super::{Column, Printer, Row, docs};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let (columns, row): (Vec<Column>, super::RowFn) = match (group, kind) {
        ("", "PersistentVolume") => (pv_columns(), pv),
        ("", "PersistentVolumeClaim") => (pvc_columns(), pvc),
        ("storage.k8s.io", "StorageClass") => (storage_class_columns(), storage_class),
        _ => return None,
    };
    Some(Printer::builtin(columns, row))
}

/// `RWO,ROX,RWX,RWOP`, in that order whatever the order written, without repeats.
fn access_modes(modes: &Value) -> String {
    let modes = list(modes);
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| modes.iter().any(|m| m == mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// A quantity; the zero quantity prints `0`.
fn quantity(v: &Value) -> &str {
    match text(v) {
        "" => "0",
        q => q,
    }
}

/// The storage class: the beta annotation, when present, wins over `spec.storageClassName`.
fn class(obj: &Value) -> &str {
    let annotation = &obj["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"];
    if annotation.is_string() { text(annotation) } else { text(&obj["spec"]["storageClassName"]) }
}

/// `phase`, or Terminating once deletion has started.
fn phase(obj: &Value) -> &str {
    if obj["metadata"]["deletionTimestamp"].is_null() { text(&obj["status"]["phase"]) } else { "Terminating" }
}

fn or_unset(v: &Value) -> &str {
    if v.is_string() { text(v) } else { "<unset>" }
}

/// `spec.volumeMode`, which the server defaults to Filesystem for volumes and claims.
fn volume_mode(obj: &Value) -> &str {
    match text(&obj["spec"]["volumeMode"]) {
        "" => "Filesystem",
        mode => mode,
    }
}

fn pv_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Capacity", "string", docs::PV_CAPACITY),
        Column::new("Access Modes", "string", docs::PV_ACCESS_MODES),
        Column::new("Reclaim Policy", "string", docs::PV_RECLAIM_POLICY),
        Column::new("Status", "string", docs::PV_PHASE),
        Column::new("Claim", "string", docs::PV_CLAIM),
        Column::new("StorageClass", "string", "StorageClass of the pv"),
        Column::new("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        Column::new("Reason", "string", docs::PV_REASON),
        Column::age(),
        Column::new("VolumeMode", "string", docs::PV_VOLUME_MODE).wide(),
    ]
}

fn pv(v: &Value, now: DateTime<Utc>) -> Row {
    let spec = &v["spec"];
    let claim = &spec["claimRef"];
    let claim = if claim.is_object() {
        format!("{}/{}", text(&claim["namespace"]), text(&claim["name"]))
    } else {
        String::new()
    };
    vec![
        json!(text(&v["metadata"]["name"])),
        json!(quantity(&spec["capacity"]["storage"])),
        json!(access_modes(&spec["accessModes"])),
        json!(text(&spec["persistentVolumeReclaimPolicy"])),
        json!(phase(v)),
        json!(claim),
        json!(class(v)),
        json!(or_unset(&spec["volumeAttributesClassName"])),
        json!(text(&v["status"]["reason"])),
        age_of(v, now),
        json!(volume_mode(v)),
    ]
    .into()
}

fn pvc_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Status", "string", docs::PVC_PHASE),
        Column::new("Volume", "string", docs::PVC_VOLUME),
        Column::new("Capacity", "string", docs::PVC_CAPACITY),
        Column::new("Access Modes", "string", docs::PVC_ACCESS_MODES),
        Column::new("StorageClass", "string", "StorageClass of the pvc"),
        Column::new("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        Column::age(),
        Column::new("VolumeMode", "string", docs::PVC_VOLUME_MODE).wide(),
    ]
}

/// CAPACITY and ACCESS MODES stay empty until the claim is bound to a volume.
fn pvc(c: &Value, now: DateTime<Utc>) -> Row {
    let spec = &c["spec"];
    let volume = text(&spec["volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(&c["status"]["capacity"]["storage"]).to_string(), access_modes(&c["status"]["accessModes"]))
    };
    vec![
        json!(text(&c["metadata"]["name"])),
        json!(phase(c)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class(c)),
        json!(or_unset(&spec["volumeAttributesClassName"])),
        age_of(c, now),
        json!(volume_mode(c)),
    ]
    .into()
}

fn storage_class_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Provisioner", "string", docs::SC_PROVISIONER),
        Column::new("ReclaimPolicy", "string", docs::SC_RECLAIM_POLICY),
        Column::new("VolumeBindingMode", "string", docs::SC_BINDING_MODE),
        Column::new("AllowVolumeExpansion", "string", docs::SC_EXPANSION),
        Column::age(),
    ]
}

/// The default class's NAME reads `standard (default)`.
fn storage_class(sc: &Value, now: DateTime<Utc>) -> Row {
    let annotations = &sc["metadata"]["annotations"];
    let default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
        .iter()
        .any(|key| annotations[*key] == "true");
    let name = text(&sc["metadata"]["name"]);
    let name = if default { format!("{name} (default)") } else { name.to_string() };
    let or = |key: &str, fallback: &'static str| match text(&sc[key]) {
        "" => fallback.to_string(),
        v => v.to_string(),
    };
    vec![
        json!(name),
        json!(text(&sc["provisioner"])),
        json!(or("reclaimPolicy", "Delete")),
        json!(or("volumeBindingMode", "Immediate")),
        json!(sc["allowVolumeExpansion"] == true),
        age_of(sc, now),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::table::age;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    #[test]
    fn a_bound_claim_shows_its_volume_and_capacity() {
        let claim = json!({"metadata": {"name": "data-db-0"}, "spec": {"storageClassName": "standard",
                "volumeName": "pvc-3f2a", "volumeMode": "Block", "accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(
            pvc(&claim, now()).cells,
            ["data-db-0", "Bound", "pvc-3f2a", "10Gi", "RWO", "standard", "<unset>", "<unknown>", "Block"]
        );
        let pending = json!({"metadata": {"name": "scratch"}, "spec": {}, "status": {"phase": "Pending"}});
        assert_eq!(pvc(&pending, now()).cells[1..6], ["Pending", "", "", "", ""]);
        assert_eq!(pvc(&pending, now()).cells[8], "Filesystem", "as the server defaults it");
    }

    #[test]
    fn a_volume_names_its_claim_and_orders_access_modes() {
        let volume = json!({"metadata": {"name": "pvc-3f2a", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "db", "name": "data-db-0"}},
            "status": {"phase": "Bound"}});
        assert_eq!(pv(&volume, now()).cells[1..7], ["10Gi", "RWO,RWX", "Delete", "Terminating", "db/data-db-0", ""]);
    }

    #[test]
    fn the_default_storage_class_is_marked() {
        let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            storage_class(&sc, now()).cells[..5],
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
    }
}
