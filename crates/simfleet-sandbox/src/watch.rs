//! Watch streams: replay from a resourceVersion (or the current state), then live changes,
//! bookmarks when asked, and the end at `timeoutSeconds`; 410 Gone past the change log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::registry;
use super::status::ApiStatus;
use super::store::{Change, Filter, Store};

/// One watch event as a JSON line.
fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("JSON values serialise");
    line.push(b'\n');
    Bytes::from(line)
}

/// Starts a watch: replay from `resourceVersion` (or the current state), then live changes,
/// bookmarks when asked, and the end at `timeoutSeconds`.
pub(super) fn start(
    store: &mut Store,
    def_index: usize,
    namespace: Option<String>,
    def: &registry::ResourceDef,
    params: &HashMap<String, String>,
) -> Response {
    let filter = match Filter::parse(
        params.get("labelSelector").map(String::as_str),
        params.get("fieldSelector").map(String::as_str),
        def.field_labels,
    ) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let rv_param = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true" || b == "1");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    // A view (events.k8s.io Events) watches the resource its objects are stored under.
    let (stored, view) = store.stored_as(def_index);
    let shown = move |object: &Value| match view {
        Some(view) => view.to_view(object.clone()),
        None => object.clone(),
    };
    let mut initial: Vec<Bytes> = Vec::new();
    let receiver: broadcast::Receiver<Arc<Change>>;
    let send_initial = params.get("sendInitialEvents").is_some_and(|v| v == "true");
    if rv_param.is_empty() || rv_param == "0" || send_initial {
        // The current state as ADDED events, then changes. A streaming list
        // (`sendInitialEvents=true`) ends its initial events with an annotated bookmark.
        let (items, _) = store.list(def_index, namespace.as_deref(), &filter, None, None);
        initial.extend(items.iter().map(|o| event_line("ADDED", o)));
        if send_initial {
            initial.push(event_line(
                "BOOKMARK",
                &json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": {
                    "resourceVersion": store.resource_version().to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }}),
            ));
        }
        receiver = store.subscribe();
    } else {
        let Ok(rv) = rv_param.parse::<u64>() else {
            return ApiStatus::bad_request(format!("invalid resourceVersion {rv_param:?}"))
                .into_response();
        };
        match store.watch_from(rv) {
            Ok((backlog, rx)) => {
                initial.extend(
                    backlog
                        .iter()
                        .filter(|c| {
                            c.def == stored
                                && namespace.as_ref().is_none_or(|n| *n == c.namespace)
                                && filter.matches(&c.object)
                        })
                        .map(|c| event_line(c.kind.name(), &shown(&c.object))),
                );
                receiver = rx;
            }
            Err(gone) => {
                let line = event_line("ERROR", &gone.body());
                return watch_response(Body::from(line));
            }
        }
    }
    let bookmark = {
        let (kind, api_version) = (def.kind.clone(), def.api_version());
        move |rv: u64| {
            event_line(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}}),
            )
        }
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let live = futures::stream::unfold(
        (receiver, filter, 0u64),
        move |(mut rx, filter, mut last_rv)| {
            let namespace = namespace.clone();
            let bookmark = bookmark.clone();
            async move {
                loop {
                    let wait = if bookmarks {
                        Duration::from_secs(5)
                    } else {
                        Duration::from_secs(3600)
                    };
                    let next = tokio::time::timeout_at(
                        deadline.min(tokio::time::Instant::now() + wait),
                        rx.recv(),
                    )
                    .await;
                    match next {
                        Ok(Ok(change)) => {
                            last_rv = change.rv;
                            if change.def == stored
                                && namespace.as_ref().is_none_or(|n| *n == change.namespace)
                                && filter.matches(&change.object)
                            {
                                return Some((
                                    Ok::<Bytes, std::io::Error>(event_line(
                                        change.kind.name(),
                                        &shown(&change.object),
                                    )),
                                    (rx, filter, last_rv),
                                ));
                            }
                        }
                        // Fell behind or closed: end the watch; the client resumes from its last version.
                        Ok(Err(_)) => return None,
                        Err(_) if tokio::time::Instant::now() >= deadline => return None,
                        Err(_) => {
                            if last_rv > 0 {
                                return Some((Ok(bookmark(last_rv)), (rx, filter, last_rv)));
                            }
                        }
                    }
                }
            }
        },
    );
    let stream = futures::StreamExt::chain(
        futures::stream::iter(initial.into_iter().map(Ok::<Bytes, std::io::Error>)),
        live,
    );
    watch_response(Body::from_stream(stream))
}

fn watch_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("static response")
}
