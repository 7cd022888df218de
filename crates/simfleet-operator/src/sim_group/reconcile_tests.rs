//! SimGroup reconciles in process, against the fake carrier and the sandbox API server: each
//! path of `reconcile`, one pass at a time.

use std::sync::{Arc, Mutex};

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::reconcile;
use crate::controller::fake_carrier::FakeCarrier;
use crate::controller::test_world::{ACCOUNT, TestWorld};
use simfleet_api::model::ObservedState;
use simfleet_api::{ProblemReason, SimGroup, StateChange};
use simfleet_carrier::CarrierError;

const ACTIVE: ObservedState = ObservedState::Active;

fn sims(ids: &[u64], state: ObservedState) -> Vec<(u64, ObservedState, &'static [&'static str])> {
    ids.iter()
        .map(|id| (*id, state.clone(), &["t"][..]))
        .collect()
}

/// One reconcile pass of `name` as the controller would run it.
async fn pass(world: &TestWorld, name: &str) -> SimGroup {
    let api: Api<SimGroup> = world.api();
    let group = api.get(name).await.unwrap();
    reconcile(Arc::new(group), world.context.clone())
        .await
        .unwrap();
    api.get(name).await.unwrap()
}

/// Passes until the group has a status for its generation (the first adds the finalizer).
async fn settle(world: &TestWorld, name: &str) -> SimGroup {
    pass(world, name).await;
    pass(world, name).await
}

fn condition(group: &SimGroup, type_: &str) -> (String, String) {
    group
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default()
}

fn pending_ids(group: &SimGroup) -> Vec<String> {
    group
        .status
        .as_ref()
        .map(|s| s.pending_actions.iter().map(|a| a.id.clone()).collect())
        .unwrap_or_default()
}

fn group_spec(state: &str) -> serde_json::Value {
    json!({"carrierRef": {"name": ACCOUNT}, "state": state, "selector": {"tags": ["t"]}})
}

#[tokio::test]
async fn each_action_id_is_in_status_before_the_next_submit() {
    let fake = FakeCarrier::with(&sims(&[1, 2, 3, 4, 5], ACTIVE));
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<SimGroup>("fleet", group_spec("Paused"))
        .await;
    // At each submit, what status lists.
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let (api, record) = (world.api::<SimGroup>(), seen.clone());
    *fake.on_submit.lock().unwrap() = Some(Box::new(move |_| {
        let (api, record) = (api.clone(), record.clone());
        Box::pin(async move {
            let group = api.get("fleet").await.unwrap();
            record.lock().unwrap().push(pending_ids(&group));
        })
    }));
    let group = settle(&world, "fleet").await;
    let received = fake.received();
    assert_eq!(received.len(), 3, "5 SIMs in actions of 2: {received:?}");
    let seen = seen.lock().unwrap().clone();
    for (i, listed) in seen.iter().enumerate() {
        let before: Vec<String> = received[..i].iter().map(|r| r.id.clone()).collect();
        assert_eq!(listed, &before, "submit {i} saw status list {listed:?}");
    }
    assert_eq!(pending_ids(&group).len(), 3);
    world.stop().await;
}

#[tokio::test]
async fn nothing_still_pending_is_submitted_again_after_a_restart() {
    let fake = FakeCarrier::with(&sims(&[1, 2, 3], ACTIVE));
    let mut world = TestWorld::start(fake.clone()).await;
    world
        .create::<SimGroup>("fleet", group_spec("Paused"))
        .await;
    settle(&world, "fleet").await;
    assert_eq!(fake.received().len(), 2);
    world.restart();
    let group = pass(&world, "fleet").await;
    assert_eq!(
        fake.received().len(),
        2,
        "the pending SIMs are not sent again"
    );
    assert_eq!(pending_ids(&group).len(), 2, "the actions stay listed");
    fake.confirm_all();
    let group = pass(&world, "fleet").await;
    assert_eq!(condition(&group, "Ready").0, "True");
    assert!(pending_ids(&group).is_empty());
    assert_eq!(fake.received().len(), 2);
    world.stop().await;
}

#[tokio::test]
async fn a_sim_claimed_by_a_group_wanting_the_opposite_state_is_left_alone() {
    let fake = FakeCarrier::with(&sims(&[1, 2, 3], ACTIVE));
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<SimGroup>("keep-on", json!({"carrierRef": {"name": ACCOUNT}, "state": "Active", "selector": {"deviceIds": [1, 2]}}))
        .await;
    settle(&world, "keep-on").await;
    world
        .create::<SimGroup>("switch-off", json!({"carrierRef": {"name": ACCOUNT}, "state": "Paused", "selector": {"deviceIds": [2, 3]}}))
        .await;
    let group = settle(&world, "switch-off").await;
    let counts = group.status.as_ref().unwrap().counts.clone().unwrap();
    assert_eq!(counts.conflicting, 1, "{counts:?}");
    let submitted: Vec<u64> = fake
        .received()
        .into_iter()
        .flat_map(|r| r.devices)
        .collect();
    assert_eq!(submitted, [3], "device 2 is never changed");
    world.stop().await;
}

