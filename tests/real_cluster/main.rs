//! Against the real control plane (kube-apiserver, kube-controller-manager and etcd built from
//! Go modules by `scripts/control-plane`, RBAC on): the CRDs, the verdict on every manifest,
//! the core promises end to end, and how Flux's kstatus reads each kind's status. One control
//! plane serves the whole binary; each scenario has its own namespace and operator.

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;

use common::e2e::{ControlPlane, E2e};
use common::promises;
use serde_json::Value;

fn kstatus_binary() -> std::path::PathBuf {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/control-plane"
    ))
    .arg("bin")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("kstatus")
}

/// kstatus' reading (`Current`, `InProgress`, `Failed`, ...) of an object as `kubectl get -o json`
/// prints it.
fn kstatus(object: &Value) -> String {
    use std::io::Write;
    let mut child = Command::new(kstatus_binary())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// `kubectl apply --server-side -f crds/` (done as the control plane started) succeeded, and
/// the real server had nothing to warn about.
fn crds_are_accepted_without_warnings(plane: &ControlPlane) {
    assert!(
        !plane.crd_warnings.contains("Warning"),
        "the real server warns about the CRDs:\n{}",
        plane.crd_warnings
    );
}

async fn verdicts_match_simfleet_plan(plane: &ControlPlane) {
    plane.kubectl_ok(&["create", "namespace", "verdicts"]);
    let verdicts = common::verdicts::compare(plane.client().await, "verdicts").await;
    assert!(
        verdicts.disagreements.is_empty(),
        "kube-apiserver {} and simfleet plan disagree on {} of {} manifests:\n{}",
        plane.version,
        verdicts.disagreements.len(),
        verdicts.cases,
        verdicts.disagreements.join("\n")
    );
    assert!(verdicts.accepted > 20 && verdicts.refused > 60);
}

/// kstatus (what Flux runs) reads Ready at the current generation as Current, Stalled as
/// Failed, and anything else as InProgress.
async fn kstatus_reads_the_status_as_documented(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let operator = e2e.operator();
    e2e.apply("apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {name: fine}\nspec:\n  carrierRef: {name: simulator}\n  state: Paused\n  selector: {deviceIds: [1001, 1002]}\n").await;
    e2e.apply("apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {name: typo}\nspec:\n  carrierRef: {name: simulator}\n  state: Paused\n  selector: {tags: [smart-meterz]}\n").await;
    let get = |name: &'static str| async move {
        serde_json::from_str::<Value>(&e2e.kubectl(&["get", "sg", name, "-o", "json"]).await)
            .unwrap()
    };
    // Submitted, awaiting the carrier: InProgress.
    e2e.until::<simfleet::api::SimGroup>("fine", "pending", None, |g| {
        g.status
            .as_ref()
            .is_some_and(|s| !s.pending_actions.is_empty())
    })
    .await;
    assert_eq!(kstatus(&get("fine").await), "InProgress");
    e2e.until::<simfleet::api::SimGroup>(
        "fine",
        "Ready",
        Some(jiff::SignedDuration::from_secs(5)),
        |g| {
            g.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await;
    assert_eq!(kstatus(&get("fine").await), "Current");
    e2e.until::<simfleet::api::SimGroup>("typo", "Stalled", None, |g| {
        g.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.status == "True")
        })
    })
    .await;
    assert_eq!(kstatus(&get("typo").await), "Failed");
    let account: Value = serde_json::from_str(
        &e2e.kubectl(&["get", "carrieraccount", "simulator", "-o", "json"])
            .await,
    )
    .unwrap();
    assert_eq!(kstatus(&account), "Current");
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simfleet_on_the_real_kube_apiserver() {
    let plane = ControlPlane::start("real-cluster");
    eprintln!("kube-apiserver {}", plane.version);
    crds_are_accepted_without_warnings(&plane);
    verdicts_match_simfleet_plan(&plane).await;
    let config = || common::live_config(300);
    let typo = E2e::real(&plane, "typo", config()).await;
    promises::an_empty_selection_is_not_ready(&typo).await;
    let kstatus_world = E2e::real(&plane, "kstatus", config()).await;
    kstatus_reads_the_status_as_documented(&kstatus_world).await;
    let drift = E2e::real(&plane, "drift", config()).await;
    promises::drift_is_reported_and_only_corrected_when_asked(&drift).await;
    let teardown = E2e::real(&plane, "teardown", config()).await;
    promises::a_teardown_in_any_order_restores_and_removes(&teardown).await;
    let reversals = E2e::real(&plane, "reversals", config()).await;
    promises::reversed_changes_converge(&reversals).await;
}
