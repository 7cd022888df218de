//! `simfleet plan`: read a directory of manifests, validate them as the API server would,
//! observe the carrier read-only through the operator's own clients and planners, and report
//! what applying them would change. Nothing is ever written: not at the carrier (only list and
//! read calls), not in the cluster (only get and list).

mod render;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use secrecy::SecretString;
use serde::Serialize;

use crate::api::manifest::{Document, is_manifest_file, kustomization_in, read_path};
use crate::api::validation::{ManifestValidator, SimfleetObject, ValidationError};
use crate::api::{APPROVED_GENERATION_ANNOTATION, CarrierAccount, DataQuota, SimGroup};
use crate::carrier::{Carrier, HttpSettings, connect};
use crate::model::{ObservedState, SimObservation};
use crate::plan::claims::ClaimIndex;
use crate::plan::data_quota::{DeviceAction, decide, progress_for};
use crate::plan::sim_group::{Hold, PlanContext, SimGroupPlanner};
use crate::resolve::{approved_generation, secret_value, selection_of, target_devices};

/// Exit code when there is nothing wrong (changes allowed).
pub const EXIT_OK: i32 = 0;
/// Exit code when `--fail-on-change` or `--max-changes` refuses the changes.
pub const EXIT_REFUSED: i32 = 1;
/// Exit code for invalid manifests or a resource that cannot be planned.
pub const EXIT_INVALID: i32 = 2;

/// How the plan is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables for people.
    Table,
    /// One JSON document for CI bots.
    Json,
}

/// `simfleet plan` flags.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Directory (or file) of manifests to plan (multi-document YAML; a kustomization.yaml
    /// decides the order).
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    pub dir: PathBuf,
    /// Read CarrierAccounts, Secrets, SimGroups and the resources' current status from this
    /// cluster (read-only) when DIR does not hold them.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// A CarrierAccount manifest to use for resources whose account is not in DIR.
    #[arg(long, value_name = "FILE")]
    pub carrier_account: Option<PathBuf>,
    /// A Secret manifest holding the carrier credentials.
    #[arg(long, value_name = "FILE")]
    pub secret: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Exit with code 1 when anything would change.
    #[arg(long)]
    pub fail_on_change: bool,
    /// Exit with code 1 when more than N SIMs and quotas would change.
    #[arg(long, value_name = "N")]
    pub max_changes: Option<u64>,
    /// Write the affected SIMs and devices to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// One manifest problem: where, and what.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestProblem {
    /// The file.
    pub file: String,
    /// The document's index in the file (from 0), when the problem is in one document.
    pub document: Option<usize>,
    /// `Kind/name`, when known.
    pub object: Option<String>,
    /// The field, when the problem is in one.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What applying one SimGroup would do.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimGroupPreview {
    /// `namespace/name`.
    pub name: String,
    /// Desired state.
    pub state: String,
    /// SIMs the selector selects.
    pub selected: u64,
    /// Already in the desired state.
    pub in_state: u64,
    /// SIMs that would change.
    pub to_change: u64,
    /// Carrier actions that would carry them.
    pub actions: u64,
    /// When the actions would go, with `rollout.interval` (RFC 3339, from now).
    pub schedule: Vec<String>,
    /// Already pending at the carrier.
    pub pending: u64,
    /// Paused by the carrier's system.
    pub paused_by_system: u64,
    /// Cannot change.
    pub ineligible: u64,
    /// Claimed by another SimGroup in DIR with the opposite state.
    pub conflicts: u64,
    /// Why changes would wait (approval), if they would.
    pub held: Option<String>,
    /// How the listed SIMs were looked up and what that cost in carrier calls (the cheaper of
    /// the carrier's ways), when the group lists SIMs.
    pub lookup: Option<String>,
    /// Why this group cannot be planned.
    pub error: Option<String>,
}

/// What applying one DataQuota would do.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataQuotaPreview {
    /// `namespace/name`.
    pub name: String,
    /// `Set` or `TopUp`.
    pub mode: String,
    /// Devices targeted.
    pub devices: u64,
    /// Quotas that would be set.
    pub to_set: u64,
    /// Quotas that would be topped up.
    pub to_top_up: u64,
    /// Already as declared.
    pub unchanged: u64,
    /// Devices without a quota now (denied data until it is set).
    pub without_quota: u64,
    /// Devices the carrier cannot give a quota (deleted endpoint, no SIM): left out.
    pub ineligible: u64,
    /// The expiry that would be sent.
    pub expiry: Option<String>,
    /// Why this quota cannot be planned.
    pub error: Option<String>,
}

