//! The carrier simulator: one HTTP server that speaks Hologram's, emnify's and Soracom's APIs
//! over an in-memory fleet, with realistic delays, limits and faults, and an admin API for
//! tests.
//!
//! Run it with `simfleet-simulator` (or `simfleet simulator`), or in-process with
//! [`Simulator::start`]. The README follows; its Rust example is compiled as a doctest.
#![doc = include_str!("../README.md")]

mod admin;
pub(crate) mod clock;
mod emnify;
pub mod fleet;
mod hologram;
pub(crate) mod http;
pub(crate) mod quota;
mod soracom;
pub(crate) mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::ClockMode;
pub use fleet::{Fleet, SeedConfig};
pub use http::RateLimitSpec;
pub(crate) use http::{Dialect, FaultRule, SimulatorState};
use simfleet_core::duration::FriendlyDuration;
pub use soracom::{
    BatchAccess, DEFAULT_AUTH_KEY as DEFAULT_SORACOM_AUTH_KEY, ExpiredToken, SameState,
    SoracomOptions,
};
pub use world::DelayModel;
pub use world::World;

/// API key the simulator accepts when none is configured (also in `examples/`).
pub const DEFAULT_HOLOGRAM_API_KEY: &str = "simulator-api-key";
/// emnify application token the simulator accepts when none is configured.
pub const DEFAULT_EMNIFY_APP_TOKEN: &str = "simulator-app-token";
/// Most devices in one Hologram bulk action.
pub(crate) const BULK_LIMIT: usize = 10_000;

/// Everything the simulator starts from.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The seeded fleet, unless `fleet_file` is set.
    pub seed: SeedConfig,
    /// A YAML fleet file to load instead of seeding.
    pub fleet_file: Option<PathBuf>,
    /// Hologram API keys accepted.
    pub hologram_api_keys: Vec<String>,
    /// emnify application tokens accepted.
    pub emnify_app_tokens: Vec<String>,
    /// How long accepted changes take.
    pub delays: DelayModel,
    /// How the virtual clock moves.
    pub clock: ClockMode,
    /// Virtual time at start (default: now).
    pub start_time: Option<Timestamp>,
    /// Lifetime of emnify auth tokens.
    pub token_lifetime: SignedDuration,
    /// Per-credential limit on carrier routes (none: unlimited).
    pub rate_limit: Option<RateLimitSpec>,
    /// Per-credential limit on emnify's `/v1/authenticate`.
    pub auth_rate_limit: Option<RateLimitSpec>,
    /// Per-client-IP limit on emnify's routes (emnify documents 2,000 requests per IP in any 5
    /// minutes; none: unlimited), answered with emnify's 429.
    pub emnify_ip_rate_limit: Option<RateLimitSpec>,
    /// Fault rules in force at start and after reset.
    pub faults: Vec<FaultRule>,
    /// Most devices in one bulk action.
    pub max_bulk: usize,
    /// Whether the credentials may use emnify's bulk route `PATCH /v2/endpoint/multi`.
    pub emnify_bulk: EmnifyBulk,
    /// How emnify's endpoint filter `q=tags:X` matches (its documents do not say).
    pub emnify_tag_filter: EmnifyTagFilter,
    /// Which of the shapes Hologram's documents disagree on the simulator speaks.
    pub hologram: HologramVariants,
    /// Send `Retry-After` with rate-limit 429s (neither carrier documents one).
    pub retry_after_header: bool,
    /// Where Soracom's documents are silent, what its surface answers.
    pub soracom: SoracomOptions,
}

/// Where Hologram's documents disagree, the shape the simulator speaks: each a start-up option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HologramVariants {
    /// Device `tags` as objects (the API Blueprint) or strings (the newer pages).
    pub tags: TagShape,
    /// Where the bulk route takes `orgid`.
    pub orgid: OrgIdPlacement,
    /// The bulk answer's `jobid` as a number or a string.
    pub jobid: JobIdShape,
    /// Bulk warnings as objects `{deviceid, linkid, message}` or plain strings.
    pub warnings: WarningShape,
    /// Whether the jobs list `GET /devices/batch/state` answers (403 for plans without
    /// activity history).
    pub jobs: JobsRoute,
}

/// Hologram device tags: objects or strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagShape {
    /// `[{"id": 1, "name": "cold-chain"}]` (API Blueprint).
    #[default]
    Objects,
    /// `["cold-chain"]` (docs.hologram.io pages).
    Strings,
}

