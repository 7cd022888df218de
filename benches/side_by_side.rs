//! Side by side: the real operator (`simfleet run`, a child process) with the carrier simulator
//! (`simfleet simulator`, another child process) and the sandbox API server, and what a user
//! would otherwise run (`benches/peers/pause_by_tag.py`, Python with `requests`) against the
//! same simulator. Carrier calls are read from the simulator's `/_sim/stats`, the operator's
//! memory and CPU from `/proc/PID`. Prints one Markdown table.
//!
//! Run: `cargo bench --bench side_by_side`. Options after `--`:
//! - `--scale small`: each scenario at a tenth of its size;
//! - `--only NAME`: one scenario (hologram, emnify, soracom, quotas, memory, rollout, groups);
//! - `--groups N`: the many-groups scenario with N groups (to compare two sizes);
//! - `--api-server real`: against the real kube-apiserver that `scripts/control-plane` builds,
//!   counting the operator's requests in its audit log (the DataQuota scenario always uses
//!   the sandbox).
//!
//! The peer needs Python with `requests` (`SIMFLEET_PYTHON`, else `.simfleet/venv`, which
//! `scripts/test` installs).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use simfleet::api::conditions::{READY, is_true};
use simfleet::api::{CarrierAccount, DataQuota, SimGroup};
use simfleet::plan::numbers::thousands;
use simfleet::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use simfleet::simulator::fleet::SEED_TAGS;
use std::sync::Arc;

/// Tags every seeded SIM has exactly one of (the sixth seeded tag, `pilot`, overlaps them).
const TAGS: [&str; 5] = [
    SEED_TAGS[0],
    SEED_TAGS[1],
    SEED_TAGS[2],
    SEED_TAGS[3],
    SEED_TAGS[4],
];
/// Hologram's page and bulk sizes, emnify's page and bulk sizes (the clients use these).
const HOLOGRAM_PAGE: u64 = 1_000;
const HOLOGRAM_BULK: u64 = 10_000;
const EMNIFY_PAGE: u64 = 1_000;
const EMNIFY_BULK: u64 = 2_000;
/// Soracom's page (`/v1/subscribers`, at most 100) and batch job sizes.
const SORACOM_PAGE: u64 = 100;
const SORACOM_JOB: u64 = 10_000;
/// The Soracom tag (`NAME=VALUE`) every SIM of the Soracom fleet carries.
const SORACOM_TAG: &str = "fleet=north";

/// The simulator's Soracom auth key, as the Secret holds it.
const SORACOM_KEY: &str = "keyId-simulator:secret-simulator";

/// One row of the table.
struct Row {
    scenario: String,
    measure: &'static str,
    simfleet: f64,
    peer: Option<f64>,
    floor: Option<f64>,
}

#[tokio::main]
async fn main() {
    let small = std::env::args().any(|a| a == "small");
    let scale = |n: u64| if small { n / 10 } else { n };
    // `-- --only NAME`: the scenarios whose key is NAME (hologram, emnify, soracom, quotas,
    // memory, rollout, groups), to check one row without the others.
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let runs = |key: &str| only.as_deref().is_none_or(|o| o == key);
    // `-- --groups N`: the many-groups scenario with N groups (to compare two sizes).
    let groups = args
        .iter()
        .position(|a| a == "--groups")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<u64>().expect("--groups takes a number"));
    let mut rows = Vec::new();
    if runs("hologram") {
        rows.extend(pause_by_tag(Carrier::Hologram, scale(100_000)).await);
    }
    if runs("emnify") {
        rows.extend(pause_by_tag(Carrier::Emnify, scale(10_000)).await);
    }
    if runs("soracom") {
        rows.extend(pause_by_tag(Carrier::Soracom, scale(25_000)).await);
    }
    if runs("quotas") {
        rows.extend(quiet_hour(scale(10_000)).await);
    }
    if runs("memory") {
        rows.extend(memory_at(scale(1_000_000)).await);
    }
    if runs("rollout") {
        rows.extend(emnify_rollout(10).await);
    }
    if runs("groups") {
        // At rest long enough for a resync (10 minutes); the small scale's minute shows the
        // load between resyncs only.
        let rest = Duration::from_secs(if small { 60 } else { 660 });
        rows.extend(many_groups(groups.unwrap_or(scale(1_000)), 100, rest).await);
    }
    println!("\n| scenario | measure | simfleet | peer | ratio | floor |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let cell = |v: Option<f64>| v.map_or("".to_owned(), figure);
        let ratio = row
            .peer
            .filter(|p| *p > 0.0)
            .map(|p| format!("{:.2}", row.simfleet / p));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.measure,
            figure(row.simfleet),
            cell(row.peer),
            ratio.unwrap_or_default(),
            cell(row.floor)
        );
    }
}

