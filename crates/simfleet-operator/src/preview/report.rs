//! What `simfleet plan` reports: manifest problems, and what applying each SimGroup and
//! DataQuota would do; the report decides the exit code.

use serde::Serialize;

use super::{EXIT_INVALID, EXIT_OK, EXIT_REFUSED};

/// One manifest problem: where, and what.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestProblem {
    /// The file.
    pub file: String,
    /// The document's index in the file (from 0), when the problem is in one document.
    pub document: Option<usize>,
    /// `Kind/name`, when known.
    pub object: Option<String>,
    /// The field, when the problem is in one.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What applying one SimGroup would do.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimGroupPreview {
    /// `namespace/name`.
    pub name: String,
    /// Desired state.
    pub state: String,
    /// SIMs the selector selects.
    pub selected: u64,
    /// Already in the desired state.
    pub in_state: u64,
    /// SIMs that would change.
    pub to_change: u64,
    /// Carrier actions that would carry them.
    pub actions: u64,
    /// When the actions would go, with `rollout.interval` (RFC 3339, from now).
    pub schedule: Vec<String>,
    /// Already pending at the carrier.
    pub pending: u64,
    /// Paused by the carrier's system.
    pub paused_by_system: u64,
    /// Cannot change.
    pub ineligible: u64,
    /// Claimed by another SimGroup in DIR with the opposite state.
    pub conflicts: u64,
    /// Why changes would wait (approval), if they would.
    pub held: Option<String>,
    /// How the listed SIMs were looked up and what that cost in carrier calls (the cheaper of
    /// the carrier's ways), when the group lists SIMs.
    pub lookup: Option<String>,
    /// Why this group cannot be planned.
    pub error: Option<String>,
    /// What looks wrong without stopping the plan (an empty selection, a malformed annotation).
    pub warnings: Vec<String>,
}

/// What applying one DataQuota would do.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataQuotaPreview {
    /// `namespace/name`.
    pub name: String,
    /// `Set` or `TopUp`.
    pub mode: String,
    /// Devices targeted.
    pub devices: u64,
    /// Quotas that would be set.
    pub to_set: u64,
    /// Quotas that would be topped up.
    pub to_top_up: u64,
    /// Already as declared.
    pub unchanged: u64,
    /// Devices without a quota now (denied data until it is set).
    pub without_quota: u64,
    /// Devices the carrier cannot give a quota (deleted endpoint, no SIM): left out.
    pub ineligible: u64,
    /// The expiry that would be sent.
    pub expiry: Option<String>,
    /// Why this quota cannot be planned.
    pub error: Option<String>,
}

/// The whole plan.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// Invalid manifests (nothing else is planned when there are any).
    pub errors: Vec<ManifestProblem>,
    /// SimGroups, in manifest order.
    pub sim_groups: Vec<SimGroupPreview>,
    /// DataQuotas, in manifest order.
    pub data_quotas: Vec<DataQuotaPreview>,
    /// SIM changes plus quota sets and top-ups.
    pub total_changes: u64,
    /// The CarrierAccounts used, each with where it was read from and its URL.
    pub accounts: Vec<String>,
    /// Documents of other kinds, not planned.
    pub skipped_documents: Vec<String>,
}

impl PlanReport {
    /// The exit code for these flags.
    pub(crate) fn exit_code(&self, fail_on_change: bool, max_changes: Option<u64>) -> i32 {
        let resource_errors = self.sim_groups.iter().any(|g| g.error.is_some())
            || self.data_quotas.iter().any(|q| q.error.is_some());
        if !self.errors.is_empty() || resource_errors {
            EXIT_INVALID
        } else if (fail_on_change && self.total_changes > 0)
            || max_changes.is_some_and(|max| self.total_changes > max)
        {
            EXIT_REFUSED
        } else {
            EXIT_OK
        }
    }
}
