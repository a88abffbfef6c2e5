//! Tables for custom resources, as the CRD handler's convertor builds them: NAME, then one column per
//! `additionalPrinterColumns` entry (a lone AGE when the CRD declares none), each cell read by its
//! JSONPath and typed by the column's `type`.
//!
//! The Velero and cert-manager stand-ins are served without CRD objects, so their columns are the
//! ones the real CRDs declare: cert-manager's `deploy/crds/cert-manager.io_*.yaml`, and Velero's
//! `+kubebuilder:printcolumn` markers as released in v1.18 (Backup and Restore declare none).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::jsonpath::Path;
use super::{Column, age, cells, docs};

/// One `additionalPrinterColumns` entry of a CustomResourceDefinition version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    pub format: String,
    /// The CRD's description, or the convertor's `Custom resource definition column (in JSONPath
    /// format): <path>` when the CRD gives none.
    pub description: String,
    /// 1: shown only with `-o wide`.
    pub priority: i32,
    pub json_path: String,
}

impl PrinterColumn {
    fn new(name: &str, kind: &str, json_path: &str, description: &str) -> Self {
        let description = if description.is_empty() {
            format!("Custom resource definition column (in JSONPath format): {json_path}")
        } else {
            description.to_string()
        };
        Self {
            name: name.into(),
            kind: kind.into(),
            format: String::new(),
            description,
            priority: 0,
            json_path: json_path.into(),
        }
    }

    fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    /// The AGE column the handler serves for a CRD version that declares no columns.
    fn default_age() -> Self {
        Self::new("Age", "date", ".metadata.creationTimestamp", docs::CREATION_TIMESTAMP)
    }
}

/// The printer columns `crd` declares for `version`, or the default AGE column when it declares none.
pub fn printer_columns(crd: &Value, version: &str) -> Vec<PrinterColumn> {
    let declared = cells::list(&crd["spec"]["versions"])
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| cells::list(&v["additionalPrinterColumns"]))
        .unwrap_or_default();
    if declared.is_empty() {
        return vec![PrinterColumn::default_age()];
    }
    let read = |c: &Value| PrinterColumn {
        format: cells::text(&c["format"]).into(),
        priority: i32::try_from(cells::int(&c["priority"])).unwrap_or(0),
        ..PrinterColumn::new(
            cells::text(&c["name"]),
            cells::text(&c["type"]),
            cells::text(&c["jsonPath"]),
            cells::text(&c["description"]),
        )
    };
    declared.iter().map(read).collect()
}

const CERT_MANAGER_AGE: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";
const READY_STATUS: &str = r#".status.conditions[?(@.type == "Ready")].status"#;
const READY_MESSAGE: &str = r#".status.conditions[?(@.type == "Ready")].message"#;

/// The columns of a stand-in's custom resource, or the default AGE column for any other.
pub(super) fn stand_in_columns(group: &str, kind: &str) -> Vec<PrinterColumn> {
    let c = PrinterColumn::new;
    let age = || c("Age", "date", ".metadata.creationTimestamp", "");
    let cm_age = || c("Age", "date", ".metadata.creationTimestamp", CERT_MANAGER_AGE);
    match (group, kind) {
        ("velero.io", "Schedule") => vec![
            c("Status", "string", ".status.phase", "Status of the schedule"),
            c("Schedule", "string", ".spec.schedule", "A Cron expression defining when to run the Backup"),
            c("LastBackup", "date", ".status.lastBackup", "The last time a Backup was run for this schedule"),
            age(),
            c("Paused", "boolean", ".spec.paused", ""),
        ],
        ("velero.io", "BackupStorageLocation") => vec![
            c("Phase", "string", ".status.phase", "Backup Storage Location status such as Available/Unavailable"),
            c(
                "Last Validated",
                "date",
                ".status.lastValidationTime",
                "LastValidationTime is the last time the backup store location was validated",
            ),
            age(),
            c("Default", "boolean", ".spec.default", "Default backup storage location"),
        ],
        ("velero.io", "DeleteBackupRequest") => vec![
            c("BackupName", "string", ".spec.backupName", "The name of the backup to be deleted"),
            c("Status", "string", ".status.phase", "The status of the deletion request"),
        ],
        ("cert-manager.io", "Certificate") => vec![
            c("Ready", "string", READY_STATUS, ""),
            c("Secret", "string", ".spec.secretName", ""),
            c("Issuer", "string", ".spec.issuerRef.name", "").wide(),
            c("Status", "string", READY_MESSAGE, "").wide(),
            cm_age(),
        ],
        ("cert-manager.io", "CertificateRequest") => vec![
            c("Approved", "string", r#".status.conditions[?(@.type == "Approved")].status"#, ""),
            c("Denied", "string", r#".status.conditions[?(@.type == "Denied")].status"#, ""),
            c("Ready", "string", READY_STATUS, ""),
            c("Issuer", "string", ".spec.issuerRef.name", ""),
            c("Requester", "string", ".spec.username", ""),
            c("Status", "string", READY_MESSAGE, "").wide(),
            cm_age(),
        ],
        ("cert-manager.io", "Issuer" | "ClusterIssuer") => {
            vec![c("Ready", "string", READY_STATUS, ""), c("Status", "string", READY_MESSAGE, "").wide(), cm_age()]
        }
        _ => vec![PrinterColumn::default_age()],
    }
}

/// The column definitions: NAME, then the declared columns.
pub(super) fn columns(declared: &[PrinterColumn]) -> Vec<Column> {
    let mut columns = vec![Column::name()];
    columns.extend(declared.iter().map(|c| Column {
        name: c.name.clone(),
        kind: c.kind.clone(),
        format: c.format.clone(),
        description: c.description.clone(),
        priority: c.priority,
    }));
    columns
}

/// The cells: the name, then each column's value (null when its path finds nothing).
pub(super) fn row_cells(declared: &[PrinterColumn], obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut cells = vec![json!(cells::text(&obj["metadata"]["name"]))];
    cells.extend(declared.iter().map(|c| cell(c, obj, now)));
    cells
}

fn cell(column: &PrinterColumn, obj: &Value, now: DateTime<Utc>) -> Value {
    let found = Path::parse(&column.json_path).and_then(|p| p.find(obj).ok()).unwrap_or_default();
    let Some(value) = found.first() else { return Value::Null };
    match column.kind.as_str() {
        "string" => json!(printed(value)),
        // Go decodes JSON integers as int64 and the rest as float64, which it truncates.
        "integer" => value.as_i64().or_else(|| value.as_f64().map(|f| f as i64)).map_or(Value::Null, |i| json!(i)),
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => value.as_str().map_or(Value::Null, |s| json!(date(s, now))),
        _ => Value::Null,
    }
}

/// A value as client-go's JSONPath prints it: strings bare, maps and lists as compact JSON.
fn printed(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().filter(|_| n.is_f64()).map_or_else(|| n.to_string(), go_float),
        other => other.to_string(),
    }
}

/// A float as Go's `%v` writes it: shortest digits, exponent form below 1e-4 and from 1e6 (`1e+06`).
fn go_float(f: f64) -> String {
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        f.to_string()
    }
}

