//! The emnify client against the simulator's emnify surface, over real HTTP.

mod common;

use std::sync::Arc;

use common::*;
use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use serde_json::json;
use simfleet::api::{Provider, StateChange};
use simfleet::carrier::{
    Carrier, CarrierError, ObservedState, QuotaSetting, QuotaState, Selection, SimTarget, connect,
};
use simfleet::simulator::SimulatorHandle;

fn client_with(sim: &SimulatorHandle, suspend_sim: bool) -> Arc<dyn Carrier> {
    let mut spec = account(Provider::Emnify, sim.emnify_url());
    spec.suspend_sim_on_pause = Some(suspend_sim);
    connect(&spec, SecretString::from(APP_TOKEN), fast_retries()).unwrap()
}

fn client(sim: &SimulatorHandle) -> Arc<dyn Carrier> {
    client_with(sim, false)
}

fn targets(ids: &[u64]) -> Vec<SimTarget> {
    ids.iter()
        .map(|&d| SimTarget {
            device_id: d,
            sim_id: Some(d - 1001 + 700_001),
        })
        .collect()
}

#[tokio::test]
async fn verify_authenticates_once_and_refuses_a_wrong_token() {
    let sim = simulator(10).await;
    let carrier = client(&sim);
    carrier.verify().await.unwrap();
    carrier.verify().await.unwrap();
    assert_eq!(
        count(&sim, "POST", "/api/v1/authenticate", 200).await,
        1,
        "the token is cached"
    );
    let wrong = connect(
        &account(Provider::Emnify, sim.emnify_url()),
        SecretString::from("nope"),
        fast_retries(),
    )
    .unwrap();
    assert!(matches!(
        wrong.verify().await,
        Err(CarrierError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn a_token_expiring_in_the_middle_of_a_100000_sim_listing_is_renewed() {
    let sim = simulator(100_000).await;
    let carrier = client(&sim);
    let expected = admin_get(&sim, "/sims?tag=smart-meter&limit=1").await["total"]
        .as_u64()
        .unwrap();
    let selection = Selection {
        tags: vec!["smart-meter".into()],
        ..Default::default()
    };
    let mut stream = carrier.observe(&selection);
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    while let Some(page) = stream.try_next().await.unwrap() {
        pages += 1;
        if pages == 3 {
            // The simulator's tokens live one hour of its virtual time.
            sim.advance(SignedDuration::from_mins(90));
        }
        for o in page {
            assert!(seen.insert(o.device_id.unwrap()));
        }
    }
    assert_eq!(seen.len() as u64, expected);
    assert_eq!(
        count(&sim, "POST", "/api/v1/authenticate", 200).await,
        2,
        "authenticated again once"
    );
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint", 401).await, 1);
}

#[tokio::test]
async fn a_forced_token_expiry_is_recovered_with_one_authentication() {
    let sim = simulator(50).await;
    let carrier = client(&sim);
    carrier.verify().await.unwrap();
    admin_send(&sim, reqwest::Method::POST, "/tokens/expire", &json!({})).await;
    carrier.verify().await.unwrap();
    assert_eq!(count(&sim, "POST", "/api/v1/authenticate", 200).await, 2);
}

#[tokio::test]
async fn lists_are_looked_up_and_unknowns_are_ineligible() {
    let sim = simulator(200).await;
    let carrier = client(&sim);
    let selection = Selection {
        iccids: vec!["8944500000000000001".into(), "8944500000000099999".into()],
        device_ids: vec![1001, 1002, 555_555],
        tags: vec![],
    };
    let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
    assert_eq!(
        observed.len(),
        4,
        "1001 is listed twice and reported once: {observed:?}"
    );
    assert_eq!(observed[0].device_id, Some(1001));
    assert_eq!(observed[0].sim_id, Some(700_001));
    assert!(
        observed
            .iter()
            .filter(|o| matches!(&o.state, ObservedState::Ineligible(r) if r.contains("unknown")))
            .count()
            == 2
    );
}

#[tokio::test]
async fn per_device_changes_pause_endpoints_and_optionally_suspend_sims() {
    let sim = live_fleet(20).await;
    let carrier = client_with(&sim, true);
    admin_send(
        &sim,
        reqwest::Method::PATCH,
        "/sims/1005",
        &json!({"state": "DEAD"}),
    )
    .await;
    let submission = carrier
        .submit(StateChange::Pause, &targets(&[1001, 1002, 1003, 1005]))
        .await
        .unwrap();
    assert_eq!(submission.accepted, 3);
    assert_eq!(submission.refused.len(), 1);
    assert_eq!(submission.refused[0].device_id, 1005);
    assert!(submission.refused[0].reason.contains("deleted"));
    assert!(submission.action_ids[0].starts_with("emnify-"));
    sim.advance(SignedDuration::from_secs(10));
    let observed = observe_all(
        carrier.as_ref(),
        &Selection {
            device_ids: vec![1001, 1002, 1003],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        observed.iter().all(|o| o.state == ObservedState::Paused),
        "{observed:?}"
    );
    let table = admin_get(&sim, "/sims?deviceId=1001").await;
    assert_eq!(table["sims"][0]["simSuspended"], true);
    assert_eq!(
        count(&sim, "PATCH", "/api/v1/sim/{id}", 204).await,
        3,
        "one SIM call per paused device"
    );
}

#[tokio::test]
async fn changes_land_despite_20_percent_injected_5xx() {
    let sim = live_fleet(200).await;
    let carrier = client(&sim);
    set_faults(&sim, json!([{"errorRate": 0.2}])).await;
    let ids: Vec<u64> = (1001..1201).collect();
    let submission = carrier
        .submit(StateChange::Pause, &targets(&ids))
        .await
        .unwrap();
    assert_eq!(submission.accepted, 200, "{:?}", submission.refused);
    set_faults(&sim, json!([])).await;
    sim.advance(SignedDuration::from_secs(10));
    let paused = admin_get(&sim, "/sims?state=PAUSED-USER&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(paused, 200);
    assert!(carrier.counters().retries() > 0);
}

#[tokio::test]
async fn quotas_are_set_read_and_deleted_and_refusals_are_typed() {
    let sim = live_fleet(5).await;
    let carrier = client(&sim);
    assert_eq!(carrier.read_quota(1001).await.unwrap(), None);
    let now = sim.state().clock.now();
    let quota = QuotaSetting {
        volume_mb: 500.0,
        expiry: now
            .saturating_add(SignedDuration::from_hours(24 * 30))
            .unwrap(),
        auto_refill: true,
        threshold_percentage: Some(20),
    };
    carrier.set_quota(1001, &quota).await.unwrap();
    let read = carrier.read_quota(1001).await.unwrap().unwrap();
    assert_eq!(read.state, QuotaState::Active);
    assert_eq!(read.volume_mb, 500.0);
    assert_eq!(read.expiry, Some(quota.expiry));
    assert!(read.auto_refill);
    assert_eq!(read.threshold_percentage, Some(20.0));

    let past = QuotaSetting {
        expiry: Timestamp::from_second(now.as_second() - 60).unwrap(),
        ..quota.clone()
    };
    let err = carrier.set_quota(1002, &past).await.unwrap_err();
    assert!(
        matches!(&err, CarrierError::Rejected { message, .. } if message.contains("future")),
        "{err}"
    );

    assert!(carrier.delete_quota(1001).await.unwrap());
    assert!(!carrier.delete_quota(1001).await.unwrap());
    assert_eq!(carrier.read_quota(1001).await.unwrap(), None);
}

#[tokio::test]
async fn a_malformed_listing_is_a_protocol_error() {
    let sim = simulator(100).await;
    let carrier = client(&sim);
    carrier.verify().await.unwrap();
    set_faults(
        &sim,
        json!([{"route": "/api/v1/endpoint", "malformedRate": 1.0}]),
    )
    .await;
    let err = observe_all(
        carrier.as_ref(),
        &Selection {
            tags: vec!["vending".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CarrierError::Protocol { .. }), "{err}");
}
