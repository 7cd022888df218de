//! A unit bench of the planner and the carrier client together, not of the operator:
//! `benches/common::reconcile_at` observes, plans and submits (then observes again to confirm,
//! then resyncs) the way the SimGroup reconcile's steps do, without its status writes, watch
//! triggers, claims or in-flight memory, against a zero-delay simulator in the same process:
//! wall time, carrier calls against the floor, and memory while observing a large group. The
//! operator itself (`simfleet run`) is measured by `cargo bench --bench side_by_side`.
//! Run: `cargo bench --bench operator`.

mod common;

use std::time::Instant;

use common::{Reconciled, group, reconcile, reconcile_at};
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
        let (simulator, carrier) = live_simulator(sims, SignedDuration::ZERO).await;
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

    confirm_with_polls().await;
}

/// A simulator of `sims` live SIMs whose changes land after `delay` (manual clock), and a
/// `provider: simulator` client of it with no rate limit to speak of.
async fn live_simulator(
    sims: usize,
    delay: SignedDuration,
) -> (
    simfleet::simulator::SimulatorHandle,
    std::sync::Arc<dyn simfleet::carrier::Carrier>,
) {
    let simulator = Simulator::start(SimulatorConfig {
        seed: SeedConfig {
            sims,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        ..SimulatorConfig::for_tests(sims, delay)
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
        budget: None,
        suspend_sim_on_pause: None,
    };
    let carrier = connect(
        &account,
        SecretString::from(simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY),
        HttpSettings::default(),
        simfleet::carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    (simulator, carrier)
}

/// A 100,000-SIM change whose confirmation takes 10 minutes at the carrier, from submit to
/// Ready, reconciled as the controller does: while actions are pending, one call to the jobs
/// list per poll, and a full listing only once the carrier says an action has finished.
async fn confirm_with_polls() {
    use simfleet::sim_group::plan::{PollCost, pending_backoff, poll_says_wait};
    let (simulator, carrier) = live_simulator(100_000, SignedDuration::from_mins(10)).await;
    let spec = group(SimState::Paused, &SEED_TAGS[..5]);
    let mut status = SimGroupStatus::default();
    let (mut listings, mut polls, mut submits) = (0u64, 0u64, 0u64);
    let mut last_full = None;
    let started = simulator.state().clock.now();
    loop {
        let now = simulator.state().clock.now();
        if !status.pending_actions.is_empty() {
            let ids: Vec<String> = status
                .pending_actions
                .iter()
                .map(|a| a.id.clone())
                .collect();
            let statuses = carrier.action_statuses(&ids).await.unwrap();
            polls += 1;
            if poll_says_wait(&status.pending_actions, &statuses, last_full, now) {
                let wait =
                    pending_backoff(&status.pending_actions, now, PollCost::Observation).unwrap();
                simulator.advance(SignedDuration::try_from(wait).unwrap());
                continue;
            }
        }
        let Reconciled {
            status: next,
            actions,
            ..
        } = reconcile_at(carrier.as_ref(), &spec, &status, now).await;
        listings += 1;
        submits += actions as u64;
        last_full = Some(now);
        status = next;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready {
            break;
        }
        let wait = pending_backoff(&status.pending_actions, now, PollCost::Observation)
            .unwrap_or(std::time::Duration::from_secs(5));
        simulator.advance(SignedDuration::try_from(wait).unwrap());
    }
    let calls = carrier.counters().total();
    let pages = (calls - polls - submits) / listings;
    let floor = 2 * pages + submits + polls;
    let virtual_time = simulator.state().clock.now().duration_since(started);
    println!(
        "100,000 SIMs paused with a 10-minute carrier delay: Ready after {:.1} min of carrier time; {calls} carrier calls = {listings} listings x {pages} pages + {submits} submits + {polls} job-status polls; floor (2 listings + submits + one status call per poll) {floor} -> {:.3}x; re-listing at every poll would have cost about {}",
        virtual_time.as_secs_f64() / 60.0,
        calls as f64 / floor as f64,
        (polls + 1) * pages + submits,
    );
    simulator.stop().await;
}
