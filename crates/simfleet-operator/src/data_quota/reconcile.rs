//! DataQuota: resolve the target devices, read each quota, set or top up where the plan says,
//! report the carrier's quota events once, and write status. Progress reaches status after every
//! batch; a top-up's absolute result is journaled before it is sent (see `plan`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use jiff::SignedDuration;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::utils::{PredicateConfig, predicates};
use kube::runtime::{WatchStreamExt, watcher};

use super::event_reports::{EventSource, absorb_own_assignments, report_events};
use super::memory::QuotaRef;
use super::peers::{claim_devices, wake};
use super::record_store;
use super::schedule;
use super::targets::targets;
use crate::carrier_account::{cleanup_carrier, ready_carrier};
use crate::controller::events::{publish, read_deferred};
use crate::controller::pause::{self, PauseCheck};
use crate::controller::resource_metrics::Shown;
use crate::controller::status::says_more_than_waiting;
use crate::controller::{Context, Error, api_for, wait_for_account, write_status};
use crate::data_quota::batch::{self, QuotaBatch};
use crate::data_quota::plan::{self, QuotaTally, SpecProblem, progress_for};
use crate::data_quota::quota_events::EventMark;
use crate::data_quota::targets::Targets;
use crate::data_quota::view::{
    PassStart, QuotaView, ViewKey, listing_window, read_scope, targets_digest,
};
use crate::plan::budget_floor;
use crate::plan::numbers::count;
use simfleet_api::conditions::{READY, is_true};
use simfleet_api::model::{CallFailure, OrgQuotaEvents, QuotaReading, QuotaSetting, ReadUrgency};
use simfleet_api::{DataQuota, DataQuotaStatus, Management, QuotaDeletePolicy, QuotaProgress};
use simfleet_carrier::Carrier;
use simfleet_carrier::CarrierError;
use simfleet_carrier::budget::metered;

/// Why an account cannot hold data quotas, in the client's own words (it says so without a
/// call: Hologram has no quota API; Soracom has no volume cap, and offers other controls).
pub(crate) async fn quota_not_supported(account: &str, carrier: &dyn Carrier) -> String {
    let why = match carrier.read_quota(0).await {
        Err(error @ CarrierError::Unsupported { .. }) => error.to_string(),
        _ => "the carrier has no per-device data quota".to_owned(),
    };
    format!(
        "carrierRef: CarrierAccount {account} cannot hold data quotas: {why}; use an emnify (or simulator) account"
    )
}

