//! Writes: optimistic concurrency, generation, the status subresource, finalizers, JSON patch,
//! pruning and validation, namespaces.

use super::*;

/// Optimistic concurrency: an update with a stale resourceVersion is refused with 409 Conflict.
pub async fn a_stale_resource_version_is_a_conflict(server: &Server) {
    let groups = server.groups();
    let created = server.create("g").await;
    let mut first = created.clone();
    first["spec"]["state"] = json!("Active");
    let (status, updated, _) = server
        .call(
            Method::PUT,
            &format!("{groups}/g"),
            Some(("application/json", first)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(rv(&updated) > rv(&created));
    let mut stale = created.clone();
    stale["spec"]["state"] = json!("Paused");
    let (status, body, _) = server
        .call(
            Method::PUT,
            &format!("{groups}/g"),
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
pub async fn generation_follows_spec_changes_only(server: &Server) {
    let groups = server.groups();
    server.create("g").await;
    let patch = |p: Value| Some(("application/merge-patch+json", p));
    let path = format!("{groups}/g");
    let (_, labelled, _) = server
        .call(
            Method::PATCH,
            &path,
            patch(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert_eq!(labelled["metadata"]["generation"], 1);
    let (_, with_status, _) = server
        .call(
            Method::PATCH,
            &format!("{path}/status"),
            patch(json!({"status": {"observedGeneration": 1}})),
        )
        .await;
    assert_eq!(with_status["metadata"]["generation"], 1);
    let (_, changed, _) = server
        .call(
            Method::PATCH,
            &path,
            patch(json!({"spec": {"state": "Active"}})),
        )
        .await;
    assert_eq!(changed["metadata"]["generation"], 2);
    // A write that changes nothing is no write: same resourceVersion.
    let (_, same, _) = server
        .call(
            Method::PATCH,
            &path,
            patch(json!({"spec": {"state": "Active"}})),
        )
        .await;
    assert_eq!(rv(&same), rv(&changed));
}

/// The status subresource: main writes ignore status, status writes change only status.
pub async fn the_status_subresource_is_isolated(server: &Server) {
    let groups = server.groups();
    let mut created = server.create("g").await;
    assert!(
        created.get("status").is_none(),
        "status is dropped on create"
    );
    created["status"] = json!({"observedGeneration": 9});
    created["spec"]["state"] = json!("Active");
    let (_, main, _) = server
        .call(
            Method::PUT,
            &format!("{groups}/g"),
            Some(("application/json", created)),
        )
        .await;
    assert!(main.get("status").is_none(), "main write ignores status");
    assert_eq!(main["spec"]["state"], "Active");
    let mut for_status = main.clone();
    for_status["status"] = json!({"observedGeneration": 2});
    for_status["spec"]["state"] = json!("Paused");
    let (status, written, _) = server
        .call(
            Method::PUT,
            &format!("{groups}/g/status"),
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
pub async fn finalizers_hold_deletion_until_removed(server: &Server) {
    let groups = server.groups();
    let mut object = group("g");
    object["metadata"]["finalizers"] = json!(["simfleet.io/restore"]);
    server
        .call(Method::POST, &groups, Some(("application/json", object)))
        .await;
    let (status, deleting, _) = server
        .call(Method::DELETE, &format!("{groups}/g"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    // The generation moves when deletion starts (controllers that wake on generation see it).
    assert_eq!(deleting["metadata"]["generation"], 2, "{deleting}");
    let (status, still, _) = server.call(Method::GET, &format!("{groups}/g"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(still["metadata"]["deletionTimestamp"].is_string());
    let (status, _, _) = server.call(Method::PATCH, &format!("{groups}/g"), Some(("application/json-patch+json", json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "simfleet.io/restore"}, {"op": "remove", "path": "/metadata/finalizers/0"}])))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = server.call(Method::GET, &format!("{groups}/g"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["message"], "simgroups.simfleet.io \"g\" not found");
}

/// JSON patch `test` guards a change: a failed test changes nothing (422).
pub async fn a_failed_json_patch_test_changes_nothing(server: &Server) {
    let groups = server.groups();
    let created = server.create("g").await;
    let (status, _, _) = server.call(Method::PATCH, &format!("{groups}/g"), Some(("application/json-patch+json", json!([{"op": "test", "path": "/spec/state", "value": "Active"}, {"op": "replace", "path": "/spec/state", "value": "Active"}])))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, now, _) = server.call(Method::GET, &format!("{groups}/g"), None).await;
    assert_eq!(now, created);
}

/// Unknown fields are pruned (Ignore), pruned with a warning (Warn), or refused (Strict).
pub async fn unknown_fields_are_pruned_or_refused_as_field_validation_says(server: &Server) {
    let groups = server.groups();
    let mut object = group("g");
    object["spec"]["colour"] = json!("blue");
    let (status, body, _) = server
        .call(
            Method::POST,
            &format!("{groups}?fieldValidation=Strict"),
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
    let (status, body, headers) = server
        .call(
            Method::POST,
            &format!("{groups}?fieldValidation=Warn"),
            Some(("application/json", object.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["spec"].get("colour").is_none());
    assert!(headers["warning"].to_str().unwrap().contains("spec.colour"));
    object["metadata"]["name"] = json!("h");
    let (_, body, headers) = server
        .call(
            Method::POST,
            &format!("{groups}?fieldValidation=Ignore"),
            Some(("application/json", object)),
        )
        .await;
    assert!(body["spec"].get("colour").is_none());
    assert!(headers.get("warning").is_none());
    // Defaults from the schema are filled in.
    assert_eq!(body["spec"]["drift"], "Correct");
}

/// Invalid objects: 422 with a Status whose causes name each field.
pub async fn invalid_objects_get_422_with_causes_naming_the_fields(server: &Server) {
    let groups = server.groups();
    let mut object = group("g");
    object["spec"]["state"] = json!("Pausd");
    object["spec"]["rollout"] = json!({"maxSimsPerAction": 10001});
    let (status, body, _) = server
        .call(Method::POST, &groups, Some(("application/json", object)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["reason"], "Invalid");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("SimGroup.simfleet.io \"g\" is invalid: [")
    );
    // kube-apiserver's order of causes varies from one request to the next: compare them sorted.
    let mut causes: Vec<(&str, &str)> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["field"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    causes.sort();
    // The enum violation keeps the CEL rules from running, and a last cause says so.
    assert_eq!(
        causes,
        [
            ("<nil>", "FieldValueInvalid"),
            ("spec.rollout.maxSimsPerAction", "FieldValueInvalid"),
            ("spec.state", "FieldValueNotSupported"),
        ],
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains(
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid"
        ),
        "{body}"
    );
    // A violation that does not block them (a maximum) lets the rules run: an empty selector
    // (a CEL rule) is reported beside it.
    let mut object = group("h");
    object["spec"]["rollout"] = json!({"maxSimsPerAction": 10001});
    object["spec"]["selector"] = json!({});
    let (status, body, _) = server
        .call(Method::POST, &groups, Some(("application/json", object)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["spec.rollout.maxSimsPerAction", "spec.selector"],
        "{body}"
    );
}

/// Namespace deletion removes everything in the namespace, then the namespace (on a real server
/// the namespace controller does it, so this polls); creating in a namespace that does not exist
/// is refused.
pub async fn deleting_a_namespace_cascades(server: &Server) {
    let team = format!("{}-team", server.namespace);
    server.create_namespace(&team).await;
    let path = format!("/apis/simfleet.io/v1alpha1/namespaces/{team}/simgroups");
    let (status, _, _) = server
        .call(Method::POST, &path, Some(("application/json", group("g"))))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let namespace = format!("/api/v1/namespaces/{team}");
    let (status, _, _) = server.call(Method::DELETE, &namespace, None).await;
    assert_eq!(status, StatusCode::OK);
    until_gone(server, &format!("{path}/g")).await;
    until_gone(server, &namespace).await;
    let (status, body, _) = server
        .call(Method::POST, &path, Some(("application/json", group("h"))))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("namespaces \"{team}\" not found"));
}

/// A path that names no resource is 404: a `Status` in the core group, kube-apiserver's plain
/// "404 page not found" under a custom resource's group or an unknown one.
pub async fn unknown_resources_are_404(server: &Server) {
    let (status, body, _) = server
        .call(
            Method::GET,
            &server.path("/api/v1/namespaces/{ns}/widgets"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        (&body["kind"], &body["reason"], &body["message"]),
        (
            &json!("Status"),
            &json!("NotFound"),
            &json!("the server could not find the requested resource")
        ),
        "{body}"
    );
    for path in [
        "/apis/example.com/v1/namespaces/{ns}/widgets",
        "/apis/simfleet.io/v1alpha1/namespaces/{ns}/widgets",
        "/apis/simfleet.io/v9/namespaces/{ns}/simgroups",
        "/apis/example.com/v1",
    ] {
        let (status, text, headers) = server.raw(Method::GET, &server.path(path), &[], None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(text, "404 page not found\n", "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{path}"
        );
    }
}

/// A dry run writes nothing (the real server answers as if it had; the sandbox refuses it, a
/// listed difference checked in `tests/sandbox_conformance`).
pub async fn a_dry_run_writes_nothing(server: &Server) {
    let groups = server.groups();
    let (status, body, _) = server
        .call(
            Method::POST,
            &format!("{groups}?dryRun=All"),
            Some(("application/json", group("g"))),
        )
        .await;
    assert!(
        [StatusCode::CREATED, StatusCode::BAD_REQUEST].contains(&status),
        "{status}: {body}"
    );
    assert_eq!(
        server
            .call(Method::GET, &format!("{groups}/g"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// JSON patch `test` of a missing path against null passes, as on the API server.
pub async fn a_json_patch_test_of_a_missing_path_against_null_passes(server: &Server) {
    let groups = server.groups();
    server.create("g").await;
    let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]);
    let (status, body, _) = server
        .call(
            Method::PATCH,
            &format!("{groups}/g"),
            Some(("application/json-patch+json", patch)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["finalizers"], json!(["x/y"]));
}