/// The whole plan.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// Invalid manifests (nothing else is planned when there are any).
    pub errors: Vec<ManifestProblem>,
    /// SimGroups, in manifest order.
    pub sim_groups: Vec<SimGroupPreview>,
    /// DataQuotas, in manifest order.
    pub data_quotas: Vec<DataQuotaPreview>,
    /// SIM changes plus quota sets and top-ups.
    pub total_changes: u64,
    /// Documents of other kinds, not planned.
    pub skipped_documents: Vec<String>,
}

impl PlanReport {
    /// The exit code for these flags.
    pub fn exit_code(&self, fail_on_change: bool, max_changes: Option<u64>) -> i32 {
        let resource_errors = self.sim_groups.iter().any(|g| g.error.is_some())
            || self.data_quotas.iter().any(|q| q.error.is_some());
        if !self.errors.is_empty() || resource_errors {
            EXIT_INVALID
        } else if (fail_on_change && self.total_changes > 0)
            || max_changes.is_some_and(|max| self.total_changes > max)
        {
            EXIT_REFUSED
        } else {
            EXIT_OK
        }
    }
}

/// Runs `simfleet plan`; returns the exit code.
pub async fn run(args: PlanArgs) -> i32 {
    let report = match plan(&args).await {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = match args.output {
        OutputFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        OutputFormat::Table => render::table(&mut out, &report, &args),
    };
    if let Err(err) = printed {
        eprintln!("error: writing the plan: {err}");
        return EXIT_INVALID;
    }
    report.exit_code(args.fail_on_change, args.max_changes)
}

/// Validated inputs: the simfleet objects of DIR and the Secrets given.
#[derive(Default)]
struct Inputs {
    accounts: Vec<CarrierAccount>,
    groups: Vec<SimGroup>,
    quotas: Vec<DataQuota>,
    secrets: Vec<Secret>,
}

fn namespace_of<K: ResourceExt>(object: &K) -> String {
    object.namespace().unwrap_or_else(|| "default".into())
}

/// Reads and validates every manifest; all problems are returned, not only the first.
fn read_inputs(args: &PlanArgs, report: &mut PlanReport) -> Inputs {
    let validator = match ManifestValidator::new() {
        Ok(v) => v,
        Err(err) => {
            report.errors.push(ManifestProblem {
                file: String::new(),
                document: None,
                object: None,
                field: None,
                message: format!("compiling the CRD schemas (a bug): {err}"),
            });
            return Inputs::default();
        }
    };
    let mut inputs = Inputs::default();
    let mut documents = Vec::new();
    for path in [
        Some(&args.dir),
        args.carrier_account.as_ref(),
        args.secret.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        documents.extend(read_documents(path, report));
    }
    for document in documents {
        let file = document.source.display().to_string();
        let kind = document.value["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = document.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if document.value["apiVersion"] == "v1" && kind == "Secret" {
            match serde_json::from_value::<Secret>(document.value.clone()) {
                Ok(secret) => inputs.secrets.push(secret),
                Err(err) => report.errors.push(ManifestProblem {
                    file,
                    document: Some(document.index),
                    object: Some(format!("Secret/{name}")),
                    field: None,
                    message: format!("not a valid Secret: {err}"),
                }),
            }
            continue;
        }
        if !validator.knows(&document.value) {
            report.skipped_documents.push(format!(
                "{} ({}/{kind} {name})",
                document.location(),
                document.value["apiVersion"].as_str().unwrap_or_default()
            ));
            continue;
        }
        match validator.parse(&document.value) {
            Ok(SimfleetObject::CarrierAccount(a)) => inputs.accounts.push(*a),
            Ok(SimfleetObject::SimGroup(g)) => inputs.groups.push(*g),
            Ok(SimfleetObject::DataQuota(q)) => inputs.quotas.push(*q),
            Err(ValidationError::Invalid { kind, name, errors }) => {
                for error in errors {
                    report.errors.push(ManifestProblem {
                        file: file.clone(),
                        document: Some(document.index),
                        object: Some(format!("{kind}/{name}")),
                        field: Some(error.field.clone()),
                        message: error.to_string(),
                    });
                }
            }
            Err(err @ ValidationError::NotSimfleet { .. }) => report.errors.push(ManifestProblem {
                file,
                document: Some(document.index),
                object: None,
                field: None,
                message: err.to_string(),
            }),
        }
    }
    inputs
}

/// The documents of a path; a directory without a kustomization is read file by file, so that
/// one broken file does not hide the others' problems.
fn read_documents(path: &Path, report: &mut PlanReport) -> Vec<Document> {
    let mut files = vec![path.to_owned()];
    if path.is_dir() && kustomization_in(path).is_none() {
        files = match std::fs::read_dir(path) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() || is_manifest_file(p))
                .collect(),
            Err(err) => {
                report
                    .errors
                    .push(problem(path, format!("cannot read: {err}")));
                return Vec::new();
            }
        };
        files.sort();
    }
    let mut documents = Vec::new();
    for file in files {
        match read_path(&file) {
            Ok(docs) => documents.extend(docs),
            Err(err) => report.errors.push(problem(&file, err.to_string())),
        }
    }
    documents
}

