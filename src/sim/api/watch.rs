//! Watch streams as the real server writes them: HTTP 200, one JSON event per line; a
//! resourceVersion too old for the history is an in-band `ERROR` event with a 410 `Expired`
//! Status (never an HTTP 410, which would send kube-rs's watcher into an endless loop); bookmarks
//! when asked for; selector transitions sent as `ADDED`/`DELETED`; the stream ends at
//! `timeoutSeconds`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::sim::registry::ResourceType;
use crate::sim::selector::{FieldSelector, LabelSelector};
use crate::sim::status::ApiError;
use crate::sim::store::{Event, EventKind, Store, WatchRefused};

/// What a watch asked for.
#[derive(Debug, Clone)]
pub struct WatchParams {
    pub resource_version: Option<u64>,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// Fault injection: end the stream after this many events.
    pub drop_after: Option<usize>,
}

/// One event of the stream, `{"type":…,"object":…}` and a newline, written straight from the
/// stored object (a watch of every pod under a thousand writes a second copies nothing).
fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    serde_json::to_writer(&mut out, object).expect("a JSON value serializes");
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn error_line(e: &ApiError) -> Bytes {
    line("ERROR", &e.status())
}

/// How one store event looks to a watcher with these selectors: `None` when it does not see it.
fn deliver<'e>(e: &'e Event, p: &WatchParams) -> Option<(&'static str, Cow<'e, Value>)> {
    let passes = |o: &Value| p.labels.matches_object(o) && p.fields.matches(o);
    let now = passes(&e.object);
    let before = e.previous.as_deref().is_some_and(passes);
    match e.kind {
        EventKind::Added if now => Some(("ADDED", Cow::Borrowed(&*e.object))),
        EventKind::Deleted if passes(&e.object) => Some(("DELETED", Cow::Borrowed(&*e.object))),
        EventKind::Modified if now && before => Some(("MODIFIED", Cow::Borrowed(&*e.object))),
        EventKind::Modified if now => Some(("ADDED", Cow::Borrowed(&*e.object))),
        EventKind::Modified if before => {
            // It stopped matching: the watcher sees it deleted, as of this revision.
            let mut gone = e.previous.as_deref().cloned().unwrap_or(Value::Null);
            gone["metadata"]["resourceVersion"] = json!(e.rv.to_string());
            Some(("DELETED", Cow::Owned(gone)))
        }
        _ => None,
    }
}

fn bookmark(t: &ResourceType, rv: u64) -> Bytes {
    line(
        "BOOKMARK",
        &json!({"kind": t.kind, "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null}}),
    )
}

/// Starts a watch; the returned receiver yields the body's chunks until the stream ends.
pub fn start(
    store: Arc<Store>,
    t: Arc<ResourceType>,
    namespace: Option<String>,
    p: WatchParams,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let start = match store.watch(&t, namespace.as_deref(), p.resource_version) {
            Ok(s) => s,
            Err(WatchRefused::TooOld { requested, compacted }) => {
                // The watch cache prints `oldest - 1`, the revision before its oldest retained
                // event: here, the compacted revision.
                let e = crate::sim::status::expired(format!("too old resource version: {requested} ({compacted})"));
                let _ = tx.send(error_line(&e)).await;
                return;
            }
            Err(WatchRefused::TooNew { requested, current }) => {
                let e = ApiError::new(
                    504,
                    "Timeout",
                    format!("Timeout: Too large resource version: {requested}, current: {current}"),
                )
                .with_details(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]}),
                )
                .retry_after(1);
                let _ = tx.send(error_line(&e)).await;
                return;
            }
        };
        let mut sent = 0usize;
        let mut last_rv = start.resource_version;
        for e in &start.backlog {
            if let Some((kind, obj)) = deliver(e, &p) {
                if tx.send(line(kind, &obj)).await.is_err() {
                    return;
                }
                sent += 1;
            }
            last_rv = last_rv.max(e.rv);
        }
        let mut live = start.live;
        let deadline = tokio::time::Instant::now() + p.timeout;
        let final_bookmark = deadline.checked_sub(Duration::from_secs(2)).unwrap_or(deadline);
        let mut next_bookmark = tokio::time::Instant::now() + p.bookmark_interval;
        let mut final_sent = false;
        loop {
            if p.drop_after.is_some_and(|n| sent >= n) {
                return;
            }
            let wake = if p.bookmarks && !final_sent { next_bookmark.min(final_bookmark) } else { deadline };
            tokio::select! {
                received = live.recv() => match received {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if e.type_key != t.key() || namespace.as_deref().is_some_and(|n| e.namespace != n) {
                            continue;
                        }
                        if let Some((kind, obj)) = deliver(&e, &p) {
                            if tx.send(line(kind, &obj)).await.is_err() {
                                return;
                            }
                            sent += 1;
                        }
                    }
                    // A watcher that falls too far behind is closed, as the real server closes
                    // slow watchers; the client re-watches from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= deadline {
                        return;
                    }
                    if p.bookmarks {
                        if tx.send(bookmark(&t, last_rv)).await.is_err() {
                            return;
                        }
                        if tokio::time::Instant::now() >= final_bookmark {
                            final_sent = true;
                        }
                        next_bookmark = tokio::time::Instant::now() + p.bookmark_interval;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    rx
}
