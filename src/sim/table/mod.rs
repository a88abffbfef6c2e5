//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with the columns and
//! cells the real API server computes. Built-in types follow `pkg/printers/internalversion` (the
//! server always prints the `-o wide` columns too; kubectl hides priority-1 columns itself), custom
//! resources follow the CRD handler's `additionalPrinterColumns` convertor, and built-ins without a
//! printer get the generic registry's NAME / CREATED AT.
//!
//! This module renders what it is given: it reads the objects and the injected clock, never the
//! store or the wall clock, and it does not choose which objects a request sees.

mod age;
mod cells;
mod cluster;
mod config;
mod custom;
mod docs;
mod jsonpath;
mod negotiate;
mod network;
mod pods;
mod storage;
mod workloads;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::registry::ResourceType;
use super::status::{self, ApiError};

pub use custom::{PrinterColumn, printer_columns};
pub use negotiate::wants_table;

/// What a row embeds, from the `includeObject` query parameter (default Metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object: `"object": null`.
    None,
    /// A `PartialObjectMetadata` carrying the object's metadata.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter; an unknown value is the real server's 400.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(status::bad_request(format!("unrecognized includeObject value: \"{other}\""))),
        }
    }
}

/// One `TableColumnDefinition`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// The OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    kind: String,
    format: String,
    description: String,
    /// 0 is always shown, 1 only with `-o wide`.
    priority: i32,
}

impl Column {
    fn new(name: &str, kind: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            format: String::new(),
            description: description.into(),
            priority: 0,
        }
    }

    /// The NAME column every table starts with.
    fn name() -> Self {
        Self { format: "name".into(), ..Self::new("Name", "string", docs::NAME) }
    }

    /// The AGE column of the built-in printers (a string cell such as `5m2s`).
    fn age() -> Self {
        Self::new("Age", "string", docs::CREATION_TIMESTAMP)
    }

    /// Shown only with `-o wide`.
    fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    fn json(&self) -> Value {
        json!({"name": self.name, "type": self.kind, "format": self.format, "description": self.description,
            "priority": self.priority})
    }
}

/// One row's cells and its `TableRowCondition`s (pods that ran to completion are marked Completed).
#[derive(Debug, Default)]
struct Row {
    cells: Vec<Value>,
    conditions: Vec<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Self { cells, conditions: Vec::new() }
    }
}

/// Computes a row from an object at the simulator's `now`.
type RowFn = fn(&Value, DateTime<Utc>) -> Row;

/// How one type is printed.
enum Printer {
    /// A printer of `pkg/printers/internalversion`.
    Builtin { columns: Vec<Column>, row: RowFn },
    /// The CRD convertor over `additionalPrinterColumns`.
    Crd(Vec<PrinterColumn>),
    /// The generic registry's NAME / CREATED AT.
    Default,
}

impl Printer {
    fn builtin(columns: Vec<Column>, row: RowFn) -> Self {
        Self::Builtin { columns, row }
    }

    /// The printer the real server uses for `t`.
    fn of(t: &ResourceType) -> Self {
        if !t.builtin {
            return Self::Crd(custom::stand_in_columns(&t.group, &t.kind));
        }
        let (g, k) = (t.group.as_str(), t.kind.as_str());
        pods::printer(g, k)
            .or_else(|| workloads::printer(g, k))
            .or_else(|| cluster::printer(g, k))
            .or_else(|| network::printer(g, k))
            .or_else(|| config::printer(g, k))
            .or_else(|| storage::printer(g, k))
            .unwrap_or(Self::Default)
    }

    fn columns(&self) -> Vec<Column> {
        match self {
            Self::Builtin { columns, .. } => columns.clone(),
            Self::Crd(columns) => custom::columns(columns),
            Self::Default => vec![Column::name(), Column::new("Created At", "date", docs::CREATION_TIMESTAMP)],
        }
    }

    fn row(&self, obj: &Value, now: DateTime<Utc>) -> Row {
        match self {
            Self::Builtin { row, .. } => row(obj, now),
            Self::Crd(columns) => custom::row_cells(columns, obj, now).into(),
            Self::Default => vec![json!(cells::text(&obj["metadata"]["name"])), json!(created_at(obj))].into(),
        }
    }
}

