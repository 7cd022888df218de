//! The planner's rules, one scenario each.

use jiff::{SignedDuration, Timestamp};

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use simfleet_api::conditions::{READY, RECONCILING, STALLED};
use simfleet_api::{ChangeGuard, LocalObjectRef, Rollout, SimSelector};

pub(super) fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

pub(super) fn spec(state: SimState) -> SimGroupSpec {
    SimGroupSpec {
        carrier_ref: LocalObjectRef {
            name: "simulator".into(),
        },
        state,
        selector: SimSelector {
            tags: Some(vec!["t".into()]),
            ..Default::default()
        },
        rollout: None,
        system_paused: SystemPausedPolicy::Report,
        awaiting_connection: Default::default(),
        drift_check: None,
        drift: DriftPolicy::Correct,
        on_delete: Default::default(),
        management: Default::default(),
        guard: None,
    }
}

pub(super) fn sim(device: u64, state: ObservedState) -> SimObservation {
    SimObservation {
        iccid: format!("89445{device:014}"),
        device_id: Some(device),
        sim_id: None,
        state,
        tags: Vec::new(),
    }
}

pub(super) fn sims(n: u64, state: ObservedState) -> Vec<SimObservation> {
    (1..=n).map(|d| sim(d, state.clone())).collect()
}

/// Plans one reconcile with the given previous status, in-flight set and claims.
pub(super) struct Case {
    pub(super) spec: SimGroupSpec,
    pub(super) generation: i64,
    pub(super) approval: ApprovalAnnotations,
    pub(super) previous: SimGroupStatus,
    pub(super) in_flight: InFlight,
    pub(super) carrier_limit: usize,
    pub(super) one_action_at_a_time: bool,
    pub(super) carrier_statuses: Vec<ActionStatus>,
    pub(super) now: Timestamp,
}

impl Case {
    pub(super) fn new(state: SimState) -> Self {
        Self {
            spec: spec(state),
            generation: 1,
            approval: ApprovalAnnotations::default(),
            previous: SimGroupStatus::default(),
            in_flight: InFlight::default(),
            carrier_limit: 10_000,
            one_action_at_a_time: false,
            carrier_statuses: Vec::new(),
            now: now(),
        }
    }

    fn plan_with(&self, observed: &[SimObservation], claims: &dyn Claims) -> Plan {
        let mut planner = SimGroupPlanner::new(PlanContext {
            spec: &self.spec,
            generation: self.generation,
            approval: &self.approval,
            previous: &self.previous,
            carrier_limit: self.carrier_limit,
            one_action_at_a_time: self.one_action_at_a_time,
            poll_cost: PollCost::Observation,
            carrier_statuses: &self.carrier_statuses,
            in_flight: &self.in_flight,
            claims,
            now: self.now,
        });
        // Pages of 1,000, as a carrier client streams them.
        for page in observed.chunks(1000) {
            planner.observe(page);
        }
        planner.finish()
    }

    pub(super) fn plan(&self, observed: &[SimObservation]) -> Plan {
        self.plan_with(observed, &NoClaims)
    }
}

pub(super) fn condition<'a>(status: &'a SimGroupStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

fn action(id: &str, sims: u32, minutes_ago: i64) -> PendingAction {
    crate::sim_group::pending::tests::pause_submitted(id, sims, minutes_ago, now())
}

#[test]
fn a_converged_group_plans_nothing_and_is_ready() {
    let case = Case::new(SimState::Active);
    let plan = case.plan(&sims(5, ObservedState::Active));
    assert!(plan.actions.is_empty());
    let status = plan.status(&case.previous);
    assert_eq!(condition(&status, READY).status, "True");
    assert_eq!(
        condition(&status, READY).message,
        "5 of 5 eligible SIMs Active"
    );
    assert_eq!(condition(&status, RECONCILING).status, "False");
    assert_eq!(condition(&status, STALLED).status, "False");
    assert_eq!(plan.requeue_after(), RESYNC);
}

#[test]
fn a_large_change_is_split_by_the_carrier_limit() {
    let case = Case::new(SimState::Paused);
    let mut plan = case.plan(&sims(25_000, ObservedState::Active));
    let sizes: Vec<usize> = plan.actions.iter().map(|a| a.sims.len()).collect();
    assert_eq!(sizes, [10_000, 10_000, 5_000]);
    assert!(plan.actions.iter().all(|a| a.change == StateChange::Pause));
    for (i, a) in plan.actions.clone().iter().enumerate() {
        plan.record_submission(format!("job-{i}"), a.change, a.sims.len(), &[]);
    }
    let status = plan.status(&case.previous);
    assert_eq!(status.pending_actions.len(), 3);
    let reconciling = condition(&status, RECONCILING);
    assert_eq!(reconciling.status, "True");
    assert_eq!(
        reconciling.message,
        "25,000 of 25,000 SIMs awaiting carrier confirmation; actions job-0, job-1, job-2"
    );
    assert_eq!(condition(&status, READY).status, "False");
}

