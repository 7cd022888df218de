//! The SIMs of carrier actions this process submitted and has not yet seen land, and which of a
//! group's listed actions are still pending. Pure: no I/O, no clock.
//!
//! An action is finished for a SIM when the SIM is observed in the action's target state (or can
//! no longer change), whatever the spec wants now: a change reversed while its action is pending
//! waits for that action to land, then the reverse is planned. Counting a SIM as pending only
//! because its action is listed, and listing an action only because its SIMs are pending, would
//! keep both forever.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use simfleet_api::model::{ActionStatus, ObservedState, SimTarget};
use simfleet_api::{PendingAction, StateChange};

/// One submitted action's SIMs not yet seen in its target state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct InFlightAction {
    change: StateChange,
    devices: HashSet<u64>,
}

/// A group's actions in flight, by action id (what this process submitted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    actions: BTreeMap<String, InFlightAction>,
    /// SIMs other groups of this process have in flight, with their direction: sent a moment
    /// ago, they may not show as pending at the carrier yet, and are never sent again.
    elsewhere: HashMap<u64, StateChange>,
}

/// What a SIM's observed state says of its place in the in-flight memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flight<'a> {
    /// Not in an action this process remembers.
    NotInFlight,
    /// In action `.0`, which has not reached it yet: the SIM is pending.
    Unconfirmed(&'a str),
    /// Its action reached it (or it can no longer change): plan it as any other SIM.
    Landed,
}

/// The state an action takes a SIM to, as observed.
fn reached(change: StateChange, state: &ObservedState) -> bool {
    match (change, state) {
        (StateChange::Resume, ObservedState::Active) => true,
        (StateChange::Pause, ObservedState::Paused | ObservedState::PausedBySystem) => true,
        // Ineligible or unknown now: the action cannot move it any more.
        (_, ObservedState::Ineligible(_) | ObservedState::Unknown(_)) => true,
        _ => false,
    }
}

impl InFlight {
    /// Remembers a submitted action's accepted SIMs.
    pub fn remember(
        &mut self,
        id: &str,
        change: StateChange,
        devices: impl IntoIterator<Item = u64>,
    ) {
        let devices: HashSet<u64> = devices.into_iter().collect();
        // A SIM is in one action at a time: the newest.
        for action in self.actions.values_mut() {
            action.devices.retain(|d| !devices.contains(d));
        }
        self.actions
            .insert(id.to_owned(), InFlightAction { change, devices });
        self.actions.retain(|_, a| !a.devices.is_empty());
    }

    /// Forgets the actions status no longer lists, and those the carrier's jobs list shows
    /// finished (their SIMs are planned from their observed states again).
    pub fn retain_unfinished(&mut self, listed: &[PendingAction], statuses: &[ActionStatus]) {
        self.actions.retain(|id, _| {
            listed.iter().any(|a| &a.id == id)
                && !statuses.iter().any(|s| &s.id == id && s.finished)
        });
    }

