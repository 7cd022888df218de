//! Random histories of user, carrier and cluster events, applied to the real operator
//! (`simfleet run`, a child process), the carrier simulator and an API server (the sandbox, or
//! kube-apiserver), and checked after each settle against the reference model (`model.rs`).
//! Seeded: a failure prints its seed, the events so far and one command that replays it.

pub mod model;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::{Value, json};
use simfleet::api::{DataQuota, SimGroup};
use simfleet::simulator::SimulatorConfig;

use super::e2e::E2e;
use super::operator::Operator;
use super::together::apply_in;
use model::{Event, Model, QuotaTarget, Selector, Sim, State, Want};

const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
const TAGS: [&str; 6] = simfleet::simulator::fleet::SEED_TAGS;
const FLEET: usize = 40;

/// The simulator's default fleet of 40 SIMs (problem SIMs are added at the start).
pub fn fleet_config() -> SimulatorConfig {
    SimulatorConfig::for_tests(FLEET, SignedDuration::from_secs(10))
}

/// The next event of a history, from the model's groups (never from observations, so that a
/// seed replays the same events).
fn next_event(rng: &mut fastrand::Rng, model: &Model, serial: &mut u32) -> Event {
    let names: Vec<String> = model.groups.iter().map(|g| g.name.clone()).collect();
    let quotas: Vec<String> = model.quotas.iter().map(|q| q.name.clone()).collect();
    // While a namespace's credentials are broken, nothing there is deleted or approved (a
    // deletion waits for the account, as it should; the model does not follow it there).
    let working = |namespace: &str| !model.broken.contains(namespace);
    let deletable: Vec<String> = model
        .groups
        .iter()
        .filter(|g| working(g.namespace))
        .map(|g| g.name.clone())
        .collect();
    let deletable_quotas: Vec<String> = model
        .quotas
        .iter()
        .filter(|q| working(q.namespace))
        .map(|q| q.name.clone())
        .collect();
    let namespace = |rng: &mut fastrand::Rng| NAMESPACES[rng.usize(0..2)];
    // Few volumes, so that DataQuotas on one device agree as often as they disagree.
    let volume = |rng: &mut fastrand::Rng| [10, 20][rng.usize(0..2)];
    let pick_sims = |rng: &mut fastrand::Rng| -> Vec<&Sim> {
        let n = rng.usize(1..=3);
        let mut sims: Vec<&Sim> = (0..n)
            .map(|_| &model.sims[rng.usize(0..model.sims.len())])
            .collect();
        sims.sort_by_key(|s| s.device);
        sims.dedup_by_key(|s| s.device);
        sims
    };
    let selector = |rng: &mut fastrand::Rng| match rng.u8(0..3) {
        0 => Selector::Tag(TAGS[rng.usize(0..TAGS.len())].to_owned()),
        1 => Selector::Iccids(pick_sims(rng).iter().map(|s| s.iccid.clone()).collect()),
        _ => Selector::Devices(pick_sims(rng).iter().map(|s| s.device).collect()),
    };
    loop {
        let roll = rng.u8(0..125);
        let event = match roll {
            0..30 if names.len() < 6 => {
                *serial += 1;
                Event::Create {
                    namespace: namespace(rng),
                    name: format!("g{serial}"),
                    want: if rng.bool() {
                        Want::Active
                    } else {
                        Want::Paused
                    },
                    selector: selector(rng),
                    restore: rng.bool(),
                    guard: (rng.u8(0..3) == 0).then_some(2),
                }
            }
            30..50 if !names.is_empty() => Event::Flip {
                name: names[rng.usize(0..names.len())].clone(),
            },
            50..62 if !names.is_empty() => Event::Select {
                name: names[rng.usize(0..names.len())].clone(),
                selector: selector(rng),
            },
            62..76 if !deletable.is_empty() => Event::Delete {
                name: deletable[rng.usize(0..deletable.len())].clone(),
            },
            76..86 => Event::Drift {
                device: model.sims[rng.usize(0..model.sims.len())].device,
                to: if rng.bool() {
                    State::Live
                } else {
                    State::PausedUser
                },
            },
            86..89 => Event::SystemPause {
                device: model.sims[rng.usize(0..model.sims.len())].device,
            },
            89..93 if !deletable.is_empty() => Event::Approve {
                name: deletable[rng.usize(0..deletable.len())].clone(),
            },
            93..95 if !deletable.is_empty() => Event::ApproveAhead {
                name: deletable[rng.usize(0..deletable.len())].clone(),
            },
            95..97 if !names.is_empty() => {
                let namespace = namespace(rng);
                if !working(namespace) {
                    continue;
                }
                Event::DeleteNamespace { namespace }
            }
            97..100 => Event::Kill,
            100..110 if quotas.len() < 4 => {
                *serial += 1;
                let namespace = namespace(rng);
                let here: Vec<&String> = model
                    .groups
                    .iter()
                    .filter(|g| g.namespace == namespace)
                    .map(|g| &g.name)
                    .collect();
                let target = match rng.u8(0..3) {
                    0 if !here.is_empty() => {
                        QuotaTarget::Group(here[rng.usize(0..here.len())].clone())
                    }
                    1 => QuotaTarget::Tag(TAGS[rng.usize(0..TAGS.len())].to_owned()),
                    _ => QuotaTarget::Devices(pick_sims(rng).iter().map(|s| s.device).collect()),
                };
                Event::CreateQuota {
                    namespace,
                    name: format!("q{serial}"),
                    target,
                    volume: volume(rng),
                    remove: rng.bool(),
                }
            }
            110..114 if !quotas.is_empty() => Event::EditQuota {
                name: quotas[rng.usize(0..quotas.len())].clone(),
                volume: [10, 20, 30][rng.usize(0..3)],
            },
            114..120 if !deletable_quotas.is_empty() => Event::DeleteQuota {
                name: deletable_quotas[rng.usize(0..deletable_quotas.len())].clone(),
            },
            120..125 => {
                let namespace = namespace(rng);
                if working(namespace) {
                    Event::BreakSecret { namespace }
                } else {
                    Event::RepairSecret { namespace }
                }
            }
            _ => continue,
        };
        return event;
    }
}

