//! What the Soracom surface keeps besides the shared SIM table: tokens, the statuses Soracom
//! has and the other carriers do not (`ready`, `standby`), expiry settings, batch groups and
//! jobs, the per-minute rate windows and the lagging search index.
//!
//! A fleet row is Soracom SIM `SIM_ID_BASE + row`, with one IMSI `IMSI_BASE + row`. Its
//! status follows the row's shared state (`LIVE` is `active`, `PAUSED-USER` is `inactive`, or
//! `suspended` when the SIM is suspended, `PAUSED-SYS` is `inactive` past its expiry, `DEAD`
//! is `terminated`), unless the row holds `ready` or `standby` here.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::fleet::{Fleet, LinkState};

/// Soracom SIM id of row 0 (19 digits, ICCID-like, as Soracom's own examples are; the client
/// must not take it for the ICCID, and the simulator's differs from the row's ICCID).
pub(crate) const SIM_ID_BASE: u64 = 8_942_310_000_000_000_001;
/// IMSI of row 0 (15 digits).
pub(crate) const IMSI_BASE: u64 = 440_103_000_000_001;
/// The one operator the simulator's auth keys belong to.
pub(crate) const OPERATOR_ID: &str = "OP0099000001";

/// A SIM's status, as Soracom names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    Ready,
    Active,
    Inactive,
    Standby,
    Suspended,
    Terminated,
}

impl Status {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Active => "active",
            Status::Inactive => "inactive",
            Status::Standby => "standby",
            Status::Suspended => "suspended",
            Status::Terminated => "terminated",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ready" => Status::Ready,
            "active" => Status::Active,
            "inactive" => Status::Inactive,
            "standby" => Status::Standby,
            "suspended" => Status::Suspended,
            "terminated" => Status::Terminated,
            _ => return None,
        })
    }
}

/// A row's Soracom-only facts; rows without any have none here.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    /// `ready` or `standby`, which the shared table cannot hold.
    pub(crate) special: Option<Status>,
    /// `expiryTime` (ms) and `expiryAction`.
    pub(crate) expiry: Option<(i64, Option<String>)>,
    /// `lastModifiedTime` (ms) of the last change through the Soracom API.
    pub(crate) modified_ms: Option<i64>,
}

/// An issued API key and token.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) api_key: String,
    pub(crate) expires: Timestamp,
    pub(crate) revoked: bool,
}

/// The Soracom surface's state; reset with the world.
#[derive(Debug, Default)]
pub(crate) struct SoracomWorld {
    /// By token.
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) extras: HashMap<u32, Extra>,
    pub(crate) batch: BatchJobs,
    /// Requests in the current minute, by route: (window start in s, count).
    pub(crate) windows: HashMap<String, (i64, u32)>,
    /// The search index behind `/v1/query/*`: every row's status when it was last built.
    pub(crate) index: Option<(Timestamp, Vec<Status>)>,
    pub(crate) next_id: u64,
}

