//! The v2 bulk route, write concurrency and event listings.

use super::quotas::quota_body;
use super::*;

/// Sends `body` to emnify's bulk route, `PATCH /v2/endpoint/multi`.
async fn patch_multi(sim: &SimulatorHandle, token: &str, body: &Value) -> (StatusCode, Value) {
    send(sim, token, Method::PATCH, "/v2/endpoint/multi", body).await
}

/// `PATCH /v2/endpoint/multi` with `(id, status)` items.
fn bulk(items: &[(u64, i64)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|&(id, status)| json!({"id": id, "status": {"id": status}}))
            .collect(),
    )
}

#[tokio::test]
async fn the_bulk_route_changes_up_to_2000_endpoints_and_answers_204() {
    let sim = live_fleet(2500).await;
    let token = emnify_token(&sim).await;
    let items: Vec<(u64, i64)> = (1001..3001).map(|id| (id, 1)).collect();
    let (status, body) = patch_multi(&sim, &token, &bulk(&items)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");
    // Asynchronous, like every change: the old status until the delay has passed.
    assert_eq!(
        get(&sim, &token, "/v1/endpoint/1001").await.1["status"]["id"],
        0
    );
    sim.advance(SignedDuration::from_secs(10));
    for id in [1001, 2000, 3000] {
        let (_, endpoint) = get(&sim, &token, &format!("/v1/endpoint/{id}")).await;
        assert_eq!(endpoint["status"]["id"], 1, "endpoint {id}");
    }
    assert_eq!(
        get(&sim, &token, "/v1/endpoint/3001").await.1["status"]["id"],
        0
    );
    // Only `id` is required: an item without a status changes nothing.
    let (status, _) = patch_multi(&sim, &token, &json!([{"id": 1001, "name": "meter"}])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // More than 2,000 items, or none, are refused whole.
    let too_many: Vec<(u64, i64)> = (1001..3002).map(|id| (id, 0)).collect();
    let (status, body) = patch_multi(&sim, &token, &bulk(&too_many)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["message"].as_str().unwrap().contains("2000"), "{body}");
    let (status, _) = patch_multi(&sim, &token, &json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = patch_multi(&sim, &token, &json!({"id": 1001})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the body is an array");
    sim.advance(SignedDuration::from_secs(10));
    assert_eq!(
        get(&sim, &token, "/v1/endpoint/1001").await.1["status"]["id"],
        1,
        "refused requests changed nothing"
    );
}

#[tokio::test]
async fn a_bulk_request_with_bad_items_answers_422_naming_each_and_changes_nothing() {
    let sim = live_fleet(20).await;
    let token = emnify_token(&sim).await;
    admin_send(&sim, Method::PATCH, "/sims/1005", &json!({"state": "DEAD"})).await;
    let items = [(1001, 1), (99_999, 1), (1003, 7), (1004, 1), (1005, 1)];
    let (status, body) = patch_multi(&sim, &token, &bulk(&items)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // emnify's documented 422 body: message, error_code, error_token and errors[].
    for field in ["message", "error_code", "error_token"] {
        assert!(!body[field].is_null(), "{field} in {body}");
    }
    let errors: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].contains("item 1") && errors[0].contains("99999"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("item 2") && errors[1].contains("status.id 7"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("item 4") && errors[2].contains("1005") && errors[2].contains("deleted"),
        "{errors:?}"
    );
    sim.advance(SignedDuration::from_secs(10));
    for id in [1001, 1004] {
        assert_eq!(
            get(&sim, &token, &format!("/v1/endpoint/{id}")).await.1["status"]["id"],
            0,
            "endpoint {id} unchanged"
        );
    }
    let non_integer = json!([{"id": "1001", "status": {"id": 1}}, {"id": 1002, "status": {"id": "1"}}, {"id": 1002, "status": {"id": 1}}]);
    let (status, body) = patch_multi(&sim, &token, &non_integer).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        3,
        "a string id, a string status, a repeat: {body}"
    );
}

#[tokio::test]
async fn with_emnify_bulk_forbidden_the_route_answers_403() {
    let sim = start(SimulatorConfig {
        emnify_bulk: simfleet_simulator::EmnifyBulk::Forbidden,
        ..live_config(10)
    })
    .await;
    let token = emnify_token(&sim).await;
    let (status, body) = patch_multi(&sim, &token, &bulk(&[(1001, 1)])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        (body["error_code"].clone(), body["error_token"].clone()),
        (json!(1104), json!("Forbidden")),
        "{body}"
    );
    // Per-device writes still work.
    let (status, _) = send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/endpoint/1001",
        &json!({"status": {"id": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn stats_report_the_most_emnify_writes_in_flight_at_once() {
    let sim = live_fleet(50).await;
    let token = emnify_token(&sim).await;
    let in_flight = || async {
        admin_get(&sim, "/stats").await["totals"]["maxEmnifyWritesInFlight"]
            .as_u64()
            .unwrap()
    };
    // Each write waits 100 ms at the simulator, so eight sent together overlap.
    set_faults(&sim, json!([{"route": "/api/v1/endpoint/{id}", "latencyMs": 100}, {"route": "/api/v2/endpoint/multi", "latencyMs": 100}])).await;
    for id in 1001..1005u64 {
        send(
            &sim,
            &token,
            Method::PATCH,
            &format!("/v1/endpoint/{id}"),
            &json!({"status": {"id": 1}}),
        )
        .await;
    }
    patch_multi(&sim, &token, &bulk(&[(1010, 1)])).await;
    // Reads do not count.
    let reads = (0..4).map(|_| get(&sim, &token, "/v1/endpoint/1001"));
    futures::future::join_all(reads).await;
    assert_eq!(in_flight().await, 1, "writes sent one after another");
    let writes = (1020..1028u64).map(|id| {
        let (sim, token) = (&sim, &token);
        async move { patch_multi(sim, token, &bulk(&[(id, 1)])).await.0 }
    });
    let answers = futures::future::join_all(writes).await;
    assert!(answers.iter().all(|s| *s == StatusCode::NO_CONTENT));
    assert!(in_flight().await > 1, "concurrent writes are seen");
    admin_send(&sim, Method::DELETE, "/stats", &json!({})).await;
    assert_eq!(in_flight().await, 0, "cleared with the stats");
}

#[tokio::test]
async fn events_are_listed_per_endpoint_and_organisation_wide_with_type_and_time_filters() {
    let sim = live_fleet(10).await;
    let token = emnify_token(&sim).await;
    let set = |id: u64| {
        let (sim, token) = (&sim, &token);
        async move {
            send(
                sim,
                token,
                Method::POST,
                &format!("/v1/endpoint/{id}/quota/data"),
                &quota_body("2026-07-01 00:00:00"),
            )
            .await
            .0
        }
    };
    assert_eq!(set(1001).await, StatusCode::CREATED);
    sim.advance(SignedDuration::from_mins(10));
    assert_eq!(set(1002).await, StatusCode::CREATED);
    admin_send(
        &sim,
        Method::POST,
        "/consume",
        &json!({"deviceId": 1002, "mb": 150}),
    )
    .await;
    // Endpoint enabled / disabled through emnify's API.
    send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/endpoint/1003",
        &json!({"status": {"id": 1}}),
    )
    .await;
    sim.advance(SignedDuration::from_secs(10));
    let ids = |events: &Value| -> Vec<(u64, u64)> {
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["endpoint"]["id"].as_u64().unwrap(),
                    e["event_type"]["id"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (status, all) = get(&sim, &token, "/v1/event").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&all),
        [(1003, 43), (1002, 19), (1002, 56), (1001, 56)],
        "newest first"
    );
    // One listing finds every device's quota events: q=type:..,from:..,until:..
    let (_, used_up) = get(&sim, &token, "/v1/event?q=type:19").await;
    assert_eq!(ids(&used_up), [(1002, 19)]);
    let (_, quota_events) = get(
        &sim,
        &token,
        "/v1/event?q=type:19%7C56,from:2026-06-01T00:05:00Z,until:2026-06-02T00:00:00Z",
    )
    .await;
    assert_eq!(ids(&quota_events), [(1002, 19), (1002, 56)]);
    let (_, repeated) = get(&sim, &token, "/v1/event?q=type:19,type:56").await;
    assert_eq!(ids(&repeated), [(1002, 19), (1002, 56), (1001, 56)]);
    let (_, early) = get(
        &sim,
        &token,
        "/v1/event?q=from:2026-01-01T00:00:00Z,until:2026-06-01%2000:05:00",
    )
    .await;
    assert_eq!(ids(&early), [(1001, 56)]);
    // emnify documents from and until as valid only together, and at most 6 types.
    let (status, body) = get(&sim, &token, "/v1/event?q=from:2026-06-01T00:05:00Z").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("only valid together"), "{body}");
    let (status, _) = get(&sim, &token, "/v1/event?q=type:1|2|3|4|5|6|7").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&sim, &token, "/v1/event?q=kind:19").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Per endpoint; an endpoint that does not exist answers 200 [].
    let (_, one) = get(&sim, &token, "/v1/endpoint/1002/event?q=type:56").await;
    assert_eq!(ids(&one), [(1002, 56)]);
    let (status, none) = get(&sim, &token, "/v1/endpoint/424242/event").await;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
}
