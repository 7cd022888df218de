//! A carrier for in-process reconcile tests: SIM states and quotas the test scripts, every
//! submission and quota set recorded, faults injected. Changes stay pending until the test
//! confirms them, as a real carrier's bulk actions do.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use jiff::Timestamp;

use super::carriers::CarrierCache;
use simfleet_api::StateChange;
use simfleet_api::model::{
    ObservedState, QuotaEvent, QuotaReading, QuotaSetting, Refusal, RefusalKind, Selection,
    SimObservation, SimTarget, Submission,
};
use simfleet_carrier::{CallCounters, Capabilities, Carrier, CarrierError};

/// One SIM at the fake carrier.
#[derive(Clone, Debug)]
pub(crate) struct FakeSim {
    pub(crate) iccid: String,
    pub(crate) state: ObservedState,
    pub(crate) tags: Vec<String>,
}

/// A submission as the fake carrier received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) id: String,
    pub(crate) change: StateChange,
    pub(crate) devices: Vec<u64>,
}

/// What runs when a submission arrives, before it is answered (e.g. reading status).
pub(crate) type OnSubmit = Box<dyn Fn(usize) -> BoxFuture<'static, ()> + Send + Sync + 'static>;

/// The fake carrier.
#[derive(Default)]
pub(crate) struct FakeCarrier {
    pub(crate) sims: Mutex<BTreeMap<u64, FakeSim>>,
    pub(crate) received: Mutex<Vec<Received>>,
    /// Errors the next submissions answer with, in order.
    pub(crate) failing_submits: Mutex<VecDeque<CarrierError>>,
    /// Devices every submission refuses, as not able to take the change.
    pub(crate) refusing: Mutex<HashSet<u64>>,
    pub(crate) quotas: Mutex<BTreeMap<u64, QuotaReading>>,
    pub(crate) quota_sets: Mutex<Vec<(u64, QuotaSetting)>>,
    /// Errors the next quota sets answer with, in order (a failed set changes nothing).
    pub(crate) failing_sets: Mutex<VecDeque<CarrierError>>,
    /// Devices whose quota reads answer "endpoint deleted" (409).
    pub(crate) deleted: Mutex<HashSet<u64>>,
    pub(crate) on_submit: Mutex<Option<OnSubmit>>,
    pub(crate) observations: AtomicU64,
    next_id: AtomicU64,
    counters: Arc<CallCounters>,
}

impl std::fmt::Debug for FakeCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCarrier").finish_non_exhaustive()
    }
}

/// Most SIMs one fake action takes.
pub(crate) const FAKE_ACTION_LIMIT: usize = 2;

impl FakeCarrier {
    /// A carrier holding `sims` (device id, ICCID, state, tags).
    pub(crate) fn with(sims: &[(u64, ObservedState, &[&str])]) -> Arc<Self> {
        let fake = Self::default();
        {
            let mut held = fake.sims.lock().unwrap();
            for (id, state, tags) in sims {
                held.insert(
                    *id,
                    FakeSim {
                        iccid: format!("89{id:017}"),
                        state: state.clone(),
                        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                    },
                );
            }
        }
        Arc::new(fake)
    }

    /// The carrier finishes every pending change.
    pub(crate) fn confirm_all(&self) {
        for sim in self.sims.lock().unwrap().values_mut() {
            if let ObservedState::Pending(change) = sim.state {
                sim.state = match change {
                    StateChange::Pause => ObservedState::Paused,
                    StateChange::Resume => ObservedState::Active,
                };
            }
        }
    }

    /// Sets a SIM's state, as someone at the carrier's dashboard would.
    pub(crate) fn force(&self, device: u64, state: ObservedState) {
        self.sims.lock().unwrap().get_mut(&device).unwrap().state = state;
    }

    /// The submissions received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Makes the cache hand this carrier out as the verified client of `namespace/name`.
    pub(crate) fn install(self: &Arc<Self>, cache: &CarrierCache, namespace: &str, name: &str) {
        cache.install(&format!("{namespace}/{name}"), self.clone());
    }

