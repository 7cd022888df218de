//! Pausing 10,000 emnify devices under emnify's documented limits, time-scaled 100x: the
//! carrier's 2,000 requests per IP per 5 minutes become 2,000 per 3 s (the simulator's
//! per-credential bucket: 666.7 req/s, burst 2,000), and the account's client limit of 6 req/s,
//! burst 5 becomes 600 req/s, burst 5. Side by side, on simulators with the same fleet:
//! - simfleet through the bulk route (`PATCH /v2/endpoint/multi`);
//! - simfleet with the route forbidden (403), one endpoint at a time;
//! - a hand-written per-device loop that sleeps on 429;
//! - simfleet through the bulk route with its first chunk answered 503 (not resent blindly:
//!   the next reconcile observes first).
//!
//! Each simfleet run is the controller's reconcile path: observe, plan, submit; then observe
//! again to confirm. Carrier calls are counted by the client and compared with the floor: the
//! listing pages (twice: submit and confirm), one write per 2,000 devices, one authentication.
//! Run: `cargo bench --bench emnify_bulk`.

mod common;

use std::time::{Duration, Instant};

use common::{Reconciled, group, reconcile};
use jiff::SignedDuration;
use secrecy::SecretString;
use serde_json::{Value, json};
use simfleet::api::{
    CarrierAccountSpec, Provider, RateLimit, SecretKeyRef, SimGroupStatus, SimState,
};
use simfleet::carrier::{Carrier, HttpSettings, connect};
use simfleet::simulator::fleet::SEED_TAGS;
use simfleet::simulator::{
    EmnifyBulk, RateLimitSpec, SeedConfig, Simulator, SimulatorConfig, SimulatorHandle,
};

const DEVICES: usize = 10_000;
/// emnify's per-IP limit, 2,000 per 300 s, time-scaled 100x.
const SCALE: f64 = 100.0;
const CARRIER_RPS: f64 = 2000.0 / 300.0 * SCALE;
const CARRIER_BURST: u32 = 2000;
/// The account's documented-safe client limit (6 req/s, burst 5), time-scaled the same.
const CLIENT_RPS: f64 = 6.0 * SCALE;
const CLIENT_BURST: u32 = 5;
const PAGE: u64 = 1000;
const BULK: u64 = 2000;

