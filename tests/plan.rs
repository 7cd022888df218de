//! `simfleet plan`, the real binary, against the simulator (and the sandbox for --kubeconfig):
//! what it reports, its exit codes, its CSV, and that it changes nothing anywhere.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use simfleet::api::CarrierAccount;
use simfleet::sandbox::{Sandbox, SandboxConfig};
use simfleet::simulator::{Simulator, SimulatorHandle};

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("simfleet-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("manifests")).unwrap();
        Self(dir)
    }

    fn manifests(&self) -> PathBuf {
        self.0.join("manifests")
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.manifests().join(file), text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `simfleet plan` off the async runtime (the simulator and sandbox run on it).
async fn plan(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .arg("plan")
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn account_yaml(sim: &SimulatorHandle) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sim\nstringData:\n  apiKey: {}\n---\napiVersion: simfleet.io/v1alpha1\nkind: CarrierAccount\nmetadata:\n  name: simulator\nspec:\n  provider: simulator\n  baseUrl: {}\n  secretRef:\n    name: sim\n",
        simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY,
        sim.base_url()
    )
}

/// A sandbox holding the Secret `sim` and the CarrierAccount `simulator` for `sim`.
async fn cluster_with_account(sim: &SimulatorHandle) -> simfleet::sandbox::SandboxHandle {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = sandbox.client();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "sim"}, "stringData": {"apiKey": simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "simulator"},
        "spec": {"provider": "simulator", "baseUrl": sim.base_url(), "secretRef": {"name": "sim"}}
    }))
    .unwrap();
    Api::<CarrierAccount>::namespaced(client, "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    sandbox
}

