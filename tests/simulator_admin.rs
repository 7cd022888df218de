//! The simulator's admin API and the `simfleet simulator` command.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use simfleet_testkit::simulator::*;

#[tokio::test]
async fn stats_count_requests_by_route_method_and_status() {
    let sim = simulator(20).await;
    hologram_get(&sim, "/devices").await;
    hologram_get(&sim, "/devices").await;
    hologram_post(
        &sim,
        "/devices/batch/state",
        &json!({"state": "pause", "deviceids": [1001]}),
    )
    .await;
    client()
        .get(format!("{}/devices", sim.hologram_url()))
        .send()
        .await
        .unwrap();
    let stats = admin_get(&sim, "/stats").await;
    let rows = stats["requests"].as_array().unwrap();
    let find = |method: &str, route: &str, status: u64| {
        rows.iter()
            .find(|r| r["method"] == method && r["route"] == route && r["status"] == status)
            .map(|r| r["count"].as_u64().unwrap())
    };
    assert_eq!(find("GET", "/api/1/devices", 200), Some(2));
    assert_eq!(find("GET", "/api/1/devices", 401), Some(1));
    assert_eq!(find("POST", "/api/1/devices/batch/state", 200), Some(1));
    assert_eq!(stats["totals"]["mutatingCarrierRequests"], 1);
    assert_eq!(stats["changes"]["submittedSims"], 1);
    let (status, _) = admin_send(&sim, Method::DELETE, "/stats", &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        admin_get(&sim, "/stats").await["requests"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "only this GET /_sim/stats"
    );
}

#[tokio::test]
async fn the_sim_table_searches_by_iccid_device_tag_and_state() {
    let sim = simulator(1_000).await;
    let one = admin_get(&sim, "/sims?iccid=8944500000000000010").await;
    assert_eq!(one["total"], 1);
    assert_eq!(one["sims"][0]["deviceId"], 1010);
    assert_eq!(
        admin_get(&sim, "/sims?deviceId=1010").await["sims"],
        one["sims"]
    );
    let tag = one["sims"][0]["tags"][0].as_str().unwrap().to_owned();
    let tagged = admin_get(&sim, &format!("/sims?tag={tag}&limit=10000")).await;
    assert!(tagged["sims"].as_array().unwrap().iter().all(|s| {
        s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == tag.as_str())
    }));
    let dead = admin_get(&sim, "/sims?state=DEAD&limit=10000").await;
    assert!(dead["total"].as_u64().unwrap() > 0);
    assert!(
        dead["sims"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "DEAD")
    );
    let page = admin_get(&sim, "/sims?offset=990&limit=100").await;
    assert_eq!(
        (
            page["total"].clone(),
            page["sims"].as_array().unwrap().len()
        ),
        (json!(1000), 10)
    );
    let bad = client()
        .get(format!("{}/sims?state=ASLEEP", sim.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn forcing_a_state_makes_drift_and_reset_restores_the_seeded_fleet() {
    let sim = simulator(50).await;
    let before = admin_get(&sim, "/sims?deviceId=1005").await["sims"][0]["state"].clone();
    let (status, body) = admin_send(
        &sim,
        Method::PATCH,
        "/sims/1005",
        &json!({"state": "PAUSED-SYS"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, link) = hologram_get(&sim, "/links/cellular?deviceid=1005").await;
    assert_eq!(link["data"][0]["state"], "PAUSED-SYS");
    let (status, _) = admin_send(
        &sim,
        Method::PATCH,
        "/sims/1005",
        &json!({"state": "ASLEEP"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin_send(
        &sim,
        Method::PATCH,
        "/sims/99999",
        &json!({"state": "LIVE"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = admin_send(&sim, Method::POST, "/reset", &json!({})).await;
    assert_eq!((status, body["sims"].clone()), (StatusCode::OK, json!(50)));
    assert_eq!(
        admin_get(&sim, "/sims?deviceId=1005").await["sims"][0]["state"],
        before
    );
}

#[tokio::test]
async fn the_clock_advances_by_duration_or_seconds_and_refuses_bad_input() {
    let sim = simulator(5).await;
    let start = admin_get(&sim, "/clock").await;
    assert_eq!(start["mode"], "manual");
    assert_eq!(start["now"], "2026-06-01T00:00:00Z");
    let (_, after) = admin_send(
        &sim,
        Method::POST,
        "/clock/advance",
        &json!({"by": "1h30m"}),
    )
    .await;
    assert_eq!(after["now"], "2026-06-01T01:30:00Z");
    let (_, after) = admin_send(
        &sim,
        Method::POST,
        "/clock/advance",
        &json!({"seconds": 30}),
    )
    .await;
    assert_eq!(after["now"], "2026-06-01T01:30:30Z");
    for bad in [
        json!({"by": "soon"}),
        json!({"seconds": -5}),
        json!({}),
        json!({"by": "1h", "seconds": 1}),
    ] {
        let (status, _) = admin_send(&sim, Method::POST, "/clock/advance", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        admin_get(&sim, "/clock").await["now"],
        "2026-06-01T01:30:30Z"
    );
}

#[test]
fn simfleet_simulator_prints_its_urls_and_stops_cleanly_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--sims",
            "100",
            "--hologram-api-key",
            "test-key",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while printed.len() < 6 && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => printed.push(line),
            _ => break,
        }
    }
    let text = printed.join("\n");
    assert!(text.contains("not a carrier"), "{text}");
    assert!(text.contains("test-key"), "{text}");
    assert!(
        text.contains(simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN),
        "{text}"
    );
    let base = text
        .lines()
        .find(|l| l.contains("provider: simulator"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        client()
            .get(format!("{base}/api/1/devices"))
            .basic_auth("apikey", Some("test-key"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::OK);

    stops_cleanly_on(child, "INT");
}

#[test]
fn simfleet_simulator_stops_cleanly_on_sigterm_sent_as_soon_as_it_prints() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args(["simulator", "--listen", "127.0.0.1:0", "--sims", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().is_some_and(|l| l.is_ok()), "the first line");
    // Whoever reads the addresses may stop it at once: that is a clean stop, not a kill.
    stops_cleanly_on(child, "TERM");
}

/// Sends `signal` to a running `simfleet simulator`: it must exit 0 and say it stopped.
fn stops_cleanly_on(child: std::process::Child, signal: &str) {
    send_signal(&child, signal);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stderr).contains("simulator stopped"));
}

#[test]
fn simfleet_simulator_refuses_bad_flags_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args(["simulator", "--paused-share", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--paused-share"));
    let out = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--delay-min",
            "10s",
            "--delay-max",
            "1s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--delay-max"));
    let out = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--fleet",
            "/no/such/fleet.yaml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/fleet.yaml"));
}
