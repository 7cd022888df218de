//! `onDelete: Restore`: the record of which SIMs a group changed and the state each had before
//! (kept from the first change on, written before each submit), and the plan that returns them
//! to it when the group is deleted. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::plan::numbers::count;
use crate::sim_group::in_flight::{InFlight, PendingTally};
use crate::sim_group::plan::{Claims, PlannedAction};
use simfleet_api::conditions::{self, Verdict};
use simfleet_api::model::{ObservedState, SimObservation, SimTarget};
use simfleet_api::{PendingAction, SimGroupStatus, SimState, StateChange};

/// Bytes of entries per stored chunk: a ConfigMap holds at most 1 MiB in all, and an entry
/// (`DEVICE:SIM`) can take 41 bytes, so chunks are cut by size, not by count.
pub(crate) const CHUNK_BYTES: usize = 900 * 1024;
/// Chunk key listing the devices that were Active before the group changed them.
pub(crate) const WERE_ACTIVE: &str = "wereActive";
/// Chunk key listing the devices that were Paused before the group changed them.
pub(crate) const WERE_PAUSED: &str = "werePaused";

/// A SIM's state before the group first changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prior {
    /// emnify SIM id, when the carrier has one (needed to restore a suspended SIM).
    pub sim_id: Option<u64>,
    /// The state to return to.
    pub state: SimState,
}

/// The SIMs a group changed, by device id, and the state each had before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RestoreRecord {
    prior: BTreeMap<u64, Prior>,
}

/// A stored record could not be read.
#[derive(Debug, thiserror::Error)]
#[error("restore record, key {key}: {entry:?} is not a device id (expected DEVICE or DEVICE:SIM)")]
pub(crate) struct RecordError {
    key: String,
    entry: String,
}

impl RestoreRecord {
    /// Whether the record holds no SIM.
    pub fn is_empty(&self) -> bool {
        self.prior.is_empty()
    }

    /// The state a device had before the group first changed it.
    pub(crate) fn prior(&self, device_id: u64) -> Option<Prior> {
        self.prior.get(&device_id).copied()
    }

    /// Notes the SIMs of an action about to be submitted. A SIM already recorded keeps its
    /// earlier state: the record is of the state before the group first claimed it.
    /// Returns whether the record changed.
    pub fn note(&mut self, change: StateChange, sims: &[SimTarget]) -> bool {
        let before = match change {
            StateChange::Pause => SimState::Active,
            StateChange::Resume => SimState::Paused,
        };
        let mut changed = false;
        for sim in sims {
            self.prior.entry(sim.device_id).or_insert_with(|| {
                changed = true;
                Prior {
                    sim_id: sim.sim_id,
                    state: before,
                }
            });
        }
        changed
    }

    /// The record as chunks of string data (one ConfigMap each), each at most `max_bytes`.
    pub(crate) fn to_chunks(&self, max_bytes: usize) -> Vec<BTreeMap<String, String>> {
        let mut chunks = Vec::new();
        let (mut active, mut paused) = (String::new(), String::new());
        for (device, prior) in &self.prior {
            let line = match prior.sim_id {
                Some(sim) => format!("{device}:{sim}\n"),
                None => format!("{device}\n"),
            };
            if active.len() + paused.len() + line.len() > max_bytes
                && !(active.is_empty() && paused.is_empty())
            {
                chunks.push((std::mem::take(&mut active), std::mem::take(&mut paused)));
            }
            match prior.state {
                SimState::Active => active.push_str(&line),
                SimState::Paused => paused.push_str(&line),
            }
        }
        if !(active.is_empty() && paused.is_empty()) || chunks.is_empty() {
            chunks.push((active, paused));
        }
        chunks
            .into_iter()
            .map(|(active, paused)| {
                BTreeMap::from([
                    (WERE_ACTIVE.to_owned(), active),
                    (WERE_PAUSED.to_owned(), paused),
                ])
            })
            .collect()
    }

