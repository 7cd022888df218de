//! Running the controllers: the Kubernetes client, the metrics server, leader election, and
//! shutdown on SIGTERM or Ctrl-C.

use std::sync::Arc;

use kube::Client;

use super::{Context, MANAGER, health};
use crate::{carrier_account, data_quota, sim_group};
use simfleet_core::shutdown::Stop;

/// `simfleet run` flags.
#[derive(Debug, Default, clap::Args)]
pub struct RunArgs {
    /// Only this namespace (default: every namespace).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only resources with these labels (e.g. `shard=a`), to split very large installations.
    #[arg(long)]
    pub label_selector: Option<String>,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Elect one leader among replicas through a coordination.k8s.io Lease; only the leader
    /// reconciles.
    #[arg(long)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "simfleet-leader")]
    pub lease_name: String,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Seconds the leader holds the Lease without renewing it; a follower takes over after
    /// this when the leader dies.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_duration: u64,
    /// A carrier base URL prefix the operator may send credentials to (repeat for several).
    /// Without any: each provider's official base URL, and loopback addresses for provider
    /// simulator. A CarrierAccount outside them is Stalled with reason UrlNotAllowed.
    #[arg(long = "allowed-carrier-url", value_name = "PREFIX")]
    pub allowed_carrier_urls: Vec<String>,
    /// How long the audit of each DataQuota takes to read every device's quota once, spread
    /// evenly (e.g. 24h, 6h; default 24h). Between audits, only the devices the carrier's quota
    /// events name are read again.
    #[arg(long, value_name = "DURATION", value_parser = audit_period)]
    pub quota_audit_period: Option<simfleet_api::FriendlyDuration>,
    /// How long after a start a SimGroup or a DataQuota waits, before it sends, for the others
    /// on its carrier organisation to read what they claim (they do at once; this bounds the
    /// wait for one whose account is broken). E.g. 30s; default 2m.
    #[arg(long, value_name = "DURATION", value_parser = audit_period)]
    pub peer_read_wait: Option<simfleet_api::FriendlyDuration>,
    /// How often each account's quota events are listed, so that a used-up or expired quota
    /// reaches its DataQuota's status within this (one request per account each time; e.g.
    /// 30s; default 1m).
    #[arg(long, value_name = "DURATION", value_parser = audit_period)]
    pub quota_event_poll: Option<simfleet_api::FriendlyDuration>,
    /// A request limit shared by every account on one carrier host, `ORIGIN=PER_SECOND[/BURST]`
    /// (e.g. `https://proxy.example:8443=5/10`; repeat for several). emnify's own host has its
    /// documented limit (2,000 requests per client IP in any 5 minutes) without it.
    #[arg(long = "carrier-host-limit", value_name = "ORIGIN=RATE", value_parser = host_limit)]
    pub carrier_host_limits: Vec<(String, simfleet_carrier::host_limits::HostLimit)>,
    /// The clock reconciles read (the system's; tests and benchmarks inject the simulator's).
    #[arg(skip)]
    pub clock: simfleet_core::clock::Clock,
}

/// Parses `--carrier-host-limit`: `ORIGIN=PER_SECOND[/BURST]`.
fn host_limit(text: &str) -> Result<(String, simfleet_carrier::host_limits::HostLimit), String> {
    let (origin, limit) = text
        .split_once('=')
        .ok_or("use ORIGIN=PER_SECOND[/BURST], e.g. https://proxy.example:8443=5/10")?;
    let url = reqwest::Url::parse(origin)
        .map_err(|e| format!("{origin:?}: {e}; use a URL such as https://proxy.example:8443"))?;
    let limit = simfleet_carrier::host_limits::HostLimit::parse(limit)?;
    Ok((url.origin().ascii_serialization(), limit))
}

/// Parses `--quota-audit-period` and `--peer-read-wait`: a duration such as `24h`, `6h` or
/// `30s`, longer than zero.
fn audit_period(text: &str) -> Result<simfleet_api::FriendlyDuration, String> {
    let period: simfleet_api::FriendlyDuration = text
        .parse()
        .map_err(|e| format!("{e}; use e.g. 24h or 6h"))?;
    if period.as_duration() <= jiff::SignedDuration::ZERO {
        return Err("must be longer than zero, e.g. 24h".into());
    }
    Ok(period)
}

/// Runs the controllers until SIGTERM or Ctrl-C; in-flight reconciles finish first.
pub async fn run(args: RunArgs) -> Result<(), String> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("connecting to Kubernetes (kubeconfig or in-cluster): {e}"))?;
    // Our requests are told apart in API server audit logs (and the sandbox's request log).
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(USER_AGENT),
    ));
    let client =
        Client::try_from(config).map_err(|e| format!("building the Kubernetes client: {e}"))?;
    run_with_client(client, args).await
}

