//! What an observe-only SimGroup (`management: Observe`) reports instead of submitting: the
//! carrier actions the change needs, and the `Reconciling` message. Pure.

use crate::plan::numbers::{count, thousands};
use simfleet_api::{StateChange, WouldSubmit};

/// What an observe-only plan reports instead of submitting.
#[derive(Debug)]
pub(crate) struct ObserveOnly {
    /// The actions, in order.
    pub(crate) would_submit: Vec<WouldSubmit>,
    /// The approval the change would need when managed: (SIMs, guard limit).
    pub(crate) approval: Option<(usize, u32)>,
}

/// The actions `changes` SIMs make at `limit` per action, all at once (an observe-only plan
/// reports every action the change needs, whatever the rollout interval).
pub(crate) fn would_submit(changes: usize, limit: usize, change: StateChange) -> Vec<WouldSubmit> {
    let limit = limit.max(1);
    (0..changes.div_ceil(limit))
        .map(|i| WouldSubmit {
            action: change,
            sims: u32::try_from(limit.min(changes - i * limit)).unwrap_or(u32::MAX),
        })
        .collect()
}

/// The `Reconciling` message of an observe-only group.
pub(crate) fn observe_message(observe: &ObserveOnly, changes: usize) -> String {
    if changes == 0 {
        return "management: Observe: the carrier matches the spec; nothing is submitted".into();
    }
    let approval = observe.approval.map_or_else(String::new, |(_, limit)| {
        format!(
            "; more than guard.maxChangesWithoutApproval ({}), so managing it will need the annotation simfleet.io/approved-generation",
            thousands(u64::from(limit))
        )
    });
    format!(
        "management: Observe: {} would change, in {} (see wouldSubmit){approval}; nothing is submitted; set management: Manage to act",
        count(changes as u64, "SIM"),
        count(observe.would_submit.len() as u64, "carrier action")
    )
}
