//! Against the real control plane (kube-apiserver, kube-controller-manager and etcd built from
//! Go modules by `scripts/control-plane`, RBAC on): the CRDs, the verdict on every manifest,
//! the core promises end to end, and how Flux's kstatus reads each kind's status. One control
//! plane serves the whole binary; each scenario has its own namespace and operator.

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;

use common::conformance::{self, Server};
use common::e2e::{ControlPlane, E2e};
use common::{fleet_model, promises, together};
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
        simfleet_testkit::world::ready,
    )
    .await;
    assert_eq!(kstatus(&get("fine").await), "Current");
    e2e.until::<simfleet::api::SimGroup>("typo", "Stalled", None, |g| {
        simfleet_testkit::world::condition(g, "Stalled").is_some_and(|(s, _)| s == "True")
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

fn helm_binary() -> std::path::PathBuf {
    kstatus_binary().with_file_name("helm")
}

/// A kubeconfig for the ServiceAccount `name` in `namespace`: a TokenRequest token (what a pod
/// of the chart's Deployment would mount), so the API server enforces its RBAC.
fn service_account_kubeconfig(
    plane: &ControlPlane,
    namespace: &str,
    name: &str,
) -> std::path::PathBuf {
    let token = plane.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=1h"]);
    let server = std::fs::read_to_string(plane.dir.0.join("server")).unwrap();
    let path = plane.dir.0.join(format!("kubeconfig-{name}"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {}, certificate-authority: {}}}\nusers:\n- name: sa\n  user: {{token: {}}}\ncontexts:\n- name: sa\n  context: {{cluster: c, user: sa, namespace: {namespace}}}\ncurrent-context: sa\n",
            server.trim(),
            plane.dir.0.join("pki/ca.crt").display(),
            token.trim()
        ),
    )
    .unwrap();
    path
}