/// A world for histories: the sandbox, the simulator with problem SIMs, two namespaces whose
/// accounts reach one carrier organisation, and one operator for every namespace.
struct Harness<'a> {
    e2e: E2e<'a>,
    operator: Option<Operator>,
    /// The operator's log (every start appends), whose end a failure shows.
    log: std::path::PathBuf,
}

impl<'a> Harness<'a> {
    async fn start(e2e: E2e<'a>) -> (Self, Model) {
        // Problem SIMs in every fleet: deactivated, paused by the carrier, paused by a person.
        for (device, state) in [(1004, "DEAD"), (1008, "PAUSED-SYS"), (1012, "PAUSED-USER")] {
            simfleet_testkit::simulator::admin_send(
                &e2e.simulator,
                reqwest::Method::PATCH,
                &format!("/sims/{device}"),
                &json!({"state": state}),
            )
            .await;
        }
        for namespace in NAMESPACES {
            super::together::create_namespace(&e2e, namespace).await;
            apply_in(&e2e, namespace, e2e.accounts_yaml()).await;
        }
        let listed =
            simfleet_testkit::simulator::admin_get(&e2e.simulator, "/sims?limit=1000").await;
        let sims = listed["sims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Sim {
                device: s["deviceId"].as_u64().unwrap(),
                iccid: s["iccid"].as_str().unwrap().to_owned(),
                tags: s["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect(),
                state: State::parse(s["state"].as_str().unwrap()),
                quota: quota_volume(s),
            })
            .collect();
        static HISTORIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let log = std::env::temp_dir().join(format!(
            "simfleet-model-{}-{}-{}.log",
            e2e.server_name(),
            std::process::id(),
            HISTORIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&log);
        let mut harness = Self {
            e2e,
            operator: None,
            log,
        };
        harness.start_operator();
        (harness, Model::new(sims))
    }

    fn start_operator(&mut self) {
        let allowed = format!("--allowed-carrier-url={}", self.e2e.simulator.base_url());
        // The wait after a start for peers that cannot read (a broken Secret) is shortened, so
        // that a history does not spend two minutes in it; it is still much longer than peers
        // that can read take.
        self.operator = Some(Operator::start_logging_to(
            &self.e2e.kubeconfig,
            &[allowed.as_str(), "--peer-read-wait=20s"],
            &self.log,
        ));
    }

    /// Applies an event to the world.
    async fn apply(&mut self, event: &Event, model: &Model) {
        let e2e = &self.e2e;
        match event {
            Event::Create {
                namespace,
                name,
                want,
                selector,
                restore,
                guard,
            } => {
                let mut spec = json!({
                    "carrierRef": {"name": "simulator"},
                    "state": want.name(),
                    "selector": selector_json(selector),
                    "onDelete": if *restore { "Restore" } else { "Orphan" },
                    "driftCheck": "2s",
                });
                if let Some(guard) = guard {
                    spec["guard"] = json!({"maxChangesWithoutApproval": guard});
                }
                let yaml = json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup",
                    "metadata": {"name": name}, "spec": spec});
                apply_in(e2e, namespace, yaml.to_string()).await;
            }
            Event::Flip { name } => {
                let group = model.group(name).unwrap();
                let patch = json!({"spec": {"state": group.want.other().name()}});
                patch_group(e2e, group.namespace, name, patch).await;
            }
            Event::Select { name, selector } => {
                let group = model.group(name).unwrap();
                let patch = json!({"spec": {"selector": {"tags": null, "iccids": null, "deviceIds": null}}});
                let mut patch = patch;
                for (key, value) in selector_json(selector).as_object().unwrap() {
                    patch["spec"]["selector"][key] = value.clone();
                }
                patch_group(e2e, group.namespace, name, patch).await;
            }
            Event::Delete { name } => {
                let group = model.group(name).unwrap();
                let out = e2e
                    .kubectl_with(
                        &["delete", "sg", name, "-n", group.namespace, "--wait=false"],
                        None,
                    )
                    .await;
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Event::Drift { device, to } => {
                let now = e2e.sim_state(*device).await;
                if matches!(now.as_str(), "LIVE" | "PAUSED-USER") {
                    simfleet_testkit::simulator::admin_send(
                        &e2e.simulator,
                        reqwest::Method::PATCH,
                        &format!("/sims/{device}"),
                        &json!({"state": to.name()}),
                    )
                    .await;
                }
            }
            Event::SystemPause { device } => {
                let now = e2e.sim_state(*device).await;
                if matches!(now.as_str(), "LIVE" | "PAUSED-USER") {
                    simfleet_testkit::simulator::admin_send(
                        &e2e.simulator,
                        reqwest::Method::PATCH,
                        &format!("/sims/{device}"),
                        &json!({"state": "PAUSED-SYS"}),
                    )
                    .await;
                }
            }
            Event::Approve { name } => {
                let group = model.group(name).unwrap();
                let live = kube::Api::<SimGroup>::namespaced(e2e.client.clone(), group.namespace)
                    .get(name)
                    .await
                    .unwrap();
                if let Some(held) = live.status.and_then(|s| s.held_change) {
                    let annotation = format!("simfleet.io/approved-change={}", held.digest);
                    annotate(e2e, group.namespace, name, &annotation).await;
                }
            }
            Event::ApproveAhead { name } => {
                let group = model.group(name).unwrap();
                let annotation =
                    format!("simfleet.io/approved-generation={}", group.generation + 1);
                annotate(e2e, group.namespace, name, &annotation).await;
            }
            Event::DeleteNamespace { namespace } => {
                let out = e2e
                    .kubectl_with(&["delete", "namespace", namespace, "--wait=false"], None)
                    .await;
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                super::together::until_gone(e2e, None, "namespace", namespace).await;
                super::together::create_namespace(e2e, namespace).await;
                apply_in(e2e, namespace, e2e.accounts_yaml()).await;
            }
            Event::Kill => {
                // Drop kills (SIGKILL) and reaps the child.
                self.operator = None;
                self.start_operator();
            }
            Event::CreateQuota {
                namespace,
                name,
                target,
                volume,
                remove,
            } => {
                let target = match target {
                    QuotaTarget::Devices(devices) => json!({"deviceIds": devices}),
                    QuotaTarget::Tag(tag) => json!({"tags": [tag]}),
                    QuotaTarget::Group(group) => json!({"simGroupRef": {"name": group}}),
                };
                let yaml = json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "DataQuota",
                    "metadata": {"name": name},
                    "spec": {"carrierRef": {"name": "simulator"}, "target": target,
                        "volumeMB": volume, "expiry": {"after": "30d"},
                        "onDelete": if *remove { "Remove" } else { "Orphan" }}});
                apply_in(e2e, namespace, yaml.to_string()).await;
            }
            Event::EditQuota { name, volume } => {
                let quota = model.quota(name).unwrap();
                let patch = json!({"spec": {"volumeMB": volume}});
                kubectl_ok(
                    e2e,
                    &[
                        "patch",
                        "dq",
                        name,
                        "-n",
                        quota.namespace,
                        "--type=merge",
                        "-p",
                        &patch.to_string(),
                    ],
                )
                .await;
            }
            Event::DeleteQuota { name } => {
                let quota = model.quota(name).unwrap();
                kubectl_ok(
                    e2e,
                    &["delete", "dq", name, "-n", quota.namespace, "--wait=false"],
                )
                .await;
            }
            Event::BreakSecret { namespace } => {
                set_simulator_key(e2e, namespace, "refused-by-the-carrier").await;
                account_ready_is(e2e, namespace, "False").await;
            }
            Event::RepairSecret { namespace } => {
                set_simulator_key(e2e, namespace, simfleet_testkit::simulator::API_KEY).await;
                account_ready_is(e2e, namespace, "True").await;
            }
        }
    }

    /// Waits until the world agrees with the model (or the deadline), then checks it; the
    /// differences when it does not. `submitted_before`: the carrier's count of submitted SIMs
    /// at the last settle; returns the count at this one.
    async fn settle_and_check(
        &mut self,
        model: &mut Model,
        submitted_before: u64,
        changed: usize,
    ) -> Result<u64, String> {
        // Long enough for an account to read its repaired Secret again (at least once a
        // minute) and for a group held after a restart by a peer that cannot read (20 s here).
        let deadline = Instant::now() + Duration::from_secs(150);
        let stats = loop {
            // An operator that exited (a panic, a crash) settles nothing: said at once.
            if let Some(exited) = self
                .operator
                .as_mut()
                .and_then(|o| o.0.try_wait().ok().flatten())
            {
                return Err(format!("the operator exited: {exited}"));
            }
            // The carrier's counts first: a submit after them leaves its SIM pending in the
            // listing the differences read (not settled), or is counted at the next step.
            let stats = simfleet_testkit::simulator::admin_get(&self.e2e.simulator, "/stats").await;
            let differences = self.differences(model).await;
            if differences.is_empty() {
                break stats;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "did not settle as the model says:\n  {}",
                    differences.join("\n  ")
                ));
            }
            self.e2e.simulator.advance(SignedDuration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // A SIM the model cannot tell (see model.rs) is taken as observed; a change of it counts
        // among the changes the carrier may have been asked for.
        let mut changed = changed;
        let listed =
            simfleet_testkit::simulator::admin_get(&self.e2e.simulator, "/sims?limit=1000").await;
        let listed: BTreeMap<u64, &Value> = listed["sims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["deviceId"].as_u64().unwrap(), s))
            .collect();
        for device in model.free.clone() {
            let state = State::parse(listed[&device]["state"].as_str().unwrap());
            if model
                .sims
                .iter()
                .any(|s| s.device == device && s.state != state)
            {
                changed += 1;
            }
            model.adopt(device, state);
        }
        for device in model.free_quotas.clone() {
            model.adopt_quota(device, quota_volume(listed[&device]));
        }
        let redundant = stats["changes"]["redundantSims"].as_u64().unwrap();
        if redundant != 0 {
            return Err(format!("redundantSims is {redundant}"));
        }
        let total = stats["changes"]["submittedSims"].as_u64().unwrap();
        let submitted = total - submitted_before;
        if submitted > changed as u64 {
            let jobs = simfleet_testkit::simulator::admin_get(&self.e2e.simulator, "/jobs").await;
            return Err(format!(
                "{submitted} SIMs submitted where the model changes {changed}: a group changed a SIM it should not have, or sent one twice; the carrier's jobs: {jobs}"
            ));
        }
        Ok(total)
    }

    /// Where the world and the model disagree (empty: settled as the model says).
    async fn differences(&self, model: &Model) -> Vec<String> {
        let e2e = &self.e2e;
        let mut out = Vec::new();
        let listed =
            simfleet_testkit::simulator::admin_get(&e2e.simulator, "/sims?limit=1000").await;
        let observed: BTreeMap<u64, (String, bool, Option<u32>)> = listed["sims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["deviceId"].as_u64().unwrap(),
                    (
                        s["state"].as_str().unwrap().to_owned(),
                        !s["pending"].is_null(),
                        quota_volume(s),
                    ),
                )
            })
            .collect();
        for sim in &model.sims {
            let (state, pending, quota) = &observed[&sim.device];
            if !model.free_quotas.contains(&sim.device) && *quota != sim.quota {
                let claimants: Vec<String> = model
                    .quota_claimants(sim)
                    .iter()
                    .map(|q| format!("{}/{} {} MB", q.namespace, q.name, q.volume))
                    .collect();
                out.push(format!(
                    "device {} has a quota of {quota:?} MB, the model says {:?} (targeted by {claimants:?})",
                    sim.device, sim.quota
                ));
            }
            if *pending {
                out.push(format!("SIM {} pending at the carrier", sim.device));
            } else if !model.free.contains(&sim.device) && state != sim.state.name() {
                let claimants: Vec<String> = model
                    .claimants(sim)
                    .iter()
                    .map(|g| format!("{}/{} {}", g.namespace, g.name, g.want.name()))
                    .collect();
                out.push(format!(
                    "SIM {} ({}) is {state}, the model says {} (claimed by {claimants:?})",
                    sim.device,
                    sim.tags.join(","),
                    sim.state.name()
                ));
            }
        }
        for namespace in NAMESPACES {
            let api = kube::Api::<SimGroup>::namespaced(e2e.client.clone(), namespace);
            let live = api
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for group in &live {
                let name = group.metadata.name.clone().unwrap();
                let Some(expected) = model.group(&name).filter(|g| g.namespace == namespace) else {
                    out.push(format!("{namespace}/{name} is still there"));
                    continue;
                };
                let Some(status) = &group.status else {
                    out.push(format!("{namespace}/{name} has no status"));
                    continue;
                };
                if model.broken.contains(namespace) {
                    out.extend(not_ready(
                        &format!("{namespace}/{name}"),
                        &status.conditions,
                    ));
                    continue;
                }
                if status.observed_generation != group.metadata.generation
                    || status.conditions.is_empty()
                    || !status.pending_actions.is_empty()
                {
                    out.push(format!(
                        "{namespace}/{name} not settled: observed {:?} of {:?}, {} conditions, {} pending",
                        status.observed_generation,
                        group.metadata.generation,
                        status.conditions.len(),
                        status.pending_actions.len()
                    ));
                    continue;
                }
                if model.group_uncertain(expected) || expected.hold_uncertain {
                    continue;
                }
                let held = status
                    .held_change
                    .as_ref()
                    .is_some_and(|h| Some(h.generation) == group.metadata.generation);
                if held != expected.held {
                    out.push(format!(
                        "{namespace}/{name} held for approval: {held}, the model says {}",
                        expected.held
                    ));
                }
                let counts = status.counts.clone().unwrap_or_default();
                let (selected, conflicting) = model.counts(expected);
                if (counts.selected, counts.conflicting) != (selected, conflicting) {
                    out.push(format!(
                        "{namespace}/{name} counts selected {} conflicting {}, the model says {selected} and {conflicting}",
                        counts.selected, counts.conflicting
                    ));
                }
            }
            for expected in model.groups.iter().filter(|g| g.namespace == namespace) {
                if !live
                    .iter()
                    .any(|g| g.metadata.name.as_deref() == Some(expected.name.as_str()))
                {
                    out.push(format!("{namespace}/{} is missing", expected.name));
                }
            }
            out.extend(self.quota_differences(model, namespace).await);
        }
        out
    }

    /// Where the DataQuotas of `namespace` and the model disagree.
    async fn quota_differences(&self, model: &Model, namespace: &str) -> Vec<String> {
        let mut out = Vec::new();
        let api = kube::Api::<DataQuota>::namespaced(self.e2e.client.clone(), namespace);
        let live = api
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        for quota in &live {
            let name = quota.metadata.name.clone().unwrap();
            let Some(expected) = model.quota(&name).filter(|q| q.namespace == namespace) else {
                out.push(format!("DataQuota {namespace}/{name} is still there"));
                continue;
            };
            let Some(status) = &quota.status else {
                out.push(format!("DataQuota {namespace}/{name} has no status"));
                continue;
            };
            if model.broken.contains(namespace) {
                out.extend(not_ready(
                    &format!("DataQuota {namespace}/{name}"),
                    &status.conditions,
                ));
                continue;
            }
            if status.observed_generation != quota.metadata.generation
                || status.conditions.is_empty()
            {
                out.push(format!(
                    "DataQuota {namespace}/{name} not settled: observed {:?} of {:?}",
                    status.observed_generation, quota.metadata.generation
                ));
                continue;
            }
            if model.quota_uncertain(expected) {
                continue;
            }
            let counts = status.counts.clone().unwrap_or_default();
            let (targeted, conflicting) = model.quota_counts(expected);
            if (counts.targeted, counts.conflicting) != (targeted, conflicting) {
                out.push(format!(
                    "DataQuota {namespace}/{name} counts targeted {} conflicting {}, the model says {targeted} and {conflicting}",
                    counts.targeted, counts.conflicting
                ));
            }
        }
        for expected in model.quotas.iter().filter(|q| q.namespace == namespace) {
            if !live
                .iter()
                .any(|q| q.metadata.name.as_deref() == Some(expected.name.as_str()))
            {
                out.push(format!(
                    "DataQuota {namespace}/{} is missing",
                    expected.name
                ));
            }
        }
        out
    }
}

