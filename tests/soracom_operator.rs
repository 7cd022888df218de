//! A Soracom SimGroup as a user runs it: `simfleet run` (a child process) against the sandbox
//! API and the simulator's Soracom surface.

#[path = "common/mod.rs"]
mod common;

use common::operator::*;
use simfleet_testkit::world::*;

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;
use simfleet::api::{CarrierAccount, SimGroup};
use simfleet::simulator::{SimulatorConfig, SoracomOptions};

/// A fleet file of `n` SIMs, all tagged `fleet=north`; `problems` of them (spread through the
/// fleet) deactivated or paused by the system, as a real fleet has them.
fn fleet_file_with(n: usize, problems: usize) -> std::path::PathBuf {
    let mut yaml = String::from("sims:\n");
    let every = n.checked_div(problems).unwrap_or(usize::MAX);
    for i in 0..n {
        let state = match i.checked_rem(every) {
            Some(r) if r == every / 2 && (i / every).is_multiple_of(2) => "DEAD",
            Some(r) if r == every / 2 => "PAUSED-SYS",
            _ => "LIVE",
        };
        yaml.push_str(&format!(
            "  - {{iccid: \"{}\", tags: [fleet=north], state: {state}}}\n",
            8_944_500_000_000_000_001u64 + i as u64
        ));
    }
    // One file per size: the tests of this file run at once.
    let path = std::env::temp_dir().join(format!(
        "simfleet-soracom-e2e-{n}-{problems}-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn fleet_file(n: usize) -> std::path::PathBuf {
    fleet_file_with(n, 0)
}

/// A world of `sims` Soracom SIMs tagged `fleet=north` (10,000 tasks take 10 s of the
/// simulator's manual clock), with the Soracom CarrierAccount.
async fn soracom_world(name: &str, sims: usize) -> World {
    soracom_world_from(name, sims, fleet_file(sims)).await
}

async fn soracom_world_from(name: &str, sims: usize, fleet: std::path::PathBuf) -> World {
    let config = SimulatorConfig {
        fleet_file: Some(fleet),
        soracom: SoracomOptions {
            task_time: SignedDuration::from_millis(1),
            ..SoracomOptions::default()
        },
        ..simfleet_testkit::simulator::live_config(sims)
    };
    let world = world_with(name, config).await;
    soracom_account(&world).await;
    world
}

/// `simfleet run`, allowed to send credentials to the simulator's Soracom surface.
fn start_operator(world: &World) -> Operator {
    let allowed = format!("--allowed-carrier-url={}", world.simulator.soracom_url());
    Operator::start_with(&world.kubeconfig, &[allowed.as_str()], "operator").0
}

async fn soracom_account(world: &World) {
    let client = world.sandbox.client();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "soracom-key"}, "stringData": {"authKey": "keyId-simulator:secret-simulator"}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "soracom"},
        "spec": {"provider": "soracom", "baseUrl": world.simulator.soracom_url(), "secretRef": {"name": "soracom-key"}, "rateLimit": {"requestsPerSecond": 1000, "burst": 1000}}
    }))
    .unwrap();
    Api::<CarrierAccount>::namespaced(client, "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
}

