//! The fleet model's random histories on the sandbox (the harness: tests/common/fleet_model;
//! a history on kube-apiserver runs in tests/real_cluster).
//!
//! - `histories_on_the_sandbox` runs `SIMFLEET_MODEL_HISTORIES` histories (default 3) of
//!   `SIMFLEET_MODEL_STEPS` events (default 12) from `SIMFLEET_MODEL_SEED` (default: a fixed
//!   one, so CI is reproducible) on; the long run is the same test with larger numbers
//!   (docs/architecture.md, "How to test").
//! - Each seed that found a bug is a named test below.

mod common;

use std::time::Instant;

use common::e2e::E2e;
use common::fleet_model::model::{Event, Model, QuotaTarget, Selector, Sim, State, Want};
use common::fleet_model::{fleet_config, history, replay};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `SIMFLEET_MODEL_HISTORIES` histories (default 3) from `SIMFLEET_MODEL_SEED` on, each of
/// `SIMFLEET_MODEL_STEPS` events (default 12), each on a fresh sandbox and simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_on_the_sandbox() {
    let first = env_number("SIMFLEET_MODEL_SEED", 20_261_207);
    let histories = env_number("SIMFLEET_MODEL_HISTORIES", 3);
    let steps = env_number("SIMFLEET_MODEL_STEPS", 12) as usize;
    let started = Instant::now();
    for seed in first..first + histories {
        let e2e = E2e::sandbox(&format!("model-{seed}"), fleet_config()).await;
        if let Err(failure) = history(e2e, seed, steps).await {
            panic!("{failure}");
        }
    }
    eprintln!(
        "{histories} histories of {steps} events from seed {first}: no difference from the model ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

/// Seed 6 (of the first generator) found two agreeing groups, both woken when a conflict
/// ended, sending the same SIM at once (the carrier refused the second: its SIM was locked by
/// the first); now a SIM is reserved in the process before it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_6_two_groups_freed_from_a_conflict_send_a_sim_once() {
    use Selector::{Devices, Iccids, Tag};
    let create = |namespace, name: &str, want, selector, restore| Event::Create {
        namespace,
        name: name.into(),
        want,
        selector,
        restore,
        guard: None,
    };
    let name = |n: &str| n.to_owned();
    let events = vec![
        create(
            "ns-a",
            "g1",
            Want::Paused,
            Devices(vec![1011, 1015, 1023]),
            true,
        ),
        create(
            "ns-b",
            "g2",
            Want::Active,
            Iccids(vec![
                "8944500000000000010".into(),
                "8944500000000000039".into(),
            ]),
            true,
        ),
        create("ns-b", "g3", Want::Paused, Devices(vec![1007, 1020]), false),
        Event::Drift {
            device: 1001,
            to: State::Live,
        },
        Event::Delete { name: name("g1") },
        create("ns-a", "g4", Want::Paused, Devices(vec![1008, 1038]), true),
        create("ns-b", "g5", Want::Paused, Tag("pos-terminal".into()), true),
        create("ns-b", "g6", Want::Active, Tag("cold-chain".into()), true),
        create("ns-b", "g7", Want::Paused, Tag("cold-chain".into()), true),
        Event::Flip { name: name("g2") },
        Event::Delete { name: name("g7") },
        Event::Flip { name: name("g6") },
        Event::Delete { name: name("g6") },
        create("ns-a", "g8", Want::Paused, Devices(vec![1008, 1037]), false),
        Event::Kill,
        Event::DeleteNamespace { namespace: "ns-b" },
    ];
    let e2e = E2e::sandbox("model-seed-6", fleet_config()).await;
    if let Err(failure) = replay(
        e2e,
        "seed_6_two_groups_freed_from_a_conflict_send_a_sim_once",
        events,
    )
    .await
    {
        panic!("{failure}");
    }
}

/// Replays a history a seed found, event by event, on a fresh sandbox.
async fn replay_found(name: &str, events: Vec<Event>) {
    let e2e = E2e::sandbox(&format!("model-{name}"), fleet_config()).await;
    if let Err(failure) = replay(e2e, name, events).await {
        panic!("{failure}");
    }
}

