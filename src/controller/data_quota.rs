//! DataQuota: resolve the target devices, read each quota, set or top up where the plan says,
//! report the carrier's quota events once, and write status. Progress reaches status after every
//! batch; a top-up's absolute result is journaled before it is sent (see `plan::data_quota`).

use std::collections::{BTreeMap, BTreeSet};

use jiff::SignedDuration;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;

use super::events::{publish, read_deferred};
use super::pause::{self, PauseCheck};
use super::quota_events::{EventSource, absorb_own_assignments, report_events};
use super::quota_targets::targets;
use super::resource_metrics::Shown;
use super::{Context, Error, api_for, ready_carrier, write_status};
use crate::api::{
    DataQuota, Management, QuotaDeletePolicy, QuotaMode, QuotaProgress, TopUpInFlight,
};
use crate::carrier::CarrierError;
use crate::carrier::budget;
use crate::model::{QuotaReading, QuotaSetting, ReadUrgency};
use crate::plan::data_quota::{
    self, DeviceAction, EventMark, Outcome, QuotaTally, RETRY_LIMIT, SpecProblem, decide,
    decide_observed, progress_for,
};
use crate::plan::quota_events;
use crate::plan::quota_watch::{
    QuotaView, Seen, listing_window, newest, steady_reads, targets_digest,
};
use crate::resolve::Targets;

/// Finalizer of DataQuotas (`onDelete` runs before it is removed).
pub const DATA_QUOTA_FINALIZER: &str = "simfleet.io/data-quota";
/// Devices per batch: progress reaches status after each.
const BATCH: usize = 100;
/// Per-device calls queued at once; the carrier client's own bound (the account's
/// `concurrency`) and rate limit decide how many are really in flight.
const IN_FLIGHT: usize = 64;