fn jobs_of(group: &SimGroup) -> Vec<String> {
    group
        .status
        .as_ref()
        .map(|s| s.pending_actions.iter().map(|a| a.id.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_25000_sim_group_pauses_through_3_jobs_one_at_a_time_and_survives_kill_9_mid_job() {
    const SIMS: usize = 25_000;
    let world = soracom_world("soracom", SIMS).await;
    let start = || start_operator(&world);
    let operator = start();
    let api = create_group(
        &world,
        "fleet",
        json!({"carrierRef": {"name": "soracom"}, "state": "Paused", "selector": {"tags": ["fleet=north"]}}),
    )
    .await;

    // The first job: 10,000 SIMs, and nothing else while it runs.
    let first = until(&api, "fleet", "the first job", |g| jobs_of(g).len() == 1).await;
    let job = jobs_of(&first)[0].clone();
    assert_eq!(
        first.status.as_ref().unwrap().pending_actions[0].sims,
        10_000
    );
    world.simulator.advance(SignedDuration::from_secs(4));
    // Its progress, from the job's status and summary.
    until(&api, "fleet", "the job's progress", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.pending_actions.iter().any(|a| {
                a.carrier_status
                    .as_deref()
                    .is_some_and(|c| c.starts_with("running: 4000 done"))
            })
        })
    })
    .await;

    // kill -9 mid-job: the new process neither resubmits the job nor loses it.
    drop(operator);
    let jobs_before = admin_get_jobs(&world).await;
    assert_eq!(jobs_before, 1);
    let _operator = start();
    let still = until(
        &api,
        "fleet",
        "the job still pending after the restart",
        |g| {
            g.status.as_ref().is_some_and(|s| {
                s.pending_actions.iter().any(|a| {
                    a.id == job
                        && a.carrier_status
                            .as_deref()
                            .is_some_and(|c| c.starts_with("running"))
                })
            }) && g.metadata.resource_version.is_some()
        },
    )
    .await;
    assert_eq!(jobs_of(&still), vec![job.clone()]);
    assert_eq!(
        admin_get_jobs(&world).await,
        1,
        "no job was created while one runs"
    );

    // Each job finishes; the next goes; Ready after the third.
    let mut seen = vec![job];
    while seen.len() < 3 {
        world.simulator.advance(SignedDuration::from_secs(10));
        let next = until(&api, "fleet", "the next job", |g| {
            jobs_of(g).iter().any(|id| !seen.contains(id))
        })
        .await;
        let new: Vec<String> = jobs_of(&next)
            .into_iter()
            .filter(|id| !seen.contains(id))
            .collect();
        seen.extend(new);
        assert_eq!(jobs_of(&next).len(), 1, "one job at a time");
    }
    world.simulator.advance(SignedDuration::from_secs(10));
    let ready = until(&api, "fleet", "Ready", ready).await;
    assert_eq!(
        ready
            .status
            .as_ref()
            .unwrap()
            .counts
            .as_ref()
            .unwrap()
            .in_desired_state,
        SIMS as u64
    );
    assert_eq!(admin_get_jobs(&world).await, 3);
    assert_each_sim_submitted_once(&world, SIMS as u64).await;
    let stats = stats(&world.simulator).await;
    let calls = carrier_requests_in(&stats);
    eprintln!("carrier calls to Ready: {calls}; {}", stats["requests"]);
}

/// Each job goes when the previous one is final, without observing again in between: the
/// change costs one observation to plan and one to confirm.
#[tokio::test]
async fn queued_jobs_go_one_after_another_with_one_observation_to_plan_and_one_to_confirm() {
    const SIMS: usize = 2_500;
    let world = soracom_world("soracom-queue", SIMS).await;
    let _operator = start_operator(&world);
    let api = create_group(
        &world,
        "fleet",
        json!({"carrierRef": {"name": "soracom"}, "state": "Paused", "selector": {"tags": ["fleet=north"]},
               "rollout": {"maxSimsPerAction": 1000}}),
    )
    .await;
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < 3 {
        let next = until(&api, "fleet", "the next job", |g| {
            jobs_of(g).iter().any(|id| !seen.contains(id))
        })
        .await;
        assert_eq!(jobs_of(&next).len(), 1, "one job at a time");
        seen.extend(jobs_of(&next));
        world.simulator.advance(SignedDuration::from_secs(1));
    }
    until(&api, "fleet", "Ready", ready).await;
    let pages =
        simfleet_testkit::simulator::count(&world.simulator, "GET", "/v1/subscribers", 200).await;
    // 2,500 SIMs are 25 pages of 100: one observation to plan, one to confirm.
    assert_eq!(pages, 50, "{}", stats(&world.simulator).await["requests"]);
    assert_each_sim_submitted_once(&world, SIMS as u64).await;
}

async fn admin_get_jobs(world: &World) -> usize {
    simfleet_testkit::simulator::admin_get(&world.simulator, "/soracom/jobs").await["jobs"]
        .as_array()
        .unwrap()
        .len()
}