/// The real `helm install` of the chart (CRDs, RBAC, ServiceAccount), then the operator as a
/// process with a token of that ServiceAccount: RBAC is enforced, and a group, a restore and a
/// DataQuota converge under it. With a verb the operator needs dropped from the role, it fails.
async fn the_chart_installs_and_its_rbac_is_enough(plane: &ControlPlane) {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/simfleet");
    let out = Command::new(helm_binary())
        .args([
            "install",
            "simfleet",
            chart,
            "--namespace",
            "fleet",
            "--create-namespace",
        ])
        .args(["--set", "watchNamespace=fleet", "--set", "replicaCount=1"])
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kubeconfig = service_account_kubeconfig(plane, "fleet", "simfleet");
    let mut e2e = E2e::real_existing(
        plane,
        "fleet",
        simfleet_testkit::simulator::live_config(100),
    )
    .await;
    e2e.apply(&e2e.accounts_yaml()).await;
    e2e.operator_kubeconfig = Some(kubeconfig.clone());
    let operator = e2e.operator_with(&["--leader-election", "--lease-namespace=fleet"]);
    e2e.apply("apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {name: restore}\nspec:\n  carrierRef: {name: emnify}\n  state: Paused\n  onDelete: Restore\n  selector: {deviceIds: [1001, 1002]}\n---\napiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata: {name: quota}\nspec:\n  carrierRef: {name: emnify}\n  target: {simGroupRef: {name: restore}}\n  volumeMB: 10\n  expiry: {after: 30d}\n  onDelete: Remove\n").await;
    e2e.until::<simfleet::api::SimGroup>(
        "restore",
        "Ready under the chart's RBAC",
        Some(jiff::SignedDuration::from_secs(5)),
        simfleet_testkit::world::ready,
    )
    .await;
    e2e.until::<simfleet::api::DataQuota>("quota", "Ready under the chart's RBAC", None, |q| {
        q.status
            .as_ref()
            .and_then(|s| promises::condition_of(&s.conditions, "Ready"))
            .is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    e2e.until_event("simgroup", "restore", "ActionSubmitted")
        .await;
    // Deletion: the quota removed, the SIMs restored, the finalizers released, all under RBAC.
    e2e.kubectl(&["delete", "dataquota", "quota", "--wait=false"])
        .await;
    e2e.kubectl(&["delete", "simgroup", "restore", "--wait=false"])
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while e2e
        .api::<simfleet::api::SimGroup>()
        .get_opt("restore")
        .await
        .unwrap()
        .is_some()
        || e2e
            .api::<simfleet::api::DataQuota>()
            .get_opt("quota")
            .await
            .unwrap()
            .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the deletions never finished under the chart's RBAC"
        );
        e2e.simulator.advance(jiff::SignedDuration::from_secs(5));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(e2e.sim_state(1001).await, "LIVE");
    drop(operator);

    // Without `patch` on simgroups/status the operator cannot report: the group never gets a
    // status, and the API server says why.
    let role: Value = serde_json::from_str(
        &plane.kubectl_ok(&["get", "role", "simfleet", "-n", "fleet", "-o", "json"]),
    )
    .unwrap();
    let mut reduced = role.clone();
    for rule in reduced["rules"].as_array_mut().unwrap() {
        if rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "simgroups/status")
        {
            rule["verbs"] = serde_json::json!(["get"]);
        }
    }
    reduced["metadata"] = serde_json::json!({"name": "simfleet", "namespace": "fleet"});
    e2e.kubectl_with(&["replace", "-f", "-"], Some(reduced.to_string()))
        .await;
    let operator = e2e.operator_with(&["--leader-election", "--lease-namespace=fleet"]);
    e2e.apply("apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {name: unreported}\nspec:\n  carrierRef: {name: simulator}\n  state: Paused\n  selector: {deviceIds: [1010]}\n").await;
    // The carrier is changed (the submit needs no Kubernetes write), status never comes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stats = simfleet_testkit::simulator::admin_get(&e2e.simulator, "/stats").await;
        if stats["changes"]["submittedSims"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator never reached the carrier: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let group: simfleet::api::SimGroup = e2e.api().get("unreported").await.unwrap();
    assert!(
        group.status.is_none(),
        "no status without patch on simgroups/status: {:?}",
        group.status
    );
    drop(operator);
    // Put the role back, so the group can be cleaned up.
    e2e.kubectl_with(
        &["replace", "-f", "-"],
        Some({
            let mut original = role;
            original["metadata"] = serde_json::json!({"name": "simfleet", "namespace": "fleet"});
            original.to_string()
        }),
    )
    .await;
}

/// The Lease contract kube-lease-manager relies on, on the real server: two followers that find
/// the Lease expired both send the same server-side apply of `holderIdentity` at once. Only a
/// conflict between different field managers refuses the second; with one shared manager (what
/// every replica used before) both succeed, so both believe they lead.
async fn only_a_field_manager_per_replica_refuses_a_second_taker(plane: &ControlPlane) {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams};
    plane.kubectl_ok(&["create", "namespace", "leases"]);
    let leases: Api<Lease> = Api::namespaced(plane.client().await, "leases");
    let take = |name: &'static str, manager: String, identity: &'static str| {
        let leases = leases.clone();
        async move {
            let patch = serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name},
                "spec": {"holderIdentity": identity, "leaseDurationSeconds": 15},
            });
            let params = PatchParams {
                field_manager: Some(manager),
                ..Default::default()
            };
            leases.patch(name, &params, &Patch::Apply(&patch)).await
        }
    };
    // One shared manager: the second taker overwrites the first.
    take("shared", "simfleet".into(), "op-a").await.unwrap();
    let second = take("shared", "simfleet".into(), "op-b").await;
    assert!(
        second.is_ok(),
        "a shared field manager lets the second taker through"
    );
    // A manager per replica: the second taker gets 409 Conflict and stays a follower.
    take("per-replica", "simfleet-op-a".into(), "op-a")
        .await
        .unwrap();
    match take("per-replica", "simfleet-op-b".into(), "op-b").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("a second manager must conflict: {other:?}"),
    }
    let lease = leases.get("per-replica").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("op-a"));
}

