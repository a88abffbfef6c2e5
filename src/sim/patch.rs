//! PATCH bodies applied to stored objects the way kube-apiserver applies them.
//!
//! Four formats, chosen by `Content-Type` ([`PatchType`]): JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), strategic merge patch (built-in kinds: list merge keys and `$`-directives as the
//! `k8s.io/api` struct tags and apimachinery's `strategicpatch` define them), and server-side apply,
//! simplified to a merge of the applied object. Errors carry the real server's messages, codes and
//! reasons ([`PatchError::code`], [`PatchError::reason`]).
//!
//! This module only transforms JSON. It does not refuse strategic merge for custom resources, create
//! missing objects, check `fieldManager`, or validate the patched object: the HTTP layer and the store do.

use std::collections::VecDeque;

use serde_json::{Map, Value};
use thiserror::Error;

type Object = Map<String, Value>;
type Result<T, E = PatchError> = std::result::Result<T, E>;

/// The patch formats the API server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`: RFC 7386.
    Merge,
    /// `application/strategic-merge-patch+json`: built-in kinds only.
    Strategic,
    /// `application/json-patch+json`: RFC 6902.
    Json,
    /// `application/apply-patch+yaml`: server-side apply (the CBOR variant is behind an alpha gate).
    Apply,
}

impl PatchType {
    /// The media types, in the order the real server lists them in its 415 message.
    pub const ALL: &[&str] = &[
        PatchType::Json.media_type(),
        PatchType::Merge.media_type(),
        PatchType::Strategic.media_type(),
        PatchType::Apply.media_type(),
    ];

    /// The media type that selects this format.
    pub const fn media_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }

    /// The format a `Content-Type` header names. Parameters after `;` are ignored; the rest must match
    /// exactly, as the server compares it (case and spaces count).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or_default();
        [PatchType::Json, PatchType::Merge, PatchType::Strategic, PatchType::Apply]
            .into_iter()
            .find(|t| t.media_type() == media)
    }
}

/// The type Go's decoder reports when the patched document has no readable `apiVersion`/`kind`
/// (apimachinery `SimpleMetaFactory.Interpret`).
const KIND_STRUCT: &str =
    r#"struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#;

/// Why a patch could not be applied. `Display` is the `message` of the `Status` the real server
/// answers with; [`code`](PatchError::code), [`reason`](PatchError::reason) and
/// [`cause`](PatchError::cause) give the rest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatchError {
    /// A JSON patch or strategic merge patch body that is not JSON, or not the JSON shape the format
    /// needs (an array of objects; an object). 400 `BadRequest`. Shape errors and an empty body read as
    /// Go's `encoding/json` says them; for syntax errors the text is serde_json's, not Go's.
    #[error("{0}")]
    Unparsable(String),
    /// A merge patch body that is not JSON, or is `null` or a scalar. 400 `BadRequest`; the message
    /// is evanphx/json-patch's `ErrBadJSONPatch`.
    #[error("Invalid JSON Patch")]
    InvalidMergePatch,
    /// The patched document is not an object (a merge patch that is an array, a JSON patch that
    /// replaced the root), so the server cannot decode it. 422 `Invalid`; the message is the whole
    /// `NewInvalid` text, empty kind and name included.
    #[error(
        " \"\" is invalid: patch: Invalid value: {patched:?}: couldn't get version/kind; json parse error: \
         json: cannot unmarshal {json_type} into Go value of type {KIND_STRUCT}"
    )]
    NotAnObject {
        /// The patched document, as JSON.
        patched: String,
        /// What it is instead: `array`, `string`, `number` or `bool`.
        json_type: &'static str,
    },
    /// A JSON patch operation that cannot be applied (a `test` that does not match, a missing path,
    /// an unknown `op`), or a strategic merge patch with a list of lists. 422 `Invalid` with this
    /// fixed message; [`cause`](PatchError::cause) belongs in `details.causes[0].message` with reason
    /// `UnexpectedServerResponse`. Causes read as evanphx/json-patch words them for `test` and unknown
    /// operations, as the `json-patch` crate does otherwise.
    #[error("the server rejected our request due to an error in our request")]
    Rejected {
        /// What went wrong, as the server puts it in `details.causes`.
        cause: String,
    },
    /// A JSON patch of more than 10000 operations. 413 `RequestEntityTooLarge`.
    #[error("The allowed maximum operations in a JSON patch is 10000, got {0}")]
    TooManyOperations(usize),
    /// An apply body that is not YAML, or not a YAML mapping. 400 `BadRequest`.
    #[error("error decoding YAML: {0}")]
    InvalidYaml(String),
    /// An apply body whose `apiVersion` is not the object's. 400 `BadRequest`.
    #[error("Incorrect version specified in apply patch. Specified patch version: {given}, expected: {expected}")]
    ApplyVersionMismatch {
        /// The body's `apiVersion` (empty when it has none).
        given: String,
        /// The stored object's `apiVersion`.
        expected: String,
    },
    /// A `$retainKeys` directive that is not a list, or leaves out a key the patch sets. 400 `BadRequest`.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$setElementOrder` key not of the form `$setElementOrder/<field>`. 400 `BadRequest`.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// A `$deleteFromPrimitiveList` key not of the form `$deleteFromPrimitiveList/<field>`, or whose
    /// value is not a list. 400 `BadRequest`.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A strategic merge patch the merge itself refuses: an unknown `$patch` directive (`merge`
    /// included: the server rejects it in maps and lists alike), a list element without its merge
    /// key, mixed element types, an order list the patch contradicts. The server passes these errors
    /// through unconverted: 500 with an empty reason.
    #[error("{0}")]
    Strategic(String),
}

