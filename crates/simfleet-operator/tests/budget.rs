//! A CarrierAccount's monthly budget end to end (the operator in this process, against the
//! sandbox API and the simulator, on the simulator's virtual clock, which the test moves):
//! resync reads are paced to it while changes still go through, the month's figures reach
//! status and survive a restart, and a budget below one observation stalls the group with the
//! cost and the fix.

use std::time::Duration;

use jiff::SignedDuration;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use simfleet_api::{CarrierAccount, SimGroup};
use simfleet_core::clock::Clock;
use simfleet_operator::controller::RunArgs;
use simfleet_testkit::world::*;

/// The operator in this process, reading the simulator's virtual clock; aborted when dropped.
struct InProcess(tokio::task::JoinHandle<Result<(), String>>);

impl InProcess {
    fn start(world: &World) -> Self {
        let args = RunArgs {
            allowed_carrier_urls: vec![world.simulator.base_url()],
            clock: Clock::from_source(world.simulator.state().clone()),
            ..Default::default()
        };
        Self(tokio::spawn(
            simfleet_operator::controller::run_with_client(world.sandbox.client(), args),
        ))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Changes a label of `name`, so that its controller reconciles it now, as a resync would.
async fn touch<K>(api: &Api<K>, name: &str, value: usize)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": value.to_string()}}})),
    )
    .await
    .unwrap();
}

async fn event_count(world: &World, name: &str, reason: &str) -> usize {
    events(world)
        .await
        .iter()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .count()
}

fn budget_of(account: &CarrierAccount) -> Option<simfleet_api::BudgetStatus> {
    account.status.as_ref()?.budget.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncs_are_paced_to_the_budget_changes_go_through_and_the_count_survives_a_restart() {
    // November has 30 days: 300 requests a month are 10 a day, and a day's share is allowed
    // at once. The simulator's clock stands still until the test moves it.
    let config = simfleet_simulator::SimulatorConfig {
        start_time: Some("2026-11-01T00:00:00Z".parse().unwrap()),
        ..simfleet_testkit::simulator::live_config(50)
    };
    let world = world_with("budget", config).await;
    let operator = InProcess::start(&world);
    let accounts: Api<CarrierAccount> = Api::namespaced(world.sandbox.client(), "default");
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "metered"},
        "spec": {"provider": "simulator", "baseUrl": world.simulator.base_url(), "secretRef": {"name": "sim"},
                 "rateLimit": {"requestsPerSecond": 1000, "burst": 1000}, "budget": {"requestsPerMonth": 300}}
    }))
    .unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let verified = until(&accounts, "metered", "verified with its budget", |a| {
        budget_of(a).is_some_and(|b| b.requests_per_month == Some(300))
    })
    .await;
    let figures = budget_of(&verified).unwrap();
    assert_eq!(figures.month, "2026-11");
    assert!(figures.requests_spent >= 1, "the verification counts");

    let groups = create_group(&world, "fleet", json!({"carrierRef": {"name": "metered"}, "state": "Paused", "selector": {"tags": all_tags()}})).await;
    until_confirmed(&world, &groups, "fleet", "paused").await;
    // Each ten minutes on the virtual clock make the group's drift check due, and the touch
    // wakes it: it reads the carrier while the day's share lasts, then waits.
    let mut touches = 0;
    while event_count(&world, "fleet", "ReadDeferred").await == 0 {
        touches += 1;
        assert!(touches < 400, "no resync was ever deferred");
        world.simulator.advance(SignedDuration::from_mins(10));
        touch(&groups, "fleet", touches).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held_at = carrier_requests(&world).await;
    // A change is not a resync: it is observed and submitted although resyncs wait.
    groups
        .patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "Active"}})),
        )
        .await
        .unwrap();
    until(&groups, "fleet", "generation 2 observed", |g: &SimGroup| {
        g.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    assert!(
        carrier_requests(&world).await > held_at,
        "the change reached the carrier"
    );

    // Five minutes on, the account publishes the month's figures again.
    world.simulator.advance(SignedDuration::from_mins(6));
    touch(&accounts, "metered", 1).await;
    let before_restart = until(&accounts, "metered", "figures refreshed", |a| {
        budget_of(a).is_some_and(|b| b.deferred_reads >= 1)
    })
    .await;
    let before_restart = budget_of(&before_restart).unwrap();
    assert!(before_restart.requests_spent > 10, "{before_restart:?}");

    // A new process goes on counting from the published figures.
    drop(operator);
    let _operator = InProcess::start(&world);
    world.simulator.advance(SignedDuration::from_mins(6));
    touch(&accounts, "metered", 2).await;
    let after = until(&accounts, "metered", "figures after the restart", |a| {
        budget_of(a).is_some_and(|b| b.updated_time != before_restart.updated_time)
    })
    .await;
    let after = budget_of(&after).unwrap();
    assert!(
        after.requests_spent > before_restart.requests_spent,
        "the count goes on: {before_restart:?} then {after:?}"
    );
    assert_eq!(after.since, before_restart.since);
    assert!(after.deferred_reads >= before_restart.deferred_reads);

    // A budget below what one observation costs: the group stalls, saying so.
    accounts
        .patch(
            "metered",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"budget": {"requestsPerMonth": 1}}})),
        )
        .await
        .unwrap();
    let stalled = until(
        &groups,
        "fleet",
        "Stalled: BudgetTooSmall",
        |g: &SimGroup| {
            g.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Stalled" && c.status == "True" && c.reason == "BudgetTooSmall"
                })
            })
        },
    )
    .await;
    let (_, message) = condition(&stalled, "Stalled").unwrap();
    assert!(
        message.contains("spec.budget.requestsPerMonth") && message.contains("carrier requests"),
        "{message}"
    );
}
