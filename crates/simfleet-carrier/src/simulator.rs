//! `provider: simulator`: the simulator's SIM states through the Hologram client and its data
//! quotas through the emnify client, on one HTTP core (one rate limit, one set of counters).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use jiff::Timestamp;

use super::http::CallCounters;
use super::{Capabilities, Carrier, CarrierError, EmnifyClient, HologramClient};
use simfleet_api::StateChange;
use simfleet_api::model::{
    QuotaEvent, QuotaReading, QuotaSetting, Selection, SimObservation, SimTarget, Submission,
};

/// The simulator's two protocol surfaces as one carrier.
pub struct SimulatorClient {
    /// SIM states and bulk actions (Hologram protocol).
    pub(super) states: HologramClient,
    /// Data quotas and quota events (emnify protocol; the simulator takes the API key there).
    pub(super) quotas: EmnifyClient,
}

impl Carrier for SimulatorClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            data_quota: true,
            ..self.states.capabilities()
        }
    }

    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>> {
        self.states.verify()
    }

    fn observe<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        self.states.observe(selection)
    }

    fn submit<'a>(
        &'a self,
        change: StateChange,
        sims: &'a [SimTarget],
    ) -> BoxFuture<'a, Result<Submission, CarrierError>> {
        self.states.submit(change, sims)
    }

    fn action_statuses<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<simfleet_api::model::ActionStatus>, CarrierError>> {
        self.states.action_statuses(ids)
    }

    fn read_quota(
        &self,
        device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>> {
        self.quotas.read_quota(device_id)
    }

    fn set_quota<'a>(
        &'a self,
        device_id: u64,
        quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        self.quotas.set_quota(device_id, quota)
    }

    fn delete_quota(&self, device_id: u64) -> BoxFuture<'_, Result<bool, CarrierError>> {
        self.quotas.delete_quota(device_id)
    }

    fn quota_events(
        &self,
        device_id: u64,
        since: Option<Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>> {
        self.quotas.quota_events(device_id, since)
    }

    fn org_quota_events(
        &self,
        window: Option<(Timestamp, Timestamp)>,
    ) -> BoxFuture<'_, Result<Option<simfleet_api::model::OrgQuotaEvents>, CarrierError>> {
        self.quotas.org_quota_events(window)
    }

    fn last_lookup_plan(&self) -> Option<simfleet_api::model::LookupPlan> {
        self.states.last_lookup_plan()
    }

    fn counters(&self) -> Arc<CallCounters> {
        self.states.counters()
    }
}
