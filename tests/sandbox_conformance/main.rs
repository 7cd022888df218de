//! The sandbox API server against the Kubernetes behaviours controllers and kubectl rely on: the
//! shared cases (`tests/common/conformance`, also run against the real kube-apiserver by
//! `tests/real_cluster`), each on a sandbox of its own, and the sandbox's own behaviours.

#[path = "../common/mod.rs"]
mod common;

use common::conformance::{self, *};
use simfleet::sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// One test per shared case, each on a sandbox of its own.
macro_rules! on_the_sandbox {
    ($($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                conformance::$module::$case(&Server::sandbox().await).await;
            }
        )*
    };
}

for_each_conformance_case!(on_the_sandbox);

async fn sandbox() -> SandboxHandle {
    Sandbox::start(SandboxConfig::default()).await.unwrap()
}

const GROUPS: &str = "/apis/simfleet.io/v1alpha1/namespaces/default/simgroups";

async fn call(
    sandbox: &SandboxHandle,
    method: Method,
    path: &str,
    body: Option<(&str, Value)>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", sandbox.url()));
    if let Some((content_type, body)) = body {
        request = request
            .header("content-type", content_type)
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

async fn create(sandbox: &SandboxHandle, name: &str) -> Value {
    let (status, body, _) = call(
        sandbox,
        Method::POST,
        GROUPS,
        Some(("application/json", group(name))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The sandbox serves the CRDs it is started with, validated by their schemas and rules, and
/// nothing of simfleet's unless asked.
#[tokio::test]
async fn the_sandbox_serves_the_crds_it_is_given() {
    let widgets: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer", "minimum": 1}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
        }))
        .unwrap();
    let sandbox = Sandbox::start(SandboxConfig {
        crds: vec![widgets],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let widget = |size: i64| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": format!("w{size}")}, "spec": {"size": size}});
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        path,
        Some(("application/json", widget(3))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        path,
        Some(("application/json", widget(0))),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("spec.size"),
        "{body}"
    );
    let (status, _, _) = call(&sandbox, Method::GET, GROUPS, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "simfleet's kinds were not given"
    );
    sandbox.stop().await;
}

/// The sandbox refuses a dry run (400) where kube-apiserver answers as if it had written (a
/// listed difference); neither writes.
#[tokio::test]
async fn dry_runs_are_refused_not_applied() {
    let sandbox = sandbox().await;
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        &format!("{GROUPS}?dryRun=All"),
        Some(("application/json", group("g"))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("dryRun"));
    assert_eq!(
        call(&sandbox, Method::GET, &format!("{GROUPS}/g"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// Every request is recorded with its verb, resource, namespace and user agent (for the RBAC check).
#[tokio::test]
async fn requests_are_recorded_for_the_rbac_check() {
    let sandbox = sandbox().await;
    create(&sandbox, "g").await;
    call(&sandbox, Method::GET, GROUPS, None).await;
    call(
        &sandbox,
        Method::PATCH,
        &format!("{GROUPS}/g/status"),
        Some((
            "application/merge-patch+json",
            json!({"status": {"observedGeneration": 1}}),
        )),
    )
    .await;
    let api: Api<SimGroup> = Api::namespaced(sandbox.client(), "default");
    api.get("g").await.unwrap();
    let records = sandbox.state().requests();
    let summary: Vec<(String, String, String)> = records
        .iter()
        .map(|r| (r.verb.clone(), r.resource.clone(), r.namespace.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("create".into(), "simgroups".into(), "default".into()),
            ("list".into(), "simgroups".into(), "default".into()),
            ("patch".into(), "simgroups/status".into(), "default".into()),
            ("get".into(), "simgroups".into(), "default".into()),
        ]
    );
    assert!(records.iter().all(|r| r.group == "simfleet.io"));
    reqwest::Client::new()
        .get(format!(
            "{}/api/v1/namespaces/default/secrets",
            sandbox.url()
        ))
        .header("user-agent", "simfleet/test")
        .send()
        .await
        .unwrap();
    let last = sandbox.state().requests().pop().unwrap();
    assert_eq!(
        (
            last.verb.as_str(),
            last.group.as_str(),
            last.resource.as_str(),
            last.user_agent.as_str()
        ),
        ("list", "", "secrets", "simfleet/test")
    );
}

/// Watch: a resourceVersion older than the sandbox keeps gives a 410 Gone (Expired) ERROR event
/// (kube-apiserver does the same past its watch cache, whose window a test does not set).
#[tokio::test]
async fn a_watch_from_a_version_too_old_is_gone() {
    let sandbox = Sandbox::start(SandboxConfig {
        watch_log: 5,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let first = create(&sandbox, "a").await;
    for i in 0..6 {
        create(&sandbox, &format!("x{i}")).await;
    }
    let response = reqwest::Client::new()
        .get(format!(
            "{}{GROUPS}?watch=1&resourceVersion={}",
            sandbox.url(),
            rv(&first)
        ))
        .send()
        .await
        .unwrap();
    let event: Value =
        serde_json::from_str(response.text().await.unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
}
