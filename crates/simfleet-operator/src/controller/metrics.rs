//! The operator's Prometheus metrics: reconciles, SIM and quota counts, and (through
//! collectors read at scrape time) the carrier figures and the resources' conditions. Served
//! by [`super::health`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::CarrierCache;
use super::carrier_metrics::CarrierCollector;
use super::readiness::Health;
use super::resource_metrics::{ResourceCollector, Shown, WatchedResources};
use simfleet_api::{QuotaCounts, SimCounts, SimState};
use simfleet_core::clock::Clock;

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

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram>,
    sims: Family<SimLabels, Gauge>,
    pending_actions: Family<GroupLabels, Gauge>,
    quotas: Family<QuotaLabels, Gauge>,
    last_success: Family<KindLabels, Gauge<f64, AtomicU64>>,
    resources: Arc<WatchedResources>,
    clock: Clock,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics, with the carrier counters read from `carriers`, leadership from `health`,
    /// and times from `clock`.
    pub fn new(carriers: Arc<CarrierCache>, health: Arc<Health>, clock: Clock) -> Self {
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
        let last_success = Family::<KindLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "simfleet_reconcile_last_success_timestamp_seconds",
            "When a reconcile of this kind last succeeded (Unix time)",
            last_success.clone(),
        );
        registry.register_collector(Box::new(CarrierCollector { carriers }));
        let resources = Arc::new(WatchedResources::default());
        registry.register_collector(Box::new(ResourceCollector {
            resources: resources.clone(),
            health,
            clock: clock.clone(),
        }));
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            sims,
            pending_actions,
            quotas,
            last_success,
            resources,
            clock,
        }
    }

    /// Shows the objects of a kind's watch cache (conditions, oldest pending action).
    pub fn watch<K>(
        &self,
        kind: &'static str,
        store: kube::runtime::reflector::Store<K>,
        show: fn(&K) -> Shown<'_>,
    ) where
        K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.resources.watch(kind, store, show);
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
        if result == "success" {
            let now = self.clock.now().as_millisecond() as f64 / 1000.0;
            self.last_success
                .get_or_create(&KindLabels {
                    kind: kind.to_owned(),
                })
                .set(now);
        }
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
    pub(crate) fn forget_sim_group(&self, namespace: &str, name: &str) {
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
    pub(crate) fn forget_data_quota(&self, namespace: &str, name: &str) {
        for labels in quota_labels(namespace, name) {
            self.quotas.remove(&labels);
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%err, "encoding metrics failed");
        }
        text
    }
}
