//! SimGroup: observe the selected SIMs (streamed), plan, submit the carrier actions, and write
//! status. Each submitted action id reaches status before the next action is sent, so a crash
//! never loses one; after a restart, pending states at the carrier keep SIMs from being resent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::act::{ActionLog, Failed, Sent, act};
use super::memory::{FullObservation, GroupRef};
use super::queue::Queued;
use super::restore_store;
use crate::carrier_account::{cleanup_carrier, ready_carrier};
use crate::controller::events::{publish, read_deferred};
use crate::controller::namespaces;
use crate::controller::pause::{self, PauseCheck};
use crate::controller::{
    Context, Error, SIM_GROUP_FINALIZER, wait_for_account, with_first_conditions, write_status,
};
use crate::plan::budget_floor;
use crate::plan::numbers::count;
use crate::resolve::selection_of;
use crate::sim_group::approval::{ApprovalAnnotations, not_a_number};
use crate::sim_group::claims::ClaimIndex;
use crate::sim_group::plan::{
    Plan, PlanContext, PollCost, RESYNC, SimGroupPlanner, blocked_status, drift_check_wait,
    note_carrier_statuses, pending_backoff, poll_says_wait, read_urgency,
};
use jiff::Timestamp;
use simfleet_api::conditions::{self, READY};
use simfleet_api::model::{ActionStatus, ReadUrgency};
use simfleet_api::{
    CarrierAccount, Management, ProblemReason, SimGroup, SimGroupDeletePolicy, SimGroupStatus,
};
use simfleet_carrier::budget::RequestLedger;
use simfleet_carrier::{Carrier, budget, observe_each};

