//! The safety controls end to end (the real operator binary against the sandbox API and the
//! simulator): the pause annotation on each kind, observe-only management, counted by the
//! simulator's request log.

mod common;

use std::time::Duration;

use common::operator::*;
use jiff::SignedDuration;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use simfleet::api::{CarrierAccount, DataQuota, SimGroup};
use simfleet_testkit::world::*;

async fn mutating_requests(world: &World) -> u64 {
    stats(&world.simulator).await["totals"]["mutatingCarrierRequests"]
        .as_u64()
        .unwrap()
}

/// Sets (`Some`) or removes (`None`) the pause annotation.
async fn set_paused<K>(api: &Api<K>, name: &str, value: Option<&str>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"simfleet.io/paused": value}}})),
    )
    .await
    .unwrap();
}

/// The `Reconciling` condition's reason and observed generation.
fn reconciling(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, Option<i64>, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .map(|c| (c.reason.clone(), c.observed_generation, c.message.clone()))
}

fn group_paused_at(generation: i64) -> impl Fn(&SimGroup) -> bool {
    move |g| {
        g.status
            .as_ref()
            .and_then(|s| reconciling(&s.conditions))
            .is_some_and(|(reason, at, _)| reason == "Paused" && at == Some(generation))
    }
}

/// The reasons of the events about `name`.
async fn event_reasons(world: &World, name: &str) -> Vec<String> {
    events(world)
        .await
        .iter()
        .filter(|e| e["regarding"]["name"] == name)
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_paused_group_makes_no_carrier_request_keeps_its_pending_actions_and_resumes() {
    let world = world("paused-group", 200).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_group(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": all_tags()}})).await;
    until(&api, "fleet", "submitted", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| !s.pending_actions.is_empty())
    })
    .await;

    set_paused(&api, "fleet", Some("true")).await;
    let paused = until(&api, "fleet", "Paused", group_paused_at(1)).await;
    let recorded = paused.status.clone().unwrap();
    let before = carrier_requests(&world).await;
    // The carrier confirms and the spec changes: while paused, neither is looked at.
    world.simulator.advance(SignedDuration::from_secs(10));
    api.patch(
        "fleet",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"drift": "Report"}})),
    )
    .await
    .unwrap();
    let still = until(&api, "fleet", "Paused at generation 2", group_paused_at(2)).await;
    let status = still.status.unwrap();
    assert_eq!(
        carrier_requests(&world).await,
        before,
        "no carrier request while paused"
    );
    assert_eq!(
        status.pending_actions, recorded.pending_actions,
        "pending actions stay recorded"
    );
    assert_eq!(status.counts, recorded.counts, "the last counts stay");
    assert_eq!(
        status.observed_generation,
        Some(1),
        "generation 2 was not observed"
    );

    set_paused(&api, "fleet", None).await;
    let resumed = until(&api, "fleet", "Ready at generation 2", |g| {
        ready(g) && g.status.as_ref().unwrap().observed_generation == Some(2)
    })
    .await;
    assert!(resumed.status.unwrap().pending_actions.is_empty());
    assert!(carrier_requests(&world).await > before);
    let reasons = event_reasons(&world, "fleet").await;
    assert!(
        reasons.iter().any(|r| r == "Paused") && reasons.iter().any(|r| r == "Resumed"),
        "{reasons:?}"
    );
    assert_each_sim_submitted_once(&world, 200).await;
}