fn selector_json(selector: &Selector) -> Value {
    match selector {
        Selector::Tag(tag) => json!({"tags": [tag]}),
        Selector::Iccids(iccids) => json!({"iccids": iccids}),
        Selector::Devices(devices) => json!({"deviceIds": devices}),
    }
}

/// The volume (MB) of the quota in a SIM the simulator lists, if it has one.
fn quota_volume(sim: &Value) -> Option<u32> {
    sim["quota"]["volume"].as_f64().map(|mb| mb.round() as u32)
}

/// Unless the conditions say the resource is not Ready (its account's credentials are
/// refused), what they say instead.
fn not_ready(
    what: &str,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<String> {
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status == "False" => None,
        other => Some(format!(
            "{what}: its account's Secret is broken, but Ready is {:?}",
            other.map(|c| (&c.status, &c.reason, &c.message))
        )),
    }
}

/// Sets the key in the Secret of a namespace's `simulator` account, and has the account read
/// it at once, as a person does after a rotation (a touch of the CarrierAccount; it would
/// otherwise read it within a minute, and go on with the key it had until then, which the
/// carrier still accepts).
async fn set_simulator_key(e2e: &E2e<'_>, namespace: &str, key: &str) {
    static TOUCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let patch = json!({"stringData": {"apiKey": key}});
    kubectl_ok(
        e2e,
        &[
            "patch",
            "secret",
            "simulator-key",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
    )
    .await;
    let touch = TOUCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let annotation = format!("model.simfleet.io/rotated={touch}");
    kubectl_ok(
        e2e,
        &[
            "annotate",
            "carrieraccount",
            "simulator",
            "-n",
            namespace,
            "--overwrite",
            &annotation,
        ],
    )
    .await;
}

/// Waits until the `simulator` account of `namespace` has the Ready status `ready`.
async fn account_ready_is(e2e: &E2e<'_>, namespace: &str, ready: &str) {
    let api = kube::Api::<simfleet::api::CarrierAccount>::namespaced(e2e.client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let account = api.get("simulator").await.unwrap();
        let now = account
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        if now.as_deref() == Some(ready) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the account in {namespace} is not Ready {ready} 90 s after its Secret changed: {:?}",
            account.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn kubectl_ok(e2e: &E2e<'_>, args: &[&str]) {
    let out = e2e.kubectl_with(args, None).await;
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn annotate(e2e: &E2e<'_>, namespace: &str, name: &str, annotation: &str) {
    kubectl_ok(
        e2e,
        &[
            "annotate",
            "sg",
            name,
            "-n",
            namespace,
            "--overwrite",
            annotation,
        ],
    )
    .await;
}

async fn patch_group(e2e: &E2e<'_>, namespace: &str, name: &str, patch: Value) {
    let patch = patch.to_string();
    kubectl_ok(
        e2e,
        &[
            "patch",
            "sg",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            &patch,
        ],
    )
    .await;
}

/// Runs one history of `steps` events from `seed` on `e2e`; `Err` names the step and the
/// differences, with the events that led there and the command that replays them.
pub async fn history(e2e: E2e<'_>, seed: u64, steps: usize) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut serial = 0;
    let replay = format!(
        "replay on the sandbox: SIMFLEET_MODEL_SEED={seed} SIMFLEET_MODEL_HISTORIES=1 SIMFLEET_MODEL_STEPS={steps} ./scripts/test --test fleet_model histories_on_the_sandbox (on kube-apiserver: ./scripts/test --test real_cluster)"
    );
    run(e2e, &format!("history {seed}"), &replay, steps, |model| {
        next_event(&mut rng, model, &mut serial)
    })
    .await
}

/// Runs a history written out event by event (a regression kept from a seed: the generator may
/// change, the events stay).
pub async fn replay(e2e: E2e<'_>, name: &str, events: Vec<Event>) -> Result<(), String> {
    let steps = events.len();
    let mut events = events.into_iter();
    let again = format!("replay: ./scripts/test --test fleet_model {name}");
    run(e2e, name, &again, steps, |_| events.next().unwrap()).await
}

async fn run(
    e2e: E2e<'_>,
    label: &str,
    replay: &str,
    steps: usize,
    mut next: impl FnMut(&Model) -> Event,
) -> Result<(), String> {
    let (mut harness, mut model) = Harness::start(e2e).await;
    let mut events = Vec::new();
    // Submitted SIMs are counted from one settle's snapshot to the next, so that a submit
    // between a settle and the next event is counted at the next step.
    let mut before = simfleet_testkit::simulator::admin_get(&harness.e2e.simulator, "/stats").await
        ["changes"]["submittedSims"]
        .as_u64()
        .unwrap();
    for step in 0..steps {
        let event = next(&model);
        if std::env::var("SIMFLEET_MODEL_VERBOSE").is_ok() {
            eprintln!("{label}, step {step}: {event:?}");
        }
        events.push(event.clone());
        harness.apply(&event, &model).await;
        model.apply(&event);
        let changed = model.settle();
        let settled = harness.settle_and_check(&mut model, before, changed).await;
        if let Ok(total) = settled {
            before = total;
        }
        if let Err(problem) = settled {
            let listed: Vec<String> = events
                .iter()
                .enumerate()
                .map(|(i, e)| format!("  {i}: {e:?}"))
                .collect();
            let log = std::fs::read_to_string(&harness.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(120)..].join("\n");
            return Err(format!(
                "{label} failed after step {step} ({}):\n{problem}\nevents:\n{}\n{replay}\nthe operator's last log lines ({}):\n{tail}",
                harness.e2e.server_name(),
                listed.join("\n"),
                harness.log.display()
            ));
        }
    }
    // Kept only for a failure.
    let _ = std::fs::remove_file(&harness.log);
    Ok(())
}
