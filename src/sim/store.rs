//! The simulator's storage: every object of every type, one cluster-wide resourceVersion counter,
//! and an event log that watches are served from.
//!
//! It keeps the rules the real API server keeps in its registry layer: uid, creationTimestamp and
//! resourceVersion on create; optimistic concurrency; `generation` counting desired-state changes;
//! the status subresource split; no-op writes that change nothing and emit nothing; finalizers and
//! graceful deletion; namespace existence and termination. Type-specific defaults live in
//! [`super::defaults`]; controllers and the HTTP layer both call this module.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::clock::SimClock;
use super::defaults;
use super::quantity::{NodeLoad, pod_load};
use super::registry::{Registry, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, ApiError};

/// An object as stored: its full JSON, shared.
pub type Obj = Arc<Value>;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, as watches and controllers see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    /// The storage identity of the type ([`ResourceType::key`]).
    pub type_key: String,
    pub namespace: String,
    pub kind: EventKind,
    /// The object after the change (for `Deleted`, its last state with the delete's resourceVersion).
    pub object: Obj,
    /// The object before the change (none for `Added`).
    pub previous: Option<Obj>,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: `.status` is kept as stored when the type has a status subresource.
    Main,
    /// The `/status` subresource: only `.status` changes.
    Status,
    /// A namespace's `/finalize` subresource: only `spec.finalizers` changes.
    Finalize,
}

/// The options of a DELETE.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `Orphan`, `Background` (default) or `Foreground`.
    pub propagation: Option<String>,
    pub dry_run: bool,
}

/// What a DELETE did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Obj),
    /// The object remains, marked for deletion (finalizers, graceful deletion, a namespace).
    Marked(Obj),
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Obj>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Where a watch starts.
#[derive(Debug)]
pub struct WatchStart {
    /// Events to send first: synthetic `Added` for the current state, or the logged events after
    /// the requested resourceVersion.
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The store's resourceVersion when the watch started.
    pub resource_version: u64,
}

/// Why a watch could not start where it was asked to.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchRefused {
    /// The requested resourceVersion is older than the retained history, which starts right
    /// after `compacted`.
    TooOld { requested: u64, compacted: u64 },
    /// The requested resourceVersion is newer than the store's.
    TooNew { requested: u64, current: u64 },
}

struct Snapshot {
    items: Arc<Vec<Obj>>,
    rv: u64,
    created: std::time::Instant,
}

struct Inner {
    rv: u64,
    objects: HashMap<String, BTreeMap<(String, String), Obj>>,
    log: VecDeque<Arc<Event>>,
    /// Events with rv <= this are no longer in the log.
    compacted: u64,
    log_limit: usize,
    snapshots: HashMap<u64, Snapshot>,
    next_snapshot: u64,
    /// What the pods bound to each node request, kept with every pod write.
    node_load: HashMap<String, NodeLoad>,
}

/// How long a continue token stays valid (the real server: until etcd compacts, ~5 minutes).
const SNAPSHOT_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The storage of one simulated cluster.
pub struct Store {
    pub registry: Arc<Registry>,
    pub clock: SimClock,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// A random name suffix as the real server makes them (no vowels, no confusable characters).
fn suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Whether two objects differ in anything but `metadata.resourceVersion`.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// The part of an object that counts as desired state for `generation`.
fn desired(t: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if t.status {
            m.remove("status");
        }
    }
    v
}

