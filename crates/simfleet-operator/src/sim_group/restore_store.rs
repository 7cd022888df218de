//! `onDelete: Restore` at the Kubernetes side: the restore record lives in ConfigMaps owned by
//! the group (status must stay small; the record can hold a whole fleet), and on deletion the
//! recorded SIMs are returned to their earlier state before the finalizer is removed.

use super::memory::GroupRef;
use std::sync::Arc;

use futures::future::BoxFuture;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;

use super::act::{ActionLog, Failed, Sent, act};
use crate::controller::events::publish;
use crate::controller::records::{self, RecordKind};
use crate::controller::{Context, Error, write_status};
use crate::plan::numbers::count;
use crate::resolve::selection_of;
use crate::sim_group::claims::ClaimIndex;
use crate::sim_group::restore::{
    CHUNK_BYTES, RestorePlan, RestorePlanner, RestoreRecord, restoring_status,
};
use simfleet_api::model::Selection;
use simfleet_api::{PendingAction, SimGroup, SimState};
use simfleet_carrier::{Carrier, observe_each};

/// Label on a restore record's ConfigMaps: the SimGroup they belong to.
pub(crate) const RECORD_LABEL: &str = "simfleet.io/restore-record-of";

/// Where a group's restore record is kept: ConfigMaps `<group>-restore-<n>`.
const RESTORE_RECORD: RecordKind = RecordKind {
    label: RECORD_LABEL,
    suffix: "restore",
    description: "The SIMs this SimGroup changed and their earlier states, for onDelete: Restore. Kept by the operator; do not edit.",
};

/// Reads a group's restore record (empty when none was written).
pub(crate) async fn load(client: &kube::Client, group: &SimGroup) -> Result<RestoreRecord, Error> {
    let chunks = records::load(client, &RESTORE_RECORD, group).await?;
    RestoreRecord::from_chunks(&chunks).map_err(|e| Error::RestoreRecord(e.to_string()))
}

/// Writes a group's restore record (before the action it describes is submitted).
pub(crate) async fn save(
    client: &kube::Client,
    group: &SimGroup,
    record: &RestoreRecord,
) -> Result<(), Error> {
    records::save(
        client,
        &RESTORE_RECORD,
        group,
        &[],
        record.to_chunks(CHUNK_BYTES),
    )
    .await?;
    Ok(())
}

/// Removes a group's restore record (and releases the finalizers that keep it through a
/// namespace's deletion).
pub(crate) async fn remove(client: &kube::Client, group: &SimGroup) -> Result<(), Error> {
    records::remove(client, &RESTORE_RECORD, group).await
}

