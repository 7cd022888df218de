//! What this process remembers of each SimGroup between its reconciles, keyed by the group
//! (`ObjectRef`): the actions it sent and has not seen land (carriers that do not show pending
//! states are covered by this), the actions it planned and has not sent yet where the carrier
//! runs one at a time, and when it last observed in full. None of it survives a restart: status
//! holds what must.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::runtime::reflector::ObjectRef;
use simfleet_api::SimGroup;
use simfleet_api::model::{ActionStatus, Refusal, SimTarget};
use simfleet_api::{PendingAction, StateChange};

use super::in_flight::{self, InFlight};
use super::queue::Queued;

/// A SimGroup, as its memory is keyed.
pub(crate) type GroupRef = ObjectRef<SimGroup>;

/// When a group was last observed in full, and what that cost in carrier requests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FullObservation {
    pub(crate) at: jiff::Timestamp,
    pub(crate) requests: u64,
    /// The other groups' claims it was planned with ([`ClaimIndex::fingerprint`]).
    ///
    /// [`ClaimIndex::fingerprint`]: crate::sim_group::claims::ClaimIndex::fingerprint
    pub(crate) claims: u64,
}

/// Each group's memory in this process.
#[derive(Default)]
pub(crate) struct GroupMemory {
    in_flight: Mutex<HashMap<GroupRef, InFlight>>,
    queued: Mutex<HashMap<GroupRef, Queued>>,
    full_observations: Mutex<HashMap<GroupRef, FullObservation>>,
}

impl GroupMemory {
    /// Remembers the SIMs of a submitted action (those the carrier did not refuse) as in flight
    /// for a group, until they are seen in the action's target state.
    pub(crate) fn remember_in_flight(
        &self,
        group: &GroupRef,
        action_id: &str,
        change: StateChange,
        sims: &[SimTarget],
        refused: &[Refusal],
    ) {
        let refused: HashSet<u64> = refused.iter().map(|r| r.device_id).collect();
        let mut all = self.in_flight.lock().expect("in-flight lock");
        let memory = all.entry(group.clone()).or_default();
        memory.forget(in_flight::RESERVED);
        memory.remember(
            action_id,
            change,
            sims.iter()
                .map(|s| s.device_id)
                .filter(|d| !refused.contains(d)),
        );
    }

    /// Reserves the SIMs of an action about to be sent for a group (see [`in_flight::reserve`]):
    /// those another group of this process has in flight are left out.
    pub(crate) fn reserve(
        &self,
        group: &GroupRef,
        change: StateChange,
        sims: &[SimTarget],
    ) -> Vec<SimTarget> {
        let mut all = self.in_flight.lock().expect("in-flight lock");
        in_flight::reserve(&mut all, group, change, sims)
    }

    /// Drops a group's reservation whose submit did not go through.
    pub(crate) fn release(&self, group: &GroupRef) {
        if let Some(memory) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(group)
        {
            memory.forget(in_flight::RESERVED);
        }
    }

    /// A group's actions in flight, less those status no longer lists and those the carrier's
    /// jobs list shows finished.
    pub(crate) fn in_flight(
        &self,
        group: &GroupRef,
        listed: &[PendingAction],
        statuses: &[ActionStatus],
    ) -> InFlight {
        let mut all = self.in_flight.lock().expect("in-flight lock");
        let memory = all.entry(group.clone()).or_default();
        memory.retain_unfinished(listed, statuses);
        // Other groups' SIMs in flight: two groups that observed at once must not both send.
        memory.clone().with_others(&all, group)
    }

    /// Forgets the SIMs of a group whose actions reached them.
    pub(crate) fn landed(&self, group: &GroupRef, devices: &[u64]) {
        if let Some(memory) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(group)
        {
            memory.landed(devices);
        }
    }

    /// Forgets a deleted group: its actions sent and queued, and its last observation.
    pub(crate) fn forget(&self, group: &GroupRef) {
        self.in_flight.lock().expect("in-flight lock").remove(group);
        self.queued.lock().expect("queue lock").remove(group);
        self.full_observations
            .lock()
            .expect("observations lock")
            .remove(group);
    }

    /// Replaces a group's queued actions (none: forgets them).
    pub(crate) fn set_queued(&self, group: &GroupRef, queued: Option<Queued>) {
        let mut all = self.queued.lock().expect("queue lock");
        match queued {
            Some(q) => all.insert(group.clone(), q),
            None => all.remove(group),
        };
    }

    /// Takes a group's queued actions.
    pub(crate) fn take_queued(&self, group: &GroupRef) -> Option<Queued> {
        self.queued.lock().expect("queue lock").remove(group)
    }

    /// A group's last full observation by this process (none after a restart).
    pub(crate) fn last_full_observation(&self, group: &GroupRef) -> Option<FullObservation> {
        self.full_observations
            .lock()
            .expect("observations lock")
            .get(group)
            .copied()
    }

    /// Records a group's full observation.
    pub(crate) fn observed_in_full(&self, group: &GroupRef, observation: FullObservation) {
        self.full_observations
            .lock()
            .expect("observations lock")
            .insert(group.clone(), observation);
    }
}