/// Three replicas of `simfleet run` race for the Lease; at no moment do two lead (each
/// leader's `simfleet_leader` gauge is sampled), and after a kill -9 of the leader another
/// takes over. Returns the seconds that took.
async fn three_replicas_never_have_two_leaders(plane: &ControlPlane) -> f64 {
    use k8s_openapi::api::coordination::v1::Lease;
    let e2e = E2e::real(
        plane,
        "leader",
        simfleet_testkit::simulator::live_config(10),
    )
    .await;
    let lease_flags = [
        "--leader-election",
        "--lease-duration=3",
        "--lease-namespace=leader",
        "--metrics-addr=127.0.0.1:0",
    ];
    let allowed = format!("--allowed-carrier-url={}", e2e.simulator.base_url());
    let mut flags: Vec<&str> = lease_flags.to_vec();
    flags.push(&allowed);
    flags.push("--namespace=leader");
    let mut replicas: Vec<(common::operator::Operator, String, String)> = ["op-a", "op-b", "op-c"]
        .into_iter()
        .map(|name| {
            let (operator, url) =
                common::operator::Operator::start_with(&e2e.kubeconfig, &flags, name);
            (operator, url.unwrap(), name.to_owned())
        })
        .collect();
    let leases: kube::Api<Lease> = e2e.api();
    let holder = || async {
        leases
            .get_opt("simfleet-leader")
            .await
            .unwrap()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    };
    // Whether a replica runs its controllers, from its own /readyz and metrics.
    let leading = |url: String| async move {
        let text = reqwest::get(format!("{url}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("simfleet_leader "))
            .map(|l| l.ends_with(" 1"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut samples = 0;
    while samples < 100 {
        let mut leaders = 0;
        for (_, url, _) in &replicas {
            if leading(url.clone()).await == Some(true) {
                leaders += 1;
            }
        }
        assert!(leaders <= 1, "{leaders} replicas lead at once");
        if leaders == 1 {
            samples += 1;
        }
        assert!(std::time::Instant::now() < deadline, "no replica ever led");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let first = holder().await.expect("a holder");
    let index = replicas.iter().position(|(_, _, n)| *n == first).unwrap();
    let (mut killed, _, _) = replicas.remove(index);
    let started = std::time::Instant::now();
    killed.0.kill().unwrap();
    let _ = killed.0.wait();
    loop {
        if let Some(now) = holder().await
            && now != first
        {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no new leader after kill -9"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let takeover = started.elapsed().as_secs_f64();
    // And still never two.
    for _ in 0..50 {
        let mut leaders = 0;
        for (_, url, _) in &replicas {
            if leading(url.clone()).await == Some(true) {
                leaders += 1;
            }
        }
        assert!(
            leaders <= 1,
            "{leaders} replicas lead at once after the takeover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("a new leader {takeover:.1} s after kill -9 of the leader (lease 3 s)");
    takeover
}

/// `kubectl apply -f -` of `manifest` on the real server, with extra flags; whether it
/// succeeded, and its standard error.
fn kubectl_apply(plane: &ControlPlane, extra: &[&str], manifest: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(common::kubectl_binary())
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(extra)
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Client-side `kubectl apply` keeps the whole object in a last-applied annotation, which the
/// real server limits to 256 KiB: a SimGroup with as many ICCIDs as the schema allows (10,000,
/// each of the longest, 22 digits) applies; one more is refused by the schema, with the fix.
async fn the_largest_listed_simgroup_applies_with_kubectl(plane: &ControlPlane) {
    plane.kubectl_ok(&["create", "namespace", "limits"]);
    let group = |count: u64| {
        let iccids: Vec<String> = (0..count)
            .map(|i| format!("\"89{:020}\"", 10u128.pow(19) + u128::from(i)))
            .collect();
        format!(
            "{{\"apiVersion\": \"simfleet.io/v1alpha1\", \"kind\": \"SimGroup\", \"metadata\": {{\"name\": \"largest-{count}\", \"namespace\": \"limits\"}}, \"spec\": {{\"carrierRef\": {{\"name\": \"hologram\"}}, \"state\": \"Paused\", \"selector\": {{\"iccids\": [{}]}}}}}}",
            iccids.join(",")
        )
    };
    let (ok, stderr) = kubectl_apply(plane, &[], &group(10_000));
    assert!(ok, "10,000 ICCIDs: {stderr}");
    let (ok, refusal) = kubectl_apply(plane, &[], &group(10_001));
    assert!(!ok);
    assert!(
        refusal.contains("select larger fleets by tag") || refusal.contains("10000"),
        "{refusal}"
    );
}

/// The admission policies in deploy/policies, each with a manifest it admits and one it refuses.
async fn the_policies_admit_and_refuse(plane: &ControlPlane) {
    plane.kubectl_ok(&[
        "apply",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policies"),
    ]);
    plane.kubectl_ok(&["create", "namespace", "prod"]);
    plane.kubectl_ok(&[
        "label",
        "namespace",
        "prod",
        "simfleet.io/environment=production",
        "simfleet.io/max-volume-mb=2048",
    ]);
    let apply = |extra: &[&str], manifest: String| {
        let mut flags = vec!["-n", "prod"];
        flags.extend_from_slice(extra);
        kubectl_apply(plane, &flags, &manifest)
    };
    let group = |name: &str, guard: &str| {
        format!(
            "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {{name: {name}}}\nspec:\n  carrierRef: {{name: hologram}}\n  state: Paused\n  selector: {{tags: [meters]}}\n{guard}"
        )
    };
    // A policy takes effect once the server has type-checked it: the refusal is awaited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let refusal = loop {
        let (ok, stderr) = apply(&[], group("unguarded", ""));
        if !ok {
            break stderr;
        }
        plane.kubectl_ok(&["-n", "prod", "delete", "simgroup", "unguarded"]);
        assert!(
            std::time::Instant::now() < deadline,
            "the policy never took effect"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        refusal.contains("maxChangesWithoutApproval of at most 1000"),
        "{refusal}"
    );
    assert!(
        !apply(
            &[],
            group("too-loose", "  guard: {maxChangesWithoutApproval: 5000}\n")
        )
        .0
    );
    let (ok, stderr) = apply(
        &[],
        group("guarded", "  guard: {maxChangesWithoutApproval: 1000}\n"),
    );
    assert!(ok, "{stderr}");

    let quota = |name: &str, volume: u32| {
        format!(
            "apiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata: {{name: {name}}}\nspec:\n  carrierRef: {{name: emnify}}\n  target: {{deviceIds: [1001]}}\n  volumeMB: {volume}\n  expiry: {{after: 30d}}\n"
        )
    };
    let (ok, stderr) = apply(&[], quota("big", 4096));
    assert!(
        !ok && stderr.contains("above this namespace's cap of 2048"),
        "{stderr}"
    );
    let (ok, stderr) = apply(&[], quota("fits", 1024));
    assert!(ok, "{stderr}");

    let account = |paused: &str| {
        format!(
            "apiVersion: simfleet.io/v1alpha1\nkind: CarrierAccount\nmetadata:\n  name: emnify\n  annotations: {{{paused}}}\nspec: {{provider: emnify, secretRef: {{name: emnify-token}}}}\n"
        )
    };
    let (ok, stderr) = apply(&[], account(""));
    assert!(ok, "{stderr}");
    let bob = ["--as=bob", "--as-group=system:masters"];
    let (ok, stderr) = apply(&bob, account("simfleet.io/paused: \"true\""));
    assert!(!ok && stderr.contains("simfleet-pausers"), "{stderr}");
    let carol = [
        "--as=carol",
        "--as-group=system:masters",
        "--as-group=simfleet-pausers",
    ];
    let (ok, stderr) = apply(&carol, account("simfleet.io/paused: \"true\""));
    assert!(ok, "{stderr}");
    // Other edits by anyone are untouched by the policy.
    let (ok, stderr) = apply(&bob, account("simfleet.io/paused: \"true\", note: x"));
    assert!(ok, "{stderr}");
}

/// Helm installs `crds/` once and never upgrades it: a chart whose CRD schema changed, upgraded
/// with `helm upgrade` alone, leaves the old schema in force; the README's path (apply the
/// chart's CRDs server-side, then `helm upgrade`) puts the new one in force.
async fn a_helm_upgrade_with_a_changed_crd_follows_the_documented_path(plane: &ControlPlane) {
    let chart = common::e2e::tempfile_dir::Dir::new("chart-upgrade");
    let copy = Command::new("cp")
        .args([
            "-r",
            concat!(env!("CARGO_MANIFEST_DIR"), "/charts/simfleet"),
        ])
        .arg(&chart.0)
        .status()
        .unwrap();
    assert!(copy.success());
    let crd = chart.0.join("simfleet/crds/simgroups.simfleet.io.yaml");
    let text = std::fs::read_to_string(&crd).unwrap();
    let marker = "How often a group at rest is read again";
    assert!(text.contains(marker));
    std::fs::write(
        &crd,
        text.replace(
            marker,
            "Changed in the new release: how often a group at rest is read again",
        ),
    )
    .unwrap();
    let described = || {
        plane.kubectl_ok(&["get", "crd", "simgroups.simfleet.io", "-o", "jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.driftCheck.description}"])
    };
    let upgrade = || {
        let out = Command::new(helm_binary())
            .args(["upgrade", "simfleet"])
            .arg(chart.0.join("simfleet"))
            .args(["--namespace", "fleet", "--reuse-values", "--kubeconfig"])
            .arg(&plane.kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm upgrade: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    upgrade();
    assert!(
        !described().contains("Changed in the new release"),
        "helm upgrade alone does not touch crds/"
    );
    plane.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        chart.0.join("simfleet/crds").to_str().unwrap(),
    ]);
    upgrade();
    assert!(
        described().contains("Changed in the new release"),
        "{}",
        described()
    );
    // Back to this build's CRDs for what follows.
    plane.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/crds"),
    ]);
}

/// The README's walkthrough, line by line with the real kubectl, against the examples as
/// `simfleet dev` applies them (the same simulator), in a namespace of their own.
async fn the_readme_walkthrough_holds(plane: &ControlPlane) {
    let namespace = "walkthrough";
    let e2e = E2e::real(plane, namespace, simfleet::dev::simulator_config(1000)).await;
    let examples = simfleet::api::manifest::read_path(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples"
    )))
    .unwrap();
    let mut documents = simfleet::dev::simulator_documents(examples, &e2e.simulator.base_url());
    for document in &mut documents {
        document.value["metadata"]["namespace"] = namespace.into();
    }
    simfleet::dev::apply(&e2e.client, &documents).await.unwrap();
    let _operator = e2e.operator();
    // The admin's kubeconfig with the namespace as its context's, as a user would set it.
    let dir = common::e2e::tempfile_dir::Dir::new("walkthrough-kubeconfig");
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::copy(&plane.kubeconfig, &kubeconfig).unwrap();
    let set = Command::new(common::kubectl_binary())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "config",
            "set-context",
            "--current",
            "--namespace",
            namespace,
        ])
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    tokio::task::spawn_blocking(move || common::walkthrough::run(&kubeconfig))
        .await
        .unwrap();
}

/// The shared conformance cases (`tests/common/conformance`), each in a namespace of its own.
async fn the_sandbox_conformance_cases_hold(plane: &ControlPlane) {
    macro_rules! on_the_real_server {
        ($($module:ident :: $case:ident),* $(,)?) => {
            $(
                eprintln!("conformance: {}", stringify!($case));
                let server = Server::real(plane.client().await, stringify!($case)).await;
                conformance::$module::$case(&server).await;
            )*
        };
    }
    for_each_conformance_case!(on_the_real_server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simfleet_on_the_real_kube_apiserver() {
    let plane = ControlPlane::start("real-cluster");
    eprintln!("kube-apiserver {}", plane.version);
    crds_are_accepted_without_warnings(&plane);
    the_sandbox_conformance_cases_hold(&plane).await;
    verdicts_match_simfleet_plan(&plane).await;
    the_largest_listed_simgroup_applies_with_kubectl(&plane).await;
    the_policies_admit_and_refuse(&plane).await;
    the_readme_walkthrough_holds(&plane).await;
    let config = || simfleet_testkit::simulator::live_config(300);
    let typo = E2e::real(&plane, "typo", config()).await;
    promises::an_empty_selection_is_not_ready(&typo).await;
    let kstatus_world = E2e::real(&plane, "kstatus", config()).await;
    kstatus_reads_the_status_as_documented(&kstatus_world).await;
    let drift = E2e::real(&plane, "drift", config()).await;
    promises::drift_is_reported_and_only_corrected_when_asked(&drift).await;
    let teardown = E2e::real(&plane, "teardown", config()).await;
    promises::a_teardown_in_any_order_restores_and_removes(&teardown).await;
    let topup = E2e::real(&plane, "topup", config()).await;
    promises::a_top_up_is_applied_once_across_a_kill_9(&topup).await;
    let reversals = E2e::real(&plane, "reversals", config()).await;
    promises::reversed_changes_converge(&reversals).await;
    // Where resources meet, and the real server decides: the namespace controller's order of
    // deletion, conflicts between groups (fleets with problem SIMs).
    let fleet = || {
        simfleet::simulator::SimulatorConfig::for_tests(300, jiff::SignedDuration::from_secs(10))
    };
    let doomed = E2e::real(&plane, "doomed", fleet()).await;
    together::a_deleted_namespace_keeps_its_records_until_they_are_used(&doomed, false).await;
    let doomed = E2e::real(&plane, "doomed-down", fleet()).await;
    together::a_deleted_namespace_keeps_its_records_until_they_are_used(&doomed, true).await;
    let conflict = E2e::real(&plane, "conflict", fleet()).await;
    together::conflicts_are_symmetric_whatever_the_selector_kinds(&conflict).await;
    the_chart_installs_and_its_rbac_is_enough(&plane).await;
    a_helm_upgrade_with_a_changed_crd_follows_the_documented_path(&plane).await;
    only_a_field_manager_per_replica_refuses_a_second_taker(&plane).await;
    three_replicas_never_have_two_leaders(&plane).await;
    // An operator of every namespace: last, as the chart's own runs it.
    let tenants = E2e::real(&plane, "tenants", fleet()).await;
    together::two_namespaces_on_one_organisation_conflict_and_never_flap(&tenants).await;
    // Random histories of the fleet model on the real server: its namespace controller and
    // finalizers decide there (a longer run: SIMFLEET_MODEL_REAL_HISTORIES).
    let histories = std::env::var("SIMFLEET_MODEL_REAL_HISTORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1u64);
    for seed in 20_261_300..20_261_300 + histories {
        let world = E2e::real(
            &plane,
            &format!("model-{seed}"),
            fleet_model::fleet_config(),
        )
        .await;
        if let Err(failure) = fleet_model::history(world, seed, 12).await {
            panic!("{failure}");
        }
    }
    the_documented_helm_commands_run(&plane);
}

/// The Helm and kubectl commands of the README, `docs/operations.md` and the chart's README,
/// as written (from the repository, with the real helm and kubectl on the PATH): the install
/// makes the release with its Deployment and cluster-wide role, and the documented upgrade
/// (CRDs server-side, then `helm upgrade`) makes its second revision.
fn the_documented_helm_commands_run(plane: &ControlPlane) {
    use common::doc_shell::{self, DocShell};
    let shell = DocShell::new(&plane.kubeconfig, &doc_shell::repo(""))
        .with_path(helm_binary().parent().unwrap());
    let mut commands: Vec<String> = Vec::new();
    for page in [
        "README.md",
        "docs/operations.md",
        "charts/simfleet/README.md",
    ] {
        for command in doc_shell::commands(page, "run by tests/real_cluster") {
            if !commands.contains(&command) {
                commands.push(command);
            }
        }
    }
    assert_eq!(
        commands,
        [
            "helm install simfleet charts/simfleet --namespace simfleet-system --create-namespace",
            "kubectl apply --server-side --force-conflicts -f charts/simfleet/crds/",
            "helm upgrade simfleet charts/simfleet --namespace simfleet-system",
        ],
        "the documented commands"
    );
    for command in &commands {
        let (ok, printed) = shell.run(command);
        assert!(ok, "{command}\n{printed}");
    }
    let replicas = plane.kubectl_ok(&[
        "get",
        "deployment",
        "-n",
        "simfleet-system",
        "-l",
        "app.kubernetes.io/instance=simfleet",
        "-o",
        "jsonpath={.items[0].spec.replicas}",
    ]);
    assert_eq!(replicas.trim(), "2", "two replicas");
    plane.kubectl_ok(&["get", "clusterrole", "simfleet"]);
    the_out_of_cluster_run_holds(plane);
    let (ok, status) = shell.run("helm status simfleet --namespace simfleet-system -o json");
    assert!(ok, "{status}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["version"], 2, "the upgrade is the second revision");
    assert_eq!(status["info"]["status"], "deployed");
    let (ok, printed) = shell.run("helm uninstall simfleet --namespace simfleet-system");
    assert!(ok, "{printed}");
}

/// `docs/operations.md`, "Running the operator outside the cluster", as written, with the chart
/// installed: the kubeconfig made of the ServiceAccount's token has the chart's rights (and
/// `kubectl auth can-i` says yes), and `simfleet run` with it leads through the chart's Lease
/// under the name given.
fn the_out_of_cluster_run_holds(plane: &ControlPlane) {
    use common::doc_shell::{self, DocShell};
    let dir = plane.dir.0.join("out-of-cluster");
    std::fs::create_dir_all(&dir).unwrap();
    let shell = DocShell::new(&plane.kubeconfig, &dir);
    let commands = doc_shell::commands("docs/operations.md", "out of the cluster");
    let (run, setup) = commands.split_last().unwrap();
    assert!(run.contains("cargo run --release -- run"), "{run}");
    for command in setup {
        let (ok, printed) = shell.run(command);
        assert!(ok, "{command}\n{printed}");
        if command.contains("auth can-i") {
            assert_eq!(printed.trim(), "yes", "{command}");
        }
    }
    let kubeconfig = std::fs::read_to_string(dir.join("simfleet.kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("token:") && !kubeconfig.contains("client-key"),
        "the kubeconfig holds the ServiceAccount's token only"
    );
    let _operator = shell.spawn(run);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let holder = plane.kubectl(&[
            "get",
            "lease",
            "simfleet-leader",
            "-n",
            "simfleet-system",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        let holder = String::from_utf8_lossy(&holder.stdout).trim().to_owned();
        if holder == "laptop" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator run outside the cluster never led: {holder:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