fn figure(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if (v * 10.0).fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Carrier {
    Hologram,
    Emnify,
    Soracom,
}

impl Carrier {
    /// The tags its group selects.
    fn tags(self) -> Vec<&'static str> {
        match self {
            Carrier::Soracom => vec![SORACOM_TAG],
            _ => TAGS.to_vec(),
        }
    }
}

/// N SIMs by tag, paused with the simulator's delay at zero: simfleet's calls and time to
/// Ready, the peer's, and the floor: two listings (to observe and to confirm) and the bulk
/// actions, and on Soracom one read of each job's status (its SIMs show no pending state).
/// (The peer also authenticates to emnify and Soracom once per run; simfleet's token is the
/// one its account check obtained before the clock started.)
async fn pause_by_tag(carrier: Carrier, sims: u64) -> Vec<Row> {
    let name = match carrier {
        Carrier::Hologram => "Hologram",
        Carrier::Emnify => "emnify",
        Carrier::Soracom => "Soracom, batch jobs",
    };
    let scenario = format!("{} SIMs by tag, paused ({name})", thousands(sims));
    let simulator = match carrier {
        Carrier::Soracom => SimulatorProcess::start_soracom(sims).await,
        _ => SimulatorProcess::start(sims).await,
    };
    let (page, bulk) = match carrier {
        Carrier::Hologram => (HOLOGRAM_PAGE, HOLOGRAM_BULK),
        Carrier::Emnify => (EMNIFY_PAGE, EMNIFY_BULK),
        Carrier::Soracom => (SORACOM_PAGE, SORACOM_JOB),
    };
    let mut pages = 0;
    for tag in carrier.tags() {
        pages += simulator.tagged(tag).await.div_ceil(page).max(1);
    }
    let actions = sims.div_ceil(bulk);
    let polls = if carrier == Carrier::Soracom {
        actions
    } else {
        0
    };
    let floor = 2 * pages + actions + polls;

    // simfleet
    let world = World::start(&simulator, carrier).await;
    simulator.clear_stats().await;
    let operator_requests = world.api.requests();
    let started = Instant::now();
    world.create_group("fleet", json!(carrier.tags())).await;
    world.until_ready(1).await;
    let simfleet_seconds = started.elapsed().as_secs_f64();
    let simfleet_calls = simulator.carrier_requests().await;
    let api_requests = world.api.requests() - operator_requests;
    let (api_measure, suffix) = (world.api.measure(), world.api.suffix());
    let scenario = format!("{scenario}{suffix}");
    let rss = world.operator.peak_rss_mib();
    drop(world);

    // the peer, on the same fleet, from the start again
    simulator.reset().await;
    let (peer_seconds, peer_calls) = simulator.peer(carrier).await;
    vec![
        Row {
            scenario: scenario.clone(),
            measure: "carrier calls",
            simfleet: simfleet_calls as f64,
            peer: Some(peer_calls as f64),
            floor: Some(floor as f64),
        },
        Row {
            scenario: scenario.clone(),
            measure: "seconds to Ready",
            simfleet: round(simfleet_seconds),
            peer: Some(round(peer_seconds)),
            floor: None,
        },
        Row {
            scenario: scenario.clone(),
            measure: api_measure,
            simfleet: api_requests as f64,
            peer: None,
            floor: None,
        },
        Row {
            scenario,
            measure: "operator peak RSS MiB",
            simfleet: round(rss),
            peer: None,
            floor: None,
        },
    ]
}