/// The User-Agent of the operator's Kubernetes requests.
pub(crate) const USER_AGENT: &str = concat!("simfleet-operator/", env!("CARGO_PKG_VERSION"));

/// Runs the controllers with a given client until SIGTERM or Ctrl-C (used by `simfleet dev`).
/// With leader election, waits to lead first, and returns an error if leadership is lost (the
/// process exits and restarts as a follower: controllers cannot be paused safely).
pub async fn run_with_client(client: Client, args: RunArgs) -> Result<(), String> {
    // Listening before anything is printed: whoever reads it may stop us at once.
    let stop = simfleet_core::shutdown::requested();
    let mut context = Context::with_clock(
        client.clone(),
        simfleet_api::CarrierUrlPolicy {
            prefixes: args.allowed_carrier_urls.clone(),
        },
        args.clock.clone(),
    );
    {
        let context = Arc::get_mut(&mut context).expect("the context is not shared yet");
        if let Some(period) = &args.quota_audit_period {
            context.quota_audit_period = period.as_duration();
        }
        if let Some(wait) = &args.peer_read_wait {
            context.peer_read_wait = wait.as_duration().unsigned_abs();
        }
        if let Some(poll) = &args.quota_event_poll {
            context.quota_event_poll = poll.as_duration().unsigned_abs();
        }
        context.http.host_limits = args.carrier_host_limits.clone();
    }
    // A replica that elects a leader follows until it holds the Lease: its `simfleet_leader`
    // gauge never says 1 before then.
    context.health.following(args.leader_election);
    if let Some(addr) = args.metrics_addr {
        let bound = health::serve(addr, context.metrics.clone(), context.health.clone()).await?;
        // On stdout, so that tools (and tests) can find a port chosen by the system.
        println!("simfleet: metrics on http://{bound}");
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
    }
    tracing::info!(
        namespace = args.namespace.as_deref().unwrap_or("(all)"),
        "simfleet operator starting"
    );
    if !args.leader_election {
        controllers(context, &args, &stop).await;
        tracing::info!("simfleet operator stopped");
        return Ok(());
    }
    let lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "simfleet".into());
        format!("{host}-{}", std::process::id())
    });
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&lease_namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration)
        .with_grace((args.lease_duration / 3).max(1))
        // One field manager per replica: the Lease's server-side apply refuses a second taker
        // only through a conflict between different managers; with one shared manager, two
        // followers waking at the same expiry could both take it.
        .with_field_manager(format!("{MANAGER}-{identity}"))
        .build()
        .await
        .map_err(|e| {
            format!(
                "leader election (Lease {lease_namespace}/{}): {e}",
                args.lease_name
            )
        })?;
    let (mut leading, lease_task) = manager.watch().await;
    context.health.following(true);
    tracing::info!(%identity, lease = %args.lease_name, "waiting to lead");
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => if changed.is_err() {
                return Err("leader election stopped".into());
            },
            () = stop.clone() => {
                drop(leading);
                let _ = lease_task.await;
                return Ok(());
            }
        }
    }
    context.health.following(false);
    tracing::info!(%identity, "leading: starting the controllers");
    let outcome = tokio::select! {
        () = controllers(context, &args, &stop) => Ok(()),
        () = lost(&mut leading) => Err("lost the leader Lease; exiting so that a new leader takes over".to_owned()),
    };
    // Dropping the channel releases the Lease. A follower does not watch it: it takes over when
    // the term it last saw ends (kube-lease-manager sleeps until then), at most a lease later.
    drop(leading);
    let _ = lease_task.await;
    tracing::info!("simfleet operator stopped");
    outcome
}

/// Resolves when this replica stops leading.
async fn lost(leading: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if leading.changed().await.is_err() || !*leading.borrow_and_update() {
            return;
        }
    }
}

/// The three controllers, until `stop`; in-flight reconciles finish first.
async fn controllers(context: Arc<Context>, args: &RunArgs, stop: &Stop) {
    tokio::join!(
        carrier_account::run(
            context.clone(),
            args.namespace.clone(),
            args.label_selector.clone(),
            stop.clone(),
        ),
        sim_group::run(
            context.clone(),
            args.namespace.clone(),
            args.label_selector.clone(),
            stop.clone(),
        ),
        data_quota::run(
            context,
            args.namespace.clone(),
            args.label_selector.clone(),
            stop.clone(),
        ),
    );
}