#[tokio::test]
async fn a_paused_group_with_on_delete_restore_waits_to_be_deleted_until_resumed() {
    let world = world("paused-delete", 4).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_group(&world, "maintenance", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "onDelete": "Restore", "selector": {"deviceIds": [1001, 1002]}})).await;
    until_confirmed(&world, &api, "maintenance", "paused SIMs").await;
    set_paused(&api, "maintenance", Some("true")).await;
    until(&api, "maintenance", "Paused", group_paused_at(1)).await;
    let before = carrier_requests(&world).await;

    api.delete("maintenance", &Default::default())
        .await
        .unwrap();
    let waiting = until(&api, "maintenance", "the deletion waiting", |g| {
        g.status
            .as_ref()
            .and_then(|s| reconciling(&s.conditions))
            .is_some_and(|(_, _, message)| message.contains("deletion waits"))
    })
    .await;
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .iter()
            .any(|f| f == "simfleet.io/sim-group")
    );
    assert_eq!(
        carrier_requests(&world).await,
        before,
        "no restore while paused"
    );

    set_paused(&api, "maintenance", None).await;
    wait_gone(&api, "maintenance", &world, Duration::from_secs(60)).await;
    let live = simfleet_testkit::simulator::admin_get(&world.simulator, "/sims?state=LIVE").await;
    let live: Vec<u64> = live["sims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deviceId"].as_u64().unwrap())
        .collect();
    assert!(
        live.contains(&1001) && live.contains(&1002),
        "restored: {live:?}"
    );
}

#[tokio::test]
async fn a_paused_carrier_account_is_not_verified_and_pauses_the_resources_using_it() {
    let world = world("paused-account", 20).await;
    let accounts: Api<CarrierAccount> = Api::namespaced(world.sandbox.client(), "default");
    set_paused(&accounts, "simulator", Some("true")).await;
    let _operator = Operator::start(&world.kubeconfig);
    let account = until(
        &accounts,
        "simulator",
        "the account Paused",
        |a: &CarrierAccount| {
            a.status
                .as_ref()
                .and_then(|s| reconciling(&s.conditions))
                .is_some_and(|(reason, _, _)| reason == "Paused")
        },
    )
    .await;
    assert!(
        !account
            .status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "never verified"
    );
    let api = create_group(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": all_tags()}})).await;
    let paused = until(&api, "fleet", "the group Paused", group_paused_at(1)).await;
    let (_, _, message) = reconciling(&paused.status.unwrap().conditions).unwrap();
    assert!(
        message.contains("its CarrierAccount simulator carries simfleet.io/paused"),
        "{message}"
    );
    assert_eq!(carrier_requests(&world).await, 0, "not one carrier request");

    // A value that is neither "true" nor "false" keeps it paused, and says how to fix it.
    set_paused(&accounts, "simulator", Some("yes")).await;
    until(
        &accounts,
        "simulator",
        "the typo reported",
        |a: &CarrierAccount| {
            a.status
                .as_ref()
                .and_then(|s| reconciling(&s.conditions))
                .is_some_and(|(_, _, m)| m.contains("neither \"true\" nor \"false\""))
        },
    )
    .await;
    assert_eq!(carrier_requests(&world).await, 0);

    // Resuming the account resumes the group at once (it watches its account).
    set_paused(&accounts, "simulator", Some("false")).await;
    until_confirmed(&world, &api, "fleet", "after the account resumed").await;
}

#[tokio::test]
async fn an_observe_only_group_never_mutates_shows_what_it_would_submit_then_acts_when_managed() {
    let world = world("observe-group", 2_000).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_group(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "management": "Observe", "rollout": {"maxSimsPerAction": 1000}, "guard": {"maxChangesWithoutApproval": 5000}, "selector": {"tags": all_tags()}})).await;
    let observed = until(&api, "fleet", "what would be submitted", |g| {
        g.status.as_ref().is_some_and(|s| s.would_submit.len() == 2)
    })
    .await;
    let status = observed.status.unwrap();
    assert!(status.would_submit.iter().all(|a| a.sims == 1_000));
    assert!(status.pending_actions.is_empty());
    let counts = status.counts.unwrap();
    assert_eq!((counts.selected, counts.in_desired_state), (2_000, 0));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ObserveOnly")
    );
    assert_eq!(mutating_requests(&world).await, 0, "Observe never mutates");
    assert_eq!(stats(&world.simulator).await["changes"]["submittedSims"], 0);

    api.patch(
        "fleet",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"management": "Manage"}})),
    )
    .await
    .unwrap();
    let managed = until_confirmed(&world, &api, "fleet", "managed").await;
    assert!(managed.status.unwrap().would_submit.is_empty());
    assert_each_sim_submitted_once(&world, 2_000).await;
}