    fn selected(&self, selection: &Selection) -> Vec<SimObservation> {
        let sims = self.sims.lock().unwrap();
        sims.iter()
            .filter(|(id, sim)| {
                selection.device_ids.contains(id)
                    || selection.iccids.contains(&sim.iccid)
                    || sim.tags.iter().any(|t| selection.tags.contains(t))
            })
            .map(|(id, sim)| SimObservation {
                iccid: sim.iccid.clone(),
                device_id: Some(*id),
                sim_id: None,
                state: sim.state.clone(),
                tags: sim.tags.clone(),
            })
            .collect()
    }
}

impl Carrier for FakeCarrier {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_sims_per_action: FAKE_ACTION_LIMIT,
            bulk: true,
            bulk_unavailable: None,
            data_quota: true,
            one_action_at_a_time: false,
            action_status_in_one_call: false,
        }
    }

    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>> {
        Box::pin(async { Ok(()) })
    }

    fn observe<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        self.observations.fetch_add(1, Ordering::SeqCst);
        let page = self.selected(selection);
        Box::pin(stream::iter([Ok(page)]))
    }

    fn submit<'a>(
        &'a self,
        change: StateChange,
        sims: &'a [SimTarget],
    ) -> BoxFuture<'a, Result<Submission, CarrierError>> {
        Box::pin(async move {
            let index = self.received.lock().unwrap().len();
            let hook = self
                .on_submit
                .lock()
                .unwrap()
                .as_ref()
                .map(|hook| hook(index));
            if let Some(hook) = hook {
                hook.await;
            }
            if let Some(error) = self.failing_submits.lock().unwrap().pop_front() {
                return Err(error);
            }
            let id = format!("job-{}", self.next_id.fetch_add(1, Ordering::SeqCst) + 1);
            let refusing = self.refusing.lock().unwrap().clone();
            let mut refused = Vec::new();
            let mut accepted = 0;
            let mut held = self.sims.lock().unwrap();
            for target in sims {
                if refusing.contains(&target.device_id) {
                    refused.push(Refusal {
                        device_id: target.device_id,
                        reason: "the carrier cannot change this SIM".into(),
                        kind: RefusalKind::Ineligible,
                    });
                    continue;
                }
                if let Some(sim) = held.get_mut(&target.device_id) {
                    sim.state = ObservedState::Pending(change);
                    accepted += 1;
                }
            }
            self.received.lock().unwrap().push(Received {
                id: id.clone(),
                change,
                devices: sims.iter().map(|s| s.device_id).collect(),
            });
            Ok(Submission {
                action_ids: vec![id],
                accepted,
                refused,
            })
        })
    }

    fn read_quota(
        &self,
        device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>> {
        Box::pin(async move {
            if self.deleted.lock().unwrap().contains(&device_id) {
                return Err(CarrierError::Conflict {
                    message: format!("endpoint {device_id} is deleted"),
                });
            }
            Ok(self.quotas.lock().unwrap().get(&device_id).cloned())
        })
    }

    fn set_quota<'a>(
        &'a self,
        device_id: u64,
        quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            if let Some(error) = self.failing_sets.lock().unwrap().pop_front() {
                return Err(error);
            }
            self.quota_sets
                .lock()
                .unwrap()
                .push((device_id, quota.clone()));
            self.quotas.lock().unwrap().insert(
                device_id,
                QuotaReading {
                    state: simfleet_api::model::QuotaState::Active,
                    volume_mb: quota.volume_mb,
                    expiry: Some(quota.expiry),
                    auto_refill: quota.auto_refill,
                    threshold_percentage: quota.threshold_percentage.map(f64::from),
                    last_volume_added: Some(quota.volume_mb),
                },
            );
            Ok(())
        })
    }

    fn delete_quota(&self, device_id: u64) -> BoxFuture<'_, Result<bool, CarrierError>> {
        Box::pin(async move { Ok(self.quotas.lock().unwrap().remove(&device_id).is_some()) })
    }

    fn quota_events(
        &self,
        _device_id: u64,
        _since: Option<Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn counters(&self) -> Arc<CallCounters> {
        self.counters.clone()
    }
}
