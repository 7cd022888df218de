//! `SimGroup`: a set of SIMs and the state they should be in.
// Each `printcolumn(...)` in `#[kube(...)]` repeats keys like `type_`; clippy reads that as a
// duplicated attribute, but every group is a separate column.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FriendlyDuration, LocalObjectRef, Management};

/// Most problem SIMs (or devices) of one reason kept as a sample in status.
pub const PROBLEM_SAMPLE_LIMIT: usize = 20;

/// Desired connectivity of the SIMs in a group.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SimState {
    /// SIMs are live and may use data.
    Active,
    /// SIMs are paused by the customer (no data; carriers may still charge a platform fee).
    Paused,
}

impl SimState {
    /// The state's name, as in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            SimState::Active => "Active",
            SimState::Paused => "Paused",
        }
    }
}

/// What to do with SIMs the carrier paused by itself (billing, limits).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SystemPausedPolicy {
    /// Report them in status and leave them paused.
    #[default]
    Report,
    /// Resume them when the group is `Active` and the carrier allows it.
    Resume,
}

/// What an Active group does with SIMs that turn active by themselves at their next
/// connection attempt (Soracom's `ready` and `standby`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AwaitingConnectionPolicy {
    /// Count them apart (`counts.awaitingConnection`) and leave them to connect: activating a
    /// `ready` SIM early starts its billing.
    #[default]
    Leave,
    /// Activate them now.
    Activate,
}

/// What to do when a SIM is found in another state than declared (changed outside simfleet).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Change it back to the declared state.
    #[default]
    Correct,
    /// Only report it in status and events.
    Report,
}

/// What happens to the SIMs when the SimGroup is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SimGroupDeletePolicy {
    /// Leave the SIMs in whatever state they are.
    #[default]
    Orphan,
    /// Return the SIMs to the state they had before this group first changed them.
    Restore,
}

/// A set of SIMs and the state they should be in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "simfleet.io",
    version = "v1alpha1",
    kind = "SimGroup",
    plural = "simgroups",
    shortname = "sg",
    category = "simfleet",
    namespaced,
    status = "SimGroupStatus",
    doc = "A set of cellular SIMs (by ICCID, carrier device id or carrier tag) and the state they should be in, Active or Paused. The operator submits the carrier's bulk actions and reports their progress in status.",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".spec.state",
        description = "Desired state of the SIMs"
    ),
    printcolumn(
        name = "Selected",
        type_ = "integer",
        json_path = ".status.counts.selected",
        description = "SIMs the selector picks"
    ),
    printcolumn(
        name = "In-State",
        type_ = "integer",
        json_path = ".status.counts.inDesiredState",
        description = "SIMs already in the desired state"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.counts.pending",
        description = "SIMs awaiting carrier confirmation"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Every eligible SIM is in the desired state"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1,
        description = "Why Ready is what it is (e.g. Converged, NoSimsSelected, ApprovalRequired)"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.counts.failed",
        priority = 1,
        description = "SIMs whose change failed"
    ),
    printcolumn(
        name = "Ineligible",
        type_ = "integer",
        json_path = ".status.counts.ineligible",
        priority = 1,
        description = "SIMs that cannot be changed"
    ),
    printcolumn(
        name = "Sys-Paused",
        type_ = "integer",
        json_path = ".status.counts.pausedBySystem",
        priority = 1,
        description = "SIMs paused by the carrier's system"
    ),
    printcolumn(
        name = "Carrier",
        type_ = "string",
        json_path = ".spec.carrierRef.name",
        priority = 1,
        description = "CarrierAccount used"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.driftCheck) || !self.driftCheck.matches('^(0+[dhms])+$')").message("driftCheck: must be longer than zero, e.g. 10m").field_path(".driftCheck"))]
#[serde(rename_all = "camelCase")]
pub struct SimGroupSpec {
    /// The CarrierAccount (same namespace) that owns these SIMs.
    pub carrier_ref: LocalObjectRef,

    /// Desired state of every selected SIM: `Active` or `Paused`.
    pub state: SimState,

