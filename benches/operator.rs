//! The operator's reconcile path (observe, plan, submit; then observe again to confirm; then a
//! steady-state resync), as the SimGroup controller runs it, against a zero-delay simulator:
//! wall time, carrier calls against the floor, and memory while observing a large group.
//! Run: `cargo bench --bench operator`.

mod common;

use std::time::Instant;

use common::{Reconciled, group, reconcile};
use jiff::SignedDuration;
use secrecy::SecretString;
use simfleet::api::{
    CarrierAccountSpec, Provider, RateLimit, SecretKeyRef, SimGroupStatus, SimState,
};
use simfleet::carrier::{HttpSettings, connect};
use simfleet::simulator::fleet::SEED_TAGS;
use simfleet::simulator::{SeedConfig, Simulator, SimulatorConfig};

#[tokio::main]
async fn main() {
    // Every seeded SIM has one of five tags; 5% also have "pilot", so selecting all six tags
    // lists those SIMs twice (once per tag: the carrier lists by one tag at a time).
    let disjoint = &SEED_TAGS[..5];
    for (sims, label, tags) in [
        (100_000usize, "100,000 (6 overlapping tags)", &SEED_TAGS[..]),
        (100_000usize, "100,000 (5 disjoint tags)", disjoint),
        (1_000_000, "1,000,000 (6 overlapping tags)", &SEED_TAGS[..]),
    ] {
        let simulator = Simulator::start(SimulatorConfig {
            seed: SeedConfig {
                sims,
                paused_share: 0.0,
                paused_by_system_share: 0.0,
                deactivated_share: 0.0,
                ..SeedConfig::default()
            },
            ..SimulatorConfig::for_tests(sims, SignedDuration::ZERO)
        })
        .await
        .unwrap();
        let account = CarrierAccountSpec {
            provider: Provider::Simulator,
            base_url: Some(simulator.base_url()),
            secret_ref: SecretKeyRef {
                name: "s".into(),
                key: None,
            },
            org_id: None,
            rate_limit: Some(RateLimit {
                requests_per_second: 100_000.0,
                burst: 10_000,
            }),
            concurrency: Some(8),
            suspend_sim_on_pause: None,
        };
        let carrier = connect(
            &account,
            SecretString::from(simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY),
            HttpSettings::default(),
        )
        .unwrap();
        let spec = group(SimState::Paused, tags);
        let started = Instant::now();
        let Reconciled {
            status: submitted,
            actions,
            peak_kib: peak,
            ..
        } = reconcile(carrier.as_ref(), &spec, &SimGroupStatus::default()).await;
        let Reconciled {
            status: confirmed,
            actions: more,
            ..
        } = reconcile(carrier.as_ref(), &spec, &submitted).await;
        let elapsed = started.elapsed();
        let calls = carrier.counters().total();
        let pages = calls - actions as u64;
        assert_eq!(more, 0);
        assert!(confirmed.pending_actions.is_empty());
        assert_eq!(
            confirmed.counts.as_ref().unwrap().in_desired_state,
            sims as u64
        );
        // The floor: one listing (1,000 per page) plus one submit per 10,000 SIMs.
        // Confirmation is by observed state, so converging takes a second listing: that floor
        // is two listings plus the submits.
        let listing = (sims as u64).div_ceil(1000);
        let submits = (sims as u64).div_ceil(10_000);
        let floor = listing + submits;
        let confirm_floor = 2 * listing + submits;
        println!(
            "{label} SIMs: converged (submitted + confirmed) in {:.2} s of reconcile wall time; {calls} carrier calls = 2 observations x {} list pages + {actions} submits; issue floor {floor} -> {:.2}x; floor with the confirming listing {confirm_floor} -> {:.3}x; RSS growth while observing and planning at most {:.1} MiB",
            elapsed.as_secs_f64(),
            pages / 2,
            calls as f64 / floor as f64,
            calls as f64 / confirm_floor as f64,
            peak as f64 / 1024.0
        );
        let before = carrier.counters().total();
        let Reconciled {
            status: steady,
            actions,
            ..
        } = reconcile(carrier.as_ref(), &spec, &confirmed).await;
        let mutating = simulator
            .state()
            .request_counts()
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| r.count)
            .sum::<u64>();
        println!(
            "{label} SIMs: steady-state resync: {} read calls, {actions} actions, status unchanged: {} (so no status write); mutating requests overall {mutating}",
            carrier.counters().total() - before,
            steady == confirmed
        );
        simulator.stop().await;
    }
}