impl PatchError {
    /// The HTTP status code the real server answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Unparsable(_)
            | PatchError::InvalidMergePatch
            | PatchError::InvalidYaml(_)
            | PatchError::ApplyVersionMismatch { .. }
            | PatchError::BadRetainKeys
            | PatchError::BadSetElementOrder
            | PatchError::BadPrimitiveList => 400,
            PatchError::TooManyOperations(_) => 413,
            PatchError::NotAnObject { .. } | PatchError::Rejected { .. } => 422,
            PatchError::Strategic(_) => 500,
        }
    }

    /// The `Status` reason: `BadRequest`, `RequestEntityTooLarge`, `Invalid`, or empty for a 500.
    pub fn reason(&self) -> &'static str {
        match self.code() {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            _ => "",
        }
    }

    /// For [`PatchError::Rejected`], the detail the server puts in `details.causes`.
    pub fn cause(&self) -> Option<&str> {
        match self {
            PatchError::Rejected { cause } => Some(cause),
            _ => None,
        }
    }
}

/// Applies `patch` (the raw request body) to `target` and returns the patched object; `target` is not
/// changed. `kind` is the object's Kind (`Pod`, `Node`, ...): strategic merge needs it to find list
/// merge keys. For server-side apply, a `target` with an `apiVersion` must match the body's; pass
/// `{"apiVersion": .., "kind": ..}` rather than `{}` when creating, to have that checked.
pub fn apply(target: &Value, patch: &[u8], ty: PatchType, kind: &str) -> Result<Value> {
    let patched = match ty {
        PatchType::Merge => merge_patch(target, patch)?,
        PatchType::Json => json_patch(target, patch)?,
        PatchType::Strategic => strategic_merge_patch(target, patch, kind)?,
        PatchType::Apply => apply_patch(target, patch)?,
    };
    match GoType::of(&patched) {
        GoType::Map => Ok(patched),
        other => Err(PatchError::NotAnObject { patched: patched.to_string(), json_type: other.json_name() }),
    }
}

/// RFC 7386, as evanphx/json-patch (which the server uses) reads bodies.
fn merge_patch(target: &Value, body: &[u8]) -> Result<Value> {
    let patch: Value = serde_json::from_slice(body).map_err(|_| PatchError::InvalidMergePatch)?;
    match patch {
        Value::Object(_) | Value::Array(_) => Ok(merged(target, patch)),
        _ => Err(PatchError::InvalidMergePatch),
    }
}

/// `target` with `patch` merged in by RFC 7386. evanphx/json-patch also drops `null` members of the
/// objects it copies in inside arrays, which `json_patch::merge` keeps, so those go first.
fn merged(target: &Value, mut patch: Value) -> Value {
    drop_nulls_inside_arrays(&mut patch, false);
    let mut doc = target.clone();
    json_patch::merge(&mut doc, &patch);
    doc
}

fn drop_nulls_inside_arrays(value: &mut Value, in_array: bool) {
    match value {
        Value::Object(m) => {
            if in_array {
                m.retain(|_, v| !v.is_null());
            }
            m.values_mut().for_each(|v| drop_nulls_inside_arrays(v, in_array));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_nulls_inside_arrays(v, true)),
        _ => {}
    }
}

/// The apiserver's limit on operations in one JSON patch.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// RFC 6902. The body is read in two steps, as the server does: an array of objects, or 400; then each
/// operation, whose faults (an unknown `op`, a failed `test`) are 422 like any failure to apply.
fn json_patch(target: &Value, body: &[u8]) -> Result<Value> {
    let ops = match parse_json(body)? {
        Value::Array(ops) => ops,
        Value::Null => Vec::new(),
        other => return Err(PatchError::Unparsable(go_unmarshal_error(&other, "jsonpatch.Patch"))),
    };
    if let Some(op) = ops.iter().find(|op| !op.is_object()) {
        return Err(PatchError::Unparsable(go_unmarshal_error(op, "jsonpatch.Operation")));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.len()));
    }
    if let Some(op) = ops.iter().map(|op| &op["op"]).find(|op| !is_known_operation(op)) {
        return Err(PatchError::Rejected { cause: format!("Unexpected kind: {}", op.as_str().unwrap_or("unknown")) });
    }
    let ops: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(|e| PatchError::Rejected { cause: e.to_string() })?;
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Rejected { cause: json_patch_cause(&e) })?;
    Ok(doc)
}

fn is_known_operation(op: &Value) -> bool {
    matches!(op.as_str(), Some("add" | "remove" | "replace" | "move" | "copy" | "test"))
}

/// The cause of a failed operation; a failed `test` in evanphx/json-patch's words.
fn json_patch_cause(e: &json_patch::PatchError) -> String {
    match e.kind {
        json_patch::PatchErrorKind::TestFailed => format!("testing value {} failed: test failed", e.path),
        _ => e.to_string(),
    }
}

/// Server-side apply, simplified: the applied object is merged into the target as a merge patch
/// (no field ownership; lists are replaced).
fn apply_patch(target: &Value, body: &[u8]) -> Result<Value> {
    let applied: Value = serde_saphyr::from_slice(body).map_err(|e| {
        let message = e.without_snippet().to_string();
        PatchError::InvalidYaml(format!(
            "error converting YAML to JSON: yaml: {}",
            message.lines().next().unwrap_or_default().trim_start_matches("error: ")
        ))
    })?;
    let applied = match applied {
        Value::Object(_) => applied,
        Value::Null => Value::Object(Object::new()),
        other => {
            let why = go_unmarshal_error(&other, "map[string]interface {}");
            return Err(PatchError::InvalidYaml(format!("error unmarshaling JSON: while decoding JSON: {why}")));
        }
    };
    if let Some(expected) = target.get("apiVersion").and_then(Value::as_str) {
        let given = applied.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if given != expected {
            return Err(PatchError::ApplyVersionMismatch { given: given.into(), expected: expected.into() });
        }
    }
    Ok(merged(target, applied))
}

