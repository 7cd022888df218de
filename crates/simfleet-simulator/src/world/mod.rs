//! The simulator's mutable state: the fleet, the state changes in flight (jobs), quota
//! deadlines and quota events (each carrier surface keeps its own besides: `emnify::state`, `soracom::state`). Time only moves when `settle` is called with the
//! virtual clock's reading, at the start of every request.

mod quotas;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::fleet::{Fleet, LinkState, Pending, Target};
use super::quota::EventKind;

/// Which carrier surface a job came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    /// Hologram's `/api/1`.
    Hologram,
    /// emnify's `/api/v1`.
    Emnify,
}

/// What a job changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    /// Pause connectivity.
    Pause,
    /// Resume connectivity.
    Live,
    /// Hologram: deactivate for good.
    Deactivate,
    /// emnify: suspend the SIM.
    SuspendSim,
    /// emnify: activate the SIM.
    ActivateSim,
}

impl JobKind {
    /// The job kind that moves a link to `target`.
    pub(crate) fn of(target: Target) -> Self {
        match target {
            Target::Pause => JobKind::Pause,
            Target::Live => JobKind::Live,
            Target::Deactivate => JobKind::Deactivate,
        }
    }
}

/// A state change accepted by the carrier: a Hologram bulk action, or one emnify PATCH.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The carrier's id for it.
    pub id: String,
    /// Where it was submitted.
    pub surface: Surface,
    /// What it changes.
    pub kind: JobKind,
    /// SIMs accepted into it.
    pub sims: u32,
    /// SIMs refused up front (listed as invalid in the response).
    pub refused: u32,
    /// SIMs not applied yet.
    pub pending_sims: u32,
    /// When it was accepted (virtual time).
    pub submitted_at: Timestamp,
    /// When its last SIM was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// How long accepted changes take.
#[derive(Clone, Debug)]
pub struct DelayModel {
    /// Shortest delay of a job.
    pub min: SignedDuration,
    /// Longest delay of a job (each job draws uniformly between the two).
    pub max: SignedDuration,
    /// Share of SIMs that take `slow` instead ("rarely up to 24 hours").
    pub slow_share: f64,
    /// Delay of the slow SIMs.
    pub slow: SignedDuration,
}

impl Default for DelayModel {
    fn default() -> Self {
        Self {
            min: SignedDuration::from_secs(2),
            max: SignedDuration::from_secs(5),
            slow_share: 0.001,
            slow: SignedDuration::from_hours(2),
        }
    }
}

/// An event listed at `/v1/event` and `/v1/endpoint/{id}/event`.
#[derive(Clone, Debug)]
pub struct Event {
    /// Unique id.
    pub id: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The row (endpoint) it is about.
    pub row: u32,
}

/// One change of a Hologram link's state (`GET /links/cellular/{linkid}/history`).
#[derive(Clone, Debug)]
pub(crate) struct StateChangeRecord {
    /// Unique id.
    pub id: u64,
    /// When it landed.
    pub at: Timestamp,
    /// The row (link).
    pub row: u32,
    /// The state before.
    pub old: LinkState,
    /// The state after.
    pub new: LinkState,
}

/// State changes kept for the links' histories (the oldest are forgotten).
pub(crate) const HISTORY_LIMIT: usize = 100_000;

/// The outcome of a bulk or single state change.
#[derive(Debug, Default)]
pub(crate) struct Submitted {
    /// The job id, when any SIM was accepted or already in the target state.
    pub job_id: Option<String>,
    /// Devices accepted.
    pub accepted: u32,
    /// Devices refused, with the reason.
    pub invalid: Vec<(u64, String)>,
}

/// Why a single-device change was refused (emnify semantics).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChangeRefusal {
    /// The endpoint or SIM is deleted: 409.
    Deleted,
    /// The status id is not one this route takes: 422.
    UnknownStatus(i64),
}

/// Counters of state changes, for the admin API.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeCounters {
    /// SIM changes accepted (each SIM in each job).
    pub submitted_sims: u64,
    /// Accepted changes to a SIM already in, or already on its way to, the target state:
    /// what an operator that resubmits pending work produces.
    pub redundant_sims: u64,
    /// SIM changes refused up front.
    pub refused_sims: u64,
    /// SIM changes applied.
    pub applied_sims: u64,
}

