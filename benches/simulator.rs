//! Simulator figures with a 1,000,000-SIM fleet: resident memory, the time to serve a page of
//! 1,000 devices (Hologram and emnify), and the time to accept a 10,000-device bulk action.
//! Run: `cargo bench --bench simulator` (prints the figures; targets in the issue: RSS under
//! 300 MiB, page under 5 ms median, bulk under 20 ms).

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::json;
use simfleet::simulator::{Simulator, SimulatorConfig};

const SIMS: usize = 1_000_000;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<4} median {:>7.2} ms   p90 {:>7.2} ms   max {:>7.2} ms",
        samples.len(),
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
}

#[tokio::main]
async fn main() {
    let before = rss_kib("VmRSS:");
    let started = Instant::now();
    let sim = Simulator::start(SimulatorConfig::for_tests(
        SIMS,
        SignedDuration::from_secs(60),
    ))
    .await
    .expect("simulator starts");
    println!(
        "fleet of {SIMS} SIMs built in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "RSS after loading: {:.1} MiB (process before: {:.1} MiB)",
        rss_kib("VmRSS:") as f64 / 1024.0,
        before as f64 / 1024.0
    );

    let client = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(1);

    // Hologram: a page of 1,000 devices at a random keyset position.
    let mut samples = Vec::new();
    for _ in 0..200 {
        let after = 1000 + rng.u64(0..(SIMS as u64 - 1000));
        let t = Instant::now();
        let response = client
            .get(format!(
                "{}/devices?limit=1000&startafter={after}",
                sim.hologram_url()
            ))
            .basic_auth(
                "apikey",
                Some(simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY),
            )
            .send()
            .await
            .unwrap();
        let body = response.bytes().await.unwrap();
        samples.push(t.elapsed());
        assert!(body.len() > 100_000);
    }
    summary("Hologram GET /devices?limit=1000", samples);

    // emnify: a page of 1,000 endpoints.
    let token: serde_json::Value = client
        .post(format!("{}/v1/authenticate", sim.emnify_url()))
        .json(&json!({"application_token": simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["auth_token"].as_str().unwrap().to_owned();
    let mut samples = Vec::new();
    for _ in 0..100 {
        let page = 1 + rng.usize(0..SIMS / 1000);
        let t = Instant::now();
        let body = client
            .get(format!(
                "{}/v1/endpoint?page={page}&per_page=1000",
                sim.emnify_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        samples.push(t.elapsed());
        assert!(body.len() > 100_000);
    }
    summary("emnify GET /v1/endpoint?per_page=1000", samples);

    // Hologram bulk actions of 10,000 distinct devices each.
    let mut samples = Vec::new();
    for action in 0..50u64 {
        let first = 1001 + action * 10_000;
        let ids: Vec<u64> = (first..first + 10_000).collect();
        let body = serde_json::to_vec(&json!({"state": "pause", "deviceids": ids})).unwrap();
        let t = Instant::now();
        let response = client
            .post(format!("{}/devices/batch/state", sim.hologram_url()))
            .basic_auth(
                "apikey",
                Some(simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let answer: serde_json::Value = response.json().await.unwrap();
        samples.push(t.elapsed());
        let accepted = answer["data"]["accepted"].as_u64().unwrap();
        let refused = answer["data"]["invalid"].as_array().unwrap().len() as u64;
        assert_eq!(accepted + refused, 10_000, "every device accounted for");
        assert!(accepted > 9_000, "most seeded SIMs can change: {accepted}");
    }
    summary("Hologram POST /devices/batch/state (10,000)", samples);
    println!(
        "RSS at the end: {:.1} MiB (peak {:.1} MiB)",
        rss_kib("VmRSS:") as f64 / 1024.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
    sim.stop().await;
}