/// The body as JSON; an empty body as Go's decoder words it.
fn parse_json(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PatchError::Unparsable("unexpected end of JSON input".into()));
    }
    serde_json::from_slice(body).map_err(|e| PatchError::Unparsable(e.to_string()))
}

/// Go's `encoding/json` refusing to decode `value` into `go_type`.
fn go_unmarshal_error(value: &Value, go_type: &str) -> String {
    format!("json: cannot unmarshal {} into Go value of type {go_type}", GoType::of(value).json_name())
}

// ---- strategic merge patch -------------------------------------------------------------------

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

fn strategic_merge_patch(target: &Value, body: &[u8], kind: &str) -> Result<Value> {
    let patch = match parse_json(body)? {
        Value::Object(patch) => patch,
        Value::Null => Object::new(),
        other => return Err(PatchError::Unparsable(go_unmarshal_error(&other, "map[string]interface {}"))),
    };
    let original = target.as_object().cloned().unwrap_or_default();
    merge_map(original, patch, Schema::of_kind(kind)).map(Value::Object)
}

/// What strategic merge does with one field: its `patchStrategy` and `patchMergeKey` struct tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// No tag: maps merge key by key, lists are replaced.
    Default,
    /// `patchStrategy:"merge"`: lists of scalars are unioned, lists of maps merged by the key.
    Merge(Option<&'static str>),
    /// `patchStrategy:"replace"`: the patch replaces the whole map.
    Replace,
}

/// The Go types whose fields carry patch tags, as far as the simulated kinds need them. The tags
/// are those of k8s.io/api (core/v1, apps/v1, batch/v1, policy/v1) and apimachinery's ObjectMeta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// A type without tagged fields (or one not modelled): plain recursive merge, lists replaced.
    Untagged,
    /// The top of an object whose only tagged fields are in `metadata`.
    Object,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    Container,
    Node,
    NodeSpec,
    NodeStatus,
    Service,
    ServiceSpec,
    ServiceAccount,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController, Job: a pod `template`
    /// in the spec, `conditions` in the status.
    Workload,
    WorkloadSpec,
    PodTemplate,
    PodTemplateSpec,
    CronJob,
    CronJobSpec,
    JobTemplateSpec,
    PodDisruptionBudget,
    PodDisruptionBudgetSpec,
    /// Namespace, PersistentVolumeClaim, HorizontalPodAutoscaler: `conditions` in the status.
    WithConditions,
    /// A status whose `conditions` merge by `type`.
    ConditionsStatus,
}

impl Schema {
    fn of_kind(kind: &str) -> Schema {
        match kind {
            "Pod" => Schema::Pod,
            "Node" => Schema::Node,
            "Service" => Schema::Service,
            "ServiceAccount" => Schema::ServiceAccount,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ReplicationController" | "Job" => {
                Schema::Workload
            }
            "PodTemplate" => Schema::PodTemplate,
            "CronJob" => Schema::CronJob,
            "PodDisruptionBudget" => Schema::PodDisruptionBudget,
            "Namespace" | "PersistentVolumeClaim" | "HorizontalPodAutoscaler" => Schema::WithConditions,
            _ => Schema::Object,
        }
    }

    fn has_object_meta(self) -> bool {
        !matches!(
            self,
            Schema::Untagged
                | Schema::ObjectMeta
                | Schema::PodSpec
                | Schema::PodStatus
                | Schema::Container
                | Schema::NodeSpec
                | Schema::NodeStatus
                | Schema::ServiceSpec
                | Schema::WorkloadSpec
                | Schema::CronJobSpec
                | Schema::PodDisruptionBudgetSpec
                | Schema::ConditionsStatus
        )
    }

    /// How field `name` of this type patches, and the type of its value (of its elements, for lists).
    fn field(self, name: &str) -> (Strategy, Schema) {
        use Schema::*;
        use Strategy::{Default, Merge, Replace};
        match (self, name) {
            (s, "metadata") if s.has_object_meta() => (Default, ObjectMeta),
            (ObjectMeta, "finalizers") => (Merge(None), Untagged),
            (ObjectMeta, "ownerReferences") => (Merge(Some("uid")), Untagged),
            (Pod | PodTemplateSpec, "spec") => (Default, PodSpec),
            (Pod, "status") => (Default, PodStatus),
            (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => (Merge(Some("name")), Container),
            (PodSpec, "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => {
                (Merge(Some("name")), Untagged)
            }
            (PodSpec, "hostAliases") => (Merge(Some("ip")), Untagged),
            (PodSpec, "topologySpreadConstraints") => (Merge(Some("topologyKey")), Untagged),
            (Container, "ports") => (Merge(Some("containerPort")), Untagged),
            (Container, "env") => (Merge(Some("name")), Untagged),
            (Container, "volumeMounts") => (Merge(Some("mountPath")), Untagged),
            (Container, "volumeDevices") => (Merge(Some("devicePath")), Untagged),
            (PodStatus | NodeStatus | ConditionsStatus, "conditions") => (Merge(Some("type")), Untagged),
            (PodStatus, "podIPs" | "hostIPs") => (Merge(Some("ip")), Untagged),
            (PodStatus, "resourceClaimStatuses") => (Merge(Some("name")), Untagged),
            (Node, "spec") => (Default, NodeSpec),
            (Node, "status") => (Default, NodeStatus),
            (NodeSpec, "podCIDRs") => (Merge(None), Untagged),
            (NodeStatus, "addresses") => (Merge(Some("type")), Untagged),
            (Service, "spec") => (Default, ServiceSpec),
            (ServiceSpec, "ports") => (Merge(Some("port")), Untagged),
            (ServiceAccount, "secrets") => (Merge(Some("name")), Untagged),
            (Workload | JobTemplateSpec, "spec") => (Default, WorkloadSpec),
            (WorkloadSpec | PodTemplate, "template") => (Default, PodTemplateSpec),
            (CronJob, "spec") => (Default, CronJobSpec),
            (CronJobSpec, "jobTemplate") => (Default, JobTemplateSpec),
            (PodDisruptionBudget, "spec") => (Default, PodDisruptionBudgetSpec),
            (PodDisruptionBudgetSpec, "selector") => (Replace, Untagged),
            (Service | Workload | PodDisruptionBudget | WithConditions, "status") => (Default, ConditionsStatus),
            _ => (Default, Untagged),
        }
    }
}

