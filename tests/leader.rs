//! Leader election: two `simfleet run` processes against the sandbox; only the leader
//! reconciles; after a kill -9 of the leader the other takes over within the lease duration,
//! and no carrier action is submitted twice.

mod common;

use std::time::{Duration, Instant};

use common::operator::*;
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use simfleet_testkit::world::*;

const LEASE_SECONDS: u64 = 4;

async fn holder(world: &World) -> Option<String> {
    Api::<Lease>::namespaced(world.sandbox.client(), "default")
        .get_opt("simfleet-leader")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn until_holder(world: &World, who: &str) -> Duration {
    let started = Instant::now();
    while holder(world).await.as_deref() != Some(who) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{who} never led; holder {:?}",
            holder(world).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn scrape(url: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{url}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Two operators with leader election: "op-a" leading, then "op-b" following and ready (it can
/// take over). Returns each with its metrics URL.
async fn leader_and_follower(world: &World) -> (Operator, Option<String>, Operator, String) {
    let lease = format!("--lease-duration={LEASE_SECONDS}");
    let flags = [
        "--leader-election",
        lease.as_str(),
        "--metrics-addr=127.0.0.1:0",
    ];
    let (first, first_url) = Operator::start_with(&world.kubeconfig, &flags, "op-a");
    until_holder(world, "op-a").await;
    let (second, second_url) = Operator::start_with(&world.kubeconfig, &flags, "op-b");
    let second_url = second_url.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(&second_url, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the follower never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (first, first_url, second, second_url)
}

/// Waits for "op-b" to lead, which must happen within the lease duration (plus a little for
/// a loaded machine); returns how long it took.
async fn until_follower_leads(world: &World) -> Duration {
    let took = until_holder(world, "op-b").await;
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 2),
        "took {took:?} for a {LEASE_SECONDS} s lease"
    );
    took
}

#[tokio::test]
async fn the_follower_takes_over_within_the_lease_after_a_kill_9_and_nothing_is_sent_twice() {
    let world = world("leader", 25_000).await;
    let (mut first, first_url, _second, second_url) = leader_and_follower(&world).await;
    let groups = create_group(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": simfleet::simulator::fleet::SEED_TAGS}})).await;
    until(&groups, "fleet", "3 pending actions", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.pending_actions.len() == 3)
    })
    .await;
    let (_, leader_metrics) = scrape(first_url.as_deref().unwrap(), "/metrics").await;
    assert!(leader_metrics.contains("simfleet_reconciles_total{kind=\"SimGroup\""));
    let (_, follower_metrics) = scrape(&second_url, "/metrics").await;
    assert!(
        !follower_metrics.contains("simfleet_reconciles_total{kind="),
        "the follower reconciled: {follower_metrics}"
    );

    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let took = until_follower_leads(&world).await;
    println!(
        "takeover after kill -9: {:.1} s (lease {LEASE_SECONDS} s)",
        took.as_secs_f64()
    );
    world.simulator.advance(SignedDuration::from_secs(10));
    until(&groups, "fleet", "Ready under the new leader", ready).await;
    assert_each_sim_submitted_once(&world, 25_000).await;
    // The reconcile is counted when it returns, a moment after its status write: poll.
    let deadline = Instant::now() + wait_limit();
    loop {
        let (_, new_leader_metrics) = scrape(&second_url, "/metrics").await;
        if new_leader_metrics.contains("simfleet_reconciles_total{kind=\"SimGroup\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new leader counts no SimGroup reconcile: {new_leader_metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_sigterm_stops_the_leader_cleanly_and_releases_the_lease_for_the_follower() {
    let world = world("handover", 100).await;
    let (first, _, _second, second_url) = leader_and_follower(&world).await;

    let exit = first.terminate().await;
    assert!(exit.success(), "the leader stopped with {exit}");
    assert_ne!(
        holder(&world).await.as_deref(),
        Some("op-a"),
        "a leader stopped by SIGTERM releases its Lease"
    );
    until_follower_leads(&world).await;

    // The new leader reconciles.
    let groups = create_group(&world, "after", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": simfleet::simulator::fleet::SEED_TAGS}})).await;
    until_confirmed(&world, &groups, "after", "under the new leader").await;
    let (_, metrics) = scrape(&second_url, "/metrics").await;
    assert!(metrics.contains("simfleet_reconciles_total{kind=\"SimGroup\""));
}
