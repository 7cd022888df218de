//! DataQuota reconciles in process, against the fake carrier and the sandbox API server.

use std::sync::Arc;

use kube::api::Api;
use serde_json::json;

use super::reconcile;
use crate::api::DataQuota;
use crate::controller::fake_carrier::FakeCarrier;
use crate::controller::test_world::{ACCOUNT, TestWorld};
use crate::model::{ObservedState, QuotaReading, QuotaState};

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
    let sets = fake.quota_sets.lock().unwrap().clone();
    let volumes: Vec<(u64, f64)> = sets.iter().map(|(d, q)| (*d, q.volume_mb)).collect();
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
    let sets: Vec<u64> = fake
        .quota_sets
        .lock()
        .unwrap()
        .iter()
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(sets, [1]);
    let progress = status.progress.unwrap();
    assert!(
        progress.retry_device_ids.is_empty(),
        "not queued for a retry"
    );
    world.stop().await;
}