/// Merges `patch` into `original` (apimachinery `mergeMap`): directives first, then field by field.
fn merge_map(mut original: Object, mut patch: Object, schema: Schema) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                merge_map(Object::new(), patch, schema)
            }
            // The real server leaves an empty map, not an absent field.
            Some("delete") => Ok(Object::new()),
            _ => Err(unknown_directive(directive, &patch)),
        };
    }
    retain_keys(&mut original, &mut patch)?;
    set_element_orders(&mut original, &mut patch, schema)?;
    for (key, value) in patch {
        merge_field(&mut original, key, value, schema)?;
    }
    Ok(original)
}

fn merge_field(original: &mut Object, key: String, value: Value, schema: Schema) -> Result<()> {
    if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
        return delete_from_list(original, field, value);
    }
    if key.starts_with('$') || value.is_null() {
        // Unknown directives are unknown fields to the typed decode that follows, which drops them.
        original.remove(&key);
        return Ok(());
    }
    let (strategy, schema) = schema.field(&key);
    let merged = merge_value(original.remove(&key), value, strategy, schema)?;
    original.insert(key, merged);
    Ok(())
}

/// Merges one field's patch value into its original value (`None`: the field is absent). Values
/// copied in wholesale are first merged into nothing, which drops the `null`s and `$`-directives the
/// real server's typed decode would drop.
fn merge_value(original: Option<Value>, patch: Value, strategy: Strategy, schema: Schema) -> Result<Value> {
    match (original, patch) {
        (Some(Value::Object(o)), Value::Object(p)) if strategy != Strategy::Replace => {
            merge_map(o, p, schema).map(Value::Object)
        }
        (Some(Value::Array(o)), Value::Array(p)) => merge_list_field(o, p, strategy, schema).map(Value::Array),
        (_, Value::Array(p)) => merge_list_field(Vec::new(), p, strategy, schema).map(Value::Array),
        (_, Value::Object(p)) => merge_map(Object::new(), p, schema).map(Value::Object),
        (_, scalar) => Ok(scalar),
    }
}

/// A value copied in wholesale, cleaned as [`merge_value`] says.
fn clean(value: Value, schema: Schema) -> Result<Value> {
    merge_value(None, value, Strategy::Default, schema)
}

fn merge_list_field(original: Vec<Value>, patch: Vec<Value>, strategy: Strategy, schema: Schema) -> Result<Vec<Value>> {
    match strategy {
        Strategy::Merge(key) => merge_list(original, patch, key, schema),
        _ => patch.into_iter().map(|v| clean(v, schema)).collect(),
    }
}

/// Merges a list with `patchStrategy: merge` (apimachinery `mergeSlice`): scalars are unioned, maps
/// matched by `key` and merged, `$patch` elements obeyed. Elements the patch names come first
/// unless the original already orders them, as on the real server.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&'static str>,
    schema: Schema,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if element_type(&original, &patch)? != GoType::Map {
        let patch_ids = identities(&patch, None)?;
        let server_ids = identities(&original, None)?;
        let mut merged: Vec<Value> = Vec::new();
        for v in original.into_iter().chain(patch) {
            if !merged.contains(&v) {
                merged.push(v);
            }
        }
        return order(merged, &patch_ids, &server_ids, None);
    }
    let key =
        key.ok_or_else(|| PatchError::Strategic("cannot merge lists without merge key for type struct".into()))?;
    let (original, patch) = list_directives(original, patch, key, schema)?;
    let patch_ids = identities(&patch, Some(key))?;
    let server_ids = identities(&original, Some(key))?;
    let mut merged = original;
    for item in patch {
        let id = identity(&item, Some(key))?;
        match merged.iter().position(|o| o.get(key) == Some(id)) {
            Some(i) => merged[i] = merge_value(Some(std::mem::take(&mut merged[i])), item, Strategy::Default, schema)?,
            None => merged.push(clean(item, schema)?),
        }
    }
    order(merged, &patch_ids, &server_ids, Some(key))
}

/// Obeys `$patch` in list elements (apimachinery `mergeSliceWithSpecialElements`): `delete` removes
/// the original elements with that key, `replace` makes the other patch elements the whole list.
/// Returns the original and the patch elements left to merge.
fn list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    schema: Schema,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = identity(&item, Some(key))?;
                original.retain(|o| o.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Strategic("merging lists cannot yet be specified in the patch".into()));
            }
            _ => return Err(unknown_directive(directive, item.as_object().unwrap_or(&Object::new()))),
        }
    }
    if replace {
        let replacement = plain.into_iter().map(|v| clean(v, schema)).collect::<Result<_>>()?;
        return Ok((replacement, Vec::new()));
    }
    Ok((original, plain))
}

/// An element placed in a merged list, with its position in the original list.
struct Placed {
    server: Option<usize>,
    item: Value,
}