/// Issue "Correct together" 3: Soracom SIM ids have 19 digits, past what a JSON number holds
/// exactly. A group whose fleet holds problem SIMs gets its status (the ids as strings), one
/// job for its change, and no second one.
#[tokio::test]
async fn a_group_with_problem_sims_of_19_digit_ids_gets_its_status_and_submits_once() {
    const SIMS: usize = 600;
    let world = soracom_world_from("soracom-problems", SIMS, fleet_file_with(SIMS, 6)).await;
    let _operator = start_operator(&world);
    let api = create_group(
        &world,
        "fleet",
        json!({"carrierRef": {"name": "soracom"}, "state": "Paused", "selector": {"tags": ["fleet=north"]}}),
    )
    .await;
    let first = until(&api, "fleet", "a status with the job", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| !s.conditions.is_empty() && jobs_of(g).len() == 1)
    })
    .await;
    let problems = &first.status.as_ref().unwrap().problem_sims;
    let long_id = problems
        .iter()
        .filter_map(|p| p.device_id.as_deref())
        .find(|id| id.len() == 19 && id.parse::<u64>().unwrap() > (1u64 << 53));
    assert!(
        long_id.is_some(),
        "a problem SIM with its 19-digit id: {problems:?}"
    );
    for _ in 0..5 {
        world.simulator.advance(SignedDuration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let settled = until(&api, "fleet", "settled", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.pending_actions.is_empty() && s.observed_generation == g.metadata.generation
        })
    })
    .await;
    assert_eq!(admin_get_jobs(&world).await, 1, "one job for one change");
    let counts = settled.status.unwrap().counts.unwrap();
    assert_eq!(counts.ineligible, 3, "{counts:?}");
    assert_eq!(counts.in_desired_state, SIMS as u64 - 3, "{counts:?}");
}

/// A Soracom credential without its colon, then an empty one: each time the account says so in
/// `Ready=False` with a reason and a message naming the Secret, the key and the form (with a
/// Warning event), where it used to have no conditions at all (issue 37, point 4).
#[tokio::test]
async fn a_malformed_or_empty_credential_is_a_condition_and_an_event() {
    let world = soracom_world("soracom-bad-secret", 10).await;
    let secrets: Api<Secret> = Api::namespaced(world.sandbox.client(), "default");
    let set = |value: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "soracom-key",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(
                        json!({"data": null, "stringData": {"authKey": value}}),
                    ),
                )
                .await
                .unwrap();
        }
    };
    set("keyId-simulator-without-a-colon").await;
    let _operator = start_operator(&world);
    let accounts: Api<CarrierAccount> = Api::namespaced(world.sandbox.client(), "default");
    let ready = |a: &CarrierAccount| {
        a.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let account = until(&accounts, "soracom", "InvalidSecretValue", |a| {
        ready(a).is_some_and(|(s, r, _)| s == "False" && r == "InvalidSecretValue")
    })
    .await;
    let (_, _, message) = ready(&account).unwrap();
    assert!(
        message.contains("Secret soracom-key key authKey")
            && message.contains("AUTH_KEY_ID:AUTH_KEY"),
        "{message}"
    );
    let warned = events(&world).await.iter().any(|e| {
        e["type"] == "Warning" && e["reason"] == "InvalidSecretValue"
            || e["note"]
                .as_str()
                .is_some_and(|n| n.contains("AUTH_KEY_ID:AUTH_KEY"))
    });
    assert!(warned, "{:?}", events(&world).await);
    // Touched, so that the account reads its Secret at once.
    set("").await;
    accounts
        .patch(
            "soracom",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"touched": "1"}}})),
        )
        .await
        .unwrap();
    let account = until(&accounts, "soracom", "SecretKeyEmpty", |a| {
        ready(a).is_some_and(|(_, r, _)| r == "SecretKeyEmpty")
    })
    .await;
    let (_, _, message) = ready(&account).unwrap();
    assert!(message.contains("key authKey is empty"), "{message}");
}