impl SoracomWorld {
    /// A fresh id with a prefix.
    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:012}", self.next_id)
    }

    /// A row's status now.
    pub(crate) fn status(&self, fleet: &Fleet, row: u32) -> Status {
        let sim = fleet.sim(row);
        if let Some(special) = self.extras.get(&row).and_then(|e| e.special) {
            return special;
        }
        match sim.state {
            LinkState::Live => Status::Active,
            LinkState::PausedUser if sim.sim_suspended => Status::Suspended,
            LinkState::PausedUser | LinkState::PausedSys => Status::Inactive,
            LinkState::Dead => Status::Terminated,
        }
    }

    /// The expiry a row shows: its own, or for a row the carrier's system paused, an expiry
    /// in the past with action `deactivate` (Soracom's only way to pause by itself).
    pub(crate) fn expiry(
        &self,
        fleet: &Fleet,
        row: u32,
        now: Timestamp,
    ) -> Option<(i64, Option<String>)> {
        if let Some(expiry) = self.extras.get(&row).and_then(|e| e.expiry.clone()) {
            return Some(expiry);
        }
        (fleet.sim(row).state == LinkState::PausedSys).then(|| {
            (
                now.as_millisecond() - 86_400_000,
                Some("deactivate".to_owned()),
            )
        })
    }

    /// Sets a row's status, as Soracom applies it at once.
    pub(crate) fn set_status(&mut self, fleet: &mut Fleet, row: u32, to: Status, now: Timestamp) {
        let sim = fleet.sim_mut(row);
        sim.pending = None;
        sim.pending_sim = None;
        let (state, suspended, special) = match to {
            Status::Active => (LinkState::Live, false, None),
            Status::Inactive => (LinkState::PausedUser, false, None),
            Status::Suspended => (LinkState::PausedUser, true, None),
            Status::Standby => (LinkState::PausedUser, false, Some(Status::Standby)),
            Status::Ready => (LinkState::PausedUser, false, Some(Status::Ready)),
            Status::Terminated => (LinkState::Dead, false, None),
        };
        sim.state = state;
        sim.sim_suspended = suspended;
        let extra = self.extras.entry(row).or_default();
        extra.special = special;
        extra.modified_ms = Some(now.as_millisecond());
    }

    /// Soracom SIM id of a row.
    pub(crate) fn sim_id(row: u32) -> String {
        (SIM_ID_BASE + u64::from(row)).to_string()
    }

    /// IMSI of a row.
    pub(crate) fn imsi(row: u32) -> String {
        (IMSI_BASE + u64::from(row)).to_string()
    }

    /// The row of a SIM id, if the fleet has it (and it has a SIM).
    pub(crate) fn row_of_sim_id(fleet: &Fleet, sim_id: &str) -> Option<u32> {
        Self::row_from(fleet, sim_id, SIM_ID_BASE)
    }

    fn row_from(fleet: &Fleet, id: &str, base: u64) -> Option<u32> {
        let row = id.parse::<u64>().ok()?.checked_sub(base)?;
        (row < fleet.len() as u64)
            .then_some(row as u32)
            .filter(|&r| fleet.sim(r).has_sim)
    }
}

/// Batch groups and jobs.
#[derive(Debug, Default)]
pub(crate) struct BatchJobs {
    pub(crate) groups: Vec<Group>,
    pub(crate) jobs: Vec<Job>,
}

#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) created: i64,
    pub(crate) updated: i64,
}

#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) group: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) abort_on_failure: bool,
    /// The task API (`deactivateSim`, ...), and the status its tasks set.
    pub(crate) api: &'static str,
    pub(crate) to: Status,
    pub(crate) tasks: Vec<Task>,
    pub(crate) done: usize,
    pub(crate) errors: u32,
    pub(crate) aborted: bool,
    pub(crate) created: Timestamp,
    pub(crate) updated: Timestamp,
    pub(crate) finished: Option<Timestamp>,
}

#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) path: String,
    pub(crate) body: Value,
    pub(crate) row: Option<u32>,
    pub(crate) result: Option<TaskResult>,
}

#[derive(Debug)]
pub(crate) struct TaskResult {
    pub(crate) started: Timestamp,
    pub(crate) finished: Timestamp,
    pub(crate) status: u16,
    pub(crate) error: Option<String>,
}

impl Job {
    pub(crate) fn status(&self) -> &'static str {
        match self.finished {
            Some(_) if self.aborted => "aborted",
            Some(_) if self.errors > 0 => "failed",
            Some(_) => "completed",
            None if self.done == 0 => "pending",
            None => "running",
        }
    }

    pub(crate) fn json(&self) -> Value {
        let success = self.done as u32 - self.errors;
        json!({
            "jobId": self.id,
            "jobName": self.name,
            "batchGroupId": self.group,
            "description": self.description,
            "abortOnFailure": self.abort_on_failure,
            "status": self.status(),
            "summary": {
                "pending": (self.tasks.len() - self.done) as u32,
                "success": success,
                "error": self.errors,
            },
            "errorMessage": (self.errors > 0).then(|| format!("{} of {} tasks failed", self.errors, self.tasks.len())),
            "createdTime": self.created.as_second(),
            "updatedTime": self.updated.as_second(),
            "finishedTime": self.finished.map(|t| t.as_second()),
        })
    }
}
