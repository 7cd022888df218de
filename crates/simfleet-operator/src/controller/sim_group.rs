//! SimGroup: observe the selected SIMs (streamed), plan, submit the carrier actions, and write
//! status. Each submitted action id reaches status before the next action is sent, so a crash
//! never loses one; after a restart, pending states at the carrier keep SIMs from being resent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::{Predicate, PredicateConfig, predicates};
use kube::runtime::{WatchStreamExt, watcher};

use super::act::{ActionLog, Failed, Sent, act};
use super::events::{publish, read_deferred};
use super::pause::{self, PauseCheck};
use super::resource_metrics::Shown;
use super::{
    Context, Error, FullObservation, GroupStores, SIM_GROUP_FINALIZER, api_for, cleanup_carrier,
    ready_carrier, restore, write_status,
};
use crate::plan::budget_floor;
use crate::plan::claims::ClaimIndex;
use crate::plan::sim_group::{
    PlanContext, RESYNC, SimGroupPlanner, blocked_status, drift_check_wait, note_carrier_statuses,
    pending_backoff, poll_says_wait, read_urgency,
};
use crate::resolve::{approval_annotation_problem, approved_generation, selection_of};
use simfleet_api::conditions::{self, READY};
use simfleet_api::model::ReadUrgency;
use simfleet_api::{CarrierAccount, Management, ProblemReason, SimGroup, SimGroupDeletePolicy};
use simfleet_carrier::{budget, observe_each};

/// Runs the SimGroup controller.
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    labels: Option<String>,
    stop: simfleet_core::shutdown::Stop,
) {
    let groups: Api<SimGroup> = api_for(&context.client, namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(labels) = labels {
        config = config.labels(&labels);
    }
    let accounts: Api<CarrierAccount> = api_for(&context.client, namespace.as_deref());
    // The group's own changes that are worth a reconcile: spec (generation), annotations (pause,
    // approval), labels and finalizers; its deletion too, since the API server bumps the
    // generation when deletion starts. Its status writes are not: each would be a full
    // observation (on emnify, a listing of the organisation).
    let (reader, writer) = reflector::store();
    let own_changes = watcher(groups.clone(), config.clone())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::labels)
                .combine(predicates::finalizers),
            PredicateConfig::default(),
        );
    let controller = Controller::for_stream(own_changes, reader);
    let peers = controller.store();
    let users = controller.store();
    context
        .metrics
        .watch("SimGroup", controller.store(), |group: &SimGroup| {
            let status = group.status.as_ref();
            Shown {
                conditions: status.map_or(&[], |s| &s.conditions[..]),
                oldest_pending: status
                    .and_then(|s| s.pending_actions.iter().map(|a| a.submitted_at.0).min()),
            }
        });
    // Peers re-plan on a change of a group's claims only: its spec, or the start of its
    // deletion (a group being deleted claims nothing; the generation moves then too).
    let peer_specs = watcher(groups, config)
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let (account_reader, account_writer) = reflector::store();
    let account_changes = super::carriers::account_changes(accounts, account_writer);
    let _ = context.group_stores.set(GroupStores {
        groups: controller.store(),
        accounts: account_reader,
    });
    let controller = controller
        .watches_stream(peer_specs, move |changed: SimGroup| {
            overlapping(&peers, &changed)
        })
        .watches_stream(account_changes, move |account: CarrierAccount| {
            users
                .state()
                .into_iter()
                .filter(|g| {
                    g.namespace() == account.namespace()
                        && g.spec.carrier_ref.name == account.name_any()
                })
                .map(|g| ObjectRef::from_obj(&*g))
                .collect::<Vec<_>>()
        });
    super::drive(controller, reconcile, context, stop).await;
}

