//! `DataQuota`: a data quota for a set of devices, kept as declared.
// Each `printcolumn(...)` in `#[kube(...)]` repeats keys like `type_`; clippy reads that as a
// duplicated attribute, but every group is a separate column.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FriendlyDuration, LocalObjectRef};

/// What the carrier does when a quota is used up.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExhaustionAction {
    /// Block the device's data until the quota is renewed.
    #[default]
    Block,
    /// Refused: the carrier decommissioned throttling on 2024-12-09. Listed only so that the
    /// error can say so; use `Block`.
    Throttle,
}

/// How `volumeMB` is applied.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum QuotaMode {
    /// The remaining volume is set to `volumeMB`.
    #[default]
    Set,
    /// `volumeMB` is added to the remaining volume, once per generation of this DataQuota.
    TopUp,
}

/// What happens to the carrier's quotas when the DataQuota is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum QuotaDeletePolicy {
    /// Leave the quotas at the carrier as they are.
    #[default]
    Orphan,
    /// Delete the quotas this DataQuota set. A device without a quota is denied data service.
    Remove,
}

/// A per-device data quota: volume, expiry, refill, threshold and what happens when used up.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "simfleet.io",
    version = "v1alpha1",
    kind = "DataQuota",
    plural = "dataquotas",
    shortname = "dq",
    category = "simfleet",
    namespaced,
    status = "DataQuotaStatus",
    doc = "A data quota for a set of devices (by device id, carrier tag, or a SimGroup): volume in MB, expiry, auto-refill, threshold and the action when used up. Without a quota the carrier denies a device data.",
    printcolumn(
        name = "Volume",
        type_ = "number",
        json_path = ".spec.volumeMB",
        description = "Quota volume in MB"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        priority = 1,
        description = "Set or TopUp"
    ),
    printcolumn(
        name = "Expiry",
        type_ = "string",
        json_path = ".status.earliestExpiry",
        description = "Earliest quota expiry among the devices"
    ),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.counts.active",
        description = "Devices whose quota is ACTIVE"
    ),
    printcolumn(
        name = "Exhausted",
        type_ = "integer",
        json_path = ".status.counts.exhausted",
        description = "Devices whose quota is used up"
    ),
    printcolumn(
        name = "Expired",
        type_ = "integer",
        json_path = ".status.counts.expired",
        priority = 1,
        description = "Devices whose quota expired"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Every target device has the declared quota"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1,
        description = "Why Ready is what it is (e.g. Converged, NoSimsSelected, ApprovalRequired)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.actionOnExhaustion != 'Throttle'").message("actionOnExhaustion: Throttle was decommissioned by the carrier on 2024-12-09; use Block").field_path(".actionOnExhaustion"))]
pub struct DataQuotaSpec {
    /// The CarrierAccount (same namespace) of the devices. It must support data quotas
    /// (emnify).
    pub carrier_ref: LocalObjectRef,

    /// Which devices get the quota.
    pub target: QuotaTarget,

    /// Data volume in MB: the quota to set (`mode: Set`) or to add (`mode: TopUp`). Above 0.
    #[serde(rename = "volumeMB")]
    #[schemars(range(min = 0.0, max = 100000000.0), extend("exclusiveMinimum" = true))]
    pub volume_mb: f64,

    /// When the quota expires: an absolute time (`at`) or a duration (`after`), exactly one.
    pub expiry: QuotaExpiry,

    /// Refill the quota to `volumeMB` every day (the carrier's auto-refill). Default false.
    #[serde(default)]
    pub auto_refill: bool,

    /// Remaining percentage (1 to 100) at which the carrier raises a "quota threshold reached"
    /// event. Unset: no threshold event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub threshold_percentage: Option<u8>,

    /// What the carrier does when the quota is used up: `Block` (the only action carriers still
    /// offer; `Throttle` was decommissioned and is refused). Default Block.
    #[serde(default)]
    pub action_on_exhaustion: ExhaustionAction,

    /// `Set` makes the remaining volume `volumeMB`; `TopUp` reads the remaining volume and adds
    /// `volumeMB`, once per generation of this DataQuota. Default Set.
    #[serde(default)]
    pub mode: QuotaMode,

    /// On deletion: `Orphan` leaves the quotas at the carrier; `Remove` deletes the quotas this
    /// DataQuota set. Removing a quota denies the device data service. Default Orphan.
    #[serde(default)]
    pub on_delete: QuotaDeletePolicy,

    /// `Manage` (default) sets the quotas; `Observe` only reads them: status counts the devices
    /// whose quota differs from the spec (`counts.wouldChange`, sampled in problemDevices),
    /// `Ready` says whether every device already has it, and nothing is ever set or removed.
    #[serde(default)]
    pub management: super::Management,
}

