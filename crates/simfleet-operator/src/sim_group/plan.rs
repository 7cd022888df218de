//! Planning a SimGroup: from the spec, the observed SIM states, the pending actions in status and
//! `now`, decide the carrier actions to submit and the status to write. Pure: no I/O, no clock.
//!
//! The rules, each because real fleets hit them:
//! - a SIM pending at the carrier, or in an action this process submitted and has not seen
//!   confirmed, is never submitted again;
//! - pending actions are confirmed by observed states (oldest first, by SIM count), never by a
//!   submit response; one unconfirmed for 24 h makes the group Stalled, naming it;
//! - SIMs paused by the carrier's system are reported, and resumed only with `systemPaused: Resume`;
//! - ineligible SIMs and states the client does not know are reported, never retried;
//! - once a generation has converged, SIMs found in another state are drift: corrected, or only
//!   reported with `drift: Report`;
//! - a SIM another SimGroup claims with the opposite state is a conflict, left unchanged;
//! - a change touching more SIMs than `guard.maxChangesWithoutApproval` waits for an approval of
//!   its content (`approval`): never one given ahead, nor one of another change;
//! - changes are split into actions of at most the carrier's and the rollout's limit, spaced by
//!   `rollout.interval`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use simfleet_api::conditions::{self, Verdict};
use simfleet_api::model::{
    ActionStatus, ObservedState, Refusal, RefusalKind, SimObservation, SimTarget,
};
use simfleet_api::{
    ApprovalRecord, AwaitingConnectionPolicy, DriftPolicy, HeldChange, PendingAction,
    ProblemReason, ProblemSim, SimCounts, SimGroupSpec, SimGroupStatus, SimState, StateChange,
    SystemPausedPolicy,
};

pub use super::approval::ApprovalAnnotations;
use super::approval::{change_digest, judge};
pub use super::in_flight::InFlight;
use super::in_flight::PendingTally;
use super::observe_only::{ObserveOnly, observe_message, would_submit};
pub(crate) use super::pending::{
    CONFIRMATION_DEADLINE, IDLE, change_carried_out, note_carrier_statuses, read_urgency,
};
pub use super::pending::{PollCost, drift_check_wait, pending_backoff, poll_says_wait};
use crate::plan::numbers::{count, thousands};

/// Resync period of a converged group (drift detection) unless its `driftCheck` says otherwise.
pub const RESYNC: Duration = simfleet_api::DEFAULT_DRIFT_CHECK;

/// The status of a group that cannot start (no usable carrier account, a budget too small):
/// Stalled with the reason and the message, the rest of the last status kept.
pub(crate) fn blocked_status(
    previous: &SimGroupStatus,
    generation: i64,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> SimGroupStatus {
    let mut status = previous.clone();
    status.observed_generation = Some(generation);
    conditions::set_stalled(
        &mut status.conditions,
        reason,
        message,
        "waiting for what the message names",
        generation,
        now,
    );
    status
}

/// Which other SimGroup claims a SIM, and the state it wants.
pub trait Claims: Sync {
    /// The other group's name and desired state, if another group claims this SIM.
    fn claimed_by(&self, sim: &SimObservation) -> Option<(String, SimState)>;
}

/// No other group claims anything.
pub struct NoClaims;

impl Claims for NoClaims {
    fn claimed_by(&self, _: &SimObservation) -> Option<(String, SimState)> {
        None
    }
}

/// What the planner is given besides the observed SIMs.
pub struct PlanContext<'a> {
    /// The group's spec.
    pub spec: &'a SimGroupSpec,
    /// `metadata.generation`.
    pub generation: i64,
    /// The approval annotations as written (judged against the held change, see `approval`).
    pub approval: &'a ApprovalAnnotations,
    /// The status as last written.
    pub previous: &'a SimGroupStatus,
    /// Most SIMs the carrier takes in one action.
    pub carrier_limit: usize,
    /// The carrier runs one action of a change at a time (Soracom's Batch API): the next goes
    /// when the previous one is no longer pending.
    pub one_action_at_a_time: bool,
    /// What a look at pending actions costs (how soon the group looks again).
    pub poll_cost: PollCost,
    /// The carrier's word on the listed pending actions (its jobs list): an action it shows
    /// unfinished stays pending, even one submitted before a restart.
    pub carrier_statuses: &'a [ActionStatus],
    /// The actions this process submitted and has not seen land (carriers that do not show
    /// pending states are covered by this).
    pub in_flight: &'a InFlight,
    /// Other groups' claims.
    pub claims: &'a dyn Claims,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// A carrier action to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedAction {
    /// Direction.
    pub change: StateChange,
    /// SIMs, at most the action limit.
    pub sims: Vec<SimTarget>,
}

