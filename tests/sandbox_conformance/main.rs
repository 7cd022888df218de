//! The sandbox API server against the Kubernetes behaviours controllers and kubectl rely on.
//! Each test names the behaviour (see the Kubernetes API concepts and conventions documents).

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use simfleet::api::SimGroup;
use simfleet::sandbox::{Sandbox, SandboxConfig, SandboxHandle};

async fn sandbox() -> SandboxHandle {
    Sandbox::start(SandboxConfig::default()).await.unwrap()
}

const GROUPS: &str = "/apis/simfleet.io/v1alpha1/namespaces/default/simgroups";

fn group(name: &str) -> Value {
    json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup",
        "metadata": {"name": name, "labels": {"team": "iot"}},
        "spec": {"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": ["cold-chain"]}}
    })
}

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

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Optimistic concurrency: an update with a stale resourceVersion is refused with 409 Conflict.
#[tokio::test]
async fn a_stale_resource_version_is_a_conflict() {
    let sandbox = sandbox().await;
    let created = create(&sandbox, "g").await;
    let mut first = created.clone();
    first["spec"]["state"] = json!("Active");
    let (status, updated, _) = call(
        &sandbox,
        Method::PUT,
        &format!("{GROUPS}/g"),
        Some(("application/json", first)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(rv(&updated) > rv(&created));
    let mut stale = created.clone();
    stale["spec"]["state"] = json!("Paused");
    let (status, body, _) = call(
        &sandbox,
        Method::PUT,
        &format!("{GROUPS}/g"),
        Some(("application/json", stale)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
}

/// metadata.generation starts at 1 and increases on spec changes only, not on metadata or status.
#[tokio::test]
async fn generation_follows_spec_changes_only() {
    let sandbox = sandbox().await;
    create(&sandbox, "g").await;
    let patch = |p: Value| Some(("application/merge-patch+json", p));
    let path = format!("{GROUPS}/g");
    let (_, labelled, _) = call(
        &sandbox,
        Method::PATCH,
        &path,
        patch(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await;
    assert_eq!(labelled["metadata"]["generation"], 1);
    let (_, with_status, _) = call(
        &sandbox,
        Method::PATCH,
        &format!("{path}/status"),
        patch(json!({"status": {"observedGeneration": 1}})),
    )
    .await;
    assert_eq!(with_status["metadata"]["generation"], 1);
    let (_, changed, _) = call(
        &sandbox,
        Method::PATCH,
        &path,
        patch(json!({"spec": {"state": "Active"}})),
    )
    .await;
    assert_eq!(changed["metadata"]["generation"], 2);
    // A write that changes nothing is no write: same resourceVersion.
    let (_, same, _) = call(
        &sandbox,
        Method::PATCH,
        &path,
        patch(json!({"spec": {"state": "Active"}})),
    )
    .await;
    assert_eq!(rv(&same), rv(&changed));
}

/// The status subresource: main writes ignore status, status writes change only status.
#[tokio::test]
async fn the_status_subresource_is_isolated() {
    let sandbox = sandbox().await;
    let mut created = create(&sandbox, "g").await;
    assert!(
        created.get("status").is_none(),
        "status is dropped on create"
    );
    created["status"] = json!({"observedGeneration": 9});
    created["spec"]["state"] = json!("Active");
    let (_, main, _) = call(
        &sandbox,
        Method::PUT,
        &format!("{GROUPS}/g"),
        Some(("application/json", created)),
    )
    .await;
    assert!(main.get("status").is_none(), "main write ignores status");
    assert_eq!(main["spec"]["state"], "Active");
    let mut for_status = main.clone();
    for_status["status"] = json!({"observedGeneration": 2});
    for_status["spec"]["state"] = json!("Paused");
    let (status, written, _) = call(
        &sandbox,
        Method::PUT,
        &format!("{GROUPS}/g/status"),
        Some(("application/json", for_status)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{written}");
    assert_eq!(written["status"]["observedGeneration"], 2);
    assert_eq!(
        written["spec"]["state"], "Active",
        "status write ignores spec"
    );
}

/// Finalizers: delete sets deletionTimestamp; the object goes when the last finalizer is removed.
#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sandbox = sandbox().await;
    let mut object = group("g");
    object["metadata"]["finalizers"] = json!(["simfleet.io/restore"]);
    call(
        &sandbox,
        Method::POST,
        GROUPS,
        Some(("application/json", object)),
    )
    .await;
    let (status, deleting, _) = call(&sandbox, Method::DELETE, &format!("{GROUPS}/g"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    let (status, still, _) = call(&sandbox, Method::GET, &format!("{GROUPS}/g"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(still["metadata"]["deletionTimestamp"].is_string());
    let (status, _, _) = call(&sandbox, Method::PATCH, &format!("{GROUPS}/g"), Some(("application/json-patch+json", json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "simfleet.io/restore"}, {"op": "remove", "path": "/metadata/finalizers/0"}])))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = call(&sandbox, Method::GET, &format!("{GROUPS}/g"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["message"], "simgroups.simfleet.io \"g\" not found");
}

/// JSON patch `test` guards a change: a failed test changes nothing (422).
#[tokio::test]
async fn a_failed_json_patch_test_changes_nothing() {
    let sandbox = sandbox().await;
    let created = create(&sandbox, "g").await;
    let (status, _, _) = call(&sandbox, Method::PATCH, &format!("{GROUPS}/g"), Some(("application/json-patch+json", json!([{"op": "test", "path": "/spec/state", "value": "Active"}, {"op": "replace", "path": "/spec/state", "value": "Active"}])))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, now, _) = call(&sandbox, Method::GET, &format!("{GROUPS}/g"), None).await;
    assert_eq!(now, created);
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

/// Unknown fields are pruned (Ignore), pruned with a warning (Warn), or refused (Strict).
#[tokio::test]
async fn unknown_fields_are_pruned_or_refused_as_field_validation_says() {
    let sandbox = sandbox().await;
    let mut object = group("g");
    object["spec"]["colour"] = json!("blue");
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        &format!("{GROUPS}?fieldValidation=Strict"),
        Some(("application/json", object.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"spec.colour\"")
    );
    let (status, body, headers) = call(
        &sandbox,
        Method::POST,
        &format!("{GROUPS}?fieldValidation=Warn"),
        Some(("application/json", object.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["spec"].get("colour").is_none());
    assert!(headers["warning"].to_str().unwrap().contains("spec.colour"));
    object["metadata"]["name"] = json!("h");
    let (_, body, headers) = call(
        &sandbox,
        Method::POST,
        &format!("{GROUPS}?fieldValidation=Ignore"),
        Some(("application/json", object)),
    )
    .await;
    assert!(body["spec"].get("colour").is_none());
    assert!(headers.get("warning").is_none());
    // Defaults from the schema are filled in.
    assert_eq!(body["spec"]["drift"], "Correct");
}

/// Invalid objects: 422 with a Status whose causes name each field.
#[tokio::test]
async fn invalid_objects_get_422_with_causes_naming_the_fields() {
    let sandbox = sandbox().await;
    let mut object = group("g");
    object["spec"]["state"] = json!("Pausd");
    object["spec"]["rollout"] = json!({"maxSimsPerAction": 10001});
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        GROUPS,
        Some(("application/json", object)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["reason"], "Invalid");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("SimGroup.simfleet.io \"g\" is invalid: [")
    );
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["spec.rollout.maxSimsPerAction", "spec.state"]);
    assert_eq!(
        body["details"]["causes"][1]["reason"],
        "FieldValueNotSupported"
    );
}

/// Namespace deletion removes everything in the namespace, then the namespace.
#[tokio::test]
async fn deleting_a_namespace_cascades() {
    let sandbox = sandbox().await;
    call(
        &sandbox,
        Method::POST,
        "/api/v1/namespaces",
        Some((
            "application/json",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )),
    )
    .await;
    let path = "/apis/simfleet.io/v1alpha1/namespaces/team/simgroups";
    let (status, _, _) = call(
        &sandbox,
        Method::POST,
        path,
        Some(("application/json", group("g"))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    call(&sandbox, Method::DELETE, "/api/v1/namespaces/team", None).await;
    assert_eq!(
        call(&sandbox, Method::GET, &format!("{path}/g"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&sandbox, Method::GET, "/api/v1/namespaces/team", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Creating in a namespace that does not exist is refused.
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        path,
        Some(("application/json", group("h"))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "namespaces \"team\" not found");
}

/// Unknown resources get the real server's 404 Status.
#[tokio::test]
async fn unknown_resources_are_404_status() {
    let sandbox = sandbox().await;
    for path in [
        "/apis/apps/v1/namespaces/default/deployments",
        "/apis/simfleet.io/v1alpha1/namespaces/default/widgets",
        "/api/v1/namespaces/default/pods",
    ] {
        let (status, body, _) = call(&sandbox, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["kind"], "Status", "{path}");
        assert_eq!(body["reason"], "NotFound");
    }
}

/// A dry run must not write: the sandbox refuses it rather than apply it.
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

/// JSON patch `test` of a missing path against null passes, as on the API server.
#[tokio::test]
async fn a_json_patch_test_of_a_missing_path_against_null_passes() {
    let sandbox = sandbox().await;
    create(&sandbox, "g").await;
    let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]);
    let (status, body, _) = call(
        &sandbox,
        Method::PATCH,
        &format!("{GROUPS}/g"),
        Some(("application/json-patch+json", patch)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["finalizers"], json!(["x/y"]));
}

mod apply;
mod events;
mod reads;
