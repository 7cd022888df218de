//! One verdict per manifest, on the sandbox: it and `simfleet plan` accept and refuse the same
//! manifests (the same comparison runs against the real kube-apiserver in tests/real_cluster).

mod common;

use simfleet::sandbox::{Sandbox, SandboxConfig};

#[tokio::test]
async fn the_api_server_and_simfleet_plan_give_every_manifest_the_same_verdict() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let verdicts = common::verdicts::compare(sandbox.client(), "default").await;
    assert!(verdicts.cases > 120, "{} cases", verdicts.cases);
    assert!(
        verdicts.disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        verdicts.disagreements.len(),
        verdicts.cases,
        verdicts.disagreements.join("\n")
    );
    // Both verdicts occur, so the comparison means something.
    assert!(
        verdicts.accepted > 20 && verdicts.refused > 60,
        "{} accepted, {} refused",
        verdicts.accepted,
        verdicts.refused
    );
}