/// Everything that changes while the simulator runs.
#[derive(Debug)]
pub struct World {
    /// The SIM table.
    pub fleet: Fleet,
    /// Every job, in submission order (index = position).
    pub jobs: Vec<Job>,
    /// Counters of state changes.
    pub counters: ChangeCounters,
    delays: DelayModel,
    due: BinaryHeap<Reverse<(Timestamp, u32, u32)>>,
    quota_deadlines: BTreeSet<(Timestamp, u32)>,
    /// Every event, oldest first (the organisation's event list).
    events: Vec<Event>,
    /// Each row's events, as indexes into `events`, oldest first.
    events_of: HashMap<u32, Vec<usize>>,
    next_event: u64,
    next_quota: u64,
    history: std::collections::VecDeque<StateChangeRecord>,
    next_history: u64,
    rng: fastrand::Rng,
    /// What the emnify surface keeps besides the SIM table (its auth tokens).
    pub(crate) emnify: crate::emnify::state::EmnifyWorld,
    /// What the Soracom surface keeps besides the SIM table.
    pub(crate) soracom: crate::soracom::state::SoracomWorld,
}

impl World {
    /// Expires every issued auth token now, emnify's and Soracom's (fault injection).
    pub(crate) fn expire_tokens(&mut self, now: Timestamp) -> usize {
        for token in self.soracom.tokens.values_mut() {
            token.expires = token.expires.min(now);
        }
        self.emnify.expire_tokens(now) + self.soracom.tokens.len()
    }

