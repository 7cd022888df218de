//! An in-memory server for the part of the Kubernetes API that simfleet and `kubectl` use, for
//! `simfleet dev` and end-to-end tests. It is for trying out, never a production control plane;
//! where it differs from a real API server, that is a bug here.

mod discovery;
pub(crate) mod events;
mod openapi;
mod owners;
pub(crate) mod registry;
pub(crate) mod request_log;
pub(crate) mod selector;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod table;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
pub(crate) use request_log::RequestRecord;

use simfleet_api::validation::ManifestValidator;
use status::ApiStatus;
use store::{FieldValidation, Filter, PatchKind, Store, WriteOptions};

/// The sandbox's shared state.
pub struct SandboxState {
    store: Mutex<Store>,
}

impl SandboxState {
    /// The most recent requests (verb, resource, namespace, user agent), oldest first; the
    /// log keeps the last `request_log::RECENT_REQUESTS`.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.store.lock().expect("store lock").requests.recent()
    }

    /// How many requests were made since the sandbox started (the benches' API-server
    /// requests).
    pub fn request_count(&self) -> u64 {
        self.store.lock().expect("store lock").requests.total()
    }

    /// Every distinct request made since the sandbox started, however many there were.
    pub fn distinct_requests(&self) -> Vec<RequestRecord> {
        self.store.lock().expect("store lock").requests.distinct()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("store lock")
    }
}

/// The routes of the sandbox API server.
pub(crate) fn router(state: Arc<SandboxState>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/api/{version}", get(discovery::core_resources))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/openapi/v3", get(openapi::root))
        .route("/openapi/v3/{*path}", get(openapi::group_version))
        .route("/api/{version}/{*rest}", axum::routing::any(core_request))
        .route(
            "/apis/{group}/{version}/{*rest}",
            axum::routing::any(group_request),
        )
        .fallback(|uri: axum::http::Uri| async move { ApiStatus::no_resource(uri.path()) })
        .with_state(state)
}

/// What a resource path names.
struct Target {
    def: usize,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(
    store: &Store,
    group: &str,
    version: &str,
    rest: &str,
) -> Result<Target, ApiStatus> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let full = || {
        format!(
            "/{}{}/{version}/{rest}",
            if group.is_empty() { "api" } else { "apis/" },
            group
        )
    };
    let find = |plural: &str| {
        store
            .defs
            .iter()
            .position(|d| d.group == group && d.version == version && d.plural == plural)
            .ok_or_else(|| ApiStatus::no_resource(&full()))
    };
    let (namespace, rest) = match parts.as_slice() {
        ["namespaces", ns, tail @ ..]
            if !(tail.is_empty()
                || (tail.len() == 1 && matches!(tail[0], "status" | "finalize"))) =>
        {
            (Some((*ns).to_owned()), tail.to_vec())
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Err(ApiStatus::no_resource(&full())),
    };
    let def = find(plural)?;
    let d = &store.defs[def];
    if namespace.is_some() && !d.namespaced {
        return Err(ApiStatus::no_resource(&full()));
    }
    if d.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiStatus::no_resource(&full()));
    }
    if let Some(sub) = &subresource
        && !(sub == "status" && d.status_subresource)
    {
        return Err(ApiStatus::no_resource(&full()));
    }
    Ok(Target {
        def,
        namespace,
        name,
        subresource,
    })
}