    /// Reads a record back from its chunks.
    pub(crate) fn from_chunks<'a>(
        chunks: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    ) -> Result<Self, RecordError> {
        let mut record = Self::default();
        for chunk in chunks {
            for (key, state) in [
                (WERE_ACTIVE, SimState::Active),
                (WERE_PAUSED, SimState::Paused),
            ] {
                for line in chunk.get(key).map(String::as_str).unwrap_or("").lines() {
                    let bad = || RecordError {
                        key: key.to_owned(),
                        entry: line.to_owned(),
                    };
                    let (device, sim) = match line.split_once(':') {
                        Some((d, s)) => (d, Some(s.parse().map_err(|_| bad())?)),
                        None => (line, None),
                    };
                    let device: u64 = device.parse().map_err(|_| bad())?;
                    record.prior.insert(device, Prior { sim_id: sim, state });
                }
            }
        }
        Ok(record)
    }
}

/// Counts of a restore in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RestoreCounts {
    /// Recorded SIMs observed (selected now, or looked up because they left the selector).
    pub observed: u64,
    /// Already back in their earlier state.
    pub restored: u64,
    /// Pending at the carrier or in an unconfirmed action.
    pub pending: u64,
    /// Claimed by another group with the state they are in now: left as they are.
    pub kept_for_other_group: u64,
    /// Ineligible now, or in a state simfleet does not know: cannot be restored.
    pub not_restorable: u64,
}

/// Plans a restore page by page: which recorded SIMs to return to their earlier state.
pub(crate) struct RestorePlanner<'a> {
    record: &'a RestoreRecord,
    in_flight: &'a InFlight,
    pending: PendingTally,
    /// Groups that want each state, so a restore never undoes another group's claim.
    claims_active: &'a dyn Claims,
    claims_paused: &'a dyn Claims,
    counts: RestoreCounts,
    to_resume: Vec<SimTarget>,
    to_pause: Vec<SimTarget>,
    /// Recorded SIMs observed so far (the others left the selector since they were changed).
    seen: std::collections::HashSet<u64>,
    /// A few of the SIMs the restore waits for, as a person looks them up.
    waiting: Vec<String>,
}

impl<'a> RestorePlanner<'a> {
    /// A planner over a record; `claims_active`/`claims_paused` are the other groups wanting
    /// each state.
    pub fn new(
        record: &'a RestoreRecord,
        in_flight: &'a InFlight,
        claims_active: &'a dyn Claims,
        claims_paused: &'a dyn Claims,
    ) -> Self {
        Self {
            record,
            in_flight,
            pending: PendingTally::default(),
            claims_active,
            claims_paused,
            counts: RestoreCounts::default(),
            to_resume: Vec::new(),
            to_pause: Vec::new(),
            seen: std::collections::HashSet::new(),
            waiting: Vec::new(),
        }
    }

    /// The recorded SIMs not observed yet: those that left the selector after the group
    /// changed them. A restore returns them too, so they are looked up by device id.
    pub fn unobserved(&self) -> Vec<u64> {
        self.record
            .prior
            .keys()
            .filter(|d| !self.seen.contains(d))
            .copied()
            .collect()
    }

    /// Takes one page of observed SIMs.
    pub fn observe(&mut self, page: &[SimObservation]) {
        for sim in page {
            let Some(device_id) = sim.device_id else {
                continue;
            };
            let Some(prior) = self.record.prior(device_id) else {
                continue;
            };
            // A SIM selected twice (by tag and by id) is restored once.
            if !self.seen.insert(device_id) {
                continue;
            }
            self.counts.observed += 1;
            // Sent a moment ago by another group of this process (another restore of the same
            // SIM, in a namespace's deletion): it lands first, then this one looks again.
            if self.in_flight.elsewhere(device_id).is_some() {
                self.counts.pending += 1;
                self.note_waiting(sim);
                continue;
            }
            // In an action that has not reached it yet (or pending at the carrier): wait.
            if self
                .pending
                .observe(self.in_flight, Some(device_id), &sim.state)
            {
                self.counts.pending += 1;
                self.note_waiting(sim);
                continue;
            }
            let now_active = match &sim.state {
                // A SIM awaiting its connection becomes active by itself: it counts as active.
                ObservedState::Active | ObservedState::AwaitingConnection(_) => true,
                ObservedState::Paused | ObservedState::PausedBySystem => false,
                // Counted as pending by the tally above.
                ObservedState::Pending(_) => continue,
                ObservedState::Ineligible(_) | ObservedState::Unknown(_) => {
                    self.counts.not_restorable += 1;
                    continue;
                }
            };
            if now_active == (prior.state == SimState::Active) {
                self.counts.restored += 1;
                continue;
            }
            // The carrier's system paused it since (billing, limits): a restore does not resume
            // it silently, as an Active group does not (`systemPaused`).
            if sim.state == ObservedState::PausedBySystem {
                self.counts.not_restorable += 1;
                continue;
            }
            // Another group wanting the state it is in now keeps it: no tug of war.
            let keeping = if now_active {
                self.claims_active
            } else {
                self.claims_paused
            };
            if keeping.claimed_by(sim).is_some() {
                self.counts.kept_for_other_group += 1;
                continue;
            }
            let target = SimTarget {
                device_id,
                sim_id: sim.sim_id.or(prior.sim_id),
            };
            if now_active {
                self.to_pause.push(target);
            } else {
                self.to_resume.push(target);
            }
            self.note_waiting(sim);
        }
    }

