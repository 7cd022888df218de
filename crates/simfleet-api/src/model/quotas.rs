//! Data quotas in carrier-neutral terms: what is set, what is read, and the carrier's quota
//! events.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A data quota to set.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaSetting {
    /// Volume in MB.
    pub volume_mb: f64,
    /// Expiry (sent in the carrier's format, UTC).
    pub expiry: Timestamp,
    /// Refill daily.
    pub auto_refill: bool,
    /// Remaining percentage that raises the threshold event.
    pub threshold_percentage: Option<u8>,
}

/// A quota's state at the carrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaState {
    /// Data may flow.
    Active,
    /// Used up; the device is blocked.
    Exhausted,
    /// Past its expiry.
    Expired,
    /// A status this client does not know.
    Unknown(String),
}

/// A device's quota as read from the carrier.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaReading {
    /// State.
    pub state: QuotaState,
    /// Remaining volume in MB.
    pub volume_mb: f64,
    /// Expiry.
    pub expiry: Option<Timestamp>,
    /// Refilled daily.
    pub auto_refill: bool,
    /// Threshold percentage.
    pub threshold_percentage: Option<f64>,
    /// The volume of the last set (what a refill restores; the base of the threshold).
    pub last_volume_added: Option<f64>,
}

/// What a quota event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaEventKind {
    /// "Quota used up": the device is blocked.
    UsedUp,
    /// "Quota threshold reached".
    ThresholdReached,
    /// "Data quota expired".
    Expired,
    /// A quota was assigned (by anyone: this operator, the portal, another client).
    Assigned,
    /// A quota was deleted.
    Deleted,
}

/// A quota event of the organisation, with the device it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceQuotaEvent {
    /// The carrier's device id.
    pub device_id: u64,
    /// The event.
    pub event: QuotaEvent,
}

/// The quota events of an organisation in a time window, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrgQuotaEvents {
    /// The events.
    pub events: Vec<DeviceQuotaEvent>,
    /// False when the listing stopped at its page bound: older events of the window are
    /// missing, so the caller cannot rely on it to say which devices changed.
    pub complete: bool,
}

/// A quota event the carrier listed for a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaEvent {
    /// The carrier's event id.
    pub id: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Which quota event.
    pub kind: QuotaEventKind,
    /// The carrier's description.
    pub description: String,
}
