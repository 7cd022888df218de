//! Reversed changes converge: scenario tests, and a property test that runs the planner and the
//! in-flight memory as the controller does against a model carrier, over random sequences of
//! spec flips and carrier outcomes.

use std::collections::{BTreeMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::tests::spec;
use super::*;
use simfleet_api::conditions::{READY, is_true};

/// An action at the model carrier: its SIMs reach `change`'s state at step `lands_at`; SIMs in
/// `no_op` are left as they were (the carrier finished the job without changing them).
struct ModelAction {
    id: String,
    change: StateChange,
    devices: Vec<u64>,
    lands_at: u32,
    no_op: HashSet<u64>,
}

/// A carrier: Hologram-like (`jobs`: a jobs list, pending states shown) or emnify-like (no jobs
/// list, a SIM shows its old state until the change lands).
struct ModelCarrier {
    states: BTreeMap<u64, bool>,
    actions: Vec<ModelAction>,
    jobs: bool,
    step: u32,
    next_id: u32,
}

impl ModelCarrier {
    fn advance(&mut self) {
        self.step += 1;
        for action in &self.actions {
            if action.lands_at == self.step {
                for d in &action.devices {
                    if !action.no_op.contains(d) {
                        self.states.insert(*d, action.change == StateChange::Resume);
                    }
                }
            }
        }
    }

    fn unlanded(&self, device: u64) -> Option<&ModelAction> {
        self.actions
            .iter()
            .find(|a| a.lands_at > self.step && a.devices.contains(&device))
    }

    fn observe(&self) -> Vec<SimObservation> {
        self.states
            .iter()
            .map(|(&device, &active)| {
                let state = match self.unlanded(device) {
                    Some(a) if self.jobs => ObservedState::Pending(a.change),
                    _ if active => ObservedState::Active,
                    _ => ObservedState::Paused,
                };
                SimObservation {
                    iccid: format!("89{device:017}"),
                    device_id: Some(device),
                    sim_id: None,
                    state,
                    tags: Vec::new(),
                }
            })
            .collect()
    }

    fn statuses(&self, listed: &[PendingAction]) -> Vec<ActionStatus> {
        if !self.jobs {
            return Vec::new();
        }
        listed
            .iter()
            .filter_map(|p| self.actions.iter().find(|a| a.id == p.id))
            .map(|a| ActionStatus {
                refused: Vec::new(),
                id: a.id.clone(),
                status: String::new(),
                finished: a.lands_at <= self.step,
            })
            .collect()
    }
}

/// The operator's side, as the controller runs it.
struct Operator {
    spec: SimGroupSpec,
    generation: i64,
    status: SimGroupStatus,
    memory: InFlight,
    now: Timestamp,
    submissions: Vec<(StateChange, Vec<u64>)>,
}

impl Operator {
    fn new(state: SimState) -> Self {
        Self {
            spec: spec(state),
            generation: 1,
            status: SimGroupStatus::default(),
            memory: InFlight::default(),
            now: "2026-12-01T00:00:00Z".parse().unwrap(),
            submissions: Vec::new(),
        }
    }

    fn flip(&mut self) {
        self.spec.state = match self.spec.state {
            SimState::Active => SimState::Paused,
            SimState::Paused => SimState::Active,
        };
        self.generation += 1;
    }

    /// One reconcile; panics (fails the test) on a redundant submission.
    fn reconcile(&mut self, carrier: &mut ModelCarrier, landing: u32, no_op: &HashSet<u64>) {
        self.now = self.now.checked_add(SignedDuration::from_secs(10)).unwrap();
        let statuses = carrier.statuses(&self.status.pending_actions);
        self.memory
            .retain_unfinished(&self.status.pending_actions, &statuses);
        let mut planner = SimGroupPlanner::new(PlanContext {
            spec: &self.spec,
            generation: self.generation,
            approval: &crate::sim_group::approval::NO_APPROVAL,
            previous: &self.status,
            carrier_limit: 2,
            one_action_at_a_time: false,
            poll_cost: crate::sim_group::plan::PollCost::Observation,
            carrier_statuses: &[],
            in_flight: &self.memory,
            claims: &NoClaims,
            now: self.now,
        });
        planner.observe(&carrier.observe());
        let mut plan = planner.finish();
        self.memory.landed(&plan.landed);
        for action in std::mem::take(&mut plan.actions) {
            let devices: Vec<u64> = action.sims.iter().map(|s| s.device_id).collect();
            for d in &devices {
                let target = action.change == StateChange::Resume;
                assert!(
                    carrier.unlanded(*d).is_none(),
                    "SIM {d} submitted again while an action is on its way to it"
                );
                assert_ne!(
                    carrier.states[d], target,
                    "SIM {d} submitted to the state it is in"
                );
            }
            carrier.next_id += 1;
            let id = format!("{}", 10_000 + carrier.next_id);
            carrier.actions.push(ModelAction {
                id: id.clone(),
                change: action.change,
                devices: devices.clone(),
                lands_at: carrier.step + landing.max(1),
                no_op: no_op
                    .intersection(&devices.iter().copied().collect())
                    .copied()
                    .collect(),
            });
            self.memory.remember(&id, action.change, devices.clone());
            plan.record_submission(id, action.change, devices.len(), &[]);
            self.submissions.push((action.change, devices));
        }
        self.status = plan.status(&self.status);
    }

    fn converged(&self, carrier: &ModelCarrier) -> bool {
        let want = self.spec.state == SimState::Active;
        carrier.states.values().all(|&a| a == want)
            && self.status.pending_actions.is_empty()
            && is_true(&self.status.conditions, READY)
    }
}

fn carrier(jobs: bool, initial: &[bool]) -> ModelCarrier {
    ModelCarrier {
        states: initial
            .iter()
            .enumerate()
            .map(|(i, &a)| (i as u64 + 1, a))
            .collect(),
        actions: Vec::new(),
        jobs,
        step: 0,
        next_id: 0,
    }
}

/// Reconciles (the carrier taking `landing` steps per action) until converged; the number of
/// reconciles it took.
fn settle(op: &mut Operator, carrier: &mut ModelCarrier, landing: u32, bound: u32) -> u32 {
    for round in 0..bound {
        op.reconcile(carrier, landing, &HashSet::new());
        if op.converged(carrier) {
            return round + 1;
        }
        carrier.advance();
    }
    panic!(
        "not converged after {bound} reconciles: carrier {:?}, status {:?}",
        carrier.states, op.status
    );
}

#[test]
fn a_change_reversed_while_its_action_is_pending_converges_in_both_directions() {
    for jobs in [true, false] {
        for (from, to) in [
            (SimState::Paused, SimState::Active),
            (SimState::Active, SimState::Paused),
        ] {
            let start_active = from == SimState::Active;
            let mut c = carrier(jobs, &[start_active; 3]);
            let mut op = Operator::new(to);
            // The change goes out; the carrier takes 3 steps to apply it.
            op.reconcile(&mut c, 3, &HashSet::new());
            assert_eq!(op.submissions.len(), 2, "3 SIMs in actions of 2");
            // Reversed at once, while the action is pending: nothing is sent, it is pending.
            op.flip();
            op.reconcile(&mut c, 3, &HashSet::new());
            assert_eq!(op.submissions.len(), 2, "no redundant submission");
            assert_eq!(op.status.counts.as_ref().unwrap().pending, 3);
            assert!(!is_true(&op.status.conditions, READY));
            // The action lands; the reverse goes out at the next reconcile, and lands.
            for _ in 0..3 {
                c.advance();
            }
            let rounds = settle(&mut op, &mut c, 1, 10);
            assert_eq!(op.submissions.len(), 4, "the reverse, once (jobs: {jobs})");
            assert!(rounds <= 2, "the carrier's delay plus one poll: {rounds}");
        }
    }
}

#[test]
fn a_change_reversed_after_its_action_landed_converges() {
    let mut c = carrier(false, &[false; 3]);
    let mut op = Operator::new(SimState::Active);
    op.reconcile(&mut c, 1, &HashSet::new());
    c.advance();
    // Landed (all LIVE), but the operator has not observed it yet when the spec flips back.
    op.flip();
    let rounds = settle(&mut op, &mut c, 1, 10);
    assert!(rounds <= 2, "{rounds}");
    assert!(c.states.values().all(|&a| !a));
}

#[test]
fn a_job_that_finished_without_changing_a_sim_releases_it() {
    let mut c = carrier(true, &[false; 2]);
    let mut op = Operator::new(SimState::Active);
    // The carrier finishes the job but leaves SIM 2 paused.
    op.reconcile(&mut c, 1, &HashSet::from([2]));
    c.advance();
    op.reconcile(&mut c, 1, &HashSet::new());
    assert_eq!(op.submissions.len(), 2, "SIM 2 is planned again");
    assert_eq!(op.submissions[1].1, vec![2]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the sequence of spec flips, carrier delays and no-op jobs: no SIM is ever
    /// submitted to the state it is in or while an action is on its way to it, and once the
    /// spec stops changing the group converges within the carrier's delay plus a poll.
    #[test]
    fn any_sequence_of_reversals_converges_without_redundant_submissions(
        jobs in any::<bool>(),
        initial in prop::collection::vec(any::<bool>(), 1..6),
        start_active in any::<bool>(),
        events in prop::collection::vec((0u8..4, 0u32..4, any::<bool>()), 1..30),
    ) {
        let mut c = carrier(jobs, &initial);
        let mut op = Operator::new(if start_active { SimState::Active } else { SimState::Paused });
        for (event, landing, no_op) in events {
            match event {
                0 => op.flip(),
                1 => c.advance(),
                _ => {
                    // A no-op job only where a jobs list can say it finished.
                    let no_op: HashSet<u64> = if no_op && jobs { HashSet::from([1]) } else { HashSet::new() };
                    op.reconcile(&mut c, landing, &no_op);
                }
            }
        }
        // Let every action already sent land, then the settled spec converges in a few polls.
        for _ in 0..4 {
            c.advance();
        }
        let rounds = settle(&mut op, &mut c, 1, 6);
        prop_assert!(rounds <= 3, "took {} reconciles", rounds);
    }
}
