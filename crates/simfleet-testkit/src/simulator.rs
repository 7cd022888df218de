//! The carrier simulator as tests use it: started in process on 127.0.0.1:0 with a manual
//! clock, and spoken to over HTTP (each carrier's routes with the default credentials, and the
//! admin API).

use jiff::SignedDuration;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use simfleet_simulator::{Simulator, SimulatorConfig, SimulatorHandle};

/// Hologram API key and emnify token the default configuration accepts.
pub const API_KEY: &str = simfleet_simulator::DEFAULT_HOLOGRAM_API_KEY;
pub const APP_TOKEN: &str = simfleet_simulator::DEFAULT_EMNIFY_APP_TOKEN;

/// A simulator with a manual clock, `sims` SIMs and a fixed 10 s change delay.
pub async fn simulator(sims: usize) -> SimulatorHandle {
    start(SimulatorConfig::for_tests(
        sims,
        SignedDuration::from_secs(10),
    ))
    .await
}

pub async fn start(config: SimulatorConfig) -> SimulatorHandle {
    Simulator::start(config)
        .await
        .expect("the simulator starts")
}

pub fn client() -> Client {
    Client::builder().build().expect("client")
}

/// GET a Hologram route with the API key; returns status and body.
pub async fn hologram_get(sim: &SimulatorHandle, path_and_query: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}{path_and_query}", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

/// POST JSON to a Hologram route with the API key.
pub async fn hologram_post(sim: &SimulatorHandle, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}{path}", sim.hologram_url()))
        .basic_auth("apikey", Some(API_KEY))
        .json(body)
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

pub async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// emnify's `POST /v1/authenticate` with an application token: its status and body.
pub async fn emnify_authenticate(sim: &SimulatorHandle, token: &str) -> (StatusCode, Value) {
    status_and_json(
        client()
            .post(format!("{}/v1/authenticate", sim.emnify_url()))
            .json(&serde_json::json!({"application_token": token}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// An emnify auth token for the default application token.
pub async fn emnify_token(sim: &SimulatorHandle) -> String {
    let (status, body) = emnify_authenticate(sim, APP_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["auth_token"].as_str().unwrap().to_owned()
}

/// An emnify request with a bearer token.
pub fn emnify(
    sim: &SimulatorHandle,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    client()
        .request(method, format!("{}{path}", sim.emnify_url()))
        .bearer_auth(token)
}

/// GET an admin route.
pub async fn admin_get(sim: &SimulatorHandle, path: &str) -> Value {
    let response = client()
        .get(format!("{}{path}", sim.admin_url()))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Sends JSON to an admin route.
pub async fn admin_send(
    sim: &SimulatorHandle,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    status_and_json(
        client()
            .request(method, format!("{}{path}", sim.admin_url()))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// How many requests the simulator counted for a method, route and status.
pub async fn count(sim: &SimulatorHandle, method: &str, route: &str, status: u16) -> u64 {
    sim.state()
        .request_counts()
        .iter()
        .filter(|r| r.method == method && r.route == route && r.status == status)
        .map(|r| r.count)
        .sum()
}

/// Sets the simulator's fault rules.
pub async fn set_faults(sim: &SimulatorHandle, rules: Value) {
    let (status, body) = admin_send(
        sim,
        reqwest::Method::PUT,
        "/faults",
        &serde_json::json!({"rules": rules}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A test configuration whose SIMs all start live (no paused, system-paused or dead SIMs).
pub fn live_config(sims: usize) -> SimulatorConfig {
    SimulatorConfig {
        seed: simfleet_simulator::SeedConfig {
            sims,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..Default::default()
        },
        ..SimulatorConfig::for_tests(sims, SignedDuration::from_secs(10))
    }
}

/// A simulator whose SIMs all start live.
pub async fn live_fleet(sims: usize) -> SimulatorHandle {
    start(live_config(sims)).await
}
