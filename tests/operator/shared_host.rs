//! Accounts on one carrier host share its limit: emnify limits requests per client IP, and
//! every account of the operator calls from one.

use super::*;

/// Three emnify accounts on one host, each allowed 20 requests a second (60 together), set
/// quotas at the same time against a simulator that, like emnify, limits requests per client
/// IP (here 20 a second). With the host's limit (`--carrier-host-limit`, 15 a second) shared by
/// the three, the carrier answers no 429, and every quota converges.
#[tokio::test]
async fn three_accounts_on_one_host_share_its_limit_and_get_no_429() {
    let config = simfleet::simulator::SimulatorConfig {
        emnify_ip_rate_limit: Some(simfleet::simulator::RateLimitSpec {
            per_second: 20.0,
            burst: 10,
        }),
        ..simfleet_testkit::simulator::live_config(120)
    };
    let world = world_with("shared-host", config).await;
    let client = world.sandbox.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let accounts: Api<CarrierAccount> = Api::namespaced(client.clone(), "default");
    let quotas: Api<simfleet::api::DataQuota> = Api::namespaced(client.clone(), "default");
    for i in 1..=3 {
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": format!("emnify-{i}")}, "stringData": {"applicationToken": simfleet_testkit::simulator::APP_TOKEN}})).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let account: CarrierAccount = serde_json::from_value(json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": format!("emnify-{i}")},
            "spec": {"provider": "emnify", "baseUrl": world.simulator.emnify_url(), "secretRef": {"name": format!("emnify-{i}")}, "rateLimit": {"requestsPerSecond": 20, "burst": 20}}
        }))
        .unwrap();
        accounts
            .create(&PostParams::default(), &account)
            .await
            .unwrap();
    }
    let host_limit = format!("{}=15/5", world.simulator.base_url());
    let emnify = world.simulator.emnify_url();
    let (_operator, _) = Operator::start_with(
        &world.kubeconfig,
        &[
            "--allowed-carrier-url",
            emnify.as_str(),
            "--carrier-host-limit",
            host_limit.as_str(),
        ],
        "operator",
    );
    for i in 1..=3u64 {
        let devices: Vec<u64> = (1001 + 40 * (i - 1)..1001 + 40 * i).collect();
        let quota: simfleet::api::DataQuota = serde_json::from_value(json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": format!("q{i}")},
            "spec": {"carrierRef": {"name": format!("emnify-{i}")}, "target": {"deviceIds": devices}, "volumeMB": 50, "expiry": {"after": "7d"}}
        }))
        .unwrap();
        quotas.create(&PostParams::default(), &quota).await.unwrap();
    }
    for i in 1..=3 {
        until(&quotas, &format!("q{i}"), "Ready", |q| {
            q.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .await;
    }
    let counts = world.simulator.state().request_counts();
    let answered: u64 = counts.iter().map(|r| r.count).sum();
    let too_many: u64 = counts
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.count)
        .sum();
    println!("{answered} requests, {too_many} answered 429");
    assert!(answered >= 240, "each quota was set: {answered} requests");
    assert_eq!(
        too_many, 0,
        "the accounts kept under the host's limit together"
    );
}