    /// A world around a fleet.
    pub fn new(fleet: Fleet, delays: DelayModel, seed: u64) -> Self {
        Self {
            fleet,
            jobs: Vec::new(),
            counters: ChangeCounters::default(),
            delays,
            due: BinaryHeap::new(),
            quota_deadlines: BTreeSet::new(),
            events: Vec::new(),
            events_of: HashMap::new(),
            next_event: 1,
            next_quota: 1,
            history: std::collections::VecDeque::new(),
            next_history: 1,
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed),
            emnify: Default::default(),
            soracom: Default::default(),
        }
    }

    /// Applies every change and quota transition due at `now`.
    pub(crate) fn settle(&mut self, now: Timestamp) {
        while let Some(&Reverse((at, row, job))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            self.apply(row, job, at);
        }
        while let Some(&(at, row)) = self.quota_deadlines.first() {
            if at > now {
                break;
            }
            self.quota_deadlines.pop_first();
            if let Some(quota) = self.fleet.sim_mut(row).quota.as_deref_mut() {
                let expired = quota.settle(now);
                if let Some(next) = quota.next_deadline() {
                    self.quota_deadlines.insert((next, row));
                }
                if expired {
                    self.record_event(row, EventKind::QuotaExpired, at);
                }
            }
        }
    }

    /// Applies one due SIM change, unless a later change superseded it.
    pub(super) fn apply(&mut self, row: u32, job: u32, at: Timestamp) {
        let kind = self.jobs[job as usize].kind;
        let sim = self.fleet.sim_mut(row);
        let current = match kind {
            JobKind::Pause | JobKind::Live | JobKind::Deactivate => {
                sim.pending.is_some_and(|p| p.job == job)
            }
            JobKind::SuspendSim | JobKind::ActivateSim => {
                sim.pending_sim.is_some_and(|p| p.job == job)
            }
        };
        if current {
            let mut event = None;
            match kind {
                JobKind::Pause | JobKind::Live | JobKind::Deactivate => {
                    let target = sim.pending.take().expect("checked").to;
                    let old = sim.state;
                    if sim.state != LinkState::Dead {
                        sim.state = target.state();
                    }
                    let new = sim.state;
                    if old != new {
                        if self.history.len() == HISTORY_LIMIT {
                            self.history.pop_front();
                        }
                        self.history.push_back(StateChangeRecord {
                            id: self.next_history,
                            at,
                            row,
                            old,
                            new,
                        });
                        self.next_history += 1;
                    }
                    // emnify lists endpoint enabled / disabled events; the simulator records
                    // them for changes made through emnify's API (a fleet paused through
                    // Hologram's would hold an event per SIM for nothing).
                    if self.jobs[job as usize].surface == Surface::Emnify {
                        event = match kind {
                            JobKind::Live => Some(EventKind::EndpointEnabled),
                            JobKind::Pause => Some(EventKind::EndpointDisabled),
                            _ => None,
                        };
                    }
                }
                JobKind::SuspendSim | JobKind::ActivateSim => {
                    sim.sim_suspended = sim.pending_sim.take().expect("checked").to;
                }
            }
            self.counters.applied_sims += 1;
            if let Some(event) = event {
                self.record_event(row, event, at);
            }
        }
        self.finish_one(job, at);
    }

    pub(super) fn finish_one(&mut self, job: u32, at: Timestamp) {
        let job = &mut self.jobs[job as usize];
        job.pending_sims = job.pending_sims.saturating_sub(1);
        if job.pending_sims == 0 && job.finished_at.is_none() {
            job.finished_at = Some(at);
        }
    }

    pub(crate) fn new_job(&mut self, surface: Surface, kind: JobKind, now: Timestamp) -> u32 {
        let index = u32::try_from(self.jobs.len()).expect("fewer than 4 billion jobs");
        let id = match surface {
            // Hologram's job ids are numbers.
            Surface::Hologram => (10_000 + index).to_string(),
            Surface::Emnify => format!("emnify-{}", 10_000 + index),
        };
        self.jobs.push(Job {
            id,
            surface,
            kind,
            sims: 0,
            refused: 0,
            pending_sims: 0,
            submitted_at: now,
            finished_at: None,
        });
        index
    }

    /// Draws one job's delay.
    pub(crate) fn job_delay(&mut self) -> SignedDuration {
        let (min, max) = (self.delays.min.as_millis(), self.delays.max.as_millis());
        let millis = if max > min {
            self.rng.i64(min as i64..=max as i64)
        } else {
            min as i64
        };
        SignedDuration::from_millis(millis)
    }

    /// Schedules one SIM of a job.
    pub(crate) fn schedule(
        &mut self,
        row: u32,
        job: u32,
        now: Timestamp,
        job_delay: SignedDuration,
    ) {
        let delay = if self.delays.slow_share > 0.0 && self.rng.f64() < self.delays.slow_share {
            self.delays.slow
        } else {
            job_delay
        };
        let due = now.saturating_add(delay).unwrap_or(now);
        self.due.push(Reverse((due, row, job)));
        let record = &mut self.jobs[job as usize];
        record.sims += 1;
        record.pending_sims += 1;
        self.counters.submitted_sims += 1;
    }

    /// A Hologram state change (bulk or single), after the request itself was checked: each
    /// device is accepted or refused with a reason; the change lands after a delay.
    pub(crate) fn submit_hologram(
        &mut self,
        device_ids: &[u64],
        target: Target,
        org_id: Option<u64>,
        now: Timestamp,
    ) -> Submitted {
        let job = self.new_job(Surface::Hologram, JobKind::of(target), now);
        let delay = self.job_delay();
        let mut out = Submitted::default();
        for &id in device_ids {
            let Some(row) = self.fleet.row_of_device(id) else {
                out.invalid.push((id, "unknown device id".into()));
                continue;
            };
            let sim = self.fleet.sim(row);
            let refusal = if org_id.is_some_and(|org| org != sim.org_id) {
                Some("device belongs to another organisation".to_owned())
            } else if sim.state == LinkState::Dead {
                Some("device is deactivated (DEAD)".to_owned())
            } else if sim.pending.is_some() {
                // Hologram's documented warning for a SIM with a change in flight.
                Some(format!(
                    "SIM state is locked ({}). Contact support",
                    hologram_state_name(sim)
                ))
            } else if sim.state == LinkState::PausedSys && target == Target::Pause {
                Some("device is paused by the system (PAUSED-SYS)".to_owned())
            } else if sim.state == LinkState::PausedSys
                && target == Target::Live
                && !sim.sys_resumable
            {
                Some("device is paused by the system (PAUSED-SYS) and must be resumed from the dashboard".to_owned())
            } else {
                None
            };
            if let Some(reason) = refusal {
                out.invalid.push((id, reason));
                continue;
            }
            if sim.state == target.state() {
                self.counters.redundant_sims += 1;
            }
            self.fleet.sim_mut(row).pending = Some(Pending { to: target, job });
            self.schedule(row, job, now, delay);
            out.accepted += 1;
        }
        let refused = out.invalid.len() as u32;
        self.counters.refused_sims += u64::from(refused);
        let record = &mut self.jobs[job as usize];
        record.refused = refused;
        if record.sims == 0 {
            record.finished_at = Some(now);
        }
        out.job_id = Some(record.id.clone());
        out
    }

    /// A device's events, oldest first.
    pub(crate) fn events_of(&self, row: u32) -> impl DoubleEndedIterator<Item = &Event> + '_ {
        self.events_of
            .get(&row)
            .into_iter()
            .flatten()
            .map(|&i| &self.events[i])
    }

    /// A link's state changes, oldest first (within the newest [`HISTORY_LIMIT`] of all).
    pub(crate) fn history_of(&self, row: u32) -> impl Iterator<Item = &StateChangeRecord> + '_ {
        self.history.iter().filter(move |h| h.row == row)
    }

    /// The organisation's events, oldest first.
    pub(crate) fn all_events(&self) -> &[Event] {
        &self.events
    }

    /// Forces a SIM's state, as a person in the carrier's dashboard would (drift).
    pub(crate) fn force_state(&mut self, row: u32, state: LinkState) {
        let sim = self.fleet.sim_mut(row);
        sim.state = state;
        sim.pending = None;
    }
}