/// Why planned changes are held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The change exceeds the guard and this generation is not approved.
    ApprovalRequired {
        /// SIMs the change would touch.
        changes: usize,
        /// The guard's limit.
        limit: u32,
    },
    /// The rollout interval has not passed since the last action.
    Interval {
        /// When the next action may go.
        until: Timestamp,
    },
    /// The carrier runs one action of a change at a time, and this one is pending.
    ActionRunning {
        /// The pending action's id.
        id: String,
    },
}

/// The outcome of planning: actions to submit and what the status will say.
#[derive(Debug)]
pub struct Plan {
    /// Actions to submit now, in order.
    pub actions: Vec<PlannedAction>,
    /// Actions to submit later, one at a time, where the carrier runs one action of a kind
    /// at a time (each after the previous one is final).
    pub queued: Vec<PlannedAction>,
    /// Why changes wait, if they do.
    pub hold: Option<Hold>,
    /// The actions correct drift (this generation had converged): they are not a first claim.
    pub corrects_drift: bool,
    /// SIMs to change in all (submitted now, held, or left for later actions).
    pub changes: usize,
    /// Most SIMs per action (the carrier's and the rollout's limit).
    pub batch_limit: usize,
    /// Pause between actions (`rollout.interval`).
    pub interval: Option<SignedDuration>,
    /// SIMs whose remembered action reached them: the in-flight memory forgets them.
    pub landed: Vec<u64>,
    /// The digest of this pass's change (its direction and SIMs), when there is one.
    pub change_digest: Option<String>,
    /// The change held for approval, for status.
    held_change: Option<HeldChange>,
    /// The approval annotations as judged, for status.
    approval: Option<ApprovalRecord>,
    /// An approval annotation that approves nothing, and why (new this pass).
    pub ignored_approval: Option<String>,
    counts: SimCounts,
    problems: Vec<ProblemSim>,
    pending: Vec<PendingAction>,
    stalled_action: Option<PendingAction>,
    desired: SimState,
    drift_policy: DriftPolicy,
    system_paused: SystemPausedPolicy,
    /// How often a group at rest is read again (`driftCheck`).
    pub drift_check: Duration,
    selector: String,
    generation: i64,
    now: Timestamp,
    last_action_time: Option<Time>,
    remaining_after_actions: usize,
    /// `management: Observe`: nothing is submitted; the actions are only reported.
    observe_only: Option<ObserveOnly>,
    /// What a look at the pending actions costs.
    poll_cost: PollCost,
}

/// How a SIM's observed state reads in a message.
fn observed_name(state: &ObservedState) -> &'static str {
    match state {
        ObservedState::Active => "Active",
        ObservedState::Paused => "Paused",
        ObservedState::PausedBySystem => "paused by the carrier's system",
        ObservedState::AwaitingConnection(_) => "awaiting its next connection",
        ObservedState::Pending(_) => "pending",
        ObservedState::Ineligible(_) => "ineligible",
        ObservedState::Unknown(_) => "in an unknown state",
    }
}

fn toward(state: SimState) -> StateChange {
    match state {
        SimState::Active => StateChange::Resume,
        SimState::Paused => StateChange::Pause,
    }
}

/// Consumes observed pages one at a time, so a large group is never held whole.
pub struct SimGroupPlanner<'a> {
    ctx: PlanContext<'a>,
    desired: SimState,
    /// This generation's change was carried out: SIMs out of state are drift.
    converged_before: bool,
    counts: SimCounts,
    pending: PendingTally,
    problems: Vec<ProblemSim>,
    candidates: Vec<SimTarget>,
    /// SIMs planned to change (equals `candidates.len()` unless targets are not kept).
    changes: usize,
    /// Keep the targets to build actions; a preview only counts them.
    keep_targets: bool,
    /// The device ids planned to change, for the change's digest.
    change_devices: Vec<u64>,
    /// SIMs locked at the carrier by another's change away from the desired state: still to
    /// change once it lands.
    locked_elsewhere: usize,
}

