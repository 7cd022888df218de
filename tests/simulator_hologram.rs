//! Hologram's surface of the simulator, over HTTP.

mod common;

use common::*;
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn requests_without_a_valid_api_key_are_refused_in_hologram_format() {
    let sim = simulator(10).await;
    let no_key = client()
        .get(format!("{}/devices", sim.hologram_url()))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(no_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["success"], false);
    assert!(body["error"].as_str().unwrap().contains("apikey"));
    let wrong = client()
        .get(format!("{}/devices", sim.hologram_url()))
        .basic_auth("apikey", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let by_query = client()
        .get(format!("{}/devices?apikey={API_KEY}", sim.hologram_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), StatusCode::OK);
}

#[tokio::test]
async fn keyset_paging_reaches_the_end_of_a_100000_sim_fleet() {
    let sim = simulator(100_000).await;
    for route in ["/devices", "/links/cellular"] {
        let mut after: Option<u64> = None;
        let mut seen = 0u64;
        let mut last_id = 0u64;
        let mut pages = 0;
        loop {
            let query = match after {
                Some(a) => format!("{route}?limit=1000&startafter={a}"),
                None => format!("{route}?limit=1000"),
            };
            let (status, body) = hologram_get(&sim, &query).await;
            assert_eq!(status, StatusCode::OK);
            let data = body["data"].as_array().unwrap();
            assert_eq!(body["size"], data.len());
            for item in data {
                let id = item["id"].as_u64().unwrap();
                assert!(id > last_id, "{route}: ids ascend");
                last_id = id;
            }
            seen += data.len() as u64;
            pages += 1;
            if body["continues"] == false {
                break;
            }
            after = Some(last_id);
        }
        assert_eq!(seen, 100_000, "{route}");
        assert_eq!(pages, 100, "{route}");
    }
}

#[tokio::test]
async fn devices_carry_tags_links_and_filters_select_them() {
    let sim = simulator(500).await;
    let (_, body) = hologram_get(&sim, "/devices?limit=1").await;
    let device = &body["data"][0];
    assert_eq!(device["id"], 1001);
    assert_eq!(device["links"]["cellular"][0]["sim"], "8944500000000000001");
    assert_eq!(device["links"]["cellular"][0]["deviceid"], 1001);
    let tag = device["tags"][0]["name"].as_str().unwrap().to_owned();
    let tag_id = device["tags"][0]["id"].as_u64().unwrap();

    let (_, by_name) = hologram_get(&sim, &format!("/devices?tagname={tag}&limit=1000")).await;
    let (_, by_id) = hologram_get(&sim, &format!("/devices?tagid={tag_id}&limit=1000")).await;
    assert_eq!(by_name["data"], by_id["data"]);
    let tagged = by_name["data"].as_array().unwrap();
    assert!(!tagged.is_empty() && tagged.len() < 500);
    assert!(tagged.iter().all(|d| {
        d["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == tag.as_str())
    }));

    let (_, by_sim) = hologram_get(&sim, "/links/cellular?sim=8944500000000000002").await;
    assert_eq!(by_sim["data"][0]["deviceid"], 1002);
    let (_, by_device) = hologram_get(&sim, "/links/cellular?deviceid=1003").await;
    assert_eq!(by_device["data"][0]["sim"], "8944500000000000003");
    let (_, other_org) = hologram_get(&sim, "/devices?orgid=99").await;
    assert_eq!(other_org["data"], json!([]));
    let (_, unknown_tag) = hologram_get(&sim, "/devices?tagname=no-such-tag").await;
    assert_eq!(unknown_tag["size"], 0);
}

#[tokio::test]
async fn bad_list_parameters_get_hologram_errors() {
    let sim = simulator(10).await;
    for query in [
        "/devices?limit=1001",
        "/devices?limit=0",
        "/devices?limit=ten",
        "/devices?startafter=-1",
    ] {
        let (status, body) = hologram_get(&sim, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["success"], false, "{query}");
    }
    let (status, body) = hologram_get(&sim, "/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["success"], false);
}

/// States of devices by id, read from the link listing.
async fn link_states(sim: &simfleet::simulator::SimulatorHandle, ids: &[u64]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let (_, body) = hologram_get(sim, &format!("/links/cellular?deviceid={id}")).await;
        out.push(body["data"][0]["state"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test]
async fn a_bulk_pause_is_pending_then_applied_when_the_delay_passes() {
    let sim = start(simfleet::simulator::SimulatorConfig {
        seed: simfleet::simulator::SeedConfig {
            sims: 50,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..Default::default()
        },
        ..simfleet::simulator::SimulatorConfig::for_tests(50, SignedDuration::from_secs(10))
    })
    .await;
    let (status, body) = hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "pause", "deviceids": [1001, 1002, 1003], "orgid": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    let job = body["data"]["jobid"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["invalid"], json!([]));
    assert_eq!(
        link_states(&sim, &[1001, 1002, 1003, 1004]).await,
        ["PAUSE-PENDING", "PAUSE-PENDING", "PAUSE-PENDING", "LIVE"]
    );

    let pending = admin_get(&sim, "/jobs?status=pending").await;
    assert_eq!(pending["jobs"][0]["id"], job.as_str());
    assert_eq!(pending["jobs"][0]["sims"], 3);

    sim.advance(SignedDuration::from_secs(9));
    assert_eq!(link_states(&sim, &[1001]).await, ["PAUSE-PENDING"]);
    sim.advance(SignedDuration::from_secs(1));
    assert_eq!(
        link_states(&sim, &[1001, 1002, 1003]).await,
        ["PAUSED-USER", "PAUSED-USER", "PAUSED-USER"]
    );
    let finished = admin_get(&sim, "/jobs?status=finished").await;
    assert_eq!(finished["jobs"][0]["id"], job.as_str());

    // Resume one device with the single-device route.
    let (status, body) =
        hologram_post(&sim, "/devices/1001/state", &json!({"state": "live"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["jobid"].is_string());
    sim.advance(SignedDuration::from_secs(10));
    assert_eq!(link_states(&sim, &[1001]).await, ["LIVE"]);
}

#[tokio::test]
async fn devices_that_cannot_change_are_listed_with_reasons() {
    let dir = std::env::temp_dir().join(format!("simfleet-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fleet.yaml");
    std::fs::write(
        &file,
        "sims:\n  - {iccid: \"8944500000000000001\"}\n  - {iccid: \"8944500000000000002\", state: DEAD}\n  - {iccid: \"8944500000000000003\", state: PAUSED-SYS, resumable: false}\n  - {iccid: \"8944500000000000004\", orgId: 2}\n",
    )
    .unwrap();
    let sim = start(simfleet::simulator::SimulatorConfig {
        fleet_file: Some(file),
        ..simfleet::simulator::SimulatorConfig::for_tests(0, SignedDuration::from_secs(10))
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    let (status, body) = hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "live", "deviceids": [1001, 1002, 1003, 1004, 9999], "orgid": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["accepted"], 1);
    let reasons: Vec<(u64, String)> = body["data"]["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["deviceid"].as_u64().unwrap(),
                i["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 4);
    assert!(reasons[0].0 == 1002 && reasons[0].1.contains("deactivated"));
    assert!(reasons[1].0 == 1003 && reasons[1].1.contains("PAUSED-SYS"));
    assert!(reasons[2].0 == 1004 && reasons[2].1.contains("another organisation"));
    assert!(reasons[3].0 == 9999 && reasons[3].1.contains("unknown device"));

    // A change already pending is refused, not submitted twice.
    let (_, again) = hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "live", "deviceids": [1001]}),
    )
    .await;
    assert!(
        again["data"]["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already pending")
    );
    let stats = admin_get(&sim, "/stats").await;
    assert_eq!(stats["changes"]["submittedSims"], 1);
}

#[tokio::test]
async fn refused_bulk_requests_change_nothing() {
    let sim = simulator(20_000).await;
    let too_many: Vec<u64> = (1001..1001 + 10_001).collect();
    let cases = [
        (
            json!({"state": "pause", "deviceids": too_many}),
            "at most 10000",
        ),
        (json!({"state": "pause", "deviceids": []}), "empty"),
        (
            json!({"state": "pause", "deviceids": [1001, 1002, 1001]}),
            "listed twice",
        ),
        (
            json!({"state": "pause", "deviceids": [1001, "x"]}),
            "deviceids[1]",
        ),
        (
            json!({"state": "sleep", "deviceids": [1001]}),
            "\"pause\" or \"live\"",
        ),
        (json!({"deviceids": [1001]}), "state is required"),
        (
            json!({"state": "pause", "deviceids": [1001], "orgid": "one"}),
            "orgid",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = hologram_post(&sim, "/devices/batch/state", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{expected}");
        assert_eq!(answer["success"], false);
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    let malformed = client()
        .post(format!("{}/devices/batch/state", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .body("{\"state\": \"pause\", ")
        .send()
        .await
        .unwrap();
    let (status, answer) = status_and_json(malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("not valid JSON"));
    // Nothing is pending and no job was recorded.
    let pending = admin_get(&sim, "/sims?pending=true").await;
    assert_eq!(pending["total"], 0);
    assert_eq!(admin_get(&sim, "/jobs").await["jobs"], json!([]));
    // Exactly 10,000 is accepted.
    let limit: Vec<u64> = (1001..1001 + 10_000).collect();
    let (status, body) = hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "pause", "deviceids": limit}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let accepted = body["data"]["accepted"].as_u64().unwrap();
    let invalid = body["data"]["invalid"].as_array().unwrap().len() as u64;
    assert_eq!(accepted + invalid, 10_000);
    let (status, _) =
        hologram_post(&sim, "/devices/999999/state", &json!({"state": "pause"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_credential_over_its_rate_limit_gets_429_with_retry_after() {
    let sim = start(simfleet::simulator::SimulatorConfig {
        rate_limit: Some(simfleet::simulator::RateLimitSpec {
            per_second: 0.1,
            burst: 3,
        }),
        ..simfleet::simulator::SimulatorConfig::for_tests(10, SignedDuration::from_secs(1))
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = client()
            .get(format!("{}/devices", sim.hologram_url()))
            .basic_auth("apikey", Some(API_KEY))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(
        retry_after.is_some_and(|s| (1..=10).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(count(&sim, "GET", "/api/1/devices", 429).await, 2);
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
