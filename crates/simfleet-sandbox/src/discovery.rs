//! API discovery: the server's version, its groups, and each group version's resources, as
//! `kubectl` and kube-rs discover them before they make a request.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::SandboxState;
use super::status::ApiStatus;
use super::store::Store;

/// The server's version (`/version`).
pub(super) async fn version() -> Response {
    axum::Json(json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-simfleet-sandbox",
        "gitCommit": "sandbox", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a", "compiler": "rustc", "platform": "linux/amd64",
    }))
    .into_response()
}

/// The core API's versions (`/api`).
pub(super) async fn core_versions() -> Response {
    axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})).into_response()
}

/// The API groups and their versions (`/apis`).
pub(super) async fn groups(State(state): State<Arc<SandboxState>>) -> Response {
    let store = state.store();
    let mut seen: Vec<(String, String)> = Vec::new();
    for def in store.defs.iter().filter(|d| !d.group.is_empty()) {
        if !seen.iter().any(|(g, _)| *g == def.group) {
            seen.push((def.group.clone(), def.version.clone()));
        }
    }
    let groups: Vec<Value> = seen
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

/// The resources of one group version, with their status subresources.
fn resource_list(store: &Store, group: &str, version: &str) -> Response {
    let defs: Vec<_> = store
        .defs
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        return ApiStatus::no_resource(&path).into_response();
    }
    let mut resources: Vec<Value> = defs.iter().map(|d| d.discovery()).collect();
    for def in defs.iter().filter(|d| d.status_subresource) {
        resources.push(json!({"name": format!("{}/status", def.plural), "singularName": "", "namespaced": def.namespaced, "kind": def.kind, "verbs": ["get", "patch", "update"]}));
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})).into_response()
}

/// The core API's resources (`/api/{version}`).
pub(super) async fn core_resources(
    State(state): State<Arc<SandboxState>>,
    Path(version): Path<String>,
) -> Response {
    resource_list(&state.store(), "", &version)
}

/// A group version's resources (`/apis/{group}/{version}`).
pub(super) async fn group_resources(
    State(state): State<Arc<SandboxState>>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    resource_list(&state.store(), &group, &version)
}
