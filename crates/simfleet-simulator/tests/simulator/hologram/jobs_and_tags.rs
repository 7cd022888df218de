//! Rate limits, orgid, the jobs list, injected faults, tags and link history.

use super::*;

#[tokio::test]
async fn a_credential_over_its_rate_limit_gets_hologram_s_documented_429() {
    for header in [false, true] {
        let sim = start(simfleet_simulator::SimulatorConfig {
            rate_limit: Some(simfleet_simulator::RateLimitSpec {
                per_second: 0.1,
                burst: 3,
            }),
            retry_after_header: header,
            ..simfleet_simulator::SimulatorConfig::for_tests(10, SignedDuration::from_secs(1))
        })
        .await;
        let mut statuses = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let response = client()
                .get(format!("{}/devices", sim.hologram_url()))
                .basic_auth("apikey", Some(API_KEY))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                last = Some((retry_after, status_and_json(response).await.1));
            }
        }
        assert_eq!(statuses, [200, 200, 200, 429, 429]);
        let (retry_after, body) = last.unwrap();
        assert_eq!(
            body,
            json!({"success": false, "error": "API rate limit exceeded"})
        );
        // No Retry-After is documented: sent only with --retry-after-header.
        assert_eq!(retry_after.is_some(), header, "{retry_after:?}");
        assert!(retry_after.is_none_or(|s| (1..=10).contains(&s)));
        assert_eq!(count(&sim, "GET", "/api/1/devices", 429).await, 2);
    }
}

