//! DataQuota end to end: the real operator binary against the sandbox API and the simulator
//! (the `simulator` account serves quotas through its emnify surface).

mod common;

use std::time::{Duration, Instant};

use common::operator::*;
use jiff::SignedDuration;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use simfleet::api::DataQuota;
use simfleet_testkit::world::*;

async fn create_quota(world: &World, name: &str, spec: Value) -> Api<DataQuota> {
    let api: Api<DataQuota> = Api::namespaced(world.sandbox.client(), "default");
    let quota: DataQuota = serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": name}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &quota).await.unwrap();
    api
}

fn quota_ready(quota: &DataQuota) -> bool {
    quota.status.as_ref().is_some_and(|s| {
        s.observed_generation == quota.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Makes the operator look again now (the periodic resync would, later).
async fn touch(api: &Api<DataQuota>, name: &str, value: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"resync": value}}})),
    )
    .await
    .unwrap();
}

/// The simulator's quota of a device.
async fn quota_of(world: &World, device: u64) -> Value {
    let table = simfleet_testkit::simulator::admin_get(
        &world.simulator,
        &format!("/sims?deviceId={device}"),
    )
    .await;
    table["sims"][0]["quota"].clone()
}

/// A device uses data at the simulator.
async fn consume(world: &World, device: u64, mb: f64) {
    let response = reqwest::Client::new()
        .post(format!("{}/consume", world.simulator.admin_url()))
        .json(&json!({"deviceId": device, "mb": mb}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

fn counts(quota: &DataQuota) -> simfleet::api::QuotaCounts {
    quota.status.as_ref().unwrap().counts.clone().unwrap()
}

#[tokio::test]
async fn a_quota_on_1000_devices_converges_reports_used_up_once_and_shows_expiry() {
    let world = world("quota", 1000).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_quota(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "target": {"tags": simfleet::simulator::fleet::SEED_TAGS}, "volumeMB": 100, "expiry": {"after": "30d"}, "thresholdPercentage": 20})).await;
    let ready = until(&api, "fleet", "Ready", quota_ready).await;
    let c = counts(&ready);
    assert_eq!((c.targeted, c.active, c.none, c.failed), (1000, 1000, 0, 0));
    let status = ready.status.clone().unwrap();
    let expiry = status.progress.as_ref().unwrap().expiry.clone();
    assert_eq!(status.earliest_expiry, Some(expiry.clone()));
    let sent = quota_of(&world, 1500).await;
    assert_eq!(sent["volume"], 100.0);
    assert_eq!(sent["threshold_percentage"], 20.0);
    assert_eq!(
        sent["expiry_date"],
        expiry.0.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        "the carrier's format, UTC, counted from the first apply"
    );

    // Device 1001 uses its quota up: threshold event, then used up.
    consume(&world, 1001, 85.0).await;
    consume(&world, 1001, 15.0).await;
    touch(&api, "fleet", "one").await;
    let exhausted = until(&api, "fleet", "exhausted in status", |q| {
        q.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.exhausted == 1)
    })
    .await;
    let problem = &exhausted.status.as_ref().unwrap().problem_devices[0];
    assert_eq!(
        (problem.device_id, problem.reason.as_str()),
        (1001, "Exhausted")
    );
    assert!(problem.message.contains("carrier event"), "{problem:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let reasons = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .filter(|r| r.starts_with("Quota"))
            .collect()
    };
    while reasons(&events(&world).await).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "quota events: {:?}",
            events(&world).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A resync does not report the same carrier events again: device 1002 reaching its
    // threshold shows that a full reconcile ran after the first report.
    consume(&world, 1002, 85.0).await;
    touch(&api, "fleet", "two").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events(&world).await.iter().any(|e| {
        e["note"]
            .as_str()
            .is_some_and(|n| n.contains("device 1002"))
    }) {
        assert!(Instant::now() < deadline, "device 1002's threshold event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = events(&world).await;
    let mut reported: Vec<(String, bool)> = all
        .iter()
        .filter(|e| e["reason"].as_str().is_some_and(|r| r.starts_with("Quota")))
        .map(|e| {
            assert!(e["series"].is_null(), "reported once: {e}");
            (
                e["reason"].as_str().unwrap().to_owned(),
                e["note"].as_str().unwrap().contains("device 1001"),
            )
        })
        .collect();
    reported.sort();
    assert_eq!(
        reported,
        [
            ("QuotaThresholdReached".to_owned(), false),
            ("QuotaThresholdReached".to_owned(), true),
            ("QuotaUsedUp".to_owned(), true)
        ]
    );

    // Time passes the expiry at the carrier.
    world
        .simulator
        .advance(SignedDuration::from_hours(24 * 400));
    touch(&api, "fleet", "three").await;
    let expired = until(&api, "fleet", "EXPIRED", |q| {
        q.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.expired == 1000)
    })
    .await;
    let status = expired.status.unwrap();
    assert_eq!(status.earliest_expiry, None);
    assert!(status.problem_devices.iter().all(|p| p.reason == "Expired"));
}

#[tokio::test]
async fn mistakes_the_schema_cannot_catch_stall_with_the_field_and_the_fix() {
    let world = world("quota-mistakes", 20).await;
    // One case is a Hologram account on the simulator (loopback, not Hologram's official URL):
    // allowed explicitly, with the simulator's own.
    let (hologram, base) = (world.simulator.hologram_url(), world.simulator.base_url());
    let (_operator, _) = Operator::start_with(
        &world.kubeconfig,
        &[
            "--allowed-carrier-url",
            hologram.as_str(),
            "--allowed-carrier-url",
            base.as_str(),
        ],
        "operator",
    );
    let cases = [
        (
            "past",
            json!({"target": {"deviceIds": [1001]}, "expiry": {"at": "2020-01-01T00:00:00Z"}}),
            "InvalidExpiry",
            "expiry.at: 2020-01-01T00:00:00Z is already past",
        ),
        (
            "nothing",
            json!({"target": {"tags": ["no-such-tag"]}, "expiry": {"after": "30d"}}),
            "NoTargets",
            "target: tags no-such-tag select no device",
        ),
        (
            "nogroup",
            json!({"target": {"simGroupRef": {"name": "missing"}}, "expiry": {"after": "30d"}}),
            "SimGroupNotFound",
            "target.simGroupRef: SimGroup missing not found",
        ),
        (
            "hologram",
            json!({"carrierRef": {"name": "hologram"}, "target": {"deviceIds": [1001]}, "expiry": {"after": "30d"}}),
            "QuotaNotSupported",
            "CarrierAccount hologram cannot hold data quotas: hologram does not support data quotas (Hologram has no per-device quota API)",
        ),
    ];
    // The simulator's Hologram surface as a Hologram account: verified, but without quotas.
    let account: simfleet::api::CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "hologram"},
        "spec": {"provider": "hologram", "baseUrl": world.simulator.hologram_url(), "secretRef": {"name": "sim"}}
    }))
    .unwrap();
    Api::<simfleet::api::CarrierAccount>::namespaced(world.sandbox.client(), "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    for (name, partial, reason, message) in cases {
        let mut spec = json!({"carrierRef": {"name": "simulator"}, "volumeMB": 10});
        for (k, v) in partial.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let api = create_quota(&world, name, spec).await;
        let stalled = until(&api, name, "Stalled", |q| {
            q.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == reason)
            })
        })
        .await;
        let condition = stalled
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(condition.reason, reason);
        assert!(condition.message.contains(message), "{}", condition.message);
    }
    assert_eq!(
        quota_of(&world, 1001).await,
        Value::Null,
        "nothing was set for a refused spec"
    );
}

