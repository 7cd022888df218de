//! What the bench binaries share: the carrier side of a SimGroup pass (observe every page, plan,
//! submit), without what the controller adds around it (status writes, triggers, claims, the
//! in-flight memory), and the process's memory.
#![allow(dead_code)]

use futures::TryStreamExt;
use jiff::Timestamp;
use simfleet::api::{LocalObjectRef, SimGroupSpec, SimGroupStatus, SimSelector, SimState};
use simfleet::carrier::Carrier;
use simfleet::model::Selection;
use simfleet::sim_group::plan::{NoClaims, PlanContext, SimGroupPlanner};

/// A `/proc/self/status` field in KiB (e.g. `VmRSS:`).
pub fn kib(field: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A group selecting `tags` on the account `simulator`.
pub fn group(state: SimState, tags: &[&str]) -> SimGroupSpec {
    SimGroupSpec {
        carrier_ref: LocalObjectRef {
            name: "simulator".into(),
        },
        state,
        selector: SimSelector {
            tags: Some(tags.iter().map(|t| t.to_string()).collect()),
            ..Default::default()
        },
        rollout: None,
        awaiting_connection: Default::default(),
        system_paused: Default::default(),
        drift_check: None,
        drift: Default::default(),
        on_delete: Default::default(),
        management: Default::default(),
        guard: None,
    }
}

/// What one reconcile did.
pub struct Reconciled {
    /// The status it would write.
    pub status: SimGroupStatus,
    /// Actions submitted.
    pub actions: usize,
    /// Actions whose submit failed (the rest of the plan waits for the next reconcile).
    pub failed: usize,
    /// Most RSS growth while observing and planning, in KiB.
    pub peak_kib: i64,
}

/// One pass at the carrier: observe every page, plan, submit (stopping at a failed submit, as
/// the controller does); returns the status it plans and what was sent. Not the controller's
/// reconcile: nothing is written to Kubernetes.
pub async fn reconcile(
    carrier: &dyn Carrier,
    spec: &SimGroupSpec,
    previous: &SimGroupStatus,
) -> Reconciled {
    reconcile_at(carrier, spec, previous, Timestamp::now()).await
}

/// [`reconcile`] at `now` (a simulator's virtual time).
pub async fn reconcile_at(
    carrier: &dyn Carrier,
    spec: &SimGroupSpec,
    previous: &SimGroupStatus,
    now: Timestamp,
) -> Reconciled {
    let in_flight = simfleet::sim_group::plan::InFlight::default();
    let selection = Selection {
        tags: spec.selector.tags.clone().unwrap(),
        ..Default::default()
    };
    let before = kib("VmRSS:");
    let mut peak_kib = 0;
    let mut planner = SimGroupPlanner::new(PlanContext {
        spec,
        generation: 1,
        approval: &simfleet::sim_group::approval::NO_APPROVAL,
        previous,
        carrier_limit: carrier.capabilities().max_sims_per_action,
        one_action_at_a_time: false,
        poll_cost: simfleet::sim_group::plan::PollCost::Observation,
        carrier_statuses: &[],
        in_flight: &in_flight,
        claims: &NoClaims,
        now,
    });
    let mut pages = carrier.observe(&selection);
    while let Some(page) = pages.try_next().await.unwrap() {
        planner.observe(&page);
        peak_kib = peak_kib.max(kib("VmRSS:") - before);
    }
    drop(pages);
    let mut plan = planner.finish();
    let actions = std::mem::take(&mut plan.actions);
    let (mut sent, mut failed) = (0, 0);
    for action in &actions {
        match carrier.submit(action.change, &action.sims).await {
            Ok(submission) => {
                sent += 1;
                plan.record_submission(
                    submission.action_ids.join(","),
                    action.change,
                    submission.accepted,
                    &submission.refused,
                );
            }
            Err(_) => {
                failed += 1;
                plan.record_unsubmitted(action.sims.len());
                break;
            }
        }
    }
    Reconciled {
        status: plan.status(previous),
        actions: sent,
        failed,
        peak_kib,
    }
}

/// Carrier calls a simulator answered (its admin routes left out).
pub fn carrier_calls(sim: &simfleet::simulator::SimulatorHandle) -> u64 {
    sim.state()
        .request_counts()
        .iter()
        .filter(|r| !r.route.starts_with("/_sim/"))
        .map(|r| r.count)
        .sum()
}