fn problem(path: &Path, message: String) -> ManifestProblem {
    ManifestProblem {
        file: path.display().to_string(),
        document: None,
        object: None,
        field: None,
        message,
    }
}

/// Carrier clients by account, built on first use from DIR, the flags or the cluster.
struct Accounts<'a> {
    inputs: &'a Inputs,
    cluster: Option<Client>,
    clients: HashMap<(String, String), Result<Arc<dyn Carrier>, String>>,
}

impl Accounts<'_> {
    async fn client(&mut self, namespace: &str, name: &str) -> Result<Arc<dyn Carrier>, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(found) = self.clients.get(&key) {
            return found.clone();
        }
        let built = self.build(namespace, name).await;
        self.clients.insert(key, built.clone());
        built
    }

    async fn build(&self, namespace: &str, name: &str) -> Result<Arc<dyn Carrier>, String> {
        let listed = self
            .inputs
            .accounts
            .iter()
            .find(|a| a.name_any() == name && namespace_of(*a) == namespace)
            .cloned();
        let account = match (listed, &self.cluster) {
            (Some(account), _) => account,
            (None, Some(client)) => Api::<CarrierAccount>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|e| format!("reading CarrierAccount {namespace}/{name}: {e}"))?
                .ok_or_else(|| {
                    format!("CarrierAccount {namespace}/{name} is neither in DIR, --carrier-account nor the cluster")
                })?,
            (None, None) => {
                return Err(format!(
                    "CarrierAccount {namespace}/{name} is not in DIR; pass --carrier-account FILE or --kubeconfig"
                ));
            }
        };
        let secret_name = &account.spec.secret_ref.name;
        let key = account.spec.effective_secret_key().to_owned();
        let listed = self
            .inputs
            .secrets
            .iter()
            .find(|s| s.name_any() == *secret_name && namespace_of(*s) == namespace)
            .cloned();
        let secret = match (listed, &self.cluster) {
            (Some(secret), _) => secret,
            (None, Some(client)) => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(secret_name)
                .await
                .map_err(|e| format!("reading Secret {namespace}/{secret_name}: {e}"))?
                .ok_or_else(|| format!("Secret {namespace}/{secret_name} not found"))?,
            (None, None) => {
                return Err(format!(
                    "Secret {namespace}/{secret_name} (for CarrierAccount {name}) is not in DIR; pass --secret FILE or --kubeconfig"
                ));
            }
        };
        let value = secret_value(&secret, &key)
            .ok_or_else(|| format!("Secret {namespace}/{secret_name} has no key {key}"))?;
        connect(
            &account.spec,
            SecretString::from(value),
            HttpSettings::default(),
            crate::carrier::budget::RequestLedger::unlimited(),
        )
        .map_err(|e| format!("CarrierAccount {namespace}/{name}: {e}"))
    }
}

/// The live object of the same name, when planning against a cluster.
async fn live<K>(cluster: Option<&Client>, object: &K) -> Option<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let client = cluster?;
    Api::<K>::namespaced(client.clone(), &namespace_of(object))
        .get_opt(&object.name_any())
        .await
        .ok()
        .flatten()
}

/// The generation the manifest would have once applied: the live one if the spec is
/// unchanged, the next one if it changed, 1 for a new object.
fn generation_after_apply<K: kube::Resource>(live: Option<&K>, same_spec: bool) -> i64 {
    match live.and_then(|l| l.meta().generation) {
        Some(g) if same_spec => g,
        Some(g) => g + 1,
        None => 1,
    }
}