impl<'a> SimGroupPlanner<'a> {
    /// A planner for one reconcile.
    pub fn new(ctx: PlanContext<'a>) -> Self {
        let converged_before = change_carried_out(ctx.previous, ctx.generation);
        Self {
            desired: ctx.spec.state,
            converged_before,
            counts: SimCounts::default(),
            pending: PendingTally::default(),
            problems: Vec::new(),
            candidates: Vec::new(),
            changes: 0,
            keep_targets: true,
            change_devices: Vec::new(),
            locked_elsewhere: 0,
            ctx,
        }
    }

    fn problem(&mut self, sim: &SimObservation, reason: ProblemReason, message: String) {
        if ProblemSim::room_for(&self.problems, reason) {
            self.problems.push(ProblemSim::new(
                sim.iccid.clone(),
                sim.device_id,
                reason,
                message,
            ));
        }
    }

    /// A planner that counts the SIMs to change without keeping them (no actions are built):
    /// for previews of very large selections, which need the numbers, not the targets.
    pub(crate) fn counting_only(mut self) -> Self {
        self.keep_targets = false;
        self
    }

    /// Takes one page of observed SIMs.
    pub fn observe(&mut self, page: &[SimObservation]) {
        self.observe_each(page, |_| {});
    }

    /// Takes one page of observed SIMs, calling `planned` for each SIM planned to change.
    pub(crate) fn observe_each(
        &mut self,
        page: &[SimObservation],
        mut planned: impl FnMut(&SimObservation),
    ) {
        for sim in page {
            self.counts.selected += 1;
            let state = sim.state.clone();
            // A conflict is one whatever the SIM's state, in flight included: both groups
            // report it and neither acts on it.
            let claimable = !matches!(
                state,
                ObservedState::Ineligible(_) | ObservedState::Unknown(_)
            );
            if claimable
                && let Some((other, wanted)) = self.ctx.claims.claimed_by(sim)
                && wanted != self.desired
            {
                self.counts.conflicting += 1;
                self.problem(
                    sim,
                    ProblemReason::Conflict,
                    format!("{other} claims this SIM as {wanted:?}; left unchanged"),
                );
                continue;
            }
            // Pending at the carrier in a direction none of this group's actions takes: another
            // group's (or a restore's, or the portal's) change; or sent a moment ago by another
            // group of this process. It is not this group's pending: heading where this group
            // wants it, it counts as there; heading away, it waits among the SIMs still to
            // change (the carrier locks a SIM while it changes). Never sent twice.
            let ours = |d: u64| {
                !matches!(
                    self.ctx.in_flight.flight(d, &state),
                    super::in_flight::Flight::NotInFlight
                )
            };
            let elsewhere = sim
                .device_id
                .filter(|d| !ours(*d))
                .and_then(|d| self.ctx.in_flight.elsewhere(d));
            let at_carrier = match &state {
                ObservedState::Pending(change)
                    if !sim.device_id.is_some_and(ours)
                        && !self
                            .ctx
                            .previous
                            .pending_actions
                            .iter()
                            .any(|a| a.action == *change) =>
                {
                    Some(*change)
                }
                _ => None,
            };
            if let Some(change) = at_carrier.or(elsewhere) {
                if change == toward(self.desired) {
                    self.counts.in_desired_state += 1;
                } else {
                    self.locked_elsewhere += 1;
                }
                continue;
            }
            // A SIM in an action that has not reached it is pending, whatever the spec wants
            // now: the reverse is planned once the action lands.
            if self
                .pending
                .observe(self.ctx.in_flight, sim.device_id, &state)
            {
                self.counts.pending += 1;
                continue;
            }
            let in_state = match (&state, self.desired) {
                (ObservedState::Active, SimState::Active) => true,
                (ObservedState::AwaitingConnection(_), SimState::Active)
                    if self.ctx.spec.awaiting_connection == AwaitingConnectionPolicy::Leave =>
                {
                    self.counts.awaiting_connection += 1;
                    continue;
                }
                (ObservedState::AwaitingConnection(_), _) => false,
                (ObservedState::Paused | ObservedState::PausedBySystem, SimState::Paused) => true,
                (
                    ObservedState::Active | ObservedState::Paused | ObservedState::PausedBySystem,
                    _,
                ) => false,
                // Counted as pending by the tally above.
                (ObservedState::Pending(_), _) => continue,
                (ObservedState::Ineligible(reason), _) => {
                    self.counts.ineligible += 1;
                    self.problem(sim, ProblemReason::Ineligible, reason.clone());
                    continue;
                }
                (ObservedState::Unknown(raw), _) => {
                    self.counts.failed += 1;
                    self.problem(
                        sim,
                        ProblemReason::Failed,
                        format!("the carrier reports a state simfleet does not know: {raw}"),
                    );
                    continue;
                }
            };
            if state == ObservedState::PausedBySystem {
                self.counts.paused_by_system += 1;
            }
            if in_state {
                self.counts.in_desired_state += 1;
                continue;
            }
            if state == ObservedState::PausedBySystem
                && self.ctx.spec.system_paused == SystemPausedPolicy::Report
            {
                self.problem(
                    sim,
                    ProblemReason::PausedBySystem,
                    "paused by the carrier's system (billing, limits); left paused: settle it with the carrier, or set systemPaused: Resume to resume it".into(),
                );
                continue;
            }
            let Some(device_id) = sim.device_id else {
                self.counts.failed += 1;
                self.problem(
                    sim,
                    ProblemReason::Failed,
                    "the carrier gave no device id for this SIM".into(),
                );
                continue;
            };
            if self.converged_before {
                // Changed outside simfleet: reported in both modes, corrected only by Correct.
                self.counts.drifted += 1;
                let report_only = self.ctx.spec.drift == DriftPolicy::Report;
                self.problem(
                    sim,
                    ProblemReason::Drift,
                    format!(
                        "changed outside simfleet: {} at the carrier, the spec wants {}; {}",
                        observed_name(&state),
                        self.desired.as_str(),
                        if report_only {
                            "drift: Report leaves it so"
                        } else {
                            "drift: Correct changes it back"
                        }
                    ),
                );
                if report_only {
                    continue;
                }
            }
            self.changes += 1;
            self.change_devices.push(device_id);
            planned(sim);
            if self.keep_targets {
                self.candidates.push(SimTarget {
                    device_id,
                    sim_id: sim.sim_id,
                });
            }
        }
    }

