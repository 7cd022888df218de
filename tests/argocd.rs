//! The Argo CD health check (deploy/argocd/health.lua), run in Lua (PyPI lupa) on statuses the
//! operator's own planners write: converged, pending, stalled, stale, paused, observe-only, and
//! none yet.

mod common;

use jiff::Timestamp;
use serde_json::{Value, json};
use simfleet::api::{DataQuotaStatus, SimGroupSpec, SimGroupStatus};
use simfleet::data_quota::plan::{SpecProblem, stalled_status};
use simfleet::model::{ObservedState, SimObservation};
use simfleet::sim_group::plan::{NoClaims, PlanContext, SimGroupPlanner};

fn sim(id: u64, state: ObservedState) -> SimObservation {
    SimObservation {
        iccid: format!("89445{id:014}"),
        device_id: Some(id),
        sim_id: None,
        state,
        tags: Vec::new(),
    }
}

/// The status the planner writes for a group observing `page` (submitting what it plans,
/// unless the group only observes).
fn planned(
    spec: &SimGroupSpec,
    previous: &SimGroupStatus,
    page: &[SimObservation],
) -> SimGroupStatus {
    let in_flight = simfleet::sim_group::plan::InFlight::default();
    let mut planner = SimGroupPlanner::new(PlanContext {
        spec,
        generation: 1,
        approval: &simfleet::sim_group::approval::NO_APPROVAL,
        previous,
        carrier_limit: 10_000,
        one_action_at_a_time: false,
        poll_cost: simfleet::sim_group::plan::PollCost::Observation,
        carrier_statuses: &[],
        in_flight: &in_flight,
        claims: &NoClaims,
        now: Timestamp::now(),
    });
    planner.observe(page);
    let mut plan = planner.finish();
    if spec.management == simfleet::api::Management::Observe {
        plan.observe_only();
    }
    let actions = std::mem::take(&mut plan.actions);
    for action in &actions {
        plan.record_submission("job-1".into(), action.change, action.sims.len(), &[]);
    }
    plan.status(previous)
}

fn object(kind: &str, generation: i64, status: Option<Value>) -> Value {
    json!({"apiVersion": "simfleet.io/v1alpha1", "kind": kind, "metadata": {"name": "x", "generation": generation}, "status": status})
}

#[test]
fn argo_cd_health_follows_the_kstatus_conditions_the_operator_writes() {
    let spec: SimGroupSpec = serde_json::from_value(
        json!({"carrierRef": {"name": "c"}, "state": "Paused", "selector": {"deviceIds": [1, 2]}}),
    )
    .unwrap();
    let pending = planned(
        &spec,
        &Default::default(),
        &[sim(1, ObservedState::Active), sim(2, ObservedState::Paused)],
    );
    let converged = planned(
        &spec,
        &pending,
        &[sim(1, ObservedState::Paused), sim(2, ObservedState::Paused)],
    );
    let guarded: SimGroupSpec = serde_json::from_value(json!({"carrierRef": {"name": "c"}, "state": "Paused", "selector": {"deviceIds": [1, 2]}, "guard": {"maxChangesWithoutApproval": 1}})).unwrap();
    let held = planned(
        &guarded,
        &Default::default(),
        &[sim(1, ObservedState::Active), sim(2, ObservedState::Active)],
    );
    let quota_problem = stalled_status(
        &DataQuotaStatus::default(),
        1,
        &SpecProblem {
            reason: "InvalidExpiry",
            message: "expiry.at: 2020-01-01T00:00:00Z is already past".into(),
        },
        Timestamp::now(),
    );
    // Paused by the annotation after converging, with generation 2 not observed: Suspended.
    let mut paused = converged.clone();
    paused.conditions = simfleet::plan::pause::paused_conditions(
        &converged.conditions,
        "SimGroup x carries simfleet.io/paused: \"true\"",
        2,
        Timestamp::now(),
    );
    let observing: SimGroupSpec = serde_json::from_value(json!({"carrierRef": {"name": "c"}, "state": "Paused", "selector": {"deviceIds": [1, 2]}, "management": "Observe"})).unwrap();
    let observed = planned(
        &observing,
        &Default::default(),
        &[sim(1, ObservedState::Active), sim(2, ObservedState::Paused)],
    );
    let observed_converged = planned(
        &observing,
        &Default::default(),
        &[sim(1, ObservedState::Paused), sim(2, ObservedState::Paused)],
    );
    let value = |s: &SimGroupStatus| Some(serde_json::to_value(s).unwrap());
    let results = common::argocd_health(&[
        object("SimGroup", 1, None),
        object("SimGroup", 1, value(&pending)),
        object("SimGroup", 1, value(&converged)),
        object("SimGroup", 2, value(&converged)),
        object("SimGroup", 1, value(&held)),
        object(
            "DataQuota",
            1,
            Some(serde_json::to_value(&quota_problem).unwrap()),
        ),
        object("SimGroup", 2, value(&paused)),
        object("SimGroup", 1, value(&observed)),
        object("SimGroup", 1, value(&observed_converged)),
    ]);
    let statuses: Vec<&str> = results.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "Progressing",
            "Progressing",
            "Healthy",
            "Progressing",
            "Degraded",
            "Degraded",
            "Suspended",
            "Suspended",
            "Healthy"
        ]
    );
    assert!(
        results[6].1.contains("simfleet.io/paused"),
        "{:?}",
        results[6]
    );
    assert!(
        results[7].1.contains("1 SIM would change"),
        "{:?}",
        results[7]
    );
    assert!(
        results[1].1.contains("awaiting carrier confirmation"),
        "{:?}",
        results[1]
    );
    assert!(
        results[2].1.contains("2 of 2 eligible SIMs Paused"),
        "{:?}",
        results[2]
    );
    assert!(
        results[3].1.contains("observe generation 2"),
        "{:?}",
        results[3]
    );
    assert!(
        results[4].1.contains("simfleet.io/approved-generation"),
        "{:?}",
        results[4]
    );
    assert!(results[5].1.contains("expiry.at"), "{:?}", results[5]);
}

#[test]
fn the_argocd_cm_patch_carries_the_same_script_for_each_kind() {
    let script = std::fs::read_to_string("deploy/argocd/health.lua").unwrap();
    let patch: Value = serde_saphyr::from_str(
        &std::fs::read_to_string("deploy/argocd/argocd-cm-patch.yaml").unwrap(),
    )
    .unwrap();
    for kind in ["SimGroup", "DataQuota", "CarrierAccount"] {
        let key = format!("resource.customizations.health.simfleet.io_{kind}");
        assert_eq!(patch["data"][&key].as_str(), Some(script.as_str()), "{key}");
    }
}
