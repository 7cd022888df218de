//! The SIMs a resource selects and what the carrier says of them, in carrier-neutral terms:
//! shared by the planner (which decides), the carrier clients (which translate) and the
//! controllers (which act).

use serde::{Deserialize, Serialize};

use crate::StateChange;

/// Which SIMs to observe: the union of the lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// SIMs by ICCID.
    pub iccids: Vec<String>,
    /// SIMs by the carrier's device (endpoint) id.
    pub device_ids: Vec<u64>,
    /// SIMs whose device carries any of these tags.
    pub tags: Vec<String>,
}

/// A SIM's state as the carrier reports it, in carrier-neutral terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObservedState {
    /// Live: data flows.
    Active,
    /// Paused by the customer.
    Paused,
    /// Paused by the carrier's system (billing, limits).
    PausedBySystem,
    /// Not active yet, and turns active by itself at the SIM's next connection attempt
    /// (Soracom's `ready` and `standby`); the carrier's word in the text.
    AwaitingConnection(String),
    /// A change is in flight at the carrier, towards this state.
    Pending(StateChange),
    /// Cannot change (deactivated, unknown, another organisation); the reason in words.
    Ineligible(String),
    /// A state this client does not know; never taken as success.
    Unknown(String),
}

/// One observed SIM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimObservation {
    /// ICCID (as selected, when the carrier did not find it).
    pub iccid: String,
    /// The carrier's device (endpoint) id, when it knows the SIM.
    pub device_id: Option<u64>,
    /// emnify's SIM id (needed to suspend the SIM itself).
    pub sim_id: Option<u64>,
    /// Normalised state.
    pub state: ObservedState,
    /// The device's carrier tags, when the listing gives them (empty otherwise).
    pub tags: Vec<String>,
}

/// One explicitly listed SIM to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// By ICCID.
    Iccid(String),
    /// By device (endpoint) id.
    Device(u64),
}

impl Lookup {
    /// The observation of a listed SIM the carrier does not know.
    pub fn unknown(self) -> SimObservation {
        let (iccid, device_id, what) = match self {
            Lookup::Iccid(iccid) => (iccid, None, "ICCID"),
            Lookup::Device(id) => (String::new(), Some(id), "device id"),
        };
        SimObservation {
            iccid,
            device_id,
            sim_id: None,
            tags: Vec::new(),
            state: ObservedState::Ineligible(format!(
                "unknown {what} (not in this account or organisation)"
            )),
        }
    }
}

/// A carrier action as the carrier's jobs list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionStatus {
    /// The action (job) id.
    pub id: String,
    /// The carrier's words for its status (e.g. Hologram's `PROCESSING`).
    pub status: String,
    /// True when the carrier says it has finished (Hologram: `timestamp_end` is set).
    pub finished: bool,
    /// SIMs the finished action failed to change, where the carrier says which (Soracom's
    /// failed batch tasks).
    pub refused: Vec<Refusal>,
}

/// How an observation looks listed SIMs up, and what it costs in calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupPlan {
    /// Many per call, through the carrier's multi-value filters.
    Batched {
        /// Calls.
        calls: u64,
    },
    /// One call per listed SIM.
    OneByOne {
        /// Calls.
        calls: u64,
    },
    /// The organisation's whole listing, filtered here.
    FullListing {
        /// Calls (pages, and one call for the total).
        calls: u64,
    },
}

impl LookupPlan {
    /// Calls it costs.
    pub fn calls(self) -> u64 {
        match self {
            LookupPlan::Batched { calls }
            | LookupPlan::OneByOne { calls }
            | LookupPlan::FullListing { calls } => calls,
        }
    }
}

fn calls_text(calls: u64) -> String {
    if calls == 1 {
        "1 call".into()
    } else {
        format!("{calls} calls")
    }
}

impl std::fmt::Display for LookupPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupPlan::Batched { calls } => write!(f, "batched lookups, {}", calls_text(*calls)),
            LookupPlan::OneByOne { calls } => {
                write!(f, "one lookup per SIM, {}", calls_text(*calls))
            }
            LookupPlan::FullListing { calls } => {
                write!(f, "the full listing, {}", calls_text(*calls))
            }
        }
    }
}

/// A SIM to change, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTarget {
    /// Device (endpoint) id.
    pub device_id: u64,
    /// emnify SIM id, if known.
    pub sim_id: Option<u64>,
}

/// A SIM the carrier did not take into a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Device id.
    pub device_id: u64,
    /// The carrier's reason.
    pub reason: String,
    /// What the operator should make of it.
    pub kind: RefusalKind,
}

/// What a refusal means for the SIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// A transient failure: trying again later may succeed.
    Retryable,
    /// The carrier refused or failed the change.
    Failed,
    /// The carrier says the SIM cannot take the change (deleted, unknown, invalid for it).
    Ineligible,
}

/// What the carrier said to a state change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Submission {
    /// The carrier's action (job) ids, for people to correlate with its dashboard.
    pub action_ids: Vec<String>,
    /// SIMs accepted.
    pub accepted: usize,
    /// SIMs refused up front (or failed), with reasons.
    pub refused: Vec<Refusal>,
}