    /// Decides the actions and the status.
    pub fn finish(mut self) -> Plan {
        let ctx = &self.ctx;
        let now = ctx.now;
        let pending = self.pending.still_pending(
            &ctx.previous.pending_actions,
            ctx.in_flight,
            ctx.carrier_statuses,
        );
        let stalled_action = pending
            .iter()
            .find(|a| now.duration_since(a.submitted_at.0) > CONFIRMATION_DEADLINE)
            .cloned();

        let change = toward(self.desired);
        let limit = ctx
            .spec
            .rollout
            .as_ref()
            .and_then(|r| r.max_sims_per_action)
            .map_or(ctx.carrier_limit, |m| (m as usize).min(ctx.carrier_limit))
            .max(1);
        let interval = ctx
            .spec
            .rollout
            .as_ref()
            .and_then(|r| r.interval.as_ref())
            .map(|i| i.as_duration());
        let last_action = ctx.previous.last_action_time.as_ref().map(|t| t.0);
        let mut actions = Vec::new();
        let mut queued = Vec::new();
        let mut hold = None;
        let total = self.changes;
        let guard = ctx
            .spec
            .guard
            .as_ref()
            .map(|g| g.max_changes_without_approval);
        let digest = (total > 0).then(|| change_digest(change, &mut self.change_devices));
        let guarded = guard.filter(|&max| total > max as usize);
        let judgement = judge(
            ctx.approval,
            ctx.previous,
            ctx.generation,
            digest.as_deref(),
            guarded.is_some(),
        );
        let mut held_change = None;
        if total > 0 {
            if let Some(max) = guarded.filter(|_| !judgement.approved) {
                hold = Some(Hold::ApprovalRequired {
                    changes: total,
                    limit: max,
                });
                held_change = digest.clone().map(|digest| HeldChange {
                    generation: ctx.generation,
                    digest,
                    action: change,
                    sims: total as u64,
                });
            } else if let Some(until) = interval
                .zip(last_action)
                .map(|(i, last)| last.saturating_add(i).unwrap_or(last))
                .filter(|&until| until > now)
            {
                hold = Some(Hold::Interval { until });
            } else if let Some(running) = pending
                .iter()
                .find(|a| ctx.one_action_at_a_time && a.action == change)
            {
                hold = Some(Hold::ActionRunning {
                    id: running.id.clone(),
                });
            } else {
                let batches = self.candidates.chunks(limit).map(|c| PlannedAction {
                    change,
                    sims: c.to_vec(),
                });
                // With an interval, one action per pause; with a carrier that runs one
                // action at a time, one now and the others queued; otherwise every batch now.
                actions = batches.collect();
                if interval.is_some() {
                    actions.truncate(1);
                } else if ctx.one_action_at_a_time && actions.len() > 1 {
                    queued = actions.split_off(1);
                }
            }
        }
        let submitted: usize = actions.iter().map(|a: &PlannedAction| a.sims.len()).sum();
        let approval = Some(judgement.record).filter(|r| *r != ApprovalRecord::default());
        Plan {
            landed: self.pending.landed,
            change_digest: digest,
            held_change,
            approval,
            ignored_approval: judgement.ignored,
            remaining_after_actions: total - submitted + self.locked_elsewhere,
            actions,
            queued,
            hold,
            corrects_drift: self.converged_before,
            changes: total,
            batch_limit: limit,
            interval,
            counts: self.counts,
            problems: self.problems,
            pending,
            stalled_action,
            desired: self.desired,
            drift_policy: ctx.spec.drift,
            system_paused: ctx.spec.system_paused,
            drift_check: ctx.spec.drift_check(),
            selector: ctx.spec.selector.describe(),
            generation: ctx.generation,
            now,
            last_action_time: ctx.previous.last_action_time.clone(),
            observe_only: None,
            poll_cost: ctx.poll_cost,
        }
    }
}