#[tokio::test]
async fn the_approval_guard_holds_a_large_change_until_the_generation_is_approved() {
    let fake = FakeCarrier::with(&sims(&[1, 2, 3, 4, 5], ACTIVE));
    let world = TestWorld::start(fake.clone()).await;
    let mut spec = group_spec("Paused");
    spec["guard"] = json!({"maxChangesWithoutApproval": 2});
    world.create::<SimGroup>("fleet", spec).await;
    let held = settle(&world, "fleet").await;
    assert!(fake.received().is_empty());
    assert_eq!(
        condition(&held, "Stalled"),
        ("True".into(), "ApprovalRequired".into())
    );
    world
        .api::<SimGroup>()
        .patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"simfleet.io/approved-generation": "1"}}}),
            ),
        )
        .await
        .unwrap();
    pass(&world, "fleet").await;
    let submitted: usize = fake.received().iter().map(|r| r.devices.len()).sum();
    assert_eq!(submitted, 5);
    world.stop().await;
}

#[tokio::test]
async fn a_sim_paused_by_the_system_is_counted_and_not_resumed() {
    let mut held = sims(&[1], ObservedState::Paused);
    held.extend(sims(&[2], ObservedState::PausedBySystem));
    let fake = FakeCarrier::with(&held);
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<SimGroup>("fleet", group_spec("Active"))
        .await;
    let group = settle(&world, "fleet").await;
    let submitted: Vec<u64> = fake
        .received()
        .into_iter()
        .flat_map(|r| r.devices)
        .collect();
    assert_eq!(submitted, [1]);
    let status = group.status.unwrap();
    assert_eq!(status.counts.unwrap().paused_by_system, 1);
    assert!(
        status
            .problem_sims
            .iter()
            .any(|p| p.device_id.as_deref() == Some("2")
                && p.reason == ProblemReason::PausedBySystem)
    );
    world.stop().await;
}

/// A converged group whose SIM 1 is then paused at the carrier's dashboard, reconciled once
/// before its drift check is due (nothing is read) and once when it is.
async fn drifted(drift: &str) -> (TestWorld, Arc<FakeCarrier>, SimGroup) {
    let fake = FakeCarrier::with(&sims(&[1, 2], ACTIVE));
    let world = TestWorld::start(fake.clone()).await;
    let mut spec = group_spec("Active");
    spec["drift"] = json!(drift);
    spec["driftCheck"] = json!("5m");
    world.create::<SimGroup>("fleet", spec).await;
    let group = settle(&world, "fleet").await;
    assert_eq!(condition(&group, "Ready").0, "True");
    fake.force(1, ObservedState::Paused);
    // An unrelated wake-up before the check is due reads nothing and finds nothing.
    world.advance(jiff::SignedDuration::from_mins(4));
    let early = pass(&world, "fleet").await;
    assert_eq!(
        early.status, group.status,
        "no read before the drift check is due"
    );
    world.advance(jiff::SignedDuration::from_mins(1));
    let group = pass(&world, "fleet").await;
    (world, fake, group)
}

fn drift_entry(group: &SimGroup) -> simfleet_api::ProblemSim {
    let status = group.status.clone().unwrap();
    assert_eq!(status.counts.unwrap().drifted, 1);
    status
        .problem_sims
        .into_iter()
        .find(|p| p.device_id.as_deref() == Some("1") && p.reason == ProblemReason::Drift)
        .expect("a Drift entry for SIM 1")
}

#[tokio::test]
async fn drift_is_only_reported_with_drift_report() {
    let (world, fake, group) = drifted("Report").await;
    assert!(fake.received().is_empty(), "nothing is changed back");
    let entry = drift_entry(&group);
    assert!(
        entry
            .message
            .contains("Paused at the carrier, the spec wants Active")
            && entry.message.contains("drift: Report leaves it so"),
        "{}",
        entry.message
    );
    assert_eq!(
        condition(&group, "Stalled"),
        ("True".into(), "Drift".into())
    );
    // Reported, and still never corrected at the next checks.
    world.advance(jiff::SignedDuration::from_mins(5));
    let group = pass(&world, "fleet").await;
    assert!(fake.received().is_empty());
    drift_entry(&group);
    world.stop().await;
}

