//! The product's central promises, end to end as a user meets them (kubectl, `simfleet run`,
//! the carrier simulator), written once and run against the sandbox and the real API server:
//! a reversed change converges, `drift: Report` only reports, teardowns in any order restore
//! and remove what was set, an empty selection is not green, a top-up survives a kill -9.

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::Value;
use simfleet::api::{CarrierAccount, DataQuota, SimGroup};

use super::e2e::E2e;

/// A condition's (status, reason, message).
pub fn condition_of(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn group_condition(group: &SimGroup, type_: &str) -> Option<(String, String, String)> {
    condition_of(&group.status.as_ref()?.conditions, type_)
}

fn is_ready_as(group: &SimGroup, state: &str) -> bool {
    group.spec.state.as_str() == state
        && group_condition(group, "Ready").is_some_and(|(s, _, _)| s == "True")
        && group.status.as_ref().is_some_and(|s| {
            s.observed_generation == group.metadata.generation && s.pending_actions.is_empty()
        })
}

fn group_yaml(name: &str, account: &str, state: &str, devices: &[u64], extra: &str) -> String {
    let devices: Vec<String> = devices.iter().map(u64::to_string).collect();
    format!(
        "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {{name: {name}}}\nspec:\n  carrierRef: {{name: {account}}}\n  state: {state}\n  selector: {{deviceIds: [{}]}}\n{extra}",
        devices.join(", ")
    )
}

fn other(state: &str) -> &'static str {
    if state == "Active" {
        "Paused"
    } else {
        "Active"
    }
}

/// One quick-flip case: a group of two SIMs on `account`, settled in `start`, flipped to the
/// other state and back after `gap`.
struct Flip {
    name: String,
    account: &'static str,
    start: &'static str,
    gap: Duration,
    devices: [u64; 2],
}

fn flips() -> Vec<Flip> {
    let mut cases = Vec::new();
    let mut device = 1001;
    for account in ["hologram", "emnify"] {
        for start in ["Paused", "Active"] {
            for (gap_name, gap) in [("0s", 0), ("500ms", 500), ("1200ms", 1200), ("5s", 5000)] {
                cases.push(Flip {
                    name: format!("{account}-{}-{gap_name}", start.to_lowercase()),
                    account,
                    start,
                    gap: Duration::from_millis(gap),
                    devices: [device, device + 1],
                });
                device += 2;
            }
        }
    }
    cases
}

async fn flip_to(e2e: &E2e<'_>, name: &str, state: &str) {
    e2e.kubectl(&[
        "patch",
        "simgroup",
        name,
        "--type=merge",
        "-p",
        &format!("{{\"spec\":{{\"state\":\"{state}\"}}}}"),
    ])
    .await;
}

/// Moves the simulator's clock on while waiting, until every case is Ready in its start state
/// with no action pending.
async fn until_all_ready(e2e: &E2e<'_>, cases: &[Flip], what: &str) {
    for case in cases {
        e2e.until::<SimGroup>(&case.name, what, Some(SignedDuration::from_secs(2)), |g| {
            is_ready_as(g, case.start)
        })
        .await;
    }
    for case in cases {
        let want = if case.start == "Active" {
            "LIVE"
        } else {
            "PAUSED-USER"
        };
        for device in case.devices {
            assert_eq!(
                e2e.sim_state(device).await,
                want,
                "{}: SIM {device}",
                case.name
            );
        }
    }
}

async fn redundant_sims(e2e: &E2e<'_>) -> u64 {
    simfleet_testkit::simulator::admin_get(&e2e.simulator, "/stats").await["changes"]["redundantSims"]
        .as_u64()
        .unwrap()
}