/// Devices that get the quota: device ids and/or tags, or the SIMs of one SimGroup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.deviceIds) || has(self.tags) || has(self.simGroupRef)").message("target: set at least one of deviceIds, tags, simGroupRef"))]
#[x_kube(validation = Rule::new("!has(self.simGroupRef) || !(has(self.deviceIds) || has(self.tags))").message("target: simGroupRef selects the group's SIMs and cannot be combined with deviceIds or tags; use one or the other"))]
pub struct QuotaTarget {
    /// Devices by the carrier's device id (emnify endpoint id). At most 10,000 (so that
    /// `kubectl apply` fits the list in its 256 KiB last-applied annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10000), inner(range(min = 1)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub device_ids: Option<Vec<u64>>,

    /// Devices carrying any of these carrier tags (names, without commas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(regex(pattern = super::TAG_PATTERN), length(min = 1, max = 128)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tags: Option<Vec<String>>,

    /// The devices of the SIMs a SimGroup (same namespace) selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_group_ref: Option<LocalObjectRef>,
}

/// When a quota expires. Exactly one of `at` and `after`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.at) != has(self.after)").message("expiry: set exactly one of at (an RFC 3339 time) or after (a duration such as 30d)"))]
#[x_kube(validation = Rule::new("!has(self.after) || !self.after.matches('^(0+[dhms])+$')").message("expiry.after: must be longer than zero, e.g. 30d").field_path(".after"))]
pub struct QuotaExpiry {
    /// Absolute expiry, RFC 3339 (e.g. `2027-01-31T23:59:59Z`); sent to the carrier in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,

    /// Expiry relative to when this generation of the DataQuota was first applied, e.g. `30d`,
    /// `12h` (units d, h, m, s). A resync does not push it forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<FriendlyDuration>,
}

/// What the operator last observed of a DataQuota.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataQuotaStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions in the kstatus style: `Ready` (every target has the declared quota),
    /// `Reconciling`, `Stalled` (e.g. carrier without quota support, refused values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Target devices by carrier quota state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<QuotaCounts>,

    /// Earliest quota expiry among the target devices (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_expiry: Option<Time>,

    /// A sample (at most 20) of devices that need attention, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub problem_devices: Vec<ProblemDevice>,

    /// How far the current generation has been applied (kept by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<QuotaProgress>,

    /// Time of the newest carrier quota event already reported as a Kubernetes Event. The next
    /// scan reads the carrier's events from 15 minutes before it (events raised while devices
    /// were being read can carry earlier times) and skips those listed in lastEventIds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<Time>,

    /// Ids of the reported carrier events that a later scan may list again, so that none of them
    /// is reported twice. At most 1,000 (the newest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub last_event_ids: Vec<u64>,
}

/// How far one generation of a DataQuota has been applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaProgress {
    /// The generation this describes.
    pub generation: i64,
    /// When this generation was first applied: `expiry.after` counts from here, so a resync
    /// does not push the expiry forward.
    pub started_at: Time,
    /// The expiry this generation sets (whole seconds, UTC).
    pub expiry: Time,
    /// Devices are applied in ascending id order; those up to this id have this generation's
    /// quota (or top-up). Unset: none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_through: Option<u64>,
    /// Every target device has had this generation applied.
    #[serde(default)]
    pub complete: bool,
    /// Devices whose set failed; they are tried again on the next reconcile (at most 1,000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub retry_device_ids: Vec<u64>,
    /// Top-ups being written: each device and the absolute volume to set. After a crash they are
    /// sent again as they are, never read and added again, so a top-up is applied once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_ups_in_flight: Vec<TopUpInFlight>,
}

/// A top-up computed (remaining + `volumeMB`) and being written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopUpInFlight {
    /// The carrier's device id.
    pub device_id: u64,
    /// The volume to set, in MB (what was left plus the top-up).
    #[serde(rename = "volumeMB")]
    pub volume_mb: f64,
}

/// Device counts of a DataQuota by the carrier's quota state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaCounts {
    /// Devices the target selects.
    pub targeted: u64,
    /// Devices whose quota is ACTIVE.
    pub active: u64,
    /// Devices whose quota is used up (EXHAUSTED; data blocked).
    pub exhausted: u64,
    /// Devices whose quota passed its expiry (EXPIRED).
    pub expired: u64,
    /// Devices without any quota (denied data).
    pub none: u64,
    /// Devices whose quota could not be set.
    pub failed: u64,
    /// Devices the carrier cannot give a quota (endpoint deleted, no SIM, unknown): counted
    /// and sampled, not retried, and they do not keep `Ready` false.
    #[serde(default)]
    pub ineligible: u64,
    /// With `management: Observe`, devices whose quota differs from the spec: those a managed
    /// DataQuota would set or top up now.
    #[serde(default)]
    pub would_change: u64,
    /// Devices another DataQuota on the same carrier organisation declares another quota for:
    /// neither sets them; their quota stays as it is.
    #[serde(default)]
    pub conflicting: u64,
}

/// One device that needs attention.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDevice {
    /// The carrier's device id.
    pub device_id: u64,
    /// Short machine-readable reason, e.g. `Exhausted`, `Expired`, `Refused`, `Conflict`.
    pub reason: String,
    /// Details in words.
    pub message: String,
}