    /// Which SIMs belong to the group: any of ICCIDs, device ids and tags (their union).
    pub selector: SimSelector,

    /// How fast to change SIMs: SIMs per carrier action and the pause between actions, so that
    /// thousands of devices do not re-attach to the network at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// SIMs paused by the carrier's system (billing, limits): `Report` leaves them paused and
    /// reports them; `Resume` resumes them when the group is Active and the carrier allows it.
    #[serde(default)]
    pub system_paused: SystemPausedPolicy,

    /// SIMs that turn active by themselves at their next connection attempt (Soracom's
    /// `ready` and `standby`): in an Active group, `Leave` (default) counts them in
    /// `counts.awaitingConnection` and leaves them to connect (activating a `ready` SIM early
    /// starts its billing); `Activate` activates them now. A Paused group pauses them either
    /// way (a connection attempt would make them active).
    #[serde(default)]
    pub awaiting_connection: AwaitingConnectionPolicy,

    /// SIMs changed outside simfleet (e.g. in the carrier's dashboard) after the group's change
    /// was carried out: both policies list them in `problemSims` (reason `Drift`) and emit a
    /// `DriftDetected` Warning event; `Correct` changes them back, `Report` never submits for them.
    #[serde(default)]
    pub drift: DriftPolicy,

    /// How often a group at rest is read again to find drift, e.g. `1m`, `10m` (the default),
    /// `1h`. Each check is one observation of the selection: one carrier request per page of
    /// SIMs (Hologram 1,000 SIMs a page, emnify 1,000 devices a page; a list of ICCIDs or device
    /// ids is looked up in batches, about 350 ICCIDs or 1,000 device ids a request at Hologram:
    /// docs/carriers.md gives each carrier's cost). Other events (status writes, other groups'
    /// changes) do not bring it forward; a spec change, a resumed pause or an operator restart
    /// reads at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_check: Option<FriendlyDuration>,

    /// On deletion: `Orphan` leaves SIMs as they are; `Restore` returns them to the state they
    /// had before this group first changed them. With `Restore`, the operator records each SIM's
    /// earlier state (in ConfigMaps named `<group>-restore-<n>`) before changing it; SIMs changed
    /// while the policy was `Orphan` are not recorded. Deletion waits until the carrier confirms
    /// the restore; SIMs another SimGroup wants in their current state are left as they are.
    /// If the carrier account is broken, set `Orphan` to let the deletion finish.
    #[serde(default)]
    pub on_delete: SimGroupDeletePolicy,

    /// A safety catch for large changes: a change touching more SIMs than this waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<ChangeGuard>,

    /// `Manage` (default) submits the changes; `Observe` only observes and plans: status shows
    /// the counts and the carrier actions that would be submitted (`wouldSubmit`), `Ready` says
    /// whether the carrier already matches, and nothing is submitted, not even on deletion.
    /// Switching to `Manage` acts on the next reconcile, under the approval guard.
    #[serde(default)]
    pub management: Management,
}

/// Which SIMs a group selects. At least one of the lists must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.iccids) || has(self.deviceIds) || has(self.tags)").message("selector: set at least one of iccids, deviceIds, tags"))]
#[x_kube(validation = Rule::new("(has(self.iccids) ? size(self.iccids) : 0) + (has(self.deviceIds) ? size(self.deviceIds) : 0) <= 10000").message("selector: at most 10,000 ICCIDs and device ids together (kubectl apply keeps the list in a 256 KiB annotation); select larger fleets by tag"))]
pub struct SimSelector {
    /// SIMs by ICCID: 19 to 22 digits starting with 89. At most 10,000 ICCIDs and device ids
    /// together (so that `kubectl apply` fits the list in its 256 KiB last-applied annotation);
    /// select larger fleets by tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10000), inner(regex(pattern = super::ICCID_PATTERN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub iccids: Option<Vec<String>>,

    /// SIMs by the carrier's device id (Hologram device id, emnify endpoint id). At most 10,000
    /// ICCIDs and device ids together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10000), inner(range(min = 1)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub device_ids: Option<Vec<u64>>,