    fn note_waiting(&mut self, sim: &SimObservation) {
        if self.waiting.len() < WAITING_SAMPLE {
            self.waiting.push(sim_name(&sim.iccid, sim.device_id));
        }
    }

    /// The actions (split at `limit` SIMs) and the counts.
    pub fn finish(self, limit: usize, listed: &[PendingAction]) -> RestorePlan {
        let mut actions = Vec::new();
        for (change, sims) in [
            (StateChange::Resume, self.to_resume),
            (StateChange::Pause, self.to_pause),
        ] {
            actions.extend(sims.chunks(limit.max(1)).map(|c| PlannedAction {
                change,
                sims: c.to_vec(),
            }));
        }
        RestorePlan {
            actions,
            waiting: self.waiting,
            counts: self.counts,
            still_pending: self.pending.still_pending(listed, self.in_flight, &[]),
            landed: self.pending.landed,
        }
    }
}

/// SIMs named in a restoring group's message.
const WAITING_SAMPLE: usize = 5;

/// A SIM as a person looks it up at the carrier: its ICCID and device id, or what is known.
fn sim_name(iccid: &str, device_id: Option<u64>) -> String {
    match (iccid.is_empty(), device_id) {
        (false, Some(id)) => format!("{iccid} (device {id})"),
        (false, None) => iccid.to_owned(),
        (true, Some(id)) => format!("device {id}"),
        (true, None) => "a SIM without an id".to_owned(),
    }
}

/// What a restore pass does.
pub(crate) struct RestorePlan {
    /// The actions to submit, in order.
    pub actions: Vec<PlannedAction>,
    /// A few of the SIMs the restore waits for (pending, or about to be sent), as observed.
    pub waiting: Vec<String>,
    /// The counts.
    pub counts: RestoreCounts,
    /// The listed actions still pending.
    pub still_pending: Vec<PendingAction>,
    /// SIMs whose remembered action reached them.
    pub landed: Vec<u64>,
}

