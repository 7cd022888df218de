//! `simfleet dev` at steady state: the embedded examples on the simulator, once converged.
//! Two figures: the carrier calls heard in a quiet minute of real time (a fast requeue loop
//! would show here), and the calls per minute the resyncs cost, measured per resource (each
//! resource's resync made at once by a label change, its calls counted by the simulator, then
//! spread over its resync period). The ceiling is 10 carrier requests per minute.
//! Run: `cargo bench --bench dev_steady`.

mod common;

use common::carrier_calls;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use simfleet::api::{CarrierAccount, DataQuota, SimGroup};
use simfleet::controller::RunArgs;
use simfleet::dev::DevArgs;
use simfleet::simulator::SimulatorHandle;

/// Waits until the carrier hears nothing for `quiet`; returns the calls heard meanwhile.
async fn until_quiet(sim: &SimulatorHandle, quiet: Duration, within: Duration) -> u64 {
    let started = carrier_calls(sim);
    let deadline = Instant::now() + within;
    loop {
        let heard = carrier_calls(sim);
        tokio::time::sleep(quiet).await;
        if carrier_calls(sim) == heard {
            return heard - started;
        }
        assert!(Instant::now() < deadline, "the operator never went quiet");
    }
}

/// Changes a label of `name`, so that its controller reconciles it now, as its resync would.
async fn touch<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"resync": jiff::Timestamp::now().as_millisecond().to_string()}}})),
    )
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("simfleet-dev-bench-{}", std::process::id()));
    let args = DevArgs {
        kubeconfig_out: dir.join("kubeconfig"),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        sims: 1000,
        examples: "examples".into(),
        no_operator: true,
        metrics_addr: None,
    };
    let env = simfleet::dev::start(&args).await.unwrap();
    let sim = &env.simulator;
    let run = RunArgs {
        allowed_carrier_urls: vec![sim.base_url()],
        ..Default::default()
    };
    tokio::spawn(simfleet::controller::run_with_client(
        env.sandbox.client(),
        run,
    ));
    let started = Instant::now();
    let converging = until_quiet(sim, Duration::from_secs(15), Duration::from_secs(300)).await;
    println!(
        "converging (examples applied, SIMs changed at the simulator's 2-5 s delays): {converging} carrier calls in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let before = carrier_calls(sim);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let quiet_minute = carrier_calls(sim) - before;
    println!("a minute at steady state, real time: {quiet_minute} carrier calls");

    let client = env.sandbox.client();
    let groups: Api<SimGroup> = Api::namespaced(client.clone(), "default");
    let quotas: Api<DataQuota> = Api::namespaced(client.clone(), "default");
    let accounts: Api<CarrierAccount> = Api::namespaced(client.clone(), "default");
    let mut per_minute = 0.0;
    let sim_group_period = simfleet::sim_group::plan::RESYNC.as_secs_f64() / 60.0;
    let quota_period = simfleet::data_quota::schedule::RESYNC.as_secs_f64() / 60.0;
    for group in groups.list(&Default::default()).await.unwrap() {
        touch(&groups, &group.name_any()).await;
        let calls = until_quiet(sim, Duration::from_secs(2), Duration::from_secs(60)).await;
        println!(
            "  SimGroup {}: {calls} calls per resync (every {sim_group_period} min)",
            group.name_any()
        );
        per_minute += calls as f64 / sim_group_period;
    }
    for quota in quotas.list(&Default::default()).await.unwrap() {
        touch(&quotas, &quota.name_any()).await;
        let calls = until_quiet(sim, Duration::from_secs(2), Duration::from_secs(60)).await;
        println!(
            "  DataQuota {}: {calls} calls per resync (every {quota_period} min)",
            quota.name_any()
        );
        per_minute += calls as f64 / quota_period;
    }
    // An account's resync is its verification, one call (a touch would also re-reconcile every
    // resource that uses it: those are counted above).
    let account_count = accounts
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    println!(
        "  CarrierAccounts: {account_count}, 1 verification call each per resync (every 10 min)"
    );
    per_minute += account_count as f64 / 10.0;
    println!(
        "resyncs at steady state: {per_minute:.1} carrier calls per minute; ceiling 10: {}",
        if per_minute <= 10.0 && quiet_minute <= 10 {
            "met"
        } else {
            "EXCEEDED"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}