async fn create_quota(world: &World, name: &str, spec: Value) -> Api<DataQuota> {
    let api: Api<DataQuota> = Api::namespaced(world.sandbox.client(), "default");
    let quota: DataQuota = serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": name}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &quota).await.unwrap();
    api
}

fn quota_condition(quota: &DataQuota, type_: &str) -> Option<(String, String)> {
    let status = quota.status.as_ref()?;
    if status.observed_generation != quota.metadata.generation {
        return None;
    }
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn an_observe_only_quota_never_sets_and_is_ready_once_the_carrier_matches() {
    let world = world("observe-quota", 50).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_quota(&world, "fleet", json!({"carrierRef": {"name": "simulator"}, "management": "Observe", "target": {"tags": simfleet::simulator::fleet::SEED_TAGS}, "volumeMB": 100, "expiry": {"after": "30d"}})).await;
    let observed = until(&api, "fleet", "observed", |q| {
        quota_condition(q, "Ready").is_some_and(|(_, reason)| reason == "ObserveOnly")
    })
    .await;
    let counts = observed.status.as_ref().unwrap().counts.clone().unwrap();
    assert_eq!(
        (counts.targeted, counts.would_change, counts.none),
        (50, 50, 50)
    );
    assert_eq!(observed.status.unwrap().progress, None);
    assert_eq!(mutating_requests(&world).await, 0, "Observe never sets");

    // Managed, it sets the quotas; observed again, it finds them as declared: Ready.
    for (management, reason) in [("Manage", "Converged"), ("Observe", "Converged")] {
        api.patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"management": management}})),
        )
        .await
        .unwrap();
        let quota = until(&api, "fleet", management, |q| {
            quota_condition(q, "Ready").is_some_and(|(s, r)| s == "True" && r == reason)
        })
        .await;
        assert_eq!(quota.status.unwrap().counts.unwrap().would_change, 0);
    }
    let after_manage = mutating_requests(&world).await;
    assert_eq!(after_manage, 50, "one set per device, while managed only");
    // Observing again after a usage change reports it without setting anything.
    let response = reqwest::Client::new()
        .post(format!("{}/consume", world.simulator.admin_url()))
        .json(&json!({"deviceId": 1001, "mb": 100.0}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    api.patch(
        "fleet",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"resync": "1"}}})),
    )
    .await
    .unwrap();
    until(&api, "fleet", "the exhausted device seen", |q| {
        q.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.exhausted == 1)
    })
    .await;
    assert_eq!(mutating_requests(&world).await, after_manage);
}

/// `simfleet dev` on free ports, driven with the real kubectl.
struct Dev {
    child: std::process::Child,
    kubeconfig: std::path::PathBuf,
    admin_url: String,
    dir: std::path::PathBuf,
}

impl Dev {
    fn start() -> Self {
        use std::io::{BufRead, BufReader};
        let dir = std::env::temp_dir().join(format!("simfleet-controls-{}", std::process::id()));
        let kubeconfig = dir.join("kubeconfig");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["dev", "--api-listen", "127.0.0.1:0", "--sims", "200"])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin_url = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.split("(admin API: ").nth(1) {
                admin_url = rest.trim_end_matches(")").trim_end_matches('/').to_owned();
            }
            if line.starts_with("Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        assert!(admin_url.starts_with("http://127.0.0.1:"), "{admin_url}");
        Self {
            child,
            kubeconfig,
            admin_url,
            dir,
        }
    }