#[test]
fn a_rollout_sends_one_action_per_interval() {
    let mut case = Case::new(SimState::Active);
    case.spec.rollout = Some(Rollout {
        max_sims_per_action: Some(500),
        interval: Some("1m".parse().unwrap()),
    });
    let observed = sims(2_000, ObservedState::Paused);
    let mut plan = case.plan(&observed);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].sims.len(), 500);
    plan.record_submission("job-1".into(), StateChange::Resume, 500, &[]);
    case.previous = plan.status(&case.previous);
    // 30 s later: the first 500 show as pending; the rest wait for the interval.
    case.now = now().checked_add(SignedDuration::from_secs(30)).unwrap();
    let mut observed: Vec<SimObservation> = observed.clone();
    for s in observed.iter_mut().take(500) {
        s.state = ObservedState::Pending(StateChange::Resume);
    }
    let plan = case.plan(&observed);
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.hold,
        Some(Hold::Interval {
            until: now().checked_add(SignedDuration::from_mins(1)).unwrap()
        })
    );
    assert_eq!(plan.requeue_after(), Duration::from_secs(30));
    // After the interval the next batch goes, and never the pending SIMs again.
    case.now = now().checked_add(SignedDuration::from_secs(61)).unwrap();
    let plan = case.plan(&observed);
    assert_eq!(plan.actions.len(), 1);
    assert!(plan.actions[0].sims.iter().all(|s| s.device_id > 500));
}

#[test]
fn a_long_rollout_interval_is_waited_for_a_resync_at_a_time() {
    let mut case = Case::new(SimState::Active);
    case.spec.rollout = Some(Rollout {
        max_sims_per_action: Some(500),
        interval: Some("9999d".parse().unwrap()),
    });
    let observed = sims(1_000, ObservedState::Paused);
    let mut plan = case.plan(&observed);
    plan.record_submission("job-1".into(), StateChange::Resume, 500, &[]);
    case.previous = plan.status(&case.previous);
    case.now = now().checked_add(SignedDuration::from_secs(30)).unwrap();
    let plan = case.plan(&observed);
    assert!(matches!(plan.hold, Some(Hold::Interval { .. })));
    // Not 27 years: kube-runtime's scheduler refuses delays beyond about two years.
    assert_eq!(plan.requeue_after(), RESYNC);
}

#[test]
fn sims_pending_at_the_carrier_or_in_flight_are_never_resubmitted() {
    let mut case = Case::new(SimState::Paused);
    case.in_flight.remember("p", StateChange::Pause, 3..=4);
    // Submitted before a restart: listed in status, not remembered.
    case.previous.pending_actions = vec![action("before-restart", 2, 0)];
    let observed = vec![
        sim(1, ObservedState::Pending(StateChange::Pause)),
        sim(2, ObservedState::Pending(StateChange::Pause)),
        sim(3, ObservedState::Active),
        sim(4, ObservedState::Active),
        sim(5, ObservedState::Active),
    ];
    let plan = case.plan(&observed);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(
        plan.actions[0].sims,
        [SimTarget {
            device_id: 5,
            sim_id: None
        }]
    );
    assert_eq!(plan.status(&case.previous).counts.unwrap().pending, 4);
}

#[test]
fn sims_pending_in_another_groups_action_are_not_this_groups_pending() {
    // Another group's job holds SIMs 1 and 2 (toward Paused) and SIMs 3 and 4 (toward Active);
    // this Paused group has no action of its own.
    let case = Case::new(SimState::Paused);
    let observed = vec![
        sim(1, ObservedState::Pending(StateChange::Pause)),
        sim(2, ObservedState::Pending(StateChange::Pause)),
        sim(3, ObservedState::Pending(StateChange::Resume)),
        sim(4, ObservedState::Pending(StateChange::Resume)),
        sim(5, ObservedState::Paused),
    ];
    let plan = case.plan(&observed);
    assert!(
        plan.actions.is_empty(),
        "the carrier locks a SIM while it changes"
    );
    let status = plan.status(&case.previous);
    let counts = status.counts.as_ref().unwrap();
    assert_eq!(counts.pending, 0, "no action of this group holds them");
    assert_eq!(
        counts.in_desired_state, 3,
        "heading where this group wants them"
    );
    assert!(status.pending_actions.is_empty());
    let ready = condition(&status, READY);
    assert_eq!(ready.status, "False", "two SIMs still to change");
}

