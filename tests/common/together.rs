//! Where resources meet, end to end as a user meets them (kubectl, `simfleet run`, the carrier
//! simulator with problem SIMs in its fleet), written once and run against the sandbox and the
//! real API server: a selector edited before a restore, a namespace deleted, conflicts across
//! selector kinds and namespaces, an approval given ahead, another group's pending SIMs.

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::{Value, json};
use simfleet::api::{DataQuota, SimGroup};

use super::e2e::E2e;
use super::operator::Operator;

/// Creates a namespace (with `kubectl apply`: the sandbox reads no protobuf bodies).
pub async fn create_namespace(e2e: &E2e<'_>, name: &str) {
    let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
    let out = e2e.kubectl_with(&["apply", "-f", "-"], Some(yaml)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl apply -n NAMESPACE -f -` of YAML documents.
pub async fn apply_in(e2e: &E2e<'_>, namespace: &str, yaml: String) {
    let out = e2e
        .kubectl_with(&["apply", "-n", namespace, "-f", "-"], Some(yaml))
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One SIM as the simulator's admin API shows it.
#[derive(Clone, Debug)]
pub struct SimRow {
    pub device: u64,
    pub iccid: String,
    pub state: String,
}

/// The SIMs carrying `tag`, in device order.
pub async fn sims_tagged(e2e: &E2e<'_>, tag: &str) -> Vec<SimRow> {
    let listed = simfleet_testkit::simulator::admin_get(
        &e2e.simulator,
        &format!("/sims?tag={tag}&limit=1000"),
    )
    .await;
    listed["sims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SimRow {
            device: s["deviceId"].as_u64().unwrap(),
            iccid: s["iccid"].as_str().unwrap().to_owned(),
            state: s["state"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// Every SIM's state by device id.
pub async fn states(e2e: &E2e<'_>, devices: &[u64]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for &device in devices {
        out.push((device, e2e.sim_state(device).await));
    }
    out
}

pub async fn redundant_sims(e2e: &E2e<'_>) -> u64 {
    simfleet_testkit::simulator::admin_get(&e2e.simulator, "/stats").await["changes"]["redundantSims"]
        .as_u64()
        .unwrap()
}

pub async fn submitted_sims(e2e: &E2e<'_>) -> u64 {
    simfleet_testkit::simulator::admin_get(&e2e.simulator, "/stats").await["changes"]["submittedSims"]
        .as_u64()
        .unwrap()
}

/// The group has observed its current generation and has no action pending.
pub fn settled(group: &SimGroup) -> bool {
    group.status.as_ref().is_some_and(|s| {
        s.observed_generation == group.metadata.generation
            && s.pending_actions.is_empty()
            && !s.conditions.is_empty()
    })
}

fn counts(group: &SimGroup) -> simfleet::api::SimCounts {
    group
        .status
        .as_ref()
        .and_then(|s| s.counts.clone())
        .unwrap_or_default()
}

/// Polls until `name` (kind `kind`, in `namespace`) is gone, moving the simulator's clock on.
pub async fn until_gone(e2e: &E2e<'_>, namespace: Option<&str>, kind: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut args = vec!["get", kind, name, "--ignore-not-found", "-o", "name"];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        let out = e2e.kubectl_with(&args, None).await;
        let shown = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && shown.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{}: {kind}/{name} is still there: {shown}\n{}",
                e2e.server_name(),
                what_holds(e2e, namespace.or((kind == "namespace").then_some(name))).await
            );
        }
        e2e.simulator.advance(SignedDuration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What is left in `namespace`, with finalizers and Ready's words: what a deletion waits for.
async fn what_holds(e2e: &E2e<'_>, namespace: Option<&str>) -> String {
    let Some(namespace) = namespace else {
        return String::new();
    };
    let columns = "custom-columns=KIND:.kind,NAME:.metadata.name,FINALIZERS:.metadata.finalizers,\
        READY:.status.conditions[?(@.type==\"Ready\")].message";
    let out = e2e
        .kubectl_with(
            &[
                "get",
                "simgroups,dataquotas,carrieraccounts,configmaps,secrets",
                "-n",
                namespace,
                "-o",
                columns,
            ],
            None,
        )
        .await;
    format!(
        "left in namespace {namespace}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn group_yaml(name: &str, account: &str, state: &str, selector: Value, extra: Value) -> String {
    let mut spec = json!({"carrierRef": {"name": account}, "state": state, "selector": selector});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        spec[key] = value;
    }
    serde_json::to_string(&json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// Issue "Correct together" 1: a Paused tag group with `onDelete: Restore`, its selector then
/// edited down to one device, deleted: every SIM it ever changed is back, selected or not;
/// the SIMs it never changed (already paused, paused by the system, deactivated) are as they
/// were.
pub async fn a_restore_returns_the_sims_that_left_the_selector(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    let before = sims_tagged(e2e, "pos-terminal").await;
    let changed: Vec<u64> = before
        .iter()
        .filter(|s| s.state == "LIVE")
        .map(|s| s.device)
        .collect();
    assert!(
        changed.len() >= 10 && changed.len() < before.len(),
        "the fleet has live and problem SIMs on the tag: {before:?}"
    );
    e2e.apply(&group_yaml(
        "pos",
        "simulator",
        "Paused",
        json!({"tags": ["pos-terminal"]}),
        json!({"onDelete": "Restore"}),
    ))
    .await;
    e2e.until::<SimGroup>("pos", "paused", Some(SignedDuration::from_secs(2)), |g| {
        settled(g) && counts(g).in_desired_state + counts(g).ineligible == before.len() as u64
    })
    .await;
    for (device, state) in states(e2e, &changed).await {
        assert_eq!(state, "PAUSED-USER", "SIM {device} was paused");
    }
    // The selector is edited down to one device, then the group is deleted.
    e2e.kubectl(&[
        "patch",
        "sg",
        "pos",
        "--type=merge",
        "-p",
        &json!({"spec": {"selector": {"tags": null, "deviceIds": [changed[0]]}}}).to_string(),
    ])
    .await;
    e2e.until::<SimGroup>(
        "pos",
        "the edited selector observed",
        Some(SignedDuration::from_secs(2)),
        |g| settled(g) && counts(g).selected == 1,
    )
    .await;
    e2e.kubectl(&["delete", "sg", "pos", "--wait=false"]).await;
    until_gone(e2e, None, "sg", "pos").await;
    for sim in &before {
        assert_eq!(
            e2e.sim_state(sim.device).await,
            sim.state,
            "SIM {} is back as it was before the group changed it",
            sim.device
        );
    }
    let note = e2e.until_event("simgroup", "pos", "Restored").await;
    assert!(
        note.starts_with(&format!(
            "{} SIM{} back",
            changed.len(),
            if changed.len() == 1 { "" } else { "s" }
        )),
        "{note}"
    );
    assert_eq!(redundant_sims(e2e).await, 0);
}

/// Issue "Correct together" 2: a namespace with three `Restore` groups and an `onDelete:
/// Remove` DataQuota is deleted; the namespace's deletion of its ConfigMaps must not lose the
/// records: every SIM is back and every quota removed before the namespace is gone.
/// `e2e.namespace` is a namespace of its own, deleted by this scenario.
///
/// With `operator_down`, the operator is killed before the namespace is deleted and started
/// after: the new process has no client cached and the namespace's Secret is being deleted
/// with everything else, so the credentials must stay readable until the restores are done
/// (a fleet-model seed found the restores stuck and the namespace kept forever).
pub async fn a_deleted_namespace_keeps_its_records_until_they_are_used(
    e2e: &E2e<'_>,
    operator_down: bool,
) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let mut operator = Some(e2e.operator());
    let live: Vec<u64> = sims_tagged(e2e, "smart-meter")
        .await
        .into_iter()
        .filter(|s| s.state == "LIVE")
        .map(|s| s.device)
        .take(8)
        .collect();
    assert_eq!(live.len(), 8);
    for (i, pair) in live[..6].chunks(2).enumerate() {
        e2e.apply(&group_yaml(
            &format!("restore-{i}"),
            "simulator",
            "Paused",
            json!({"deviceIds": pair}),
            json!({"onDelete": "Restore"}),
        ))
        .await;
    }
    e2e.apply(
        &serde_json::to_string(&json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota",
            "metadata": {"name": "quota"},
            "spec": {"carrierRef": {"name": "simulator"}, "target": {"deviceIds": &live[6..]},
                     "volumeMB": 100, "expiry": {"after": "30d"}, "onDelete": "Remove"}
        }))
        .unwrap(),
    )
    .await;
    for i in 0..3 {
        e2e.until::<SimGroup>(
            &format!("restore-{i}"),
            "paused",
            Some(SignedDuration::from_secs(2)),
            |g| settled(g) && counts(g).in_desired_state == 2,
        )
        .await;
    }
    e2e.until::<DataQuota>("quota", "set", Some(SignedDuration::from_secs(2)), |q| {
        q.status.as_ref().is_some_and(|s| {
            s.observed_generation == q.metadata.generation
                && super::promises::condition_of(&s.conditions, "Ready")
                    .is_some_and(|(status, _, _)| status == "True")
        })
    })
    .await;
    for (device, state) in states(e2e, &live[..6]).await {
        assert_eq!(state, "PAUSED-USER", "SIM {device}");
    }
    let namespace = e2e.namespace.clone();
    if operator_down {
        operator = None;
    }
    e2e.kubectl(&["delete", "namespace", &namespace, "--wait=false"])
        .await;
    if operator.is_none() {
        operator = Some(e2e.operator());
    }
    until_gone(e2e, None, "namespace", &namespace).await;
    drop(operator);
    for (device, state) in states(e2e, &live[..6]).await {
        assert_eq!(
            state, "LIVE",
            "SIM {device} restored before its namespace went"
        );
    }
    for &device in &live[6..] {
        let sims = simfleet_testkit::simulator::admin_get(
            &e2e.simulator,
            &format!("/sims?deviceId={device}"),
        )
        .await;
        assert!(
            sims["sims"][0]["quota"].is_null(),
            "device {device}'s quota removed: {}",
            sims["sims"][0]
        );
    }
    assert_eq!(redundant_sims(e2e).await, 0);
}

