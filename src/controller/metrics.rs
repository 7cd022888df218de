//! Prometheus metrics and the health endpoints, served by axum on `--metrics-addr`:
//! `/metrics` (OpenMetrics text), `/healthz` (the process answers) and `/readyz` (the watch
//! caches are synced, or this replica is a leader-election follower).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::CarrierCache;
use crate::api::{QuotaCounts, SimCounts, SimState};

/// Labels of reconcile counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    result: String,
}

/// Labels by kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Labels of a SimGroup's SIM counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SimLabels {
    namespace: String,
    sim_group: String,
    desired: &'static str,
    observed: &'static str,
}

/// Labels of one SimGroup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    namespace: String,
    sim_group: String,
}

/// Labels of a DataQuota's device counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    namespace: String,
    data_quota: String,
    state: &'static str,
}

/// Labels of carrier calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CarrierLabels {
    provider: String,
    account: String,
    route: String,
    status: String,
}

/// Labels of one carrier account.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    provider: String,
    account: String,
}

/// The `observed` label values of `simfleet_sims`.
const OBSERVED: [&str; 6] = [
    "in_desired_state",
    "pending",
    "failed",
    "ineligible",
    "paused_by_system",
    "conflicting",
];

/// The `state` label values of `simfleet_quota_devices`.
const QUOTA_STATES: [&str; 6] = [
    "active",
    "exhausted",
    "expired",
    "none",
    "failed",
    "ineligible",
];

fn observed_count(counts: &SimCounts, observed: &str) -> u64 {
    match observed {
        "in_desired_state" => counts.in_desired_state,
        "pending" => counts.pending,
        "failed" => counts.failed,
        "ineligible" => counts.ineligible,
        "paused_by_system" => counts.paused_by_system,
        _ => counts.conflicting,
    }
}

fn quota_count(counts: &QuotaCounts, state: &str) -> u64 {
    match state {
        "active" => counts.active,
        "exhausted" => counts.exhausted,
        "expired" => counts.expired,
        "none" => counts.none,
        "ineligible" => counts.ineligible,
        _ => counts.failed,
    }
}

/// Every `simfleet_sims` series of a group (both desired states, every observed label).
fn sim_labels<'a>(namespace: &'a str, name: &'a str) -> impl Iterator<Item = SimLabels> + 'a {
    [SimState::Active, SimState::Paused]
        .into_iter()
        .flat_map(move |desired| {
            OBSERVED.into_iter().map(move |observed| SimLabels {
                namespace: namespace.to_owned(),
                sim_group: name.to_owned(),
                desired: desired.as_str(),
                observed,
            })
        })
}

fn group_labels(namespace: &str, name: &str) -> GroupLabels {
    GroupLabels {
        namespace: namespace.to_owned(),
        sim_group: name.to_owned(),
    }
}

/// Every `simfleet_quota_devices` series of a DataQuota.
fn quota_labels<'a>(namespace: &'a str, name: &'a str) -> impl Iterator<Item = QuotaLabels> + 'a {
    QUOTA_STATES.into_iter().map(move |state| QuotaLabels {
        namespace: namespace.to_owned(),
        data_quota: name.to_owned(),
        state,
    })
}

/// Carrier call counters, read from the cached clients at scrape time (the clients count; the
/// metrics only show).
#[derive(Debug)]
struct CarrierCollector {
    carriers: Arc<CarrierCache>,
}