impl Plan {
    /// Makes this an observe-only plan (`management: Observe`): no action is submitted; status
    /// reports the actions the change needs, and the approval it would need, instead.
    pub fn observe_only(&mut self) {
        let approval = match self.hold {
            Some(Hold::ApprovalRequired { changes, limit }) => Some((changes, limit)),
            _ => None,
        };
        self.actions.clear();
        self.hold = None;
        self.held_change = None;
        self.remaining_after_actions = self.changes;
        self.observe_only = Some(ObserveOnly {
            would_submit: would_submit(self.changes, self.batch_limit, toward(self.desired)),
            approval,
        });
    }

    /// The plan of a pass that sends the next queued action without observing again (see
    /// `queue`): status keeps the counts and problems last observed, with the finished
    /// actions' SIMs (less those refused) moved from pending to the desired state, and the
    /// carrier's word on them.
    pub(crate) fn next_from_queue(
        ctx: &PlanContext<'_>,
        next: PlannedAction,
        queued_sims: usize,
        corrects_drift: bool,
    ) -> Plan {
        let previous = ctx.previous;
        let mut counts = previous.counts.clone().unwrap_or_default();
        for action in &previous.pending_actions {
            let refused = ctx
                .carrier_statuses
                .iter()
                .find(|s| s.id == action.id)
                .map_or(0, |s| s.refused.len() as u64);
            let sims = u64::from(action.sims);
            counts.pending = counts.pending.saturating_sub(sims);
            counts.in_desired_state += sims.saturating_sub(refused);
        }
        let mut plan = Plan {
            changes: next.sims.len() + queued_sims,
            actions: vec![next],
            queued: Vec::new(),
            hold: None,
            corrects_drift,
            batch_limit: ctx.carrier_limit,
            interval: None,
            landed: Vec::new(),
            change_digest: None,
            held_change: None,
            approval: previous.approval.clone(),
            ignored_approval: None,
            counts,
            problems: previous.problem_sims.clone(),
            pending: Vec::new(),
            stalled_action: None,
            desired: ctx.spec.state,
            drift_policy: ctx.spec.drift,
            system_paused: ctx.spec.system_paused,
            drift_check: ctx.spec.drift_check(),
            selector: ctx.spec.selector.describe(),
            generation: ctx.generation,
            now: ctx.now,
            last_action_time: previous.last_action_time.clone(),
            remaining_after_actions: queued_sims,
            observe_only: None,
            poll_cost: ctx.poll_cost,
        };
        plan.note_carrier_statuses(ctx.carrier_statuses);
        plan
    }

