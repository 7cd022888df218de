//! DataQuota reconciles in process, against the fake carrier and the sandbox API server.

use std::sync::Arc;

use kube::api::Api;
use serde_json::json;

use super::reconcile;
use crate::controller::fake_carrier::FakeCarrier;
use crate::controller::test_world::{ACCOUNT, TestWorld};
use simfleet_api::DataQuota;
use simfleet_api::model::{ObservedState, QuotaReading, QuotaState};

async fn pass(world: &TestWorld, name: &str) -> DataQuota {
    let api: Api<DataQuota> = world.api();
    let quota = api.get(name).await.unwrap();
    reconcile(Arc::new(quota), world.context.clone())
        .await
        .unwrap();
    api.get(name).await.unwrap()
}

fn left(volume_mb: f64) -> QuotaReading {
    QuotaReading {
        state: QuotaState::Active,
        volume_mb,
        expiry: Some("2030-01-01T00:00:00Z".parse().unwrap()),
        auto_refill: false,
        threshold_percentage: None,
        last_volume_added: Some(500.0),
    }
}

/// The devices the fake carrier was asked to set, in order.
fn set_devices(fake: &FakeCarrier) -> Vec<u64> {
    set_volumes(fake).into_iter().map(|(d, _)| d).collect()
}

/// Each quota set the fake carrier was asked for: the device and the volume.
fn set_volumes(fake: &FakeCarrier) -> Vec<(u64, f64)> {
    let sets = fake.quota_sets.lock().unwrap();
    sets.iter().map(|(d, q)| (*d, q.volume_mb)).collect()
}