/// `devices` emnify devices with DataQuotas: the calls to apply them, then an hour at rest on
/// the simulator's virtual clock, with 5 devices crossing their threshold in each resync
/// period. An hour at rest cannot pass in a child process without waiting an hour, so here
/// the operator's controllers run in this process, on a clock that follows the simulator's
/// (still a separate process), and each resync is brought forward by a label change once the
/// period has passed on the virtual clock.
async fn quiet_hour(devices: u64) -> Vec<Row> {
    use simfleet::data_quota::schedule::RESYNC;
    let scenario = format!("{} emnify devices with DataQuotas", thousands(devices));
    let simulator = SimulatorProcess::start(devices).await;
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = sandbox.client();
    create_account(
        &client,
        ("applicationToken", simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN),
        json!({"provider": "emnify", "baseUrl": format!("{}/api", simulator.base), "concurrency": 16}),
    )
    .await;
    let clock = Arc::new(FollowedClock::default());
    clock.follow(&simulator).await;
    let context = simfleet::controller::Context::with_clock(
        client.clone(),
        simfleet::api::CarrierUrlPolicy {
            prefixes: vec![simulator.base.clone()],
        },
        simfleet::clock::Clock::from_source(clock.clone()),
    );
    let stop = futures::FutureExt::shared(futures::FutureExt::boxed(std::future::pending::<()>()));
    let accounts = tokio::spawn(simfleet::carrier_account::run(
        context.clone(),
        None,
        None,
        stop.clone(),
    ));
    let quotas_task = tokio::spawn(simfleet::data_quota::run(context.clone(), None, None, stop));
    simulator.clear_stats().await;
    let quotas: Api<DataQuota> = Api::namespaced(client.clone(), "default");
    let quota: DataQuota = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota", "metadata": {"name": "fleet"},
        "spec": {"carrierRef": {"name": "carrier"}, "target": {"tags": SEED_TAGS}, "volumeMB": 100,
                 "expiry": {"after": "30d"}, "thresholdPercentage": 20}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let ready = |q: &DataQuota| {
        q.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, READY))
    };
    let deadline = Instant::now() + Duration::from_secs(1_800);
    while !ready(&quotas.get("fleet").await.unwrap()) {
        assert!(Instant::now() < deadline, "the quotas are not Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    simulator.until_quiet().await;
    let to_apply = simulator.carrier_requests().await;
    let listing_pages = simulator.requests("GET", "/api/v1/endpoint").await;

    // The hour: each resync period passes on the virtual clock, 5 devices cross their
    // threshold, and the resync runs.
    simulator.clear_stats().await;
    let resyncs = 3600 / RESYNC.as_secs();
    let mut device = simfleet::simulator::fleet::device_id(0) - 1;
    for step in 0..resyncs {
        let at = clock.advance(&simulator, RESYNC).await;
        for _ in 0..5 {
            device += 1;
            simulator.consume(device, 85.0).await;
        }
        quotas
            .patch(
                "fleet",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    json!({"metadata": {"labels": {"resync": step.to_string()}}}),
                ),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let status = quotas.get("fleet").await.unwrap().status;
            // Status times are whole seconds.
            if status
                .and_then(|s| s.last_event_time)
                .is_some_and(|t| t.0.as_second() >= at.as_second())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "resync {step} did not report its events"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        simulator.until_quiet().await;
    }
    let in_hour = simulator.carrier_requests().await;
    let pages_in_hour = simulator.requests("GET", "/api/v1/endpoint").await;
    accounts.abort();
    quotas_task.abort();
    // The floors: to apply, the target's pages, one read and one set per device; in the hour,
    // the target's pages and one event listing per resync, the audit's share (each device
    // once a day) and one read per device that crossed its threshold.
    let apply_floor = listing_pages + 2 * devices;
    let hour_floor = pages_in_hour + resyncs + devices / 24 + 5 * resyncs;
    vec![
        Row {
            scenario: scenario.clone(),
            measure: "carrier calls to apply",
            simfleet: to_apply as f64,
            peer: None,
            floor: Some(apply_floor as f64),
        },
        Row {
            scenario,
            measure: "carrier calls in an hour at rest (goal: 500)",
            simfleet: in_hour as f64,
            peer: None,
            floor: Some(hour_floor as f64),
        },
    ]
}

/// The simulator child's virtual clock as the in-process controllers read it: wall time plus
/// the offset the simulator last reported (its clock runs in real time from its start, plus
/// what the bench advanced).
#[derive(Default)]
struct FollowedClock(std::sync::Mutex<jiff::SignedDuration>);

impl FollowedClock {
    /// Takes the simulator's time now.
    async fn follow(&self, simulator: &SimulatorProcess) {
        let now = simulator.clock_now().await;
        *self.0.lock().unwrap() = now.duration_since(jiff::Timestamp::now());
    }

    /// Moves the simulator's clock by `by`, and this clock with it; the new time.
    async fn advance(&self, simulator: &SimulatorProcess, by: Duration) -> jiff::Timestamp {
        let now = simulator
            .admin_json(
                reqwest::Method::POST,
                "/clock/advance",
                json!({"seconds": by.as_secs()}),
            )
            .await["now"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        *self.0.lock().unwrap() = now.duration_since(jiff::Timestamp::now());
        now
    }
}

impl simfleet::clock::TimeSource for FollowedClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
            .checked_add(*self.0.lock().unwrap())
            .unwrap()
    }
}