impl Store {
    pub fn new(registry: Arc<Registry>, clock: SimClock, log_limit: usize) -> Self {
        let (events, _) = broadcast::channel(16_384);
        let inner = Inner {
            rv: 1,
            objects: HashMap::new(),
            log: VecDeque::new(),
            compacted: 1,
            log_limit,
            snapshots: HashMap::new(),
            next_snapshot: 1,
            node_load: HashMap::new(),
        };
        Self { registry, clock, inner: Mutex::new(inner), events }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of every event from now on (controllers use this).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// What the pods bound to `node` request (the scheduler's view of its capacity).
    pub fn node_load(&self, node: &str) -> NodeLoad {
        self.lock().node_load.get(node).copied().unwrap_or_default()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Records a change: new revision, logged, broadcast. Called with the lock held.
    fn commit(
        &self,
        inner: &mut Inner,
        t: &ResourceType,
        kind: EventKind,
        mut object: Value,
        previous: Option<Obj>,
    ) -> Obj {
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(rv.to_string()));
        let object = Arc::new(object);
        let ns = meta_str(&object, "namespace").to_string();
        let name = meta_str(&object, "name").to_string();
        let bucket = inner.objects.entry(t.key()).or_default();
        match kind {
            EventKind::Deleted => {
                bucket.remove(&(ns.clone(), name));
            }
            _ => {
                bucket.insert((ns.clone(), name), object.clone());
            }
        }
        if t.key() == "/pods" {
            let before = previous.as_deref().and_then(pod_load);
            let after = if kind == EventKind::Deleted { None } else { pod_load(&object) };
            if before != after {
                if let Some((node, l)) = before {
                    *inner.node_load.entry(node.to_string()).or_default() -= l;
                }
                if let Some((node, l)) = after {
                    *inner.node_load.entry(node.to_string()).or_default() += l;
                }
            }
        }
        let event = Arc::new(Event { rv, type_key: t.key(), namespace: ns, kind, object: object.clone(), previous });
        inner.log.push_back(event.clone());
        while inner.log.len() > inner.log_limit {
            if let Some(old) = inner.log.pop_front() {
                inner.compacted = old.rv;
            }
        }
        let _ = self.events.send(event);
        object
    }

    fn current(inner: &Inner, t: &ResourceType, ns: &str, name: &str) -> Option<Obj> {
        inner.objects.get(&t.key())?.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// The namespace object `ns`, if it exists.
    fn namespace(&self, inner: &Inner, ns: &str) -> Option<Obj> {
        inner.objects.get("/namespaces")?.get(&(String::new(), ns.to_string())).cloned()
    }

    pub fn get(&self, t: &ResourceType, ns: &str, name: &str) -> Result<Obj, ApiError> {
        Self::current(&self.lock(), t, ns, name).ok_or_else(|| status::not_found(t, name))
    }

    /// Every object of a type (in one namespace, or all), in key order, without selectors.
    pub fn all(&self, t: &ResourceType, ns: Option<&str>) -> Vec<Obj> {
        let inner = self.lock();
        let Some(bucket) = inner.objects.get(&t.key()) else { return Vec::new() };
        match ns {
            Some(ns) => bucket
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, o)| o.clone())
                .collect(),
            None => bucket.values().cloned().collect(),
        }
    }