    /// Where a SIM observed in `state` stands.
    pub fn flight(&self, device: u64, state: &ObservedState) -> Flight<'_> {
        match self
            .actions
            .iter()
            .find(|(_, a)| a.devices.contains(&device))
        {
            None => Flight::NotInFlight,
            Some((_, action)) if reached(action.change, state) => Flight::Landed,
            Some((id, _)) => Flight::Unconfirmed(id),
        }
    }

    /// Forgets SIMs whose actions reached them.
    pub fn landed(&mut self, devices: &[u64]) {
        if devices.is_empty() {
            return;
        }
        let landed: HashSet<&u64> = devices.iter().collect();
        for action in self.actions.values_mut() {
            action.devices.retain(|d| !landed.contains(d));
        }
        self.actions.retain(|_, a| !a.devices.is_empty());
    }

    /// The direction another group of this process is taking a SIM in, if one is.
    pub fn elsewhere(&self, device: u64) -> Option<StateChange> {
        self.elsewhere.get(&device).copied()
    }

    /// Notes the SIMs the other groups (of `all`, by group) have in flight.
    pub(crate) fn with_others<K: Eq + Hash>(
        mut self,
        all: &HashMap<K, InFlight>,
        group: &K,
    ) -> Self {
        for (_, other) in all.iter().filter(|(other, _)| *other != group) {
            for action in other.actions.values() {
                for device in &action.devices {
                    self.elsewhere.insert(*device, action.change);
                }
            }
        }
        self
    }

    /// Forgets action `id`.
    pub(crate) fn forget(&mut self, id: &str) {
        self.actions.remove(id);
    }

    /// Whether this process remembers action `id`.
    pub fn remembers(&self, id: &str) -> bool {
        self.actions.contains_key(id)
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The in-flight placeholder of SIMs reserved for a submit not answered yet.
pub(crate) const RESERVED: &str = "(being submitted)";

/// Reserves, in every group's in-flight memory (`all`, by group), the SIMs of an action
/// `group` is about to send: those another group has in flight are left out (two groups that
/// planned at once never both send one), the others are held under [`RESERVED`] until the
/// submit's id replaces it. Returns the SIMs to send.
pub(crate) fn reserve<K: Eq + Hash + Clone>(
    all: &mut HashMap<K, InFlight>,
    group: &K,
    change: StateChange,
    sims: &[SimTarget],
) -> Vec<SimTarget> {
    let others = InFlight::default().with_others(all, group);
    let free: Vec<SimTarget> = sims
        .iter()
        .filter(|s| others.elsewhere(s.device_id).is_none())
        .cloned()
        .collect();
    all.entry(group.clone()).or_default().remember(
        RESERVED,
        change,
        free.iter().map(|s| s.device_id),
    );
    free
}

/// The pending SIMs a planner saw, by where their pending-ness comes from.
#[derive(Clone, Debug, Default)]
pub struct PendingTally {
    /// SIMs still unconfirmed in each remembered action.
    by_action: HashMap<String, u64>,
    /// SIMs the carrier shows pending that no remembered action holds (after a restart).
    at_carrier: u64,
    /// SIMs whose remembered action reached them.
    pub landed: Vec<u64>,
}

impl PendingTally {
    /// Takes one observed SIM; true when it is pending (unconfirmed in a remembered action, or
    /// pending at the carrier).
    pub fn observe(
        &mut self,
        in_flight: &InFlight,
        device: Option<u64>,
        state: &ObservedState,
    ) -> bool {
        if let Some(device) = device {
            match in_flight.flight(device, state) {
                Flight::Unconfirmed(id) => {
                    *self.by_action.entry(id.to_owned()).or_default() += 1;
                    return true;
                }
                Flight::Landed => self.landed.push(device),
                Flight::NotInFlight => {}
            }
        }
        if matches!(state, ObservedState::Pending(_)) {
            self.at_carrier += 1;
            return true;
        }
        false
    }

    /// The listed actions still pending, oldest first: a remembered action while any of its
    /// SIMs is unconfirmed; any other (submitted before a restart) while SIMs pending at the
    /// carrier account for it (the newest are kept; carriers confirm oldest first).
    pub fn still_pending(
        &self,
        listed: &[PendingAction],
        in_flight: &InFlight,
        statuses: &[ActionStatus],
    ) -> Vec<PendingAction> {
        let (remembered, others): (Vec<&PendingAction>, Vec<&PendingAction>) =
            listed.iter().partition(|a| in_flight.remembers(&a.id));
        let mut kept: Vec<PendingAction> = remembered
            .into_iter()
            .filter(|a| self.by_action.get(&a.id).is_some_and(|&n| n > 0))
            .cloned()
            .collect();
        let mut newest_first: Vec<&PendingAction> = others;
        newest_first.sort_by_key(|a| std::cmp::Reverse(a.submitted_at.0));
        let mut accounted = 0u64;
        for action in newest_first {
            // The carrier's jobs list shows it running: pending, whatever the SIMs show yet
            // (Soracom's SIMs have no pending state).
            if statuses.iter().any(|s| s.id == action.id && !s.finished) {
                kept.push(action.clone());
                continue;
            }
            if accounted < self.at_carrier {
                accounted += u64::from(action.sims);
                kept.push(action.clone());
            }
        }
        kept.sort_by_key(|a| a.submitted_at.0);
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_groups_that_planned_at_once_never_both_send_a_sim() {
        let mut all: HashMap<&str, InFlight> = HashMap::new();
        let target = |device_id| SimTarget {
            device_id,
            sim_id: None,
        };
        let first = reserve(
            &mut all,
            &"ns/a",
            StateChange::Pause,
            &[target(1), target(2)],
        );
        assert_eq!(first.len(), 2);
        let second = reserve(
            &mut all,
            &"ns/b",
            StateChange::Pause,
            &[target(2), target(3)],
        );
        assert_eq!(second, [target(3)], "SIM 2 is on its way already");
        // The first group's submit is answered: its action id replaces the reservation.
        let memory = all.get_mut("ns/a").unwrap();
        memory.forget(RESERVED);
        memory.remember("job-1", StateChange::Pause, [1, 2]);
        let third = reserve(&mut all, &"ns/c", StateChange::Resume, &[target(1)]);
        assert!(third.is_empty());
    }
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn listed(id: &str, change: StateChange, sims: u32, second: i64) -> PendingAction {
        PendingAction {
            id: id.into(),
            action: change,
            sims,
            submitted_at: Time(jiff::Timestamp::from_second(1_800_000_000 + second).unwrap()),
            carrier_status: None,
        }
    }

    #[test]
    fn a_sim_lands_when_observed_in_its_actions_target_whatever_the_spec_wants() {
        let mut memory = InFlight::default();
        memory.remember("10002", StateChange::Resume, [1, 2, 3]);
        assert_eq!(
            memory.flight(1, &ObservedState::Paused),
            Flight::Unconfirmed("10002")
        );
        assert_eq!(memory.flight(1, &ObservedState::Active), Flight::Landed);
        assert_eq!(
            memory.flight(2, &ObservedState::Ineligible("gone".into())),
            Flight::Landed
        );
        assert_eq!(
            memory.flight(9, &ObservedState::Active),
            Flight::NotInFlight
        );
        memory.landed(&[1, 2]);
        assert_eq!(
            memory.flight(1, &ObservedState::Paused),
            Flight::NotInFlight
        );
        memory.landed(&[3]);
        assert!(memory.is_empty(), "an action with no SIM left is forgotten");
    }

    #[test]
    fn a_remembered_action_is_pending_exactly_while_one_of_its_sims_is_unconfirmed() {
        let mut memory = InFlight::default();
        memory.remember("10002", StateChange::Resume, [1, 2]);
        let actions = [listed("10002", StateChange::Resume, 2, 0)];
        let mut tally = PendingTally::default();
        assert!(tally.observe(&memory, Some(1), &ObservedState::Paused));
        assert!(!tally.observe(&memory, Some(2), &ObservedState::Active));
        assert_eq!(tally.still_pending(&actions, &memory, &[]).len(), 1);
        assert_eq!(tally.landed, vec![2]);
        // Both landed: the action is finished, though the spec may now want them paused.
        let mut tally = PendingTally::default();
        assert!(!tally.observe(&memory, Some(1), &ObservedState::Active));
        assert!(!tally.observe(&memory, Some(2), &ObservedState::Active));
        assert!(tally.still_pending(&actions, &memory, &[]).is_empty());
    }

    #[test]
    fn actions_from_before_a_restart_are_pending_while_the_carrier_shows_pending_sims() {
        let memory = InFlight::default();
        let actions = [
            listed("1", StateChange::Pause, 5, 0),
            listed("2", StateChange::Pause, 5, 10),
        ];
        let mut tally = PendingTally::default();
        for device in 0..3 {
            tally.observe(
                &memory,
                Some(device),
                &ObservedState::Pending(StateChange::Pause),
            );
        }
        let kept = tally.still_pending(&actions, &memory, &[]);
        assert_eq!(
            kept.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["2"]
        );
        assert!(
            PendingTally::default()
                .still_pending(&actions, &memory, &[])
                .is_empty()
        );
    }

    #[test]
    fn a_finished_job_or_an_unlisted_action_is_forgotten() {
        let mut memory = InFlight::default();
        memory.remember("a", StateChange::Pause, [1]);
        memory.remember("b", StateChange::Pause, [2]);
        memory.remember("c", StateChange::Pause, [3]);
        let actions = [
            listed("a", StateChange::Pause, 1, 0),
            listed("b", StateChange::Pause, 1, 1),
        ];
        let finished = ActionStatus {
            refused: Vec::new(),
            id: "a".into(),
            status: "COMPLETED".into(),
            finished: true,
        };
        memory.retain_unfinished(&actions, &[finished]);
        assert!(!memory.remembers("a") && memory.remembers("b") && !memory.remembers("c"));
        // A newer action takes a SIM from an older one.
        memory.remember("d", StateChange::Resume, [2]);
        assert!(!memory.remembers("b"));
        assert_eq!(
            memory.flight(2, &ObservedState::Paused),
            Flight::Unconfirmed("d")
        );
    }
}