/// Where the bulk route takes `orgid`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgIdPlacement {
    /// In the JSON body, optional (API Blueprint).
    #[default]
    Body,
    /// A required query parameter (one version of docs.hologram.io): without it, 400.
    Query,
}

/// The bulk answer's `jobid`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobIdShape {
    /// `"jobid": 10000`.
    #[default]
    Number,
    /// `"jobid": "10000"`.
    String,
}

/// Bulk warnings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WarningShape {
    /// `{"deviceid", "linkid", "message"}`.
    #[default]
    Objects,
    /// `"device 1234: SIM state is locked (...)"`.
    Strings,
}

/// Whether the jobs list answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobsRoute {
    /// It lists the organisation's bulk jobs.
    #[default]
    Allowed,
    /// 403, as for plans without activity history.
    Forbidden,
}

/// Whether emnify's bulk route answers for the simulator's users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmnifyBulk {
    /// The route works (users with the bulk permission).
    #[default]
    Allowed,
    /// The route answers 403, as emnify does for users without the bulk permission.
    Forbidden,
}

/// How emnify's endpoint filter `q=tags:X` matches: emnify's documents do not say, so a client
/// must hold under either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmnifyTagFilter {
    /// Endpoints carrying the tag `X`.
    #[default]
    Exact,
    /// Endpoints carrying a tag that contains `X` (`tags:meter` also matches `smart-meter`).
    Substring,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: SeedConfig::default(),
            fleet_file: None,
            hologram_api_keys: vec![DEFAULT_HOLOGRAM_API_KEY.into()],
            emnify_app_tokens: vec![DEFAULT_EMNIFY_APP_TOKEN.into()],
            delays: DelayModel::default(),
            clock: ClockMode::Realtime,
            start_time: None,
            token_lifetime: SignedDuration::from_hours(1),
            rate_limit: None,
            emnify_ip_rate_limit: None,
            // emnify allows 100 authentications per 5 minutes per IP.
            auth_rate_limit: Some(RateLimitSpec {
                per_second: 100.0 / 300.0,
                burst: 100,
            }),
            faults: Vec::new(),
            max_bulk: BULK_LIMIT,
            emnify_bulk: EmnifyBulk::Allowed,
            emnify_tag_filter: EmnifyTagFilter::Exact,
            hologram: HologramVariants::default(),
            retry_after_header: false,
            soracom: SoracomOptions::default(),
        }
    }
}