/// The groups and accounts of every namespace, from the SimGroup controller's watch caches (a
/// group created a moment ago that the cache has not seen yet is seen by its own first
/// reconcile, whose claims then re-plan this one); listed when the controller is not running
/// (tests). Every namespace: groups on one carrier organisation claim the same SIMs wherever
/// they are.
pub(super) async fn peers_and_accounts(
    context: &Context,
) -> Result<(Vec<Arc<SimGroup>>, Vec<Arc<CarrierAccount>>), Error> {
    // The watch caches' objects are shared, never copied: a reconcile of one group among
    // thousands reads every peer, and copying each (its ICCID lists included) made the CPU of
    // a fleet at rest grow with the square of its groups.
    if let Some(stores) = context.group_stores.get() {
        let (groups, accounts) = futures::join!(
            stores.groups.wait_until_ready(),
            stores.accounts.wait_until_ready()
        );
        if groups.is_ok() && accounts.is_ok() {
            return Ok((stores.groups.state(), stores.accounts.state()));
        }
    }
    let peers = Api::<SimGroup>::all(context.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let accounts = Api::<CarrierAccount>::all(context.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    Ok((
        peers.into_iter().map(Arc::new).collect(),
        accounts.into_iter().map(Arc::new).collect(),
    ))
}

/// Writes a status that says why the group cannot start (no usable carrier account).
async fn blocked(
    context: &Context,
    api: &Api<SimGroup>,
    group: &SimGroup,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let status = blocked_status(
        &group.status.clone().unwrap_or_default(),
        group.metadata.generation.unwrap_or(0),
        reason,
        &message,
        context.clock.now(),
    );
    write_status(context, api, group, group.status.as_ref(), &status).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}

pub(super) async fn reconcile(
    group: Arc<SimGroup>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let api: Api<SimGroup> = Api::namespaced(context.client.clone(), &namespace);
    // Before the finalizer: a paused group is neither applied nor cleaned up.
    let account = group.spec.carrier_ref.name.clone();
    let resumed = match pause::check(&context, &api, &*group, Some(&account)).await? {
        PauseCheck::Paused(action) => return Ok(action),
        PauseCheck::Resumed => true,
        PauseCheck::Running => false,
    };
    finalizer(&api, SIM_GROUP_FINALIZER, group, |event| async {
        match event {
            Finalizer::Apply(group) => apply(group, &context, &api, resumed).await,
            Finalizer::Cleanup(group) => cleanup(group, &context).await,
        }
    })
    .await
    .map_err(crate::controller::from_finalizer)
}

/// One reconcile of a group: resolve → poll → observe and plan → act → report, each a step
/// of [`Pass`]. `resumed`: the group was paused until now, so status is rebuilt from a full
/// observation.
async fn apply(
    group: Arc<SimGroup>,
    context: &Context,
    api: &Api<SimGroup>,
    resumed: bool,
) -> Result<Action, Error> {
    let pass = Pass::new(context, api, &group, resumed);
    let resolved = match pass.resolve().await? {
        Step::Go(resolved) => resolved,
        Step::Stop(action) => return Ok(action),
    };
    let statuses = match pass.poll(&resolved).await? {
        Step::Go(statuses) => statuses,
        Step::Stop(action) => return Ok(action),
    };
    let (mut plan, queue) = match pass.next_queued(&resolved, &statuses) {
        Some(next) => next,
        None => {
            with_first_conditions(
                context,
                api,
                &*group,
                (
                    "Observing",
                    "reading the SIMs the selector names at the carrier",
                ),
                pass.observe_and_plan(&resolved, &statuses),
            )
            .await?
        }
    };
    if let Some(why) = plan.ignored_approval.clone() {
        publish(
            context,
            &*group,
            EventType::Warning,
            "InvalidAnnotation",
            why,
        )
        .await;
    }
    // After a restart, a peer selecting by tag may claim SIMs this group looks up without
    // tags: nothing is sent until it has read its SIMs (it does at once), or a while has passed.
    // In a namespace being deleted nothing is sent (see `namespaces`).
    // So is a new tag group that has not read yet (created within the same wait; creation
    // times are the API server's wall clock).
    let wait = jiff::SignedDuration::try_from(context.peer_read_wait).unwrap_or_default();
    let awaiting_peers = (resolved.claims.awaiting_tag_claimants()
        && context.started.elapsed() < context.peer_read_wait)
        || resolved
            .claims
            .awaiting_new_tag_claimants(Timestamp::now() - wait);
    if !plan.actions.is_empty()
        && (awaiting_peers || namespaces::is_terminating(&context.client, &pass.namespace).await)
    {
        for held in std::mem::take(&mut plan.actions) {
            plan.record_unsubmitted(held.sims.len());
        }
        let status = plan.status(&pass.previous);
        report(context, api, &group, status, &pass.previous, &pass.previous).await?;
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let written = pass.act(&resolved, &mut plan).await?;
    context.groups.set_queued(&pass.key, queue);
    let status = plan.status(&pass.previous);
    report(context, api, &group, status, &pass.previous, &written).await?;
    Ok(Action::requeue(plan.requeue_after()))
}

/// What a look at a group's pending actions costs at its carrier.
fn poll_cost(carrier: &dyn Carrier) -> PollCost {
    if carrier.capabilities().action_status_in_one_call {
        PollCost::OneCall
    } else {
        PollCost::Observation
    }
}

/// Whether a step's result lets the reconcile go on, or ends it with `Action`.
enum Step<T> {
    Go(T),
    Stop(Action),
}

/// What one reconcile of a group knows before it reads the carrier.
struct Pass<'a> {
    context: &'a Context,
    api: &'a Api<SimGroup>,
    group: &'a SimGroup,
    resumed: bool,
    key: GroupRef,
    namespace: String,
    previous: SimGroupStatus,
    generation: i64,
}

/// What [`Pass::resolve`] found: the verified carrier client, the other groups' claims, the
/// account's request ledger and the group's last full observation, as of `now`.
struct Resolved {
    carrier: Arc<dyn Carrier>,
    claims: ClaimIndex,
    ledger: Option<Arc<RequestLedger>>,
    last: Option<FullObservation>,
    now: Timestamp,
}

impl<'a> Pass<'a> {
    fn new(
        context: &'a Context,
        api: &'a Api<SimGroup>,
        group: &'a SimGroup,
        resumed: bool,
    ) -> Self {
        Self {
            context,
            api,
            group,
            resumed,
            key: GroupRef::from_obj(group),
            namespace: group.namespace().unwrap_or_default(),
            previous: group.status.clone().unwrap_or_default(),
            generation: group.metadata.generation.unwrap_or(0),
        }
    }

    /// Resolve: the account's verified carrier client, the approval annotation, the budget's
    /// floor, and the other groups' claims. A problem with the account or the budget stalls the
    /// group.
    async fn resolve(&self) -> Result<Step<Resolved>, Error> {
        let (context, group) = (self.context, self.group);
        let account = &group.spec.carrier_ref.name;
        let carrier = match ready_carrier(context, &self.namespace, account).await? {
            Ok(carrier) => carrier,
            Err(problem) if problem.verifying => {
                let wait = wait_for_account(context, self.api, group, &problem.message).await?;
                return Ok(Step::Stop(wait));
            }
            Err(problem) => return self.blocked(problem.reason, problem.message).await,
        };
        if let Some(message) = carrier.selection_problem(&selection_of(group)) {
            return self.blocked("InvalidSelector", message).await;
        }
        if let Some(problem) = not_a_number(&ApprovalAnnotations::of(group), &self.previous) {
            publish(
                context,
                group,
                EventType::Warning,
                "InvalidAnnotation",
                problem,
            )
            .await;
        }
        let now = context.clock.now();
        let last = context.groups.last_full_observation(&self.key);
        let ledger = context
            .carriers
            .ledger(&format!("{}/{account}", self.namespace));
        if let (Some(ledger), Some(last)) = (&ledger, last)
            && let Some(problem) = ledger
                .reading()
                .limit
                .and_then(|limit| budget_floor::group_over_budget(last.requests, limit, account))
        {
            return self.blocked(problem.reason, problem.message).await;
        }
        let (peers, accounts) = peers_and_accounts(context).await?;
        let claims = ClaimIndex::build(&peers, &accounts, Some(&context.members), group);
        Ok(Step::Go(Resolved {
            carrier,
            claims,
            ledger,
            last,
            now,
        }))
    }

    /// Poll: whether the SIMs need reading now. At rest they are read again only when the drift
    /// check is due (events that change nothing the group depends on do not bring it forward; a
    /// changed claim of another group does); the budget may defer the read; and while actions
    /// are pending, the carrier's jobs list (one call) says whether a full observation could
    /// find anything new. Goes on with the carrier's word on the pending actions.
    async fn poll(&self, resolved: &Resolved) -> Result<Step<Vec<ActionStatus>>, Error> {
        let (context, group, previous) = (self.context, self.group, &self.previous);
        let Resolved { last, now, .. } = *resolved;
        let urgency = read_urgency(previous, self.generation, self.resumed);
        if urgency == ReadUrgency::Resync
            && let Some(last) = last
            && last.claims == resolved.claims.fingerprint()
            && let Some(wait) = drift_check_wait(last.at, group.spec.drift_check(), now)
        {
            return Ok(Step::Stop(Action::requeue(wait.min(RESYNC))));
        }
        if let (Some(ledger), Some(last)) = (&resolved.ledger, last)
            && let Err(deferred) = ledger.admit_read(last.requests, urgency)
        {
            return Ok(Step::Stop(
                read_deferred(context, group, deferred, now).await,
            ));
        }
        let pending_ids: Vec<String> = previous
            .pending_actions
            .iter()
            .map(|a| a.id.clone())
            .collect();
        let statuses = match resolved.carrier.action_statuses(&pending_ids).await {
            Ok(statuses) => statuses,
            Err(err) => {
                tracing::debug!(%err, "reading the carrier's job statuses failed");
                Vec::new()
            }
        };
        if previous.observed_generation == Some(self.generation)
            && !self.resumed
            && poll_says_wait(
                &previous.pending_actions,
                &statuses,
                last.map(|o| o.at),
                now,
            )
        {
            let mut status = previous.clone();
            note_carrier_statuses(&mut status.pending_actions, &statuses);
            write_status(context, self.api, group, Some(previous), &status).await?;
            tracing::debug!(group = %self.key, "every pending action unfinished at the carrier; observing later");
            let cost = poll_cost(resolved.carrier.as_ref());
            let wait = pending_backoff(&status.pending_actions, now, cost).unwrap_or(RESYNC);
            return Ok(Step::Stop(Action::requeue(wait)));
        }
        Ok(Step::Go(statuses))
    }

    /// Observe and plan: the selection's pages are streamed from the carrier and folded into
    /// the planner as they come; then the plan is finished (what landed leaves the in-flight
    /// memory; an observe-only group keeps its actions as a report).
    async fn observe_and_plan(
        &self,
        resolved: &Resolved,
        statuses: &[ActionStatus],
    ) -> Result<(Plan, Option<Queued>), Error> {
        let (context, group, previous) = (self.context, self.group, &self.previous);
        let carrier = resolved.carrier.as_ref();
        let in_flight = context
            .groups
            .in_flight(&self.key, &previous.pending_actions, statuses);
        let approval = ApprovalAnnotations::of(group);
        let mut planner = SimGroupPlanner::new(PlanContext {
            spec: &group.spec,
            generation: self.generation,
            approval: &approval,
            previous,
            carrier_limit: carrier.capabilities().max_sims_per_action,
            one_action_at_a_time: carrier.capabilities().one_action_at_a_time,
            poll_cost: poll_cost(carrier),
            carrier_statuses: statuses,
            in_flight: &in_flight,
            claims: &resolved.claims,
            now: resolved.now,
        });
        let selection = selection_of(group);
        let (mut devices, mut iccids) = (HashSet::new(), HashSet::new());
        let (observed, requests) = budget::metered(observe_each(carrier, &selection, |page| {
            // The members found are this group's claim for the others' conflicts, whatever
            // its selector kind (see `claims`).
            for sim in &page {
                devices.extend(sim.device_id);
                if !sim.iccid.is_empty() {
                    iccids.insert(sim.iccid.clone());
                }
            }
            planner.observe(&page)
        }))
        .await;
        observed?;
        if context.members.observed(self.group, devices, iccids) {
            for peer in resolved.claims.claimants() {
                context.peer_wakeups.wake(peer.clone());
            }
        }
        let observation = FullObservation {
            at: resolved.now,
            requests,
            claims: resolved.claims.fingerprint(),
        };
        context.groups.observed_in_full(&self.key, observation);
        let mut plan = planner.finish();
        context.groups.landed(&self.key, &plan.landed);
        if group.spec.management == Management::Observe {
            plan.observe_only();
        }
        // The carrier's own word on its pending jobs, for people.
        plan.note_carrier_statuses(statuses);
        let queued = std::mem::take(&mut plan.queued);
        let queue = if group.spec.management == Management::Manage {
            Queued::new(
                self.generation,
                resolved.claims.fingerprint(),
                plan.corrects_drift,
                queued,
            )
        } else {
            None
        };
        Ok((plan, queue))
    }

    /// The next queued action, where the carrier runs one action of a kind at a time and says
    /// the previous one is final: planned without a new observation (see `queue`). `None`
    /// when there is none, or anything changed since it was planned.
    fn next_queued(
        &self,
        resolved: &Resolved,
        statuses: &[ActionStatus],
    ) -> Option<(Plan, Option<Queued>)> {
        let (context, group, previous) = (self.context, self.group, &self.previous);
        let queue = context.groups.take_queued(&self.key)?;
        if self.resumed || previous.observed_generation != Some(self.generation) {
            return None;
        }
        let corrects_drift = queue.corrects_drift;
        let (next, rest) = queue.next(
            self.generation,
            resolved.claims.fingerprint(),
            &previous.pending_actions,
            statuses,
        )?;
        // The finished actions leave the in-flight memory, as an observation would have them.
        let in_flight = context
            .groups
            .in_flight(&self.key, &previous.pending_actions, statuses);
        let carrier = resolved.carrier.as_ref();
        let approval = ApprovalAnnotations::of(group);
        let ctx = PlanContext {
            spec: &group.spec,
            generation: self.generation,
            approval: &approval,
            previous,
            carrier_limit: carrier.capabilities().max_sims_per_action,
            one_action_at_a_time: true,
            poll_cost: poll_cost(carrier),
            carrier_statuses: statuses,
            in_flight: &in_flight,
            claims: &resolved.claims,
            now: resolved.now,
        };
        let queued_sims = rest.as_ref().map_or(0, Queued::sims);
        tracing::debug!(group = %self.key, "the previous action is final; sending the next queued one");
        Some((
            Plan::next_from_queue(&ctx, next, queued_sims, corrects_drift),
            rest,
        ))
    }

    /// Act: the plan's actions are submitted (see [`submit_changes`]); a change of the
    /// carrier's capabilities on the way (emnify's bulk route refused) has the account checked
    /// again. Returns the status last written.
    async fn act(&self, resolved: &Resolved, plan: &mut Plan) -> Result<SimGroupStatus, Error> {
        let carrier = resolved.carrier.as_ref();
        let capabilities = carrier.capabilities();
        let (context, api, group) = (self.context, self.api, self.group);
        let written = submit_changes(
            context,
            api,
            group,
            carrier,
            &self.key,
            plan,
            &self.previous,
        )
        .await?;
        if carrier.capabilities() != capabilities {
            context.account_rechecks.request();
        }
        Ok(written)
    }

    /// Stalls the group for a problem that a person must fix, and comes back in 30 s.
    async fn blocked<T>(&self, reason: &str, message: String) -> Result<Step<T>, Error> {
        let action = blocked(self.context, self.api, self.group, reason, message).await?;
        Ok(Step::Stop(action))
    }
}

/// Report: the final status, by the one writer, and the events and metrics that follow a
/// change of verdict.
async fn report(
    context: &Context,
    api: &Api<SimGroup>,
    group: &SimGroup,
    status: simfleet_api::SimGroupStatus,
    previous: &simfleet_api::SimGroupStatus,
    written: &simfleet_api::SimGroupStatus,
) -> Result<(), Error> {
    let conflicts =
        |s: &simfleet_api::SimGroupStatus| s.counts.as_ref().map_or(0, |c| c.conflicting);
    if conflicts(&status) > 0 && conflicts(previous) == 0 {
        publish(
            context,
            group,
            EventType::Warning,
            "Conflict",
            format!(
                "{} claimed by another SimGroup with the opposite state; they are left unchanged",
                count(conflicts(&status), "SIM")
            ),
        )
        .await;
    }
    let drifted = |s: &simfleet_api::SimGroupStatus| {
        s.problem_sims
            .iter()
            .filter(|p| p.reason == ProblemReason::Drift)
            .map(|p| (p.device_id.clone(), p.iccid.clone()))
            .collect::<Vec<_>>()
    };
    let found = drifted(&status);
    if !found.is_empty() && found != drifted(previous) {
        let sample: Vec<String> = status
            .problem_sims
            .iter()
            .filter(|p| p.reason == ProblemReason::Drift)
            .take(3)
            .map(|p| {
                format!(
                    "{} (device {}): {}",
                    p.iccid,
                    p.device_id.as_deref().unwrap_or("unknown"),
                    p.message
                )
            })
            .collect();
        let total = status.counts.as_ref().map_or(0, |c| c.drifted);
        publish(
            context,
            group,
            EventType::Warning,
            "DriftDetected",
            format!(
                "{} changed outside simfleet; {}",
                count(total, "SIM"),
                sample.join("; ")
            ),
        )
        .await;
    }
    let system_paused =
        |s: &simfleet_api::SimGroupStatus| s.counts.as_ref().map_or(0, |c| c.paused_by_system);
    if group.spec.state == simfleet_api::SimState::Active
        && group.spec.system_paused == simfleet_api::SystemPausedPolicy::Report
        && system_paused(&status) > system_paused(previous)
    {
        let sample: Vec<&str> = status
            .problem_sims
            .iter()
            .filter(|p| p.reason == ProblemReason::PausedBySystem)
            .take(5)
            .map(|p| p.iccid.as_str())
            .collect();
        publish(
            context,
            group,
            EventType::Warning,
            "PausedBySystem",
            format!(
                "{} paused by the carrier's system (was {}), e.g. {}; left paused (systemPaused: Report): settle them with the carrier, or set systemPaused: Resume",
                count(system_paused(&status), "SIM"),
                system_paused(previous),
                sample.join(", ")
            ),
        )
        .await;
    }
    if let Some(counts) = &status.counts {
        context.metrics.sim_group(
            &group.namespace().unwrap_or_default(),
            &group.name_any(),
            group.spec.state,
            counts,
            status.pending_actions.len(),
        );
    }
    let converged = conditions::is_true(&status.conditions, READY)
        && !conditions::is_true(&previous.conditions, READY);
    write_status(context, api, group, Some(written), &status).await?;
    if converged {
        publish(
            context,
            group,
            EventType::Normal,
            "Converged",
            status
                .conditions
                .iter()
                .find(|c| c.type_ == READY)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        )
        .await;
    }
    Ok(())
}

/// Act: submits the plan's actions in order, each action's id written to status before the
/// next is sent; with `onDelete: Restore`, the SIMs' earlier states are recorded first. After a
/// failed submit nothing more is sent (the next reconcile observes first). Returns the status
/// last written.
async fn submit_changes(
    context: &Context,
    api: &Api<SimGroup>,
    group: &SimGroup,
    carrier: &dyn simfleet_carrier::Carrier,
    key: &GroupRef,
    plan: &mut crate::sim_group::plan::Plan,
    previous: &simfleet_api::SimGroupStatus,
) -> Result<simfleet_api::SimGroupStatus, Error> {
    let actions = std::mem::take(&mut plan.actions);
    // With onDelete: Restore, the SIMs' earlier states are recorded before they change (drift
    // corrections are not first claims: those SIMs were recorded, or were in state, before).
    let record = match group.spec.on_delete {
        SimGroupDeletePolicy::Restore if !actions.is_empty() && !plan.corrects_drift => {
            Some(restore_store::load(&context.client, group).await?)
        }
        _ => None,
    };
    let mut log = ChangeLog {
        context,
        api,
        group,
        plan,
        previous,
        written: previous.clone(),
        record,
    };
    let failed = act(context, carrier, key, &actions, &mut log).await?;
    let ChangeLog { plan, written, .. } = log;
    if let Some(Failed { at, error }) = failed {
        let action = &actions[at];
        publish(
            context,
            group,
            EventType::Warning,
            "SubmitFailed",
            format!(
                "{:?} of {}: {error}",
                action.change,
                count(action.sims.len() as u64, "SIM")
            ),
        )
        .await;
        for unsent in &actions[at..] {
            plan.record_unsubmitted(unsent.sims.len());
        }
    }
    Ok(written)
}

/// A group's submits: the restore record before each, the plan's status and events after.
struct ChangeLog<'a> {
    context: &'a Context,
    api: &'a Api<SimGroup>,
    group: &'a SimGroup,
    plan: &'a mut crate::sim_group::plan::Plan,
    previous: &'a simfleet_api::SimGroupStatus,
    written: simfleet_api::SimGroupStatus,
    record: Option<crate::sim_group::restore::RestoreRecord>,
}

impl ChangeLog<'_> {
    /// Writes the plan's status as it stands (a failed write stops the pass).
    async fn write_plan_status(&mut self) -> Result<(), Error> {
        let status = self.plan.status(self.previous);
        write_status(
            self.context,
            self.api,
            self.group,
            Some(&self.written),
            &status,
        )
        .await?;
        self.written = status;
        Ok(())
    }
}