/// Orders a merged list (apimachinery `normalizeElementOrder`): elements named in `patch_ids` in that
/// order, the others in their original order, the two interleaved where the original orders both.
fn order(merged: Vec<Value>, patch_ids: &[Value], server_ids: &[Value], key: Option<&str>) -> Result<Vec<Value>> {
    let mut from_patch = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let id = identity(&item, key)?;
        let server = server_ids.iter().position(|s| s == id);
        match patch_ids.iter().position(|p| p == id) {
            Some(at) => from_patch.push((at, Placed { server, item })),
            None => server_only.push((server.unwrap_or(usize::MAX), Placed { server, item })),
        }
    }
    from_patch.sort_by_key(|(at, _)| *at);
    server_only.sort_by_key(|(at, _)| *at);
    let mut left: VecDeque<Placed> = server_only.into_iter().map(|(_, p)| p).collect();
    let mut right: VecDeque<Placed> = from_patch.into_iter().map(|(_, p)| p).collect();
    let mut out = Vec::with_capacity(left.len() + right.len());
    while let (Some(l), Some(r)) = (left.front(), right.front()) {
        let left_first = matches!((l.server, r.server), (Some(a), Some(b)) if a < b);
        out.extend(if left_first { left.pop_front() } else { right.pop_front() }.map(|p| p.item));
    }
    out.extend(left.into_iter().chain(right).map(|p| p.item));
    Ok(out)
}

/// What identifies an element for matching and ordering: its merge-key value, or itself.
fn identity<'a>(item: &'a Value, key: Option<&str>) -> Result<&'a Value> {
    match key {
        None => Ok(item),
        Some(k) => item.get(k).ok_or_else(|| missing_merge_key(item, k)),
    }
}

fn identities(list: &[Value], key: Option<&str>) -> Result<Vec<Value>> {
    list.iter().map(|v| identity(v, key).cloned()).collect()
}

