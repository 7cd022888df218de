//! emnify's surface of the simulator, over HTTP.

mod common;

use common::*;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use simfleet::simulator::{SimulatorConfig, SimulatorHandle};

async fn get(sim: &SimulatorHandle, token: &str, path: &str) -> (StatusCode, Value) {
    status_and_json(emnify(sim, Method::GET, path, token).send().await.unwrap()).await
}

async fn send(
    sim: &SimulatorHandle,
    token: &str,
    method: Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    status_and_json(
        emnify(sim, method, path, token)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn authentication_issues_tokens_that_expire_with_the_virtual_clock() {
    let sim = simulator(10).await;
    let (status, body) = emnify_authenticate(&sim, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // emnify's documented error body and code (1102 InvalidToken).
    assert_eq!(body["error_code"], 1102);
    assert_eq!(body["error_token"], "InvalidToken");
    assert!(body["message"].is_string());

    let token = emnify_token(&sim).await;
    // The token is a JWT whose payload carries exp.
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["exp"].as_i64().unwrap() > sim.state().clock.now().as_second());

    assert_eq!(get(&sim, &token, "/v1/endpoint").await.0, StatusCode::OK);
    assert_eq!(
        get(&sim, "not-a-token", "/v1/endpoint").await.0,
        StatusCode::UNAUTHORIZED
    );
    let no_token = client()
        .get(format!("{}/v1/endpoint", sim.emnify_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    sim.advance(SignedDuration::from_mins(61));
    let (status, body) = get(&sim, &token, "/v1/endpoint").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("expired"));
    assert_eq!(
        (body["error_code"].clone(), body["error_token"].clone()),
        (json!(1103), json!("TokenExpired"))
    );

    // Application tokens get no refresh token: authenticate again.
    let (status, fresh) = emnify_authenticate(&sim, APP_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fresh.get("refresh_token").is_none(), "{fresh}");
    let new_token = fresh["auth_token"].as_str().unwrap();
    assert_eq!(get(&sim, new_token, "/v1/endpoint").await.0, StatusCode::OK);

    // Forced expiry, as fault injection.
    let (status, _) = admin_send(&sim, Method::POST, "/tokens/expire", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get(&sim, new_token, "/v1/endpoint").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn three_failed_authentications_in_a_row_lock_authentication_for_five_minutes() {
    let sim = simulator(10).await;
    // Two failures, then a success: the count starts again.
    for _ in 0..2 {
        assert_eq!(
            emnify_authenticate(&sim, "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(emnify_authenticate(&sim, APP_TOKEN).await.0, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(
            emnify_authenticate(&sim, "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right token is refused, until five minutes have passed.
    let (status, body) = emnify_authenticate(&sim, APP_TOKEN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("locked"),
        "{body}"
    );
    sim.advance(SignedDuration::from_mins(4));
    assert_eq!(
        emnify_authenticate(&sim, APP_TOKEN).await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.advance(SignedDuration::from_mins(1));
    assert_eq!(emnify_authenticate(&sim, APP_TOKEN).await.0, StatusCode::OK);
}

#[tokio::test]
async fn authentication_is_limited_per_ip_to_100_in_5_minutes() {
    let sim = simulator(10).await;
    let mut statuses = Vec::new();
    for _ in 0..102 {
        statuses.push(emnify_authenticate(&sim, APP_TOKEN).await.0.as_u16());
    }
    assert!(statuses[..100].iter().all(|&s| s == 200), "{statuses:?}");
    let (status, body) = emnify_authenticate(&sim, APP_TOKEN).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (body["error_code"].clone(), body["error_token"].clone()),
        (json!(1105), json!("TooManyRequests"))
    );
}

#[tokio::test]
async fn page_per_page_listing_reaches_the_end_of_a_100000_sim_fleet() {
    let sim = simulator(100_000).await;
    let token = emnify_token(&sim).await;
    for route in ["/v1/endpoint", "/v1/sim"] {
        let mut page = 1;
        let mut seen = 0usize;
        let mut last = 0u64;
        loop {
            let response = emnify(
                &sim,
                Method::GET,
                &format!("{route}?page={page}&per_page=1000"),
                &token,
            )
            .send()
            .await
            .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["x-total-count"], "100000");
            assert_eq!(response.headers()["x-total-pages"], "100");
            assert_eq!(
                response.headers()["x-current-page"],
                page.to_string().as_str()
            );
            let items: Vec<Value> = response.json().await.unwrap();
            for item in &items {
                let id = item["id"].as_u64().unwrap();
                assert!(id > last);
                last = id;
            }
            seen += items.len();
            if page == 100 {
                break;
            }
            page += 1;
        }
        assert_eq!(seen, 100_000, "{route}");
        // A page past the last answers the last page again (stop on X-Total-Pages).
        let past = emnify(
            &sim,
            Method::GET,
            &format!("{route}?page=101&per_page=1000"),
            &token,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(past.headers()["x-current-page"], "100");
        let again: Vec<Value> = past.json().await.unwrap();
        assert_eq!(again.len(), 1000);
        assert_eq!(
            again.last().unwrap()["id"].as_u64().unwrap(),
            last,
            "{route}"
        );
    }
    // per_page bounds and defaults: endpoints 1 to 1000 (default 1000), SIMs to 2500 (2000).
    for (path, ok) in [
        ("/v1/endpoint?per_page=1000", true),
        ("/v1/endpoint?per_page=1001", false),
        ("/v1/sim?per_page=2500", true),
        ("/v1/sim?per_page=2501", false),
        ("/v1/endpoint?per_page=0", false),
    ] {
        assert_eq!(get(&sim, &token, path).await.0.is_success(), ok, "{path}");
    }
    let defaults = emnify(&sim, Method::GET, "/v1/endpoint", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(defaults.headers()["x-count-per-page"], "1000");
    let defaults = emnify(&sim, Method::GET, "/v1/sim", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(defaults.headers()["x-count-per-page"], "2000");
}

#[tokio::test]
async fn endpoints_carry_profiles_and_null_sim_or_tags_when_none() {
    let dir = std::env::temp_dir().join(format!("simfleet-emnify-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fleet.yaml");
    std::fs::write(
        &file,
        "sims:\n  - {iccid: \"8944500000000000001\", tags: [meter, pilot]}\n  - {iccid: \"8944500000000000002\"}\n  - {iccid: \"8944500000000000003\", sim: false}\n",
    )
    .unwrap();
    let sim = start(SimulatorConfig {
        fleet_file: Some(file),
        ..SimulatorConfig::for_tests(0, SignedDuration::from_secs(10))
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    let token = emnify_token(&sim).await;
    let (_, tagged) = get(&sim, &token, "/v1/endpoint/1001").await;
    assert_eq!(tagged["tags"], "meter,pilot");
    for field in ["service_profile", "tariff_profile"] {
        assert!(
            tagged[field]["id"].is_u64() && tagged[field]["name"].is_string(),
            "{field}: {tagged}"
        );
    }
    assert_eq!(tagged["status"], json!({"id": 0, "description": "Enabled"}));
    assert_eq!(tagged["sim"]["id"], 700001);
    for field in ["iccid", "imsi", "msisdn"] {
        assert!(tagged["sim"][field].is_string(), "{field}");
    }
    let (_, untagged) = get(&sim, &token, "/v1/endpoint/1002").await;
    assert!(
        untagged["tags"].is_null(),
        "tags: null when none: {untagged}"
    );
    let (_, simless) = get(&sim, &token, "/v1/endpoint/1003").await;
    assert!(simless["sim"].is_null(), "sim: null when none: {simless}");
    // SIM objects: the SIM list has only the two SIMs, each with its endpoint.
    let (_, sims) = get(&sim, &token, "/v1/sim").await;
    let sims = sims.as_array().unwrap();
    assert_eq!(sims.len(), 2);
    assert_eq!(sims[0]["endpoint"]["id"], 1001);
    assert_eq!(
        sims[0]["status"],
        json!({"id": 1, "description": "Activated"})
    );
    let (status, one) = get(&sim, &token, "/v1/sim/700002").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["iccid"], "8944500000000000002");
    // Hologram's view of the SIM-less device: no cellular link, and its ICCID finds nothing.
    let (_, device) = hologram_get(&sim, "/devices/1003").await;
    assert_eq!(device["data"]["links"]["cellular"], json!([]));
    let (_, link) = hologram_get(&sim, "/links/cellular?sim=8944500000000000003").await;
    assert_eq!(link["data"], json!([]));
}

#[tokio::test]
async fn q_filters_select_by_tag_status_and_iccid() {
    let sim = simulator(2_000).await;
    let token = emnify_token(&sim).await;
    let (_, first) = get(&sim, &token, "/v1/endpoint/1001").await;
    assert_eq!(first["sim"]["iccid"], "8944500000000000001");
    assert_eq!(first["sim"]["id"], 700_001);
    let tag = first["tags"]
        .as_str()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();

    let (_, tagged) = get(
        &sim,
        &token,
        &format!("/v1/endpoint?q=tags:{tag}&per_page=1000"),
    )
    .await;
    let tagged = tagged.as_array().unwrap();
    assert!(!tagged.is_empty());
    assert!(
        tagged
            .iter()
            .all(|e| e["tags"].as_str().unwrap().split(',').any(|t| t == tag))
    );

    let (_, disabled) = get(
        &sim,
        &token,
        &format!("/v1/endpoint?q=tags:{tag},status:1&per_page=1000"),
    )
    .await;
    let disabled = disabled.as_array().unwrap();
    assert!(disabled.iter().all(|e| e["status"]["id"] == 1));
    assert!(disabled.len() < tagged.len());

    let (_, by_iccid) = get(&sim, &token, "/v1/sim?q=iccid:8944500000000000005").await;
    assert_eq!(by_iccid[0]["endpoint"]["id"], 1005);

    for bad in [
        "/v1/endpoint?q=colour:red",
        "/v1/endpoint?per_page=1001",
        "/v1/endpoint?page=0",
        "/v1/endpoint?q=status:x",
        "/v1/endpoint?sort=name",
    ] {
        let (status, body) = get(&sim, &token, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error_code"], 400, "{bad}");
    }
    assert_eq!(
        get(&sim, &token, "/v1/endpoint/999999").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn endpoint_and_sim_patches_are_validated_and_applied_after_the_delay() {
    let sim = live_fleet(10).await;
    let token = emnify_token(&sim).await;
    let (status, _) = send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/endpoint/1001",
        &json!({"status": {"id": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/sim/700001",
        &json!({"status": {"id": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Still the old status until the change lands.
    let (_, endpoint) = get(&sim, &token, "/v1/endpoint/1001").await;
    assert_eq!(endpoint["status"]["id"], 0);
    sim.advance(SignedDuration::from_secs(10));
    let (_, endpoint) = get(&sim, &token, "/v1/endpoint/1001").await;
    assert_eq!(
        endpoint["status"],
        json!({"id": 1, "description": "Disabled"})
    );
    assert_eq!(
        endpoint["sim"]["status"],
        json!({"id": 2, "description": "Suspended"})
    );
    // The same SIM seen through Hologram's surface is paused.
    let (_, link) = hologram_get(&sim, "/links/cellular?deviceid=1001").await;
    assert_eq!(link["data"][0]["state"], "PAUSED-USER");

    let (status, body) = send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/endpoint/1002",
        &json!({"status": {"id": 7}}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(422))
    );
    let (status, _) = send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/endpoint/1002",
        &json!({"status": "off"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let malformed = emnify(&sim, Method::PATCH, "/v1/endpoint/1002", &token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    admin_send(&sim, Method::PATCH, "/sims/1003", &json!({"state": "DEAD"})).await;
    let (status, body) = send(
        &sim,
        &token,
        Method::PATCH,
        "/v1/endpoint/1003",
        &json!({"status": {"id": 0}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, deleted) = get(&sim, &token, "/v1/endpoint/1003").await;
    assert_eq!(deleted["status"]["id"], 2);
    assert_eq!(
        send(
            &sim,
            &token,
            Method::PATCH,
            "/v1/endpoint/5000",
            &json!({"status": {"id": 1}})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // Refused requests left device 1002 as it was.
    assert_eq!(
        get(&sim, &token, "/v1/endpoint/1002").await.1["status"]["id"],
        0
    );
}

fn quota_body(expiry: &str) -> Value {
    json!({
        "status": {"id": 1},
        "volume": 100,
        "expiry_date": expiry,
        "action_on_exhaustion": {"id": 1},
        "auto_refill": 0,
        "threshold_percentage": 20
    })
}

#[tokio::test]
async fn quotas_are_validated_set_consumed_exhausted_and_expired() {
    let sim = live_fleet(10).await;
    let token = emnify_token(&sim).await;
    let path = "/v1/endpoint/1001/quota/data";
    let (status, _) = get(&sim, &token, path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no quota yet");

    // The simulator's clock reads 2026-06-01T00:00:00Z.
    let refusals = [
        (quota_body("2026-05-01 00:00:00"), "in the future"),
        (quota_body("2026-07-01T00:00:00Z"), "YYYY-MM-DD HH:MM:SS"),
        (
            json!({"status": {"id": 1}, "volume": 100, "expiry_date": "2026-07-01 00:00:00", "action_on_exhaustion": {"id": 2}}),
            "decommissioned",
        ),
        (
            json!({"status": {"id": 1}, "expiry_date": "2026-07-01 00:00:00", "action_on_exhaustion": {"id": 1}}),
            "volume is required",
        ),
        (
            json!({"status": {"id": 1}, "volume": "lots", "expiry_date": "2026-07-01 00:00:00", "action_on_exhaustion": {"id": 1}}),
            "volume must be a number",
        ),
    ];
    for (body, expected) in refusals {
        let (status, answer) = send(&sim, &token, Method::POST, path, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{expected}");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    assert_eq!(
        get(&sim, &token, path).await.0,
        StatusCode::NOT_FOUND,
        "refusals set nothing"
    );

    let (status, _) = send(
        &sim,
        &token,
        Method::POST,
        path,
        &quota_body("2026-07-01 00:00:00"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, quota) = get(&sim, &token, path).await;
    assert_eq!(quota["status"]["description"], "ACTIVE");
    assert_eq!(quota["volume"], 100.0);
    assert_eq!(quota["expiry_date"], "2026-07-01 00:00:00");
    assert!(quota["id"].is_u64(), "quotas have integer ids: {quota}");

    // Use 85 MB: threshold (20% left) reached; then the rest: used up.
    let (status, _) = admin_send(
        &sim,
        Method::POST,
        "/consume",
        &json!({"deviceId": 1001, "mb": 85}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, consumed) = admin_send(
        &sim,
        Method::POST,
        "/consume",
        &json!({"deviceId": 1001, "mb": 50}),
    )
    .await;
    assert_eq!(consumed["quota"]["status"]["description"], "EXHAUSTED");
    // Data used past zero is counted: the volume goes negative.
    assert_eq!(consumed["quota"]["volume"], -35.0);
    assert_eq!(get(&sim, &token, path).await.1["volume"], -35.0);
    let (status, body) = admin_send(
        &sim,
        Method::POST,
        "/consume",
        &json!({"deviceId": 1001, "mb": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("denied data"));

    let (_, events) = get(&sim, &token, "/v1/endpoint/1001/event").await;
    let kinds: Vec<(u64, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"]["id"].as_u64().unwrap(),
                e["event_type"]["description"].as_str().unwrap(),
            )
        })
        .collect();
    // emnify's documented type ids, newest first.
    assert_eq!(
        kinds,
        [
            (19, "Quota used up"),
            (18, "Quota threshold reached"),
            (56, "Quota assigned")
        ],
        "newest first"
    );

    // A new quota, then time passes its expiry.
    send(
        &sim,
        &token,
        Method::POST,
        path,
        &quota_body("2026-06-02 00:00:00"),
    )
    .await;
    sim.advance(SignedDuration::from_hours(25));
    // A day later the 1-hour token has expired too.
    let token = emnify_token(&sim).await;
    let (_, quota) = get(&sim, &token, path).await;
    assert_eq!(quota["status"]["description"], "EXPIRED");

    let (status, _) = send(&sim, &token, Method::DELETE, path, &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, events) = get(&sim, &token, "/v1/endpoint/1001/event?per_page=2").await;
    let newest: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(newest, [57, 60], "quota deleted, after data quota expired");
    assert_eq!(get(&sim, &token, path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&sim, &token, Method::DELETE, path, &json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn auto_refill_restores_the_volume_each_day() {
    let sim = live_fleet(3).await;
    let token = emnify_token(&sim).await;
    let mut body = quota_body("2026-06-10 00:00:00");
    body["auto_refill"] = json!(1);
    send(
        &sim,
        &token,
        Method::POST,
        "/v1/endpoint/1002/quota/data",
        &body,
    )
    .await;
    admin_send(
        &sim,
        Method::POST,
        "/consume",
        &json!({"deviceId": 1002, "mb": 100}),
    )
    .await;
    let (_, quota) = get(&sim, &token, "/v1/endpoint/1002/quota/data").await;
    assert_eq!(quota["status"]["description"], "EXHAUSTED");
    sim.advance(SignedDuration::from_hours(24));
    let token = emnify_token(&sim).await;
    let (_, quota) = get(&sim, &token, "/v1/endpoint/1002/quota/data").await;
    assert_eq!(quota["status"]["description"], "ACTIVE");
    assert_eq!(quota["volume"], 100.0);
}

#[tokio::test]
async fn emnify_rate_limits_answer_429_with_emnify_s_error_code() {
    let sim = start(SimulatorConfig {
        rate_limit: Some(simfleet::simulator::RateLimitSpec {
            per_second: 0.1,
            burst: 2,
        }),
        auth_rate_limit: Some(simfleet::simulator::RateLimitSpec {
            per_second: 0.1,
            burst: 2,
        }),
        ..SimulatorConfig::for_tests(5, SignedDuration::from_secs(1))
    })
    .await;
    let token = emnify_token(&sim).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = emnify(&sim, Method::GET, "/v1/endpoint", &token)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            // No Retry-After is documented; the body has emnify's code 1105.
            assert!(!response.headers().contains_key("retry-after"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error_code"], 1105);
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    // Authentication has its own, smaller budget (100 per 5 minutes by default).
    emnify_token(&sim).await;
    let third = client()
        .post(format!("{}/v1/authenticate", sim.emnify_url()))
        .json(&json!({"application_token": APP_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
}

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
        emnify_bulk: simfleet::simulator::EmnifyBulk::Forbidden,
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