/// The groups and accounts of `namespace`, from the SimGroup controller's watch caches (a group
/// created a moment ago that the cache has not seen yet is seen by its own first reconcile,
/// whose claims then re-plan this one); listed when the controller is not running (tests).
async fn peers_and_accounts(
    context: &Context,
    api: &Api<SimGroup>,
    namespace: &str,
) -> Result<(Vec<SimGroup>, Vec<CarrierAccount>), Error> {
    let in_namespace = |ns: Option<String>| ns.as_deref() == Some(namespace);
    if let Some(stores) = context.group_stores.get() {
        let (groups, accounts) = futures::join!(
            stores.groups.wait_until_ready(),
            stores.accounts.wait_until_ready()
        );
        if groups.is_ok() && accounts.is_ok() {
            return Ok((
                stores
                    .groups
                    .state()
                    .iter()
                    .filter(|g| in_namespace(g.namespace()))
                    .map(|g| (**g).clone())
                    .collect(),
                stores
                    .accounts
                    .state()
                    .iter()
                    .filter(|a| in_namespace(a.namespace()))
                    .map(|a| (**a).clone())
                    .collect(),
            ));
        }
    }
    let peers = api.list(&ListParams::default()).await?.items;
    let accounts = Api::<CarrierAccount>::namespaced(context.client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    Ok((peers, accounts))
}

/// The other groups in the same namespace that list a SIM or tag `changed` also lists.
fn overlapping(store: &Store<SimGroup>, changed: &SimGroup) -> Vec<ObjectRef<SimGroup>> {
    let iccids: HashSet<&String> = changed.spec.selector.iccids.iter().flatten().collect();
    let devices: HashSet<&u64> = changed.spec.selector.device_ids.iter().flatten().collect();
    let tags: HashSet<&String> = changed.spec.selector.tags.iter().flatten().collect();
    store
        .state()
        .into_iter()
        .filter(|g| g.namespace() == changed.namespace() && g.name_any() != changed.name_any())
        .filter(|g| {
            g.spec
                .selector
                .iccids
                .iter()
                .flatten()
                .any(|i| iccids.contains(i))
                || g.spec
                    .selector
                    .device_ids
                    .iter()
                    .flatten()
                    .any(|d| devices.contains(d))
                // Different tags can select the same SIMs: tag groups re-plan each other.
                || (!tags.is_empty() && g.spec.selector.tags.as_ref().is_some_and(|t| !t.is_empty()))
        })
        .map(|g| ObjectRef::from_obj(&*g))
        .collect()
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

async fn reconcile(group: Arc<SimGroup>, context: Arc<Context>) -> Result<Action, Error> {
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
    .map_err(super::from_finalizer)
}

/// Observes, plans and submits. `resumed`: the group was paused until now, so status is
/// rebuilt from a full observation.
async fn apply(
    group: Arc<SimGroup>,
    context: &Context,
    api: &Api<SimGroup>,
    resumed: bool,
) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let carrier = match ready_carrier(context, &namespace, &group.spec.carrier_ref.name).await? {
        Ok(carrier) => carrier,
        Err(problem) => {
            return blocked(context, api, &group, problem.reason, problem.message).await;
        }
    };
    if let Some(problem) = approval_annotation_problem(&group) {
        publish(
            context,
            &*group,
            EventType::Warning,
            "InvalidAnnotation",
            problem,
        )
        .await;
    }
    let key = super::memory_key(&*group);
    let previous = group.status.clone().unwrap_or_default();
    let selection = selection_of(&group);
    let generation = group.metadata.generation.unwrap_or(0);
    // While actions are pending, the carrier's jobs list (one call) says whether a full
    // observation could find anything new; until an action finishes it is skipped.
    let now = context.clock.now();
    let pending_ids: Vec<String> = previous
        .pending_actions
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let account_key = format!("{namespace}/{}", group.spec.carrier_ref.name);
    let last = context.last_full_observation(&key);
    let urgency = read_urgency(&previous, generation, resumed);
    let ledger = context.carriers.ledger(&account_key);
    if let (Some(ledger), Some(last)) = (&ledger, last) {
        let account = &group.spec.carrier_ref.name;
        if let Some(problem) = ledger
            .reading()
            .limit
            .and_then(|limit| budget_floor::group_over_budget(last.requests, limit, account))
        {
            return blocked(context, api, &group, problem.reason, problem.message).await;
        }
    }
    let (peers, accounts) = peers_and_accounts(context, api, &namespace).await?;
    let claims = ClaimIndex::build(&peers, &accounts, &group);
    // At rest, the SIMs are read again only when the drift check is due: events that change
    // nothing the group depends on (its own status writes, other groups' unrelated changes) do
    // not bring it forward; a changed claim of another group does.
    if urgency == ReadUrgency::Resync
        && let Some(last) = last
        && last.claims == claims.fingerprint()
        && let Some(wait) = drift_check_wait(last.at, group.spec.drift_check(), now)
    {
        return Ok(Action::requeue(wait.min(RESYNC)));
    }
    if let (Some(ledger), Some(last)) = (&ledger, last)
        && let Err(deferred) = ledger.admit_read(last.requests, urgency)
    {
        return Ok(read_deferred(context, &*group, deferred, now).await);
    }
    let statuses = match carrier.action_statuses(&pending_ids).await {
        Ok(statuses) => statuses,
        Err(err) => {
            tracing::debug!(%err, "reading the carrier's job statuses failed");
            Vec::new()
        }
    };
    if previous.observed_generation == Some(generation)
        && !resumed
        && poll_says_wait(
            &previous.pending_actions,
            &statuses,
            last.map(|o| o.at),
            now,
        )
    {
        let mut status = previous.clone();
        note_carrier_statuses(&mut status.pending_actions, &statuses);
        write_status(context, api, &group, Some(&previous), &status).await?;
        tracing::debug!(group = %key, "every pending action unfinished at the carrier; observing later");
        return Ok(Action::requeue(
            pending_backoff(&status.pending_actions, now).unwrap_or(RESYNC),
        ));
    }
    let in_flight = context.in_flight(&key, &previous.pending_actions, &statuses);
    let approved = approved_generation(&group);
    let mut planner = SimGroupPlanner::new(PlanContext {
        spec: &group.spec,
        generation,
        approved_generation: approved,
        previous: &previous,
        carrier_limit: carrier.capabilities().max_sims_per_action,
        in_flight: &in_flight,
        claims: &claims,
        now,
    });
    let (observed, requests) =
        budget::metered(observe_each(carrier.as_ref(), &selection, |page| {
            planner.observe(&page)
        }))
        .await;
    observed?;
    context.observed_in_full(
        &key,
        FullObservation {
            at: now,
            requests,
            claims: claims.fingerprint(),
        },
    );
    let mut plan = planner.finish();
    context.landed(&key, &plan.landed);
    if group.spec.management == Management::Observe {
        plan.observe_only();
    }
    // The carrier's own word on its pending jobs, for people.
    plan.note_carrier_statuses(&statuses);
    let capabilities = carrier.capabilities();
    let written = submit_changes(
        context,
        api,
        &group,
        carrier.as_ref(),
        &key,
        &mut plan,
        &previous,
    )
    .await?;
    if carrier.capabilities() != capabilities {
        // E.g. emnify's bulk route was refused: the account's status says so now.
        context.account_rechecks.request();
    }
    report(
        context,
        api,
        &group,
        plan.status(&previous),
        &previous,
        &written,
    )
    .await?;
    Ok(Action::requeue(plan.requeue_after()))
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
            format!("{} SIMs are claimed by another SimGroup with the opposite state; they are left unchanged", conflicts(&status)),
        )
        .await;
    }
    let drifted = |s: &simfleet_api::SimGroupStatus| {
        s.problem_sims
            .iter()
            .filter(|p| p.reason == ProblemReason::Drift)
            .map(|p| (p.device_id, p.iccid.clone()))
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
                    p.device_id.unwrap_or(0),
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
                "{total} SIMs were changed outside simfleet; {}",
                sample.join("; ")
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
    key: &str,
    plan: &mut crate::plan::sim_group::Plan,
    previous: &simfleet_api::SimGroupStatus,
) -> Result<simfleet_api::SimGroupStatus, Error> {
    let actions = std::mem::take(&mut plan.actions);
    // With onDelete: Restore, the SIMs' earlier states are recorded before they change (drift
    // corrections are not first claims: those SIMs were recorded, or were in state, before).
    let record = match group.spec.on_delete {
        SimGroupDeletePolicy::Restore if !actions.is_empty() && !plan.corrects_drift => {
            Some(restore::load(&context.client, group).await?)
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
            format!("{:?} of {} SIMs: {error}", action.change, action.sims.len()),
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
    plan: &'a mut crate::plan::sim_group::Plan,
    previous: &'a simfleet_api::SimGroupStatus,
    written: simfleet_api::SimGroupStatus,
    record: Option<crate::plan::restore::RestoreRecord>,
}

impl ActionLog for ChangeLog<'_> {
    fn before<'a>(
        &'a mut self,
        action: &'a crate::plan::sim_group::PlannedAction,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if let Some(record) = self.record.as_mut()
                && record.note(action.change, &action.sims)
            {
                restore::save(&self.context.client, self.group, record).await?;
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
            publish(
                self.context,
                self.group,
                EventType::Normal,
                "ActionSubmitted",
                format!(
                    "{:?} of {} SIMs submitted as carrier action {id}",
                    action.change, submission.accepted
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
                        "the carrier refused {} SIMs of action {id}",
                        submission.refused.len()
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
    let key = super::memory_key(&*group);
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
        let record = restore::load(&context.client, &group).await?;
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
            restore::step(&group, context, carrier, &key, &record).await?;
        }
    }
    context
        .metrics
        .forget_sim_group(&namespace, &group.name_any());
    context.forget_in_flight(&key);
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "sim_group_tests.rs"]
mod tests;
