//! The Kubernetes behaviours the operator and kubectl rely on, asserted the same way against the
//! sandbox API server (`tests/sandbox_conformance`) and the real kube-apiserver
//! (`tests/real_cluster`). Each case names the behaviour (see the Kubernetes API concepts and
//! conventions documents) and runs in a namespace of its own. Where the sandbox differs, the case
//! is sandbox-only and the difference is listed in the README's sandbox section.

pub mod apply;
pub mod events;
pub mod reads;
pub mod writes;

pub use futures::{StreamExt, TryStreamExt};
pub use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
pub use kube::runtime::watcher;
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};
pub use simfleet::api::SimGroup;

/// The HTTP method of a raw call.
pub use http::Method;

/// A server under test: a client with its credentials, and the namespace the case works in.
pub struct Server {
    pub client: kube::Client,
    pub namespace: String,
    /// The sandbox, kept running for as long as the case (`None` on the real server).
    pub sandbox: Option<simfleet::sandbox::SandboxHandle>,
}

/// Every shared case, as `module::case` paths, for `$callback!` to turn into tests or steps.
#[macro_export]
macro_rules! for_each_conformance_case {
    ($callback:ident) => {
        $callback! {
            writes::a_stale_resource_version_is_a_conflict,
            writes::generation_follows_spec_changes_only,
            writes::the_status_subresource_is_isolated,
            writes::finalizers_hold_deletion_until_removed,
            writes::a_failed_json_patch_test_changes_nothing,
            writes::unknown_fields_are_pruned_or_refused_as_field_validation_says,
            writes::invalid_objects_get_422_with_causes_naming_the_fields,
            writes::deleting_a_namespace_cascades,
            writes::unknown_resources_are_404,
            writes::a_dry_run_writes_nothing,
            writes::a_json_patch_test_of_a_missing_path_against_null_passes,
            apply::server_side_apply_conflicts_on_fields_another_manager_owns_unless_forced,
            events::one_event_store_is_served_through_core_v1_and_events_k8s_io_with_the_field_mapping,
            events::a_watch_on_core_v1_events_sees_events_written_through_events_k8s_io,
            events::event_field_selectors_select_by_involved_object_reason_and_type,
            events::secret_string_data_is_folded_into_data,
            reads::lists_filter_and_page,
            reads::tables_render_printer_columns,
            reads::watches_resume_from_a_version,
            reads::a_kube_client_lists_watches_and_patches_status,
        }
    };
}

impl Server {
    /// A sandbox of its own, the case working in `default`.
    pub async fn sandbox() -> Server {
        Self::on_sandbox(simfleet::sandbox::SandboxConfig::default()).await
    }

    pub async fn on_sandbox(config: simfleet::sandbox::SandboxConfig) -> Server {
        let sandbox = simfleet::sandbox::Sandbox::start(config).await.unwrap();
        Server {
            client: sandbox.client(),
            namespace: "default".into(),
            sandbox: Some(sandbox),
        }
    }

    /// The real server behind `client`, the case working in a new namespace named after it.
    pub async fn real(client: kube::Client, case: &str) -> Server {
        let name: String = case
            .rsplit("::")
            .next()
            .unwrap_or(case)
            .replace('_', "-")
            .chars()
            .take(50)
            .collect();
        let server = Server {
            client,
            namespace: format!("c-{}", name.trim_end_matches('-')),
            sandbox: None,
        };
        server.create_namespace(&server.namespace).await;
        server
    }

    /// Creates namespace `name`.
    pub async fn create_namespace(&self, name: &str) {
        let (status, body, _) = self
            .call(
                Method::POST,
                "/api/v1/namespaces",
                Some((
                    "application/json",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                )),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub fn is_real(&self) -> bool {
        self.sandbox.is_none()
    }

    /// The SimGroups' collection path in the case's namespace.
    pub fn groups(&self) -> String {
        format!(
            "/apis/simfleet.io/v1alpha1/namespaces/{}/simgroups",
            self.namespace
        )
    }

    /// `path` with the case's namespace for `{ns}`.
    pub fn path(&self, path: &str) -> String {
        path.replace("{ns}", &self.namespace)
    }

    /// A raw request, with the client's credentials: status, body text and headers.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Value)>,
    ) -> (StatusCode, String, http::HeaderMap) {
        let mut request = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some((content_type, body)) => request
                .header("content-type", content_type)
                .body(kube::client::Body::from(body.to_string().into_bytes())),
            None => request.body(kube::client::Body::empty()),
        }
        .unwrap();
        let response = self.client.send(request).await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect_bytes().await.unwrap();
        (
            status,
            String::from_utf8_lossy(&bytes).into_owned(),
            headers,
        )
    }

    /// A JSON request: status, body (`Null` when not JSON) and headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Value)>,
    ) -> (StatusCode, Value, http::HeaderMap) {
        let (status, text, headers) = self.raw(method, path, &[], body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    /// Creates SimGroup `name` (see [`group`]).
    pub async fn create(&self, name: &str) -> Value {
        let (status, body, _) = self
            .call(
                Method::POST,
                &self.groups(),
                Some(("application/json", group(name))),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

pub fn group(name: &str) -> Value {
    json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup",
        "metadata": {"name": name, "labels": {"team": "iot"}},
        "spec": {"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": ["cold-chain"]}}
    })
}

pub fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Polls `path` until it answers 404, or fails after the tests' wait limit.
pub async fn until_gone(server: &Server, path: &str) {
    let deadline = std::time::Instant::now() + simfleet_testkit::world::wait_limit();
    loop {
        let (status, body, _) = server.call(Method::GET, path, None).await;
        if status == StatusCode::NOT_FOUND {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} is still there: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
