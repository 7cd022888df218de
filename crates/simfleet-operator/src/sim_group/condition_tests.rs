//! What a SimGroup's conditions say: an empty selection is not success, and waiting for
//! approval, for the next rollout step and for the carrier are three different reasons.

use jiff::SignedDuration;

use super::tests::{Case, condition, now, sims};
use super::*;
use simfleet_api::conditions::{READY, RECONCILING, STALLED};
use simfleet_api::{ChangeGuard, Rollout};

#[test]
fn a_selection_that_matches_no_sim_is_stalled_not_ready() {
    let mut case = Case::new(SimState::Paused);
    case.spec.selector.tags = Some(vec!["smart-meterz".into()]);
    let status = case.plan(&[]).status(&case.previous);
    assert_eq!(condition(&status, READY).status, "False");
    assert_eq!(condition(&status, READY).reason, "NoSimsSelected");
    let stalled = condition(&status, STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "NoSimsSelected")
    );
    assert!(
        stalled.message.contains("tags smart-meterz"),
        "{}",
        stalled.message
    );
}

#[test]
fn a_selection_of_only_ineligible_sims_is_stalled_not_ready() {
    let case = Case::new(SimState::Paused);
    let observed = sims(3, ObservedState::Ineligible("unknown ICCID".into()));
    let status = case.plan(&observed).status(&case.previous);
    assert_eq!(condition(&status, READY).status, "False");
    assert_eq!(condition(&status, STALLED).reason, "NoEligibleSims");
}

#[test]
fn approval_rollout_interval_and_the_carrier_are_three_different_waits() {
    // Waiting for approval: nothing was sent, so it is not CarrierActionsPending.
    let mut case = Case::new(SimState::Paused);
    case.spec.guard = Some(ChangeGuard {
        max_changes_without_approval: 2,
    });
    let observed = sims(5, ObservedState::Active);
    let status = case.plan(&observed).status(&case.previous);
    let reconciling = condition(&status, RECONCILING);
    assert_eq!(reconciling.reason, "AwaitingApproval");
    assert!(
        reconciling.message.contains(&format!(
            "simfleet.io/approved-change={}",
            status.held_change.as_ref().unwrap().digest
        )),
        "{}",
        reconciling.message
    );

    // Between rollout actions: when the next one goes.
    let mut case = Case::new(SimState::Paused);
    case.spec.rollout = Some(Rollout {
        max_sims_per_action: Some(2),
        interval: Some("1m".parse().unwrap()),
    });
    let mut plan = case.plan(&observed);
    plan.record_submission("job-1".into(), StateChange::Pause, 2, &[]);
    case.previous = plan.status(&case.previous);
    // Waiting for the carrier, right after the submit.
    assert_eq!(
        condition(&case.previous, RECONCILING).reason,
        "CarrierActionsPending"
    );
    case.now = now().checked_add(SignedDuration::from_secs(20)).unwrap();
    let mut observed = observed.clone();
    for sim in observed.iter_mut().take(2) {
        sim.state = ObservedState::Paused;
    }
    let status = case.plan(&observed).status(&case.previous);
    let reconciling = condition(&status, RECONCILING);
    assert_eq!(reconciling.reason, "RolloutInterval");
    assert!(
        reconciling.message.contains("3 SIMs still to change")
            && reconciling.message.contains("2026-06-01T12:01:00Z")
            && reconciling.message.contains(
                "at one action of 2 SIMs each 1m, the last goes at about 2026-06-01T12:02:00Z (2 actions in all)"
            ),
        "{}",
        reconciling.message
    );
}