    /// SIMs whose device carries any of these carrier tags (names, without commas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(regex(pattern = super::TAG_PATTERN), length(min = 1, max = 128)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tags: Option<Vec<String>>,
}

impl SimGroupSpec {
    /// How often a group at rest is read again to find drift (`driftCheck`, 10 minutes unless set).
    pub fn drift_check(&self) -> std::time::Duration {
        self.drift_check
            .as_ref()
            .map_or(DEFAULT_DRIFT_CHECK, |d| d.as_duration().unsigned_abs())
    }
}

/// How often a group at rest is read again to find drift, unless `driftCheck` says otherwise.
pub const DEFAULT_DRIFT_CHECK: std::time::Duration = std::time::Duration::from_secs(600);

impl SimSelector {
    /// The selector in words, for messages: `tags smart-meter, cold-chain; 3 ICCIDs`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(tags) = self.tags.as_ref().filter(|t| !t.is_empty()) {
            parts.push(format!("tags {}", tags.join(", ")));
        }
        if let Some(iccids) = self.iccids.as_ref().filter(|i| !i.is_empty()) {
            parts.push(format!("{} ICCIDs", iccids.len()));
        }
        if let Some(devices) = self.device_ids.as_ref().filter(|d| !d.is_empty()) {
            parts.push(format!("{} device ids", devices.len()));
        }
        parts.join("; ")
    }
}

/// Pacing of state changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Most SIMs per carrier action, 1 to 10,000 (the carriers' own limit). Default 10,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_sims_per_action: Option<u32>,

    /// Pause between two carrier actions, e.g. `30s`, `5m`, `1h` (units d, h, m, s). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<FriendlyDuration>,
}

/// The approval guard for large changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeGuard {
    /// A change touching more SIMs than this is held until it is approved: with the annotation
    /// `simfleet.io/approved-change` equal to the held change's digest (`status.heldChange`), or
    /// `simfleet.io/approved-generation` set to the held generation while it is held.
    #[schemars(range(min = 0))]
    pub max_changes_without_approval: u32,
}

/// Progress of a SimGroup, like a carrier's pending-activity list.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimGroupStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions in the kstatus style: `Ready` (every eligible SIM in the desired state),
    /// `Reconciling` (carrier actions pending), `Stalled` (needs a human).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// SIM counts by outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<SimCounts>,

    /// Carrier actions submitted and not yet confirmed by observed SIM states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    pub pending_actions: Vec<PendingAction>,

    /// A sample of SIMs that need a human (at most 20 of each reason), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub problem_sims: Vec<ProblemSim>,

    /// When the last carrier action was submitted (RFC 3339); `rollout.interval` counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_time: Option<Time>,

    /// The change waiting for approval (more SIMs than `guard.maxChangesWithoutApproval`): approve
    /// exactly this content with the annotation `simfleet.io/approved-change` set to its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_change: Option<HeldChange>,

    /// The approval annotations as the operator last judged them, and the generation approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,

    /// With `management: Observe`, the carrier actions that would be submitted now, in order
    /// (each at most the carrier's and the rollout's limit). Empty when managing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_submit: Vec<WouldSubmit>,
}

/// A change held for approval.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldChange {
    /// The generation whose change is held.
    pub generation: i64,
    /// The digest of the change's content (direction, number and set of SIMs), e.g.
    /// `Pause-184-1f0c9a2b3c4d5e6f`: the value of `simfleet.io/approved-change` that approves it.
    #[schemars(length(max = 64))]
    pub digest: String,
    /// What the change does: `Pause` or `Resume`.
    pub action: StateChange,
    /// SIMs the change touches.
    pub sims: u64,
}

/// The approval annotations as last judged.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// The value of `simfleet.io/approved-generation` when last judged (a value is judged once,
    /// when first seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_annotation: Option<String>,
    /// The value of `simfleet.io/approved-change` when last judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_annotation: Option<String>,
    /// The generation whose change was approved: the rest of its rollout goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_generation: Option<i64>,
}

/// A carrier action an observe-only SimGroup would submit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WouldSubmit {
    /// What the action would do: `Pause` or `Resume`.
    pub action: StateChange,
    /// Number of SIMs in the action.
    pub sims: u32,
}