/// Finalizer of DataQuotas (`onDelete` runs before it is removed).
pub(crate) const DATA_QUOTA_FINALIZER: &str = "simfleet.io/data-quota";
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
    stop: simfleet_core::shutdown::Stop,
) {
    let quotas: Api<DataQuota> = api_for(&context.client, namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(labels) = labels {
        config = config.labels(&labels);
    }
    let accounts: Api<simfleet_api::CarrierAccount> =
        api_for(&context.client, namespace.as_deref());
    let controller = Controller::new(quotas, config).reconcile_on(context.quota_wakeups.take());
    let users = controller.store();
    let _ = context.quota_store.set(controller.store());
    context
        .metrics
        .watch("DataQuota", controller.store(), |quota: &DataQuota| Shown {
            conditions: quota.status.as_ref().map_or(&[], |s| &s.conditions[..]),
            oldest_pending: None,
        });
    // An account was paused, resumed, verified or broken: its quotas know at once.
    let (_, account_writer) = kube::runtime::reflector::store();
    let controller = controller.watches_stream(
        crate::carrier_account::account_changes(accounts, account_writer),
        move |account: simfleet_api::CarrierAccount| {
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
    // A SimGroup created, edited or being deleted: the DataQuotas that target it resolve their
    // devices again (their view of the targets is dropped).
    let groups: Api<simfleet_api::SimGroup> = api_for(&context.client, namespace.as_deref());
    let group_specs = watcher(groups, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let targeting = controller.store();
    let woken = context.clone();
    let controller =
        controller.watches_stream(group_specs, move |group: simfleet_api::SimGroup| {
            let quotas: Vec<_> = targeting
                .state()
                .into_iter()
                .filter(|q| {
                    q.namespace() == group.namespace()
                        && q.spec
                            .target
                            .sim_group_ref
                            .as_ref()
                            .is_some_and(|r| r.name == group.name_any())
                })
                .map(|q| kube::runtime::reflector::ObjectRef::from_obj(&*q))
                .collect();
            for quota in &quotas {
                woken.quotas.woken(quota);
            }
            quotas
        });
    // The carrier's quota events, listed once a poll per account for all its DataQuotas.
    let events = tokio::spawn(super::event_poll::run(context.clone(), stop.clone()));
    crate::controller::drive(controller, reconcile, context, stop).await;
    events.abort();
}

async fn reconcile(quota: Arc<DataQuota>, context: Arc<Context>) -> Result<Action, Error> {
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
    .map_err(crate::controller::from_finalizer)
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
    let status = plan::stalled_status(&previous, generation, &problem, context.clock.now());
    write_status(context, api, quota, quota.status.as_ref(), &status).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
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
        Err(problem) if problem.verifying => {
            return wait_for_account(context, api, &*quota, &problem.message).await;
        }
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
            message: quota_not_supported(account, carrier.as_ref()).await,
        };
        return stall(context, api, &quota, problem).await;
    }
    // A reconcile triggered only by this controller's own status write (the watch sees every
    // change) has nothing to do until the resync: it makes no carrier call.
    let key = QuotaRef::from_obj(&*quota);
    let trigger = schedule::trigger_of(&quota);
    if let Some(wait) = context
        .quotas
        .until_resync(&key, trigger, quota.status.as_ref(), now)
    {
        return Ok(Action::requeue(wait));
    }
    let urgency = plan::read_urgency(&previous, generation);
    if let Some(ledger) = context.carriers.ledger(&format!("{namespace}/{account}")) {
        let targeted = previous.counts.as_ref().map_or(0, |c| c.targeted);
        if let Some(problem) = ledger
            .reading()
            .limit
            .and_then(|limit| budget_floor::quota_over_budget(targeted, limit, account))
        {
            return stall(context, api, &quota, problem).await;
        }
        // A resync costs what the last one did; a needed read waits only for a spent month.
        let cost = match urgency {
            ReadUrgency::Resync => context.quotas.requests(&key).unwrap_or(1),
            ReadUrgency::Needed => 1,
        };
        if let Err(deferred) = ledger.admit_read(cost, urgency) {
            return Ok(read_deferred(context, &*quota, deferred, now).await);
        }
    }
    let (result, requests) = metered(apply_at(quota.clone(), context, api, carrier, now)).await;
    if urgency == ReadUrgency::Resync && requests > 0 {
        context.quotas.requests_were(&key, requests);
    }
    result
}

/// The part of a DataQuota's reconcile that reads and writes the carrier: resolve the targets,
/// send a journal left by a crash, observe, then plan and act a batch at a time, and report.
async fn apply_at(
    quota: Arc<DataQuota>,
    context: &Context,
    api: &Api<DataQuota>,
    carrier: Arc<dyn Carrier>,
    now: jiff::Timestamp,
) -> Result<Action, Error> {
    let generation = quota.metadata.generation.unwrap_or(0);
    let previous = quota.status.clone().unwrap_or_default();
    let wakes = context.quotas.wakes(&QuotaRef::from_obj(&*quota));
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
        Err(problem) => {
            // It targets nothing now: its claim on the devices it targeted ends (another
            // DataQuota may set them), and its counts say so.
            claim_devices(context, &quota, &[]);
            let status = plan::untargeted_status(&previous, generation, &problem, now);
            write_status(context, api, &quota, quota.status.as_ref(), &status).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    // Devices another DataQuota declares another quota for are left as they are, on both sides.
    let Some(conflicting) = claim_devices(context, &quota, &devices) else {
        // After a start, nothing is set until the other DataQuotas on the carrier organisation
        // have claimed their devices (they do at once), or a while has passed: one that claims
        // later may disagree.
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let devices: Vec<u64> = devices
        .into_iter()
        .filter(|d| !conflicting.contains_key(d))
        .collect();
    // Not applied while in conflict: once it ends, this generation still owes them its quota
    // (a top-up above all, which `complete` would otherwise count as given).
    if quota.spec.management == Management::Manage {
        for device in conflicting.keys() {
            if !plan::is_done(&progress, *device) && !progress.retry_device_ids.contains(device) {
                progress.retry_device_ids.push(*device);
            }
        }
        progress.retry_device_ids.truncate(plan::RETRY_LIMIT);
    }
    let pass = QuotaPass {
        quota: &quota,
        previous: &previous,
        context,
        api,
        carrier,
        // Observe-only: read and plan, never set; the progress record is neither sent nor moved.
        observe: quota.spec.management == Management::Observe,
        conflicting,
        wakes,
        now,
    };
    let mut written = previous.clone();
    // The devices given this DataQuota's quota (read only when managing): for onDelete: Remove,
    // and to tell a device that joined the target since from one this generation gave its quota.
    let mut record = match pass.observe {
        true => None,
        false => Some(record_store::load(&context.client, &quota).await?),
    };
    if let Some(record) = record.as_mut()
        && !progress.top_ups_in_flight.is_empty()
    {
        // A crash may have come between the journal and the record: recorded before resent.
        let journaled: Vec<(u64, jiff::Timestamp)> = progress
            .top_ups_in_flight
            .iter()
            .map(|entry| (entry.device_id, progress.expiry.0))
            .collect();
        record_store::note(&context.client, &quota, record, &journaled).await?;
        written = pass.resend_journal(&mut progress, &written).await?;
    }
    let start = PassStart {
        key: ViewKey {
            generation,
            observe_only: pass.observe,
            targets: targets_digest(&devices, &ineligible),
        },
        trigger: schedule::trigger_of(&quota),
        devices: &devices,
        ineligible: &ineligible,
        now,
        audit_period: context.quota_audit_period,
    };
    let (listing, to_read, mut view) = pass.observe_scope(&start, &progress).await;
    // A long apply says how far it is after each batch; a new DataQuota has conditions before
    // its first batch (which takes about 17 s at emnify's pace).
    let started = std::time::Instant::now();
    let pace = |done: usize| plan::ApplyPace {
        done,
        total: to_read.len(),
        elapsed: started.elapsed(),
    };
    // Only while this generation is being applied: a resync of an applied one reads quietly.
    let applying = !pass.observe && !progress.complete;
    if applying && !says_more_than_waiting(&previous.conditions) {
        written = write_under_way(context, &quota, api, &written, None, Some(pace(0))).await?;
    }
    let mut done = 0;
    let mut flagged = Vec::new();
    let mut set_now = BTreeSet::new();
    let mut namespace_checked = false;
    for devices in to_read.chunks(BATCH) {
        let readings = pass.read(devices).await;
        if let Some(record) = record.as_ref() {
            owe_joined(&mut progress, devices, &record.record);
        }
        let mut batch = QuotaBatch::plan(&quota.spec, &progress, pass.observe, &readings);
        // In a namespace being deleted nothing is set (see `namespaces`); the deletion comes.
        if !batch.sends.is_empty() && !namespace_checked {
            namespace_checked = true;
            let namespace = quota.namespace().unwrap_or_default();
            if crate::controller::namespaces::is_terminating(&context.client, &namespace).await {
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
        }
        if batch::journal(&mut progress, &batch) {
            // The journal reaches status before any top-up of the batch is sent.
            written =
                write_under_way(context, &quota, api, &written, Some(&progress), None).await?;
        }
        if let Some(record) = record.as_mut() {
            // Recorded before the sends: a crash between the two leaves nothing unrecorded.
            record_store::note(&context.client, &quota, record, &batch.ours).await?;
        }
        pass.send(&mut batch).await;
        batch::advance(&mut progress, devices, &batch.failed);
        done += devices.len();
        let under_way = applying && done < to_read.len();
        if !pass.observe && (batch.moved() || under_way) {
            // One write: the progress, and how far the apply is while devices are left.
            let pace = under_way.then(|| pace(done));
            written =
                write_under_way(context, &quota, api, &written, Some(&progress), pace).await?;
        }
        view.devices.extend(batch.seen);
        flagged.extend(batch.flagged);
        set_now.extend(batch.set);
    }
    batch::finish(&mut progress);
    pass.report(PassEnd {
        written,
        progress,
        listing,
        view,
        flagged,
        set_now,
    })
    .await
}

/// Devices the generation counts as done (the cursor passed their id) that were never given its
/// quota: they joined the target since (a SimGroup's selector grew, a tag was added). This
/// generation owes them its quota, in full, as it does the devices it has not reached yet.
fn owe_joined(progress: &mut QuotaProgress, devices: &[u64], record: &super::record::QuotaRecord) {
    let expiry = progress.expiry.0.as_second();
    let joined: Vec<u64> = devices
        .iter()
        .copied()
        .filter(|d| plan::is_done(progress, *d) && !record.gave(*d, expiry))
        .collect();
    progress.retry_device_ids.extend(joined);
}

/// One DataQuota's pass over its devices: what its steps share.
struct QuotaPass<'a> {
    quota: &'a DataQuota,
    /// The status before this reconcile.
    previous: &'a DataQuotaStatus,
    context: &'a Context,
    api: &'a Api<DataQuota>,
    carrier: Arc<dyn Carrier>,
    observe: bool,
    /// Devices left to a conflict with another DataQuota, and how to name it.
    conflicting: std::collections::BTreeMap<u64, String>,
    /// How often this DataQuota had been woken when the pass began ([`QuotaMemory::wakes`]).
    ///
    /// [`QuotaMemory::wakes`]: super::memory::QuotaMemory::wakes
    wakes: u64,
    now: jiff::Timestamp,
}

/// What a pass leaves for its report.
struct PassEnd {
    /// The status as last written by this pass.
    written: DataQuotaStatus,
    progress: QuotaProgress,
    /// The organisation's quota events listed at the start (`None`: unavailable).
    listing: Option<OrgQuotaEvents>,
    view: QuotaView,
    /// Devices whose quota may have events to report.
    flagged: Vec<u64>,
    /// Devices set in this pass.
    set_now: BTreeSet<u64>,
}

impl QuotaPass<'_> {
    /// Sends again, as they are, the top-ups journaled before a crash: never read and added
    /// twice. Returns the status written.
    async fn resend_journal(
        &self,
        progress: &mut QuotaProgress,
        written: &DataQuotaStatus,
    ) -> Result<DataQuotaStatus, Error> {
        for entry in progress.top_ups_in_flight.clone() {
            let setting = plan::declared(&self.quota.spec, progress, entry.volume_mb);
            self.carrier.set_quota(entry.device_id, &setting).await?;
            batch::journal_resent(progress, entry.device_id);
        }
        write_under_way(
            self.context,
            self.quota,
            self.api,
            written,
            Some(progress),
            None,
        )
        .await
    }

    /// Lists the organisation's quota events once and says which devices to read: once the
    /// generation is applied, those the events name and the audit's slice; otherwise (no view
    /// in memory, the target or generation changed, the listing unavailable or incomplete)
    /// every device.
    async fn observe_scope(
        &self,
        start: &PassStart<'_>,
        progress: &QuotaProgress,
    ) -> (Option<OrgQuotaEvents>, Vec<u64>, QuotaView) {
        let prior = self
            .context
            .quotas
            .take_view(&self.key())
            .filter(|view| view.matches(&start.key));
        let applied = plan::applied_in_full(progress);
        let anchor = prior
            .as_ref()
            .and_then(|v| v.anchor)
            .or(EventMark::of(self.previous).time);
        let listing = self
            .carrier
            .org_quota_events(listing_window(anchor, self.now))
            .await
            .unwrap_or_else(|err| {
                tracing::debug!(%err, "listing the organisation's quota events failed");
                None
            });
        let (reads, view) = read_scope(start, prior, listing.as_ref(), applied, anchor);
        tracing::debug!(quota = %self.key(), reads = reads.len(), devices = start.devices.len(), "devices to read");
        (listing, reads, view)
    }

    /// Reads a batch's quotas, up to [`IN_FLIGHT`] at once.
    async fn read(&self, devices: &[u64]) -> Vec<(u64, Result<Option<QuotaReading>, CallFailure>)> {
        let carrier = &self.carrier;
        stream::iter(devices.to_vec())
            .map(|device| {
                let carrier = carrier.clone();
                async move {
                    let reading = carrier.read_quota(device).await;
                    (device, reading.map_err(|e| e.failure()))
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }

    /// Sets the batch's planned quotas, up to [`IN_FLIGHT`] at once, and records each result.
    async fn send(&self, batch: &mut QuotaBatch) {
        let carrier = &self.carrier;
        let results: Vec<(u64, QuotaSetting, Result<(), CallFailure>)> =
            stream::iter(batch.sends.clone())
                .map(|(device, setting)| {
                    let carrier = carrier.clone();
                    async move {
                        let result = carrier.set_quota(device, &setting).await;
                        (device, setting, result.map_err(|e| e.failure()))
                    }
                })
                .buffered(IN_FLIGHT)
                .collect()
                .await;
        for (device, setting, result) in &results {
            batch.record_set(*device, setting, result.as_ref().map(|_| ()));
        }
    }

    /// Counts the devices, reports the carrier's quota events once, writes the final status,
    /// and remembers the view until the next resync.
    async fn report(&self, end: PassEnd) -> Result<Action, Error> {
        let PassEnd {
            written,
            progress,
            listing,
            mut view,
            flagged,
            set_now,
        } = end;
        let (context, quota, previous, now) = (self.context, self.quota, self.previous, self.now);
        let generation = quota.metadata.generation.unwrap_or(0);
        if !set_now.is_empty() && listing.is_some() {
            absorb_own_assignments(self.carrier.as_ref(), &mut view, &set_now, now).await;
        }
        let mut tally = QuotaTally::default();
        for (device, seen) in &view.devices {
            tally.add(*device, seen.outcome(), now);
        }
        let source = EventSource {
            listing: listing.as_ref(),
            targets: &view.devices,
            flagged: &flagged,
        };
        let newest = report_events(
            context,
            quota,
            self.carrier.as_ref(),
            source,
            previous,
            &mut tally,
        )
        .await;
        let status = if self.observe {
            plan::observed_status(previous, generation, &tally, newest, now)
        } else {
            plan::status(previous, generation, &tally, progress.clone(), newest, now)
        };
        let status = plan::with_conflicts(status, &self.conflicting, generation, now);
        let namespace = quota.namespace().unwrap_or_default();
        context
            .metrics
            .data_quota(&namespace, &quota.name_any(), tally.counts());
        write_status(self.context, self.api, quota, Some(&written), &status).await?;
        // Status says what the pass saw, at its start; when to come back counts from its end
        // (a first pass over many devices takes a while, and the next expiry does not wait).
        let ended = context.clock.now();
        let requeue = if self.observe {
            schedule::observed_requeue_after(&tally, ended)
        } else {
            schedule::requeue_after(&tally, &progress, ended)
        };
        let converged = is_true(&status.conditions, READY) && !is_true(&previous.conditions, READY);
        // The event says what status says (its counts leave the ineligible devices apart).
        let converged_message = status
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        view.written = Some(status);
        view.trigger = schedule::trigger_of(quota);
        view.due_at = ended
            .checked_add(SignedDuration::try_from(requeue).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(ended);
        context.quotas.keep_view(&self.key(), view, self.wakes);
        if converged {
            publish(
                context,
                quota,
                EventType::Normal,
                "Converged",
                converged_message,
            )
            .await;
        }
        Ok(Action::requeue(requeue))
    }

    /// This DataQuota, as its memory is keyed.
    fn key(&self) -> QuotaRef {
        QuotaRef::from_obj(self.quota)
    }
}

/// The one status write of a pass under way (the pass's end writes its report): new progress
/// (a journal resent after a crash, the journal before a batch's top-ups are sent, or how far
/// the cursor moved after it), and,
/// while devices are left, the conditions of an apply under way with its pace; everything else
/// as last written. Returns what was written.
async fn write_under_way(
    context: &Context,
    quota: &DataQuota,
    api: &Api<DataQuota>,
    written: &simfleet_api::DataQuotaStatus,
    progress: Option<&QuotaProgress>,
    pace: Option<plan::ApplyPace>,
) -> Result<simfleet_api::DataQuotaStatus, Error> {
    // observedGeneration moves only with the final conditions, in the report: until then the
    // conditions describe the previous generation, or say that this one is being applied.
    let mut next = written.clone();
    if let Some(progress) = progress {
        next.progress = Some(progress.clone());
    }
    if let Some(pace) = pace {
        let generation = quota.metadata.generation.unwrap_or(0);
        plan::applying_conditions(&mut next.conditions, generation, pace, context.clock.now());
    }
    write_status(context, api, quota, Some(written), &next).await?;
    Ok(next)
}

/// A deleted DataQuota: its quotas removed as `onDelete` says, then its record released (its
/// ConfigMaps carry a finalizer that holds a namespace's deletion until then); the DataQuotas
/// it conflicted with look again.
async fn cleanup(quota: Arc<DataQuota>, context: &Context) -> Result<Action, Error> {
    let action = remove_quotas(quota.clone(), context).await?;
    record_store::release(&context.client, &quota).await?;
    let key = crate::controller::memory_key(&*quota);
    wake(context, context.quota_claims.forget(&key));
    Ok(action)
}

async fn remove_quotas(quota: Arc<DataQuota>, context: &Context) -> Result<Action, Error> {
    let namespace = quota.namespace().unwrap_or_default();
    context.quotas.forget(&QuotaRef::from_obj(&*quota));
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
    // Only the devices this DataQuota gave a quota, from its record: not today's targets (a
    // device that joined the tag later, or whose quota someone else set, keeps its quota), and
    // readable when the targeted SimGroup is already gone.
    let record = record_store::load(&context.client, &quota).await?.record;
    if record.is_empty() {
        publish(
            context,
            &*quota,
            EventType::Normal,
            "QuotasRemoved",
            "this DataQuota set no quota; nothing to remove".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let carrier = match cleanup_carrier(context, &namespace, account).await? {
        Ok(carrier) => carrier,
        Err(problem) if problem.verifying => return Err(Error::AccountVerifying),
        Err(problem) => {
            // The deletion waits for a usable account, as a SimGroup's restore does; onDelete:
            // Orphan lets it go.
            let api: Api<DataQuota> = Api::namespaced(context.client.clone(), &namespace);
            let problem = SpecProblem {
                reason: "RemoveBlocked",
                message: format!(
                    "cannot remove the {} this DataQuota set: {}; fix the account, or set onDelete: Orphan to delete it without removing them",
                    count(record.len() as u64, "quota"),
                    problem.message
                ),
            };
            stall(context, &api, &quota, problem).await?;
            return Err(Error::RestoreBlocked);
        }
    };
    let removal =
        record_store::remove_recorded(context, &quota, carrier.as_ref(), &record, IN_FLIGHT)
            .await?;
    let mut note = format!(
        "removed the quota this DataQuota set on {} (their data is now denied)",
        count(removal.removed as u64, "device")
    );
    if removal.kept > 0 {
        note.push_str(&format!(
            "; {} kept, because someone else set their quota since",
            removal.kept
        ));
    }
    if removal.absent > 0 {
        note.push_str(&format!("; {} had no quota any more", removal.absent));
    }
    publish(context, &*quota, EventType::Normal, "QuotasRemoved", note).await;
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