/// Seed 1 (with the first DataQuota events) found a DataQuota on a deleted SimGroup keeping its claim
/// and counts, so another DataQuota's device kept a quota neither declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_1_a_quota_on_a_deleted_group_lets_its_devices_go() {
    replay_found(
        "seed_1_a_quota_on_a_deleted_group_lets_its_devices_go",
        vec![
            Event::Drift {
                device: 1010,
                to: State::Live,
            },
            Event::Create {
                namespace: "ns-b",
                name: "g1".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000003".into(),
                    "8944500000000000007".into(),
                ]),
                restore: false,
                guard: None,
            },
            Event::Delete { name: "g1".into() },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q2".into(),
                target: QuotaTarget::Tag("pos-terminal".into()),
                volume: 20,
                remove: true,
            },
            Event::Create {
                namespace: "ns-b",
                name: "g3".into(),
                want: Want::Active,
                selector: Selector::Tag("cold-chain".into()),
                restore: false,
                guard: Some(2),
            },
            Event::Flip { name: "g3".into() },
            Event::Create {
                namespace: "ns-a",
                name: "g4".into(),
                want: Want::Active,
                selector: Selector::Iccids(vec!["8944500000000000011".into()]),
                restore: true,
                guard: None,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g5".into(),
                want: Want::Active,
                selector: Selector::Tag("cold-chain".into()),
                restore: false,
                guard: Some(2),
            },
            Event::Flip { name: "g4".into() },
            Event::EditQuota {
                name: "q2".into(),
                volume: 30,
            },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q6".into(),
                target: QuotaTarget::Group("g3".into()),
                volume: 10,
                remove: false,
            },
            Event::Flip { name: "g3".into() },
            Event::Flip { name: "g5".into() },
            Event::Flip { name: "g5".into() },
            Event::Create {
                namespace: "ns-a",
                name: "g7".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000018".into(),
                    "8944500000000000039".into(),
                ]),
                restore: false,
                guard: None,
            },
            Event::DeleteQuota { name: "q2".into() },
            Event::Drift {
                device: 1030,
                to: State::Live,
            },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q8".into(),
                target: QuotaTarget::Devices(vec![1016, 1027]),
                volume: 20,
                remove: true,
            },
            Event::Flip { name: "g4".into() },
            Event::Approve { name: "g5".into() },
            Event::Delete { name: "g3".into() },
        ],
    )
    .await;
}

/// Seed 201 found a group acting while its namespace was deleted: its conflicting peer went first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_201_a_group_sends_nothing_while_its_namespace_is_deleted() {
    replay_found(
        "seed_201_a_group_sends_nothing_while_its_namespace_is_deleted",
        vec![
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q1".into(),
                target: QuotaTarget::Devices(vec![1003]),
                volume: 10,
                remove: false,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g2".into(),
                want: Want::Paused,
                selector: Selector::Tag("pos-terminal".into()),
                restore: false,
                guard: None,
            },
            Event::Kill,
            Event::Flip { name: "g2".into() },
            Event::Create {
                namespace: "ns-a",
                name: "g3".into(),
                want: Want::Active,
                selector: Selector::Devices(vec![1002, 1028]),
                restore: false,
                guard: None,
            },
            Event::Flip { name: "g2".into() },
            Event::Drift {
                device: 1006,
                to: State::PausedUser,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g4".into(),
                want: Want::Active,
                selector: Selector::Iccids(vec!["8944500000000000028".into()]),
                restore: true,
                guard: None,
            },
            Event::Flip { name: "g3".into() },
            Event::Create {
                namespace: "ns-a",
                name: "g5".into(),
                want: Want::Paused,
                selector: Selector::Tag("fleet-tracker".into()),
                restore: true,
                guard: Some(2),
            },
            Event::EditQuota {
                name: "q1".into(),
                volume: 10,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g6".into(),
                want: Want::Paused,
                selector: Selector::Devices(vec![1002, 1034]),
                restore: true,
                guard: Some(2),
            },
            Event::Drift {
                device: 1011,
                to: State::PausedUser,
            },
            Event::Flip { name: "g5".into() },
            Event::Kill,
            Event::Drift {
                device: 1028,
                to: State::Live,
            },
            Event::Flip { name: "g4".into() },
            Event::Create {
                namespace: "ns-a",
                name: "g7".into(),
                want: Want::Active,
                selector: Selector::Iccids(vec![
                    "8944500000000000024".into(),
                    "8944500000000000025".into(),
                ]),
                restore: true,
                guard: Some(2),
            },
            Event::Drift {
                device: 1038,
                to: State::PausedUser,
            },
            Event::DeleteNamespace { namespace: "ns-b" },
            Event::Select {
                name: "g2".into(),
                selector: Selector::Tag("smart-meter".into()),
            },
            Event::CreateQuota {
                namespace: "ns-a",
                name: "q8".into(),
                target: QuotaTarget::Group("g6".into()),
                volume: 10,
                remove: true,
            },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q9".into(),
                target: QuotaTarget::Devices(vec![1010, 1014]),
                volume: 20,
                remove: true,
            },
            Event::Flip { name: "g4".into() },
            Event::DeleteNamespace { namespace: "ns-a" },
        ],
    )
    .await;
}