impl ActionLog for ChangeLog<'_> {
    fn before<'a>(
        &'a mut self,
        action: &'a crate::sim_group::plan::PlannedAction,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Nothing is sent that status does not already show: the plan's status is written
            // before the first submit, so a status the API server refuses (or cannot take)
            // stops the pass before the carrier hears of anything.
            if self.written == *self.previous {
                self.write_plan_status().await?;
            }
            if let Some(record) = self.record.as_mut()
                && record.note(action.change, &action.sims)
            {
                restore_store::save(&self.context.client, self.group, record).await?;
            }
            Ok(())
        })
    }

    fn sent<'a>(&'a mut self, sent: Sent<'a>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Sent {
                action,
                id,
                submission,
            } = sent;
            self.plan.record_submission(
                id.clone(),
                action.change,
                submission.accepted,
                &submission.refused,
            );
            // The action id reaches status before anything else is sent (crash safety).
            self.write_plan_status().await?;
            publish(
                self.context,
                self.group,
                EventType::Normal,
                "ActionSubmitted",
                format!(
                    "{:?} of {} submitted as carrier action {id}",
                    action.change,
                    count(submission.accepted as u64, "SIM")
                ),
            )
            .await;
            if !submission.refused.is_empty() {
                publish(
                    self.context,
                    self.group,
                    EventType::Warning,
                    "SimsRefused",
                    format!(
                        "the carrier refused {} of action {id}",
                        count(submission.refused.len() as u64, "SIM")
                    ),
                )
                .await;
            }
            Ok(())
        })
    }
}