async fn core_request(
    State(state): State<Arc<SandboxState>>,
    Path((version, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    resource_request(
        state,
        String::new(),
        version,
        rest,
        method,
        headers,
        params,
        body,
    )
    .await
}

async fn group_request(
    State(state): State<Arc<SandboxState>>,
    Path((group, version, rest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    resource_request(state, group, version, rest, method, headers, params, body).await
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "'"));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

fn field_validation(params: &HashMap<String, String>) -> Result<FieldValidation, ApiStatus> {
    match params.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(ApiStatus::bad_request(format!(
            "fieldValidation must be Ignore, Warn or Strict, got {other:?}"
        ))),
    }
}

fn parse_body(body: &Bytes, yaml: bool) -> Result<Value, ApiStatus> {
    if body.is_empty() {
        return Err(ApiStatus::bad_request("the request body is empty"));
    }
    let parsed = if yaml {
        std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiStatus::bad_request(format!("the request body cannot be decoded: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    state: Arc<SandboxState>,
    group: String,
    version: String,
    rest: String,
    method: Method,
    headers: HeaderMap,
    params: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // The field manager of a write: as the API server derives it, the fieldManager parameter,
    // else the User-Agent's first part.
    let manager = params
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            let agent = user_agent.split('/').next().unwrap_or_default();
            if agent.is_empty() {
                "unknown".into()
            } else {
                agent.to_owned()
            }
        });
    let watch = params.get("watch").is_some_and(|w| w == "1" || w == "true");
    let mut store = state.store();
    let target = match parse_target(&store, &group, &version, &rest) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let verb = match (&method, target.name.is_some(), watch) {
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, true) => "watch",
        (&Method::GET, false, false) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, true, _) => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => "unknown",
    };
    let def = store.defs[target.def].clone();
    store.requests.push(RequestRecord {
        verb: verb.to_owned(),
        group: group.clone(),
        resource: match &target.subresource {
            Some(sub) => format!("{}/{sub}", def.plural),
            None => def.plural.clone(),
        },
        namespace: target.namespace.clone().unwrap_or_default(),
        user_agent,
        field_selector: params.get("fieldSelector").cloned().unwrap_or_default(),
    });
    let namespace = target.namespace.clone().unwrap_or_default();
    let status = target.subresource.as_deref() == Some("status");
    if params.get("dryRun").is_some_and(|d| !d.is_empty()) {
        // Refused rather than ignored: ignoring it would write what the client only wanted checked.
        return ApiStatus::bad_request("dryRun is not supported by the sandbox API server")
            .into_response();
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return ApiStatus::unsupported_media_type(format!(
            "the sandbox reads JSON and YAML bodies only (got {content_type})"
        ))
        .into_response();
    }
    let result: Result<Response, ApiStatus> = (|| match verb {
        "get" => {
            let object = store.get(
                target.def,
                &namespace,
                target.name.as_deref().expect("get has a name"),
            )?;
            if table::wants_table(&accept) {
                return Ok(axum::Json(table::table(
                    &def,
                    &[object],
                    json!({"resourceVersion": store.resource_version().to_string()}),
                ))
                .into_response());
            }
            Ok(axum::Json(object).into_response())
        }
        "list" => {
            let filter = Filter::parse(
                params.get("labelSelector").map(String::as_str),
                params.get("fieldSelector").map(String::as_str),
                def.field_labels,
            )?;
            let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
                None | Some(Ok(0)) => None,
                Some(Ok(l)) => Some(l),
                Some(Err(_)) => {
                    return Err(ApiStatus::bad_request("limit must be a positive integer"));
                }
            };
            let after = params
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(|c| Store::decode_continue(c))
                .transpose()?;
            let (items, token) = store.list(
                target.def,
                target.namespace.as_deref(),
                &filter,
                limit,
                after,
            );
            let mut meta = json!({"resourceVersion": store.resource_version().to_string()});
            if let Some(token) = token {
                meta["continue"] = json!(token);
            }
            if table::wants_table(&accept) {
                return Ok(axum::Json(table::table(&def, &items, meta)).into_response());
            }
            // kube-apiserver writes `apiVersion` and `kind` on a custom resource list's items
            // only; a built-in kind's items leave them to the list.
            let mut items = items;
            if !def.custom {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.remove("apiVersion");
                    item.remove("kind");
                }
            }
            Ok(axum::Json(json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": meta, "items": items})).into_response())
        }
        "create" => {
            if target.name.is_some() {
                return Err(ApiStatus::method_not_allowed(
                    "POST is not allowed on a named object",
                ));
            }
            let object = parse_body(&body, false)?;
            let written =
                store.create(target.def, &namespace, object, field_validation(&params)?)?;
            if let Some(name) = written.object["metadata"]["name"].as_str() {
                let key = (target.def, namespace.clone(), name.to_owned());
                store.owners.record(key, &manager, None, &written.object);
            }
            Ok(with_warnings(
                (StatusCode::CREATED, axum::Json(written.object)).into_response(),
                &written.warnings,
            ))
        }
        "update" => {
            let name = target
                .name
                .as_deref()
                .ok_or_else(|| ApiStatus::method_not_allowed("PUT needs an object name"))?;
            let object = parse_body(&body, false)?;
            let before = store.get(target.def, &namespace, name).ok();
            let written = store.update(
                target.def,
                &namespace,
                name,
                object,
                WriteOptions {
                    status,
                    validation: field_validation(&params)?,
                },
            )?;
            let key = (target.def, namespace.clone(), name.to_owned());
            store
                .owners
                .record(key, &manager, before.as_ref(), &written.object);
            Ok(with_warnings(
                axum::Json(written.object).into_response(),
                &written.warnings,
            ))
        }
        "patch" => {
            let name = target
                .name
                .as_deref()
                .ok_or_else(|| ApiStatus::method_not_allowed("PATCH needs an object name"))?;
            let media = content_type.split(';').next().unwrap_or("").trim();
            let kind = match media {
                "application/merge-patch+json" => PatchKind::Merge,
                "application/json-patch+json" => PatchKind::Json,
                "application/strategic-merge-patch+json" if !def.custom => PatchKind::Strategic,
                "application/strategic-merge-patch+json" => {
                    return Err(ApiStatus::unsupported_media_type(
                        "strategic merge patch is not supported for custom resources; use a merge patch",
                    ));
                }
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                    if params.get("fieldManager").is_none_or(|m| m.is_empty()) {
                        return Err(ApiStatus::bad_request(
                            "PATCH apply: fieldManager is required for apply requests",
                        ));
                    }
                    PatchKind::Apply
                }
                other => {
                    return Err(ApiStatus::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    )));
                }
            };
            let patch = parse_body(&body, kind == PatchKind::Apply)?;
            let before = store.get(target.def, &namespace, name).ok();
            let key = (target.def, namespace.clone(), name.to_owned());
            let force = params.get("force").is_some_and(|f| f == "true");
            if kind == PatchKind::Apply
                && !force
                && let Some(current) = &before
            {
                let conflicts = store.owners.conflicts(&key, &manager, current, &patch);
                if !conflicts.is_empty() {
                    return Err(ApiStatus::apply_conflict(&def, name, &conflicts));
                }
            }
            let written = store.patch(
                target.def,
                &namespace,
                name,
                kind,
                &patch,
                WriteOptions {
                    status,
                    validation: field_validation(&params)?,
                },
            )?;
            store
                .owners
                .record(key, &manager, before.as_ref(), &written.object);
            let code = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                (code, axum::Json(written.object)).into_response(),
                &written.warnings,
            ))
        }
        "delete" => {
            let name = target.name.as_deref().expect("delete has a name");
            let deleted = store.delete(target.def, &namespace, name)?;
            if store.get(target.def, &namespace, name).is_err() {
                store
                    .owners
                    .forget(&(target.def, namespace.clone(), name.to_owned()));
            }
            Ok(axum::Json(deleted).into_response())
        }
        "watch" => Err(ApiStatus::bad_request("unreachable")),
        _ => Err(ApiStatus::method_not_allowed(format!(
            "{method} is not supported on this path"
        ))),
    })();
    if verb != "watch" {
        return match result {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
    }
    watch::start(&mut store, target.def, target.namespace, &def, &params)
}

