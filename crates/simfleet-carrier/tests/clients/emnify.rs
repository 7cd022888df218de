//! The emnify client against the simulator's emnify surface, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use serde_json::json;
use simfleet_api::model::{
    ObservedState, QuotaSetting, QuotaState, RefusalKind, Selection, SimTarget,
};
use simfleet_api::{Provider, StateChange};
use simfleet_carrier::http::HttpCore;
use simfleet_carrier::{Carrier, CarrierError, EmnifyClient, connect};
use simfleet_simulator::{EmnifyBulk, SimulatorConfig, SimulatorHandle};
use simfleet_testkit::carrier::*;
use simfleet_testkit::simulator::*;

fn client_with(sim: &SimulatorHandle, suspend_sim: bool) -> Arc<dyn Carrier> {
    let mut spec = account(Provider::Emnify, sim.emnify_url());
    spec.suspend_sim_on_pause = Some(suspend_sim);
    connect(
        &spec,
        SecretString::from(APP_TOKEN),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap()
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
        simfleet_carrier::budget::RequestLedger::unlimited(),
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

/// emnify locks authentication after three failures in a row (the simulator: per client IP,
/// the worst case). A bad token tries twice; its third try, which would lock out every account
/// on the host, is not made while a good account depends on the host; the good one keeps
/// authenticating, and its success opens the way again.
#[tokio::test]
async fn a_bad_token_never_locks_authentication_for_the_good_accounts_on_its_host() {
    let sim = simulator(50).await;
    let good = client(&sim);
    good.verify().await.unwrap();
    let bad = connect(
        &account(Provider::Emnify, sim.emnify_url()),
        SecretString::from("a-wrong-token"),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    for _ in 0..2 {
        assert!(matches!(
            bad.verify().await,
            Err(CarrierError::Unauthorized { .. })
        ));
    }
    let deferred = bad.verify().await.unwrap_err();
    assert!(
        matches!(&deferred, CarrierError::AuthenticationDeferred { message } if message.contains("would lock")),
        "{deferred}"
    );
    assert_eq!(
        count(&sim, "POST", "/api/v1/authenticate", 401).await,
        2,
        "the third failure was not made"
    );
    // The good account's token expires: it authenticates again, unlocked.
    admin_send(&sim, reqwest::Method::POST, "/tokens/expire", &json!({})).await;
    good.verify().await.unwrap();
    assert_eq!(count(&sim, "POST", "/api/v1/authenticate", 200).await, 2);
    // Its success reset the count: the bad token may try again (and fails, once).
    assert!(matches!(
        bad.verify().await,
        Err(CarrierError::Unauthorized { .. })
    ));
}

/// Issue "Correct together" 7: two accounts with wrong tokens have failed on the host; a
/// third whose Secret was fixed authenticates at once (it was never refused), and another
/// provider's calls on the same host (the simulator's quotas) are never held back.
#[tokio::test]
async fn a_fixed_token_and_another_providers_calls_are_not_deferred_by_others_failures() {
    let sim = simulator(50).await;
    let good = client(&sim);
    good.verify().await.unwrap();
    let wrong = |token: &str| {
        connect(
            &account(Provider::Emnify, sim.emnify_url()),
            SecretString::from(token.to_owned()),
            fast_retries(),
            simfleet_carrier::budget::RequestLedger::unlimited(),
        )
        .unwrap()
    };
    for token in ["a-wrong-token", "another-wrong-token"] {
        assert!(matches!(
            wrong(token).verify().await,
            Err(CarrierError::Unauthorized { .. })
        ));
    }
    // The third account's Secret was fixed: its credential was never refused.
    let fixed = wrong(APP_TOKEN);
    fixed.verify().await.unwrap();
    // Two failures in a row again; a simulator account's quota reads (emnify's protocol on
    // the same host) are another provider's calls.
    for token in ["a-wrong-token", "another-wrong-token"] {
        let _ = wrong(token).verify().await;
    }
    let simulator_account = connect(
        &account(Provider::Simulator, sim.base_url()),
        SecretString::from(API_KEY.to_owned()),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    simulator_account.read_quota(1001).await.unwrap();
    // A credential refused before is still held back where its failure would lock the host.
    let deferred = wrong("a-wrong-token").verify().await.unwrap_err();
    assert!(
        matches!(&deferred, CarrierError::AuthenticationDeferred { .. }),
        "{deferred}"
    );
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

/// The most emnify writes the simulator saw in flight at once.
async fn max_writes_in_flight(sim: &SimulatorHandle) -> u64 {
    admin_get(sim, "/stats").await["totals"]["maxEmnifyWritesInFlight"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn changes_go_through_the_bulk_route_and_a_refused_chunk_is_split_to_find_the_refused() {
    let sim = live_fleet(2000).await;
    let carrier = client_with(&sim, true);
    for dead in [1005, 1700] {
        admin_send(
            &sim,
            reqwest::Method::PATCH,
            &format!("/sims/{dead}"),
            &json!({"state": "DEAD"}),
        )
        .await;
    }
    let ids: Vec<u64> = (1001..3001).collect();
    let submission = carrier
        .submit(StateChange::Pause, &targets(&ids))
        .await
        .unwrap();
    assert_eq!(submission.accepted, 1998);
    let refused: Vec<u64> = submission.refused.iter().map(|r| r.device_id).collect();
    assert_eq!(refused, [1005, 1700]);
    for refusal in &submission.refused {
        assert_eq!(refusal.kind, RefusalKind::Ineligible);
        assert!(
            refusal.reason.contains("deleted"),
            "emnify's message: {}",
            refusal.reason
        );
    }
    assert!(submission.action_ids[0].starts_with("emnify-"));
    let bulk_ok = count(&sim, "PATCH", "/api/v2/endpoint/multi", 204).await;
    let bulk_refused = count(&sim, "PATCH", "/api/v2/endpoint/multi", 422).await;
    // Two refused devices in 2,000: about 2 x log2(2000) halvings, never one call per device.
    assert!(
        bulk_refused <= 22 && bulk_ok <= 24,
        "{bulk_ok} accepted, {bulk_refused} refused"
    );
    assert_eq!(count(&sim, "PATCH", "/api/v1/endpoint/{id}", 204).await, 0);
    sim.advance(SignedDuration::from_secs(10));
    let paused = admin_get(&sim, "/sims?state=PAUSED-USER&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(paused, 1998);
    let table = admin_get(&sim, "/sims?deviceId=1001").await;
    assert_eq!(table["sims"][0]["simSuspended"], true);
    assert_eq!(
        count(&sim, "PATCH", "/api/v1/sim/{id}", 204).await,
        1998,
        "one SIM call per paused device: emnify has no bulk SIM suspension"
    );
    assert_eq!(max_writes_in_flight(&sim).await, 1, "writes one at a time");
}

#[tokio::test]
async fn a_bulk_chunk_answered_5xx_is_not_resent() {
    let sim = live_fleet(100).await;
    let carrier = client(&sim);
    set_faults(
        &sim,
        json!([{"route": "/api/v2/endpoint/multi", "burst5xx": 1}]),
    )
    .await;
    let ids: Vec<u64> = (1001..1101).collect();
    let err = carrier
        .submit(StateChange::Pause, &targets(&ids))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CarrierError::Transient {
                request_sent: true,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        count(&sim, "PATCH", "/api/v2/endpoint/multi", 503).await,
        1,
        "one request, not retried: the caller observes first"
    );
    assert_eq!(count(&sim, "PATCH", "/api/v2/endpoint/multi", 204).await, 0);
}

/// An emnify client whose 403 fallback lasts `wait`.
fn client_retrying_bulk_after(sim: &SimulatorHandle, wait: Duration) -> EmnifyClient {
    let core = HttpCore::new(
        "emnify",
        sim.emnify_url(),
        10_000.0,
        1_000,
        8,
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    EmnifyClient::new(core, SecretString::from(APP_TOKEN), false).with_bulk_retry_after(wait)
}

#[tokio::test]
async fn a_403_from_the_bulk_route_switches_the_account_to_sequential_per_device_writes() {
    let sim = start(SimulatorConfig {
        emnify_bulk: EmnifyBulk::Forbidden,
        ..live_config(300)
    })
    .await;
    let carrier = client_retrying_bulk_after(&sim, Duration::from_secs(24 * 3600));
    assert!(carrier.capabilities().bulk);
    assert_eq!(carrier.capabilities().max_sims_per_action, 2000);
    set_faults(
        &sim,
        json!([{"route": "/api/v1/endpoint/{id}", "latencyMs": 2}]),
    )
    .await;
    let first: Vec<u64> = (1001..1201).collect();
    let submission = carrier
        .submit(StateChange::Pause, &targets(&first))
        .await
        .unwrap();
    assert_eq!(submission.accepted, 200);
    assert_eq!(count(&sim, "PATCH", "/api/v2/endpoint/multi", 403).await, 1);
    assert_eq!(
        count(&sim, "PATCH", "/api/v1/endpoint/{id}", 204).await,
        200
    );
    let capabilities = carrier.capabilities();
    assert!(!capabilities.bulk);
    assert_eq!(capabilities.max_sims_per_action, 1000);
    let note = capabilities.bulk_unavailable.unwrap();
    assert!(
        note.contains("403") && note.contains("one endpoint at a time"),
        "{note}"
    );
    // Remembered: the next submit goes straight to per-device writes.
    let second: Vec<u64> = (1201..1301).collect();
    carrier
        .submit(StateChange::Pause, &targets(&second))
        .await
        .unwrap();
    assert_eq!(count(&sim, "PATCH", "/api/v2/endpoint/multi", 403).await, 1);
    assert_eq!(
        count(&sim, "PATCH", "/api/v1/endpoint/{id}", 204).await,
        300
    );
    assert_eq!(
        max_writes_in_flight(&sim).await,
        1,
        "per-device writes are sequential"
    );
    sim.advance(SignedDuration::from_secs(10));
    let paused = admin_get(&sim, "/sims?state=PAUSED-USER&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(paused, 300);
}

#[tokio::test]
async fn the_bulk_route_is_tried_again_once_the_fallback_period_has_passed() {
    let sim = start(SimulatorConfig {
        emnify_bulk: EmnifyBulk::Forbidden,
        ..live_config(20)
    })
    .await;
    let carrier = client_retrying_bulk_after(&sim, Duration::ZERO);
    carrier
        .submit(StateChange::Pause, &targets(&[1001, 1002]))
        .await
        .unwrap();
    carrier
        .submit(StateChange::Pause, &targets(&[1003]))
        .await
        .unwrap();
    assert_eq!(
        count(&sim, "PATCH", "/api/v2/endpoint/multi", 403).await,
        2,
        "each submit after the period tries the bulk route first"
    );
    assert_eq!(count(&sim, "PATCH", "/api/v1/endpoint/{id}", 204).await, 3);
}

#[tokio::test]
async fn a_new_client_for_a_changed_secret_tries_the_bulk_route_again() {
    // The operator builds a new client when the account's Secret changes.
    let sim = start(SimulatorConfig {
        emnify_bulk: EmnifyBulk::Forbidden,
        ..live_config(20)
    })
    .await;
    let carrier = client(&sim);
    carrier
        .submit(StateChange::Pause, &targets(&[1001]))
        .await
        .unwrap();
    assert!(!carrier.capabilities().bulk);
    let rebuilt = client(&sim);
    assert!(rebuilt.capabilities().bulk);
    rebuilt
        .submit(StateChange::Pause, &targets(&[1002]))
        .await
        .unwrap();
    assert_eq!(count(&sim, "PATCH", "/api/v2/endpoint/multi", 403).await, 2);
}

#[tokio::test]
async fn writes_from_concurrent_callers_reach_emnify_one_at_a_time() {
    let sim = live_fleet(400).await;
    let carrier = client(&sim);
    set_faults(&sim, json!([{"latencyMs": 5}])).await;
    let expiry = sim
        .state()
        .clock
        .now()
        .saturating_add(SignedDuration::from_hours(24))
        .unwrap();
    let quota = QuotaSetting {
        volume_mb: 10.0,
        expiry,
        auto_refill: false,
        threshold_percentage: None,
    };
    let submits = (0..4u64).map(|i| {
        let ids: Vec<u64> = (1001 + i * 50..1051 + i * 50).collect();
        let carrier = carrier.clone();
        async move {
            carrier
                .submit(StateChange::Pause, &targets(&ids))
                .await
                .unwrap()
        }
    });
    let quotas = (1301..1321u64).map(|id| {
        let (carrier, quota) = (carrier.clone(), quota.clone());
        async move { carrier.set_quota(id, &quota).await.unwrap() }
    });
    let reads = (1001..1021u64).map(|id| {
        let carrier = carrier.clone();
        async move { carrier.read_quota(id).await.unwrap() }
    });
    futures::join!(
        futures::future::join_all(submits),
        futures::future::join_all(quotas),
        futures::future::join_all(reads)
    );
    assert_eq!(count(&sim, "PATCH", "/api/v2/endpoint/multi", 204).await, 4);
    assert_eq!(
        count(&sim, "POST", "/api/v1/endpoint/{id}/quota/data", 201).await,
        20
    );
    assert_eq!(max_writes_in_flight(&sim).await, 1);
}

#[tokio::test]
async fn per_device_changes_land_despite_20_percent_injected_5xx() {
    let sim = start(SimulatorConfig {
        emnify_bulk: EmnifyBulk::Forbidden,
        ..live_config(200)
    })
    .await;
    let carrier = client(&sim);
    set_faults(
        &sim,
        json!([{"route": "/api/v1/endpoint/{id}", "errorRate": 0.2}]),
    )
    .await;
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
        matches!(&err, CarrierError::Unprocessable { message } if message.contains("future")),
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

/// A listing without the documented `X-Total-Pages` cannot say where it ends: the observation
/// stops with a protocol error instead of reading it as one page.
#[tokio::test]
async fn a_listing_without_x_total_pages_is_a_protocol_error() {
    let sim = simulator(3000).await;
    let carrier = client(&sim);
    carrier.verify().await.unwrap();
    set_faults(
        &sim,
        json!([{"route": "/api/v1/endpoint", "dropHeaders": ["X-Total-Pages"]}]),
    )
    .await;
    let err = observe_all(
        carrier.as_ref(),
        &Selection {
            tags: vec!["smart-meter".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CarrierError::Protocol { message } if message.contains("X-Total-Pages")),
        "{err}"
    );
}

/// Whether emnify's `q=tags:X` matches exactly is not documented: against a simulator whose
/// filter matches substrings, `tags: [meter]` selects no `smart-meter` endpoint, and
/// `tags: [smart-meter]` selects exactly the endpoints tagged so.
#[tokio::test]
async fn tag_membership_is_checked_exactly_whatever_the_filter_matches() {
    let sim = start(SimulatorConfig {
        emnify_tag_filter: simfleet_simulator::EmnifyTagFilter::Substring,
        ..SimulatorConfig::for_tests(500, SignedDuration::from_secs(10))
    })
    .await;
    let carrier = client(&sim);
    let meters = admin_get(&sim, "/sims?tag=smart-meter&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert!(meters > 0);
    // The variant does match substrings: the raw filter answers the smart meters for `meter`.
    let token = emnify_authenticate(&sim, APP_TOKEN).await.1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/v1/endpoint?q=tags:meter&per_page=1",
            sim.emnify_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.headers()["X-Total-Count"].to_str().unwrap(),
        meters.to_string()
    );
    let selected = |tag: &str| Selection {
        tags: vec![tag.into()],
        ..Default::default()
    };
    let none = observe_all(carrier.as_ref(), &selected("meter"))
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "{} endpoints selected by `meter`",
        none.len()
    );
    let exact = observe_all(carrier.as_ref(), &selected("smart-meter"))
        .await
        .unwrap();
    assert_eq!(exact.len() as u64, meters);
}

#[tokio::test]
async fn listed_devices_are_looked_up_one_by_one_or_by_the_full_listing_whichever_is_cheaper() {
    use simfleet_api::model::LookupPlan;
    let sim = live_fleet(1_000).await;
    let carrier = client(&sim);
    carrier.verify().await.unwrap();
    // 300 listed in an organisation of 1,000: the listing (a total, one page) is cheaper.
    let mut devices: Vec<u64> = (1001..1301).collect();
    devices.push(424_242);
    let selection = Selection {
        device_ids: devices,
        ..Default::default()
    };
    sim.state().clear_request_counts();
    let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
    assert_eq!(observed.len(), 301);
    assert_eq!(
        carrier.last_lookup_plan(),
        Some(LookupPlan::FullListing { calls: 2 })
    );
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint", 200).await, 2);
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint/{id}", 200).await, 0);
    assert!(
        observed[..300]
            .iter()
            .all(|o| o.state == ObservedState::Active)
    );
    assert!(matches!(&observed[300].state, ObservedState::Ineligible(r) if r.contains("unknown")));
    // Two listed: one call each, no total asked.
    sim.state().clear_request_counts();
    let two = Selection {
        device_ids: vec![1001, 1002],
        ..Default::default()
    };
    observe_all(carrier.as_ref(), &two).await.unwrap();
    assert_eq!(
        carrier.last_lookup_plan(),
        Some(LookupPlan::OneByOne { calls: 2 })
    );
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint/{id}", 200).await, 2);
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint", 200).await, 0);
}

#[tokio::test]
async fn a_few_listed_devices_in_a_large_organisation_are_looked_up_one_by_one() {
    use simfleet_api::model::LookupPlan;
    let sim = live_fleet(20_000).await;
    let carrier = client(&sim);
    carrier.verify().await.unwrap();
    let selection = Selection {
        device_ids: (1001..1011).collect(),
        iccids: vec!["8944500000000000100".into()],
        ..Default::default()
    };
    sim.state().clear_request_counts();
    let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
    assert_eq!(observed.len(), 11);
    // 11 lookups against a total and 20 pages.
    assert_eq!(
        carrier.last_lookup_plan(),
        Some(LookupPlan::OneByOne { calls: 11 })
    );
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint/{id}", 200).await, 10);
    // The total (one call) and the ICCID's `q=iccid:` lookup.
    assert_eq!(count(&sim, "GET", "/api/v1/endpoint", 200).await, 2);
}