/// A link's state as Hologram names it: `PAUSED-PENDING-USER` or `LIVE-PENDING` while a pause or
/// resume is in flight (Hologram documents no pending name for a deactivation: the link shows
/// its state until it is `DEAD`).
pub(crate) fn hologram_state_name(sim: &super::fleet::Sim) -> &'static str {
    match sim.pending.map(|p| p.to) {
        Some(Target::Pause) => "PAUSED-PENDING-USER",
        Some(Target::Live) => "LIVE-PENDING",
        Some(Target::Deactivate) | None => sim.state.hologram_name(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fleet::{FleetFile, SeedConfig};

    pub(super) fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub(super) fn world() -> World {
        let fleet = Fleet::seeded(&SeedConfig {
            sims: 100,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        });
        let delays = DelayModel {
            min: SignedDuration::from_secs(10),
            max: SignedDuration::from_secs(10),
            slow_share: 0.0,
            slow: SignedDuration::ZERO,
        };
        World::new(fleet, delays, 1)
    }

    #[test]
    fn a_bulk_pause_is_pending_until_its_delay_passes() {
        let mut w = world();
        let now = t("2026-01-01T00:00:00Z");
        let out = w.submit_hologram(&[1001, 1002, 99], Target::Pause, None, now);
        assert_eq!(out.accepted, 2);
        assert_eq!(out.invalid, [(99, "unknown device id".to_owned())]);
        assert!(w.fleet.sim(0).pending.is_some());
        w.settle(t("2026-01-01T00:00:09Z"));
        assert_eq!(w.fleet.sim(0).state, LinkState::Live);
        w.settle(t("2026-01-01T00:00:10Z"));
        assert_eq!(w.fleet.sim(0).state, LinkState::PausedUser);
        assert!(w.fleet.sim(0).pending.is_none());
        assert_eq!(w.jobs[0].finished_at, Some(t("2026-01-01T00:00:10Z")));
        assert_eq!(w.counters.applied_sims, 2);
    }

    #[test]
    fn a_second_change_while_pending_is_refused_and_nothing_is_counted_twice() {
        let mut w = world();
        let now = t("2026-01-01T00:00:00Z");
        w.submit_hologram(&[1001], Target::Pause, None, now);
        let again = w.submit_hologram(&[1001], Target::Pause, None, now);
        assert_eq!(again.accepted, 0);
        assert!(
            again.invalid[0]
                .1
                .contains("SIM state is locked (PAUSED-PENDING-USER)")
        );
        assert_eq!(w.counters.submitted_sims, 1);
    }

    #[test]
    fn system_paused_dead_and_foreign_sims_are_refused_with_reasons() {
        let file: FleetFile = serde_saphyr::from_str(
            "sims:\n - {iccid: \"8944500000000000001\", state: PAUSED-SYS, resumable: false}\n - {iccid: \"8944500000000000002\", state: DEAD}\n - {iccid: \"8944500000000000003\", orgId: 9}\n - {iccid: \"8944500000000000004\", state: PAUSED-SYS}\n",
        )
        .unwrap();
        let mut w = World::new(
            Fleet::from_fleet_file(file).unwrap(),
            DelayModel::default(),
            1,
        );
        let now = t("2026-01-01T00:00:00Z");
        let out = w.submit_hologram(&[1001, 1002, 1003, 1004], Target::Live, Some(1), now);
        let reasons: Vec<&str> = out.invalid.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(out.accepted, 1, "the resumable PAUSED-SYS SIM is accepted");
        assert!(reasons[0].contains("must be resumed from the dashboard"));
        assert!(reasons[1].contains("deactivated"));
        assert!(reasons[2].contains("another organisation"));
    }

    #[test]
    fn emnify_patches_validate_and_the_last_one_wins() {
        let mut w = world();
        let now = t("2026-01-01T00:00:00Z");
        assert_eq!(
            w.patch_endpoint(0, 7, now),
            Err(ChangeRefusal::UnknownStatus(7))
        );
        w.patch_endpoint(0, 1, now).unwrap();
        w.patch_endpoint(0, 0, now).unwrap();
        w.settle(t("2026-01-01T01:00:00Z"));
        assert_eq!(w.fleet.sim(0).state, LinkState::Live);
        assert!(w.jobs.iter().all(|j| j.finished_at.is_some()));
        w.force_state(1, LinkState::Dead);
        assert_eq!(w.patch_sim(1, 2, now), Err(ChangeRefusal::Deleted));
    }
}
