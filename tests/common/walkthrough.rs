//! The README's walkthrough, as written there: each line run with the real kubectl until what
//! its comment says holds, against `simfleet dev` (`tests/kubectl.rs`) and against the real
//! kube-apiserver with the same examples (`tests/real_cluster`).

use std::path::Path;

use super::doc_shell::{self, DocShell};

/// The commands of the README's walkthrough block, as written there.
pub fn readme_walkthrough() -> Vec<String> {
    doc_shell::commands("README.md", "walkthrough:")
}

/// Runs the walkthrough's lines with `kubeconfig` (the namespace of its current context), each
/// until its comment's claim holds, then reads the claimed figures back from status.
pub fn run(kubeconfig: &Path) {
    let shell = DocShell::new(kubeconfig, &doc_shell::repo(""));
    let run = |line: &str| shell.run(line);
    let until = |line: &str, claim: &dyn Fn(&str) -> bool| shell.until(line, claim);
    type Claim = fn(&str) -> bool;
    let checks: Vec<(&str, Claim)> = vec![
        ("kubectl get simfleet", |t| {
            t.contains("carrieraccount.simfleet.io/simulator")
                && t.matches("simgroup.simfleet.io/").count() == 3
                && t.matches("dataquota.simfleet.io/").count() == 3
        }),
        ("kubectl get sg -o wide", |t| {
            [
                "STATE",
                "SELECTED",
                "IN-STATE",
                "PENDING",
                "READY",
                "REASON",
                "FAILED",
                "INELIGIBLE",
                "SYS-PAUSED",
                "CARRIER",
            ]
            .iter()
            .all(|c| t.lines().next().unwrap_or_default().contains(c))
        }),
        (
            "kubectl wait --for=condition=Ready sg/returned-trackers --timeout=60s",
            |t| t.contains("condition met"),
        ),
        ("kubectl describe sg smart-meters", |t| {
            let events = t.split("Events:").nth(1).unwrap_or_default();
            t.contains("ApprovalRequired")
                && t.contains(
                    "the change touches 13 SIMs, more than guard.maxChangesWithoutApproval (10)",
                )
                && events.contains("ApprovalRequired")
        }),
        (
            "kubectl annotate sg smart-meters simfleet.io/approved-generation=1",
            |t| t.contains("annotated"),
        ),
        (
            r#"kubectl get sg smart-meters -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}'"#,
            |t| t.contains("3 paused by the carrier's system and left so"),
        ),
        (
            "kubectl wait --for=condition=Ready dq --all --timeout=60s",
            |t| t.matches("condition met").count() == 3,
        ),
        ("kubectl events --for simgroup/smart-meters", |t| {
            t.contains("ApprovalRequired") && t.contains("ActionSubmitted")
        }),
        ("kubectl describe carrier simulator", |t| {
            t.split("Events:")
                .nth(1)
                .is_some_and(|e| e.contains("Verified"))
        }),
        ("kubectl describe dq cold-chain-monthly", |t| {
            t.split("Events:")
                .nth(1)
                .is_some_and(|e| e.contains("Converged"))
        }),
        ("kubectl explain simgroup.spec.selector", |t| {
            ["iccids", "deviceIds", "tags"]
                .iter()
                .all(|f| t.contains(f))
        }),
    ];
    let readme = readme_walkthrough();
    let checked: Vec<&str> = checks.iter().map(|(c, _)| *c).collect();
    doc_shell::assert_same_commands("README.md", &readme, &checked);
    for (line, (_, claim)) in readme.iter().zip(&checks) {
        until(line, claim);
    }
    // The claims in numbers, read back from status.
    let (_, trackers) = run(
        "kubectl get sg returned-trackers -o jsonpath='{.status.counts.selected}/{.status.counts.inDesiredState}'",
    );
    assert_eq!(trackers.trim(), "3/3", "3 trackers paused");
    let (_, paused) =
        run(r#"kubectl get sg smart-meters -o jsonpath='{.status.counts.pausedBySystem}'"#);
    assert_eq!(paused.trim(), "3", "3 SIMs the carrier paused");
    let (_, ineligible) =
        run("kubectl get dq cold-chain-monthly -o jsonpath='{.status.counts.ineligible}'");
    assert!(
        ineligible.trim().parse::<u64>().unwrap() > 0,
        "deleted endpoints count as ineligible: {ineligible}"
    );
}