/// Runs the DataQuota controller.
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    labels: Option<String>,
    stop: crate::shutdown::Stop,
) {
    let quotas: Api<DataQuota> = api_for(&context.client, namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(labels) = labels {
        config = config.labels(&labels);
    }
    let accounts: Api<crate::api::CarrierAccount> = api_for(&context.client, namespace.as_deref());
    let controller = Controller::new(quotas, config);
    let users = controller.store();
    context
        .metrics
        .watch("DataQuota", controller.store(), |quota: &DataQuota| Shown {
            conditions: quota.status.as_ref().map_or(&[], |s| &s.conditions[..]),
            oldest_pending: None,
        });
    let changes = super::AccountChanges::default();
    // An account was paused, resumed, verified or broken: its quotas know at once.
    let controller = controller.watches(
        accounts,
        watcher::Config::default(),
        move |account: crate::api::CarrierAccount| {
            if !changes.changed(&account) {
                return Vec::new();
            }
            users
                .state()
                .into_iter()
                .filter(|q| {
                    q.namespace() == account.namespace()
                        && q.spec.carrier_ref.name == account.name_any()
                })
                .map(|q| kube::runtime::reflector::ObjectRef::from_obj(&*q))
                .collect::<Vec<_>>()
        },
    );
    super::drive(controller, reconcile, error_policy, context, stop).await;
}

async fn reconcile(quota: Arc<DataQuota>, context: Arc<Context>) -> Result<Action, Error> {
    let (object, measured_context) = (quota.clone(), context.clone());
    super::reconciled(&measured_context, &*object, reconcile_once(quota, context)).await
}

async fn reconcile_once(quota: Arc<DataQuota>, context: Arc<Context>) -> Result<Action, Error> {
    let namespace = quota.namespace().unwrap_or_default();
    let api: Api<DataQuota> = Api::namespaced(context.client.clone(), &namespace);
    // Before the finalizer: a paused quota is neither applied nor cleaned up. Every apply
    // writes all three conditions, so a resumed one needs nothing special.
    let account = quota.spec.carrier_ref.name.clone();
    if let PauseCheck::Paused(action) =
        pause::check(&context, &api, &*quota, Some(&account)).await?
    {
        return Ok(action);
    }
    finalizer(&api, DATA_QUOTA_FINALIZER, quota, |event| async {
        match event {
            Finalizer::Apply(quota) => apply(quota, &context, &api).await,
            Finalizer::Cleanup(quota) => cleanup(quota, &context).await,
        }
    })
    .await
    .map_err(super::from_finalizer)
}

fn error_policy(quota: Arc<DataQuota>, error: &Error, context: Arc<Context>) -> Action {
    super::retry_policy(&*quota, error, &context)
}

/// Writes a Stalled status naming the problem; checks again in a minute (the fix may be
/// elsewhere, e.g. a SimGroup created later).
async fn stall(
    context: &Context,
    api: &Api<DataQuota>,
    quota: &DataQuota,
    problem: SpecProblem,
) -> Result<Action, Error> {
    let previous = quota.status.clone().unwrap_or_default();
    let generation = quota.metadata.generation.unwrap_or(0);
    let status = data_quota::stalled_status(&previous, generation, &problem, context.clock.now());
    write_status(api, quota, quota.status.as_ref(), &status).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn failure(error: &CarrierError) -> Outcome<'static> {
    // The endpoint is deleted (409) or unknown (404): no quota can be set; not retried.
    if let CarrierError::Conflict { message } | CarrierError::NotFound { message } = error {
        return Outcome::Ineligible(format!(
            "the carrier cannot give this device a quota: {message}"
        ));
    }
    Outcome::Failed {
        refused: matches!(
            error,
            CarrierError::Rejected { .. } | CarrierError::Unprocessable { .. }
        ),
        message: error.to_string(),
    }
}

async fn apply(
    quota: Arc<DataQuota>,
    context: &Context,
    api: &Api<DataQuota>,
) -> Result<Action, Error> {
    // Read fresh, not from the watch cache: the cache may not hold this controller's last
    // status write yet, and the progress journal and the event mark must never be stale (a
    // stale journal would top up twice).
    let Some(quota) = api.get_opt(&quota.name_any()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let now = context.clock.now();
    let namespace = quota.namespace().unwrap_or_default();
    let generation = quota.metadata.generation.unwrap_or(0);
    let previous = quota.status.clone().unwrap_or_default();
    let account = &quota.spec.carrier_ref.name;
    let carrier = match ready_carrier(context, &namespace, account).await? {
        Ok(carrier) => carrier,
        Err(problem) => {
            let problem = SpecProblem {
                reason: problem.reason,
                message: format!("carrierRef: {}", problem.message),
            };
            return stall(context, api, &quota, problem).await;
        }
    };
    if !carrier.capabilities().data_quota {
        let problem = SpecProblem {
            reason: "QuotaNotSupported",
            message: format!(
                "carrierRef: CarrierAccount {account} is a Hologram account, and Hologram has no per-device data quota API; use an emnify (or simulator) account"
            ),
        };
        return stall(context, api, &quota, problem).await;
    }
    // A reconcile triggered only by this controller's own status write (the watch sees every
    // change) has nothing to do until the resync: it makes no carrier call.
    let key = format!("{namespace}/{}", quota.name_any());
    let trigger = trigger_of(&quota);
    if let Some(wait) = context
        .quota_views
        .lock()
        .expect("views lock")
        .get(&key)
        .and_then(|view| view.until_resync(trigger, quota.status.as_ref(), now))
    {
        return Ok(Action::requeue(wait));
    }
    let urgency = data_quota::read_urgency(&previous, generation);
    if let Some(ledger) = context.carriers.ledger(&format!("{namespace}/{account}")) {
        // Reading each target once is the least a DataQuota can cost.
        let observation = previous.counts.as_ref().map_or(0, |c| c.targeted) + 1;
        if let Some(limit) = ledger.reading().limit.filter(|limit| observation > *limit) {
            let problem = SpecProblem {
                reason: "BudgetTooSmall",
                message: format!(
                    "reading this DataQuota's {} devices once costs {observation} carrier requests, more than CarrierAccount {account}'s budget of {limit} a month; raise spec.budget.requestsPerMonth on the account or target fewer devices",
                    observation - 1
                ),
            };
            return stall(context, api, &quota, problem).await;
        }
        // A resync costs what the last one did; a needed read waits only for a spent month.
        let cost = match urgency {
            ReadUrgency::Resync => context.quota_requests(&key).unwrap_or(1),
            ReadUrgency::Needed => 1,
        };
        if let Err(deferred) = ledger.admit_read(cost, urgency) {
            return Ok(read_deferred(context, &*quota, deferred, now).await);
        }
    }
    let (result, requests) =
        budget::metered(apply_at(quota.clone(), context, api, carrier, now)).await;
    if urgency == ReadUrgency::Resync && requests > 0 {
        context.quota_requests_were(&key, requests);
    }
    result
}

/// The part of a DataQuota's reconcile that reads and writes the carrier.
async fn apply_at(
    quota: Arc<DataQuota>,
    context: &Context,
    api: &Api<DataQuota>,
    carrier: Arc<dyn crate::carrier::Carrier>,
    now: jiff::Timestamp,
) -> Result<Action, Error> {
    let namespace = quota.namespace().unwrap_or_default();
    let generation = quota.metadata.generation.unwrap_or(0);
    let previous = quota.status.clone().unwrap_or_default();
    let trigger = trigger_of(&quota);
    let mut progress = match progress_for(&quota.spec, generation, previous.progress.as_ref(), now)
    {
        Ok(progress) => progress,
        Err(problem) => return stall(context, api, &quota, problem).await,
    };
    let Targets {
        devices,
        ineligible,
    } = match targets(context, &quota, carrier.as_ref()).await? {
        Ok(targets) => targets,
        Err(problem) => return stall(context, api, &quota, problem).await,
    };
    let mut written = previous.clone();
    // Observe-only: read and plan, never set; the progress record is neither sent nor moved.
    let observe = quota.spec.management == Management::Observe;
    // Top-ups journaled before a crash are sent again as they are: never read and added twice.
    if !observe && !progress.top_ups_in_flight.is_empty() {
        for entry in progress.top_ups_in_flight.clone() {
            carrier
                .set_quota(
                    entry.device_id,
                    &data_quota::declared(&quota.spec, &progress, entry.volume_mb),
                )
                .await?;
            progress.done_through = progress.done_through.max(Some(entry.device_id));
            progress.retry_device_ids.retain(|d| *d != entry.device_id);
        }
        progress.top_ups_in_flight.clear();
        written = with_progress(&quota, api, &written, &progress).await?;
    }
    // Once the generation is applied, one organisation-wide listing of quota events says which
    // devices changed since the last reconcile; only those are read again, with the audit's
    // slice. Otherwise (no view in memory, the target or generation changed, the listing is
    // unavailable or incomplete) every device is read.
    let key = format!("{namespace}/{}", quota.name_any());
    let digest = targets_digest(&devices, &ineligible);
    let prior = context
        .quota_views
        .lock()
        .expect("views lock")
        .remove(&key)
        .filter(|v| v.generation == generation && v.targets == digest && v.observe_only == observe);
    let applied = progress.complete
        && progress.retry_device_ids.is_empty()
        && progress.top_ups_in_flight.is_empty();
    let anchor = prior
        .as_ref()
        .and_then(|v| v.anchor)
        .or(EventMark::of(&previous).time);
    let listing = carrier
        .org_quota_events(listing_window(anchor, now))
        .await
        .unwrap_or_else(|err| {
            tracing::debug!(%err, "listing the organisation's quota events failed");
            None
        });
    let listed_events = listing.as_ref().map_or(&[][..], |l| &l.events[..]);
    let anchor = newest(anchor, listed_events);
    let listed: BTreeSet<u64> = listed_events.iter().map(|e| e.event.id).collect();
    let (to_read, mut view) = match (prior, &listing) {
        (Some(view), Some(found)) if applied && found.complete => {
            let (reads, cursor, audited_to) = steady_reads(
                &view,
                &devices,
                &found.events,
                now,
                context.quota_audit_period,
            );
            tracing::debug!(quota = %key, reads = reads.len(), devices = devices.len(), "between resyncs: reading the changed devices and the audit's slice");
            let view = QuotaView {
                audit_cursor: cursor,
                audited_to,
                anchor,
                listed,
                ..view
            };
            (reads, view)
        }
        _ => (
            devices.clone(),
            QuotaView {
                generation,
                observe_only: observe,
                targets: digest,
                devices: BTreeMap::new(),
                anchor,
                listed,
                trigger,
                written: None,
                due_at: now,
                audit_cursor: None,
                audited_to: now,
            },
        ),
    };
    for (device, why) in &ineligible {
        view.devices.insert(*device, Seen::Ineligible(why.clone()));
    }
    let mut watch_events = Vec::new();
    let mut set_now = BTreeSet::new();
    for batch in to_read.chunks(BATCH) {
        let readings: Vec<(u64, Result<Option<QuotaReading>, CarrierError>)> =
            stream::iter(batch.iter().copied())
                .map(|device| {
                    let carrier = carrier.clone();
                    async move { (device, carrier.read_quota(device).await) }
                })
                .buffered(IN_FLIGHT)
                .collect()
                .await;
        let mut sends: Vec<(u64, QuotaSetting)> = Vec::new();
        let mut top_ups = Vec::new();
        let mut failed = Vec::new();
        for (device, reading) in &readings {
            let reading = match reading {
                Ok(reading) => reading.as_ref(),
                Err(error) => {
                    let outcome = failure(error);
                    if matches!(outcome, Outcome::Failed { .. }) {
                        failed.push(*device);
                    }
                    note(&mut view, *device, outcome);
                    continue;
                }
            };
            if reading.is_some_and(|r| quota_events::may_have_events(r, quota.spec.volume_mb)) {
                watch_events.push(*device);
            }
            if observe {
                match decide_observed(&quota.spec, &progress, *device, reading) {
                    DeviceAction::Keep => note(&mut view, *device, Outcome::Read(reading)),
                    DeviceAction::Missing => note(&mut view, *device, Outcome::Missing),
                    DeviceAction::Set(setting) | DeviceAction::TopUp(setting) => note(
                        &mut view,
                        *device,
                        Outcome::WouldChange {
                            reading,
                            setting: &setting,
                            top_up: quota.spec.mode == QuotaMode::TopUp,
                        },
                    ),
                }
                continue;
            }
            match decide(&quota.spec, &progress, *device, reading) {
                DeviceAction::Keep => note(&mut view, *device, Outcome::Read(reading)),
                DeviceAction::Missing => note(&mut view, *device, Outcome::Missing),
                DeviceAction::Set(s) => sends.push((*device, s)),
                DeviceAction::TopUp(s) => {
                    top_ups.push(TopUpInFlight {
                        device_id: *device,
                        volume_mb: s.volume_mb,
                    });
                    sends.push((*device, s));
                }
            }
        }
        if !top_ups.is_empty() {
            // The journal reaches status before any top-up of the batch is sent.
            progress.top_ups_in_flight = top_ups;
            written = with_progress(&quota, api, &written, &progress).await?;
        }
        let results: Vec<(u64, QuotaSetting, Result<(), CarrierError>)> = stream::iter(sends)
            .map(|(device, s)| {
                let carrier = carrier.clone();
                async move {
                    let result = carrier.set_quota(device, &s).await;
                    (device, s, result)
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        for (device, s, result) in &results {
            match result {
                Ok(()) => {
                    set_now.insert(*device);
                    note(&mut view, *device, Outcome::Set(s));
                }
                Err(error) => {
                    let outcome = failure(error);
                    if matches!(outcome, Outcome::Failed { .. }) {
                        failed.push(*device);
                    }
                    note(&mut view, *device, outcome);
                }
            }
        }
        progress.top_ups_in_flight.clear();
        // Failed devices not yet applied are tried again; applied ones are re-checked anyway.
        let retry: Vec<u64> = failed
            .iter()
            .copied()
            .filter(|d| !data_quota::is_done(&progress, *d))
            .collect();
        progress.retry_device_ids.retain(|d| !batch.contains(d));
        progress.retry_device_ids.extend(retry);
        progress.retry_device_ids.truncate(RETRY_LIMIT);
        if !progress.complete {
            progress.done_through = batch.last().copied().max(progress.done_through);
        }
        if !observe && (!results.is_empty() || !failed.is_empty()) {
            written = with_progress(&quota, api, &written, &progress).await?;
        }
    }
    progress.complete = true;
    if !set_now.is_empty() && listing.is_some() {
        absorb_own_assignments(carrier.as_ref(), &mut view, &set_now, context.clock.now()).await;
    }
    let mut tally = QuotaTally::default();
    for (device, seen) in &view.devices {
        tally.add(*device, seen.outcome(), now);
    }
    let newest = report_events(
        context,
        &quota,
        carrier.as_ref(),
        EventSource {
            listing: listing.as_ref(),
            targets: &view.devices,
            flagged: &watch_events,
        },
        &previous,
        &mut tally,
    )
    .await;
    let status = if observe {
        data_quota::observed_status(&previous, generation, &tally, newest, now)
    } else {
        data_quota::status(&previous, generation, &tally, progress.clone(), newest, now)
    };
    context
        .metrics
        .data_quota(&namespace, &quota.name_any(), tally.counts());
    let ready_now =
        crate::api::conditions::is_true(&status.conditions, crate::api::conditions::READY);
    let ready_before =
        crate::api::conditions::is_true(&previous.conditions, crate::api::conditions::READY);
    write_status(api, &quota, Some(&written), &status).await?;
    let requeue = if observe {
        data_quota::observed_requeue_after(&tally, context.clock.now())
    } else {
        data_quota::requeue_after(&tally, &progress, context.clock.now())
    };
    view.written = Some(status.clone());
    view.trigger = trigger;
    view.due_at = context
        .clock
        .now()
        .checked_add(SignedDuration::try_from(requeue).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(now);
    context
        .quota_views
        .lock()
        .expect("views lock")
        .insert(key, view);
    if ready_now && !ready_before {
        publish(
            context,
            &*quota,
            EventType::Normal,
            "Converged",
            format!(
                "{} devices have the declared quota",
                tally.counts().targeted
            ),
        )
        .await;
    }
    Ok(Action::requeue(requeue))
}

/// Writes the status with new progress (everything else as last written).
async fn with_progress(
    quota: &DataQuota,
    api: &Api<DataQuota>,
    written: &crate::api::DataQuotaStatus,
    progress: &QuotaProgress,
) -> Result<crate::api::DataQuotaStatus, Error> {
    // observedGeneration moves only with the conditions, in the final write: until then the
    // conditions describe the previous generation and say so.
    let mut next = written.clone();
    next.progress = Some(progress.clone());
    write_status(api, quota, Some(written), &next).await?;
    Ok(next)
}

/// What, besides status, makes a DataQuota worth reconciling: its generation, labels,
/// annotations, finalizers and deletion.
fn trigger_of(quota: &DataQuota) -> u64 {
    use std::hash::{Hash, Hasher};
    let meta = &quota.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0)
        .hash(&mut hasher);
    hasher.finish()
}

/// Records what became of a device.
fn note(view: &mut QuotaView, device: u64, outcome: Outcome<'_>) {
    view.devices.insert(device, Seen::of(&outcome));
}

async fn cleanup(quota: Arc<DataQuota>, context: &Context) -> Result<Action, Error> {
    let namespace = quota.namespace().unwrap_or_default();
    context
        .quota_views
        .lock()
        .expect("views lock")
        .remove(&format!("{namespace}/{}", quota.name_any()));
    context
        .metrics
        .forget_data_quota(&namespace, &quota.name_any());
    if quota.spec.on_delete != QuotaDeletePolicy::Remove {
        return Ok(Action::await_change());
    }
    if quota.spec.management == Management::Observe {
        publish(
            context,
            &*quota,
            EventType::Normal,
            "QuotasLeft",
            "management: Observe sets nothing, on deletion either; the quotas are left at the carrier".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let account = &quota.spec.carrier_ref.name;
    let resolved = match ready_carrier(context, &namespace, account).await? {
        Ok(carrier) if !carrier.capabilities().data_quota => return Ok(Action::await_change()),
        Ok(carrier) => match targets(context, &quota, carrier.as_ref()).await? {
            Ok(devices) => Ok((carrier, devices)),
            Err(problem) => Err(format!(
                "could not resolve the devices: {}",
                problem.message
            )),
        },
        Err(problem) => Err(problem.message),
    };
    let (carrier, devices) = match resolved {
        Ok(resolved) => resolved,
        Err(why) => {
            publish(
                context,
                &*quota,
                EventType::Warning,
                "QuotasLeft",
                format!(
                    "onDelete: Remove could not run ({why}); the quotas are left at the carrier"
                ),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    // Only the devices that can hold a quota: the ineligible ones have none to remove.
    let removed: Vec<bool> = stream::iter(devices.devices.iter().copied())
        .map(|device| {
            let carrier = carrier.clone();
            async move { carrier.delete_quota(device).await }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await?;
    publish(
        context,
        &*quota,
        EventType::Normal,
        "QuotasRemoved",
        format!(
            "removed the quota of {} devices (their data is now denied); {} had none",
            removed.iter().filter(|r| **r).count(),
            removed.iter().filter(|r| !**r).count()
        ),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "data_quota_reconcile_tests.rs"]
mod tests;