/// A `date` cell: the age of the timestamp, `<unknown>` when empty, `<invalid>` when unreadable.
fn date(text: &str, now: DateTime<Utc>) -> String {
    if text.is_empty() || text == "null" {
        return age::UNKNOWN.into();
    }
    age::parse(text).map_or_else(|| "<invalid>".into(), |t| age::human(now - t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    #[test]
    fn a_certificate_shows_its_ready_condition_and_secret() {
        let cert = json!({"metadata": {"name": "web-tls", "creationTimestamp": "2024-04-01T12:00:00Z"},
            "spec": {"secretName": "web-tls", "issuerRef": {"name": "ca"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "message": "Certificate is up to date and has not expired"}]}});
        let columns = stand_in_columns("cert-manager.io", "Certificate");
        let names: Vec<_> = columns.iter().map(|c| (c.name.as_str(), c.priority)).collect();
        assert_eq!(names, [("Ready", 0), ("Secret", 0), ("Issuer", 1), ("Status", 1), ("Age", 0)]);
        assert_eq!(
            row_cells(&columns, &cert, now()),
            [
                json!("web-tls"),
                json!("True"),
                json!("web-tls"),
                json!("ca"),
                json!("Certificate is up to date and has not expired"),
                json!("30d")
            ]
        );
    }

    #[test]
    fn missing_values_are_null_cells_and_types_are_kept() {
        let schedule = json!({"metadata": {"name": "nightly", "creationTimestamp": "2024-05-01T11:59:56Z"},
            "spec": {"schedule": "0 2 * * *"}, "status": {"phase": "Enabled"}});
        let columns = stand_in_columns("velero.io", "Schedule");
        assert_eq!(
            row_cells(&columns, &schedule, now()),
            [json!("nightly"), json!("Enabled"), json!("0 2 * * *"), Value::Null, json!("4s"), Value::Null]
        );
        let bsl = json!({"metadata": {"name": "default"}, "spec": {"default": true}, "status": {"phase": "Available",
            "lastValidationTime": "2024-05-01T11:59:40Z"}});
        let columns = stand_in_columns("velero.io", "BackupStorageLocation");
        assert_eq!(
            row_cells(&columns, &bsl, now()),
            [json!("default"), json!("Available"), json!("20s"), Value::Null, json!(true)]
        );
        assert_eq!(columns[0].description, "Backup Storage Location status such as Available/Unavailable");
        assert_eq!(
            columns[2].description,
            "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp"
        );
    }

    #[test]
    fn a_crd_declares_its_columns_or_gets_age() {
        let crd = json!({"spec": {"versions": [
            {"name": "v1", "additionalPrinterColumns": [
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
                {"name": "Size", "type": "string", "format": "quantity", "jsonPath": ".spec.size", "description": "how big"}]},
            {"name": "v2"}]}});
        let v1 = printer_columns(&crd, "v1");
        assert_eq!((v1[0].kind.as_str(), v1[0].priority), ("integer", 1));
        assert_eq!((v1[1].format.as_str(), v1[1].description.as_str()), ("quantity", "how big"));
        let widget = json!({"metadata": {"name": "w"}, "spec": {"replicas": 3, "size": 2.5}});
        assert_eq!(row_cells(&v1, &widget, now()), [json!("w"), json!(3), json!("2.5")]);
        assert_eq!(printer_columns(&crd, "v2"), [PrinterColumn::default_age()]);
    }

    #[test]
    fn values_print_as_client_go_prints_them() {
        assert_eq!(printed(&json!({"b": 1, "a": [true]})), r#"{"a":[true],"b":1}"#);
        assert_eq!(printed(&json!(7)), "7");
        assert_eq!(printed(&json!(1500000.0)), "1.5e+06");
        assert_eq!(printed(&json!(0.00001)), "1e-05");
        assert_eq!(printed(&Value::Null), "<no value>");
        assert_eq!(date("yesterday", now()), "<invalid>");
    }
}