    /// A page of a list.
    pub fn list(
        &self,
        t: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let (items, rv, offset) = match continue_token.filter(|c| !c.is_empty()) {
            Some(token) => {
                let (id, offset) = decode_continue(token)?;
                let mut inner = self.lock();
                inner.snapshots.retain(|_, s| s.created.elapsed() < SNAPSHOT_TTL);
                let snap = inner.snapshots.get(&id).ok_or_else(|| {
                    status::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    )
                })?;
                (snap.items.clone(), snap.rv, offset)
            }
            None => {
                let rv = self.resource_version();
                let items: Vec<Obj> =
                    self.all(t, ns).into_iter().filter(|o| labels.matches_object(o) && fields.matches(o)).collect();
                (Arc::new(items), rv, 0)
            }
        };
        let end = match limit {
            Some(l) if l > 0 => (offset + l).min(items.len()),
            _ => items.len(),
        };
        let page: Vec<Obj> = items[offset.min(items.len())..end].to_vec();
        let continue_token = if end < items.len() {
            let mut inner = self.lock();
            let id = match continue_token.and_then(|c| decode_continue(c).ok()) {
                Some((id, _)) => id,
                None => {
                    let id = inner.next_snapshot;
                    inner.next_snapshot += 1;
                    inner
                        .snapshots
                        .insert(id, Snapshot { items: items.clone(), rv, created: std::time::Instant::now() });
                    id
                }
            };
            Some(encode_continue(id, end))
        } else {
            None
        };
        let remaining = continue_token.as_ref().map(|_| items.len() - end);
        Ok(Page { items: page, resource_version: rv, continue_token, remaining })
    }

    /// Creates an object. `ns` is the namespace from the URL (empty for cluster-scoped types).
    pub fn create(&self, t: &ResourceType, ns: &str, mut obj: Value, dry_run: bool) -> Result<Obj, ApiError> {
        if !obj.is_object() {
            return Err(status::bad_request("the body of the request is not a JSON object"));
        }
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        let m = meta_mut(&mut obj);
        let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
        if t.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        let mut name = m.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", suffix()),
                _ => {
                    return Err(status::invalid(
                        t,
                        "",
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        m.insert("name".into(), json!(name));
        for f in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(self.clock.stamp()));
        if t.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if t.status && obj.get("status").is_some() {
            obj.as_object_mut().expect("object").remove("status");
        }
        let mut inner = self.lock();
        if t.namespaced {
            match self.namespace(&inner, ns) {
                None => return Err(status::namespace_not_found(ns)),
                Some(n) if n["status"]["phase"] == "Terminating" => {
                    return Err(status::namespace_terminating(t, &name, ns));
                }
                Some(_) => {}
            }
        }
        if Self::current(&inner, t, ns, &name).is_some() {
            return Err(status::already_exists(t, &name));
        }
        defaults::on_create(t, &mut obj, &self.clock)?;
        if dry_run {
            return Ok(Arc::new(obj));
        }
        Ok(self.commit(&mut inner, t, EventKind::Added, obj, None))
    }

    /// Replaces an object (PUT), on the main resource or its status.
    pub fn update(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        new: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Obj, ApiError> {
        let mut inner = self.lock();
        let old = Self::current(&inner, t, ns, name).ok_or_else(|| status::not_found(t, name))?;
        let body_name = meta_str(&new, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&new, "namespace");
        if t.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        match meta(&new)["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
            Some(rv) if rv != meta_str(&old, "resourceVersion") => return Err(status::conflict(t, name)),
            Some(_) => {}
            None if !t.builtin => return Err(status::resource_version_required(t, name)),
            None => {}
        }
        let merged = self.merge_update(t, &old, new, part)?;
        self.write(&mut inner, t, old, merged, dry_run)
    }

    /// Reads, changes and writes an object atomically (controllers, patches). `change` sees the
    /// stored object; returning `Ok(None)` writes nothing.
    pub fn mutate(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        part: Part,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Option<Value>, ApiError>,
    ) -> Result<Obj, ApiError> {
        let mut inner = self.lock();
        let old = Self::current(&inner, t, ns, name).ok_or_else(|| status::not_found(t, name))?;
        let Some(new) = change(&old)? else { return Ok(old) };
        let merged = self.merge_update(t, &old, new, part)?;
        self.write(&mut inner, t, old, merged, dry_run)
    }

    /// The stored object with the parts of `new` that `part` may change.
    fn merge_update(&self, t: &ResourceType, old: &Value, mut new: Value, part: Part) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(status::bad_request("the body of the request is not a JSON object"));
        }
        let mut merged = match part {
            Part::Finalize => {
                let mut m = old.clone();
                m["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
                m
            }
            Part::Status => {
                let mut m = old.clone();
                m["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                if m["status"].is_null() {
                    m.as_object_mut().expect("object").remove("status");
                }
                m
            }
            Part::Main => {
                if t.status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            new.as_object_mut().expect("object").remove("status");
                        }
                    }
                }
                new
            }
        };
        merged["apiVersion"] = json!(t.api_version());
        merged["kind"] = json!(t.kind);
        // What the server owns stays as stored.
        let old_meta = meta(old).clone();
        let name = old_meta["name"].as_str().unwrap_or_default().to_string();
        let m = meta_mut(&mut merged);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        m.insert("resourceVersion".into(), old_meta["resourceVersion"].clone());
        if old_meta.get("deletionTimestamp").is_some() {
            let before: Vec<&Value> = old_meta["finalizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
            let after = m.get("finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut added: Vec<&str> = after.iter().filter(|f| !before.contains(f)).filter_map(Value::as_str).collect();
            if !added.is_empty() {
                // The message ends with Go's `%#v` of the sorted new finalizers (ValidateNoNewFinalizers).
                added.sort_unstable();
                added.dedup();
                let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                return Err(status::invalid(
                    t,
                    &name,
                    "metadata.finalizers",
                    "FieldValueForbidden",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        quoted.join(", ")
                    ),
                ));
            }
        }
        if t.generation && part == Part::Main && desired(t, old) != desired(t, &merged) {
            let generation = old_meta["generation"].as_i64().unwrap_or(1) + 1;
            meta_mut(&mut merged).insert("generation".into(), json!(generation));
        }
        defaults::on_update(t, old, &mut merged, part)?;
        Ok(merged)
    }

    /// Writes an updated object: nothing when nothing changed; removal when the last finalizer of
    /// an object marked for deletion went.
    fn write(&self, inner: &mut Inner, t: &ResourceType, old: Obj, new: Value, dry_run: bool) -> Result<Obj, ApiError> {
        if same_content(&old, &new) {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(new));
        }
        let non_empty = |v: &Value| v.as_array().is_some_and(|f| !f.is_empty());
        let mut finalizers_left = non_empty(&new["metadata"]["finalizers"]);
        if t.key() == "/namespaces" {
            // A namespace also waits for the `kubernetes` finalizer in its spec.
            finalizers_left |= non_empty(&new["spec"]["finalizers"]);
        }
        let marked = new["metadata"].get("deletionTimestamp").is_some();
        let waiting_for_kubelet = t.key() == "/pods" && defaults::pod_deletion_pending(&new);
        if marked && !finalizers_left && !waiting_for_kubelet {
            return Ok(self.commit(inner, t, EventKind::Deleted, new, Some(old)));
        }
        Ok(self.commit(inner, t, EventKind::Modified, new, Some(old)))
    }

    /// Deletes an object, or marks it for deletion.
    pub fn delete(&self, t: &ResourceType, ns: &str, name: &str, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
        let mut inner = self.lock();
        let old = Self::current(&inner, t, ns, name).ok_or_else(|| status::not_found(t, name))?;
        let uid = meta_str(&old, "uid");
        if let Some(want) = opts.precondition_uid.as_deref().filter(|u| !u.is_empty() && *u != uid) {
            return Err(status::conflict_with(
                t,
                name,
                &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
            ));
        }
        if let Some(want) = opts.precondition_rv.as_deref().filter(|r| !r.is_empty()) {
            let have = meta_str(&old, "resourceVersion");
            if want != have {
                return Err(status::conflict_with(
                    t,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                    ),
                ));
            }
        }
        if t.key() == "/namespaces" && ["default", "kube-system", "kube-public"].contains(&name) {
            return Err(status::forbidden(t, name, "this namespace may not be deleted"));
        }
        let mut new = (*old).clone();
        let now = self.clock.stamp();
        let already = meta(&old).get("deletionTimestamp").is_some();
        // Finalizers the propagation policy asks for, while the object still has dependents to handle.
        match opts.propagation.as_deref() {
            Some("Foreground") if !already => add_finalizer(&mut new, "foregroundDeletion"),
            Some("Orphan") if !already => add_finalizer(&mut new, "orphan"),
            _ => {}
        }
        let finalizers = new["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if t.key() == "/namespaces" {
            if !already {
                let m = meta_mut(&mut new);
                m.insert("deletionTimestamp".into(), json!(now));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                new["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok(Deleted::Marked(Arc::new(new)));
            }
            return Ok(Deleted::Marked(self.write(&mut inner, t, old, new, false)?));
        }
        if let Some(grace) = defaults::pod_grace_period(&new, opts.grace_period_seconds).filter(|_| t.key() == "/pods")
        {
            if already {
                // A shorter grace period may be asked for; a longer one is ignored.
                let current = new["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(grace);
                if grace >= current {
                    return Ok(Deleted::Marked(old));
                }
            }
            let at = self.clock.now() + chrono::TimeDelta::seconds(grace);
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            if opts.dry_run {
                return Ok(Deleted::Marked(Arc::new(new)));
            }
            return Ok(Deleted::Marked(self.commit(&mut inner, t, EventKind::Modified, new, Some(old))));
        }
        if finalizers {
            // A pod marked with a grace period that is now deleted at once (the kubelet's final
            // grace-0 delete, a force delete) keeps waiting for its finalizers with grace 0, so
            // that removing the last one removes it.
            let shortened = t.key() == "/pods" && meta(&old)["deletionGracePeriodSeconds"].as_i64() != Some(0);
            if already && !shortened {
                return Ok(Deleted::Marked(old));
            }
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(now));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if opts.dry_run {
                return Ok(Deleted::Marked(Arc::new(new)));
            }
            return Ok(Deleted::Marked(self.commit(&mut inner, t, EventKind::Modified, new, Some(old))));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(old));
        }
        Ok(Deleted::Gone(self.commit(&mut inner, t, EventKind::Deleted, new, Some(old))))
    }

    /// Starts a watch of a type (in one namespace or all) at `from`: `None` or `Some(0)` start
    /// with the current state, `Some(rv)` exactly after `rv`.
    pub fn watch(&self, t: &ResourceType, ns: Option<&str>, from: Option<u64>) -> Result<WatchStart, WatchRefused> {
        let inner = self.lock();
        let live = self.events.subscribe();
        let key = t.key();
        let in_scope = |e: &Event| e.type_key == key && ns.is_none_or(|n| e.namespace == n);
        let backlog = match from {
            None | Some(0) => {
                let objects: Vec<Obj> = match inner.objects.get(&key) {
                    None => Vec::new(),
                    Some(bucket) => match ns {
                        Some(n) => bucket
                            .range((n.to_string(), String::new())..)
                            .take_while(|((x, _), _)| x == n)
                            .map(|(_, o)| o.clone())
                            .collect(),
                        None => bucket.values().cloned().collect(),
                    },
                };
                objects
                    .into_iter()
                    .map(|o| {
                        Arc::new(Event {
                            rv: inner.rv,
                            type_key: key.clone(),
                            namespace: meta_str(&o, "namespace").to_string(),
                            kind: EventKind::Added,
                            object: o,
                            previous: None,
                        })
                    })
                    .collect()
            }
            Some(rv) if rv < inner.compacted => {
                return Err(WatchRefused::TooOld { requested: rv, compacted: inner.compacted });
            }
            Some(rv) if rv > inner.rv => return Err(WatchRefused::TooNew { requested: rv, current: inner.rv }),
            Some(rv) => inner.log.iter().filter(|e| e.rv > rv && in_scope(e)).cloned().collect(),
        };
        Ok(WatchStart { backlog, live, resource_version: inner.rv })
    }

    /// Drops the event history up to now: every watch from an older resourceVersion gets 410.
    pub fn compact(&self) -> u64 {
        let mut inner = self.lock();
        inner.log.clear();
        inner.compacted = inner.rv;
        inner.snapshots.clear();
        inner.rv
    }
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let m = meta_mut(obj);
    let list = m.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(a) = list.as_array_mut()
        && !a.iter().any(|x| x == f)
    {
        a.push(json!(f));
    }
}