async fn admin(sim: &SimulatorHandle, path: &str) -> Value {
    reqwest::get(format!("{}{path}", sim.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn plan_reports_changes_conflicts_schedule_and_quotas_and_changes_nothing() {
    let sim = Simulator::start(simfleet_testkit::simulator::live_config(1000))
        .await
        .unwrap();
    let cold: Value = admin(&sim, "/sims?tag=cold-chain&limit=1").await;
    let cold_total = cold["total"].as_u64().unwrap();
    let first_cold = cold["sims"][0]["deviceId"].as_u64().unwrap();
    let meters = admin(&sim, "/sims?tag=smart-meter&limit=1").await["total"]
        .as_u64()
        .unwrap();
    let scratch = Scratch::new("report");
    scratch.write("account.yaml", &account_yaml(&sim));
    scratch.write(
        "groups.yaml",
        &format!(
            "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: pause-cold\nspec:\n  carrierRef:\n    name: simulator\n  state: Paused\n  selector:\n    tags: [cold-chain]\n  rollout:\n    maxSimsPerAction: 50\n    interval: 10m\n---\napiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: keep-one-active\nspec:\n  carrierRef:\n    name: simulator\n  state: Active\n  selector:\n    deviceIds: [{first_cold}]\n"
        ),
    );
    scratch.write(
        "quota.yaml",
        "apiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata:\n  name: meters\nspec:\n  carrierRef:\n    name: simulator\n  target:\n    tags: [smart-meter]\n  volumeMB: 100\n  expiry:\n    after: 30d\n",
    );
    let csv = scratch.0.join("affected.csv");
    let dir = scratch.manifests();
    let out = plan(&[
        "-f",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "--csv",
        csv.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pause = &report["simGroups"][0];
    assert_eq!(pause["name"], "default/pause-cold");
    assert_eq!(pause["selected"], cold_total);
    assert_eq!(
        pause["conflicts"], 1,
        "the SIM the other group keeps Active"
    );
    assert_eq!(pause["toChange"], cold_total - 1);
    let actions = (cold_total - 1).div_ceil(50);
    assert_eq!(pause["actions"], actions);
    let schedule = pause["schedule"].as_array().unwrap();
    assert_eq!(schedule.len() as u64, actions);
    let first: jiff::Timestamp = schedule[0].as_str().unwrap().parse().unwrap();
    let second: jiff::Timestamp = schedule[1].as_str().unwrap().parse().unwrap();
    assert_eq!(
        second.duration_since(first).as_secs(),
        600,
        "rollout.interval apart"
    );
    assert!(pause["lookup"].is_null(), "a tag group lists no SIMs");
    let keep = &report["simGroups"][1];
    // The listed device was looked up the cheapest way, and plan says how and at what cost.
    assert_eq!(keep["lookup"], "batched lookups, 1 call");
    assert_eq!(
        (
            keep["selected"].as_u64(),
            keep["conflicts"].as_u64(),
            keep["toChange"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    let quota = &report["dataQuotas"][0];
    assert_eq!(quota["devices"], meters);
    assert_eq!(quota["toSet"], meters);
    assert_eq!(quota["withoutQuota"], meters);
    assert_eq!(report["totalChanges"], cold_total - 1 + meters);

    let rows = std::fs::read_to_string(&csv).unwrap();
    let mut lines = rows.lines();
    assert_eq!(
        lines.next(),
        Some("kind,resource,iccid,deviceId,current,planned")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len() as u64, cold_total - 1 + meters);
    assert!(rows.iter().any(
        |r| r.starts_with("SimGroup,default/pause-cold,8944") && r.ends_with(",Active,Paused")
    ));
    assert!(
        !rows.iter().any(|r| r.contains(&format!(",{first_cold},"))),
        "the conflicting SIM is not affected"
    );
    assert!(rows.iter().any(|r| r.starts_with("DataQuota,default/meters,,") && r.ends_with(",none,Set 100 MB")));

    // Nothing was changed at the carrier.
    let stats = admin(&sim, "/stats").await;
    assert_eq!(stats["totals"]["mutatingCarrierRequests"], 0, "{stats}");
    assert!(stats["totals"]["requests"].as_u64().unwrap() > 0);

    // Exit codes for pipelines.
    let dir = dir.to_str().unwrap();
    assert_eq!(
        plan(&["-f", dir, "--fail-on-change"]).await.status.code(),
        Some(1)
    );
    assert_eq!(
        plan(&["-f", dir, "--max-changes", "10"])
            .await
            .status
            .code(),
        Some(1)
    );
    let allowed = plan(&["-f", dir, "--max-changes", "100000"]).await;
    assert_eq!(allowed.status.code(), Some(0));
    let table = String::from_utf8(allowed.stdout).unwrap();
    assert!(
        table.contains("SIMGROUP")
            && table.contains("default/pause-cold")
            && table.contains("DATAQUOTA")
            && table.contains("listed SIMs looked up by batched lookups"),
        "{table}"
    );
    assert!(table.contains("nothing was changed"), "{table}");
    let stats = admin(&sim, "/stats").await;
    assert_eq!(stats["totals"]["mutatingCarrierRequests"], 0, "{stats}");
    sim.stop().await;
}

#[tokio::test]
async fn with_a_kubeconfig_the_account_comes_from_the_cluster_read_only() {
    let sim = Simulator::start(simfleet_testkit::simulator::live_config(50))
        .await
        .unwrap();
    let sandbox = cluster_with_account(&sim).await;
    let scratch = Scratch::new("kubeconfig");
    let kubeconfig = scratch.0.join("kubeconfig");
    std::fs::write(&kubeconfig, sandbox.kubeconfig()).unwrap();
    scratch.write(
        "group.yaml",
        "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: all\nspec:\n  carrierRef:\n    name: simulator\n  state: Paused\n  selector:\n    deviceIds: [1001, 1002, 1003]\n",
    );
    let before = sandbox.state().requests().len();
    let out = plan(&[
        "-f",
        scratch.manifests().to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "-o",
        "json",
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["simGroups"][0]["toChange"], 3);
    let verbs: Vec<String> = sandbox.state().requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect();
    assert!(!verbs.is_empty());
    assert!(
        verbs
            .iter()
            .all(|v| v.starts_with("get ") || v.starts_with("list ")),
        "only reads: {verbs:?}"
    );
    // Without the account anywhere: a clear error naming the flags, exit 2.
    let out = plan(&["-f", scratch.manifests().to_str().unwrap(), "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["simGroups"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("--carrier-account") && error.contains("--kubeconfig"),
        "{error}"
    );
    // The account and its Secret as files outside DIR.
    let yaml = account_yaml(&sim);
    let (secret, account) = yaml.split_once("---\n").unwrap();
    let secret_file = scratch.0.join("secret.yaml");
    let account_file = scratch.0.join("account.yaml");
    std::fs::write(&secret_file, secret).unwrap();
    std::fs::write(&account_file, account).unwrap();
    let out = plan(&[
        "-f",
        scratch.manifests().to_str().unwrap(),
        "--carrier-account",
        account_file.to_str().unwrap(),
        "--secret",
        secret_file.to_str().unwrap(),
        "-o",
        "json",
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["simGroups"][0]["toChange"], 3);
    sim.stop().await;
}

/// `simfleet plan` on a copy of the examples, as a user tries it: the folder's account points
/// at a host that does not answer while the cluster's account works. With --kubeconfig the
/// cluster's account is used (and the plan says so); `--accounts-from dir` uses the folder's,
/// whose error names the host; the summary counts what could not be planned; --max-changes
/// says what it refused; a selector that matches nothing is a warning.
#[tokio::test]
async fn plan_on_a_copy_of_the_examples_says_which_account_what_failed_and_why_it_refused() {
    let sim = Simulator::start(simfleet_testkit::simulator::live_config(50))
        .await
        .unwrap();
    let sandbox = cluster_with_account(&sim).await;
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let scratch = Scratch::new("examples-copy");
    let kubeconfig = scratch.0.join("kubeconfig");
    std::fs::write(&kubeconfig, sandbox.kubeconfig()).unwrap();
    scratch.write(
        "account.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sim\nstringData:\n  apiKey: {}\n---\napiVersion: simfleet.io/v1alpha1\nkind: CarrierAccount\nmetadata:\n  name: simulator\nspec:\n  provider: simulator\n  baseUrl: {dead_url}\n  secretRef:\n    name: sim\n",
            simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY
        ),
    );
    scratch.write(
        "groups.yaml",
        "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: three\nspec:\n  carrierRef:\n    name: simulator\n  state: Paused\n  selector:\n    deviceIds: [1001, 1002, 1003]\n---\napiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: typo\nspec:\n  carrierRef:\n    name: simulator\n  state: Paused\n  selector:\n    tags: [smart-meterz]\n",
    );
    let dir = scratch.manifests();
    let dir = dir.to_str().unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap();
    // The cluster's account (the default with --kubeconfig): planned, and said so.
    let out = plan(&["-f", dir, "--kubeconfig", kubeconfig]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table.contains("CarrierAccount default/simulator: from the cluster"),
        "{table}"
    );
    assert!(
        table.contains(
            "warning: SimGroup default/typo: the selector (tags smart-meterz) matches no SIM"
        ),
        "{table}"
    );
    // --max-changes: refused, saying what exceeded it.
    let out = plan(&["-f", dir, "--kubeconfig", kubeconfig, "--max-changes", "2"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused: 3 changes, more than --max-changes 2"),
        "{stderr}"
    );
    // The folder's account: the error names the host it could not reach, and the summary
    // counts the resources that could not be planned.
    let out = plan(&[
        "-f",
        dir,
        "--kubeconfig",
        kubeconfig,
        "--accounts-from",
        "dir",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("CarrierAccount default/simulator: from DIR"),
        "{table}"
    );
    assert!(
        table.contains(dead_url.trim_start_matches("http://")),
        "{table}"
    );
    assert!(
        table.contains("0 changes in all")
            && table.contains("2 of 2 resources could not be planned"),
        "{table}"
    );
}

/// `simfleet plan` against a Soracom account: a group by `NAME=VALUE` tag is counted and
/// split into jobs of at most 10,000; a tag without a value and a DataQuota are refused with
/// what to write or use instead.
#[tokio::test]
async fn plan_against_soracom_counts_by_name_value_tag_and_refuses_bare_tags_and_quotas() {
    let mut yaml = String::from("sims:\n");
    for i in 0..30u64 {
        let fleet = if i % 3 == 0 { "north" } else { "south" };
        yaml.push_str(&format!(
            "  - {{iccid: \"{}\", tags: [fleet={fleet}]}}\n",
            8_944_500_000_000_000_001u64 + i
        ));
    }
    let scratch = Scratch::new("soracom");
    let fleet = scratch.0.join("fleet.yaml");
    std::fs::write(&fleet, yaml).unwrap();
    let sim = Simulator::start(simfleet::simulator::SimulatorConfig {
        fleet_file: Some(fleet),
        ..simfleet_testkit::simulator::live_config(30)
    })
    .await
    .unwrap();
    scratch.write(
        "account.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: soracom-key\nstringData:\n  authKey: keyId-simulator:secret-simulator\n---\napiVersion: simfleet.io/v1alpha1\nkind: CarrierAccount\nmetadata:\n  name: soracom\nspec:\n  provider: soracom\n  baseUrl: {}\n  secretRef:\n    name: soracom-key\n",
            sim.soracom_url()
        ),
    );
    scratch.write(
        "groups.yaml",
        "apiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: north\nspec:\n  carrierRef:\n    name: soracom\n  state: Paused\n  selector:\n    tags: [fleet=north]\n---\napiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: bare\nspec:\n  carrierRef:\n    name: soracom\n  state: Paused\n  selector:\n    tags: [north]\n---\napiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata:\n  name: quota\nspec:\n  carrierRef:\n    name: soracom\n  target:\n    tags: [fleet=north]\n  volumeMB: 100\n  expiry:\n    after: 30d\n",
    );
    let dir = scratch.manifests();
    let out = plan(&["-f", dir.to_str().unwrap(), "--output", "json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let groups = report["simGroups"].as_array().unwrap();
    let north = groups
        .iter()
        .find(|g| g["name"] == "default/north")
        .unwrap();
    assert_eq!(
        (north["selected"].as_u64(), north["toChange"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(north["actions"], 1);
    let bare = groups.iter().find(|g| g["name"] == "default/bare").unwrap();
    assert!(
        bare["error"].as_str().unwrap().contains("NAME=VALUE"),
        "{bare}"
    );
    let quota = &report["dataQuotas"][0];
    assert!(
        quota["error"].as_str().unwrap().contains("no volume cap"),
        "{quota}"
    );
    // Nothing was changed at the carrier.
    let jobs = admin(&sim, "/soracom/jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().is_empty());
    assert_eq!(admin(&sim, "/stats").await["changes"]["appliedSims"], 0);
}

/// Issue 37, point 8: offline, a DataQuota with a relative expiry (`after: 30d`) whose devices
/// already have the declared quota (set 10 days ago, expiring in 20) is not a change: the plan
/// cannot see when it was first applied, and listed every such quota as "to set" in every pull
/// request. A device without the quota is still one.
#[tokio::test]
async fn offline_a_relative_expiry_already_applied_is_not_a_change() {
    let sim = Simulator::start(simfleet_testkit::simulator::live_config(20))
        .await
        .unwrap();
    let carrier = simfleet::carrier::connect(
        &simfleet_testkit::carrier::account(simfleet::api::Provider::Simulator, sim.base_url()),
        secrecy::SecretString::from(simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY),
        simfleet_testkit::carrier::fast_retries(),
        simfleet::carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    let applied = simfleet::model::QuotaSetting {
        volume_mb: 100.0,
        expiry: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 20),
        auto_refill: false,
        threshold_percentage: None,
    };
    for device in [1001, 1002] {
        carrier.set_quota(device, &applied).await.unwrap();
    }
    let scratch = Scratch::new("relative-expiry");
    scratch.write("account.yaml", &account_yaml(&sim));
    scratch.write(
        "quota.yaml",
        "apiVersion: simfleet.io/v1alpha1\nkind: DataQuota\nmetadata:\n  name: pair\nspec:\n  carrierRef:\n    name: simulator\n  target:\n    deviceIds: [1001, 1002, 1003]\n  volumeMB: 100\n  expiry:\n    after: 30d\n",
    );
    let out = plan(&["-f", scratch.manifests().to_str().unwrap()]).await;
    let table = String::from_utf8(out.stdout).unwrap();
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("default/pair"))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    // DEVICES, TO SET, TO TOP UP, UNCHANGED: 1003 has no quota yet.
    assert_eq!(&row[2..6], ["3", "1", "0", "2"], "{table}");
    assert!(
        table.contains("30d after the first apply (not compared offline)"),
        "{table}"
    );
    sim.stop().await;
}