/// Issue "Correct together" 4: an Active group by tag and a Paused group listing three of its
/// SIMs by ICCID both report the conflict, and neither acts on those SIMs; `simfleet plan
/// --kubeconfig` predicts it for a new group against the live ones.
pub async fn conflicts_are_symmetric_whatever_the_selector_kinds(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let mut operator = e2e.operator();
    let cold: Vec<SimRow> = sims_tagged(e2e, "cold-chain")
        .await
        .into_iter()
        .filter(|s| s.state == "LIVE")
        .collect();
    e2e.apply(&group_yaml(
        "cold-chain",
        "simulator",
        "Active",
        json!({"tags": ["cold-chain"]}),
        json!({}),
    ))
    .await;
    e2e.until::<SimGroup>(
        "cold-chain",
        "observed",
        Some(SignedDuration::from_secs(2)),
        settled,
    )
    .await;
    let submitted = submitted_sims(e2e).await;
    let three: Vec<&str> = cold[..3].iter().map(|s| s.iccid.as_str()).collect();
    // `simfleet plan` of a new group against the live ones predicts the conflict.
    let dir = super::e2e::tempfile_dir::Dir::new("together-plan");
    let mut planned: Value = serde_json::from_str(&group_yaml(
        "returned",
        "simulator",
        "Paused",
        json!({"iccids": three}),
        json!({}),
    ))
    .unwrap();
    planned["metadata"]["namespace"] = json!(e2e.namespace);
    std::fs::write(dir.0.join("returned.yaml"), planned.to_string()).unwrap();
    let plan = plan_json(e2e, &dir.0).await;
    assert_eq!(plan["simGroups"][0]["conflicts"], 3, "{plan}");
    e2e.apply(&group_yaml(
        "returned",
        "simulator",
        "Paused",
        json!({"iccids": three}),
        json!({}),
    ))
    .await;
    for name in ["returned", "cold-chain"] {
        let group = e2e
            .until::<SimGroup>(
                name,
                "the conflict reported",
                Some(SignedDuration::from_secs(2)),
                |g| settled(g) && counts(g).conflicting == 3,
            )
            .await;
        let status = group.status.unwrap();
        let (_, reason, _) = super::promises::condition_of(&status.conditions, "Stalled").unwrap();
        assert_eq!(reason, "Conflict", "{name}");
    }
    for sim in &cold[..3] {
        assert_eq!(e2e.sim_state(sim.device).await, "LIVE", "left as it was");
    }
    assert_eq!(submitted_sims(e2e).await, submitted, "neither side acted");
    // kill -9 and start again, three times: whichever group reads first after a start, the
    // ICCID group (whose lookups carry no tags) never acts before the tag group has read.
    for _ in 0..3 {
        drop(operator);
        operator = e2e.operator();
        for name in ["returned", "cold-chain"] {
            e2e.until::<SimGroup>(
                name,
                "the conflict reported after a restart",
                Some(SignedDuration::from_secs(2)),
                |g| settled(g) && counts(g).conflicting == 3,
            )
            .await;
        }
    }
    assert_eq!(submitted_sims(e2e).await, submitted, "neither side acted");
    drop(operator);
}