/// The operator's peak memory observing and pausing a large group (Hologram protocol).
async fn memory_at(sims: u64) -> Vec<Row> {
    let scenario = format!("{} SIMs by tag, paused (Hologram)", thousands(sims));
    let simulator = SimulatorProcess::start(sims).await;
    let world = World::start(&simulator, Carrier::Hologram).await;
    let started = Instant::now();
    world.create_group("fleet", json!(TAGS)).await;
    world.until_ready(1).await;
    vec![
        Row {
            scenario: scenario.clone(),
            measure: "seconds to Ready",
            simfleet: round(started.elapsed().as_secs_f64()),
            peer: None,
            floor: None,
        },
        Row {
            scenario,
            measure: "operator peak RSS MiB",
            simfleet: round(world.operator.peak_rss_mib()),
            peer: None,
            floor: None,
        },
    ]
}

/// An emnify group paused in a rollout of `actions` actions (2 s apart): emnify lists no
/// jobs, so each look at the SIMs is a listing; the floor is one listing per action and one
/// that finds the last action landed.
async fn emnify_rollout(actions: u64) -> Vec<Row> {
    let simulator = SimulatorProcess::start(2_000).await;
    let tagged = simulator.tagged(TAGS[1]).await;
    let scenario =
        format!("{tagged} SIMs by tag, paused in a rollout of {actions} actions (emnify)");
    let world = World::start(&simulator, Carrier::Emnify).await;
    simulator.clear_stats().await;
    world
        .create_group_spec(
            "fleet",
            json!({"carrierRef": {"name": "carrier"}, "state": "Paused", "selector": {"tags": [TAGS[1]]},
                   "rollout": {"maxSimsPerAction": tagged.div_ceil(actions), "interval": "2s"}}),
        )
        .await;
    world.until_ready(1).await;
    let listings = simulator.requests("GET", "/api/v1/endpoint").await;
    let sent = simulator.requests("PATCH", "/api/v2/endpoint/multi").await;
    vec![Row {
        scenario,
        measure: "listings per action",
        simfleet: (listings as f64 / sent.max(1) as f64 * 100.0).round() / 100.0,
        peer: None,
        floor: Some(((actions + 1) as f64 / actions as f64 * 100.0).round() / 100.0),
    }]
}