async fn cleanup(group: Arc<SimGroup>, context: &Context) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let key = GroupRef::from_obj(&*group);
    let account_name = &group.spec.carrier_ref.name;
    if group.spec.on_delete == SimGroupDeletePolicy::Restore
        && group.spec.management == Management::Observe
    {
        publish(
            context,
            &*group,
            EventType::Normal,
            "RestoreSkipped",
            "management: Observe submits nothing, on deletion either; the SIMs are left as they are".into(),
        )
        .await;
    } else if group.spec.on_delete == SimGroupDeletePolicy::Restore {
        let record = restore_store::load(&context.client, &group).await?;
        if record.is_empty() {
            publish(
                context,
                &*group,
                EventType::Normal,
                "Restored",
                "no SIM was changed by this group; nothing to restore".into(),
            )
            .await;
        } else {
            let carrier = match cleanup_carrier(context, &namespace, account_name).await? {
                Ok(carrier) => carrier,
                Err(problem) if problem.verifying => return Err(Error::AccountVerifying),
                Err(problem) => {
                    // Deletion waits for a usable account; onDelete: Orphan lets it go.
                    let api: Api<SimGroup> = Api::namespaced(context.client.clone(), &namespace);
                    blocked(
                        context,
                        &api,
                        &group,
                        "RestoreBlocked",
                        format!("cannot restore the SIMs: {}; fix the account, or set onDelete: Orphan to delete the group without restoring", problem.message),
                    )
                    .await?;
                    return Err(Error::RestoreBlocked);
                }
            };
            restore_store::step(&group, context, carrier, &key, &record).await?;
        }
    }
    // A record left from an earlier policy (Restore, then Orphan) must not hold the
    // namespace's deletion: its ConfigMaps carry a finalizer that only this releases.
    restore_store::remove(&context.client, &group).await?;
    context
        .metrics
        .forget_sim_group(&namespace, &group.name_any());
    context.groups.forget(&key);
    context
        .members
        .forget(&crate::controller::memory_key(&*group));
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