#[test]
fn pending_actions_are_confirmed_oldest_first_by_observed_counts() {
    let mut case = Case::new(SimState::Paused);
    case.previous.pending_actions = vec![action("old", 100, 20), action("new", 50, 10)];
    let case = case;
    let keep = |pending: u64| {
        let mut observed = sims(pending, ObservedState::Pending(StateChange::Pause));
        observed.extend((pending + 1..=150).map(|d| sim(d, ObservedState::Paused)));
        let plan = case.plan(&observed);
        plan.status(&case.previous)
            .pending_actions
            .iter()
            .map(|a| a.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keep(120), ["old", "new"]);
    assert_eq!(keep(40), ["new"]);
    assert!(keep(0).is_empty());
}

#[test]
fn an_action_unconfirmed_for_24_hours_stalls_the_group_naming_it() {
    let mut case = Case::new(SimState::Paused);
    case.previous.pending_actions = vec![action("job-77", 3, 25 * 60)];
    let plan = case.plan(&sims(3, ObservedState::Pending(StateChange::Pause)));
    let status = plan.status(&case.previous);
    let stalled = condition(&status, STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ActionUnconfirmed")
    );
    assert!(stalled.message.contains("job-77"), "{}", stalled.message);
}

#[test]
fn system_paused_sims_are_reported_unless_the_group_says_resume() {
    let mut case = Case::new(SimState::Active);
    let observed = vec![
        sim(1, ObservedState::PausedBySystem),
        sim(2, ObservedState::Active),
    ];
    let plan = case.plan(&observed);
    assert!(plan.actions.is_empty());
    let status = plan.status(&case.previous);
    assert_eq!(status.problem_sims[0].reason, ProblemReason::PausedBySystem);
    assert_eq!(status.counts.as_ref().unwrap().paused_by_system, 1);
    // The carrier's exceptions do not keep the group from Ready, nor ask a human: they are
    // counted, sampled and named in Ready's message.
    let stalled = condition(&status, STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("False", "InDesiredState")
    );
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Converged")
    );
    assert!(
        ready
            .message
            .contains("1 paused by the carrier's system and left so"),
        "{}",
        ready.message
    );
    case.spec.system_paused = SystemPausedPolicy::Resume;
    let plan = case.plan(&observed);
    assert_eq!(
        plan.actions[0].sims,
        [SimTarget {
            device_id: 1,
            sim_id: None
        }]
    );
    assert_eq!(plan.actions[0].change, StateChange::Resume);
    // A paused group counts a system-paused SIM as paused.
    let plan = Case::new(SimState::Paused).plan(&observed[..1]);
    assert!(plan.actions.is_empty());
    assert_eq!(
        condition(&plan.status(&SimGroupStatus::default()), READY).status,
        "True"
    );
}

#[test]
fn ineligible_sims_are_reported_once_and_do_not_block_ready() {
    let case = Case::new(SimState::Active);
    let observed = vec![
        sim(1, ObservedState::Active),
        sim(2, ObservedState::Ineligible("deactivated (DEAD)".into())),
    ];
    let plan = case.plan(&observed);
    assert!(plan.actions.is_empty());
    let status = plan.status(&case.previous);
    assert_eq!(condition(&status, READY).status, "True");
    assert_eq!(
        condition(&status, READY).message,
        "1 of 1 eligible SIM Active; 1 ineligible (see problemSims)"
    );
    assert_eq!(status.problem_sims[0].reason, ProblemReason::Ineligible);
}

#[test]
fn unknown_states_are_failures_never_success() {
    let case = Case::new(SimState::Active);
    let plan = case.plan(&[sim(1, ObservedState::Unknown("HIBERNATE".into()))]);
    assert!(plan.actions.is_empty());
    let status = plan.status(&case.previous);
    assert_eq!(status.counts.as_ref().unwrap().failed, 1);
    assert_eq!(condition(&status, READY).status, "False");
}

