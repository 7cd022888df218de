//! RBAC proven by use: the operator runs through everything it does (accounts, SimGroups with a
//! restore, DataQuotas with removal, events, leader election) against the sandbox, which logs
//! every request; the chart's rules must grant exactly what was used. The same run is scraped
//! for the metrics series.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::operator::*;
use jiff::SignedDuration;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use simfleet::api::{DataQuota, SimGroup};
use simfleet_testkit::world::*;

/// (API group, resource, verb).
type Permission = (String, String, String);

/// Granted by the chart but not seen in the run, each for a reason.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    (
        "",
        "configmaps",
        "create",
        "a real API server also checks create when a server-side apply creates the restore record; the sandbox logs that request as patch",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "the recorder patches an event when the very same one repeats (its series count); this run has no repeat",
    ),
];

fn granted(documents: &[Value]) -> BTreeSet<Permission> {
    let mut set = BTreeSet::new();
    for document in documents {
        if !matches!(document["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in document["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let text = |v: &Value| v.as_str().unwrap().to_owned();
                        assert_ne!(text(verb), "*", "no wildcard verbs");
                        assert_ne!(text(resource), "*", "no wildcard resources");
                        set.insert((text(group), text(resource), text(verb)));
                    }
                }
            }
        }
    }
    set
}

#[tokio::test]
async fn the_chart_grants_exactly_what_the_operator_uses_and_the_metrics_are_served() {
    let world = world("rbac", 100).await;
    let (_operator, metrics) = Operator::start_with(
        &world.kubeconfig,
        &[
            "--leader-election",
            "--lease-duration=5",
            "--metrics-addr=127.0.0.1:0",
        ],
        "rbac-operator",
    );
    let metrics = metrics.unwrap();
    let groups = create_group(&world, "restore", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "onDelete": "Restore", "selector": {"deviceIds": [1001, 1002]}})).await;
    create_group(&world, "tagged", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": ["vending"]}})).await;
    let quotas: Api<DataQuota> = Api::namespaced(world.sandbox.client(), "default");
    let quota: DataQuota = serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": "q"}, "spec": {"carrierRef": {"name": "simulator"}, "target": {"simGroupRef": {"name": "restore"}}, "volumeMB": 10, "expiry": {"after": "30d"}, "onDelete": "Remove"}})).unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    for name in ["restore", "tagged"] {
        until(&groups, name, "submitted", |g: &SimGroup| {
            g.status
                .as_ref()
                .is_some_and(|s| !s.pending_actions.is_empty())
        })
        .await;
    }
    world.simulator.advance(SignedDuration::from_secs(10));
    for name in ["restore", "tagged"] {
        until(&groups, name, "Ready", ready).await;
    }
    until(&quotas, "q", "quota Ready", |q: &DataQuota| {
        q.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;

    // Scrape while everything exists.
    let text = reqwest::get(format!("{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "simfleet_reconciles_total{kind=\"SimGroup\",result=\"success\"}",
        "simfleet_reconciles_total{kind=\"DataQuota\",result=\"success\"}",
        "simfleet_reconciles_total{kind=\"CarrierAccount\",result=\"success\"}",
        "simfleet_reconcile_duration_seconds_bucket{",
        "simfleet_carrier_requests_total{provider=\"simulator\",account=\"default/simulator\",route=\"/devices/batch/state\",status=\"200\"}",
        "simfleet_carrier_rate_limited_total{",
        "simfleet_carrier_retries_total{",
        "simfleet_sims{namespace=\"default\",sim_group=\"tagged\",desired=\"Paused\",observed=\"in_desired_state\"}",
        "simfleet_pending_actions{namespace=\"default\",sim_group=\"restore\"} 0",
        "simfleet_quota_devices{namespace=\"default\",data_quota=\"q\",state=\"active\"} 2",
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
    // Readiness follows the watch caches' sync, which is reported within a second or so.
    for path in ["/healthz", "/readyz"] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = reqwest::get(format!("{metrics}{path}"))
                .await
                .unwrap()
                .status();
            if status.is_success() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{path}: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The quota first: removing it resolves its target through the group.
    quotas.delete("q", &Default::default()).await.unwrap();
    wait_gone(&quotas, "q", &world, Duration::from_secs(90)).await;
    groups.delete("restore", &Default::default()).await.unwrap();
    groups.delete("tagged", &Default::default()).await.unwrap();
    wait_gone(&groups, "restore", &world, Duration::from_secs(90)).await;
    wait_gone(&groups, "tagged", &world, Duration::from_secs(90)).await;

    let used: BTreeSet<Permission> = world
        .sandbox
        .state()
        .distinct_requests()
        .into_iter()
        .filter(|r| r.user_agent.starts_with("simfleet-operator/"))
        .map(|r| (r.group, r.resource, r.verb))
        .collect();
    assert!(
        !used.is_empty(),
        "the operator's requests carry its User-Agent"
    );
    for (mode, values) in [
        ("cluster-wide", json!({})),
        ("watchNamespace", json!({"watchNamespace": "default"})),
    ] {
        let granted = granted(&common::rendered(&values, Some("default")));
        let missing: Vec<&Permission> = used.difference(&granted).collect();
        assert!(
            missing.is_empty(),
            "{mode}: used but not granted: {missing:?}"
        );
        let unused: Vec<&Permission> = granted
            .difference(&used)
            .filter(|(g, r, v)| {
                !NOT_EXERCISED
                    .iter()
                    .any(|(eg, er, ev, _)| eg == g && er == r && ev == v)
            })
            .collect();
        assert!(
            unused.is_empty(),
            "{mode}: granted but never used: {unused:?}"
        );
        for (g, r, v, why) in NOT_EXERCISED {
            let permission = (g.to_string(), r.to_string(), v.to_string());
            assert!(
                granted.contains(&permission) && !used.contains(&permission),
                "{mode}: exception {permission:?} ({why}) is stale"
            );
        }
    }
}
