//! A unit bench of the emnify client's quota sets, not of the DataQuota controller: 10,000
//! per-device sets (the plan's `Set` for each device) sent 64 at a time, without the
//! controller's reads, batches or journal writes, against a simulator that limits each
//! credential to 100 req/s, with the account's client limit set to the same 100 req/s.
//! Run: `cargo bench --bench quota`.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use simfleet::api::{CarrierAccountSpec, Provider, RateLimit, SecretKeyRef};
use simfleet::carrier::{HttpSettings, connect};
use simfleet::model::QuotaSetting;
use simfleet::simulator::{RateLimitSpec, SeedConfig, Simulator, SimulatorConfig};

const DEVICES: u64 = 10_000;
const LIMIT: f64 = 100.0;
const BURST: u32 = 50;

#[tokio::main]
async fn main() {
    let sim = Simulator::start(SimulatorConfig {
        // Every endpoint enabled: a deleted endpoint refuses a quota, and that is not throughput.
        seed: SeedConfig {
            sims: DEVICES as usize,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        rate_limit: Some(RateLimitSpec {
            per_second: LIMIT,
            burst: BURST,
        }),
        ..SimulatorConfig::for_tests(DEVICES as usize, SignedDuration::from_secs(10))
    })
    .await
    .unwrap();
    let account = CarrierAccountSpec {
        provider: Provider::Emnify,
        base_url: Some(sim.emnify_url()),
        secret_ref: SecretKeyRef {
            name: "creds".into(),
            key: None,
        },
        org_id: None,
        rate_limit: Some(RateLimit {
            requests_per_second: LIMIT,
            burst: BURST,
        }),
        concurrency: Some(16),
        budget: None,
        suspend_sim_on_pause: None,
    };
    let carrier = connect(
        &account,
        SecretString::from(simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN),
        HttpSettings {
            max_backoff: Duration::from_secs(2),
            ..HttpSettings::default()
        },
        simfleet::carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    carrier.verify().await.unwrap();
    // The simulator's clock starts 2026-06-01; a year later is in the future for it.
    let setting = QuotaSetting {
        volume_mb: 500.0,
        expiry: "2027-06-01T00:00:00Z".parse::<Timestamp>().unwrap(),
        auto_refill: false,
        threshold_percentage: Some(20),
    };
    let before = carrier.counters().total();
    let started = Instant::now();
    let failures = stream::iter(1001..1001 + DEVICES)
        .map(|device| {
            let carrier = carrier.clone();
            let setting = setting.clone();
            async move { carrier.set_quota(device, &setting).await.is_err() }
        })
        .buffer_unordered(64)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let calls = carrier.counters().total() - before;
    let answered_429: u64 = sim
        .state()
        .request_counts()
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.count)
        .sum();
    println!(
        "{DEVICES} quota sets at a {LIMIT} req/s carrier limit: {elapsed:.1} s, {:.1} sets/s = {:.2}x the limit; {calls} calls; {answered_429} x 429 ({:.2}% of calls); {} retries; {failures} failed",
        DEVICES as f64 / elapsed,
        DEVICES as f64 / elapsed / LIMIT,
        100.0 * answered_429 as f64 / calls.max(1) as f64,
        carrier.counters().retries(),
    );
    sim.stop().await;
}