#[test]
fn drift_after_convergence_is_corrected_or_only_reported() {
    let mut case = Case::new(SimState::Paused);
    let converged = case
        .plan(&sims(3, ObservedState::Paused))
        .status(&case.previous);
    case.previous = converged;
    let drifted = vec![
        sim(1, ObservedState::Active),
        sim(2, ObservedState::Paused),
        sim(3, ObservedState::Paused),
    ];
    let plan = case.plan(&drifted);
    assert_eq!(
        plan.actions[0].sims.len(),
        1,
        "drift: Correct changes it back"
    );
    assert!(plan.corrects_drift, "not a first claim (restore record)");
    case.spec.drift = DriftPolicy::Report;
    let plan = case.plan(&drifted);
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.status(&case.previous).problem_sims[0].reason,
        ProblemReason::Drift
    );
    // A new generation is a new rollout, not drift.
    case.generation = 2;
    let plan = case.plan(&drifted);
    assert_eq!(plan.actions.len(), 1);
    assert!(!plan.corrects_drift);
}

struct OtherGroup;

impl Claims for OtherGroup {
    fn claimed_by(&self, sim: &SimObservation) -> Option<(String, SimState)> {
        (sim.device_id == Some(1)).then(|| ("keep-alive".to_owned(), SimState::Active))
    }
}

#[test]
fn a_sim_claimed_with_the_opposite_state_is_a_conflict_left_alone() {
    let case = Case::new(SimState::Paused);
    let plan = case.plan_with(&sims(2, ObservedState::Active), &OtherGroup);
    assert_eq!(
        plan.actions[0].sims,
        [SimTarget {
            device_id: 2,
            sim_id: None
        }]
    );
    let status = plan.status(&case.previous);
    assert_eq!(status.counts.as_ref().unwrap().conflicting, 1);
    assert!(status.problem_sims[0].message.contains("keep-alive"));
    assert_eq!(condition(&status, STALLED).reason, "Conflict");
    // The same state is no conflict.
    let plan = Case::new(SimState::Active).plan_with(&sims(2, ObservedState::Paused), &OtherGroup);
    assert_eq!(plan.actions[0].sims.len(), 2);
    // A SIM in flight is a conflict too.
    let plan = case.plan_with(
        &sims(1, ObservedState::Pending(StateChange::Pause)),
        &OtherGroup,
    );
    assert_eq!(plan.status(&case.previous).counts.unwrap().conflicting, 1);
    // A SIM already in this group's state is still a conflict: both groups report it.
    let plan = case.plan_with(&sims(2, ObservedState::Paused), &OtherGroup);
    let status = plan.status(&case.previous);
    assert_eq!(status.counts.as_ref().unwrap().conflicting, 1);
    assert_eq!(condition(&status, READY).status, "False");
}

#[test]
fn the_approval_guard_holds_large_changes_until_the_generation_is_approved() {
    let mut case = Case::new(SimState::Active);
    case.generation = 4;
    case.spec.guard = Some(ChangeGuard {
        max_changes_without_approval: 1000,
    });
    let observed = sims(1500, ObservedState::Paused);
    let plan = case.plan(&observed);
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.hold,
        Some(Hold::ApprovalRequired {
            changes: 1500,
            limit: 1000
        })
    );
    let status = plan.status(&case.previous);
    let stalled = condition(&status, STALLED);
    assert_eq!(stalled.reason, "ApprovalRequired");
    let digest = status.held_change.as_ref().unwrap().digest.clone();
    assert!(
        stalled
            .message
            .contains(&format!("simfleet.io/approved-change={digest}"))
            && stalled
                .message
                .contains("simfleet.io/approved-generation=4"),
        "{}",
        stalled.message
    );
    // The change is shown held at generation 4: approvals are judged against it.
    case.previous = status;
    case.approval.generation = Some("3".into());
    assert!(
        case.plan(&observed).actions.is_empty(),
        "an older approval does not count"
    );
    case.approval.generation = Some("4".into());
    assert_eq!(case.plan(&observed).actions[0].sims.len(), 1500);
    case.approval.generation = None;
    case.approval.change = Some(digest);
    assert_eq!(
        case.plan(&observed).actions[0].sims.len(),
        1500,
        "approved by its content"
    );
    assert!(
        case.plan(&observed[..1200]).actions.is_empty(),
        "another change is not approved by that digest"
    );
    // Small changes pass without approval.
    case.approval = ApprovalAnnotations::default();
    assert_eq!(case.plan(&observed[..1000]).actions.len(), 1);
}

