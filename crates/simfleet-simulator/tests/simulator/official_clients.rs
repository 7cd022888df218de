//! The carriers' official clients, unmodified, against the simulator: emnify-sdk (PyPI, pinned
//! by ./scripts/test), hologram-python's `getSIMState` and soracom-api. Run by scripts/official_clients.py.

use std::process::{Command, Stdio};

use jiff::SignedDuration;
use serde_json::Value;
use simfleet_simulator::{SimulatorConfig, SimulatorHandle};
use simfleet_testkit::simulator::*;

/// Runs the script for one client (off the async runtime: the simulator runs on it).
async fn run(which: &'static str, env: Vec<(&'static str, String)>, stdin: String) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(simfleet_testkit::tools::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/official_clients.py"
            ))
            .arg(which)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{which}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn fleet(sims: usize) -> SimulatorHandle {
    start(SimulatorConfig {
        ..SimulatorConfig::for_tests(sims, SignedDuration::from_secs(10))
    })
    .await
}

#[tokio::test]
async fn emnify_sdk_lists_filters_retrieves_changes_status_and_reads_sims_and_events() {
    // 2,500 endpoints: three pages of 1,000 (the default page), SIMs two pages of 2,000.
    let sim = fleet(2_500).await;
    let report = run(
        "emnify",
        vec![
            ("EMNIFY_SDK_API_ENDPOINT_URL", sim.emnify_url()),
            ("EMNIFY_APP_TOKEN", APP_TOKEN.to_owned()),
            ("SIM_ADMIN_URL", sim.admin_url()),
        ],
        String::new(),
    )
    .await;
    let devices: Vec<u64> = serde_json::from_value(report["devices"].clone()).unwrap();
    assert_eq!(devices.len(), 2_500, "every page, each once");
    assert_eq!(devices.first(), Some(&1001));
    assert_eq!(devices.last(), Some(&3500));
    let cold_chain = admin_get(&sim, "/sims?tag=cold-chain&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(
        report["tagged"].as_array().unwrap().len() as u64,
        cold_chain
    );
    assert!(
        report["tagged_tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_str().unwrap().contains("cold-chain")),
        "{}",
        report["tagged_tags"]
    );
    assert_eq!(report["retrieved"]["id"], 1001);
    assert_eq!(report["retrieved"]["sim"], 700001);
    // change_status disable, then enable: the endpoint and its SIM.
    assert_eq!(
        (
            report["disabled"]["status"].clone(),
            report["disabled"]["sim_status"].clone()
        ),
        (1.into(), 2.into())
    );
    assert_eq!(
        (
            report["enabled"]["status"].clone(),
            report["enabled"]["sim_status"].clone()
        ),
        (0.into(), 1.into())
    );
    assert_eq!(report["sims"], 2_500);
    assert_eq!(report["sim_endpoints"], serde_json::json!([1001, 1002]));
    assert_eq!(report["retrieved_sim"]["iccid"], "8944500000000000001");
    // The device's events: disabled, then enabled (newest first).
    let events: Vec<u64> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_u64().unwrap())
        .collect();
    assert_eq!(events, [42, 43], "{}", report["events"]);
}

#[tokio::test]
async fn hologram_python_reads_sim_states_including_pending_ones() {
    let sim = fleet(20).await;
    let states = admin_get(&sim, "/sims?limit=20").await;
    // A pause in flight shows as Hologram's pending state.
    hologram_post(
        &sim,
        "/devices/batch/state",
        &serde_json::json!({"state": "pause", "deviceids": [1002]}),
    )
    .await;
    let iccids: Vec<String> = states["sims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap().to_owned())
        .collect();
    let report = run(
        "hologram",
        vec![
            ("HOLOGRAM_BASE_URL", sim.hologram_url()),
            ("HOLOGRAM_API_KEY", API_KEY.to_owned()),
        ],
        iccids.join(" "),
    )
    .await;
    for s in states["sims"].as_array().unwrap() {
        let iccid = s["iccid"].as_str().unwrap();
        let read = &report["states"][iccid];
        assert_eq!(read["success"], true, "{iccid}");
        let expected = if s["deviceId"] == 1002 {
            "PAUSED-PENDING-USER"
        } else {
            s["state"].as_str().unwrap()
        };
        assert_eq!(read["state"], expected, "{iccid}");
    }
}

/// soracom-api 0.0.2 (PyPI, generated from Soracom's spec; it predates the Batch API):
/// auth, SIM listing with its paging headers, a SIM with its profiles and tags, state changes,
/// expiry and a 404, against the simulator's Soracom surface.
#[tokio::test]
async fn soracom_api_authenticates_lists_with_paging_headers_changes_states_and_sets_expiry() {
    let sim = fleet(5).await;
    let report = run(
        "soracom",
        vec![
            ("SORACOM_ENDPOINT", sim.soracom_url()),
            ("SORACOM_AUTH_KEY_ID", "keyId-simulator".into()),
            ("SORACOM_AUTH_KEY", "secret-simulator".into()),
        ],
        String::new(),
    )
    .await;
    assert_eq!(report["operator"], "OP0099000001");
    assert_eq!(
        report["first_page"],
        serde_json::json!(["8942310000000000001", "8942310000000000002"])
    );
    assert_eq!(report["next_key"], "8942310000000000002");
    assert_eq!(
        report["second_page"],
        serde_json::json!(["8942310000000000003", "8942310000000000004"])
    );
    assert_eq!(
        report["profiles"]["8944500000000000001"],
        serde_json::json!(["440103000000001"])
    );
    assert_eq!(report["tags"]["name"], "");
    assert_eq!(report["deactivated"], "inactive");
    assert_eq!(report["read_back"], "inactive");
    assert_eq!(report["activated"], "active");
    assert_eq!(report["suspended"], "suspended");
    assert_eq!(
        report["expiry"],
        serde_json::json!({"time": 1893456000000i64, "action": "deactivate"})
    );
    assert_eq!(report["missing"]["status"], 404);
    assert!(report["missing"]["body"]["code"].is_string());
}
