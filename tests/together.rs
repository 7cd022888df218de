//! Where resources meet, end to end on the sandbox API server with the real kubectl,
//! `simfleet run` as a child process and the simulator's default fleet (paused, system-paused
//! and deactivated SIMs among the live ones). The scenarios where kube-apiserver behaves
//! differently (namespace deletion, conflicts) run there too, in tests/real_cluster.

mod common;

use common::e2e::E2e;
use common::together;
use simfleet::simulator::SimulatorConfig;

/// The simulator's default fleet of `sims` SIMs: problem SIMs in it, as carriers have them.
fn fleet(sims: usize) -> SimulatorConfig {
    SimulatorConfig::for_tests(sims, jiff::SignedDuration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_returns_every_sim_the_group_changed_after_its_selector_was_edited() {
    let e2e = E2e::sandbox("together-restore", fleet(600)).await;
    together::a_restore_returns_the_sims_that_left_the_selector(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_restores_its_sims_and_removes_its_quotas() {
    let mut e2e = E2e::sandbox("together-namespace", fleet(300)).await;
    together::create_namespace(&e2e, "doomed").await;
    e2e.namespace = "doomed".into();
    together::a_deleted_namespace_keeps_its_records_until_they_are_used(&e2e, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_while_the_operator_is_down_restores_its_sims_when_it_is_back() {
    let mut e2e = E2e::sandbox("together-namespace-down", fleet(300)).await;
    together::create_namespace(&e2e, "doomed").await;
    e2e.namespace = "doomed".into();
    together::a_deleted_namespace_keeps_its_records_until_they_are_used(&e2e, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_group_and_an_iccid_group_on_the_same_sims_both_report_the_conflict() {
    let e2e = E2e::sandbox("together-conflict", fleet(300)).await;
    together::conflicts_are_symmetric_whatever_the_selector_kinds(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_on_one_carrier_organisation_conflict_and_never_flap() {
    let e2e = E2e::sandbox("together-tenants", fleet(300)).await;
    together::two_namespaces_on_one_organisation_conflict_and_never_flap(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_given_ahead_of_the_change_approves_nothing() {
    let e2e = E2e::sandbox("together-approval", fleet(300)).await;
    together::an_approval_given_ahead_approves_nothing(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_groups_pending_sims_are_not_counted_as_this_groups_pending() {
    let e2e = E2e::sandbox("together-pending", fleet(300)).await;
    together::another_groups_pending_sims_are_not_this_groups_pending(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_quotas_declaring_different_quotas_for_the_same_devices_conflict() {
    let e2e = E2e::sandbox("together-quotas", fleet(400)).await;
    together::data_quotas_on_the_same_devices_conflict(&e2e).await;
}