/// SIM counts of a SimGroup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimCounts {
    /// SIMs the selector picks at the carrier.
    pub selected: u64,
    /// Selected SIMs already in the desired state.
    pub in_desired_state: u64,
    /// SIMs in a submitted carrier action that is not confirmed yet.
    pub pending: u64,
    /// SIMs whose change the carrier refused or did not apply.
    pub failed: u64,
    /// SIMs that cannot change (deactivated, unknown ICCID, another organisation).
    pub ineligible: u64,
    /// SIMs paused by the carrier's system (billing, limits).
    pub paused_by_system: u64,
    /// SIMs also claimed by another SimGroup with the opposite state (left unchanged).
    #[serde(default)]
    pub conflicting: u64,
    /// SIMs found in another state after this generation's change was carried out (changed
    /// outside simfleet): corrected with `drift: Correct`, only reported with `drift: Report`.
    #[serde(default)]
    pub drifted: u64,
    /// SIMs that turn active by themselves at their next connection attempt (Soracom's `ready`
    /// and `standby`), left so by an Active group with `awaitingConnection: Leave`.
    #[serde(default)]
    pub awaiting_connection: u64,
}

/// Direction of a carrier state change.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum StateChange {
    /// Pause the SIMs.
    Pause,
    /// Resume (activate) the SIMs.
    Resume,
}

/// A carrier action (job) submitted and not yet confirmed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingAction {
    /// The carrier's id for the action (e.g. Hologram's job id), to correlate with its dashboard.
    pub id: String,
    /// What the action does: `Pause` or `Resume`.
    pub action: StateChange,
    /// Number of SIMs in the action.
    pub sims: u32,
    /// When the action was submitted (RFC 3339).
    pub submitted_at: Time,
    /// The carrier's own status of the action, where it lists its jobs (Hologram's
    /// `GET /devices/batch/state`, e.g. `PROCESSING`). Shown for people; confirmation is always
    /// by the SIMs' observed states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_status: Option<String>,
}

/// Why a SIM needs a human.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ProblemReason {
    /// The SIM cannot change state (deactivated, unknown, another organisation).
    Ineligible,
    /// The carrier's system paused the SIM (billing, limits).
    PausedBySystem,
    /// Another SimGroup claims the SIM with the opposite state.
    Conflict,
    /// The carrier refused or did not apply the change.
    Failed,
    /// The SIM was changed outside simfleet and `drift: Report` leaves it so.
    Drift,
}

/// One SIM that needs a human.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemSim {
    /// The SIM's ICCID.
    pub iccid: String,
    /// The carrier's device id, when known, as a string: carrier ids can exceed what a JSON
    /// number holds exactly (Soracom's SIM ids have 19 digits). A number written by an older
    /// operator is read too.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "carrier_id::deserialize"
    )]
    #[schemars(length(min = 1, max = 32))]
    pub device_id: Option<String>,
    /// Category of the problem.
    pub reason: ProblemReason,
    /// Details in words, e.g. the carrier's own reason or the conflicting SimGroup.
    pub message: String,
}

impl ProblemSim {
    /// Whether `sample` has room for one more SIM of `reason` (20 of each reason, so that SIMs
    /// of one kind never hide those of another).
    pub fn room_for(sample: &[ProblemSim], reason: ProblemReason) -> bool {
        sample.iter().filter(|p| p.reason == reason).count() < PROBLEM_SAMPLE_LIMIT
    }

    /// A problem SIM's entry; the device id is kept as the carrier's digits.
    pub fn new(
        iccid: String,
        device_id: Option<u64>,
        reason: ProblemReason,
        message: String,
    ) -> Self {
        Self {
            iccid,
            device_id: device_id.map(|d| d.to_string()),
            reason,
            message,
        }
    }
}

/// Carrier ids in status: strings, read from a string or (as older operators wrote) a number.
mod carrier_id {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<Id>::deserialize(deserializer)?.map(|id| match id {
            Id::Text(text) => text,
            Id::Number(number) => number.to_string(),
        }))
    }
}
