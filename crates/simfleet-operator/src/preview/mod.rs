//! `simfleet plan`: read a directory of manifests, validate them as the API server would,
//! observe the carrier read-only through the operator's own clients and planners, and report
//! what applying them would change. Nothing is ever written: not at the carrier (only list and
//! read calls), not in the cluster (only get and list).

mod inputs;
mod render;
mod report;

use inputs::{Accounts, Inputs, generation_after_apply, live, namespace_of, read_inputs};
pub(crate) use report::{DataQuotaPreview, ManifestProblem, PlanReport, SimGroupPreview};

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use futures::TryStreamExt;
use jiff::Timestamp;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::data_quota::plan::{DeviceAction, decide, decide_observed, progress_for};
use crate::data_quota::targets::target_devices;
use crate::resolve::selection_of;
use crate::sim_group::claims::{ClaimIndex, MemberRegistry};
use crate::sim_group::plan::{Hold, PlanContext, SimGroupPlanner};
use simfleet_api::model::{ObservedState, SimObservation};
use simfleet_api::{APPROVED_CHANGE_ANNOTATION, DataQuota, SimGroup};

/// Exit code when there is nothing wrong (changes allowed).
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code when `--fail-on-change` or `--max-changes` refuses the changes.
pub(crate) const EXIT_REFUSED: i32 = 1;
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