/// Seed 303 found a DataQuota woken while its pass ran losing the wake-up (no conflict reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_303_a_data_quota_woken_during_its_pass_looks_again() {
    replay_found(
        "seed_303_a_data_quota_woken_during_its_pass_looks_again",
        vec![
            Event::Drift {
                device: 1030,
                to: State::PausedUser,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g1".into(),
                want: Want::Active,
                selector: Selector::Iccids(vec![
                    "8944500000000000009".into(),
                    "8944500000000000015".into(),
                    "8944500000000000028".into(),
                ]),
                restore: false,
                guard: None,
            },
            Event::Kill,
            Event::CreateQuota {
                namespace: "ns-a",
                name: "q2".into(),
                target: QuotaTarget::Devices(vec![1002, 1034, 1039]),
                volume: 20,
                remove: false,
            },
            Event::Drift {
                device: 1011,
                to: State::PausedUser,
            },
            Event::Select {
                name: "g1".into(),
                selector: Selector::Devices(vec![1016]),
            },
            Event::Create {
                namespace: "ns-b",
                name: "g3".into(),
                want: Want::Paused,
                selector: Selector::Devices(vec![1001, 1029]),
                restore: false,
                guard: Some(2),
            },
            Event::Approve { name: "g3".into() },
            Event::Flip { name: "g3".into() },
            Event::CreateQuota {
                namespace: "ns-a",
                name: "q4".into(),
                target: QuotaTarget::Tag("pos-terminal".into()),
                volume: 10,
                remove: true,
            },
            Event::Delete { name: "g1".into() },
            Event::Flip { name: "g3".into() },
            Event::Flip { name: "g3".into() },
            Event::Flip { name: "g3".into() },
            Event::Kill,
            Event::Select {
                name: "g3".into(),
                selector: Selector::Iccids(vec!["8944500000000000037".into()]),
            },
        ],
    )
    .await;
}