/// `groups` SimGroups of `per_group` SIMs each, by ICCID (one per customer, as a policy engine
/// writes them): time until all are Ready, then `rest` at rest: API-server requests and
/// carrier calls, and the operator's CPU, per minute.
async fn many_groups(groups: u64, per_group: u64, rest: Duration) -> Vec<Row> {
    let scenario = format!("{} SimGroups of {per_group} SIMs", thousands(groups));
    let simulator = SimulatorProcess::start(groups * per_group).await;
    let world = World::start(&simulator, Carrier::Hologram).await;
    simulator.clear_stats().await;
    let started = Instant::now();
    for g in 0..groups {
        let iccids: Vec<String> = (0..per_group)
            .map(|i| format!("{}", 8944500000000000001u64 + g * per_group + i))
            .collect();
        world
            .create_group_spec(
                &format!("customer-{g}"),
                json!({"carrierRef": {"name": "carrier"}, "selector": {"iccids": iccids}, "state": "Paused"}),
            )
            .await;
    }
    world.until_ready(groups as usize).await;
    let to_ready = started.elapsed().as_secs_f64();
    let calls_to_ready = simulator.carrier_requests().await;

    // At rest: what the operator asks of the API server and the carrier, and its CPU.
    let minutes = rest.as_secs_f64() / 60.0;
    simulator.clear_stats().await;
    let api_before = world.api.requests();
    let cpu_before = world.operator.cpu_seconds();
    tokio::time::sleep(rest).await;
    let api_per_minute = (world.api.requests() - api_before) as f64 / minutes;
    let scenario = format!("{scenario}{}", world.api.suffix());
    let api_measure = if world.api.suffix().is_empty() {
        "API-server requests per minute at rest"
    } else {
        "kube-apiserver requests per minute at rest, by the operator (audit log)"
    };
    let calls_per_minute = simulator.carrier_requests().await as f64 / minutes;
    let cpu_per_minute = (world.operator.cpu_seconds() - cpu_before) / minutes;
    vec![
        Row {
            scenario: scenario.clone(),
            measure: "seconds to all Ready",
            simfleet: round(to_ready),
            peer: None,
            floor: None,
        },
        Row {
            scenario: scenario.clone(),
            measure: "carrier calls to all Ready",
            simfleet: calls_to_ready as f64,
            peer: None,
            // Per group: one lookup of its ICCIDs to observe, one action, one lookup to
            // confirm (simfleet also asks the jobs list once before confirming).
            floor: Some((3 * groups) as f64),
        },
        Row {
            scenario: scenario.clone(),
            measure: api_measure,
            simfleet: round(api_per_minute),
            peer: None,
            floor: None,
        },
        Row {
            scenario: scenario.clone(),
            measure: "carrier calls per minute at rest",
            simfleet: round(calls_per_minute),
            peer: None,
            // One lookup per group per resync (10 minutes), when the window holds one.
            floor: (minutes >= 10.0).then(|| round(groups as f64 / 10.0)),
        },
        Row {
            scenario,
            measure: "operator CPU seconds per minute at rest",
            simfleet: (cpu_per_minute * 100.0).round() / 100.0,
            peer: None,
            floor: None,
        },
    ]
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `simfleet simulator` as a child process, with every change landing at once.
struct SimulatorProcess {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl SimulatorProcess {
    async fn start(sims: u64) -> Self {
        Self::start_with(&["--sims".to_owned(), sims.to_string()]).await
    }

    /// A fleet of `sims` SIMs all tagged [`SORACOM_TAG`] (a fleet file), whose Soracom batch
    /// tasks take no time.
    async fn start_soracom(sims: u64) -> Self {
        let mut yaml = String::from("sims:\n");
        for i in 0..sims {
            yaml.push_str(&format!(
                "  - {{iccid: \"{}\", tags: [{SORACOM_TAG}]}}\n",
                8_944_500_000_000_000_001u64 + i
            ));
        }
        let path = std::env::temp_dir().join(format!(
            "simfleet-side-by-side-soracom-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, yaml).unwrap();
        Self::start_with(&[
            "--fleet".to_owned(),
            path.display().to_string(),
            "--soracom-task-ms".to_owned(),
            "0".to_owned(),
        ])
        .await
    }

    async fn start_with(fleet: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .args(["simulator", "--listen", "127.0.0.1:0"])
            .args(fleet)
            .args([
                "--delay-min",
                "0s",
                "--delay-max",
                "0s",
                "--slow-share",
                "0",
            ])
            .args(["--paused-share", "0", "--paused-by-system-share", "0"])
            .args(["--deactivated-share", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        // Read on a thread of its own until the simulator ends: a closed pipe would stop it at
        // its next line.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("provider: simulator").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let base = tokio::task::spawn_blocking(move || {
            rx.recv_timeout(Duration::from_secs(600))
                .expect("the simulator prints its base URL")
        })
        .await
        .unwrap();
        Self {
            child,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> Value {
        let answer = self
            .http
            .request(method, format!("{}/_sim{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap_or(Value::Null)
    }

    async fn admin_json(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .request(method, format!("{}/_sim{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap()
    }

    /// The virtual clock's time.
    async fn clock_now(&self) -> jiff::Timestamp {
        self.admin(reqwest::Method::GET, "/clock").await["now"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A device uses data.
    async fn consume(&self, device: u64, mb: f64) {
        self.admin_json(
            reqwest::Method::POST,
            "/consume",
            json!({"deviceId": device, "mb": mb}),
        )
        .await;
    }

    /// Waits until the carrier hears nothing for half a second.
    async fn until_quiet(&self) {
        loop {
            let heard = self.carrier_requests().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.carrier_requests().await == heard {
                return;
            }
        }
    }

    /// How many SIMs carry `tag`.
    async fn tagged(&self, tag: &str) -> u64 {
        let tag = tag.replace('=', "%3D");
        self.admin(reqwest::Method::GET, &format!("/sims?tag={tag}&limit=1"))
            .await["total"]
            .as_u64()
            .unwrap()
    }

    async fn clear_stats(&self) {
        self.admin(reqwest::Method::DELETE, "/stats").await;
    }

    async fn reset(&self) {
        self.admin(reqwest::Method::POST, "/reset").await;
    }

    /// Requests since the stats were cleared, summed over the rows of `/_sim/stats` that
    /// `counted` accepts.
    async fn counted_requests(&self, counted: impl Fn(&Value) -> bool) -> u64 {
        self.admin(reqwest::Method::GET, "/stats").await["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| counted(r))
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    }

    /// Carrier requests since the stats were cleared (the admin routes left out).
    async fn carrier_requests(&self) -> u64 {
        self.counted_requests(|r| {
            !r["route"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/_sim/")
        })
        .await
    }

    /// Successful `method route` requests since the stats were cleared.
    async fn requests(&self, method: &str, route: &str) -> u64 {
        self.counted_requests(|r| {
            r["method"] == method
                && r["route"] == route
                && r["status"].as_u64().is_some_and(|s| s < 300)
        })
        .await
    }

    /// Runs the peer against this simulator: its seconds and its carrier calls.
    async fn peer(&self, carrier: Carrier) -> (f64, u64) {
        let (carrier_name, url, credential) = match carrier {
            Carrier::Hologram => (
                "hologram",
                format!("{}/api/1", self.base),
                simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY,
            ),
            Carrier::Emnify => (
                "emnify",
                format!("{}/api", self.base),
                simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN,
            ),
            Carrier::Soracom => ("soracom", self.base.clone(), SORACOM_KEY),
        };
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers/pause_by_tag.py");
        let args: Vec<String> = [carrier_name.to_owned(), url, credential.to_owned()]
            .into_iter()
            .chain(carrier.tags().iter().map(|t| t.to_string()))
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python()).arg(script).args(args).output()
        })
        .await
        .unwrap()
        .expect("the peer runs");
        assert!(
            out.status.success(),
            "the peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            report["seconds"].as_f64().unwrap(),
            self.carrier_requests().await,
        )
    }
}

impl Drop for SimulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> PathBuf {
    std::env::var_os("SIMFLEET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".simfleet/venv/bin/python")
        })
}

/// The API server a scenario runs against: the sandbox in this process, or the real
/// kube-apiserver that `scripts/control-plane` builds (`-- --api-server real`).
enum ApiServer {
    Sandbox(SandboxHandle),
    Real(RealControlPlane),
}

impl ApiServer {
    async fn start() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let real = args
            .iter()
            .position(|a| a == "--api-server")
            .and_then(|i| args.get(i + 1))
            .is_some_and(|server| server == "real");
        if real {
            ApiServer::Real(RealControlPlane::start())
        } else {
            ApiServer::Sandbox(Sandbox::start(SandboxConfig::default()).await.unwrap())
        }
    }

    async fn client(&self) -> kube::Client {
        match self {
            ApiServer::Sandbox(sandbox) => sandbox.client(),
            ApiServer::Real(plane) => plane.client().await,
        }
    }

    fn kubeconfig(&self) -> String {
        match self {
            ApiServer::Sandbox(sandbox) => sandbox.kubeconfig(),
            ApiServer::Real(plane) => {
                std::fs::read_to_string(plane.dir.join("kubeconfig")).unwrap()
            }
        }
    }

    /// Requests the server has answered: the sandbox counts every request (the bench's polls
    /// included); the real server's audit log says which came from the operator.
    fn requests(&self) -> u64 {
        match self {
            ApiServer::Sandbox(sandbox) => sandbox.state().request_count(),
            ApiServer::Real(plane) => plane.operator_requests(),
        }
    }

    /// What the requests row counts.
    fn measure(&self) -> &'static str {
        match self {
            ApiServer::Sandbox(_) => "API-server requests (bench's polls included)",
            ApiServer::Real(_) => "kube-apiserver requests by the operator (audit log)",
        }
    }

    /// How the scenario's name says which server it ran against.
    fn suffix(&self) -> &'static str {
        match self {
            ApiServer::Sandbox(_) => "",
            ApiServer::Real(_) => ", real kube-apiserver",
        }
    }
}

/// etcd, kube-apiserver (with an audit log) and kube-controller-manager, started by
/// `scripts/control-plane up`, with simfleet's CRDs; stopped when dropped.
struct RealControlPlane {
    dir: PathBuf,
}

impl RealControlPlane {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "simfleet-side-by-side-plane-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/control-plane");
        let up = Command::new(&script).arg("up").arg(&dir).output().unwrap();
        assert!(
            up.status.success(),
            "scripts/control-plane up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let plane = Self { dir };
        let kubectl = std::env::var("SIMFLEET_KUBECTL").unwrap_or_else(|_| {
            format!("{}/.simfleet/venv/bin/kubectl", env!("CARGO_MANIFEST_DIR"))
        });
        let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
        for args in [
            vec![
                "apply".to_owned(),
                "--server-side".to_owned(),
                "-f".to_owned(),
                crds.display().to_string(),
            ],
            vec![
                "wait".to_owned(),
                "--for=condition=Established".to_owned(),
                "--timeout=60s".to_owned(),
                "crd/simgroups.simfleet.io".to_owned(),
                "crd/carrieraccounts.simfleet.io".to_owned(),
                "crd/dataquotas.simfleet.io".to_owned(),
            ],
        ] {
            let out = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(plane.dir.join("kubeconfig"))
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        plane
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.dir.join("kubeconfig")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The operator's requests so far: audit events whose user agent is the operator's, each
    /// request once (a watch logs its start and its end).
    fn operator_requests(&self) -> u64 {
        let log = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        let ids: std::collections::HashSet<String> = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| {
                event["userAgent"]
                    .as_str()
                    .is_some_and(|ua| ua.starts_with("simfleet-operator/"))
            })
            .filter_map(|event| event["auditID"].as_str().map(str::to_owned))
            .collect();
        ids.len() as u64
    }
}

impl Drop for RealControlPlane {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/control-plane");
        let _ = Command::new(script).arg("down").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates the Secret `carrier` holding `credential` (its key and value) and the
/// CarrierAccount `carrier` with `spec` (provider, base URL, ...), the Secret as its
/// `secretRef`, and no rate limit to speak of: the peer is not rate limited either.
async fn create_account(client: &kube::Client, credential: (&str, &str), spec: Value) {
    let (key, value) = credential;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "carrier"}, "stringData": {key: value}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut spec = spec;
    spec["secretRef"] = json!({"name": "carrier"});
    spec["rateLimit"] = json!({"requestsPerSecond": 1000, "burst": 1000});
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "carrier"},
        "spec": spec
    }))
    .unwrap();
    Api::<CarrierAccount>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
}

/// An API server (the sandbox, or the real one), a CarrierAccount on the simulator, and the
/// operator (`simfleet run`) as a child process.
struct World {
    api: ApiServer,
    client: kube::Client,
    operator: OperatorProcess,
    kubeconfig: PathBuf,
}

impl World {
    async fn start(simulator: &SimulatorProcess, carrier: Carrier) -> Self {
        let api = ApiServer::start().await;
        let kubeconfig =
            std::env::temp_dir().join(format!("simfleet-side-by-side-{}.yaml", std::process::id()));
        std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
        let client = api.client().await;
        let (provider, url, key, credential) = match carrier {
            Carrier::Hologram => (
                "simulator",
                simulator.base.clone(),
                "apiKey",
                simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY,
            ),
            Carrier::Emnify => (
                "emnify",
                format!("{}/api", simulator.base),
                "applicationToken",
                simfleet::simulator::DEFAULT_EMNIFY_APP_TOKEN,
            ),
            Carrier::Soracom => ("soracom", simulator.base.clone(), "authKey", SORACOM_KEY),
        };
        create_account(
            &client,
            (key, credential),
            json!({"provider": provider, "baseUrl": url}),
        )
        .await;
        let accounts = Api::<CarrierAccount>::namespaced(client.clone(), "default");
        let mut flags = vec![];
        if carrier != Carrier::Hologram {
            flags.push(format!("--allowed-carrier-url={}", simulator.base));
        }
        let operator = OperatorProcess::start(&kubeconfig, &flags);
        let world = Self {
            api,
            client,
            operator,
            kubeconfig,
        };
        // The account is verified before the clock starts.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let account = accounts.get("carrier").await.unwrap();
            let ready = account
                .status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, READY));
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the account is not Ready: {account:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        world
    }

    fn groups(&self) -> Api<SimGroup> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn create_group(&self, name: &str, tags: Value) {
        self.create_group_spec(
            name,
            json!({"carrierRef": {"name": "carrier"}, "selector": {"tags": tags}, "state": "Paused"}),
        )
        .await;
    }

    async fn create_group_spec(&self, name: &str, spec: Value) {
        let group: SimGroup = serde_json::from_value(json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        self.groups()
            .create(&PostParams::default(), &group)
            .await
            .unwrap();
    }

    /// Polls (one list every 100 ms, as fine as the peer's own clock) until `count` groups
    /// are Ready.
    async fn until_ready(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(3_600);
        loop {
            let groups = self.groups().list(&ListParams::default()).await.unwrap();
            let ready = groups
                .items
                .iter()
                .filter(|g| {
                    g.status
                        .as_ref()
                        .is_some_and(|s| is_true(&s.conditions, READY))
                })
                .count();
            if ready >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ready} of {count} groups Ready after an hour"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// `simfleet run` as a child process, killed when dropped.
struct OperatorProcess(Child);

impl OperatorProcess {
    fn start(kubeconfig: &std::path::Path, flags: &[String]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .arg("run")
            .args(flags)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", "bench")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the operator starts");
        Self(child)
    }

    /// Peak resident memory (`VmHWM`), MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// User and system CPU time so far, seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        // The fields after the command name (which may hold spaces) closed by ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