#[tokio::test]
async fn deleting_with_on_delete_remove_removes_the_quotas_and_orphan_leaves_them() {
    let world = world("quota-delete", 20).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_quota(&world, "remove", json!({"carrierRef": {"name": "simulator"}, "target": {"deviceIds": [1001, 1002]}, "volumeMB": 10, "expiry": {"after": "30d"}, "onDelete": "Remove"})).await;
    create_quota(&world, "orphan", json!({"carrierRef": {"name": "simulator"}, "target": {"deviceIds": [1003]}, "volumeMB": 10, "expiry": {"after": "30d"}})).await;
    until(&api, "remove", "Ready", quota_ready).await;
    until(&api, "orphan", "Ready", quota_ready).await;
    assert_eq!(quota_of(&world, 1001).await["volume"], 10.0);
    api.delete("remove", &Default::default()).await.unwrap();
    api.delete("orphan", &Default::default()).await.unwrap();
    until_empty(&api, "quotas").await;
    assert_eq!(quota_of(&world, 1001).await, Value::Null);
    assert_eq!(quota_of(&world, 1002).await, Value::Null);
    assert_eq!(quota_of(&world, 1003).await["volume"], 10.0);
}

/// The simulator's count of a method and route, any status.
fn calls(world: &World, method: &str, route: &str) -> u64 {
    world
        .simulator
        .state()
        .request_counts()
        .iter()
        .filter(|r| r.method == method && r.route == route)
        .map(|r| r.count)
        .sum()
}

