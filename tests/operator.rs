//! The real operator binary (`simfleet run`) against the sandbox API and the simulator.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use simfleet::api::{CarrierAccount, SimGroup};
use simfleet::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use simfleet::simulator::{SeedConfig, Simulator, SimulatorConfig, SimulatorHandle};

/// The operator as a child process, killed when dropped.
struct Operator(Child);

impl Operator {
    fn start(kubeconfig: &std::path::Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .arg("run")
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("SIMFLEET_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(if std::env::var("SIMFLEET_OPERATOR_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct World {
    sandbox: SandboxHandle,
    simulator: SimulatorHandle,
    kubeconfig: std::path::PathBuf,
}

async fn world(name: &str, sims: usize) -> World {
    let simulator = Simulator::start(SimulatorConfig {
        seed: SeedConfig {
            sims,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        ..SimulatorConfig::for_tests(sims, SignedDuration::from_secs(10))
    })
    .await
    .unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let kubeconfig = std::env::temp_dir().join(format!(
        "simfleet-operator-{name}-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&kubeconfig, sandbox.kubeconfig()).unwrap();
    let client = sandbox.client();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "sim"}, "stringData": {"apiKey": simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "simulator"},
        "spec": {"provider": "simulator", "baseUrl": simulator.base_url(), "secretRef": {"name": "sim"}, "rateLimit": {"requestsPerSecond": 1000, "burst": 1000}}
    }))
    .unwrap();
    Api::<CarrierAccount>::namespaced(client, "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    World {
        sandbox,
        simulator,
        kubeconfig,
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Every seeded tag: the group selects the whole fleet.
fn all_tags() -> Value {
    json!(simfleet::simulator::fleet::SEED_TAGS)
}

fn condition(group: &SimGroup, type_: &str) -> Option<(String, String)> {
    group
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

/// Polls the group until `check` holds, or fails with the last status seen.
async fn until(
    api: &Api<SimGroup>,
    name: &str,
    what: &str,
    check: impl Fn(&SimGroup) -> bool,
) -> SimGroup {
    let deadline = Instant::now()
        + Duration::from_secs(
            std::env::var("SIMFLEET_WAIT_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(90),
        );
    loop {
        let group = api.get(name).await.unwrap();
        if check(&group) {
            return group;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; status: {:?}",
            group.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stats(simulator: &SimulatorHandle) -> Value {
    reqwest::get(format!("{}/stats", simulator.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_25000_sim_group_is_paused_in_3_actions_then_resumed_with_no_duplicate_submission() {
    let world = world("pause", 25_000).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api: Api<SimGroup> = Api::namespaced(world.sandbox.client(), "default");
    let group: SimGroup = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "metadata": {"name": "fleet"},
        "spec": {"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": all_tags()}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &group).await.unwrap();

    let pending = until(&api, "fleet", "3 pending actions", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.pending_actions.len() == 3)
    })
    .await;
    let status = pending.status.as_ref().unwrap();
    let sizes: Vec<u32> = status.pending_actions.iter().map(|a| a.sims).collect();
    assert_eq!(sizes.iter().sum::<u32>(), 25_000);
    assert!(sizes.iter().all(|&s| s <= 10_000), "{sizes:?}");
    let (reconciling, message) = condition(&pending, "Reconciling").unwrap();
    assert_eq!(reconciling, "True");
    assert!(
        message.contains("awaiting carrier confirmation"),
        "{message}"
    );

    world.simulator.advance(SignedDuration::from_secs(10));
    let ready = until(&api, "fleet", "Ready", |g| {
        condition(g, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    let counts = ready.status.as_ref().unwrap().counts.clone().unwrap();
    assert_eq!(
        (counts.selected, counts.in_desired_state, counts.pending),
        (25_000, 25_000, 0)
    );
    assert!(ready.status.as_ref().unwrap().pending_actions.is_empty());

    // Resume: spec change, new generation, the same again the other way.
    api.patch(
        "fleet",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"state": "Active"}})),
    )
    .await
    .unwrap();
    until(&api, "fleet", "resume submitted", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == Some(2) && !s.pending_actions.is_empty())
    })
    .await;
    world.simulator.advance(SignedDuration::from_secs(10));
    until(&api, "fleet", "Ready again", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == Some(2))
            && condition(g, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    let changes = &stats(&world.simulator).await["changes"];
    assert_eq!(changes["submittedSims"], 50_000, "{changes}");
    assert_eq!(
        changes["redundantSims"], 0,
        "no SIM was submitted twice: {changes}"
    );
}