    /// Runs kubectl (off the async runtime) and returns its stdout; it must succeed.
    async fn kubectl(&self, args: &[&str]) -> String {
        let mut command = std::process::Command::new(common::kubectl_binary());
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        let line = format!("{args:?}");
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `kubectl get ... -o jsonpath=...` until `claim` holds (90 s at most).
    async fn until(&self, args: &[&str], claim: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.kubectl(args).await;
            if claim(&out) {
                return out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "kubectl {args:?}: last printed {out:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stats(&self) -> Value {
        reqwest::get(format!("{}/stats", self.admin_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn carrier_requests(&self) -> u64 {
        carrier_requests_in(&self.stats().await)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        common::send_signal(&self.child, "INT");
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const RECONCILING_REASON: &str = "jsonpath={.status.conditions[?(@.type==\"Reconciling\")].reason}";

#[tokio::test]
async fn the_three_controls_work_through_kubectl_in_simfleet_dev() {
    let dev = Dev::start();
    dev.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "sg/cold-chain",
        "--timeout=90s",
    ])
    .await;

    // 1. Pause the account: every resource using it pauses, and the carrier hears nothing.
    dev.kubectl(&[
        "annotate",
        "carrier",
        "simulator",
        "simfleet.io/paused=true",
    ])
    .await;
    let reasons = "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.status.conditions[?(@.type==\"Reconciling\")].reason}{\"\\n\"}{end}";
    dev.until(&["get", "simfleet", "-o", reasons], |out| {
        out.lines().all(|l| l.ends_with("=Paused")) && out.lines().count() > 3
    })
    .await;
    let before = dev.carrier_requests().await;
    dev.kubectl(&[
        "patch",
        "sg",
        "cold-chain",
        "--type=merge",
        "-p",
        r#"{"spec":{"state":"Paused"}}"#,
    ])
    .await;
    dev.until(
        &[
            "get",
            "sg",
            "cold-chain",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Reconciling\")].observedGeneration}",
        ],
        |out| out == "2",
    )
    .await;
    assert_eq!(
        dev.carrier_requests().await,
        before,
        "no carrier request while paused"
    );
    let events = dev
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=Paused",
            "-o",
            "name",
        ])
        .await;
    assert!(events.lines().count() > 3, "{events}");

    // Resumed: the group acts on generation 2.
    dev.kubectl(&["annotate", "carrier", "simulator", "simfleet.io/paused-"])
        .await;
    dev.until(
        &["get", "sg", "cold-chain", "-o", "jsonpath={.status.observedGeneration}/{.status.conditions[?(@.type==\"Ready\")].status}"],
        |out| out == "2/True",
    )
    .await;

    // 2. Observe only: status shows the actions it would submit; nothing is submitted.
    let submitted = dev.stats().await["changes"]["submittedSims"].clone();
    dev.kubectl(&[
        "patch",
        "sg",
        "cold-chain",
        "--type=merge",
        "-p",
        r#"{"spec":{"state":"Active","management":"Observe"}}"#,
    ])
    .await;
    let would = dev
        .until(
            &[
                "get",
                "sg",
                "cold-chain",
                "-o",
                "jsonpath={.status.observedGeneration} {.status.wouldSubmit[*].action}",
            ],
            |out| out.starts_with("3 Resume"),
        )
        .await;
    assert!(would.contains("Resume"), "{would}");
    let reason = dev
        .kubectl(&["get", "sg", "cold-chain", "-o", RECONCILING_REASON])
        .await;
    assert_eq!(reason, "ObserveOnly");
    assert_eq!(
        dev.stats().await["changes"]["submittedSims"],
        submitted,
        "Observe never submits"
    );

    // 3. A carrier URL outside the allow-list (dev allows its own simulator only): Stalled,
    // and no connection is made.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let manifest = dev.dir.join("elsewhere.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: simfleet.io/v1alpha1\nkind: CarrierAccount\nmetadata:\n  name: elsewhere\nspec:\n  provider: simulator\n  baseUrl: http://{}\n  secretRef:\n    name: simulator-credentials\n",
            listener.local_addr().unwrap()
        ),
    )
    .unwrap();
    dev.kubectl(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    dev.until(
        &[
            "get",
            "carrier",
            "elsewhere",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Stalled\")].reason}",
        ],
        |out| out == "UrlNotAllowed",
    )
    .await;
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the disallowed URL"
    );
}
