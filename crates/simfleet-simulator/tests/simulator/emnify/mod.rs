//! emnify's surface of the simulator, over HTTP.

use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use simfleet_simulator::{SimulatorConfig, SimulatorHandle};
use simfleet_testkit::simulator::*;

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

mod bulk;
mod quotas;