/// The status of a group being deleted while its SIMs go back to their earlier states:
/// Reconciling, with the actions in flight.
pub(crate) fn restoring_status(
    previous: &SimGroupStatus,
    generation: i64,
    pending: &[PendingAction],
    (waiting, sample): (u64, &[String]),
    now: Timestamp,
) -> SimGroupStatus {
    let mut status = previous.clone();
    status.pending_actions = pending.to_vec();
    let ids: Vec<&str> = pending.iter().map(|a| a.id.as_str()).collect();
    let more = waiting.saturating_sub(sample.len() as u64);
    let message = format!(
        "deleting: waiting for the carrier to return {} to {} earlier state: {}{}{}; the deletion ends when the carrier confirms; to let the group go without waiting, set spec.onDelete: Orphan",
        count(waiting, "SIM"),
        if waiting == 1 { "its" } else { "their" },
        sample.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        if ids.is_empty() {
            String::new()
        } else {
            format!(
                " ({} {})",
                if ids.len() == 1 { "action" } else { "actions" },
                ids.join(", ")
            )
        }
    );
    conditions::set_kstatus(
        &mut status.conditions,
        [
            Verdict::new(false, "Restoring", message.clone()),
            Verdict::new(true, "Restoring", message),
            Verdict::new(false, "Restoring", "nothing needs a human"),
        ],
        generation,
        now,
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_group::plan::NoClaims;

    #[test]
    fn a_restoring_group_is_reconciling_with_its_actions_listed() {
        let now: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let pending = vec![PendingAction {
            id: "job-7".into(),
            action: StateChange::Resume,
            sims: 3,
            submitted_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            carrier_status: None,
        }];
        let sample = ["89445000000000010051 (device 1005)".to_owned()];
        let status = restoring_status(&SimGroupStatus::default(), 2, &pending, (3, &sample), now);
        assert_eq!(status.pending_actions, pending);
        assert!(conditions::is_true(
            &status.conditions,
            conditions::RECONCILING
        ));
        assert!(!conditions::is_true(
            &status.conditions,
            conditions::STALLED
        ));
        assert!(!conditions::is_true(&status.conditions, conditions::READY));
        let reconciling = status
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::RECONCILING)
            .unwrap();
        assert_eq!(reconciling.reason, "Restoring");
        assert_eq!(
            reconciling.message,
            "deleting: waiting for the carrier to return 3 SIMs to their earlier state: 89445000000000010051 (device 1005) and 2 more (action job-7); the deletion ends when the carrier confirms; to let the group go without waiting, set spec.onDelete: Orphan"
        );
    }

    fn target(device_id: u64, sim_id: Option<u64>) -> SimTarget {
        SimTarget { device_id, sim_id }
    }

    fn sim(device_id: u64, state: ObservedState) -> SimObservation {
        SimObservation {
            iccid: format!("89445{device_id:014}"),
            device_id: Some(device_id),
            sim_id: None,
            state,
            tags: Vec::new(),
        }
    }

    struct ClaimAll;
    impl Claims for ClaimAll {
        fn claimed_by(&self, _: &SimObservation) -> Option<(String, SimState)> {
            Some(("other".into(), SimState::Active))
        }
    }

    #[test]
    fn the_first_prior_state_is_kept_when_a_sim_is_changed_again() {
        let mut record = RestoreRecord::default();
        assert!(record.note(StateChange::Pause, &[target(1, None), target(2, Some(9))]));
        // The group flips to Active and back: 1 was Active before the group, and stays so.
        assert!(!record.note(StateChange::Resume, &[target(1, None)]));
        assert!(record.note(StateChange::Resume, &[target(3, None)]));
        assert_eq!(record.prior(1).unwrap().state, SimState::Active);
        assert_eq!(record.prior(2).unwrap().sim_id, Some(9));
        assert_eq!(record.prior(3).unwrap().state, SimState::Paused);
        assert!(record.prior(4).is_none());
    }

    #[test]
    fn a_record_survives_its_chunked_form() {
        let mut record = RestoreRecord::default();
        let sims: Vec<SimTarget> = (1..=7)
            .map(|d| target(d, (d % 2 == 0).then_some(d + 100)))
            .collect();
        record.note(StateChange::Pause, &sims[..4]);
        record.note(StateChange::Resume, &sims[4..]);
        let chunks = record.to_chunks(10);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0][WERE_ACTIVE], "1\n2:102\n3\n");
        assert_eq!(RestoreRecord::from_chunks(&chunks).unwrap(), record);
    }

    #[test]
    fn chunks_stay_under_a_configmaps_limit_whatever_the_ids_lengths() {
        // The longest entries (20-digit device and SIM ids): a count bound would overflow 1 MiB.
        let mut record = RestoreRecord::default();
        let sims: Vec<SimTarget> = (0..60_000u64)
            .map(|d| target(u64::MAX - d, Some(u64::MAX - d)))
            .collect();
        record.note(StateChange::Pause, &sims);
        let chunks = record.to_chunks(CHUNK_BYTES);
        assert!(chunks.len() >= 3);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(bytes < 1024 * 1024 - 4096, "{bytes} bytes");
        }
        assert_eq!(RestoreRecord::from_chunks(&chunks).unwrap(), record);
    }

    #[test]
    fn a_damaged_record_is_an_error_that_names_the_entry() {
        let chunk = BTreeMap::from([(WERE_PAUSED.to_owned(), "12\nx7\n".to_owned())]);
        let err = RestoreRecord::from_chunks([&chunk])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("werePaused") && err.contains("\"x7\""),
            "{err}"
        );
    }

    #[test]
    fn restore_plans_only_recorded_sims_not_yet_back_and_not_kept_by_others() {
        let mut record = RestoreRecord::default();
        record.note(
            StateChange::Pause,
            &[target(1, None), target(2, None), target(3, None)],
        );
        record.note(StateChange::Resume, &[target(4, None), target(5, None)]);
        // The restore's own resume of SIM 3 has not reached it yet.
        let mut in_flight = InFlight::default();
        in_flight.remember("r1", StateChange::Resume, [3]);
        let mut planner = RestorePlanner::new(&record, &in_flight, &NoClaims, &NoClaims);
        planner.observe(&[
            sim(1, ObservedState::Paused),                      // to resume
            sim(2, ObservedState::Active),                      // already back
            sim(3, ObservedState::Paused),                      // in flight
            sim(4, ObservedState::Active),                      // to pause
            sim(5, ObservedState::Pending(StateChange::Pause)), // pending
            sim(6, ObservedState::Paused),                      // not the group's change
        ]);
        let RestorePlan {
            actions, counts, ..
        } = planner.finish(10, &[]);
        assert_eq!(
            actions,
            vec![
                PlannedAction {
                    change: StateChange::Resume,
                    sims: vec![target(1, None)]
                },
                PlannedAction {
                    change: StateChange::Pause,
                    sims: vec![target(4, None)]
                },
            ]
        );
        assert_eq!(
            counts,
            RestoreCounts {
                observed: 5,
                restored: 1,
                pending: 2,
                kept_for_other_group: 0,
                not_restorable: 0
            }
        );
    }

    #[test]
    fn a_sim_the_carrier_paused_since_is_not_resumed_by_a_restore() {
        let mut record = RestoreRecord::default();
        record.note(StateChange::Pause, &[target(1, None), target(2, None)]);
        let none = InFlight::default();
        let mut planner = RestorePlanner::new(&record, &none, &NoClaims, &NoClaims);
        planner.observe(&[
            sim(1, ObservedState::PausedBySystem),
            sim(2, ObservedState::Paused),
        ]);
        let RestorePlan {
            actions, counts, ..
        } = planner.finish(10, &[]);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].sims, vec![target(2, None)]);
        assert_eq!(counts.not_restorable, 1);
    }

    #[test]
    fn recorded_sims_that_left_the_selector_are_named_for_a_lookup() {
        let mut record = RestoreRecord::default();
        record.note(
            StateChange::Pause,
            &[target(1, None), target(2, None), target(3, None)],
        );
        let none = InFlight::default();
        let mut planner = RestorePlanner::new(&record, &none, &NoClaims, &NoClaims);
        planner.observe(&[sim(2, ObservedState::Paused), sim(7, ObservedState::Paused)]);
        assert_eq!(planner.unobserved(), vec![1, 3]);
        // Looked up by id, and one seen twice (by tag and by id) counts once.
        planner.observe(&[sim(1, ObservedState::Paused), sim(2, ObservedState::Paused)]);
        planner.observe(&[sim(3, ObservedState::Active)]);
        assert!(planner.unobserved().is_empty());
        let RestorePlan { counts, .. } = planner.finish(10, &[]);
        assert_eq!(counts.observed, 3);
        assert_eq!(counts.restored, 1);
    }

    #[test]
    fn a_sim_another_group_wants_as_it_is_is_left_alone_and_actions_split_at_the_limit() {
        let mut record = RestoreRecord::default();
        let sims: Vec<SimTarget> = (1..=5).map(|d| target(d, None)).collect();
        record.note(StateChange::Pause, &sims);
        record.note(StateChange::Resume, &[target(9, None)]);
        let none = InFlight::default();
        // Another group wants Paused SIMs paused: the recorded-Active ones stay paused.
        let mut planner = RestorePlanner::new(&record, &none, &NoClaims, &ClaimAll);
        let page: Vec<SimObservation> = (1..=5).map(|d| sim(d, ObservedState::Paused)).collect();
        planner.observe(&page);
        planner.observe(&[sim(9, ObservedState::Ineligible("DEAD".into()))]);
        let RestorePlan {
            actions, counts, ..
        } = planner.finish(2, &[]);
        assert!(actions.is_empty());
        assert_eq!(counts.kept_for_other_group, 5);
        assert_eq!(counts.not_restorable, 1);

        let mut planner = RestorePlanner::new(&record, &none, &ClaimAll, &NoClaims);
        planner.observe(&page);
        let actions = planner.finish(2, &[]).actions;
        let sizes: Vec<usize> = actions.iter().map(|a| a.sims.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(actions.iter().all(|a| a.change == StateChange::Resume));
    }
}