/// A change reversed at any moment converges to the latest spec, with no redundant
/// submission: on Hologram and emnify semantics, in both directions, at gaps of 0, 0.5, 1.2
/// and 5 s; first while the first action is pending at the carrier, then after it landed.
pub async fn reversed_changes_converge(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    let cases = flips();
    for case in &cases {
        e2e.apply(&group_yaml(
            &case.name,
            case.account,
            case.start,
            &case.devices,
            "",
        ))
        .await;
    }
    until_all_ready(e2e, &cases, "settled in its start state").await;
    let redundant_before = redundant_sims(e2e).await;

    // Round 1: reversed while the first action is pending (the carrier's clock stands still).
    futures::future::join_all(cases.iter().map(|case| async move {
        flip_to(e2e, &case.name, other(case.start)).await;
        if !case.gap.is_zero() {
            // Wait for the submit (0 s reverses before it may have been sent), then the gap.
            e2e.until::<SimGroup>(&case.name, "first action submitted", None, |g| {
                g.status
                    .as_ref()
                    .is_some_and(|s| !s.pending_actions.is_empty())
            })
            .await;
            tokio::time::sleep(case.gap).await;
        }
        flip_to(e2e, &case.name, case.start).await;
    }))
    .await;
    let started = Instant::now();
    until_all_ready(
        e2e,
        &cases,
        "back in its start state after a reversal while pending",
    )
    .await;
    eprintln!(
        "{}: {} reversals while pending converged in {:.1} s",
        e2e.server_name(),
        cases.len(),
        started.elapsed().as_secs_f64()
    );

    // Round 2: the first action lands at the carrier before the reversal is seen.
    futures::future::join_all(cases.iter().map(|case| async move {
        flip_to(e2e, &case.name, other(case.start)).await;
        e2e.until::<SimGroup>(&case.name, "first action submitted", None, |g| {
            g.status
                .as_ref()
                .is_some_and(|s| !s.pending_actions.is_empty())
        })
        .await;
    }))
    .await;
    e2e.simulator.advance(SignedDuration::from_secs(10));
    futures::future::join_all(cases.iter().map(|case| async move {
        tokio::time::sleep(case.gap).await;
        flip_to(e2e, &case.name, case.start).await;
    }))
    .await;
    until_all_ready(
        e2e,
        &cases,
        "back in its start state after a reversal once applied",
    )
    .await;
    assert_eq!(
        redundant_sims(e2e).await,
        redundant_before,
        "no SIM was submitted to a state it was in or on its way to"
    );
}

/// `drift: Report` never submits for drift: a SIM paused in the carrier's dashboard is a
/// `Drift` entry, a `DriftDetected` Warning and `Stalled` reason `Drift`; with `Correct` the
/// same is reported and changed back. The check runs on `driftCheck`.
pub async fn drift_is_reported_and_only_corrected_when_asked(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    let check = "  driftCheck: 2s\n";
    e2e.apply(&group_yaml(
        "watched",
        "simulator",
        "Active",
        &[1101, 1102],
        &format!("  drift: Report\n{check}"),
    ))
    .await;
    e2e.apply(&group_yaml(
        "corrected",
        "simulator",
        "Active",
        &[1103, 1104],
        &format!("  drift: Correct\n{check}"),
    ))
    .await;
    for name in ["watched", "corrected"] {
        e2e.until::<SimGroup>(name, "Ready", None, |g| is_ready_as(g, "Active"))
            .await;
    }
    let submitted_before =
        simfleet_testkit::simulator::admin_get(&e2e.simulator, "/stats").await["changes"]["submittedSims"]
            .as_u64()
            .unwrap();
    // Someone pauses one SIM of each in the carrier's dashboard.
    for device in [1101, 1103] {
        simfleet_testkit::simulator::admin_send(
            &e2e.simulator,
            reqwest::Method::PATCH,
            &format!("/sims/{device}"),
            &serde_json::json!({"state": "PAUSED-USER"}),
        )
        .await;
    }
    let watched = e2e
        .until::<SimGroup>("watched", "drift reported", None, |g| {
            g.status
                .as_ref()
                .is_some_and(|s| s.counts.as_ref().is_some_and(|c| c.drifted == 1))
        })
        .await;
    let (stalled, reason, message) = group_condition(&watched, "Stalled").unwrap();
    assert_eq!(
        (stalled.as_str(), reason.as_str()),
        ("True", "Drift"),
        "{message}"
    );
    let entry = &watched.status.as_ref().unwrap().problem_sims[0];
    assert!(
        entry.device_id.as_deref() == Some("1101")
            && entry
                .message
                .contains("Paused at the carrier, the spec wants Active"),
        "{entry:?}"
    );
    let note = e2e
        .until_event("simgroup", "watched", "DriftDetected")
        .await;
    assert!(note.contains("changed outside simfleet"), "{note}");
    e2e.until_event("simgroup", "corrected", "DriftDetected")
        .await;
    // Correct changes it back (once the carrier's clock passes its delay); Report never does.
    e2e.until::<SimGroup>(
        "corrected",
        "drift corrected",
        Some(SignedDuration::from_secs(5)),
        |g| is_ready_as(g, "Active"),
    )
    .await;
    assert_eq!(e2e.sim_state(1103).await, "LIVE");
    let submitted = simfleet_testkit::simulator::admin_get(&e2e.simulator, "/stats").await["changes"]["submittedSims"]
        .as_u64()
        .unwrap();
    assert_eq!(
        submitted - submitted_before,
        1,
        "only the Correct group's SIM was resubmitted"
    );
    // Still reported, still paused, after further checks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(e2e.sim_state(1101).await, "PAUSED-USER");
    let watched: SimGroup = e2e.api().get("watched").await.unwrap();
    assert_eq!(watched.status.unwrap().counts.unwrap().drifted, 1);
}