/// Plans everything; an `Err` is a problem with the flags themselves.
pub async fn plan(args: &PlanArgs) -> Result<PlanReport, String> {
    let mut report = PlanReport::default();
    let inputs = read_inputs(args, &mut report);
    if !report.errors.is_empty() {
        return Ok(report);
    }
    let cluster = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            Some(Client::try_from(config).map_err(|e| format!("--kubeconfig: {e}"))?)
        }
        None => None,
    };
    let mut csv = match &args.csv {
        Some(path) => Some(render::CsvWriter::create(path)?),
        None => None,
    };
    let mut accounts = Accounts {
        inputs: &inputs,
        cluster: cluster.clone(),
        clients: HashMap::new(),
    };
    let now = Timestamp::now();
    for group in &inputs.groups {
        let preview = plan_group(
            group,
            &inputs,
            &mut accounts,
            cluster.as_ref(),
            &mut csv,
            now,
        )
        .await;
        report.total_changes += preview.to_change;
        report.sim_groups.push(preview);
    }
    for quota in &inputs.quotas {
        let preview = plan_quota(
            quota,
            &inputs,
            &mut accounts,
            cluster.as_ref(),
            &mut csv,
            now,
        )
        .await;
        report.total_changes += preview.to_set + preview.to_top_up;
        report.data_quotas.push(preview);
    }
    if let Some(csv) = csv {
        csv.finish()?;
    }
    Ok(report)
}

fn state_name(state: &ObservedState) -> String {
    match state {
        ObservedState::Active => "Active".into(),
        ObservedState::Paused => "Paused".into(),
        ObservedState::PausedBySystem => "PausedBySystem".into(),
        ObservedState::Pending(change) => format!("Pending{change:?}"),
        ObservedState::Ineligible(why) => format!("Ineligible ({why})"),
        ObservedState::Unknown(raw) => format!("Unknown ({raw})"),
    }
}

async fn plan_group(
    group: &SimGroup,
    inputs: &Inputs,
    accounts: &mut Accounts<'_>,
    cluster: Option<&Client>,
    csv: &mut Option<render::CsvWriter>,
    now: Timestamp,
) -> SimGroupPreview {
    let namespace = namespace_of(group);
    let mut preview = SimGroupPreview {
        name: format!("{namespace}/{}", group.name_any()),
        state: group.spec.state.as_str().to_owned(),
        ..Default::default()
    };
    let carrier = match accounts
        .client(&namespace, &group.spec.carrier_ref.name)
        .await
    {
        Ok(carrier) => carrier,
        Err(err) => {
            preview.error = Some(err);
            return preview;
        }
    };
    let live = live(cluster, group).await;
    let same_spec = live.as_ref().is_some_and(|l| l.spec == group.spec);
    let generation = generation_after_apply(live.as_ref(), same_spec);
    // The live status brings the pending actions; a changed spec starts afresh.
    let previous = live
        .as_ref()
        .and_then(|l| l.status.clone())
        .filter(|_| same_spec)
        .unwrap_or_default();
    let claims = ClaimIndex::build(&inputs.groups, &inputs.accounts, group);
    let in_flight = Default::default();
    let approved = approved_generation(group);
    let mut planner = SimGroupPlanner::new(PlanContext {
        spec: &group.spec,
        generation,
        approved_generation: approved,
        previous: &previous,
        carrier_limit: carrier.capabilities().max_sims_per_action,
        in_flight: &in_flight,
        claims: &claims,
        now,
    })
    .counting_only();
    let selection = selection_of(group);
    let mut pages = carrier.observe(&selection);
    let target = group.spec.state.as_str();
    loop {
        let page: Vec<SimObservation> = match pages.try_next().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(err) => {
                preview.error = Some(format!("observing the SIMs: {err}"));
                return preview;
            }
        };
        let mut failed = None;
        planner.observe_each(&page, |sim| {
            if let Some(csv) = csv.as_mut()
                && failed.is_none()
                && let Err(err) = csv.row(
                    "SimGroup",
                    &preview.name,
                    &sim.iccid,
                    sim.device_id,
                    &state_name(&sim.state),
                    target,
                )
            {
                failed = Some(err);
            }
        });
        if let Some(err) = failed {
            preview.error = Some(err);
            return preview;
        }
    }
    drop(pages);
    preview.lookup = carrier.last_lookup_plan().map(|plan| plan.to_string());
    let plan = planner.finish();
    let counts = plan.counts();
    preview.selected = counts.selected;
    preview.in_state = counts.in_desired_state;
    preview.pending = counts.pending;
    preview.paused_by_system = counts.paused_by_system;
    preview.ineligible = counts.ineligible;
    preview.conflicts = counts.conflicting;
    preview.to_change = plan.changes as u64;
    preview.actions = plan.changes.div_ceil(plan.batch_limit.max(1)) as u64;
    let first = match &plan.hold {
        Some(Hold::Interval { until }) => *until,
        _ => now,
    };
    if let Some(Hold::ApprovalRequired { changes, limit }) = &plan.hold {
        preview.held = Some(format!(
            "{changes} changes exceed guard.maxChangesWithoutApproval ({limit}): waits for the annotation {APPROVED_GENERATION_ANNOTATION}={generation}"
        ));
    }
    preview.schedule = (0..preview.actions)
        .map(|k| match plan.interval {
            Some(interval) => first
                .checked_add(interval * (k as i32))
                .unwrap_or(first)
                .round(jiff::Unit::Second)
                .unwrap_or(first)
                .to_string(),
            None => "now".to_owned(),
        })
        .collect();
    preview
}