/// The CREATED AT cell: the creation time in UTC, RFC 3339 to the second (Go's zero time when unset).
fn created_at(obj: &Value) -> String {
    age::time(&obj["metadata"]["creationTimestamp"])
        .map_or_else(|| "0001-01-01T00:00:00Z".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The Table for `items` of type `t` (a list, or one object for a GET), as JSON: kind Table, apiVersion
/// meta.k8s.io/v1, metadata {resourceVersion, continue}, columnDefinitions (name, type, format,
/// description, priority — priority 1 = shown only with -o wide), rows [{cells, conditions, object}].
pub fn table(
    t: &ResourceType,
    items: &[Arc<Value>],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    render(&Printer::of(t), t, items, resource_version, continue_token, include, now)
}

/// The Table for custom resources of type `t` with the columns their CRD declares (see
/// [`printer_columns`]), for CRDs registered at run time.
pub fn custom_table(
    columns: &[PrinterColumn],
    t: &ResourceType,
    items: &[Arc<Value>],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    render(&Printer::Crd(columns.to_vec()), t, items, resource_version, continue_token, include, now)
}

fn render(
    printer: &Printer,
    t: &ResourceType,
    items: &[Arc<Value>],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    if let Some(token) = continue_token.filter(|c| !c.is_empty()) {
        metadata.insert("continue".into(), json!(token));
    }
    let columns: Vec<Value> = printer.columns().iter().map(Column::json).collect();
    let rows: Vec<Value> = items.iter().map(|obj| row(printer, t, obj, include, now)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns,
        "rows": rows})
}

fn row(printer: &Printer, t: &ResourceType, obj: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let Row { cells, conditions } = printer.row(obj, now);
    let mut row = json!({"cells": cells, "object": embedded(t, obj, include)});
    if !conditions.is_empty() {
        row["conditions"] = json!(conditions);
    }
    row
}

/// What a row carries as `object`.
fn embedded(t: &ResourceType, obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}),
        IncludeObject::Object => {
            let mut full = obj.clone();
            if let Some(m) = full.as_object_mut() {
                m.entry("kind").or_insert_with(|| json!(t.kind));
                m.entry("apiVersion").or_insert_with(|| json!(t.api_version()));
            }
            full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::registry::Registry;

    fn now() -> DateTime<Utc> {
        age::parse("2024-05-01T12:00:00Z").unwrap()
    }

    fn rtype(group: &str, plural: &str) -> Arc<ResourceType> {
        Registry::new().find(group, "v1", plural).unwrap()
    }

    fn names(table: &Value) -> Vec<&str> {
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    fn role() -> Arc<Value> {
        Arc::new(json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "reader", "namespace": "shop", "resourceVersion": "7",
                "creationTimestamp": "2024-04-30T08:15:00Z", "labels": {"team": "a"}}}))
    }

    #[test]
    fn the_table_wraps_rows_in_list_metadata() {
        let t = rtype("rbac.authorization.k8s.io", "roles");
        let table = table(&t, &[role()], "42", Some("next"), IncludeObject::Metadata, now());
        assert_eq!((table["kind"].as_str(), table["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
        assert_eq!(table["metadata"], json!({"resourceVersion": "42", "continue": "next"}));
        let column = &table["columnDefinitions"][0];
        assert_eq!((column["format"].as_str(), column["priority"].as_i64()), (Some("name"), Some(0)));
    }

    #[test]
    fn built_ins_without_a_printer_get_name_and_created_at() {
        let t = rtype("rbac.authorization.k8s.io", "roles");
        let table = table(&t, &[role()], "42", None, IncludeObject::Metadata, now());
        assert_eq!(names(&table), ["Name", "Created At"]);
        assert_eq!(table["columnDefinitions"][1]["type"], "date");
        assert_eq!(table["rows"][0]["cells"], json!(["reader", "2024-04-30T08:15:00Z"]));
        assert_eq!(table["metadata"], json!({"resourceVersion": "42"}), "no continue token, no key");
    }

    #[test]
    fn rows_embed_partial_metadata_the_object_or_nothing() {
        let t = rtype("rbac.authorization.k8s.io", "roles");
        let obj = |include| table(&t, &[role()], "1", None, include, now())["rows"][0]["object"].clone();
        let partial = obj(IncludeObject::Metadata);
        assert_eq!(partial["kind"], "PartialObjectMetadata");
        assert_eq!(partial["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(partial["metadata"]["labels"]["team"], "a");
        assert_eq!(obj(IncludeObject::Object)["kind"], "Role");
        assert!(obj(IncludeObject::None).is_null(), "includeObject=None rows carry no object");
    }

    #[test]
    fn custom_resources_without_printer_columns_show_name_and_age() {
        let t = rtype("velero.io", "backups");
        let backup = Arc::new(json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "nightly-1", "namespace": "velero", "creationTimestamp": "2024-05-01T11:57:00Z"},
            "status": {"phase": "Completed"}}));
        let table = table(&t, &[backup], "9", None, IncludeObject::Metadata, now());
        assert_eq!(names(&table), ["Name", "Age"]);
        assert_eq!(table["columnDefinitions"][1]["type"], "date");
        assert_eq!(table["rows"][0]["cells"], json!(["nightly-1", "3m"]));
    }

    #[test]
    fn include_object_values_are_checked() {
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(IncludeObject::parse(Some("None")).unwrap(), IncludeObject::None);
        assert_eq!(IncludeObject::parse(Some("Object")).unwrap(), IncludeObject::Object);
        let err = IncludeObject::parse(Some("All")).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "unrecognized includeObject value: \"All\""));
    }
}
