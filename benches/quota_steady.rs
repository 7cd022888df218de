//! A DataQuota at steady state: 10,000 emnify devices with quotas, virtual hours of resyncs
//! (every 20 minutes, as the operator requeues), with a few devices crossing their threshold
//! between resyncs. The operator runs in-process with the simulator's virtual clock as its
//! clock; every carrier call is counted by the simulator and compared with the ceiling
//! of 500 per hour, audit included.
//! Run: `cargo bench --bench quota_steady`.

mod common;

use common::carrier_calls;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use simfleet::api::{CarrierAccount, CarrierUrlPolicy, DataQuota};
use simfleet::carrier_account;
use simfleet::clock::Clock;
use simfleet::controller::Context;
use simfleet::data_quota;
use simfleet::data_quota::schedule::RESYNC;
use simfleet::sandbox::{Sandbox, SandboxConfig};
use simfleet::simulator::{SeedConfig, Simulator, SimulatorConfig};

const DEVICES: usize = 10_000;
/// Devices crossing their quota threshold between two resyncs.
const CHANGES_PER_STEP: u64 = 5;
/// Resyncs in an hour, at the operator's resync period.
const RESYNCS_PER_HOUR: u64 = 3600 / RESYNC.as_secs();

fn calls(sim: &simfleet::simulator::SimulatorHandle, method: &str, route: &str) -> u64 {
    sim.state()
        .request_counts()
        .iter()
        .filter(|r| r.method == method && r.route == route)
        .map(|r| r.count)
        .sum()
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    simfleet::telemetry::init(simfleet::telemetry::LogFormat::Text);
    let sim = Simulator::start(SimulatorConfig {
        seed: SeedConfig {
            sims: DEVICES,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        start_time: Some(jiff::Timestamp::now()),
        ..SimulatorConfig::for_tests(DEVICES, SignedDuration::from_secs(10))
    })
    .await
    .unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = sandbox.client();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "emnify"}, "stringData": {"applicationToken": simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "emnify"},
        "spec": {"provider": "emnify", "baseUrl": sim.emnify_url(), "secretRef": {"name": "emnify"}, "rateLimit": {"requestsPerSecond": 1000, "burst": 1000}, "concurrency": 16}
    }))
    .unwrap();
    Api::<CarrierAccount>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let quotas: Api<DataQuota> = Api::namespaced(client.clone(), "default");
    let quota: DataQuota = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": "fleet"},
        "spec": {"carrierRef": {"name": "emnify"}, "target": {"tags": simfleet::simulator::fleet::SEED_TAGS}, "volumeMB": 100, "expiry": {"after": "30d"}, "thresholdPercentage": 20}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();

    let context = Context::with_clock(
        client.clone(),
        CarrierUrlPolicy {
            prefixes: vec![sim.base_url()],
        },
        Clock::from_source(sim.state().clone()),
    );
    let stop = futures::FutureExt::shared(futures::FutureExt::boxed(std::future::pending::<()>()));
    tokio::spawn(carrier_account::run(
        context.clone(),
        None,
        None,
        stop.clone(),
    ));
    tokio::spawn(data_quota::run(context.clone(), None, None, stop));

    let started = Instant::now();
    until("Ready", async || {
        quotas.get("fleet").await.unwrap().status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;
    let first_pass = carrier_calls(&sim);
    println!(
        "first pass (every device read and set): {first_pass} carrier calls in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut device = 1_000u64;
    let mut step = 0u32;
    for hour in [
        "the hour after the first pass",
        "the next hour (steady state)",
    ] {
        let before = carrier_calls(&sim);
        let reads_before = calls(&sim, "GET", "/api/v1/endpoint/{id}/quota/data");
        let listings_before = calls(&sim, "GET", "/api/v1/event");
        let endpoint_pages_before = calls(&sim, "GET", "/api/v1/endpoint");
        for _ in 0..RESYNCS_PER_HOUR {
            step += 1;
            // A resync period of virtual time, a few devices crossing their threshold, a resync.
            let at = sim.advance(SignedDuration::try_from(RESYNC).unwrap());
            for _ in 0..CHANGES_PER_STEP {
                device += 1;
                simfleet_consume(&sim, device, 85.0).await;
            }
            quotas
                .patch(
                    "fleet",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"resync": step.to_string()}}})),
                )
                .await
                .unwrap();
            // The resync of this period reported its threshold events.
            let name = format!("the resync of step {step} (events at {at})");
            until(&name, async || {
                // Status times are whole seconds.
                quotas
                    .get("fleet")
                    .await
                    .unwrap()
                    .status
                    .and_then(|s| s.last_event_time)
                    .is_some_and(|t| t.0.as_second() >= at.as_second())
            })
            .await;
            // A reconcile queued behind it (its own status write, the label) finishes within
            // the period too: wait until the carrier hears nothing for half a second.
            loop {
                let heard = carrier_calls(&sim);
                tokio::time::sleep(Duration::from_millis(500)).await;
                if carrier_calls(&sim) == heard {
                    break;
                }
            }
        }
        let calls_in_hour = carrier_calls(&sim) - before;
        let reads = calls(&sim, "GET", "/api/v1/endpoint/{id}/quota/data") - reads_before;
        let listings = calls(&sim, "GET", "/api/v1/event") - listings_before;
        let endpoint_pages = calls(&sim, "GET", "/api/v1/endpoint") - endpoint_pages_before;
        let audit = DEVICES as u64 / 24;
        let changed = RESYNCS_PER_HOUR * CHANGES_PER_STEP;
        // The floor: each resync lists the target (its pages) and the events once; the audit's
        // share of the hour and the changed devices are read once each.
        let floor = endpoint_pages + RESYNCS_PER_HOUR + audit + changed;
        println!(
            "{hour}: {calls_in_hour} carrier calls in {RESYNCS_PER_HOUR} resyncs ({endpoint_pages} target listing pages, \
             {listings} event listing pages, {reads} quota reads: audit share {audit}, {changed} devices \
             crossed a threshold); floor {floor} -> {:.3}x; ceiling 500/h: {}",
            calls_in_hour as f64 / floor as f64,
            if calls_in_hour <= 500 {
                "met"
            } else {
                "EXCEEDED"
            }
        );
    }
    println!(
        "for comparison, reading every device at each resync: {} quota reads per hour",
        RESYNCS_PER_HOUR as usize * DEVICES
    );
    let status = quotas.get("fleet").await.unwrap().status.unwrap();
    let counts = status.counts.unwrap();
    println!(
        "status after the hour: {} targeted, {} active, {} failed",
        counts.targeted, counts.active, counts.failed
    );
}

/// A device uses data at the simulator (its admin API).
async fn simfleet_consume(sim: &simfleet::simulator::SimulatorHandle, device: u64, mb: f64) {
    let response = reqwest::Client::new()
        .post(format!("{}/consume", sim.admin_url()))
        .json(&json!({"deviceId": device, "mb": mb}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}
