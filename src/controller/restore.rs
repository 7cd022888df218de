//! `onDelete: Restore` at the Kubernetes side: the restore record lives in ConfigMaps owned by
//! the group (status must stay small; the record can hold a whole fleet), and on deletion the
//! recorded SIMs are returned to their earlier state before the finalizer is removed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::act::{ActionLog, Failed, Sent, act};
use super::events::publish;
use super::{Context, Error, MANAGER, write_status};
use crate::api::{CarrierAccount, PendingAction, SimGroup, SimState};
use crate::carrier::{Carrier, observe_each};
use crate::plan::claims::ClaimIndex;
use crate::plan::restore::{ENTRIES_PER_CHUNK, RestorePlanner, RestoreRecord, restoring_status};
use crate::plan::sim_group::still_pending;
use crate::resolve::selection_of;

/// Label on a restore record's ConfigMaps: the SimGroup they belong to.
pub(crate) const RECORD_LABEL: &str = "simfleet.io/restore-record-of";

fn chunk_name(group: &str, index: usize) -> String {
    format!("{group}-restore-{index}")
}

/// Reads a group's restore record (empty when none was written).
pub(crate) async fn load(client: &kube::Client, group: &SimGroup) -> Result<RestoreRecord, Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &group.namespace().unwrap_or_default());
    let params = ListParams::default().labels(&format!("{RECORD_LABEL}={}", group.name_any()));
    let mut maps = api.list(&params).await?.items;
    maps.sort_by_key(|m| m.name_any());
    let empty = BTreeMap::new();
    RestoreRecord::from_chunks(maps.iter().map(|m| m.data.as_ref().unwrap_or(&empty)))
        .map_err(|e| Error::RestoreRecord(e.to_string()))
}

/// Writes a group's restore record (before the action it describes is submitted).
pub(crate) async fn save(
    client: &kube::Client,
    group: &SimGroup,
    record: &RestoreRecord,
) -> Result<(), Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &group.namespace().unwrap_or_default());
    let owner = group.controller_owner_ref(&());
    for (index, data) in record.to_chunks(ENTRIES_PER_CHUNK).into_iter().enumerate() {
        let name = chunk_name(&group.name_any(), index);
        let map = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(RECORD_LABEL.to_owned(), group.name_any())])),
                owner_references: owner.clone().map(|o| vec![o]),
                annotations: Some(BTreeMap::from([(
                    "simfleet.io/description".to_owned(),
                    "The SIMs this SimGroup changed and their earlier states, for onDelete: Restore. Kept by the operator; do not edit.".to_owned(),
                )])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&map),
        )
        .await?;
    }
    Ok(())
}

async fn remove(client: &kube::Client, group: &SimGroup) -> Result<(), Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &group.namespace().unwrap_or_default());
    let params = ListParams::default().labels(&format!("{RECORD_LABEL}={}", group.name_any()));
    for map in api.list(&params).await?.items {
        api.delete(&map.name_any(), &DeleteParams::default())
            .await?;
    }
    Ok(())
}

/// One restore step of a deleted group: observe, submit what is still to return, record the
/// action ids in status. `Ok` when every recorded SIM is back (or cannot be), so the finalizer
/// may go; `Error::Restoring` while actions are pending.
pub async fn step(
    group: &SimGroup,
    context: &Context,
    carrier: Arc<dyn Carrier>,
    key: &str,
) -> Result<(), Error> {
    let namespace = group.namespace().unwrap_or_default();
    let api: Api<SimGroup> = Api::namespaced(context.client.clone(), &namespace);
    let record = load(&context.client, group).await?;
    if record.is_empty() {
        publish(
            context,
            group,
            EventType::Normal,
            "Restored",
            "no SIM was changed by this group; nothing to restore".into(),
        )
        .await;
        return Ok(());
    }
    let previous = group.status.clone().unwrap_or_default();
    // As in apply: actions that status no longer lists are confirmed, their SIMs no longer in
    // flight (a group deleted right after it converged would otherwise wait forever).
    let in_flight: HashSet<u64> = {
        let mut all = context.in_flight.lock().expect("in-flight lock");
        let actions = all.entry(key.to_owned()).or_default();
        actions.retain(|id, _| previous.pending_actions.iter().any(|a| &a.id == id));
        actions.values().flatten().copied().collect()
    };
    let peers = api.list(&ListParams::default()).await?.items;
    let accounts = Api::<CarrierAccount>::namespaced(context.client.clone(), &namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let wanting_active = ClaimIndex::wanting(&peers, &accounts, group, SimState::Active);
    let wanting_paused = ClaimIndex::wanting(&peers, &accounts, group, SimState::Paused);
    let mut planner = RestorePlanner::new(&record, &in_flight, &wanting_active, &wanting_paused);
    let selection = selection_of(group);
    observe_each(carrier.as_ref(), &selection, |page| planner.observe(&page)).await?;
    let (actions, counts) = planner.finish(carrier.capabilities().max_sims_per_action);
    let now = context.clock.now();
    let mut log = RestoreLog {
        context,
        api: &api,
        group,
        previous: &previous,
        pending: still_pending(&previous.pending_actions, counts.pending),
        written: previous.clone(),
        waiting_before: counts.pending,
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
            waiting,
            now,
        );
        write_status(&api, group, Some(&written), &status).await?;
        return Err(Error::Restoring(waiting));
    }
    remove(&context.client, group).await?;
    let mut note = format!(
        "{} SIMs are back in the state they had before this group changed them",
        counts.restored
    );
    if counts.kept_for_other_group > 0 {
        note.push_str(&format!(
            "; {} left as they are because another SimGroup wants them so",
            counts.kept_for_other_group
        ));
    }
    if counts.not_restorable > 0 {
        note.push_str(&format!(
            "; {} could not be restored (ineligible or in an unknown state now)",
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
    previous: &'a crate::api::SimGroupStatus,
    pending: Vec<PendingAction>,
    written: crate::api::SimGroupStatus,
    /// SIMs already on their way back when this pass began.
    waiting_before: u64,
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
                self.waiting_before + self.submitted,
                self.now,
            );
            write_status(self.api, self.group, Some(&self.written), &status).await?;
            self.written = status;
            publish(
                self.context,
                self.group,
                EventType::Normal,
                "RestoreSubmitted",
                format!(
                    "{:?} of {} SIMs submitted as carrier action {id} to restore their earlier state",
                    action.change, submission.accepted
                ),
            )
            .await;
            Ok(())
        })
    }
}