/// How to start the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Changes kept for watches to resume from; older resourceVersions get 410 Gone.
    pub watch_log: usize,
    /// The custom resources to serve, validated with their schemas and CEL rules as the API
    /// server would. By default, simfleet's three.
    pub crds: Vec<CustomResourceDefinition>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            watch_log: store::DEFAULT_LOG_CAPACITY,
            crds: simfleet_api::crds(),
        }
    }
}

/// The sandbox API server.
pub struct Sandbox;

impl Sandbox {
    /// Binds and serves until the handle is stopped or dropped.
    pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
        let validator = ManifestValidator::from_crds(&config.crds).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the sandbox's CRDs: {e}"),
            )
        })?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SandboxState {
            store: Mutex::new(Store::new(
                registry::all(&config.crds),
                config.watch_log,
                validator,
            )),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = served.await {
                tracing::error!(%err, "sandbox API server failed");
            }
        });
        Ok(SandboxHandle {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running sandbox. Dropping it stops the server.
pub struct SandboxHandle {
    addr: SocketAddr,
    state: Arc<SandboxState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SandboxHandle {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state (request log).
    pub fn state(&self) -> &Arc<SandboxState> {
        &self.state
    }

    /// A kubeconfig that points kubectl and kube-rs at this sandbox.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: simfleet-sandbox\n  cluster:\n    server: {}\ncontexts:\n- name: simfleet-sandbox\n  context:\n    cluster: simfleet-sandbox\n    namespace: default\n    user: sandbox\ncurrent-context: simfleet-sandbox\nusers:\n- name: sandbox\n  user: {{}}\n",
            self.url()
        )
    }

    /// A `kube::Client` for this sandbox.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("a valid URL"));
        kube::Client::try_from(config).expect("a client for a plain HTTP URL")
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