/// Seed 404 found a group edited while its account was broken claiming SIMs through the members it
/// had found for its old selector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_404_members_found_for_an_old_selector_claim_nothing() {
    replay_found(
        "seed_404_members_found_for_an_old_selector_claim_nothing",
        vec![
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q1".into(),
                target: QuotaTarget::Tag("smart-meter".into()),
                volume: 10,
                remove: true,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g2".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000016".into(),
                    "8944500000000000036".into(),
                ]),
                restore: false,
                guard: Some(2),
            },
            Event::Select {
                name: "g2".into(),
                selector: Selector::Tag("fleet-tracker".into()),
            },
            Event::Drift {
                device: 1021,
                to: State::Live,
            },
            Event::Select {
                name: "g2".into(),
                selector: Selector::Tag("cold-chain".into()),
            },
            Event::Create {
                namespace: "ns-b",
                name: "g3".into(),
                want: Want::Paused,
                selector: Selector::Tag("smart-meter".into()),
                restore: false,
                guard: None,
            },
            Event::Create {
                namespace: "ns-b",
                name: "g4".into(),
                want: Want::Paused,
                selector: Selector::Devices(vec![1032]),
                restore: true,
                guard: Some(2),
            },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q5".into(),
                target: QuotaTarget::Group("g4".into()),
                volume: 20,
                remove: false,
            },
            Event::Create {
                namespace: "ns-b",
                name: "g6".into(),
                want: Want::Paused,
                selector: Selector::Devices(vec![1001, 1023, 1038]),
                restore: false,
                guard: None,
            },
            Event::Select {
                name: "g2".into(),
                selector: Selector::Tag("pilot".into()),
            },
            Event::Create {
                namespace: "ns-b",
                name: "g7".into(),
                want: Want::Active,
                selector: Selector::Tag("fleet-tracker".into()),
                restore: true,
                guard: Some(2),
            },
            Event::Create {
                namespace: "ns-b",
                name: "g8".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec!["8944500000000000031".into()]),
                restore: true,
                guard: Some(2),
            },
            Event::BreakSecret { namespace: "ns-b" },
            Event::Select {
                name: "g7".into(),
                selector: Selector::Iccids(vec!["8944500000000000032".into()]),
            },
        ],
    )
    .await;
}

/// Seed 2007 found DataQuotas that disagree setting devices after a start before the other had
/// claimed them (and, in the model, claims the operator cannot know).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_2007_data_quotas_wait_for_each_others_claims_after_a_start() {
    replay_found(
        "seed_2007_data_quotas_wait_for_each_others_claims_after_a_start",
        vec![
            Event::Drift {
                device: 1024,
                to: State::Live,
            },
            Event::Create {
                namespace: "ns-b",
                name: "g1".into(),
                want: Want::Paused,
                selector: Selector::Tag("pilot".into()),
                restore: false,
                guard: None,
            },
            Event::Create {
                namespace: "ns-a",
                name: "g2".into(),
                want: Want::Paused,
                selector: Selector::Tag("pilot".into()),
                restore: true,
                guard: Some(2),
            },
            Event::Approve { name: "g1".into() },
            Event::Delete { name: "g1".into() },
            Event::CreateQuota {
                namespace: "ns-a",
                name: "q3".into(),
                target: QuotaTarget::Group("g2".into()),
                volume: 10,
                remove: true,
            },
            Event::Delete { name: "g2".into() },
            Event::Create {
                namespace: "ns-b",
                name: "g4".into(),
                want: Want::Active,
                selector: Selector::Iccids(vec![
                    "8944500000000000013".into(),
                    "8944500000000000019".into(),
                    "8944500000000000034".into(),
                ]),
                restore: false,
                guard: Some(2),
            },
            Event::Drift {
                device: 1014,
                to: State::PausedUser,
            },
            Event::Drift {
                device: 1017,
                to: State::Live,
            },
            Event::Select {
                name: "g4".into(),
                selector: Selector::Iccids(vec!["8944500000000000003".into()]),
            },
            Event::Flip { name: "g4".into() },
            Event::BreakSecret { namespace: "ns-a" },
            Event::Create {
                namespace: "ns-b",
                name: "g5".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000005".into(),
                    "8944500000000000017".into(),
                ]),
                restore: false,
                guard: None,
            },
            Event::SystemPause { device: 1003 },
            Event::Select {
                name: "g4".into(),
                selector: Selector::Devices(vec![1008, 1015, 1030]),
            },
            Event::Kill,
            Event::ApproveAhead { name: "g4".into() },
            Event::Delete { name: "g4".into() },
            Event::CreateQuota {
                namespace: "ns-a",
                name: "q6".into(),
                target: QuotaTarget::Tag("smart-meter".into()),
                volume: 10,
                remove: false,
            },
            Event::Create {
                namespace: "ns-b",
                name: "g7".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000006".into(),
                    "8944500000000000031".into(),
                ]),
                restore: false,
                guard: Some(2),
            },
            Event::Approve { name: "g7".into() },
            Event::Create {
                namespace: "ns-a",
                name: "g8".into(),
                want: Want::Paused,
                selector: Selector::Tag("cold-chain".into()),
                restore: true,
                guard: None,
            },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q9".into(),
                target: QuotaTarget::Devices(vec![1014, 1015, 1039]),
                volume: 20,
                remove: false,
            },
        ],
    )
    .await;
}