/// One restore step of a deleted group: observe, submit what is still to return, record the
/// action ids in status. `Ok` when every recorded SIM is back (or cannot be), so the finalizer
/// may go; `Error::Restoring` while actions are pending.
pub async fn step(
    group: &SimGroup,
    context: &Context,
    carrier: Arc<dyn Carrier>,
    key: &GroupRef,
    record: &RestoreRecord,
) -> Result<(), Error> {
    let namespace = group.namespace().unwrap_or_default();
    let api: Api<SimGroup> = Api::namespaced(context.client.clone(), &namespace);
    let previous = group.status.clone().unwrap_or_default();
    // Restores do not read the jobs list: SIM states confirm their actions.
    let in_flight = context
        .groups
        .in_flight(key, &previous.pending_actions, &[]);
    let (peers, accounts) = super::reconcile::peers_and_accounts(context).await?;
    let members = Some(&context.members);
    let wanting_active = ClaimIndex::wanting(&peers, &accounts, members, group, SimState::Active);
    let wanting_paused = ClaimIndex::wanting(&peers, &accounts, members, group, SimState::Paused);
    let mut planner = RestorePlanner::new(record, &in_flight, &wanting_active, &wanting_paused);
    let selection = selection_of(group);
    observe_each(carrier.as_ref(), &selection, |page| planner.observe(&page)).await?;
    // Every SIM the group changed goes back, selected or not: those that left the selector
    // since (an edited selector, a removed tag) are looked up by their recorded device ids.
    let left = planner.unobserved();
    if !left.is_empty() {
        let by_id = Selection {
            device_ids: left,
            ..Selection::default()
        };
        observe_each(carrier.as_ref(), &by_id, |page| planner.observe(&page)).await?;
    }
    let RestorePlan {
        actions,
        waiting: sample,
        counts,
        still_pending,
        landed,
    } = planner.finish(
        carrier.capabilities().max_sims_per_action,
        &previous.pending_actions,
    );
    context.groups.landed(key, &landed);
    let now = context.clock.now();
    // As for any change: status shows the restore before the carrier hears of it, and a status
    // the API server refuses stops the pass before anything is sent.
    let mut written = previous.clone();
    if !actions.is_empty() {
        let status = restoring_status(
            &previous,
            group.metadata.generation.unwrap_or(0),
            &still_pending,
            (counts.pending, &sample),
            now,
        );
        write_status(context, &api, group, Some(&written), &status).await?;
        written = status;
    }
    let mut log = RestoreLog {
        context,
        api: &api,
        group,
        previous: &previous,
        pending: still_pending,
        written,
        waiting_before: counts.pending,
        sample: &sample,
        submitted: 0,
        now,
    };
    if let Some(Failed { error, .. }) =
        act(context, carrier.as_ref(), key, &actions, &mut log).await?
    {
        return Err(error.into());
    }
    let RestoreLog {
        pending,
        written,
        submitted,
        ..
    } = log;
    let waiting = counts.pending + submitted;
    if waiting > 0 {
        let status = restoring_status(
            &previous,
            group.metadata.generation.unwrap_or(0),
            &pending,
            (waiting, &sample),
            now,
        );
        write_status(context, &api, group, Some(&written), &status).await?;
        return Err(Error::Restoring(waiting));
    }
    remove(&context.client, group).await?;
    let mut note = format!(
        "{} back in the state they had before this group changed them",
        count(counts.restored, "SIM")
    );
    if counts.kept_for_other_group > 0 {
        note.push_str(&format!(
            "; {} left as they are because another SimGroup wants them so",
            counts.kept_for_other_group
        ));
    }
    if counts.not_restorable > 0 {
        note.push_str(&format!(
            "; {} could not be restored (ineligible, paused by the carrier's system, or in an unknown state now)",
            counts.not_restorable
        ));
    }
    publish(context, group, EventType::Normal, "Restored", note).await;
    Ok(())
}

/// A restore's submits: each action joins the pending list in status, with an event.
struct RestoreLog<'a> {
    context: &'a Context,
    api: &'a Api<SimGroup>,
    group: &'a SimGroup,
    previous: &'a simfleet_api::SimGroupStatus,
    pending: Vec<PendingAction>,
    written: simfleet_api::SimGroupStatus,
    /// SIMs already on their way back when this pass began.
    waiting_before: u64,
    /// A few of the SIMs waited for, named in the message.
    sample: &'a [String],
    /// SIMs the carrier accepted in this pass.
    submitted: u64,
    now: jiff::Timestamp,
}

impl ActionLog for RestoreLog<'_> {
    fn sent<'a>(&'a mut self, sent: Sent<'a>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let Sent {
                action,
                id,
                submission,
            } = sent;
            self.submitted += submission.accepted as u64;
            if submission.accepted > 0 {
                self.pending.push(PendingAction {
                    id: id.clone(),
                    action: action.change,
                    sims: u32::try_from(submission.accepted).unwrap_or(u32::MAX),
                    submitted_at: Time(self.now),
                    carrier_status: None,
                });
            }
            // As for any change: the action id reaches status before anything else is sent.
            let status = restoring_status(
                self.previous,
                self.group.metadata.generation.unwrap_or(0),
                &self.pending,
                (self.waiting_before + self.submitted, self.sample),
                self.now,
            );
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
                "RestoreSubmitted",
                format!(
                    "{:?} of {} submitted as carrier action {id} to restore their earlier state",
                    action.change,
                    count(submission.accepted as u64, "SIM")
                ),
            )
            .await;
            Ok(())
        })
    }
}
