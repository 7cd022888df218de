//! Carrier client figures against the in-process simulator:
//! - observing 100,000 SIMs by tag with the Hologram client: calls, wall time, memory growth;
//! - emnify per-device changes (bulk route forbidden) against a simulated 50 req/s limit:
//!   achieved rate, 429s.
//!
//! - 20,000 listed ICCIDs in a 100,000-SIM fleet (Hologram): calls against the floor, the
//!   cheaper of batched lookups (URLs under the documents' advised size) and a full listing.
//!
//! Run: `cargo bench --bench carrier`.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use jiff::SignedDuration;
use secrecy::SecretString;
use simfleet::api::{CarrierAccountSpec, Provider, RateLimit, SecretKeyRef, StateChange};
use simfleet::carrier::{HttpSettings, connect};
use simfleet::model::{Selection, SimTarget};
use simfleet::simulator::{
    EmnifyBulk, RateLimitSpec, SeedConfig, Simulator, SimulatorConfig, fleet::SEED_TAGS,
};

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn spec(
    provider: Provider,
    base_url: String,
    rps: f64,
    burst: u32,
    concurrency: u32,
) -> CarrierAccountSpec {
    CarrierAccountSpec {
        provider,
        base_url: Some(base_url),
        secret_ref: SecretKeyRef {
            name: "creds".into(),
            key: None,
        },
        org_id: None,
        rate_limit: Some(RateLimit {
            requests_per_second: rps,
            burst,
        }),
        concurrency: Some(concurrency),
        budget: None,
        suspend_sim_on_pause: None,
    }
}

/// A seeded 100,000-SIM simulator and a `provider: simulator` client of it.
async fn fleet_of_100000() -> (
    simfleet::simulator::SimulatorHandle,
    std::sync::Arc<dyn simfleet::carrier::Carrier>,
) {
    let sim = Simulator::start(SimulatorConfig::for_tests(
        100_000,
        SignedDuration::from_secs(10),
    ))
    .await
    .unwrap();
    let carrier = connect(
        &spec(Provider::Simulator, sim.base_url(), 10_000.0, 1_000, 8),
        SecretString::from(simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY),
        HttpSettings::default(),
        simfleet::carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    (sim, carrier)
}

#[tokio::main]
async fn main() {
    // 1. Observe 100,000 SIMs: every seeded tag, so the union is the whole fleet.
    let (sim, carrier) = fleet_of_100000().await;
    let selection = Selection {
        tags: SEED_TAGS.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let before = rss_kib();
    let mut peak = 0;
    let mut sims = 0;
    let started = Instant::now();
    let mut stream = carrier.observe(&selection);
    while let Some(page) = stream.try_next().await.unwrap() {
        sims += page.len();
        peak = peak.max(rss_kib() - before);
    }
    let elapsed = started.elapsed();
    drop(stream);
    assert_eq!(sims, 100_000);
    println!(
        "observe 100,000 SIMs (Hologram, 6 tags): {} calls, {:.2} s wall, RSS growth while streaming at most {:.1} MiB",
        carrier.counters().total(),
        elapsed.as_secs_f64(),
        peak as f64 / 1024.0
    );
    sim.stop().await;

    // 2. emnify per-device changes (the bulk route forbidden, as for users without the bulk
    // permission) with the carrier limiting each credential to 50 req/s.
    let limit = 50.0;
    let sim = Simulator::start(SimulatorConfig {
        seed: SeedConfig {
            sims: 2_000,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        rate_limit: Some(RateLimitSpec {
            per_second: limit,
            burst: 25,
        }),
        emnify_bulk: EmnifyBulk::Forbidden,
        ..SimulatorConfig::for_tests(2_000, SignedDuration::from_secs(10))
    })
    .await
    .unwrap();
    let carrier = connect(
        &spec(Provider::Emnify, sim.emnify_url(), limit, 25, 16),
        SecretString::from(simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN),
        HttpSettings {
            max_backoff: Duration::from_secs(2),
            ..HttpSettings::default()
        },
        simfleet::carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    carrier.verify().await.unwrap();
    let targets: Vec<SimTarget> = (0..1000)
        .map(|i| SimTarget {
            device_id: 1001 + i,
            sim_id: Some(700_001 + i),
        })
        .collect();
    let started = Instant::now();
    let submission = carrier.submit(StateChange::Pause, &targets).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        submission.accepted,
        1000,
        "{:?}",
        submission.refused.first()
    );
    // The 1,000 PATCHes and the one bulk request answered 403.
    let patches = 1001.0;
    println!(
        "emnify 1,000 per-device changes (sequential, after one 403 from the bulk route) at a {limit} req/s carrier limit: {:.1} s, {:.1} req/s achieved ({:.0}% of the limit), {} x 429, {} retries",
        elapsed.as_secs_f64(),
        patches / elapsed.as_secs_f64(),
        100.0 * patches / elapsed.as_secs_f64() / limit,
        carrier.counters().rate_limited(),
        carrier.counters().retries()
    );
    sim.stop().await;

    // 3. 20,000 listed ICCIDs in a 100,000-SIM fleet: multi-value lookups, not one call each.
    let (sim, carrier) = fleet_of_100000().await;
    // Every fifth SIM: spread over the whole fleet.
    let iccids: Vec<String> = (0..20_000u128)
        .map(|i| (8_944_500_000_000_000_001u128 + i * 5).to_string())
        .collect();
    let selection = Selection {
        iccids: iccids.clone(),
        ..Default::default()
    };
    let started = Instant::now();
    let mut observed = 0;
    let mut stream = carrier.observe(&selection);
    while let Some(page) = stream.try_next().await.unwrap() {
        observed += page.len();
    }
    drop(stream);
    let elapsed = started.elapsed();
    assert_eq!(observed, 20_000);
    let calls = carrier.counters().total();
    // The floor: the ICCIDs' bytes (with their commas) in URLs of at most the client's 7,000
    // bytes of values, or the 100 pages of a full listing, whichever is less; and the same
    // against the absolute 8 KB a URL may have.
    let bytes: u64 = iccids.iter().map(|i| i.len() as u64 + 1).sum();
    let batched_floor = bytes.div_ceil(7_000);
    let full_listing = 100;
    let floor = batched_floor.min(full_listing);
    let hard_floor = bytes.div_ceil(8_192);
    println!(
        "20,000 listed ICCIDs in a 100,000-SIM fleet (Hologram): {calls} calls ({}), {:.2} s; floor {floor} (the cheaper of {batched_floor} batched calls and a {full_listing}-page listing) -> {:.3}x; against 8 KB URLs ({hard_floor} calls) {:.2}x; one call per ICCID would be 20,000",
        carrier.last_lookup_plan().unwrap(),
        elapsed.as_secs_f64(),
        calls as f64 / floor as f64,
        calls as f64 / hard_floor as f64,
    );
    sim.stop().await;
}