/// Seed 6005 found a device that joined a DataQuota's target after its generation was applied
/// keeping its old volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_6005_a_device_joining_a_quotas_target_gets_the_declared_quota() {
    replay_found(
        "seed_6005_a_device_joining_a_quotas_target_gets_the_declared_quota",
        vec![
            Event::Create {
                namespace: "ns-a",
                name: "g1".into(),
                want: Want::Active,
                selector: Selector::Tag("pilot".into()),
                restore: true,
                guard: None,
            },
            Event::Flip { name: "g1".into() },
            Event::Select {
                name: "g1".into(),
                selector: Selector::Iccids(vec!["8944500000000000023".into()]),
            },
            Event::Kill,
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q2".into(),
                target: QuotaTarget::Tag("cold-chain".into()),
                volume: 10,
                remove: false,
            },
            Event::Kill,
            Event::DeleteQuota { name: "q2".into() },
            Event::Select {
                name: "g1".into(),
                selector: Selector::Tag("vending".into()),
            },
            Event::Create {
                namespace: "ns-b",
                name: "g3".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000015".into(),
                    "8944500000000000020".into(),
                ]),
                restore: true,
                guard: None,
            },
            Event::BreakSecret { namespace: "ns-a" },
            Event::CreateQuota {
                namespace: "ns-b",
                name: "q4".into(),
                target: QuotaTarget::Group("g3".into()),
                volume: 10,
                remove: true,
            },
            Event::EditQuota {
                name: "q4".into(),
                volume: 20,
            },
            Event::EditQuota {
                name: "q4".into(),
                volume: 20,
            },
            Event::Select {
                name: "g1".into(),
                selector: Selector::Devices(vec![1034, 1035]),
            },
            Event::Create {
                namespace: "ns-b",
                name: "g5".into(),
                want: Want::Paused,
                selector: Selector::Iccids(vec![
                    "8944500000000000030".into(),
                    "8944500000000000031".into(),
                    "8944500000000000034".into(),
                ]),
                restore: false,
                guard: None,
            },
            Event::Select {
                name: "g5".into(),
                selector: Selector::Devices(vec![1016]),
            },
            Event::Approve { name: "g3".into() },
            Event::Delete { name: "g5".into() },
            Event::CreateQuota {
                namespace: "ns-a",
                name: "q6".into(),
                target: QuotaTarget::Group("g1".into()),
                volume: 10,
                remove: false,
            },
            Event::Select {
                name: "g3".into(),
                selector: Selector::Iccids(vec![
                    "8944500000000000005".into(),
                    "8944500000000000017".into(),
                ]),
            },
            Event::Select {
                name: "g3".into(),
                selector: Selector::Tag("cold-chain".into()),
            },
        ],
    )
    .await;
}

// The model itself, on cases small enough to check by hand.

#[test]
fn a_guarded_change_waits_for_an_approval_of_its_generation() {
    let mut model = Model::new(fleet());
    model.apply(&Event::Create {
        namespace: "ns-a",
        name: "g".into(),
        want: Want::Paused,
        selector: Selector::Devices(vec![1001, 1002, 1003]),
        restore: false,
        guard: Some(2),
    });
    assert_eq!(model.settle(), 0);
    assert!(model.group("g").unwrap().held);
    model.apply(&Event::ApproveAhead { name: "g".into() });
    assert_eq!(model.settle(), 0, "an approval ahead approves nothing");
    model.apply(&Event::Approve { name: "g".into() });
    assert_eq!(model.settle(), 3);
    assert!(!model.group("g").unwrap().held);
    model.apply(&Event::Flip { name: "g".into() });
    assert_eq!(model.settle(), 0, "the next generation asks again");
}

