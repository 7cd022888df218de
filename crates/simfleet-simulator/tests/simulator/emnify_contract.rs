//! Contract tests: the simulator's emnify answers validated against emnify's official OpenAPI
//! file (tests/fixtures/reference/emnify-openapi.yaml in this crate, 2021), for the routes it covers:
//! authentication, the endpoint list, an endpoint's data quota, and the 4xx error body.

use reqwest::Method;
use serde_json::{Value, json};
use simfleet_testkit::simulator::*;

/// The OpenAPI document as JSON.
fn openapi() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference/emnify-openapi.yaml"
    ))
    .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// Checks `instance` against `#/components/schemas/{name}` (refs resolved in the document).
fn check(document: &Value, name: &str, instance: &Value) {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": document["components"],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{instance}");
}

#[tokio::test]
async fn the_simulator_s_emnify_answers_match_emnify_s_openapi_file() {
    let document = openapi();
    let sim = live_fleet(50).await;
    // POST /api/v1/authenticate -> AuthenticationResponse.
    let (status, auth) = emnify_authenticate(&sim, APP_TOKEN).await;
    assert_eq!(status, 200);
    check(&document, "AuthenticationResponse", &auth);
    let token = auth["auth_token"].as_str().unwrap();
    // GET /api/v1/endpoint -> a list of Endpoint (the seeded ones all have tags and a SIM).
    let endpoints: Value = emnify(&sim, Method::GET, "/v1/endpoint?per_page=50", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(endpoints.as_array().unwrap().len(), 50);
    for endpoint in endpoints.as_array().unwrap() {
        check(&document, "Endpoint", endpoint);
    }
    // GET /api/v1/endpoint/{id}/quota/data -> EndpointQuota, with and without thresholds.
    let expiry = "2026-07-01 00:00:00";
    for (device, extra) in [
        (1001, json!({"threshold_percentage": 20})),
        (1002, json!({})),
    ] {
        let mut body = json!({"status": {"id": 1}, "volume": 100, "expiry_date": expiry, "action_on_exhaustion": {"id": 1}});
        json_patch::merge(&mut body, &extra);
        let set = emnify(
            &sim,
            Method::POST,
            &format!("/v1/endpoint/{device}/quota/data"),
            token,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
        assert_eq!(set.status(), 201);
        assert!(
            set.bytes().await.unwrap().is_empty(),
            "201 with an empty body"
        );
        let quota: Value = emnify(
            &sim,
            Method::GET,
            &format!("/v1/endpoint/{device}/quota/data"),
            token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        check(&document, "EndpointQuota", &quota);
    }
    // A used-up quota's negative volume is still a number of the schema.
    admin_send(
        &sim,
        Method::POST,
        "/consume",
        &json!({"deviceId": 1001, "mb": 150}),
    )
    .await;
    let quota: Value = emnify(&sim, Method::GET, "/v1/endpoint/1001/quota/data", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(quota["volume"].as_f64().unwrap() < 0.0);
    check(&document, "EndpointQuota", &quota);
    // 4xx answers -> _40x_Response.
    for (method, path) in [
        (Method::GET, "/v1/endpoint/424242"),
        (Method::DELETE, "/v1/endpoint/1003/quota/data"),
        (Method::GET, "/v1/endpoint?per_page=5000"),
    ] {
        let (status, body) =
            status_and_json(emnify(&sim, method, path, token).send().await.unwrap()).await;
        assert!(status.is_client_error(), "{path}: {status}");
        check(&document, "_40x_Response", &body);
    }
    let (_, unauthorized) = status_and_json(
        emnify(&sim, Method::GET, "/v1/endpoint", "not-a-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(&document, "_40x_Response", &unauthorized);
}
