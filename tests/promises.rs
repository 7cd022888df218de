//! The core promises end to end on the sandbox API server, with the real kubectl and
//! `simfleet run` as a child process (the same scenarios run on the real kube-apiserver in
//! tests/real_cluster).

mod common;

use common::e2e::E2e;
use common::promises;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversed_change_converges_at_any_gap_in_both_directions_on_both_carriers() {
    let e2e = E2e::sandbox("reversals", simfleet_testkit::simulator::live_config(100)).await;
    promises::reversed_changes_converge(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_report_only_reports_and_drift_correct_corrects() {
    let e2e = E2e::sandbox("drift", simfleet_testkit::simulator::live_config(200)).await;
    promises::drift_is_reported_and_only_corrected_when_asked(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_of_a_folder_restores_and_removes_before_the_account_goes() {
    let e2e = E2e::sandbox("teardown", simfleet_testkit::simulator::live_config(300)).await;
    promises::a_teardown_in_any_order_restores_and_removes(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_with_a_typo_is_not_green() {
    let e2e = E2e::sandbox("typo", simfleet_testkit::simulator::live_config(10)).await;
    promises::an_empty_selection_is_not_ready(&e2e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_up_is_applied_once_per_device_across_a_kill_9() {
    let e2e = E2e::sandbox("topup", simfleet_testkit::simulator::live_config(300)).await;
    promises::a_top_up_is_applied_once_across_a_kill_9(&e2e).await;
}