fn fleet() -> Vec<Sim> {
    (0..4)
        .map(|i| Sim {
            device: 1001 + i,
            iccid: format!("89{i}"),
            tags: vec![if i < 2 { "a".into() } else { "b".into() }],
            state: State::Live,
            quota: None,
        })
        .collect()
}

fn create(name: &str, want: Want, selector: Selector, restore: bool) -> Event {
    Event::Create {
        namespace: "ns-a",
        name: name.into(),
        want,
        selector,
        restore,
        guard: None,
    }
}

#[test]
fn a_restore_returns_what_the_group_changed_even_after_a_selector_edit() {
    let mut model = Model::new(fleet());
    model.apply(&create("g", Want::Paused, Selector::Tag("a".into()), true));
    assert_eq!(model.settle(), 2);
    model.apply(&Event::Select {
        name: "g".into(),
        selector: Selector::Devices(vec![1001]),
    });
    model.settle();
    model.apply(&Event::Delete { name: "g".into() });
    assert_eq!(model.settle(), 2);
    assert!(model.sims.iter().all(|s| s.state == State::Live));
}

#[test]
fn disagreeing_groups_leave_the_sim_and_both_count_it() {
    let mut model = Model::new(fleet());
    model.apply(&create(
        "tag",
        Want::Active,
        Selector::Tag("a".into()),
        false,
    ));
    model.settle();
    model.apply(&create(
        "ids",
        Want::Paused,
        Selector::Iccids(vec!["890".into()]),
        false,
    ));
    assert_eq!(model.settle(), 0);
    assert_eq!(model.sims[0].state, State::Live);
    assert_eq!(model.counts(model.group("tag").unwrap()), (2, 1));
    assert_eq!(model.counts(model.group("ids").unwrap()), (1, 1));
}

fn quota(name: &str, target: QuotaTarget, volume: u32, remove: bool) -> Event {
    Event::CreateQuota {
        namespace: "ns-a",
        name: name.into(),
        target,
        volume,
        remove,
    }
}

#[test]
fn disagreeing_data_quotas_leave_the_quota_and_both_count_it_until_one_goes() {
    let mut model = Model::new(fleet());
    model.apply(&quota("tag", QuotaTarget::Tag("a".into()), 10, true));
    model.settle();
    assert_eq!(model.sims[0].quota, Some(10));
    model.apply(&quota(
        "ids",
        QuotaTarget::Devices(vec![1001, 1003]),
        20,
        false,
    ));
    model.settle();
    assert_eq!(
        model.sims.iter().map(|s| s.quota).collect::<Vec<_>>(),
        [Some(10), Some(10), Some(20), None],
        "1001 stays as it was"
    );
    assert_eq!(model.quota_counts(model.quota("tag").unwrap()), (2, 1));
    assert_eq!(model.quota_counts(model.quota("ids").unwrap()), (2, 1));
    model.apply(&Event::DeleteQuota { name: "tag".into() });
    model.settle();
    assert_eq!(
        model.sims[0].quota,
        Some(20),
        "the conflict ended: ids sets it"
    );
    assert_eq!(model.sims[1].quota, None, "removed: tag set it alone");
}

#[test]
fn a_removed_data_quota_leaves_what_an_agreeing_one_may_have_set() {
    let mut model = Model::new(fleet());
    model.apply(&quota(
        "one",
        QuotaTarget::Devices(vec![1001, 1002]),
        10,
        true,
    ));
    model.apply(&quota("two", QuotaTarget::Devices(vec![1002]), 10, false));
    model.settle();
    model.apply(&Event::DeleteQuota { name: "two".into() });
    model.settle();
    model.apply(&Event::DeleteQuota { name: "one".into() });
    model.settle();
    assert_eq!(model.sims[0].quota, None);
    assert!(model.free_quotas.contains(&1002), "either may have set it");
}