#[tokio::test]
async fn drift_is_corrected_by_default() {
    let (world, fake, group) = drifted("Correct").await;
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].change, received[0].devices.clone()),
        (StateChange::Resume, vec![1])
    );
    let entry = drift_entry(&group);
    assert!(
        entry.message.contains("drift: Correct changes it back"),
        "{}",
        entry.message
    );
    world.stop().await;
}

#[tokio::test]
async fn drift_is_drift_even_when_something_else_keeps_the_group_from_ready() {
    // SIM 3 is in a state simfleet does not know (failed, so the group is never Ready); a SIM
    // paused in the dashboard after the change was carried out is still drift, not a change.
    let fake = FakeCarrier::with(&sims(&[1, 2, 3], ACTIVE));
    fake.force(3, ObservedState::Unknown("TEST-HOLD".into()));
    let world = TestWorld::start(fake.clone()).await;
    let mut spec = group_spec("Active");
    spec["drift"] = json!("Report");
    world.create::<SimGroup>("fleet", spec).await;
    let group = settle(&world, "fleet").await;
    assert_eq!(condition(&group, "Ready").0, "False");
    fake.force(1, ObservedState::Paused);
    world.advance(jiff::SignedDuration::from_mins(10));
    let group = pass(&world, "fleet").await;
    assert!(fake.received().is_empty(), "drift: Report never submits");
    drift_entry(&group);
    world.stop().await;
}

#[tokio::test]
async fn a_deleted_group_with_on_delete_restore_puts_its_sims_back() {
    let fake = FakeCarrier::with(&sims(&[1, 2], ACTIVE));
    let world = TestWorld::start(fake.clone()).await;
    let mut spec = group_spec("Paused");
    spec["onDelete"] = json!("Restore");
    world.create::<SimGroup>("fleet", spec).await;
    settle(&world, "fleet").await;
    fake.confirm_all();
    pass(&world, "fleet").await;
    let api: Api<SimGroup> = world.api();
    api.delete("fleet", &DeleteParams::default()).await.unwrap();
    // Deleted right after it converged (this process still remembers its actions as in
    // flight): the finalizer holds the group while the SIMs go back, and the restore is
    // confirmed by observation, then the group goes.
    let group = api.get("fleet").await.unwrap();
    let _ = reconcile(Arc::new(group), world.context.clone()).await;
    let restored: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.change == StateChange::Resume)
        .flat_map(|r| r.devices)
        .collect();
    assert_eq!(restored, [1, 2]);
    fake.confirm_all();
    if let Some(group) = api.get_opt("fleet").await.unwrap() {
        let _ = reconcile(Arc::new(group), world.context.clone()).await;
    }
    assert!(
        api.get_opt("fleet").await.unwrap().is_none(),
        "deleted once restored"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_sim_the_carrier_refuses_is_reported_ineligible() {
    let fake = FakeCarrier::with(&sims(&[1, 2, 3], ACTIVE));
    fake.refusing.lock().unwrap().insert(2);
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<SimGroup>("fleet", group_spec("Paused"))
        .await;
    let group = settle(&world, "fleet").await;
    let status = group.status.unwrap();
    assert!(
        status
            .problem_sims
            .iter()
            .any(|p| p.device_id.as_deref() == Some("2") && p.reason == ProblemReason::Ineligible),
        "{:?}",
        status.problem_sims
    );
    assert_eq!(status.counts.unwrap().ineligible, 1);
    world.stop().await;
}

#[tokio::test]
async fn after_a_failed_submit_nothing_more_is_sent_until_the_next_observation() {
    let fake = FakeCarrier::with(&sims(&[1, 2, 3, 4, 5], ACTIVE));
    fake.failing_submits
        .lock()
        .unwrap()
        .push_back(CarrierError::Transient {
            message: "HTTP 503".into(),
            request_sent: true,
        });
    let world = TestWorld::start(fake.clone()).await;
    world
        .create::<SimGroup>("fleet", group_spec("Paused"))
        .await;
    settle(&world, "fleet").await;
    assert!(
        fake.received().is_empty(),
        "the failed submit stops the pass"
    );
    let observed = fake.observations.load(std::sync::atomic::Ordering::SeqCst);
    pass(&world, "fleet").await;
    assert!(fake.observations.load(std::sync::atomic::Ordering::SeqCst) > observed);
    let submitted: usize = fake.received().iter().map(|r| r.devices.len()).sum();
    assert_eq!(submitted, 5, "the next pass observes, then submits");
    world.stop().await;
}