/// Continue tokens: unpadded base64url of `{"id": snapshot, "offset": n}` (opaque to clients).
fn encode_continue(id: u64, offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"id": id, "offset": offset}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, usize), ApiError> {
    use base64::Engine;
    let bad = || status::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((v["id"].as_u64().ok_or_else(bad)?, v["offset"].as_u64().ok_or_else(bad)? as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"},
               "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    #[test]
    fn node_load_follows_binding_finishing_and_deletion_of_pods() {
        let store = Store::new(Arc::new(Registry::new()), SimClock::default(), 100);
        let pods = store.registry.find("", "v1", "pods").unwrap();
        let ns = store.registry.find("", "v1", "namespaces").unwrap();
        store.create(&ns, "", json!({"metadata": {"name": "ns"}}), false).unwrap();
        store.create(&pods, "ns", pod("", "250m"), false).unwrap();
        assert_eq!(store.node_load("n1"), NodeLoad::default(), "an unbound pod counts nowhere");
        store.mutate(&pods, "ns", "p", Part::Main, false, |_| Ok(Some(pod("n1", "250m")))).unwrap();
        assert_eq!(store.node_load("n1"), NodeLoad { pods: 1, cpu: 250, memory: 0 });
        store
            .mutate(&pods, "ns", "p", Part::Status, false, |p| {
                let mut p = p.clone();
                p["status"]["phase"] = json!("Succeeded");
                Ok(Some(p))
            })
            .unwrap();
        assert_eq!(store.node_load("n1").pods, 0, "a finished pod frees its node");
        store
            .mutate(&pods, "ns", "p", Part::Status, false, |p| {
                let mut p = p.clone();
                p["status"]["phase"] = json!("Running");
                Ok(Some(p))
            })
            .unwrap();
        store.delete(&pods, "ns", "p", &DeleteOptions { grace_period_seconds: Some(0), ..Default::default() }).unwrap();
        assert_eq!(store.node_load("n1"), NodeLoad::default(), "a deleted pod frees its node");
    }
}
