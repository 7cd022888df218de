//! Hologram's surface of the simulator, over HTTP.

use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use simfleet_testkit::simulator::*;

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
            // `continues` is present only while more follow; `lastid` and `links.next` say
            // where the next page starts.
            if body.get("continues").is_none() {
                assert!(body["links"].get("next").is_none(), "{route}: no next page");
                break;
            }
            assert_eq!(body["continues"], true);
            assert_eq!(body["lastid"], last_id, "{route}");
            let next = body["links"]["next"].as_str().unwrap();
            assert!(next.contains(&format!("startafter={last_id}")), "{next}");
            after = Some(body["lastid"].as_u64().unwrap());
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
    assert!(
        device.get("iccid").is_none(),
        "no top-level iccid: {device}"
    );
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
    // The multi-value filters look many listed SIMs up in one call.
    let ids = |body: &Value, key: &str| -> Vec<u64> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[key].as_u64().unwrap())
            .collect()
    };
    let (_, by_ids) = hologram_get(&sim, "/devices?ids=1005,1002,1400&limit=1000").await;
    assert_eq!(ids(&by_ids, "id"), [1002, 1005, 1400]);
    let (_, by_sims) = hologram_get(&sim, "/links/cellular?sims=8944500000000000007,8944500000000000003,8944500000000099999&limit=1000").await;
    assert_eq!(ids(&by_sims, "deviceid"), [1003, 1007]);
    let (_, by_devices) =
        hologram_get(&sim, "/links/cellular?deviceids=1010,1011&limit=1000").await;
    assert_eq!(ids(&by_devices, "deviceid"), [1010, 1011]);
    let (_, by_link_ids) = hologram_get(&sim, "/links/cellular?ids=500001,500003").await;
    assert_eq!(ids(&by_link_ids, "id"), [500001, 500003]);
    // A multi-value page is paged like any other.
    let (_, first) = hologram_get(&sim, "/devices?ids=1001,1002,1003&limit=2").await;
    assert_eq!(
        (first["continues"].clone(), first["lastid"].clone()),
        (json!(true), json!(1002))
    );
    let (_, rest) = hologram_get(&sim, "/devices?ids=1001,1002,1003&limit=2&startafter=1002").await;
    assert_eq!(ids(&rest, "id"), [1003]);
    assert!(rest.get("continues").is_none());
}

