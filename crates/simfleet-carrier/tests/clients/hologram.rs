//! The Hologram client against the simulator's Hologram surface, over real HTTP.

use std::sync::Arc;

use futures::TryStreamExt;
use jiff::SignedDuration;
use secrecy::SecretString;
use serde_json::json;
use simfleet_api::model::{
    ObservedState, QuotaEventKind, QuotaSetting, RefusalKind, Selection, SimObservation, SimTarget,
};
use simfleet_api::{Provider, StateChange};
use simfleet_carrier::{Carrier, CarrierError, connect};
use simfleet_simulator::SimulatorHandle;
use simfleet_testkit::carrier::*;
use simfleet_testkit::simulator::*;

fn client(sim: &SimulatorHandle) -> Arc<dyn Carrier> {
    connect(
        &account(Provider::Simulator, sim.base_url()),
        SecretString::from(API_KEY),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap()
}

fn tag(name: &str) -> Selection {
    Selection {
        tags: vec![name.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn verify_accepts_the_key_and_refuses_a_wrong_one() {
    let sim = simulator(10).await;
    client(&sim).verify().await.unwrap();
    let wrong = connect(
        &account(Provider::Hologram, sim.hologram_url()),
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
async fn observing_a_tag_pages_through_100000_sims_once_each() {
    let sim = simulator(100_000).await;
    let carrier = client(&sim);
    let expected = admin_get(&sim, "/sims?tag=smart-meter&limit=1").await["total"]
        .as_u64()
        .unwrap();
    let mut pages = 0;
    let mut seen = std::collections::HashSet::new();
    let selection = tag("smart-meter");
    let mut stream = carrier.observe(&selection);
    while let Some(page) = stream.try_next().await.unwrap() {
        assert!(page.len() <= 1000);
        pages += 1;
        for o in page {
            assert!(seen.insert(o.device_id.unwrap()), "each SIM once");
        }
    }
    assert_eq!(seen.len() as u64, expected);
    assert_eq!(carrier.counters().total(), pages, "one call per page");
}

#[tokio::test]
async fn lists_and_tags_are_unioned_without_duplicates_and_unknowns_are_ineligible() {
    let sim = simulator(300).await;
    let carrier = client(&sim);
    let cold = admin_get(&sim, "/sims?tag=cold-chain&limit=1000").await;
    let first_cold = &cold["sims"][0];
    let selection = Selection {
        iccids: vec![
            first_cold["iccid"].as_str().unwrap().to_owned(),
            "8944500000000099999".into(),
        ],
        device_ids: vec![first_cold["deviceId"].as_u64().unwrap(), 1002, 999_999],
        tags: vec!["cold-chain".into(), "pilot".into()],
    };
    let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
    let pilot = admin_get(&sim, "/sims?tag=pilot&limit=1000").await;
    let mut expected: std::collections::HashSet<u64> = cold["sims"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pilot["sims"].as_array().unwrap())
        .map(|s| s["deviceId"].as_u64().unwrap())
        .collect();
    expected.insert(1002);
    let known: Vec<u64> = observed
        .iter()
        .filter_map(|o| o.device_id)
        .filter(|&d| d != 999_999)
        .collect();
    assert_eq!(known.len(), expected.len(), "no SIM twice");
    assert_eq!(
        known
            .iter()
            .copied()
            .collect::<std::collections::HashSet<_>>(),
        expected
    );
    let unknown: Vec<&SimObservation> = observed
        .iter()
        .filter(|o| matches!(o.state, ObservedState::Ineligible(ref r) if r.contains("unknown")))
        .collect();
    assert_eq!(unknown.len(), 2, "{unknown:?}");
}

#[tokio::test]
async fn a_submitted_pause_is_pending_then_confirmed_by_observation() {
    let sim = simulator(50).await;
    let carrier = client(&sim);
    let dead = admin_get(&sim, "/sims?state=DEAD&limit=1").await["sims"][0]["deviceId"].as_u64();
    let live: Vec<u64> = admin_get(&sim, "/sims?state=LIVE&limit=5").await["sims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deviceId"].as_u64().unwrap())
        .collect();
    let mut targets: Vec<SimTarget> = live
        .iter()
        .map(|&d| SimTarget {
            device_id: d,
            sim_id: None,
        })
        .collect();
    targets.extend(dead.map(|d| SimTarget {
        device_id: d,
        sim_id: None,
    }));
    let submission = carrier.submit(StateChange::Pause, &targets).await.unwrap();
    assert_eq!(submission.action_ids.len(), 1);
    assert_eq!(submission.accepted, live.len());
    if let Some(dead) = dead {
        assert_eq!(submission.refused[0].device_id, dead);
        assert_eq!(submission.refused[0].kind, RefusalKind::Failed);
    }
    let selection = Selection {
        device_ids: live.clone(),
        ..Default::default()
    };
    let before = observe_all(carrier.as_ref(), &selection).await.unwrap();
    assert!(
        before
            .iter()
            .all(|o| o.state == ObservedState::Pending(StateChange::Pause)),
        "{before:?}"
    );
    sim.advance(SignedDuration::from_secs(10));
    let after = observe_all(carrier.as_ref(), &selection).await.unwrap();
    assert!(after.iter().all(|o| o.state == ObservedState::Paused));
    let jobs = admin_get(&sim, "/jobs").await;
    assert_eq!(jobs["jobs"][0]["id"], submission.action_ids[0].as_str());
}

#[tokio::test]
async fn more_than_10000_sims_are_refused_before_any_call() {
    let sim = simulator(10).await;
    let carrier = client(&sim);
    let targets: Vec<SimTarget> = (0..10_001)
        .map(|i| SimTarget {
            device_id: 1001 + i,
            sim_id: None,
        })
        .collect();
    let err = carrier
        .submit(StateChange::Pause, &targets)
        .await
        .unwrap_err();
    assert!(matches!(err, CarrierError::Rejected { .. }), "{err}");
    assert_eq!(carrier.counters().total(), 0);
}

#[tokio::test]
async fn observation_survives_20_percent_injected_5xx() {
    let sim = simulator(20_000).await;
    let carrier = client(&sim);
    let expected = admin_get(&sim, "/sims?tag=vending&limit=1").await["total"]
        .as_u64()
        .unwrap();
    set_faults(&sim, json!([{"errorRate": 0.2}])).await;
    let observed = observe_all(carrier.as_ref(), &tag("vending"))
        .await
        .unwrap();
    assert_eq!(observed.len() as u64, expected);
    assert!(carrier.counters().retries() > 0);
}

#[tokio::test]
async fn a_429_burst_is_waited_out_as_retry_after_says() {
    let sim = simulator(3_000).await;
    let carrier = client(&sim);
    set_faults(
        &sim,
        json!([{"route": "/api/1/devices", "burst429": 3, "retryAfterSecs": 1}]),
    )
    .await;
    let observed = observe_all(carrier.as_ref(), &tag("vending"))
        .await
        .unwrap();
    assert!(!observed.is_empty());
    assert_eq!(carrier.counters().rate_limited(), 3);
    assert_eq!(count(&sim, "GET", "/api/1/devices", 429).await, 3);
}

#[tokio::test]
async fn a_bulk_submit_is_not_repeated_after_a_5xx() {
    let sim = simulator(10).await;
    let carrier = client(&sim);
    set_faults(
        &sim,
        json!([{"route": "/api/1/devices/batch/state", "burst5xx": 1}]),
    )
    .await;
    let err = carrier
        .submit(
            StateChange::Pause,
            &[SimTarget {
                device_id: 1001,
                sim_id: None,
            }],
        )
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
    assert!(err.to_string().contains("observe before resubmitting"));
    assert_eq!(
        count(&sim, "POST", "/api/1/devices/batch/state", 503).await,
        1
    );
    assert_eq!(
        count(&sim, "POST", "/api/1/devices/batch/state", 200).await,
        0
    );
}

#[tokio::test]
async fn a_malformed_body_is_a_protocol_error_not_a_panic() {
    let sim = simulator(100).await;
    let carrier = client(&sim);
    set_faults(&sim, json!([{"malformedRate": 1.0}])).await;
    let err = observe_all(carrier.as_ref(), &tag("vending"))
        .await
        .unwrap_err();
    assert!(matches!(err, CarrierError::Protocol { .. }), "{err}");
    let err = carrier.verify().await.unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}

#[tokio::test]
async fn hologram_quotas_are_unsupported_and_say_so() {
    let sim = simulator(1).await;
    let carrier = connect(
        &account(Provider::Hologram, sim.hologram_url()),
        SecretString::from(API_KEY),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    assert!(!carrier.capabilities().data_quota);
    let quota = QuotaSetting {
        volume_mb: 1.0,
        expiry: jiff::Timestamp::now(),
        auto_refill: false,
        threshold_percentage: None,
    };
    for err in [
        carrier.read_quota(1001).await.unwrap_err(),
        carrier.set_quota(1001, &quota).await.unwrap_err(),
        carrier.delete_quota(1001).await.unwrap_err(),
        carrier.quota_events(1001, None).await.unwrap_err(),
    ] {
        assert!(matches!(err, CarrierError::Unsupported { .. }));
        assert!(err.to_string().contains("data quotas"));
    }
    assert_eq!(
        admin_get(&sim, "/stats").await["totals"]["requests"],
        0,
        "no call was made"
    );
}

#[tokio::test]
async fn the_simulator_account_serves_quotas_through_its_emnify_surface_with_one_key() {
    let sim = simulator(3).await;
    let carrier = client(&sim);
    assert!(carrier.capabilities().data_quota);
    assert_eq!(carrier.read_quota(1001).await.unwrap(), None);
    let quota = QuotaSetting {
        volume_mb: 100.0,
        expiry: "2027-01-01T00:00:00Z".parse().unwrap(),
        auto_refill: false,
        threshold_percentage: Some(20),
    };
    carrier.set_quota(1001, &quota).await.unwrap();
    let read = carrier.read_quota(1001).await.unwrap().unwrap();
    assert_eq!((read.volume_mb, read.expiry), (100.0, Some(quota.expiry)));
    assert_eq!(read.last_volume_added, Some(100.0));
    // Using it up raises the threshold and used-up events, newest first.
    for mb in [85.0, 15.0] {
        let response = reqwest::Client::new()
            .post(format!("{}/consume", sim.admin_url()))
            .json(&json!({"deviceId": 1001, "mb": mb}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let events = carrier.quota_events(1001, None).await.unwrap();
    let kinds: Vec<QuotaEventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [QuotaEventKind::UsedUp, QuotaEventKind::ThresholdReached]
    );
    // `since` is inclusive (events can share a timestamp); later than all: none.
    let at = events[0].at;
    assert_eq!(carrier.quota_events(1001, Some(at)).await.unwrap().len(), 2);
    let later = at + jiff::SignedDuration::from_secs(1);
    assert!(
        carrier
            .quota_events(1001, Some(later))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(carrier.delete_quota(1001).await.unwrap());
    // One HTTP core: the quota calls count with the state calls.
    assert!(carrier.counters().total() >= 7);
}

/// A Hologram account (organisation 1) on the simulator's Hologram surface.
fn hologram_client(
    sim: &SimulatorHandle,
    settings: simfleet_carrier::HttpSettings,
) -> Arc<dyn Carrier> {
    let mut spec = account(Provider::Hologram, sim.hologram_url());
    spec.org_id = Some(1);
    connect(
        &spec,
        SecretString::from(API_KEY),
        settings,
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_client_reads_every_documented_variant_and_maps_the_pending_states() {
    use simfleet_simulator::{
        HologramVariants, JobIdShape, OrgIdPlacement, SimulatorConfig, TagShape, WarningShape,
    };
    let variants = [
        HologramVariants::default(),
        HologramVariants {
            tags: TagShape::Strings,
            ..Default::default()
        },
        HologramVariants {
            orgid: OrgIdPlacement::Query,
            ..Default::default()
        },
        HologramVariants {
            jobid: JobIdShape::String,
            ..Default::default()
        },
        HologramVariants {
            warnings: WarningShape::Strings,
            ..Default::default()
        },
    ];
    for variant in variants {
        let sim = start(SimulatorConfig {
            hologram: variant,
            ..live_config(400)
        })
        .await;
        admin_send(
            &sim,
            reqwest::Method::PATCH,
            "/sims/1003",
            &json!({"state": "DEAD"}),
        )
        .await;
        let carrier = hologram_client(&sim, fast_retries());
        // Two tags: a device carrying the first is skipped under the second (tags read in
        // either shape).
        let selection = Selection {
            tags: vec!["cold-chain".into(), "pilot".into()],
            ..Default::default()
        };
        let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
        let total = |tag: &str| {
            let sim = &sim;
            let tag = tag.to_owned();
            async move {
                admin_get(sim, &format!("/sims?tag={tag}&limit=1")).await["total"]
                    .as_u64()
                    .unwrap()
            }
        };
        let (cold, pilot) = (total("cold-chain").await, total("pilot").await);
        assert!(
            observed.len() as u64 >= cold.max(pilot) && (observed.len() as u64) < cold + pilot,
            "{variant:?}: the union, pilots with cold-chain once"
        );
        let unique: std::collections::HashSet<u64> =
            observed.iter().filter_map(|o| o.device_id).collect();
        assert_eq!(
            unique.len(),
            observed.len(),
            "{variant:?}: each device once"
        );
        assert!(
            observed.iter().all(|o| !o.tags.is_empty()),
            "{variant:?}: tags read"
        );
        let targets: Vec<SimTarget> = [1001, 1002, 1003]
            .map(|device_id| SimTarget {
                device_id,
                sim_id: None,
            })
            .to_vec();
        let submission = carrier.submit(StateChange::Pause, &targets).await.unwrap();
        assert!(
            !submission.action_ids[0].is_empty(),
            "{variant:?}: a job id"
        );
        assert_eq!(submission.accepted, 2, "{variant:?}: {submission:?}");
        assert_eq!(submission.refused.len(), 1, "{variant:?}");
        assert_eq!(submission.refused[0].device_id, 1003);
        assert!(
            submission.refused[0].reason.contains("DEAD"),
            "{variant:?}: {:?}",
            submission.refused
        );
        let listed = Selection {
            device_ids: vec![1001, 1002],
            ..Default::default()
        };
        let pending = observe_all(carrier.as_ref(), &listed).await.unwrap();
        assert!(
            pending
                .iter()
                .all(|o| o.state == ObservedState::Pending(StateChange::Pause)),
            "{variant:?}: PAUSED-PENDING-USER is a pause in flight: {pending:?}"
        );
        sim.advance(SignedDuration::from_secs(10));
        let paused = observe_all(carrier.as_ref(), &listed).await.unwrap();
        assert!(
            paused.iter().all(|o| o.state == ObservedState::Paused),
            "{variant:?}"
        );
        let resumed = carrier
            .submit(StateChange::Resume, &targets[..1])
            .await
            .unwrap();
        assert_eq!(resumed.accepted, 1);
        let resuming = observe_all(
            carrier.as_ref(),
            &Selection {
                device_ids: vec![1001],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            resuming[0].state,
            ObservedState::Pending(StateChange::Resume),
            "LIVE-PENDING"
        );
    }
}

#[tokio::test]
async fn a_429_without_retry_after_is_waited_out_before_the_retry() {
    let sim = simulator(100).await;
    let wait = std::time::Duration::from_millis(200);
    let carrier = hologram_client(
        &sim,
        simfleet_carrier::HttpSettings {
            rate_limited_wait: (wait, wait + std::time::Duration::from_millis(50)),
            ..fast_retries()
        },
    );
    set_faults(&sim, json!([{"route": "/api/1/devices", "burst429": 1}])).await;
    let started = std::time::Instant::now();
    carrier.verify().await.unwrap();
    assert!(started.elapsed() >= wait, "waited {:?}", started.elapsed());
    assert_eq!(carrier.counters().rate_limited(), 1);
    assert_eq!(count(&sim, "GET", "/api/1/devices", 200).await, 1);
}

#[test]
fn by_default_a_429_without_retry_after_waits_5_to_10_s_as_hologram_asks() {
    let settings = simfleet_carrier::HttpSettings::default();
    assert_eq!(
        settings.rate_limited_wait,
        (
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(10)
        )
    );
}

#[tokio::test]
async fn job_statuses_come_from_the_jobs_list_and_a_403_is_not_asked_again() {
    use simfleet_simulator::{HologramVariants, JobsRoute, SimulatorConfig};
    let sim = live_fleet(20).await;
    let carrier = hologram_client(&sim, fast_retries());
    let one = [SimTarget {
        device_id: 1001,
        sim_id: None,
    }];
    let first = carrier.submit(StateChange::Pause, &one).await.unwrap();
    let ids = vec![first.action_ids[0].clone(), "424242".to_owned()];
    let statuses = carrier.action_statuses(&ids).await.unwrap();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].id, first.action_ids[0]);
    assert_eq!(
        (statuses[0].status.as_str(), statuses[0].finished),
        ("PROCESSING", false)
    );
    sim.advance(SignedDuration::from_secs(10));
    let statuses = carrier.action_statuses(&ids).await.unwrap();
    assert_eq!(
        (statuses[0].status.as_str(), statuses[0].finished),
        ("COMPLETED", true),
        "finished: its end time is set"
    );
    assert!(carrier.action_statuses(&[]).await.unwrap().is_empty());

    let forbidden = start(SimulatorConfig {
        hologram: HologramVariants {
            jobs: JobsRoute::Forbidden,
            ..Default::default()
        },
        ..live_config(20)
    })
    .await;
    let carrier = hologram_client(&forbidden, fast_retries());
    let submitted = carrier.submit(StateChange::Pause, &one).await.unwrap();
    for _ in 0..3 {
        assert!(
            carrier
                .action_statuses(&submitted.action_ids)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        count(&forbidden, "GET", "/api/1/devices/batch/state", 403).await,
        1
    );
}

#[tokio::test]
async fn listed_sims_are_looked_up_in_batches_through_the_multi_value_filters() {
    use simfleet_api::model::LookupPlan;
    let sim = live_fleet(5_000).await;
    let carrier = hologram_client(&sim, fast_retries());
    let mut iccids: Vec<String> = (1..=1000)
        .map(|i| format!("{}", 8_944_500_000_000_000_000u128 + i))
        .collect();
    iccids.push("8944500000000099999".into());
    let selection = Selection {
        iccids,
        device_ids: (2001..2601).chain([99_999]).collect(),
        ..Default::default()
    };
    let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
    assert_eq!(observed.len(), 1602, "each listed SIM once");
    let unknown = observed
        .iter()
        .filter(|o| matches!(&o.state, ObservedState::Ineligible(r) if r.contains("unknown")))
        .count();
    assert_eq!(unknown, 2);
    // 1,001 ICCIDs of 19 digits in URLs under 7,000 bytes of values: 3 calls; 601 device ids: 1.
    assert_eq!(
        carrier.last_lookup_plan(),
        Some(LookupPlan::Batched { calls: 4 })
    );
    assert_eq!(count(&sim, "GET", "/api/1/links/cellular", 200).await, 3);
    assert_eq!(count(&sim, "GET", "/api/1/devices", 200).await, 1);
    // Devices come with their tags (conflicts with tag groups need them).
    assert!(
        observed
            .iter()
            .filter(|o| o.device_id.is_some_and(|d| (2001..2601).contains(&d)))
            .all(|o| !o.tags.is_empty())
    );
}

#[tokio::test]
async fn a_redirect_is_never_followed_so_credentials_stay_with_the_named_host() {
    // A carrier URL that redirects elsewhere, and the elsewhere: it must see no connection.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let target = format!("http://{}/api/1/devices", elsewhere.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { axum::response::Redirect::temporary(&target) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/1", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let carrier = connect(
        &account(Provider::Hologram, base),
        SecretString::from(API_KEY),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    let err = carrier.verify().await.unwrap_err();
    assert!(matches!(err, CarrierError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("307"), "{err}");
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the redirect was not followed"
    );
    server.abort();
}