/// `$retainKeys` (apimachinery `applyRetainKeysDirective`): fields of the original not listed are
/// cleared; every field the patch sets must be listed.
fn retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(retain) = retain else { return Err(PatchError::BadRetainKeys) };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    let unlisted = patch.iter().any(|(k, v)| {
        !v.is_null() && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST) && !k.starts_with(SET_ELEMENT_ORDER) && !listed(k)
    });
    if unlisted {
        return Err(PatchError::BadRetainKeys);
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>` (apimachinery `mergePatchIntoOriginal`): merges the field's patch list
/// into the original, then orders the result as the directive lists it. The directive is consumed.
fn set_element_orders(original: &mut Object, patch: &mut Object, schema: Schema) -> Result<()> {
    let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for directive in directives {
        let Some(order_list) = patch.remove(&directive) else { continue };
        let Value::Array(order_list) = order_list else { return Err(wrong_type(GoType::Slice, &order_list)) };
        let field = directive[SET_ELEMENT_ORDER.len()..].strip_prefix('/').ok_or(PatchError::BadSetElementOrder)?;
        let (strategy, element) = schema.field(field);
        let key = match strategy {
            Strategy::Merge(key) => key,
            _ => None,
        };
        let original_list = list_of(original.remove(field))?;
        let patch_list = list_of(patch.remove(field))?;
        check_order(patch_list.as_deref().unwrap_or_default(), &order_list, key)?;
        let server_ids = identities(original_list.as_deref().unwrap_or_default(), key)?;
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (o, Some(p)) => merge_list_field(o.unwrap_or_default(), p, strategy, element)?,
            (None, None) => continue,
        };
        let ordered = order(merged, &identities(&order_list, key)?, &server_ids, key)?;
        original.insert(field.to_string(), Value::Array(ordered));
    }
    Ok(())
}

fn list_of(value: Option<Value>) -> Result<Option<Vec<Value>>> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(wrong_type(GoType::Slice, &other)),
    }
}

/// The patch list must follow the `$setElementOrder` list (apimachinery
/// `validatePatchWithSetOrderList`); deletions and other directives are not ordered.
fn check_order(patch: &[Value], order_list: &[Value], key: Option<&str>) -> Result<()> {
    if patch.is_empty() || order_list.is_empty() {
        return Ok(());
    }
    if key.is_some()
        && let Some(item) = patch.iter().find(|v| !v.is_object())
    {
        return Err(wrong_type(GoType::Map, item));
    }
    let ordered: Vec<&Value> =
        patch.iter().filter(|v| key.is_none() || v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")).collect();
    let (mut p, mut o) = (0, 0);
    while p < ordered.len() && o < order_list.len() {
        if ordered[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if identity(ordered[p], key)? == identity(&order_list[o], key)? {
            p += 1;
        }
        o += 1;
    }
    if p < ordered.len() {
        return Err(PatchError::Strategic(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order_list.to_vec()))
        )));
    }
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: removes the listed values from the field's list. Where the
/// real server misbehaves this does not: a missing list stays missing (Go stores the deletion list
/// in its place), and a list without merge strategy is not replaced by the deletion list.
fn delete_from_list(original: &mut Object, field: &str, values: Value) -> Result<()> {
    let field = field.strip_prefix('/').ok_or(PatchError::BadPrimitiveList)?;
    let Value::Array(values) = values else { return Err(PatchError::BadPrimitiveList) };
    if let Some(Value::Array(list)) = original.get_mut(field) {
        list.retain(|v| !values.contains(v));
    }
    Ok(())
}

/// The type all elements of both lists share (apimachinery `sliceElementType`).
fn element_type(original: &[Value], patch: &[Value]) -> Result<GoType> {
    let mut types = original.iter().chain(patch).map(GoType::of);
    let first = types.next().unwrap_or(GoType::Nil);
    if first == GoType::Slice {
        return Err(PatchError::Rejected { cause: "lists of lists are not supported".into() });
    }
    if types.any(|t| t != first) {
        let lists = Value::Array(vec![Value::Array(original.to_vec()), Value::Array(patch.to_vec())]);
        return Err(PatchError::Strategic(format!("list element types are not identical: {}", go_fmt(&lists))));
    }
    Ok(first)
}

fn unknown_directive(directive: &Value, map: &Object) -> PatchError {
    PatchError::Strategic(format!("unknown patch type: {} in map: {}", go_fmt(directive), go_fmt_map(map)))
}

fn missing_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::Strategic(format!("map: {} does not contain declared merge key: {key}", go_fmt(item)))
}

fn wrong_type(expected: GoType, actual: &Value) -> PatchError {
    PatchError::Strategic(format!("expected a {}, but received a {}", expected.name(), GoType::of(actual).name()))
}

/// The Go type a JSON value decodes to (`interface{}` holding ...), which the real server's messages name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoType {
    Nil,
    Bool,
    Int64,
    Float64,
    String,
    Slice,
    Map,
}

impl GoType {
    fn of(value: &Value) -> GoType {
        match value {
            Value::Null => GoType::Nil,
            Value::Bool(_) => GoType::Bool,
            Value::Number(n) if n.is_f64() => GoType::Float64,
            Value::Number(_) => GoType::Int64,
            Value::String(_) => GoType::String,
            Value::Array(_) => GoType::Slice,
            Value::Object(_) => GoType::Map,
        }
    }

    /// As `reflect.Type` prints it.
    fn name(self) -> &'static str {
        match self {
            GoType::Nil => "<nil>",
            GoType::Bool => "bool",
            GoType::Int64 => "int64",
            GoType::Float64 => "float64",
            GoType::String => "string",
            GoType::Slice => "[]interface {}",
            GoType::Map => "map[string]interface {}",
        }
    }

    /// As `encoding/json` names the JSON value in an `UnmarshalTypeError`.
    fn json_name(self) -> &'static str {
        match self {
            GoType::Nil => "null",
            GoType::Bool => "bool",
            GoType::Int64 | GoType::Float64 => "number",
            GoType::String => "string",
            GoType::Slice => "array",
            GoType::Map => "object",
        }
    }
}

/// A decoded JSON value as Go's `%v` prints it (`map[k:v]`, `[a b]`, `<nil>`).
fn go_fmt(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => go_fmt_map(map),
        other => other.to_string(),
    }
}

fn go_fmt_map(map: &Object) -> String {
    format!("map[{}]", map.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(target: &Value, ty: PatchType, kind: &str, patch: Value) -> Value {
        apply(target, patch.to_string().as_bytes(), ty, kind).expect("the patch applies")
    }

    fn strategic(target: &Value, kind: &str, patch: Value) -> Value {
        patched(target, PatchType::Strategic, kind, patch)
    }

    fn refused(target: &Value, ty: PatchType, kind: &str, body: &str) -> PatchError {
        apply(target, body.as_bytes(), ty, kind).expect_err("the patch is refused")
    }

    /// A pod with containers given as (name, image).
    fn pod(containers: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> = containers.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}, "spec": {"containers": containers}})
    }

    fn node() -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24"}})
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect()
    }

    fn has_directives(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('$') || has_directives(v)),
            Value::Array(items) => items.iter().any(has_directives),
            _ => false,
        }
    }

    #[test]
    fn content_types_select_formats_and_parameters_are_ignored() {
        assert_eq!(PatchType::from_content_type("application/merge-patch+json"), Some(PatchType::Merge));
        assert_eq!(PatchType::from_content_type("application/json-patch+json; charset=utf-8"), Some(PatchType::Json));
        assert_eq!(PatchType::from_content_type("application/strategic-merge-patch+json"), Some(PatchType::Strategic));
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml"), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type("application/apply-patch+cbor"), None);
        assert_eq!(
            PatchType::ALL,
            [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml"
            ]
        );
    }

    #[test]
    fn merge_patch_merges_maps_deletes_nulls_and_replaces_lists() {
        let target = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"ports": [1, 2]}});
        let out = patched(
            &target,
            PatchType::Merge,
            "Service",
            json!({"metadata": {"labels": {"tier": null, "team": "sre"}}, "spec": {"ports": [3]}}),
        );
        assert_eq!(out, json!({"metadata": {"labels": {"app": "web", "team": "sre"}}, "spec": {"ports": [3]}}));
    }

    #[test]
    fn merge_patch_drops_nulls_inside_lists_it_copies_in() {
        let out = patched(&json!({}), PatchType::Merge, "ConfigMap", json!({"items": [{"a": 1, "b": null}, null]}));
        assert_eq!(out, json!({"items": [{"a": 1}, null]}));
    }

    #[test]
    fn merge_patch_bodies_that_are_not_objects_are_refused_as_the_server_refuses_them() {
        let target = json!({"a": 1});
        for body in ["{", "null", "3", ""] {
            let e = refused(&target, PatchType::Merge, "ConfigMap", body);
            assert_eq!((e.code(), e.reason(), e.to_string().as_str()), (400, "BadRequest", "Invalid JSON Patch"));
        }
        let e = refused(&target, PatchType::Merge, "ConfigMap", "[1]");
        assert_eq!((e.code(), e.reason()), (422, "Invalid"));
        assert!(e.to_string().starts_with(r#" "" is invalid: patch: Invalid value: "[1]": couldn't get version/kind"#));
    }

    #[test]
    fn json_patch_applies_every_operation() {
        let target = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 1, "list": [1, 2]}});
        let ops = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/tier", "value": "fe"},
            {"op": "remove", "path": "/metadata/labels/app"},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/spec/moved"}
        ]);
        let out = patched(&target, PatchType::Json, "Deployment", ops);
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"tier": "fe"}}, "spec": {"replicas": 3, "list": [1, 2, 3], "moved": 3}})
        );
    }

    #[test]
    fn a_failed_json_patch_test_is_a_422_and_leaves_the_target_unchanged() {
        let target = json!({"metadata": {"uid": "u1", "labels": {"app": "web"}}});
        let before = target.clone();
        let body = json!([
            {"op": "remove", "path": "/metadata/labels/app"},
            {"op": "test", "path": "/metadata/uid", "value": "u2"}
        ]);
        let e = refused(&target, PatchType::Json, "Pod", &body.to_string());
        assert_eq!((e.code(), e.reason()), (422, "Invalid"));
        assert_eq!(e.to_string(), "the server rejected our request due to an error in our request");
        assert_eq!(e.cause(), Some("testing value /metadata/uid failed: test failed"));
        assert_eq!(target, before);
    }

    #[test]
    fn json_patch_bodies_are_checked_in_two_steps_like_the_server() {
        let target = json!({});
        let e = refused(&target, PatchType::Json, "Pod", r#"{"op": "add"}"#);
        assert_eq!(e.code(), 400);
        assert_eq!(e.to_string(), "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        assert_eq!(refused(&target, PatchType::Json, "Pod", "[1]").code(), 400);
        assert_eq!(refused(&target, PatchType::Json, "Pod", "").to_string(), "unexpected end of JSON input");
        let e = refused(&target, PatchType::Json, "Pod", r#"[{"op": "frobnicate", "path": "/a"}]"#);
        assert_eq!((e.code(), e.cause()), (422, Some("Unexpected kind: frobnicate")));
        let e = refused(&target, PatchType::Json, "Pod", r#"[{"op": "remove", "path": "/missing"}]"#);
        assert_eq!(e.code(), 422);
        let too_many = Value::Array(vec![json!({"op": "test", "path": "", "value": {}}); 10_001]).to_string();
        let e = refused(&target, PatchType::Json, "Pod", &too_many);
        assert_eq!((e.code(), e.reason()), (413, "RequestEntityTooLarge"));
        assert_eq!(e.to_string(), "The allowed maximum operations in a JSON patch is 10000, got 10001");
    }

    #[test]
    fn cordon_then_uncordon_leaves_no_unschedulable_field() {
        let cordoned = strategic(&node(), "Node", json!({"spec": {"unschedulable": true}}));
        assert_eq!(cordoned["spec"]["unschedulable"], true);
        let uncordoned = strategic(&cordoned, "Node", json!({"spec": {"unschedulable": null}}));
        assert_eq!(uncordoned, node());
    }

    #[test]
    fn kubectls_two_way_patch_of_one_image_keeps_the_other_containers_and_no_directives() {
        let target = pod(&[("web", "nginx:1.25"), ("sidecar", "envoy:1"), ("logger", "fluent:2")]);
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "logger"}],
            "containers": [{"name": "sidecar", "image": "envoy:2"}]
        }});
        let out = strategic(&target, "Pod", patch);
        assert_eq!(names(&out["spec"]["containers"]), ["web", "sidecar", "logger"]);
        assert_eq!(out["spec"]["containers"][1]["image"], "envoy:2");
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.25");
        assert!(!has_directives(&out));
    }

    #[test]
    fn set_element_order_reorders_and_a_deletion_in_the_same_patch_is_applied() {
        let target = pod(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "containers": [{"$patch": "delete", "name": "b"}]
        }});
        let out = strategic(&target, "Pod", patch);
        assert_eq!(names(&out["spec"]["containers"]), ["c", "a"]);
        assert!(!has_directives(&out));
    }

    #[test]
    fn an_order_list_that_contradicts_the_patch_is_refused() {
        let target = pod(&[("a", "1"), ("b", "1")]);
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "2"}]
        }});
        let e = refused(&target, PatchType::Strategic, "Pod", &patch.to_string());
        assert_eq!((e.code(), e.reason()), (500, ""));
        assert!(e.to_string().starts_with("The order in patch list:"));
    }

    #[test]
    fn a_new_container_without_an_order_list_goes_first_as_on_the_real_server() {
        let out = strategic(
            &pod(&[("web", "nginx")]),
            "Pod",
            json!({"spec": {"containers": [{"name": "debug", "image": "busybox"}]}}),
        );
        assert_eq!(names(&out["spec"]["containers"]), ["debug", "web"]);
    }

    #[test]
    fn pod_conditions_merge_by_type() {
        let target = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"}
        ]}});
        let out = strategic(&target, "Pod", json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
        );
    }

    #[test]
    fn deployment_conditions_and_node_addresses_merge_by_type() {
        let deploy = json!({"status": {"conditions": [{"type": "Available", "status": "False"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Progressing", "status": "True"}]}});
        let out = strategic(&deploy, "Deployment", patch);
        assert_eq!(out["status"]["conditions"].as_array().map(Vec::len), Some(2));
        let node = json!({"status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.1"},
            {"type": "Hostname", "address": "n1"}
        ]}});
        let out =
            strategic(&node, "Node", json!({"status": {"addresses": [{"type": "Hostname", "address": "n1.local"}]}}));
        assert_eq!(out["status"]["addresses"][1], json!({"type": "Hostname", "address": "n1.local"}));
        assert_eq!(out["status"]["addresses"][0]["type"], "InternalIP");
    }

    #[test]
    fn patch_delete_removes_one_list_element() {
        let env = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let target = json!({"spec": {"containers": [{"name": "web", "env": env}]}});
        let patch = json!({"spec": {"containers": [{"name": "web", "env": [{"name": "A", "$patch": "delete"}]}]}});
        let out = strategic(&target, "Pod", patch);
        assert_eq!(out["spec"]["containers"][0]["env"], json!([{"name": "B", "value": "2"}]));
    }

    #[test]
    fn patch_replace_replaces_a_map_and_a_list() {
        let target = json!({
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}
        });
        let patch = json!({
            "metadata": {"labels": {"$patch": "replace", "owner": "sre"}},
            "spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "x"}]}
        });
        let out = strategic(&target, "Pod", patch);
        assert_eq!(out["metadata"]["labels"], json!({"owner": "sre"}));
        assert_eq!(out["spec"]["containers"], json!([{"name": "c", "image": "x"}]));
    }

    #[test]
    fn patch_merge_is_refused_as_the_real_server_refuses_it() {
        let target = json!({"metadata": {"labels": {"app": "web"}}});
        let body = json!({"metadata": {"labels": {"$patch": "merge", "a": "b"}}}).to_string();
        let e = refused(&target, PatchType::Strategic, "Pod", &body);
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (500, "unknown patch type: merge in map: map[$patch:merge a:b]")
        );
        let body = json!({"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}).to_string();
        let e = refused(&pod(&[("a", "1")]), PatchType::Strategic, "Pod", &body);
        assert_eq!(e.to_string(), "merging lists cannot yet be specified in the patch");
    }

    #[test]
    fn finalizers_are_unioned_with_new_ones_first_and_deleted_by_the_parallel_list() {
        let target = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = strategic(&target, "Pod", json!({"metadata": {"finalizers": ["b", "c"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = strategic(&target, "ConfigMap", json!({"metadata": {"finalizers": ["c"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let out = strategic(&target, "Pod", json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
        assert_eq!(out["metadata"], json!({"finalizers": ["b"]}));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let target = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a"}]}});
        let out =
            strategic(&target, "Pod", json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]}}));
        assert_eq!(out["metadata"]["ownerReferences"], json!([{"uid": "1", "name": "rs-a", "controller": true}]));
    }

    #[test]
    fn tolerations_and_taints_have_no_merge_key_and_are_replaced() {
        let target = json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}});
        let out = strategic(&target, "Pod", json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
        let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        let out = strategic(&node, "Node", json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}));
        assert_eq!(out["spec"]["taints"], json!([{"key": "b", "effect": "NoExecute"}]));
    }

    #[test]
    fn ports_merge_by_port_in_a_service_and_by_container_port_in_a_container() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let out = strategic(&svc, "Service", json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}));
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "targetPort": 9090}, {"port": 443}]));
        let p = json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}]}});
        let patch =
            json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
        let out = strategic(&p, "Pod", patch);
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
        );
    }

    #[test]
    fn a_deployments_pod_template_merges_like_a_pod_spec() {
        let containers = json!([{"name": "web", "image": "a"}, {"name": "log", "image": "b"}]);
        let target = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}});
        let patch = json!({"spec": {"template": {
            "metadata": {"annotations": {"restartedAt": "now"}},
            "spec": {"containers": [{"name": "web", "image": "c"}]}
        }}});
        let out = strategic(&target, "Deployment", patch);
        assert_eq!(names(&out["spec"]["template"]["spec"]["containers"]), ["web", "log"]);
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "c");
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn retain_keys_clears_the_fields_it_does_not_list() {
        let target = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = strategic(
            &target,
            "Deployment",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let body = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}).to_string();
        let e = refused(&target, PatchType::Strategic, "Deployment", &body);
        assert_eq!((e.code(), e.to_string().as_str()), (400, "invalid patch format of retainKeys"));
    }

    #[test]
    fn a_pdb_selector_is_replaced_whole() {
        let target = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}});
        let out =
            strategic(&target, "PodDisruptionBudget", json!({"spec": {"selector": {"matchLabels": {"app": "api"}}}}));
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"app": "api"}}));
        let out = strategic(&target, "Pod", json!({"spec": {"selector": {"matchLabels": {"tier": "fe"}}}}));
        assert_eq!(out["spec"]["selector"]["matchLabels"], json!({"app": "web", "tier": "fe"}));
    }

    #[test]
    fn strategic_merge_faults_are_refused_with_the_servers_words() {
        let target = pod(&[("web", "nginx")]);
        let e = refused(&target, PatchType::Strategic, "Pod", r#"{"spec": {"containers": [{"image": "x"}]}}"#);
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (500, "map: map[image:x] does not contain declared merge key: name")
        );
        let e = refused(&target, PatchType::Strategic, "Pod", "[]");
        assert_eq!((e.code(), e.reason()), (400, "BadRequest"));
        assert_eq!(e.to_string(), "json: cannot unmarshal array into Go value of type map[string]interface {}");
        assert_eq!(refused(&target, PatchType::Strategic, "Pod", "{").code(), 400);
        let e = refused(&target, PatchType::Strategic, "Pod", r#"{"metadata": {"finalizers": [["a"]]}}"#);
        assert_eq!((e.code(), e.cause()), (422, Some("lists of lists are not supported")));
        let e = refused(&target, PatchType::Strategic, "Pod", r#"{"metadata": {"$deleteFromPrimitiveList": ["a"]}}"#);
        assert_eq!(e, PatchError::BadPrimitiveList);
    }

    #[test]
    fn apply_merges_a_yaml_object_into_the_target() {
        let target = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1}
        });
        let body = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    team: sre\n\
                    spec:\n  replicas: 3\n";
        let out = apply(&target, body.as_bytes(), PatchType::Apply, "Deployment").expect("apply merges");
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "team": "sre"}));
        let created = apply(&json!({}), body.as_bytes(), PatchType::Apply, "Deployment").expect("apply creates");
        assert_eq!(created["metadata"]["name"], "web");
    }

    #[test]
    fn apply_refuses_bad_yaml_lists_and_another_version() {
        let target = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        let e = refused(&target, PatchType::Apply, "Deployment", "spec: [\n");
        assert_eq!(e.code(), 400);
        assert!(e.to_string().starts_with("error decoding YAML: error converting YAML to JSON: yaml: "));
        let e = refused(&target, PatchType::Apply, "Deployment", "- a\n- b\n");
        assert_eq!(
            e.to_string(),
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: \
             json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        let e = refused(&target, PatchType::Apply, "Deployment", "apiVersion: apps/v1beta1\nkind: Deployment\n");
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                400,
                "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
            )
        );
    }
}