/// `kubectl delete -f dir/` of a folder holding the Secret, the CarrierAccount, an
/// `onDelete: Restore` group and an `onDelete: Remove` DataQuota targeting the group: the
/// account waits (saying so) until the group has restored its SIMs and the DataQuota has
/// removed its quotas, whatever order kubectl deletes them in, even with the Secret gone first
/// (the credentials the carrier accepted still serve the clean-up).
pub async fn a_teardown_in_any_order_restores_and_removes(e2e: &E2e<'_>) {
    let dir = super::e2e::tempfile_dir::Dir::new("teardown");
    let secret_and_account = e2e.accounts_yaml();
    std::fs::write(dir.0.join("0-accounts.yaml"), &secret_and_account).unwrap();
    std::fs::write(
        dir.0.join("1-group.yaml"),
        group_yaml(
            "returned",
            "emnify",
            "Paused",
            &[1201, 1202, 1203],
            "  onDelete: Restore\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("2-quota.yaml"),
        "apiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata: {name: returned-quota}\nspec:\n  carrierRef: {name: emnify}\n  target: {simGroupRef: {name: returned}}\n  volumeMB: 50\n  expiry: {after: 30d}\n  onDelete: Remove\n",
    )
    .unwrap();
    let _operator = e2e.operator();
    e2e.kubectl(&["apply", "-f", dir.0.to_str().unwrap()]).await;
    e2e.until::<SimGroup>(
        "returned",
        "paused",
        Some(SignedDuration::from_secs(5)),
        |g| is_ready_as(g, "Paused"),
    )
    .await;
    e2e.until::<DataQuota>("returned-quota", "quotas set", None, |q| {
        q.status
            .as_ref()
            .and_then(|s| condition_of(&s.conditions, "Ready"))
            .is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    // A device someone else gives a quota later is not this DataQuota's to remove: 1203's
    // quota is replaced in the carrier's portal.
    let token = simfleet_testkit::simulator::emnify_token(&e2e.simulator).await;
    let portal = simfleet_testkit::simulator::emnify(
        &e2e.simulator,
        reqwest::Method::POST,
        "/v1/endpoint/1203/quota/data",
        &token,
    )
    .json(&serde_json::json!({"status": {"id": 1}, "volume": 999, "expiry_date": "2031-01-01 00:00:00", "action_on_exhaustion": {"id": 1}}))
    .send()
    .await
    .unwrap();
    assert!(portal.status().is_success(), "{}", portal.status());
    let account = e2e
        .until::<CarrierAccount>("emnify", "counts its users", None, |a| {
            a.status.as_ref().and_then(|s| s.used_by) == Some(2)
        })
        .await;
    assert!(
        account
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "simfleet.io/carrier-account-in-use")
    );
    // The worst order, made certain: the Secret goes first, and the account has noticed
    // (Stalled, SecretNotFound) before anything else is deleted.
    e2e.kubectl(&["delete", "secret", "emnify-token"]).await;
    e2e.until::<CarrierAccount>("emnify", "its Secret is gone", None, |a| {
        a.status
            .as_ref()
            .and_then(|s| condition_of(&s.conditions, "Stalled"))
            .is_some_and(|(s, reason, _)| s == "True" && reason == "SecretNotFound")
    })
    .await;
    // The teardown: kubectl deletes in the folder's order, the accounts before the group.
    let deleting = e2e
        .kubectl_with(
            &[
                "delete",
                "-f",
                dir.0.to_str().unwrap(),
                "--wait=false",
                "--ignore-not-found",
            ],
            None,
        )
        .await;
    assert!(
        deleting.status.success(),
        "{}",
        String::from_utf8_lossy(&deleting.stderr)
    );
    let waiting = e2e
        .until::<CarrierAccount>("emnify", "says what its deletion waits for", None, |a| {
            a.status
                .as_ref()
                .and_then(|s| condition_of(&s.conditions, "Reconciling"))
                .is_some_and(|(_, reason, _)| reason == "DeletionWaitsForUsers")
        })
        .await;
    let (_, _, message) = condition_of(&waiting.status.unwrap().conditions, "Reconciling").unwrap();
    assert!(message.contains("SimGroup returned"), "{message}");
    // The group restores (its SIMs were live before it), the quota is removed, then all go.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = e2e.api::<CarrierAccount>().get_opt("emnify").await.unwrap();
        if left.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the account was never released: {left:?}"
        );
        e2e.simulator.advance(SignedDuration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for device in [1201, 1202, 1203] {
        assert_eq!(e2e.sim_state(device).await, "LIVE", "SIM {device} restored");
    }
    let quota = |device: u64| async move {
        simfleet_testkit::simulator::admin_get(&e2e.simulator, &format!("/sims?deviceId={device}"))
            .await["sims"][0]["quota"]
            .clone()
    };
    assert_eq!(
        quota(1201).await,
        Value::Null,
        "the quota it set is removed"
    );
    assert_eq!(quota(1202).await, Value::Null);
    assert_ne!(
        quota(1203).await,
        Value::Null,
        "a quota someone else set stays"
    );
}

/// A selector that matches nothing (a typo) is not green: `Stalled` reason `NoSimsSelected`,
/// a Warning event naming the selector, `-o wide` shows the reason, and `simfleet plan` warns.
pub async fn an_empty_selection_is_not_ready(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let _operator = e2e.operator();
    e2e.apply(
        "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata: {name: typo}\nspec:\n  carrierRef: {name: simulator}\n  state: Paused\n  selector: {tags: [smart-meterz]}\n",
    )
    .await;
    let group = e2e
        .until::<SimGroup>("typo", "stalled", None, |g| {
            group_condition(g, "Stalled").is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    assert_eq!(
        group_condition(&group, "Ready").unwrap().1,
        "NoSimsSelected"
    );
    let note = e2e.until_event("simgroup", "typo", "NoSimsSelected").await;
    assert!(note.contains("smart-meterz"), "{note}");
    let wide = e2e.kubectl(&["get", "sg", "typo", "-o", "wide"]).await;
    assert!(
        wide.contains("REASON") && wide.contains("NoSimsSelected"),
        "{wide}"
    );
    // An approval annotation that is not a generation number is reported, not ignored.
    e2e.kubectl(&[
        "annotate",
        "sg",
        "typo",
        "simfleet.io/approved-generation=one",
    ])
    .await;
    let note = e2e
        .until_event("simgroup", "typo", "InvalidAnnotation")
        .await;
    assert!(
        note.contains("\"one\" is not a generation number"),
        "{note}"
    );
    // kubectl wait for Ready does not succeed.
    let waited = e2e
        .kubectl_with(
            &["wait", "--for=condition=Ready", "sg/typo", "--timeout=2s"],
            None,
        )
        .await;
    assert!(!waited.status.success());
}

fn quota_ready(quota: &DataQuota) -> bool {
    quota.status.as_ref().is_some_and(|s| {
        s.observed_generation == quota.metadata.generation
            && condition_of(&s.conditions, "Ready").is_some_and(|(status, _, _)| status == "True")
    })
}

/// A device's quota volume (MB) at the simulator.
async fn quota_volume(e2e: &E2e<'_>, device: u64) -> f64 {
    let sims =
        simfleet_testkit::simulator::admin_get(&e2e.simulator, &format!("/sims?deviceId={device}"))
            .await;
    sims["sims"][0]["quota"]["volume"]
        .as_f64()
        .unwrap_or_default()
}

/// A top-up (read what is left, add, set) is applied once per device, even when the operator
/// is killed with SIGKILL in the middle of the batch and a new one takes over.
pub async fn a_top_up_is_applied_once_across_a_kill_9(e2e: &E2e<'_>) {
    e2e.apply(&e2e.accounts_yaml()).await;
    let mut operator = e2e.operator();
    let ids: Vec<String> = (1001..=1300).map(|id| id.to_string()).collect();
    e2e.apply(&format!(
        "apiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata: {{name: meters}}\nspec:\n  carrierRef: {{name: simulator}}\n  target: {{deviceIds: [{}]}}\n  volumeMB: 50\n  expiry: {{after: 7d}}\n",
        ids.join(", ")
    ))
    .await;
    e2e.until::<DataQuota>("meters", "Ready", None, quota_ready)
        .await;
    // Slow quota writes, so that the kill lands while the top-ups are being sent.
    simfleet_testkit::simulator::set_faults(
        &e2e.simulator,
        serde_json::json!([{"route": "/api/v1/endpoint/{id}/quota/data", "latencyMs": 150}]),
    )
    .await;
    e2e.kubectl(&[
        "patch",
        "dq",
        "meters",
        "--type=merge",
        "-p",
        r#"{"spec": {"mode": "TopUp", "volumeMB": 25}}"#,
    ])
    .await;
    let journaled = e2e
        .until::<DataQuota>("meters", "top-ups journaled", None, |q| {
            q.status
                .as_ref()
                .and_then(|s| s.progress.as_ref())
                .is_some_and(|p| p.generation == 2 && !p.top_ups_in_flight.is_empty())
        })
        .await;
    let first = journaled
        .status
        .unwrap()
        .progress
        .unwrap()
        .top_ups_in_flight[0]
        .device_id;
    // Once the first top-up has landed, kill -9 in the middle of the batch.
    let deadline = Instant::now() + Duration::from_secs(60);
    while quota_volume(e2e, first).await != 75.0 {
        assert!(Instant::now() < deadline, "the first top-up never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    operator.0.kill().unwrap();
    operator.0.wait().unwrap();
    let landed = futures::future::join_all((1001..=1300).map(|id| quota_volume(e2e, id))).await;
    let before_restart = landed.iter().filter(|v| **v == 75.0).count();
    assert!(
        (1..300).contains(&before_restart),
        "{}: the kill landed mid-batch ({before_restart} of 300 topped up)",
        e2e.server_name()
    );
    simfleet_testkit::simulator::set_faults(&e2e.simulator, serde_json::json!([])).await;
    let _operator = e2e.operator();
    e2e.until::<DataQuota>("meters", "Ready after the restart", None, quota_ready)
        .await;
    for id in 1001..=1300 {
        assert_eq!(
            quota_volume(e2e, id).await,
            75.0,
            "{}: device {id}: 50 + 25, added exactly once",
            e2e.server_name()
        );
    }
}