async fn simulator(bulk: EmnifyBulk) -> SimulatorHandle {
    Simulator::start(SimulatorConfig {
        seed: SeedConfig {
            sims: DEVICES,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        rate_limit: Some(RateLimitSpec {
            per_second: CARRIER_RPS,
            burst: CARRIER_BURST,
        }),
        emnify_bulk: bulk,
        ..SimulatorConfig::for_tests(DEVICES, SignedDuration::ZERO)
    })
    .await
    .unwrap()
}

fn client(sim: &SimulatorHandle) -> std::sync::Arc<dyn Carrier> {
    let account = CarrierAccountSpec {
        provider: Provider::Emnify,
        base_url: Some(sim.emnify_url()),
        secret_ref: SecretKeyRef {
            name: "token".into(),
            key: None,
        },
        org_id: None,
        rate_limit: Some(RateLimit {
            requests_per_second: CLIENT_RPS,
            burst: CLIENT_BURST,
        }),
        concurrency: Some(8),
        budget: None,
        suspend_sim_on_pause: None,
    };
    connect(
        &account,
        SecretString::from(simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN),
        HttpSettings::default(),
        simfleet::carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap()
}

/// The five disjoint seed tags: the group is the whole fleet, each device listed once.
fn tags() -> Vec<&'static str> {
    SEED_TAGS[..5].to_vec()
}

/// Listing pages of one observation: emnify lists one tag at a time.
async fn listing_pages(sim: &SimulatorHandle) -> u64 {
    let mut pages = 0;
    for tag in tags() {
        let total = admin(sim, &format!("/sims?tag={tag}&limit=1")).await["total"]
            .as_u64()
            .unwrap();
        pages += total.div_ceil(PAGE);
    }
    pages
}

async fn admin(sim: &SimulatorHandle, path: &str) -> Value {
    reqwest::get(format!("{}{path}", sim.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Carrier writes the simulator saw (PATCH/POST/DELETE, authentication aside), and the most
/// in flight at once.
async fn writes(sim: &SimulatorHandle) -> (u64, u64) {
    let stats = admin(sim, "/stats").await;
    (
        stats["totals"]["mutatingCarrierRequests"].as_u64().unwrap(),
        stats["totals"]["maxEmnifyWritesInFlight"].as_u64().unwrap(),
    )
}

async fn paused(sim: &SimulatorHandle) -> u64 {
    admin(sim, "/sims?state=PAUSED-USER&limit=1").await["total"]
        .as_u64()
        .unwrap()
}

/// simfleet's reconciles until converged: the wall time, client calls and reconciles.
async fn simfleet_pause(carrier: &dyn Carrier) -> (Duration, u64, usize) {
    let spec = group(SimState::Paused, &tags());
    let started = Instant::now();
    let mut status = SimGroupStatus::default();
    let mut reconciles = 0;
    loop {
        let Reconciled {
            status: next,
            actions,
            failed,
            ..
        } = reconcile(carrier, &spec, &status).await;
        reconciles += 1;
        let converged = actions == 0
            && failed == 0
            && next.pending_actions.is_empty()
            && next.counts.as_ref().unwrap().in_desired_state == DEVICES as u64;
        status = next;
        if converged {
            break;
        }
        assert!(reconciles < 10, "not converged: {status:?}");
    }
    (started.elapsed(), carrier.counters().total(), reconciles)
}

fn report(label: &str, wall: Duration, calls: u64, floor: u64, writes: u64, in_flight: u64) {
    println!(
        "{label}: {:.2} s wall; {calls} carrier calls, floor {floor} -> {:.3}x; {writes} writes; at most {in_flight} write(s) in flight",
        wall.as_secs_f64(),
        calls as f64 / floor as f64
    );
}

#[tokio::main]
async fn main() {
    println!(
        "10,000 emnify devices paused; carrier limit {CARRIER_RPS:.1} req/s burst {CARRIER_BURST}, client limit {CLIENT_RPS} req/s burst {CLIENT_BURST} (emnify's documented limits, time-scaled {SCALE}x)"
    );
    let bulk_writes = (DEVICES as u64).div_ceil(BULK);

    // 1. Through the bulk route.
    let sim = simulator(EmnifyBulk::Allowed).await;
    let pages = listing_pages(&sim).await;
    let carrier = client(&sim);
    let (bulk_wall, bulk_calls, reconciles) = simfleet_pause(carrier.as_ref()).await;
    let calls = bulk_calls;
    let (written, in_flight) = writes(&sim).await;
    assert_eq!(paused(&sim).await, DEVICES as u64);
    assert_eq!(reconciles, 2, "submit, then confirm");
    let floor = 2 * pages + bulk_writes + 1;
    report(
        "simfleet, bulk route",
        bulk_wall,
        calls,
        floor,
        written,
        in_flight,
    );
    assert!(written <= bulk_writes && in_flight == 1);

    // 2. A hand-written per-device loop that sleeps on 429, on the same simulator (reset).
    reqwest::Client::new()
        .post(format!("{}/reset", sim.admin_url()))
        .send()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let token = http
        .post(format!("{}/v1/authenticate", sim.emnify_url()))
        .json(&json!({"application_token": simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let mut sent = 0u64;
    for id in 1001..1001 + DEVICES as u64 {
        loop {
            sent += 1;
            let answer = http
                .patch(format!("{}/v1/endpoint/{id}", sim.emnify_url()))
                .bearer_auth(&token)
                .json(&json!({"status": {"id": 1}}))
                .send()
                .await
                .unwrap();
            if answer.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
                assert!(answer.status().is_success(), "{}", answer.status());
                break;
            }
            let wait = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }
    let loop_wall = started.elapsed();
    let (written, in_flight) = writes(&sim).await;
    assert_eq!(paused(&sim).await, DEVICES as u64);
    report(
        "hand-written per-device loop (writes only, sleeping on 429)",
        loop_wall,
        sent,
        DEVICES as u64,
        written,
        in_flight,
    );
    sim.stop().await;

    // 3. simfleet with the bulk route forbidden: one PATCH per endpoint, in turn.
    let sim = simulator(EmnifyBulk::Forbidden).await;
    let carrier = client(&sim);
    let (per_device_wall, per_device_calls, _) = simfleet_pause(carrier.as_ref()).await;
    let calls = per_device_calls;
    let (written, in_flight) = writes(&sim).await;
    assert_eq!(paused(&sim).await, DEVICES as u64);
    let floor = 2 * pages + DEVICES as u64 + 1;
    report(
        "simfleet, bulk route forbidden (403, then per device)",
        per_device_wall,
        calls,
        floor,
        written,
        in_flight,
    );
    assert_eq!(in_flight, 1);
    sim.stop().await;

    // 4. The bulk route with the first chunk answered 503: not resent blindly; the next
    // reconcile observes and sends what is still to change.
    let sim = simulator(EmnifyBulk::Allowed).await;
    reqwest::Client::new()
        .put(format!("{}/faults", sim.admin_url()))
        .json(&json!({"rules": [{"route": "/api/v2/endpoint/multi", "burst5xx": 1}]}))
        .send()
        .await
        .unwrap();
    let carrier = client(&sim);
    let (wall, calls, reconciles) = simfleet_pause(carrier.as_ref()).await;
    let (written, in_flight) = writes(&sim).await;
    assert_eq!(paused(&sim).await, DEVICES as u64);
    // The floor plus the chunk sent again and the observation before it.
    let floor = 3 * pages + bulk_writes + 1 + 1;
    report(
        &format!(
            "simfleet, bulk route, one chunk answered 503 ({reconciles} reconciles; floor counts the resent chunk and the observation before it)"
        ),
        wall,
        calls,
        floor,
        written,
        in_flight,
    );
    sim.stop().await;

    let unscaled = CLIENT_RPS / SCALE;
    println!(
        "wall-time ratio: hand-written per-device loop / bulk = {:.0}x; simfleet per-device / bulk = {:.0}x. At emnify's real limits (client {unscaled} req/s) the calls need at least: bulk {:.0} s, per device {:.1} min",
        loop_wall.as_secs_f64() / bulk_wall.as_secs_f64(),
        per_device_wall.as_secs_f64() / bulk_wall.as_secs_f64(),
        bulk_calls as f64 / unscaled,
        per_device_calls as f64 / unscaled / 60.0
    );
}
