//! What the metrics show of the resources themselves, read from the controllers' watch caches
//! at scrape time (so a deleted object's series go with it): each condition with its reason,
//! the age of each group's oldest pending carrier action, and whether this replica leads.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::readiness::Health;
use simfleet_core::clock::Clock;

/// Labels of one condition of one object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    kind: &'static str,
    namespace: String,
    name: String,
    #[prometheus(flatten)]
    condition: ConditionLabelSet,
}

/// The condition part of [`ConditionLabels`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabelSet {
    r#type: String,
    status: String,
    reason: String,
}

/// Labels of one object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: &'static str,
    namespace: String,
    name: String,
}

/// What one object shows: its conditions and, for a SimGroup, its oldest pending action.
pub struct Shown<'a> {
    /// The status conditions.
    pub conditions: &'a [Condition],
    /// When the oldest carrier action still pending was submitted.
    pub oldest_pending: Option<Timestamp>,
}

/// One object's rows.
struct Row {
    object: ObjectLabels,
    conditions: Vec<ConditionLabelSet>,
    oldest_pending: Option<Timestamp>,
}

type Source = Box<dyn Fn() -> Vec<Row> + Send + Sync>;

/// The watch caches the metrics read.
#[derive(Default)]
pub(crate) struct WatchedResources {
    sources: Mutex<Vec<Source>>,
}

impl WatchedResources {
    /// Adds a kind's watch cache; `show` says what an object shows.
    pub(crate) fn watch<K>(&self, kind: &'static str, store: Store<K>, show: fn(&K) -> Shown<'_>)
    where
        K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.sources
            .lock()
            .expect("sources lock")
            .push(Box::new(move || {
                store
                    .state()
                    .iter()
                    .map(|object| {
                        let shown = show(object);
                        Row {
                            object: ObjectLabels {
                                kind,
                                namespace: object.namespace().unwrap_or_default(),
                                name: object.name_any(),
                            },
                            conditions: shown
                                .conditions
                                .iter()
                                .map(|c| ConditionLabelSet {
                                    r#type: c.type_.clone(),
                                    status: c.status.clone(),
                                    reason: c.reason.clone(),
                                })
                                .collect(),
                            oldest_pending: shown.oldest_pending,
                        }
                    })
                    .collect()
            }));
    }

    fn rows(&self) -> Vec<Row> {
        let sources = self.sources.lock().expect("sources lock");
        sources.iter().flat_map(|source| source()).collect()
    }
}

/// Encodes the resources' series at scrape time.
pub(crate) struct ResourceCollector {
    pub(crate) resources: Arc<WatchedResources>,
    pub(crate) health: Arc<Health>,
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for ResourceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceCollector").finish_non_exhaustive()
    }
}

impl Collector for ResourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self.resources.rows();
        let gauge = ConstGauge::new(1i64);
        let mut family = encoder.encode_descriptor(
            "simfleet_condition",
            "1 for each condition an object shows, by kind, type, status and reason (e.g. Stalled True ApprovalRequired)",
            None,
            gauge.metric_type(),
        )?;
        for row in &rows {
            for condition in &row.conditions {
                let labels = ConditionLabels {
                    kind: row.object.kind,
                    namespace: row.object.namespace.clone(),
                    name: row.object.name.clone(),
                    condition: condition.clone(),
                };
                ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let now = self.clock.now();
        let age = ConstGauge::new(0.0f64);
        let mut family = encoder.encode_descriptor(
            "simfleet_pending_action_oldest_age_seconds",
            "Age of a SimGroup's oldest carrier action not yet confirmed (0 when none is pending)",
            None,
            age.metric_type(),
        )?;
        for row in rows.iter().filter(|r| r.object.kind == "SimGroup") {
            let seconds = row
                .oldest_pending
                .map_or(0.0, |at| now.duration_since(at).as_secs_f64().max(0.0));
            ConstGauge::new(seconds).encode(family.encode_family(&row.object)?)?;
        }
        let leader = encoder.encode_descriptor(
            "simfleet_leader",
            "1 when this replica runs the controllers (it leads, or leader election is off), 0 while it follows",
            None,
            gauge.metric_type(),
        )?;
        ConstGauge::new(i64::from(self.health.leading())).encode(leader)?;
        Ok(())
    }
}