/// Where `simfleet plan` takes CarrierAccounts and their Secrets from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccountSource {
    /// The cluster in --kubeconfig, falling back to DIR.
    Cluster,
    /// DIR (and --carrier-account, --secret), falling back to the cluster.
    Dir,
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
    /// Which CarrierAccount (and Secret) to use when both DIR and the cluster hold one of that
    /// name: `cluster` (the default with --kubeconfig: the account the operator uses) or `dir`
    /// (the default without). The plan says which was used.
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub accounts_from: Option<AccountSource>,
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
    let code = report.exit_code(args.fail_on_change, args.max_changes);
    if code == EXIT_REFUSED {
        match args.max_changes {
            Some(max) if report.total_changes > max => eprintln!(
                "refused: {} changes, more than --max-changes {max}",
                report.total_changes
            ),
            _ => eprintln!(
                "refused: {} changes, and --fail-on-change allows none",
                report.total_changes
            ),
        }
    }
    code
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
    let source = args.accounts_from.unwrap_or(if cluster.is_some() {
        AccountSource::Cluster
    } else {
        AccountSource::Dir
    });
    let mut accounts = Accounts {
        inputs: &inputs,
        cluster: cluster.clone(),
        source,
        clients: HashMap::new(),
        used: Vec::new(),
    };
    // `simfleet plan` runs on the system's clock.
    let now = simfleet_core::clock::Clock::default().now();
    let mut peers = match &cluster {
        Some(cluster) => Peers::with_live(&inputs, cluster).await?,
        None => Peers::of(&inputs),
    };
    peers.observe_tag_groups(&inputs, &mut accounts).await;
    for group in &inputs.groups {
        let preview = plan_group(
            group,
            &peers,
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
    report.accounts = accounts.used;
    Ok(report)
}

fn state_name(state: &ObservedState) -> String {
    match state {
        ObservedState::Active => "Active".into(),
        ObservedState::Paused => "Paused".into(),
        ObservedState::PausedBySystem => "PausedBySystem".into(),
        ObservedState::AwaitingConnection(why) => format!("AwaitingConnection ({why})"),
        ObservedState::Pending(change) => format!("Pending{change:?}"),
        ObservedState::Ineligible(why) => format!("Ineligible ({why})"),
        ObservedState::Unknown(raw) => format!("Unknown ({raw})"),
    }
}

/// The groups and accounts a new group's conflicts are checked against: those of DIR, and
/// with --kubeconfig the live ones of every namespace that DIR does not replace.
struct Peers {
    groups: Vec<SimGroup>,
    accounts: Vec<simfleet_api::CarrierAccount>,
    /// What the peers that select by tag select now: their claim on SIMs that a group looks up
    /// by ICCID or device id (routes that do not return tags), as the operator keeps it.
    members: MemberRegistry,
}

impl Peers {
    fn of(inputs: &Inputs) -> Self {
        let mut peers = Self {
            groups: inputs.groups.clone(),
            accounts: inputs.accounts.clone(),
            members: MemberRegistry::default(),
        };
        peers.namespaced();
        peers
    }

    /// DIR's objects without a namespace are in `default`, as kubectl applies them.
    fn namespaced(&mut self) {
        for group in &mut self.groups {
            group.metadata.namespace = Some(namespace_of(group));
        }
        for account in &mut self.accounts {
            account.metadata.namespace = Some(namespace_of(account));
        }
    }

    /// Reads the selection of each peer that selects by tag and wants the opposite state of a
    /// group in DIR (read-only; a peer whose account cannot be read claims by its spec only).
    async fn observe_tag_groups(&mut self, inputs: &Inputs, accounts: &mut Accounts<'_>) {
        for peer in &self.groups {
            let by_tag = peer
                .spec
                .selector
                .tags
                .as_ref()
                .is_some_and(|t| !t.is_empty());
            let opposes = inputs
                .groups
                .iter()
                .any(|g| g.spec.state != peer.spec.state);
            if !by_tag || !opposes {
                continue;
            }
            let namespace = namespace_of(peer);
            let Ok(carrier) = accounts
                .client(&namespace, &peer.spec.carrier_ref.name)
                .await
            else {
                continue;
            };
            let (mut devices, mut iccids) = (
                std::collections::HashSet::new(),
                std::collections::HashSet::new(),
            );
            let read =
                simfleet_carrier::observe_each(carrier.as_ref(), &selection_of(peer), |page| {
                    for sim in page {
                        devices.extend(sim.device_id);
                        if !sim.iccid.is_empty() {
                            iccids.insert(sim.iccid);
                        }
                    }
                })
                .await;
            if read.is_ok() {
                self.members.observed(peer, devices, iccids);
            }
        }
    }

    async fn with_live(inputs: &Inputs, cluster: &Client) -> Result<Self, String> {
        let mut peers = Self::of(inputs);
        let params = kube::api::ListParams::default();
        let live_groups = kube::Api::<SimGroup>::all(cluster.clone())
            .list(&params)
            .await
            .map_err(|e| format!("listing the cluster's SimGroups: {e}"))?;
        let live_accounts = kube::Api::<simfleet_api::CarrierAccount>::all(cluster.clone())
            .list(&params)
            .await
            .map_err(|e| format!("listing the cluster's CarrierAccounts: {e}"))?;
        let key = |namespace: String, name: String| (namespace, name);
        let in_dir: std::collections::HashSet<_> = inputs
            .groups
            .iter()
            .map(|g| key(namespace_of(g), g.name_any()))
            .collect();
        peers.groups.extend(
            live_groups
                .items
                .into_iter()
                .filter(|g| !in_dir.contains(&key(namespace_of(g), g.name_any()))),
        );
        let in_dir: std::collections::HashSet<_> = inputs
            .accounts
            .iter()
            .map(|a| key(namespace_of(a), a.name_any()))
            .collect();
        peers.accounts.extend(
            live_accounts
                .items
                .into_iter()
                .filter(|a| !in_dir.contains(&key(namespace_of(a), a.name_any()))),
        );
        peers.namespaced();
        Ok(peers)
    }
}

async fn plan_group(
    group: &SimGroup,
    peers: &Peers,
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
    let mut this = group.clone();
    this.metadata.namespace = Some(namespace.clone());
    let claims = ClaimIndex::build(&peers.groups, &peers.accounts, Some(&peers.members), &this);
    let in_flight = Default::default();
    let approval = crate::sim_group::approval::ApprovalAnnotations::of(group);
    let mut planner = SimGroupPlanner::new(PlanContext {
        spec: &group.spec,
        generation,
        approval: &approval,
        previous: &previous,
        carrier_limit: carrier.capabilities().max_sims_per_action,
        one_action_at_a_time: false,
        poll_cost: crate::sim_group::plan::PollCost::Observation,
        carrier_statuses: &[],
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
    if counts.selected == 0 {
        preview.warnings.push(format!(
            "the selector ({}) matches no SIM at the carrier; check it for a typo",
            group.spec.selector.describe()
        ));
    }
    preview
        .warnings
        .extend(crate::sim_group::approval::not_a_number(
            &approval, &previous,
        ));
    preview.warnings.extend(plan.ignored_approval.clone());
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
            "{changes} changes exceed guard.maxChangesWithoutApproval ({limit}): waits for the annotation {APPROVED_CHANGE_ANNOTATION}={}",
            plan.change_digest.as_deref().unwrap_or("-")
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
        Ok(carrier) => {
            preview.error = Some(
                crate::data_quota::reconcile::quota_not_supported(
                    &quota.spec.carrier_ref.name,
                    carrier.as_ref(),
                )
                .await,
            );
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
    // Offline, a relative expiry (`expiry.after`) counts from a first apply the plan cannot
    // see: a device whose quota is already as declared, with an expiry within that span, is
    // taken as applied (otherwise every such DataQuota would show as a change in every pull
    // request).
    let start_unknown = cluster.is_none() && quota.spec.expiry.at.is_none();
    preview.expiry = Some(if start_unknown {
        format!(
            "{} after the first apply (not compared offline)",
            quota
                .spec
                .expiry
                .after
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)
        )
    } else {
        progress.expiry.0.to_string()
    });
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
        let action = if start_unknown {
            decide_observed(&quota.spec, &progress, device, reading.as_ref())
        } else {
            decide(&quota.spec, &progress, device, reading.as_ref())
        };
        let planned = match action {
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