#[tokio::test]
async fn between_resyncs_only_the_devices_named_by_quota_events_are_read_again() {
    let world = world("quota-steady", 1000).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_quota(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "target": {"tags": simfleet::simulator::fleet::SEED_TAGS}, "volumeMB": 100, "expiry": {"after": "30d"}})).await;
    until(&api, "fleet", "Ready", quota_ready).await;
    let reads_before = calls(&world, "GET", "/api/v1/endpoint/{id}/quota/data");
    let listings_before = calls(&world, "GET", "/api/v1/event");
    assert!(
        reads_before >= 1000,
        "the first pass read every device: {reads_before}"
    );

    // Device 1001 uses its quota up, and device 1002's quota is deleted in the portal.
    consume(&world, 1001, 100.0).await;
    let token = simfleet_testkit::simulator::emnify_token(&world.simulator).await;
    let deleted = simfleet_testkit::simulator::emnify(
        &world.simulator,
        reqwest::Method::DELETE,
        "/v1/endpoint/1002/quota/data",
        &token,
    )
    .send()
    .await
    .unwrap();
    assert!(deleted.status().is_success());
    touch(&api, "fleet", "changes").await;
    until(
        &api,
        "fleet",
        "used up seen, deleted quota set again",
        |q| {
            q.status
                .as_ref()
                .and_then(|s| s.counts.as_ref())
                .is_some_and(|c| c.exhausted == 1 && c.none == 0 && c.active == 999)
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while quota_of(&world, 1002).await.is_null() {
        assert!(Instant::now() < deadline, "device 1002 got its quota back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads = calls(&world, "GET", "/api/v1/endpoint/{id}/quota/data") - reads_before;
    let listings = calls(&world, "GET", "/api/v1/event") - listings_before;
    // The two changed devices (the audit's slice of a few seconds is nothing): not 1,000.
    assert!(
        (2..=6).contains(&reads),
        "read again: {reads} devices, organisation-wide listings: {listings}"
    );
    assert!(listings >= 1);
    assert_eq!(
        calls(&world, "GET", "/api/v1/endpoint/{id}/event"),
        0,
        "no per-device event scan"
    );
}

/// A DataQuota on a SimGroup follows the group: an edit of its selector gives the new SIMs'
/// devices the quota at once (not at the next resync), and once the group is deleted the
/// DataQuota targets nothing, so that another DataQuota that conflicted with it sets the
/// devices. (Found by the fleet model: the deleted group's DataQuota kept its claim, and the
/// other DataQuota's device kept a quota neither declared.)
#[tokio::test]
async fn a_quota_on_a_group_follows_its_selector_and_lets_go_when_the_group_is_deleted() {
    let world = world("quota-group", 20).await;
    let _operator = Operator::start(&world.kubeconfig);
    // Device 1001 has a quota of 5 MB from a DataQuota deleted with onDelete: Orphan.
    let api = create_quota(&world, "earlier", json!({"carrierRef": {"name": "simulator"}, "target": {"deviceIds": [1001]}, "volumeMB": 5, "expiry": {"after": "30d"}})).await;
    until(&api, "earlier", "Ready", quota_ready).await;
    api.delete("earlier", &Default::default()).await.unwrap();
    until_empty(&api, "quotas").await;
    let groups = create_group(&world, "g", json!({"carrierRef": {"name": "simulator"}, "state": "Active", "selector": {"deviceIds": [1002, 1003]}})).await;
    create_quota(&world, "by-group", json!({"carrierRef": {"name": "simulator"}, "target": {"simGroupRef": {"name": "g"}}, "volumeMB": 10, "expiry": {"after": "30d"}})).await;
    until(&api, "by-group", "Ready", quota_ready).await;
    assert_eq!(quota_of(&world, 1002).await["volume"], 10.0);
    // 1001 joins (its id is below those the generation has done), 1004 too (above them).
    groups
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"deviceIds": [1001, 1003, 1004]}}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for device in [1004, 1001] {
        while quota_of(&world, device).await["volume"] != 10.0 {
            assert!(
                Instant::now() < deadline,
                "the group's new SIM {device} has not the declared 10 MB 30 s after the edit: {}",
                quota_of(&world, device).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    create_quota(&world, "by-id", json!({"carrierRef": {"name": "simulator"}, "target": {"deviceIds": [1001]}, "volumeMB": 20, "expiry": {"after": "30d"}})).await;
    for name in ["by-group", "by-id"] {
        until(&api, name, "the conflict on 1001", |q| {
            q.status
                .as_ref()
                .and_then(|s| s.counts.as_ref())
                .is_some_and(|c| c.conflicting == 1)
        })
        .await;
    }
    assert_eq!(quota_of(&world, 1001).await["volume"], 10.0);
    groups.delete("g", &Default::default()).await.unwrap();
    let left = until(&api, "by-group", "targets nothing", |q| {
        q.status.as_ref().is_some_and(|s| {
            s.counts.as_ref().is_some_and(|c| c.targeted == 0)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
        })
    })
    .await;
    let stalled = left.status.unwrap().conditions;
    let stalled = stalled.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert!(
        stalled.message.contains("target.simGroupRef: SimGroup g"),
        "{stalled:?}"
    );
    until(&api, "by-id", "Ready", quota_ready).await;
    assert_eq!(quota_of(&world, 1001).await["volume"], 20.0);
    assert_eq!(
        quota_of(&world, 1004).await["volume"],
        10.0,
        "an Orphan DataQuota's quotas stay"
    );
}

/// Two DataQuotas that disagree, both there when the operator starts, reconcile at the same
/// time: the one that claimed its devices first is woken while its pass runs, and must still
/// look again (a wake used to be lost then: it said Ready, with no conflict, until the resync);
/// and neither sets a device before the other has claimed its own (after a start, a
/// DataQuota waits for its peers' claims). Found by the fleet model, after operator restarts.
#[tokio::test]
async fn data_quotas_that_disagree_when_the_operator_starts_both_report_the_conflict() {
    let world = world("quota-start-conflict", 400).await;
    let spec = |volume: u32| json!({"carrierRef": {"name": "simulator"}, "target": {"tags": ["pos-terminal"]}, "volumeMB": volume, "expiry": {"after": "30d"}});
    let api = create_quota(&world, "ten", spec(10)).await;
    create_quota(&world, "twenty", spec(20)).await;
    let _operator = Operator::start(&world.kubeconfig);
    for name in ["ten", "twenty"] {
        let quota = until(&api, name, "the conflict", |q| {
            q.status
                .as_ref()
                .and_then(|s| s.counts.as_ref())
                .is_some_and(|c| c.conflicting > 0)
        })
        .await;
        let counts = counts(&quota);
        assert_eq!(counts.conflicting, counts.targeted - counts.ineligible);
    }
    // Neither set a device before the other had claimed it.
    let tagged = simfleet_testkit::simulator::admin_get(
        &world.simulator,
        "/sims?tag=pos-terminal&limit=1000",
    )
    .await;
    let with_quota: Vec<&Value> = tagged["sims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["quota"].is_null())
        .collect();
    assert!(with_quota.is_empty(), "{with_quota:?}");
}

/// Issue 37, point 2: a DataQuota whose apply takes a while (400 devices, a carrier answering
/// in 15 ms, one request at a time) has conditions from its first reconcile, and they say how far it is:
/// `kubectl wait --for=condition=Reconciling` succeeds while it applies, with the devices left
/// and an estimate; then it is Ready. (It had no conditions at all until fully applied.)
#[tokio::test]
async fn a_long_apply_reports_how_far_it_is_in_its_conditions_from_the_start() {
    use simfleet::api::CarrierAccount;
    // A carrier that answers in 15 ms, one request at a time.
    let mut config = simfleet_testkit::simulator::live_config(400);
    config.faults = vec![serde_json::from_value(json!({"route": "*", "latencyMs": 15})).unwrap()];
    let world = world_with("quota-pace", config).await;
    Api::<CarrierAccount>::namespaced(world.sandbox.client(), "default")
        .patch(
            "simulator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"concurrency": 1}})),
        )
        .await
        .unwrap();
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_quota(&world, "paced", json!({"carrierRef": {"name": "simulator"}, "target": {"tags": simfleet::simulator::fleet::SEED_TAGS}, "volumeMB": 50, "expiry": {"after": "30d"}})).await;
    let condition = |q: &DataQuota, type_: &str| {
        q.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_).cloned())
    };
    let first = until(&api, "paced", "any condition", |q| {
        condition(q, "Ready").is_some()
    })
    .await;
    // Its first conditions: the account being verified, or the apply begun; never a Warning.
    let ready = condition(&first, "Ready").unwrap();
    assert!(
        ready.status == "False" && ["Progressing", "Applying"].contains(&ready.reason.as_str()),
        "{ready:?}"
    );
    assert_eq!(
        condition(&first, "Stalled").map(|c| c.status).as_deref(),
        Some("False")
    );
    let midway = until(&api, "paced", "progress with an estimate", |q| {
        condition(q, "Reconciling").is_some_and(|c| {
            c.status == "True"
                && c.reason == "Applying"
                && c.message.contains(" of 400 devices done")
                && !c.message.contains(": 0 of 400")
                && c.message.contains("at the pace so far")
        })
    })
    .await;
    let message = condition(&midway, "Reconciling").unwrap().message;
    assert!(message.starts_with("applying generation 1: "), "{message}");
    assert_eq!(
        condition(&midway, "Stalled").map(|c| c.status).as_deref(),
        Some("False")
    );
    let done = until(&api, "paced", "Ready", quota_ready).await;
    assert_eq!(counts(&done).active, 400);
    assert_eq!(
        condition(&done, "Reconciling").map(|c| c.reason).as_deref(),
        Some("Idle")
    );
}

/// Issue 37, point 3: a device that uses its quota up reaches status within the account's
/// quota-event poll (here 1 s; a minute by default), without anyone touching the DataQuota,
/// reading only that device; it was up to the 20-minute resync. The group stays Ready (its
/// quotas are as declared; a used-up quota is the quota working) and Ready's message, the
/// sample and a Warning event say which device is blocked.
#[tokio::test]
async fn a_used_up_quota_reaches_status_within_the_event_poll_and_ready_says_so() {
    let world = world("quota-used-up", 50).await;
    let (_operator, _) =
        Operator::start_with(&world.kubeconfig, &["--quota-event-poll", "1s"], "operator");
    let api = create_quota(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "target": {"tags": simfleet::simulator::fleet::SEED_TAGS}, "volumeMB": 100, "expiry": {"after": "30d"}})).await;
    until(&api, "fleet", "Ready", quota_ready).await;
    let reads_before = quota_reads(&world).await;
    consume(&world, 1007, 100.0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let exhausted = loop {
        let quota = api.get("fleet").await.unwrap();
        if counts(&quota).exhausted == 1 {
            break quota;
        }
        assert!(
            Instant::now() < deadline,
            "not in status within 20 s: {:?}",
            quota.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = exhausted.status.clone().unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{ready:?}");
    assert!(
        ready.message.contains("1 exhausted: its data is blocked"),
        "{}",
        ready.message
    );
    assert!(
        status
            .problem_devices
            .iter()
            .any(|p| p.device_id == 1007 && p.reason == "Exhausted"),
        "{:?}",
        status.problem_devices
    );
    assert!(
        quota_reads(&world).await - reads_before <= 3,
        "only the device the event names is read again"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !events(&world)
        .await
        .iter()
        .any(|e| e["reason"] == "QuotaUsedUp" && e["type"] == "Warning")
    {
        assert!(Instant::now() < deadline, "no QuotaUsedUp event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Quota reads the simulator answered (`GET .../quota/data`).
async fn quota_reads(world: &World) -> u64 {
    world
        .simulator
        .state()
        .request_counts()
        .iter()
        .filter(|r| r.method == "GET" && r.route.ends_with("quota/data"))
        .map(|r| r.count)
        .sum()
}
