//! The planner in observe-only management: nothing submitted, what would be submitted shown.

use super::*;
use simfleet_api::conditions::READY;

#[test]
fn an_observe_only_plan_submits_nothing_and_reports_the_actions_it_would_submit() {
    let mut case = Case::new(SimState::Paused);
    case.carrier_limit = 1_000;
    case.spec.guard = Some(ChangeGuard {
        max_changes_without_approval: 100,
    });
    let mut observed = sims(2_500, ObservedState::Active);
    observed.extend((2_501..=2_600).map(|d| sim(d, ObservedState::Paused)));
    let mut plan = case.plan(&observed);
    plan.observe_only();
    assert!(plan.actions.is_empty(), "nothing to submit");
    assert_eq!(plan.hold, None, "not held: nothing would be sent anyway");
    let status = plan.status(&case.previous);
    let sizes: Vec<(StateChange, u32)> = status
        .would_submit
        .iter()
        .map(|a| (a.action, a.sims))
        .collect();
    assert_eq!(
        sizes,
        [
            (StateChange::Pause, 1_000),
            (StateChange::Pause, 1_000),
            (StateChange::Pause, 500)
        ]
    );
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ObserveOnly")
    );
    let reconciling = condition(&status, "Reconciling");
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("False", "ObserveOnly")
    );
    assert!(
        reconciling
            .message
            .contains("2,500 SIMs would change, in 3 carrier actions")
            && reconciling.message.contains("approved-generation"),
        "{}",
        reconciling.message
    );
    assert_eq!(condition(&status, "Stalled").status, "False");
    assert_eq!(status.counts.as_ref().unwrap().in_desired_state, 100);
    assert_eq!(
        plan.requeue_after(),
        RESYNC,
        "no fast requeue for work never done"
    );
}

#[test]
fn an_observe_only_group_whose_sims_match_is_ready() {
    let case = Case::new(SimState::Paused);
    let mut plan = case.plan(&sims(50, ObservedState::Paused));
    plan.observe_only();
    let status = plan.status(&case.previous);
    assert!(status.would_submit.is_empty());
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Converged")
    );
    assert!(
        condition(&status, "Reconciling")
            .message
            .contains("the carrier matches the spec"),
    );
}

#[test]
fn a_managed_plan_reports_no_would_submit() {
    let case = Case::new(SimState::Paused);
    let plan = case.plan(&sims(10, ObservedState::Active));
    assert_eq!(plan.actions.len(), 1);
    assert!(plan.status(&case.previous).would_submit.is_empty());
}