impl SimulatorConfig {
    /// A configuration for tests: manual clock, fixed delays of `delay`, no slow SIMs.
    pub fn for_tests(sims: usize, delay: SignedDuration) -> Self {
        Self {
            seed: SeedConfig {
                sims,
                ..SeedConfig::default()
            },
            delays: DelayModel {
                min: delay,
                max: delay,
                slow_share: 0.0,
                slow: SignedDuration::ZERO,
            },
            clock: ClockMode::Manual,
            start_time: Some("2026-06-01T00:00:00Z".parse().expect("valid timestamp")),
            ..Self::default()
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The fleet could not be built.
    #[error(transparent)]
    Fleet(#[from] fleet::FleetError),
    /// The address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds the world the configuration describes.
pub(crate) fn build_world(config: &SimulatorConfig) -> Result<World, fleet::FleetError> {
    let fleet = match &config.fleet_file {
        Some(path) => Fleet::from_file(path)?,
        None => Fleet::seeded(&config.seed),
    };
    Ok(World::new(fleet, config.delays.clone(), config.seed.seed))
}

/// The simulator's routes.
pub(crate) fn router(state: Arc<SimulatorState>) -> Router {
    Router::new()
        .merge(hologram::routes(state.clone()))
        .merge(emnify::routes(state.clone()))
        .merge(soracom::routes(state.clone()))
        .merge(admin::routes())
        .merge(soracom::admin::routes())
        .fallback(|uri: axum::http::Uri| async move {
            Dialect::of_path(uri.path())
                .error(StatusCode::NOT_FOUND, format!("no route {}", uri.path()))
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::observe,
        ))
        .with_state(state)
}

/// The carrier simulator.
pub struct Simulator;

impl Simulator {
    /// Builds the fleet, binds the address and serves until the handle is stopped or dropped.
    pub async fn start(config: SimulatorConfig) -> Result<SimulatorHandle, StartError> {
        let world = build_world(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(SimulatorState::new(config, world));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            // Connection addresses: emnify limits and locks authentication per client IP.
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
            if let Err(err) = served {
                tracing::error!(%err, "simulator server failed");
            }
        });
        Ok(SimulatorHandle {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimulatorHandle {
    addr: SocketAddr,
    state: Arc<SimulatorState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the base URL of a `provider: simulator` CarrierAccount.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hologram's base URL (`.../api/1`).
    pub fn hologram_url(&self) -> String {
        format!("{}/api/1", self.base_url())
    }

    /// emnify's base URL (`.../api`; routes start with `/v1`).
    pub fn emnify_url(&self) -> String {
        format!("{}/api", self.base_url())
    }

    /// Soracom's API root (the simulator's root: clients append `/v1`, as `SORACOM_ENDPOINT`
    /// expects).
    pub fn soracom_url(&self) -> String {
        self.base_url()
    }

    /// The admin API's base URL (`.../_sim`).
    pub fn admin_url(&self) -> String {
        format!("{}/_sim", self.base_url())
    }

    /// Direct access to the state, for in-process tests and benchmarks.
    pub fn state(&self) -> &Arc<SimulatorState> {
        &self.state
    }

    /// Moves the virtual clock forward and applies what became due.
    pub fn advance(&self, by: SignedDuration) -> Timestamp {
        let now = self.state.clock.advance(by);
        drop(self.state.world());
        now
    }

    /// Stops the server and waits for it to finish in-flight requests.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `simfleet simulator` flags.
#[derive(Debug, clap::Args)]
pub struct SimulatorArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Number of SIMs to seed.
    #[arg(long, default_value_t = 1000)]
    pub sims: usize,
    /// Seed of the fleet's random choices (same seed, same fleet).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Load the fleet from a YAML file instead of seeding (docs/simulator.md, "A fleet file").
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// Share of seeded SIMs paused by the customer (PAUSED-USER).
    #[arg(long, default_value_t = 0.05, value_parser = share)]
    pub paused_share: f64,
    /// Share of seeded SIMs paused by the carrier's system (PAUSED-SYS).
    #[arg(long, default_value_t = 0.02, value_parser = share)]
    pub paused_by_system_share: f64,
    /// Share of seeded SIMs deactivated (DEAD / emnify Deleted).
    #[arg(long, default_value_t = 0.01, value_parser = share)]
    pub deactivated_share: f64,
    /// Hologram organisation of the seeded SIMs.
    #[arg(long, default_value_t = 1)]
    pub org_id: u64,
    /// Hologram API key to accept (repeat for several).
    #[arg(long = "hologram-api-key", value_name = "KEY", default_values_t = [DEFAULT_HOLOGRAM_API_KEY.to_owned()])]
    pub hologram_api_keys: Vec<String>,
    /// emnify application token to accept (repeat for several).
    #[arg(long = "emnify-app-token", value_name = "TOKEN", default_values_t = [DEFAULT_EMNIFY_APP_TOKEN.to_owned()])]
    pub emnify_app_tokens: Vec<String>,
    /// Shortest delay before an accepted change shows (units d, h, m, s).
    #[arg(long, default_value = "2s")]
    pub delay_min: FriendlyDuration,
    /// Longest delay before an accepted change shows.
    #[arg(long, default_value = "5s")]
    pub delay_max: FriendlyDuration,
    /// Share of SIMs whose change takes `--slow-delay` instead.
    #[arg(long, default_value_t = 0.001, value_parser = share)]
    pub slow_share: f64,
    /// Delay of the slow SIMs ("rarely up to 24 hours").
    #[arg(long, default_value = "2h")]
    pub slow_delay: FriendlyDuration,
    /// realtime: the clock follows wall time; manual: it moves only via the admin API.
    #[arg(long, value_enum, default_value_t = ClockMode::Realtime)]
    pub clock: ClockMode,
    /// Lifetime of emnify auth tokens.
    #[arg(long, default_value = "1h")]
    pub token_lifetime: FriendlyDuration,
    /// Requests per second each credential may make on carrier routes (0: unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit: f64,
    /// Burst of the per-credential rate limit.
    #[arg(long, default_value_t = 50)]
    pub rate_burst: u32,
    /// Requests per second each client IP may make on emnify's routes, whatever the credential
    /// (emnify documents 2,000 per IP in any 5 minutes, about 6.7; 0: unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub emnify_ip_rate_limit: f64,
    /// Burst of the per-IP emnify limit.
    #[arg(long, default_value_t = 50)]
    pub emnify_ip_rate_burst: u32,
    /// Share of carrier requests answered 503.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub error_rate: f64,
    /// Extra latency of every carrier request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// allowed: emnify's bulk route `PATCH /api/v2/endpoint/multi` works; forbidden: it answers
    /// 403, as for emnify users without the bulk permission.
    #[arg(long, value_enum, default_value_t = EmnifyBulk::Allowed)]
    pub emnify_bulk: EmnifyBulk,
    /// exact: emnify's `q=tags:X` matches endpoints tagged X; substring: also those with a tag
    /// containing X (emnify's documents do not say which).
    #[arg(long, value_enum, default_value_t = EmnifyTagFilter::Exact)]
    pub emnify_tag_filter: EmnifyTagFilter,
    /// Hologram device tags as objects (API Blueprint) or strings (newer pages).
    #[arg(long, value_enum, default_value_t = TagShape::Objects)]
    pub hologram_tags: TagShape,
    /// Hologram bulk route's orgid: in the body (optional) or a required query parameter.
    #[arg(long, value_enum, default_value_t = OrgIdPlacement::Body)]
    pub hologram_orgid: OrgIdPlacement,
    /// Hologram bulk answer's jobid as a number or a string.
    #[arg(long, value_enum, default_value_t = JobIdShape::Number)]
    pub hologram_jobid: JobIdShape,
    /// Hologram bulk warnings as objects or plain strings.
    #[arg(long, value_enum, default_value_t = WarningShape::Objects)]
    pub hologram_warnings: WarningShape,
    /// Hologram's jobs list: allowed, or 403 as for plans without activity history.
    #[arg(long, value_enum, default_value_t = JobsRoute::Allowed)]
    pub hologram_jobs: JobsRoute,
    /// Send Retry-After with rate-limit 429s (neither carrier documents one).
    #[arg(long)]
    pub retry_after_header: bool,
    /// Soracom auth key `ID:SECRET` that `POST /v1/auth` accepts (repeat for several).
    #[arg(long = "soracom-auth-key", value_name = "ID:SECRET", default_values_t = [format!("{}:{}", DEFAULT_SORACOM_AUTH_KEY.0, DEFAULT_SORACOM_AUTH_KEY.1)])]
    pub soracom_auth_keys: Vec<String>,
    /// Soracom's answer to an expired or revoked token (its documents do not say).
    #[arg(long, value_enum, default_value_t = ExpiredToken::Unauthorized)]
    pub soracom_expired_token: ExpiredToken,
    /// Soracom's answer to a change to the state a SIM is in (its documents do not say).
    #[arg(long, value_enum, default_value_t = SameState::Ok)]
    pub soracom_same_state: SameState,
    /// Soracom requests per minute per route (unpublished; 0: no limit and no headers).
    #[arg(long, default_value_t = 6000)]
    pub soracom_rate_limit: u32,
    /// Milliseconds each Soracom batch task takes (tasks run one at a time).
    #[arg(long, default_value_t = 50)]
    pub soracom_task_ms: u64,
    /// How far Soracom's search (`/v1/query/*`) lags writes.
    #[arg(long, default_value = "15s")]
    pub soracom_query_lag: FriendlyDuration,
    /// allowed: Soracom's Batch API runs jobs; forbidden: it answers 403, as for a user whose
    /// permissions do not include it.
    #[arg(long, value_enum, default_value_t = BatchAccess::Allowed)]
    pub soracom_batch: BatchAccess,
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a share from 0 to 1 (e.g. 0.02)")),
    }
}

impl SimulatorArgs {
    /// The configuration these flags describe.
    pub(crate) fn to_config(&self) -> Result<SimulatorConfig, String> {
        if self.delay_max.as_duration() < self.delay_min.as_duration() {
            return Err("--delay-max must not be shorter than --delay-min".into());
        }
        let mut faults = Vec::new();
        if self.error_rate > 0.0 || self.latency_ms > 0 {
            let rule = FaultRule {
                route: "*".into(),
                error_rate: self.error_rate,
                latency_ms: self.latency_ms,
                ..FaultRule::default()
            };
            rule.check()
                .map_err(|e| format!("--error-rate/--latency-ms: {e}"))?;
            faults.push(rule);
        }
        Ok(SimulatorConfig {
            listen: self.listen,
            seed: SeedConfig {
                sims: self.sims,
                seed: self.seed,
                paused_share: self.paused_share,
                paused_by_system_share: self.paused_by_system_share,
                deactivated_share: self.deactivated_share,
                org_id: self.org_id,
            },
            fleet_file: self.fleet.clone(),
            hologram_api_keys: self.hologram_api_keys.clone(),
            emnify_app_tokens: self.emnify_app_tokens.clone(),
            delays: DelayModel {
                min: self.delay_min.as_duration(),
                max: self.delay_max.as_duration(),
                slow_share: self.slow_share,
                slow: self.slow_delay.as_duration(),
            },
            clock: self.clock,
            start_time: None,
            token_lifetime: self.token_lifetime.as_duration(),
            rate_limit: (self.rate_limit > 0.0).then_some(RateLimitSpec {
                per_second: self.rate_limit,
                burst: self.rate_burst,
            }),
            emnify_ip_rate_limit: (self.emnify_ip_rate_limit > 0.0).then_some(RateLimitSpec {
                per_second: self.emnify_ip_rate_limit,
                burst: self.emnify_ip_rate_burst,
            }),
            faults,
            emnify_bulk: self.emnify_bulk,
            emnify_tag_filter: self.emnify_tag_filter,
            hologram: HologramVariants {
                tags: self.hologram_tags,
                orgid: self.hologram_orgid,
                jobid: self.hologram_jobid,
                warnings: self.hologram_warnings,
                jobs: self.hologram_jobs,
            },
            retry_after_header: self.retry_after_header,
            soracom: SoracomOptions {
                auth_keys: self
                    .soracom_auth_keys
                    .iter()
                    .map(|pair| {
                        pair.split_once(':')
                            .filter(|(id, key)| !id.is_empty() && !key.is_empty())
                            .map(|(id, key)| (id.to_owned(), key.to_owned()))
                            .ok_or_else(|| {
                                format!("--soracom-auth-key {pair:?}: write the auth key id and the key as ID:SECRET")
                            })
                    })
                    .collect::<Result<_, _>>()?,
                expired_token: self.soracom_expired_token,
                same_state: self.soracom_same_state,
                rate_limit_per_minute: self.soracom_rate_limit,
                task_time: jiff::SignedDuration::from_millis(
                    i64::try_from(self.soracom_task_ms).map_err(|_| "--soracom-task-ms is too large")?,
                ),
                query_lag: self.soracom_query_lag.as_duration(),
                batch: self.soracom_batch,
            },
            ..SimulatorConfig::default()
        })
    }
}

/// Runs `simfleet simulator` until Ctrl-C or SIGTERM.
pub async fn run(args: SimulatorArgs) -> Result<(), String> {
    let config = args.to_config()?;
    let handle = Simulator::start(config).await.map_err(|e| e.to_string())?;
    // Listening before the addresses are printed: whoever reads them may stop us at once.
    let stop = simfleet_core::shutdown::requested();
    let sims = handle.state().world().0.fleet.len();
    println!("simfleet carrier simulator: for trying simfleet out and for tests, not a carrier.");
    println!(
        "  Hologram API  {}   HTTP Basic user \"apikey\", key(s): {}",
        handle.hologram_url(),
        args.hologram_api_keys.join(", ")
    );
    println!(
        "  emnify API    {}     application token(s): {}",
        handle.emnify_url(),
        args.emnify_app_tokens.join(", ")
    );
    println!(
        "  Soracom API   {}   (baseUrl; clients add /v1)   auth key(s): {}",
        handle.soracom_url(),
        args.soracom_auth_keys.join(", ")
    );
    println!(
        "  admin API     {}/   (docs/simulator.md: stats, sims, jobs, faults, clock, consume, reset)",
        handle.admin_url()
    );
    println!(
        "  CarrierAccount baseUrl for provider: simulator   {}",
        handle.base_url()
    );
    println!(
        "  fleet: {sims} SIMs; device ids from 1001, ICCIDs from 8944500000000000001. Ctrl-C stops."
    );
    stop.await;
    handle.stop().await;
    eprintln!("simulator stopped");
    Ok(())
}