impl Collector for CarrierCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let clients = self.carriers.snapshot();
        let requests = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "simfleet_carrier_requests",
            "Carrier HTTP requests by provider, account, route and status (or timeout/connect/network)",
            None,
            requests.metric_type(),
        )?;
        for (account, provider, counters) in &clients {
            for (route, status, count) in counters.by_route() {
                let labels = CarrierLabels {
                    provider: provider.clone(),
                    account: account.clone(),
                    route: route.to_owned(),
                    status,
                };
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, read) in [
            (
                "simfleet_carrier_rate_limited",
                "429 answers from the carrier",
                (|c: &crate::carrier::CallCounters| c.rate_limited()) as fn(&_) -> u64,
            ),
            (
                "simfleet_carrier_retries",
                "Carrier requests repeated after a failure",
                |c: &crate::carrier::CallCounters| c.retries(),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, requests.metric_type())?;
            for (account, provider, counters) in &clients {
                let labels = AccountLabels {
                    provider: provider.clone(),
                    account: account.clone(),
                };
                ConstCounter::new(read(counters)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram>,
    sims: Family<SimLabels, Gauge>,
    pending_actions: Family<GroupLabels, Gauge>,
    quotas: Family<QuotaLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics, with the carrier counters read from `carriers`.
    pub fn new(carriers: Arc<CarrierCache>) -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "simfleet_reconciles",
            "Reconciles by kind and result (success, or the error kind)",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "simfleet_reconcile_duration_seconds",
            "Time of one reconcile, by kind",
            reconcile_seconds.clone(),
        );
        let sims = Family::<SimLabels, Gauge>::default();
        registry.register(
            "simfleet_sims",
            "SIMs of a SimGroup by desired state and observed condition (in_desired_state, pending, failed, ineligible, paused_by_system, conflicting)",
            sims.clone(),
        );
        let pending_actions = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "simfleet_pending_actions",
            "Carrier actions of a SimGroup submitted and not yet confirmed",
            pending_actions.clone(),
        );
        let quotas = Family::<QuotaLabels, Gauge>::default();
        registry.register(
            "simfleet_quota_devices",
            "Devices of a DataQuota by carrier quota state (active, exhausted, expired, none, failed)",
            quotas.clone(),
        );
        registry.register_collector(Box::new(CarrierCollector { carriers }));
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            sims,
            pending_actions,
            quotas,
        }
    }

    /// Counts one reconcile of `kind` with its result and duration.
    pub fn reconciled(&self, kind: &str, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Sets a SimGroup's SIM counts and pending actions.
    pub fn sim_group(
        &self,
        namespace: &str,
        name: &str,
        desired: SimState,
        counts: &SimCounts,
        pending_actions: usize,
    ) {
        for labels in sim_labels(namespace, name) {
            // A group that changed its desired state drops the old series.
            if labels.desired == desired.as_str() {
                let value = observed_count(counts, labels.observed);
                self.sims.get_or_create(&labels).set(value as i64);
            } else {
                self.sims.remove(&labels);
            }
        }
        self.pending_actions
            .get_or_create(&group_labels(namespace, name))
            .set(pending_actions as i64);
    }

    /// Forgets a deleted SimGroup's series.
    pub fn forget_sim_group(&self, namespace: &str, name: &str) {
        for labels in sim_labels(namespace, name) {
            self.sims.remove(&labels);
        }
        self.pending_actions.remove(&group_labels(namespace, name));
    }

    /// Sets a DataQuota's device counts by quota state.
    pub fn data_quota(&self, namespace: &str, name: &str, counts: &QuotaCounts) {
        for labels in quota_labels(namespace, name) {
            let value = quota_count(counts, labels.state);
            self.quotas.get_or_create(&labels).set(value as i64);
        }
    }

    /// Forgets a deleted DataQuota's series.
    pub fn forget_data_quota(&self, namespace: &str, name: &str) {
        for labels in quota_labels(namespace, name) {
            self.quotas.remove(&labels);
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%err, "encoding metrics failed");
        }
        text
    }
}

/// Controllers whose watch caches must sync before `/readyz` says ready.
const CONTROLLERS: u8 = 3;

/// Readiness: the watch caches of the three kinds are synced, or this replica follows a
/// leader (then it has no caches to sync and is ready to take over).
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicU8,
    follower: AtomicBool,
}

impl Health {
    /// Notes that one controller's watch cache is synced.
    pub fn synced(&self) {
        self.synced.fetch_add(1, Ordering::SeqCst);
    }

    /// Notes whether this replica is a leader-election follower.
    pub fn following(&self, follower: bool) {
        self.follower.store(follower, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.follower.load(Ordering::SeqCst) || self.synced.load(Ordering::SeqCst) >= CONTROLLERS
    }
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

async fn metrics(State(served): State<Served>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        served.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(served): State<Served>) -> (StatusCode, &'static str) {
    if served.health.ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "watch caches not synced yet",
        )
    }
}

/// Binds `addr` and serves the endpoints in the background; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics_: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Served {
            metrics: metrics_,
            health,
        });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(%err, "metrics server stopped");
        }
    });
    Ok(bound)
}
