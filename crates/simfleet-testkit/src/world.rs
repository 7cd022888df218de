//! A test world: the sandbox API server and the simulator, with a CarrierAccount `simulator`
//! (and its Secret) in `default`, and what tests ask of it (waiting for a state, the
//! simulator's counters, events). The operator is started by the test, as a process or in it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use simfleet_api::{CarrierAccount, SimGroup};
use simfleet_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use simfleet_simulator::{Simulator, SimulatorHandle};

/// The sandbox, the simulator and a kubeconfig file for the sandbox (removed when dropped).
pub struct World {
    pub sandbox: SandboxHandle,
    pub simulator: SimulatorHandle,
    pub kubeconfig: std::path::PathBuf,
}

pub async fn world(name: &str, sims: usize) -> World {
    world_with(name, crate::simulator::live_config(sims)).await
}

/// A world whose simulator starts from `config`.
pub async fn world_with(name: &str, config: simfleet_simulator::SimulatorConfig) -> World {
    let simulator = Simulator::start(config).await.unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let kubeconfig = std::env::temp_dir().join(format!(
        "simfleet-operator-{name}-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&kubeconfig, sandbox.kubeconfig()).unwrap();
    let client = sandbox.client();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "sim"}, "stringData": {"apiKey": simfleet_simulator::DEFAULT_HOLOGRAM_API_KEY}})).unwrap();
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

/// Creates an emnify CarrierAccount `name` (with its Secret) on the world's simulator.
pub async fn create_emnify_account(world: &World, name: &str) -> Api<CarrierAccount> {
    let client = world.sandbox.client();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": format!("{name}-token")}, "stringData": {"applicationToken": simfleet_simulator::DEFAULT_EMNIFY_APP_TOKEN}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": name},
        "spec": {"provider": "emnify", "baseUrl": world.simulator.emnify_url(), "secretRef": {"name": format!("{name}-token")}, "rateLimit": {"requestsPerSecond": 1000, "burst": 1000}}
    }))
    .unwrap();
    let api = Api::<CarrierAccount>::namespaced(client, "default");
    api.create(&PostParams::default(), &account).await.unwrap();
    api
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Every seeded tag: the group selects the whole fleet.
pub fn all_tags() -> Value {
    json!(simfleet_simulator::fleet::SEED_TAGS)
}

pub fn condition(group: &SimGroup, type_: &str) -> Option<(String, String)> {
    group
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

/// How long a test waits for a state: `SIMFLEET_WAIT_SECS`, 90 s by default.
pub fn wait_limit() -> Duration {
    Duration::from_secs(
        std::env::var("SIMFLEET_WAIT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(90),
    )
}

/// Polls the group until `check` holds, or fails with the last status seen.
pub async fn until<K>(api: &Api<K>, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + wait_limit();
    loop {
        let object = api.get(name).await.unwrap();
        if check(&object) {
            return object;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {object:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The simulator saw exactly `expected` SIM changes, none of them to a SIM already on its way.
pub async fn assert_each_sim_submitted_once(world: &World, expected: u64) {
    let changes = &stats(&world.simulator).await["changes"];
    assert_eq!(
        (
            changes["submittedSims"].as_u64(),
            changes["redundantSims"].as_u64()
        ),
        (Some(expected), Some(0)),
        "no SIM was submitted twice: {changes}"
    );
}

/// Carrier requests in a simulator's `/_sim/stats` (its admin routes left out).
pub fn carrier_requests_in(stats: &Value) -> u64 {
    stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            !r["route"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/_sim/")
        })
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

/// Carrier requests the world's simulator has answered.
pub async fn carrier_requests(world: &World) -> u64 {
    carrier_requests_in(&stats(&world.simulator).await)
}

pub async fn stats(simulator: &SimulatorHandle) -> Value {
    crate::simulator::admin_get(simulator, "/stats").await
}

pub async fn create_group(world: &World, name: &str, spec: Value) -> Api<SimGroup> {
    let api: Api<SimGroup> = Api::namespaced(world.sandbox.client(), "default");
    let group: SimGroup = serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "metadata": {"name": name}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &group).await.unwrap();
    api
}

pub fn ready(group: &SimGroup) -> bool {
    condition(group, "Ready").is_some_and(|(s, _)| s == "True")
}

/// Waits until the group has an action pending at the carrier, lets the simulator's clock
/// pass the confirmation delay of each action that appears (a rollout's later actions are
/// submitted after the first is in status), and waits until the group is Ready.
pub async fn until_confirmed(
    world: &World,
    api: &Api<SimGroup>,
    name: &str,
    what: &str,
) -> SimGroup {
    until(api, name, &format!("{what}: submitted"), |g| {
        g.status
            .as_ref()
            .is_some_and(|s| !s.pending_actions.is_empty())
    })
    .await;
    let deadline = Instant::now() + wait_limit();
    let mut advanced_for = std::collections::BTreeSet::new();
    loop {
        let group = api.get(name).await.unwrap();
        if ready(&group) {
            return group;
        }
        let pending: Vec<String> = group
            .status
            .iter()
            .flat_map(|s| &s.pending_actions)
            .map(|a| a.id.clone())
            .collect();
        let appeared = pending
            .iter()
            .filter(|id| advanced_for.insert((*id).clone()))
            .count();
        if appeared > 0 {
            world.simulator.advance(jiff::SignedDuration::from_secs(10));
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: Ready; last seen: {group:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn admin(world: &World, method: reqwest::Method, path: &str, body: Value) {
    let (status, _) = crate::simulator::admin_send(&world.simulator, method, path, &body).await;
    assert!(status.is_success(), "{path}: {status}");
}

/// Waits, moving the simulator's clock on, until `name` is gone (its finalizer may wait for the
/// carrier); fails after `within`.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, world: &World, within: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + within;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "{name} was not deleted");
        world.simulator.advance(jiff::SignedDuration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `api` lists nothing; fails after 60 s saying `what` were not deleted.
pub async fn until_empty<K>(api: &Api<K>, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "{what} were not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events published in namespace default.
pub async fn events(world: &World) -> Vec<Value> {
    let list: Value = reqwest::get(format!(
        "{}/apis/events.k8s.io/v1/namespaces/default/events",
        world.sandbox.url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}