async fn plan_quota(
    quota: &DataQuota,
    inputs: &Inputs,
    accounts: &mut Accounts<'_>,
    cluster: Option<&Client>,
    csv: &mut Option<render::CsvWriter>,
    now: Timestamp,
) -> DataQuotaPreview {
    let namespace = namespace_of(quota);
    let mut preview = DataQuotaPreview {
        name: format!("{namespace}/{}", quota.name_any()),
        mode: format!("{:?}", quota.spec.mode),
        ..Default::default()
    };
    let carrier = match accounts
        .client(&namespace, &quota.spec.carrier_ref.name)
        .await
    {
        Ok(carrier) if carrier.capabilities().data_quota => carrier,
        Ok(_) => {
            preview.error = Some(format!(
                "carrierRef: CarrierAccount {} is a Hologram account, and Hologram has no per-device data quota API; use an emnify (or simulator) account",
                quota.spec.carrier_ref.name
            ));
            return preview;
        }
        Err(err) => {
            preview.error = Some(err);
            return preview;
        }
    };
    let live = live(cluster, quota).await;
    let same_spec = live.as_ref().is_some_and(|l| l.spec == quota.spec);
    let generation = generation_after_apply(live.as_ref(), same_spec);
    let previous = live
        .as_ref()
        .and_then(|l| l.status.as_ref())
        .and_then(|s| s.progress.clone());
    let progress = match progress_for(&quota.spec, generation, previous.as_ref(), now) {
        Ok(progress) => progress,
        Err(problem) => {
            preview.error = Some(problem.message);
            return preview;
        }
    };
    preview.expiry = Some(progress.expiry.0.to_string());
    let group = match &quota.spec.target.sim_group_ref {
        Some(group_ref) => match inputs
            .groups
            .iter()
            .find(|g| g.name_any() == group_ref.name && namespace_of(*g) == namespace)
        {
            Some(group) => Some(group.clone()),
            None => match cluster {
                Some(client) => Api::<SimGroup>::namespaced(client.clone(), &namespace)
                    .get_opt(&group_ref.name)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            },
        },
        None => None,
    };
    let devices =
        match target_devices(carrier.as_ref(), &quota.spec, group.as_ref(), &namespace).await {
            Ok(Ok(devices)) => devices,
            Ok(Err(problem)) => {
                preview.error = Some(problem.message);
                return preview;
            }
            Err(err) => {
                preview.error = Some(format!("resolving the target: {err}"));
                return preview;
            }
        };
    preview.devices = (devices.devices.len() + devices.ineligible.len()) as u64;
    preview.ineligible = devices.ineligible.len() as u64;
    for device in devices.devices {
        let reading = match carrier.read_quota(device).await {
            Ok(reading) => reading,
            Err(err) => {
                preview.error = Some(format!("reading the quota of device {device}: {err}"));
                return preview;
            }
        };
        if reading.is_none() {
            preview.without_quota += 1;
        }
        let current = reading.as_ref().map_or_else(
            || "none".to_owned(),
            |r| format!("{:?} {} MB", r.state, r.volume_mb),
        );
        let planned = match decide(&quota.spec, &progress, device, reading.as_ref()) {
            DeviceAction::Keep | DeviceAction::Missing => {
                preview.unchanged += 1;
                continue;
            }
            DeviceAction::Set(setting) => {
                preview.to_set += 1;
                format!("Set {} MB", setting.volume_mb)
            }
            DeviceAction::TopUp(setting) => {
                preview.to_top_up += 1;
                format!("TopUp to {} MB", setting.volume_mb)
            }
        };
        if let Some(csv) = csv.as_mut()
            && let Err(err) = csv.row(
                "DataQuota",
                &preview.name,
                "",
                Some(device),
                &current,
                &planned,
            )
        {
            preview.error = Some(err);
            return preview;
        }
    }
    preview
}