#[test]
fn a_data_quota_on_a_group_targets_its_selection_while_the_group_lives() {
    let mut model = Model::new(fleet());
    model.apply(&create("g", Want::Paused, Selector::Tag("b".into()), false));
    model.apply(&quota("q", QuotaTarget::Group("g".into()), 10, false));
    model.settle();
    assert_eq!(model.quota_counts(model.quota("q").unwrap()), (2, 0));
    assert_eq!(model.sims[2].quota, Some(10));
    model.apply(&Event::Delete { name: "g".into() });
    model.settle();
    assert_eq!(model.quota_counts(model.quota("q").unwrap()), (0, 0));
    assert_eq!(model.sims[2].quota, Some(10), "an Orphan quota stays");
}

#[test]
fn a_group_whose_secret_is_broken_changes_nothing_and_its_claim_still_stands() {
    let mut model = Model::new(fleet());
    model.apply(&Event::BreakSecret { namespace: "ns-a" });
    model.apply(&create(
        "broken",
        Want::Paused,
        Selector::Tag("a".into()),
        true,
    ));
    assert_eq!(model.settle(), 0);
    model.apply(&Event::Create {
        namespace: "ns-b",
        name: "other".into(),
        want: Want::Active,
        selector: Selector::Devices(vec![1001]),
        restore: false,
        guard: None,
    });
    model.settle();
    assert_eq!(model.counts(model.group("other").unwrap()), (1, 1));
    model.apply(&Event::RepairSecret { namespace: "ns-a" });
    assert_eq!(model.settle(), 1, "1002 only: 1001 is in conflict");
    model.apply(&Event::Delete {
        name: "other".into(),
    });
    model.settle();
    model.apply(&Event::Delete {
        name: "broken".into(),
    });
    model.settle();
    assert_eq!(
        model.sims[1].state,
        State::Live,
        "its first claim was recorded when it could send it"
    );
    assert!(
        model.free.contains(&1001),
        "changed after a conflict ended: recorded or not, as the operator decides"
    );
}

#[test]
fn a_claim_unread_since_a_restart_leaves_the_device_to_either_outcome() {
    let mut model = Model::new(fleet());
    model.apply(&Event::BreakSecret { namespace: "ns-a" });
    model.apply(&Event::Kill);
    model.apply(&quota("broken", QuotaTarget::Tag("a".into()), 10, false));
    model.apply(&Event::CreateQuota {
        namespace: "ns-b",
        name: "working".into(),
        target: QuotaTarget::Devices(vec![1001, 1003]),
        volume: 20,
        remove: false,
    });
    model.settle();
    assert!(
        model.free_quotas.contains(&1001),
        "the operator cannot know broken's claim"
    );
    assert_eq!(model.sims[2].quota, Some(20), "1003 is working's alone");
    assert!(model.quota_uncertain(model.quota("working").unwrap()));
    model.apply(&Event::RepairSecret { namespace: "ns-a" });
    assert!(model.unread.is_empty());
}

/// The long run docs/architecture.md gives is this test with the variables it reads.
#[test]
fn the_documented_long_run_names_this_test_and_its_variables() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md"))
            .unwrap();
    let command = page
        .split('`')
        .find(|part| part.contains("SIMFLEET_MODEL_HISTORIES="))
        .expect("the long run's command");
    for word in [
        "SIMFLEET_MODEL_SEED=",
        "SIMFLEET_MODEL_HISTORIES=",
        "SIMFLEET_MODEL_STEPS=",
        "./scripts/test --test fleet_model histories_on_the_sandbox",
    ] {
        assert!(command.contains(word), "{command}: {word}");
    }
    let source = include_str!("fleet_model.rs");
    for variable in [
        "SIMFLEET_MODEL_SEED",
        "SIMFLEET_MODEL_HISTORIES",
        "SIMFLEET_MODEL_STEPS",
    ] {
        assert!(
            source.contains(&format!("env_number(\"{variable}\"")),
            "{variable}"
        );
    }
}