/// `simfleet plan -f DIR --kubeconfig` as JSON.
async fn plan_json(e2e: &E2e<'_>, dir: &std::path::Path) -> Value {
    let args = vec![
        "plan".to_owned(),
        "-f".to_owned(),
        dir.display().to_string(),
        "--kubeconfig".to_owned(),
        e2e.kubeconfig.display().to_string(),
        "--output".to_owned(),
        "json".to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "simfleet plan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Issue "Correct together" 5: two namespaces, each with its own account on one carrier
/// organisation: an Active tag group in one, a Paused ICCID group in the other. Both report the
/// conflict (without naming the other tenant's group), and over several drift checks neither
/// submits anything.
pub async fn two_namespaces_on_one_organisation_conflict_and_never_flap(e2e: &E2e<'_>) {
    for namespace in ["fleet-a", "fleet-b"] {
        create_namespace(e2e, namespace).await;
        apply_in(e2e, namespace, e2e.accounts_yaml()).await;
    }
    // One operator for every namespace, as the chart runs it.
    let allowed = format!("--allowed-carrier-url={}", e2e.simulator.base_url());
    let _operator = Operator::start_with(&e2e.kubeconfig, &[allowed.as_str()], "operator").0;
    let vending: Vec<SimRow> = sims_tagged(e2e, "vending")
        .await
        .into_iter()
        .filter(|s| s.state == "LIVE")
        .collect();
    let two: Vec<&str> = vending[..2].iter().map(|s| s.iccid.as_str()).collect();
    apply_in(
        e2e,
        "fleet-a",
        group_yaml(
            "vending",
            "hologram",
            "Active",
            json!({"tags": ["vending"]}),
            json!({"driftCheck": "1m"}),
        ),
    )
    .await;
    apply_in(
        e2e,
        "fleet-b",
        group_yaml(
            "returned",
            "hologram",
            "Paused",
            json!({"iccids": two}),
            json!({"driftCheck": "1m"}),
        ),
    )
    .await;
    let in_ns = |namespace: &str| kube::Api::<SimGroup>::namespaced(e2e.client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let a = in_ns("fleet-a").get("vending").await.unwrap();
        let b = in_ns("fleet-b").get("returned").await.unwrap();
        if settled(&a) && settled(&b) && counts(&a).conflicting == 2 && counts(&b).conflicting == 2
        {
            let said = serde_json::to_string(&b.status).unwrap();
            assert!(
                !said.contains("fleet-a") && !said.contains("vending"),
                "a tenant is not told the other's names: {said}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no conflict on both sides: {a:?}\n{b:?}"
        );
        e2e.simulator.advance(SignedDuration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let submitted = submitted_sims(e2e).await;
    // Five drift checks on each side.
    for _ in 0..10 {
        e2e.simulator.advance(SignedDuration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(submitted_sims(e2e).await, submitted, "no tug of war");
    for sim in &vending[..2] {
        assert_eq!(e2e.sim_state(sim.device).await, "LIVE");
    }
}

/// Issue "Correct together" 6: an approval of generation 2 given at generation 1 approves
/// nothing when generation 2 comes; the held change is approved by its digest.
pub async fn an_approval_given_ahead_approves_nothing(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    let live: Vec<u64> = sims_tagged(e2e, "fleet-tracker")
        .await
        .into_iter()
        .filter(|s| s.state == "LIVE")
        .map(|s| s.device)
        .take(12)
        .collect();
    e2e.apply(&group_yaml(
        "trackers",
        "simulator",
        "Active",
        json!({"deviceIds": live}),
        json!({"guard": {"maxChangesWithoutApproval": 5}}),
    ))
    .await;
    e2e.until::<SimGroup>(
        "trackers",
        "in state",
        Some(SignedDuration::from_secs(2)),
        |g| settled(g) && counts(g).in_desired_state == 12,
    )
    .await;
    // Approved ahead, then the change.
    e2e.kubectl(&[
        "annotate",
        "sg",
        "trackers",
        "simfleet.io/approved-generation=2",
    ])
    .await;
    e2e.kubectl(&[
        "patch",
        "sg",
        "trackers",
        "--type=merge",
        "-p",
        r#"{"spec":{"state":"Paused"}}"#,
    ])
    .await;
    let held = e2e
        .until::<SimGroup>(
            "trackers",
            "held for approval",
            Some(SignedDuration::from_secs(2)),
            |g| {
                g.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == Some(2) && s.held_change.is_some())
            },
        )
        .await;
    let note = e2e
        .until_event("simgroup", "trackers", "InvalidAnnotation")
        .await;
    assert!(
        note.contains("approved-generation=2 approves nothing"),
        "{note}"
    );
    // Several passes later, nothing was sent.
    for _ in 0..5 {
        e2e.simulator.advance(SignedDuration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (device, state) in states(e2e, &live).await {
        assert_eq!(
            state, "LIVE",
            "SIM {device}: no approval of this change was given"
        );
    }
    let digest = held.status.unwrap().held_change.unwrap().digest;
    assert!(digest.starts_with("Pause-12-"), "{digest}");
    e2e.kubectl(&[
        "annotate",
        "sg",
        "trackers",
        &format!("simfleet.io/approved-change={digest}"),
    ])
    .await;
    e2e.until::<SimGroup>(
        "trackers",
        "paused once approved",
        Some(SignedDuration::from_secs(2)),
        |g| settled(g) && counts(g).in_desired_state == 12,
    )
    .await;
    assert_eq!(redundant_sims(e2e).await, 0);
}

/// Issue "Correct together" 9: a group created while another's restore job runs on its SIMs
/// does not count them as its own pending: heading where it wants them, they count in state.
pub async fn another_groups_pending_sims_are_not_this_groups_pending(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    let live: Vec<u64> = sims_tagged(e2e, "pilot")
        .await
        .into_iter()
        .filter(|s| s.state == "LIVE")
        .map(|s| s.device)
        .take(6)
        .collect();
    e2e.apply(&group_yaml(
        "pilot-pause",
        "simulator",
        "Paused",
        json!({"deviceIds": live}),
        json!({"onDelete": "Restore"}),
    ))
    .await;
    e2e.until::<SimGroup>(
        "pilot-pause",
        "paused",
        Some(SignedDuration::from_secs(2)),
        |g| settled(g) && counts(g).in_desired_state == 6,
    )
    .await;
    // The restore's job is submitted and stays pending: the clock stands still.
    e2e.kubectl(&["delete", "sg", "pilot-pause", "--wait=false"])
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending =
            simfleet_testkit::simulator::admin_get(&e2e.simulator, "/sims?pending=true&limit=1000")
                .await;
        if pending["total"].as_u64() == Some(6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restore job never came: {pending}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e2e.apply(&group_yaml(
        "pilot-live",
        "simulator",
        "Active",
        json!({"deviceIds": live}),
        json!({}),
    ))
    .await;
    let group = e2e
        .until::<SimGroup>("pilot-live", "observed", None, |g| {
            g.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == Some(1) && s.counts.is_some())
        })
        .await;
    let c = counts(&group);
    assert_eq!(c.pending, 0, "the restore's job is not this group's: {c:?}");
    assert_eq!(c.in_desired_state, 6, "{c:?}");
    assert!(group.status.unwrap().pending_actions.is_empty());
    until_gone(e2e, None, "sg", "pilot-pause").await;
    assert_eq!(redundant_sims(e2e).await, 0);
}

fn quota_yaml(name: &str, devices: &[u64], extra: Value) -> String {
    let mut spec = json!({"carrierRef": {"name": "simulator"}, "target": {"deviceIds": devices},
                          "volumeMB": 50, "expiry": {"after": "30d"}});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        spec[key] = value;
    }
    serde_json::to_string(&json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// A device's remaining quota volume (MB) at the simulator.
async fn volume(e2e: &E2e<'_>, device: u64) -> Option<f64> {
    let sims =
        simfleet_testkit::simulator::admin_get(&e2e.simulator, &format!("/sims?deviceId={device}"))
            .await;
    sims["sims"][0]["quota"]["volume"].as_f64()
}

/// Issue "Correct together" 8: a Set of 50 MB and a TopUp of 7 MB on the same 40 devices
/// conflict: both report it, the TopUp adds nothing, and once one goes the other proceeds.
pub async fn data_quotas_on_the_same_devices_conflict(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    let devices: Vec<u64> = sims_tagged(e2e, "smart-meter")
        .await
        .into_iter()
        .filter(|s| s.state != "DEAD")
        .map(|s| s.device)
        .take(40)
        .collect();
    assert_eq!(devices.len(), 40);
    let quota_ready = |q: &DataQuota| {
        q.status.as_ref().is_some_and(|s| {
            s.observed_generation == q.metadata.generation
                && super::promises::condition_of(&s.conditions, "Ready")
                    .is_some_and(|(status, _, _)| status == "True")
        })
    };
    e2e.apply(&quota_yaml("set-50", &devices, json!({}))).await;
    e2e.until::<DataQuota>(
        "set-50",
        "set",
        Some(SignedDuration::from_secs(2)),
        quota_ready,
    )
    .await;
    e2e.apply(&quota_yaml(
        "top-up-7",
        &devices,
        json!({"mode": "TopUp", "volumeMB": 7}),
    ))
    .await;
    for name in ["top-up-7", "set-50"] {
        let quota = e2e
            .until::<DataQuota>(
                name,
                "the conflict reported",
                Some(SignedDuration::from_secs(2)),
                |q| {
                    q.status.as_ref().is_some_and(|s| {
                        s.observed_generation == q.metadata.generation
                            && s.counts.as_ref().is_some_and(|c| c.conflicting == 40)
                    })
                },
            )
            .await;
        let status = quota.status.unwrap();
        let (stalled, reason, _) =
            super::promises::condition_of(&status.conditions, "Stalled").unwrap();
        assert_eq!(
            (stalled.as_str(), reason.as_str()),
            ("True", "Conflict"),
            "{name}"
        );
        assert_eq!(status.problem_devices[0].reason, "Conflict", "{name}");
    }
    for &device in &devices {
        assert_eq!(
            volume(e2e, device).await,
            Some(50.0),
            "device {device}: nothing added"
        );
    }
    // The Set goes: the TopUp, alone now, adds its 7 MB once.
    e2e.kubectl(&["delete", "dq", "set-50"]).await;
    e2e.until::<DataQuota>(
        "top-up-7",
        "applied alone",
        Some(SignedDuration::from_secs(2)),
        quota_ready,
    )
    .await;
    for &device in &devices {
        assert_eq!(volume(e2e, device).await, Some(57.0), "device {device}");
    }
}
