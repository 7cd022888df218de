//! Data quotas and emnify's rate limits.

use super::*;

pub(crate) fn quota_body(expiry: &str) -> Value {
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

/// emnify limits requests per client IP, whatever the credential: two tokens from one address
/// share the budget.
#[tokio::test]
async fn the_per_ip_limit_counts_every_credential_from_one_address() {
    let sim = start(SimulatorConfig {
        emnify_ip_rate_limit: Some(simfleet_simulator::RateLimitSpec {
            per_second: 0.1,
            burst: 3,
        }),
        emnify_app_tokens: vec!["token-a".into(), "token-b".into()],
        ..SimulatorConfig::for_tests(5, SignedDuration::from_secs(1))
    })
    .await;
    let mut statuses = Vec::new();
    for application_token in ["token-a", "token-b"] {
        let token = emnify_authenticate(&sim, application_token).await.1["auth_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let response = emnify(&sim, Method::GET, "/v1/endpoint", &token)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    // Two authentications and a listing took the burst of 3; the second listing is refused.
    assert_eq!(statuses, [200, 429]);
}

#[tokio::test]
async fn emnify_rate_limits_answer_429_with_emnify_s_error_code() {
    let sim = start(SimulatorConfig {
        rate_limit: Some(simfleet_simulator::RateLimitSpec {
            per_second: 0.1,
            burst: 2,
        }),
        auth_rate_limit: Some(simfleet_simulator::RateLimitSpec {
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