#[test]
fn refusals_become_failures_or_ineligible_and_transient_ones_are_retried_soon() {
    let case = Case::new(SimState::Paused);
    let mut plan = case.plan(&sims(4, ObservedState::Active));
    let refused = [
        Refusal {
            device_id: 1,
            reason: "device is deactivated (DEAD)".into(),
            kind: RefusalKind::Failed,
        },
        Refusal {
            device_id: 2,
            reason: "HTTP 503".into(),
            kind: RefusalKind::Retryable,
        },
        Refusal {
            device_id: 3,
            reason: "item 0: endpoint 3 is deleted and cannot change status".into(),
            kind: RefusalKind::Ineligible,
        },
    ];
    plan.record_submission("job-1".into(), StateChange::Pause, 1, &refused);
    let status = plan.status(&case.previous);
    let counts = status.counts.as_ref().unwrap();
    assert_eq!(counts.failed, 1);
    assert_eq!(counts.ineligible, 1);
    assert!(status.problem_sims[0].message.contains("DEAD"));
    assert_eq!(status.problem_sims[1].reason, ProblemReason::Ineligible);
    assert!(
        status.problem_sims[1]
            .message
            .contains("endpoint 3 is deleted")
    );
    assert_eq!(plan.requeue_after(), Duration::from_secs(5));
}

#[test]
fn a_steady_state_produces_the_same_status_again() {
    let mut case = Case::new(SimState::Active);
    let first = case
        .plan(&sims(10, ObservedState::Active))
        .status(&case.previous);
    case.previous = first.clone();
    case.now = now().checked_add(SignedDuration::from_mins(10)).unwrap();
    let second = case
        .plan(&sims(10, ObservedState::Active))
        .status(&case.previous);
    assert_eq!(first, second, "no write at steady state");
}

#[test]
fn the_problem_sample_is_capped_at_20() {
    let case = Case::new(SimState::Active);
    let plan = case.plan(&sims(50, ObservedState::Ineligible("unknown ICCID".into())));
    let status = plan.status(&case.previous);
    assert_eq!(status.problem_sims.len(), 20);
    assert_eq!(status.counts.unwrap().ineligible, 50);
}

#[test]
fn a_counting_only_planner_counts_the_same_changes_without_keeping_targets() {
    let case = Case::new(SimState::Paused);
    let mut observed = sims(25_000, ObservedState::Active);
    observed.push(sim(30_000, ObservedState::Paused));
    let full = case.plan(&observed);
    let mut planner = SimGroupPlanner::new(PlanContext {
        spec: &case.spec,
        generation: case.generation,
        approval: &crate::sim_group::approval::NO_APPROVAL,
        previous: &case.previous,
        carrier_limit: case.carrier_limit,
        one_action_at_a_time: false,
        poll_cost: PollCost::Observation,
        carrier_statuses: &[],
        in_flight: &case.in_flight,
        claims: &NoClaims,
        now: case.now,
    })
    .counting_only();
    let mut reported = 0;
    for page in observed.chunks(1000) {
        planner.observe_each(page, |_| reported += 1);
    }
    let counted = planner.finish();
    assert_eq!(
        (full.changes, counted.changes, reported),
        (25_000, 25_000, 25_000)
    );
    assert_eq!(full.actions.len(), 3);
    assert!(
        counted.actions.is_empty(),
        "no targets kept, no actions built"
    );
    assert_eq!(counted.counts(), full.counts());
}

#[test]
fn the_carrier_s_job_status_shows_beside_a_pending_action_and_never_confirms_it() {
    let mut case = Case::new(SimState::Paused);
    case.previous.pending_actions = vec![action("10001", 3, 2), action("10002", 2, 1)];
    let observed = sims(5, ObservedState::Pending(StateChange::Pause));
    let mut plan = case.plan(&observed);
    let status = |id: &str, status: &str| ActionStatus {
        refused: Vec::new(),
        id: id.into(),
        status: status.into(),
        finished: status == "COMPLETED",
    };
    plan.note_carrier_statuses(&[status("10002", "COMPLETED"), status("999", "X")]);
    let status = plan.status(&case.previous);
    let shown: Vec<(&str, Option<&str>)> = status
        .pending_actions
        .iter()
        .map(|a| (a.id.as_str(), a.carrier_status.as_deref()))
        .collect();
    assert_eq!(shown, [("10001", None), ("10002", Some("COMPLETED"))]);
    // "COMPLETED" at the carrier, yet the SIMs still show pending: not Ready.
    let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(status.counts.as_ref().unwrap().pending, 5);
}