#[tokio::test]
async fn device_tags_are_objects_or_strings_as_the_variant_says() {
    for (shape, expected) in [
        (simfleet_simulator::TagShape::Objects, true),
        (simfleet_simulator::TagShape::Strings, false),
    ] {
        let sim = start(simfleet_simulator::SimulatorConfig {
            hologram: simfleet_simulator::HologramVariants {
                tags: shape,
                ..Default::default()
            },
            ..live_config(5)
        })
        .await;
        let (_, body) = hologram_get(&sim, "/devices/1001").await;
        let tag = &body["data"]["tags"][0];
        assert_eq!(tag.is_object(), expected, "{shape:?}: {tag}");
        assert_eq!(tag.is_string(), !expected, "{shape:?}: {tag}");
    }
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
async fn link_states(sim: &simfleet_simulator::SimulatorHandle, ids: &[u64]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let (_, body) = hologram_get(sim, &format!("/links/cellular?deviceid={id}")).await;
        out.push(body["data"][0]["state"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test]
async fn a_bulk_pause_is_pending_then_applied_when_the_delay_passes() {
    let sim = start(simfleet_simulator::SimulatorConfig {
        seed: simfleet_simulator::SeedConfig {
            sims: 50,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..Default::default()
        },
        ..simfleet_simulator::SimulatorConfig::for_tests(50, SignedDuration::from_secs(10))
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
    // The documented answer: a job id, preview, and the task results with their warnings.
    let job = body["data"]["jobid"].as_u64().unwrap().to_string();
    assert_eq!(body["data"]["preview"], false);
    let results = &body["data"]["valid_tasks"][0]["task_results"];
    assert_eq!(results["warnings"], json!([]));
    assert_eq!(results["devices_modified"], 3);
    assert_eq!(results["newstate"], "PAUSED-PENDING-USER");
    assert_eq!(
        link_states(&sim, &[1001, 1002, 1003, 1004]).await,
        [
            "PAUSED-PENDING-USER",
            "PAUSED-PENDING-USER",
            "PAUSED-PENDING-USER",
            "LIVE"
        ]
    );

    let pending = admin_get(&sim, "/jobs?status=pending").await;
    assert_eq!(pending["jobs"][0]["id"], job.as_str());
    assert_eq!(pending["jobs"][0]["sims"], 3);
    // The jobs list shows it in progress.
    let (status, jobs) = hologram_get(&sim, "/devices/batch/state?orgid=1").await;
    assert_eq!(status, StatusCode::OK, "{jobs}");
    let task = &jobs["data"]["tasks"][0];
    assert_eq!(task["job_id"].to_string(), job);
    assert_eq!(
        (
            task["device_count"].clone(),
            task["action"].clone(),
            task["status"].clone()
        ),
        (json!(3), json!("pause"), json!("PROCESSING"))
    );
    assert!(task["timestamp_end"].is_null() && task["timestamp_start"].is_string());
    assert_eq!(jobs["data"]["totalTasks"], 1);

    sim.advance(SignedDuration::from_secs(9));
    assert_eq!(link_states(&sim, &[1001]).await, ["PAUSED-PENDING-USER"]);
    sim.advance(SignedDuration::from_secs(1));
    assert_eq!(
        link_states(&sim, &[1001, 1002, 1003]).await,
        ["PAUSED-USER", "PAUSED-USER", "PAUSED-USER"]
    );
    let finished = admin_get(&sim, "/jobs?status=finished").await;
    assert_eq!(finished["jobs"][0]["id"], job.as_str());
    let (_, jobs) = hologram_get(&sim, "/devices/batch/state").await;
    assert_eq!(jobs["data"]["tasks"][0]["status"], "COMPLETED");
    assert!(jobs["data"]["tasks"][0]["timestamp_end"].is_string());

    // Resume one device with the single-device route, another with POST /devices/state.
    let (status, body) =
        hologram_post(&sim, "/devices/1001/state", &json!({"state": "live"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["newstate"], "LIVE-PENDING");
    assert_eq!(link_states(&sim, &[1001]).await, ["LIVE-PENDING"]);
    let (status, body) = hologram_post(
        &sim,
        "/devices/state",
        &json!({"state": "live", "deviceids": [1002]}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"success": true})),
        "no job id"
    );
    sim.advance(SignedDuration::from_secs(10));
    assert_eq!(link_states(&sim, &[1001, 1002]).await, ["LIVE", "LIVE"]);
    // `deactivate` is accepted and permanent: DEAD, and no change brings it back.
    let (status, _) = hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "deactivate", "deviceids": [1004]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    sim.advance(SignedDuration::from_secs(10));
    assert_eq!(link_states(&sim, &[1004]).await, ["DEAD"]);
    let (_, again) = hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "live", "deviceids": [1004]}),
    )
    .await;
    assert_eq!(
        again["data"]["valid_tasks"][0]["task_results"]["devices_modified"],
        0
    );
    sim.advance(SignedDuration::from_secs(10));
    assert_eq!(link_states(&sim, &[1004]).await, ["DEAD"]);
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
    let sim = start(simfleet_simulator::SimulatorConfig {
        fleet_file: Some(file),
        ..simfleet_simulator::SimulatorConfig::for_tests(0, SignedDuration::from_secs(10))
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
    let results = &body["data"]["valid_tasks"][0]["task_results"];
    assert_eq!(results["devices_modified"], 1);
    // Warnings name the devices that could not change: {deviceid, linkid, message}.
    let reasons: Vec<(u64, String)> = results["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["deviceid"].as_u64().unwrap(),
                i["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(results["warnings"][0]["linkid"], 500002);
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
    assert_eq!(
        again["data"]["valid_tasks"][0]["task_results"]["warnings"][0]["message"],
        "SIM state is locked (LIVE-PENDING). Contact support",
        "Hologram's documented warning"
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
            "\"pause\", \"live\" or \"deactivate\"",
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
    let results = &body["data"]["valid_tasks"][0]["task_results"];
    let accepted = results["devices_modified"].as_u64().unwrap();
    let invalid = results["warnings"].as_array().unwrap().len() as u64;
    assert_eq!(accepted + invalid, 10_000);
    let (status, _) =
        hologram_post(&sim, "/devices/999999/state", &json!({"state": "pause"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

mod jobs_and_tags;