#[tokio::test]
async fn the_bulk_route_takes_orgid_in_the_body_or_as_a_required_query_parameter() {
    let query_variant = start(simfleet_simulator::SimulatorConfig {
        hologram: simfleet_simulator::HologramVariants {
            orgid: simfleet_simulator::OrgIdPlacement::Query,
            jobid: simfleet_simulator::JobIdShape::String,
            warnings: simfleet_simulator::WarningShape::Strings,
            ..Default::default()
        },
        ..live_config(5)
    })
    .await;
    let body = json!({"state": "pause", "deviceids": [1001, 9999], "orgid": 1});
    let (status, answer) = hologram_post(&query_variant, "/devices/batch/state", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("orgid is a required query parameter"),
        "{answer}"
    );
    let (status, answer) =
        hologram_post(&query_variant, "/devices/batch/state?orgid=1", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The other variants: jobid a string, warnings plain strings.
    assert!(answer["data"]["jobid"].is_string(), "{answer}");
    let warning = &answer["data"]["valid_tasks"][0]["task_results"]["warnings"][0];
    assert!(warning.as_str().unwrap().contains("9999"), "{warning}");
    // The body variant (the default) takes it in the body, or not at all.
    let body_variant = live_fleet(5).await;
    let (status, answer) = hologram_post(
        &body_variant,
        "/devices/batch/state",
        &json!({"state": "pause", "deviceids": [1001]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["data"]["jobid"].is_u64());
}

#[tokio::test]
async fn the_jobs_list_answers_403_for_plans_without_activity_history() {
    let sim = start(simfleet_simulator::SimulatorConfig {
        hologram: simfleet_simulator::HologramVariants {
            jobs: simfleet_simulator::JobsRoute::Forbidden,
            ..Default::default()
        },
        ..live_config(5)
    })
    .await;
    let (status, body) = hologram_get(&sim, "/devices/batch/state?orgid=1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn injected_faults_follow_their_rules() {
    let sim = simulator(10).await;
    let (status, body) = admin_send(
        &sim,
        reqwest::Method::PUT,
        "/faults",
        &json!({"rules": [
            {"route": "/api/1/devices", "burst5xx": 2},
            {"route": "/api/1/links/cellular", "burst429": 1, "retryAfterSecs": 7},
            {"route": "/api/1/devices/{id}", "burst429": 1},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(hologram_get(&sim, "/devices").await.0.as_u16());
    }
    assert_eq!(statuses, [503, 503, 200]);
    let limited = client()
        .get(format!("{}/links/cellular", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "7");
    // Without retryAfterSecs an injected 429 carries no Retry-After, as documented.
    let unannounced = client()
        .get(format!("{}/devices/1001", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(unannounced.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(unannounced.headers().get("retry-after").is_none());
    assert_eq!(
        hologram_get(&sim, "/links/cellular").await.0,
        StatusCode::OK
    );

    // Every request fails at error rate 1; a reset cuts the body.
    admin_send(
        &sim,
        reqwest::Method::PUT,
        "/faults",
        &json!({"rules": [{"errorRate": 1.0}]}),
    )
    .await;
    let (status, body) = hologram_get(&sim, "/devices").await;
    assert_eq!(
        (status, body["success"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, Value::Bool(false))
    );
    admin_send(
        &sim,
        reqwest::Method::PUT,
        "/faults",
        &json!({"rules": [{"resetRate": 1.0}]}),
    )
    .await;
    let cut = client()
        .get(format!("{}/devices", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .send()
        .await;
    let body = match cut {
        Ok(response) => response.text().await,
        Err(e) => Err(e),
    };
    assert!(body.is_err(), "the connection was cut: {body:?}");
    // Bad rules are refused with the field named, and the rules in force stay.
    let (status, body) = admin_send(
        &sim,
        reqwest::Method::PUT,
        "/faults",
        &json!({"rules": [{"errorRate": 2}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("rules[0].errorRate"),
        "{body}"
    );
    assert_eq!(
        admin_get(&sim, "/faults").await["rules"][0]["resetRate"],
        1.0
    );
    admin_send(&sim, reqwest::Method::DELETE, "/faults", &json!({})).await;
    assert_eq!(hologram_get(&sim, "/devices").await.0, StatusCode::OK);
}

#[tokio::test]
async fn tags_are_listed_created_linked_unlinked_and_deleted() {
    let sim = live_fleet(10).await;
    let (status, created) = hologram_post(
        &sim,
        "/devices/tags",
        &json!({"name": "returned", "deviceids": [1001, 1002]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let tag = created["data"]["id"].as_u64().unwrap();
    assert_eq!(created["data"]["deviceids"], json!([1001, 1002]));
    let (_, linked) = hologram_post(
        &sim,
        &format!("/devices/tags/{tag}/link"),
        &json!({"deviceids": [1005]}),
    )
    .await;
    assert_eq!(linked["data"]["deviceids"], json!([1001, 1002, 1005]));
    let (_, unlinked) = hologram_post(
        &sim,
        &format!("/devices/tags/{tag}/unlink"),
        &json!({"deviceids": [1001]}),
    )
    .await;
    assert_eq!(unlinked["data"]["deviceids"], json!([1002, 1005]));
    // The devices carry it, and a listing by the tag finds them.
    let (_, by_tag) = hologram_get(&sim, "/devices?tagname=returned").await;
    let ids: Vec<u64> = by_tag["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1002, 1005]);
    let (_, listed) = hologram_get(&sim, &format!("/devices/tags?id={tag}")).await;
    assert_eq!(listed["data"][0]["name"], "returned");
    let (_, of_device) = hologram_get(&sim, "/devices/tags?deviceids=1005").await;
    assert!(
        of_device["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == tag)
    );
    let (status, _) = hologram_post(&sim, "/devices/tags", &json!({"name": "a,b"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Deleting the tag removes it from every device.
    let deleted = client()
        .delete(format!("{}/devices/tags/{tag}", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let (_, device) = hologram_get(&sim, "/devices/1005").await;
    assert!(
        device["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "returned")
    );
    let (status, _) = hologram_post(
        &sim,
        &format!("/devices/tags/{tag}/link"),
        &json!({"deviceids": [1001]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_per_link_state_route_and_the_link_history_follow_the_blueprint() {
    let sim = live_fleet(10).await;
    let (status, body) = hologram_post(
        &sim,
        "/links/cellular/500001/state",
        &json!({"state": "pause"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["newstate"], "PAUSED-PENDING-USER");
    sim.advance(SignedDuration::from_secs(10));
    hologram_post(
        &sim,
        "/links/cellular/500001/state",
        &json!({"state": "live"}),
    )
    .await;
    sim.advance(SignedDuration::from_secs(10));
    let (status, history) = hologram_get(&sim, "/links/cellular/500001/history").await;
    assert_eq!(status, StatusCode::OK);
    let changes: Vec<(String, String)> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["oldstate"].as_str().unwrap().to_owned(),
                h["newstate"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("LIVE".to_owned(), "PAUSED-USER".to_owned()),
            ("PAUSED-USER".to_owned(), "LIVE".to_owned())
        ]
    );
    let entry = &history["data"][0];
    assert_eq!(
        (entry["linkid"].clone(), entry["reason"].clone()),
        (json!(500001), json!("USER"))
    );
    assert!(
        entry["timestamp"].as_str().unwrap().len() == 19,
        "YYYY-MM-DD HH:MM:SS"
    );
    let (status, _) = hologram_post(
        &sim,
        "/links/cellular/500001/state",
        &json!({"state": "deactivate"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = hologram_get(&sim, "/links/cellular/999/history").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