#[test]
fn a_change_waiting_for_approval_is_looked_at_again_at_the_resync_not_every_few_seconds() {
    let mut case = Case::new(SimState::Paused);
    case.spec.guard = Some(ChangeGuard {
        max_changes_without_approval: 10,
    });
    let plan = case.plan(&sims(100, ObservedState::Active));
    assert!(matches!(plan.hold, Some(Hold::ApprovalRequired { .. })));
    assert_eq!(plan.requeue_after(), RESYNC);
    case.previous = plan.status(&case.previous);
    case.approval.generation = Some("1".into());
    let plan = case.plan(&sims(100, ObservedState::Active));
    assert_eq!(
        plan.requeue_after(),
        Duration::from_secs(5),
        "approved: submitted at once"
    );
}

#[test]
fn a_blocked_group_is_stalled_with_the_reason_and_keeps_its_last_counts() {
    let mut previous = SimGroupStatus {
        counts: Some(SimCounts {
            selected: 4,
            in_desired_state: 4,
            ..SimCounts::default()
        }),
        ..SimGroupStatus::default()
    };
    previous.observed_generation = Some(1);
    let status = blocked_status(
        &previous,
        2,
        "CarrierAccountNotReady",
        "fix the account",
        now(),
    );
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(
        status.counts, previous.counts,
        "what was last observed stays"
    );
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == STALLED)
        .unwrap();
    assert_eq!(
        (
            stalled.status.as_str(),
            stalled.reason.as_str(),
            stalled.message.as_str()
        ),
        ("True", "CarrierAccountNotReady", "fix the account")
    );
    assert!(!conditions::is_true(&status.conditions, READY));
}

#[path = "observe_tests.rs"]
mod observe_only;

#[test]
fn sims_awaiting_their_connection_are_left_to_connect_unless_the_group_says_activate() {
    let waiting = || ObservedState::AwaitingConnection("ready: turns active by itself".into());
    let observed = [
        sim(1, waiting()),
        sim(2, ObservedState::Active),
        sim(3, waiting()),
    ];
    let mut case = Case::new(SimState::Active);
    let plan = case.plan(&observed);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.counts().awaiting_connection, 2);
    let status = plan.status(&SimGroupStatus::default());
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{:?}",
        status.conditions
    );
    case.spec.awaiting_connection = simfleet_api::AwaitingConnectionPolicy::Activate;
    let plan = case.plan(&observed);
    assert_eq!(plan.actions[0].change, StateChange::Resume);
    assert_eq!(plan.actions[0].sims.len(), 2);
    // A Paused group pauses them: a connection attempt would make them active.
    let plan = Case::new(SimState::Paused).plan(&observed);
    assert_eq!(plan.actions[0].sims.len(), 3);
}

#[test]
fn a_carrier_that_runs_one_action_at_a_time_gets_one_now_and_the_rest_queued() {
    let observed: Vec<SimObservation> = (1..=25).map(|d| sim(d, ObservedState::Active)).collect();
    let mut case = Case::new(SimState::Paused);
    case.carrier_limit = 10;
    case.one_action_at_a_time = true;
    let plan = case.plan(&observed);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.queued.len(), 2);
    assert_eq!(plan.queued.iter().map(|a| a.sims.len()).sum::<usize>(), 15);
}

#[test]
fn with_an_action_of_the_change_running_at_such_a_carrier_nothing_more_is_sent() {
    let observed: Vec<SimObservation> = (1..=5).map(|d| sim(d, ObservedState::Active)).collect();
    let mut case = Case::new(SimState::Paused);
    case.one_action_at_a_time = true;
    // Listed before a restart (not remembered); the carrier's jobs list shows it running.
    case.previous.pending_actions = vec![crate::sim_group::pending::tests::pause_submitted(
        "job-1",
        5,
        1,
        now(),
    )];
    case.carrier_statuses = vec![ActionStatus {
        id: "job-1".into(),
        status: "running: 2 done, 0 failed, 3 to go".into(),
        finished: false,
        refused: Vec::new(),
    }];
    let plan = case.plan(&observed);
    assert!(plan.actions.is_empty() && plan.queued.is_empty());
    assert!(matches!(&plan.hold, Some(Hold::ActionRunning { id }) if id == "job-1"));
    let status = plan.status(&case.previous);
    assert_eq!(status.pending_actions.len(), 1, "still listed");
    // Once the carrier says it is final, the next action goes.
    case.carrier_statuses[0].finished = true;
    let plan = case.plan(&observed);
    assert_eq!(plan.actions.len(), 1);
}