    /// Records a submitted action (its id reaches status with the next write).
    pub fn record_submission(
        &mut self,
        id: String,
        change: StateChange,
        accepted: usize,
        refused: &[Refusal],
    ) {
        if accepted > 0 {
            self.pending.push(PendingAction {
                id,
                action: change,
                sims: u32::try_from(accepted).unwrap_or(u32::MAX),
                submitted_at: Time(self.now),
                carrier_status: None,
            });
            self.counts.pending += accepted as u64;
        }
        self.last_action_time = Some(Time(self.now));
        for refusal in refused {
            let reason = match refusal.kind {
                RefusalKind::Retryable => {
                    self.remaining_after_actions += 1;
                    continue;
                }
                RefusalKind::Failed => {
                    self.counts.failed += 1;
                    ProblemReason::Failed
                }
                RefusalKind::Ineligible => {
                    self.counts.ineligible += 1;
                    ProblemReason::Ineligible
                }
            };
            if ProblemSim::room_for(&self.problems, reason) {
                self.problems.push(ProblemSim::new(
                    String::new(),
                    Some(refusal.device_id),
                    reason,
                    format!("the carrier refused the change: {}", refusal.reason),
                ));
            }
        }
    }

    /// Shows the carrier's own status of each pending action it lists; the others keep what
    /// they showed. Never a confirmation: observed SIM states are.
    pub(crate) fn note_carrier_statuses(&mut self, statuses: &[ActionStatus]) {
        note_carrier_statuses(&mut self.pending, statuses);
        // SIMs a finished action failed to change (Soracom's failed tasks), with its words.
        for status in statuses.iter().filter(|s| s.finished) {
            for refusal in &status.refused {
                let reason = match refusal.kind {
                    RefusalKind::Ineligible => ProblemReason::Ineligible,
                    RefusalKind::Failed | RefusalKind::Retryable => ProblemReason::Failed,
                };
                let listed = self
                    .problems
                    .iter()
                    .any(|p| p.device_id == Some(refusal.device_id.to_string()));
                if !listed && ProblemSim::room_for(&self.problems, reason) {
                    self.problems.push(ProblemSim::new(
                        String::new(),
                        Some(refusal.device_id),
                        reason,
                        format!("action {} did not change it: {}", status.id, refusal.reason),
                    ));
                }
            }
        }
    }

    /// Records SIMs of a planned action that could not be submitted (e.g. the carrier was
    /// unreachable); they are planned again on the next reconcile.
    pub fn record_unsubmitted(&mut self, sims: usize) {
        self.remaining_after_actions += sims;
    }

    /// The counts observed.
    pub fn counts(&self) -> &SimCounts {
        &self.counts
    }

    /// How soon to reconcile again.
    pub(crate) fn requeue_after(&self) -> Duration {
        // Nothing is sent until a person acts (the annotation's change is itself a trigger), or
        // ever (observe only): no fast requeue.
        if self.observe_only.is_some() || matches!(self.hold, Some(Hold::ApprovalRequired { .. })) {
            return pending_backoff(&self.pending, self.now, self.poll_cost)
                .unwrap_or(self.wake_up());
        }
        if let Some(Hold::ActionRunning { .. }) = self.hold {
            return pending_backoff(&self.pending, self.now, self.poll_cost)
                .unwrap_or(self.wake_up());
        }
        if let Some(Hold::Interval { until }) = self.hold {
            // At most a resync away: a long rollout interval is still re-planned then (and
            // kube-runtime's scheduler refuses delays beyond about two years).
            let wait = until.duration_since(self.now).as_secs().max(1);
            return Duration::from_secs(wait as u64).min(self.wake_up());
        }
        if !self.actions.is_empty() || self.remaining_after_actions > 0 {
            // SIMs left for later: soon; sooner where they wait for a pending action that one
            // call looks at (a queued job goes when the previous one is final).
            let soon = Duration::from_secs(5);
            return pending_backoff(&self.pending, self.now, self.poll_cost)
                .map_or(soon, |wait| wait.min(soon));
        }
        pending_backoff(&self.pending, self.now, self.poll_cost).unwrap_or(self.wake_up())
    }

    /// How long a group at rest sleeps: until its drift check, and at most [`RESYNC`], so that
    /// every resource is reconciled (cheaply: the read waits for the check) at least that often
    /// and the operator's liveness shows in `simfleet_reconcile_last_success_timestamp_seconds`.
    fn wake_up(&self) -> Duration {
        self.drift_check.min(RESYNC)
    }
}

#[path = "status.rs"]
mod status;

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "reversal_tests.rs"]
mod reversal_tests;

#[cfg(test)]
#[path = "condition_tests.rs"]
mod condition_tests;