fn ready(quota: &DataQuota) -> String {
    quota
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_top_up_is_applied_once_per_generation_across_resyncs_and_restarts() {
    let fake = FakeCarrier::with(&[
        (1, ObservedState::Active, &[]),
        (2, ObservedState::Active, &[]),
    ]);
    fake.quotas.lock().unwrap().insert(1, left(120.0));
    fake.quotas.lock().unwrap().insert(2, left(30.0));
    let mut world = TestWorld::start(fake.clone()).await;
    world
        .create::<DataQuota>("top-up", json!({"carrierRef": {"name": ACCOUNT}, "target": {"deviceIds": [1, 2]}, "volumeMB": 250, "mode": "TopUp", "expiry": {"after": "7d"}}))
        .await;
    pass(&world, "top-up").await;
    let quota = pass(&world, "top-up").await;
    let volumes = set_volumes(&fake);
    assert_eq!(volumes, [(1, 370.0), (2, 280.0)], "what was left, plus 250");
    assert_eq!(ready(&quota), "True");
    // A resync, and a new process: the same generation is not topped up again.
    pass(&world, "top-up").await;
    world.restart();
    pass(&world, "top-up").await;
    assert_eq!(fake.quota_sets.lock().unwrap().len(), 2);
    world.stop().await;
}

#[tokio::test]
async fn a_target_the_carrier_cannot_give_a_quota_is_ineligible_and_not_retried() {
    let fake = FakeCarrier::with(&[
        (1, ObservedState::Active, &[]),
        (2, ObservedState::Active, &[]),
    ]);
    fake.deleted.lock().unwrap().insert(2);
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<DataQuota>("pilot", json!({"carrierRef": {"name": ACCOUNT}, "target": {"deviceIds": [1, 2]}, "volumeMB": 100, "expiry": {"after": "30d"}}))
        .await;
    pass(&world, "pilot").await;
    let quota = pass(&world, "pilot").await;
    let status = quota.status.clone().unwrap();
    let counts = status.counts.unwrap();
    assert_eq!((counts.active, counts.ineligible), (1, 1), "{counts:?}");
    assert_eq!(
        ready(&quota),
        "True",
        "an ineligible target does not keep Ready false"
    );
    let sets = set_devices(&fake);
    assert_eq!(sets, [1]);
    let progress = status.progress.unwrap();
    assert!(
        progress.retry_device_ids.is_empty(),
        "not queued for a retry"
    );
    world.stop().await;
}

fn progress(quota: &DataQuota) -> simfleet_api::QuotaProgress {
    quota.status.clone().unwrap().progress.unwrap()
}

#[tokio::test]
async fn a_failed_set_is_listed_for_retry_and_set_at_the_next_pass() {
    let fake = FakeCarrier::with(&[
        (1, ObservedState::Active, &[]),
        (2, ObservedState::Active, &[]),
        (3, ObservedState::Active, &[]),
    ]);
    fake.failing_sets
        .lock()
        .unwrap()
        .push_back(simfleet_carrier::CarrierError::Transient {
            message: "503".into(),
            request_sent: false,
        });
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<DataQuota>("pilot", json!({"carrierRef": {"name": ACCOUNT}, "target": {"deviceIds": [1, 2, 3]}, "volumeMB": 100, "expiry": {"after": "30d"}}))
        .await;
    pass(&world, "pilot").await; // the finalizer
    let quota = pass(&world, "pilot").await;
    // The first set (device 1) failed: the others are set, and 1 waits for a retry.
    let set = set_devices(&fake);
    assert_eq!(set, [2, 3]);
    assert_eq!(progress(&quota).retry_device_ids, [1]);
    let counts = quota.status.clone().unwrap().counts.unwrap();
    assert_eq!(counts.failed, 1);
    assert_ne!(ready(&quota), "True");
    let quota = pass(&world, "pilot").await;
    let set = set_devices(&fake);
    assert_eq!(set, [2, 3, 1], "only the failed device is set again");
    assert!(progress(&quota).retry_device_ids.is_empty());
    assert_eq!(ready(&quota), "True");
    world.stop().await;
}

#[tokio::test]
async fn a_top_up_journaled_before_a_crash_is_sent_as_journaled_not_read_and_added_again() {
    let fake = FakeCarrier::with(&[
        (1, ObservedState::Active, &[]),
        (2, ObservedState::Active, &[]),
    ]);
    let world = TestWorld::start(fake.clone()).await;
    let quota = world
        .create::<DataQuota>("top-up", json!({"carrierRef": {"name": ACCOUNT}, "target": {"deviceIds": [1, 2]}, "volumeMB": 250, "mode": "TopUp", "expiry": {"at": "2030-01-01T00:00:00Z"}}))
        .await;
    // The last process journaled device 1's top-up (120 left + 250), sent it, and stopped
    // before it recorded the send: the carrier already holds 370.
    fake.quotas.lock().unwrap().insert(1, left(370.0));
    fake.quotas.lock().unwrap().insert(2, left(30.0));
    let api: Api<DataQuota> = world.api();
    let generation = quota.metadata.generation.unwrap();
    api.patch_status(
        "top-up",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"status": {"progress": {
            "generation": generation,
            "startedAt": "2026-11-01T00:00:00Z",
            "expiry": "2030-01-01T00:00:00Z",
            "topUpsInFlight": [{"deviceId": 1, "volumeMB": 370.0}],
        }}})),
    )
    .await
    .unwrap();
    pass(&world, "top-up").await; // the finalizer
    let quota = pass(&world, "top-up").await;
    let volumes = set_volumes(&fake);
    assert_eq!(
        volumes,
        [(1, 370.0), (2, 280.0)],
        "device 1 as journaled (not 370 + 250), device 2 topped up once"
    );
    let progress = progress(&quota);
    assert!(progress.top_ups_in_flight.is_empty());
    assert!(progress.complete);
    assert_eq!(ready(&quota), "True");
    world.stop().await;
}

#[tokio::test]
async fn an_observe_only_quota_sets_nothing_and_counts_what_it_would_change() {
    let fake = FakeCarrier::with(&[
        (1, ObservedState::Active, &[]),
        (2, ObservedState::Active, &[]),
    ]);
    fake.quotas.lock().unwrap().insert(1, left(120.0));
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<DataQuota>("watch", json!({"carrierRef": {"name": ACCOUNT}, "target": {"deviceIds": [1, 2]}, "volumeMB": 100, "expiry": {"after": "30d"}, "management": "Observe"}))
        .await;
    pass(&world, "watch").await; // the finalizer
    let quota = pass(&world, "watch").await;
    assert!(fake.quota_sets.lock().unwrap().is_empty(), "nothing is set");
    let status = quota.status.clone().unwrap();
    let counts = status.counts.unwrap();
    assert_eq!(counts.targeted, 2);
    let message = status
        .conditions
        .iter()
        .map(|c| format!("{} {} {}", c.type_, c.reason, c.message))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(message.contains("2 devices"), "{message}");
    world.stop().await;
}
