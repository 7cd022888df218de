//! What every reconcile shares: the Kubernetes client, the carrier clients, events, metrics,
//! the clock, and what this process remembers between reconciles.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::Reporter;

use super::carriers::CarrierCache;
use super::errors::ErrorBackoff;
use super::events::EventPublisher;
use super::{MANAGER, metrics, readiness};
use crate::sim_group::in_flight::InFlight;
use simfleet_carrier::HttpSettings;

/// When a group was last observed in full, and what that cost in carrier requests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FullObservation {
    pub(crate) at: jiff::Timestamp,
    pub(crate) requests: u64,
    /// The other groups' claims it was planned with ([`ClaimIndex::fingerprint`]).
    ///
    /// [`ClaimIndex::fingerprint`]: crate::sim_group::claims::ClaimIndex::fingerprint
    pub(crate) claims: u64,
}

/// What every reconcile shares.
pub struct Context {
    /// The SimGroups and CarrierAccounts the SimGroup controller's watches keep (set once it
    /// starts): a reconcile reads its peers and accounts there, not with a list per reconcile.
    pub(crate) group_stores: std::sync::OnceLock<GroupStores>,
    /// The DataQuotas the DataQuota controller watches (set when it starts).
    pub(crate) quota_store:
        std::sync::OnceLock<kube::runtime::reflector::Store<simfleet_api::DataQuota>>,
    /// The Kubernetes client.
    pub client: Client,
    /// Carrier clients by account.
    pub carriers: Arc<CarrierCache>,
    /// Kubernetes Events.
    pub events: EventPublisher,
    /// The actions each group (`namespace/name`) submitted from this process and has not seen
    /// land (carriers that do not show pending states are covered by this).
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// HTTP settings of carrier clients.
    pub http: HttpSettings,
    /// Retry delays after failed reconciles.
    pub backoff: ErrorBackoff,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Readiness.
    pub health: Arc<readiness::Health>,
    /// Accounts for the CarrierAccount controller to look at again.
    pub account_rechecks: AccountRechecks,
    /// The watches on the Secrets the accounts name.
    pub(crate) secret_watches: crate::carrier_account::secret_watch::SecretWatches,
    /// When each group (`namespace/name`) was last observed in full, in this process.
    full_observations: Mutex<HashMap<String, FullObservation>>,
    /// The carrier base URLs credentials may be sent to.
    pub carrier_urls: simfleet_api::CarrierUrlPolicy,
    /// The one clock every reconcile reads.
    pub clock: simfleet_core::clock::Clock,
    /// What each DataQuota (`namespace/name`) last saw of its devices, in this process.
    pub quota_views: Mutex<HashMap<String, crate::data_quota::view::QuotaView>>,
    /// How often each DataQuota was woken (its view dropped) in this process: a pass woken
    /// while it ran keeps no view, so that the reconcile that follows looks again in full.
    pub quota_wakes: Mutex<HashMap<String, u64>>,
    /// How long the audit of a DataQuota's devices takes to read each once.
    pub quota_audit_period: jiff::SignedDuration,
    /// How long after the start a SimGroup or DataQuota waits for its peers' claims.
    pub peer_read_wait: std::time::Duration,
    /// How often each account's quota events are listed for its DataQuotas.
    pub quota_event_poll: std::time::Duration,
    /// What each DataQuota's last reconcile that reached the carrier cost in requests.
    quota_requests: Mutex<HashMap<String, u64>>,
    /// Actions each group (`namespace/name`) planned and has not sent yet, where the carrier
    /// runs one action at a time: each goes when the previous one is final, with no new
    /// observation in between.
    queued: Mutex<HashMap<String, crate::sim_group::queue::Queued>>,
    /// When this process started (real time): how long a group waits for its peers' first
    /// readings after a restart is bounded from it.
    pub(crate) started: std::time::Instant,
    /// What each group last found as its members, for the other groups' conflicts.
    pub(crate) members: crate::sim_group::claims::MemberRegistry,
    /// What each DataQuota targets, for the others' conflicts.
    pub(crate) quota_claims: crate::data_quota::claims::QuotaClaims,
    /// DataQuotas to reconcile because one they meet changed its targets or its quota.
    pub(crate) quota_wakeups: Wakeups<kube::runtime::reflector::ObjectRef<simfleet_api::DataQuota>>,
    /// Groups to reconcile because a group they conflict with found other members.
    pub(crate) peer_wakeups: Wakeups<kube::runtime::reflector::ObjectRef<simfleet_api::SimGroup>>,
}

/// A channel of objects for a controller to reconcile (`Controller::reconcile_on`), taken once.
pub(crate) struct Wakeups<T> {
    sender: futures::channel::mpsc::UnboundedSender<T>,
    receiver: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<T>>>,
}

impl<T> Default for Wakeups<T> {
    fn default() -> Self {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl<T> Wakeups<T> {
    /// Asks for `object` to be reconciled (nothing is lost when no controller runs).
    pub(crate) fn wake(&self, object: T) {
        let _ = self.sender.unbounded_send(object);
    }

    /// The requests, for the one controller (empty for a second taker).
    pub(crate) fn take(&self) -> futures::channel::mpsc::UnboundedReceiver<T> {
        self.receiver
            .lock()
            .expect("wakeups lock")
            .take()
            .unwrap_or_else(|| futures::channel::mpsc::unbounded().1)
    }
}

/// The watch caches a SimGroup reconcile reads its peers and accounts from.
pub(crate) struct GroupStores {
    pub(crate) groups: kube::runtime::reflector::Store<simfleet_api::SimGroup>,
    pub(crate) accounts: kube::runtime::reflector::Store<simfleet_api::CarrierAccount>,
}

/// Asks the CarrierAccount controller to look at its accounts again, e.g. when a client's
/// capabilities changed during a submit (emnify's bulk route answered 403), so that status
/// shows it at once instead of at the next resync. Accounts are few and such changes rare, so
/// all are looked at (kube-runtime's per-object trigger is unstable).
#[derive(Default)]
pub struct AccountRechecks(Wakeups<()>);

impl AccountRechecks {
    /// Asks for the accounts to be reconciled again.
    pub fn request(&self) {
        // The controller may have stopped; nothing is lost then.
        self.0.wake(());
    }

    /// The requests, for the one CarrierAccount controller (empty for a second taker).
    pub(crate) fn take(&self) -> futures::channel::mpsc::UnboundedReceiver<()> {
        self.0.take()
    }

    /// A function that asks, for a task that outlives a reconcile (a Secret's watch).
    pub(crate) fn requester(&self) -> crate::carrier_account::secret_watch::OnChange {
        let sender = self.0.sender.clone();
        std::sync::Arc::new(move || {
            let _ = sender.unbounded_send(());
        })
    }
}

impl Context {
    /// Remembers the SIMs of a submitted action (those the carrier did not refuse) as in flight
    /// for a group, until they are seen in the action's target state.
    pub(crate) fn remember_in_flight(
        &self,
        group: &str,
        action_id: &str,
        change: simfleet_api::StateChange,
        sims: &[simfleet_api::model::SimTarget],
        refused: &[simfleet_api::model::Refusal],
    ) {
        let refused: HashSet<u64> = refused.iter().map(|r| r.device_id).collect();
        let mut all = self.in_flight.lock().expect("in-flight lock");
        let memory = all.entry(group.to_owned()).or_default();
        memory.forget(crate::sim_group::in_flight::RESERVED);
        memory.remember(
            action_id,
            change,
            sims.iter()
                .map(|s| s.device_id)
                .filter(|d| !refused.contains(d)),
        );
    }

    /// Reserves the SIMs of an action about to be sent for a group (see
    /// [`in_flight::reserve`](crate::sim_group::in_flight::reserve)): those another group of
    /// this process has in flight are left out.
    pub(crate) fn reserve(
        &self,
        group: &str,
        change: simfleet_api::StateChange,
        sims: &[simfleet_api::model::SimTarget],
    ) -> Vec<simfleet_api::model::SimTarget> {
        let mut all = self.in_flight.lock().expect("in-flight lock");
        crate::sim_group::in_flight::reserve(&mut all, group, change, sims)
    }

    /// Drops a group's reservation whose submit did not go through.
    pub(crate) fn release(&self, group: &str) {
        if let Some(memory) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(group)
        {
            memory.forget(crate::sim_group::in_flight::RESERVED);
        }
    }

    /// A group's actions in flight, less those status no longer lists and those the carrier's
    /// jobs list shows finished.
    pub(crate) fn in_flight(
        &self,
        group: &str,
        listed: &[simfleet_api::PendingAction],
        statuses: &[simfleet_api::model::ActionStatus],
    ) -> InFlight {
        let mut all = self.in_flight.lock().expect("in-flight lock");
        let memory = all.entry(group.to_owned()).or_default();
        memory.retain_unfinished(listed, statuses);
        // Other groups' SIMs in flight: two groups that observed at once must not both send.
        memory.clone().with_others(&all, group)
    }

    /// Forgets the SIMs of a group whose actions reached them.
    pub(crate) fn landed(&self, group: &str, devices: &[u64]) {
        if let Some(memory) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(group)
        {
            memory.landed(devices);
        }
    }

    /// Forgets a deleted group's actions, sent and queued.
    pub(crate) fn forget_in_flight(&self, group: &str) {
        self.in_flight.lock().expect("in-flight lock").remove(group);
        self.queued.lock().expect("queue lock").remove(group);
    }

    /// Replaces a group's queued actions (none: forgets them).
    pub(crate) fn set_queued(&self, group: &str, queued: Option<crate::sim_group::queue::Queued>) {
        let mut all = self.queued.lock().expect("queue lock");
        match queued {
            Some(q) => all.insert(group.to_owned(), q),
            None => all.remove(group),
        };
    }

    /// Takes a group's queued actions.
    pub(crate) fn take_queued(&self, group: &str) -> Option<crate::sim_group::queue::Queued> {
        self.queued.lock().expect("queue lock").remove(group)
    }

    /// A group's last full observation by this process (none after a restart).
    pub(crate) fn last_full_observation(&self, group: &str) -> Option<FullObservation> {
        self.full_observations
            .lock()
            .expect("observations lock")
            .get(group)
            .copied()
    }

    /// Records a group's full observation.
    pub(crate) fn observed_in_full(&self, group: &str, observation: FullObservation) {
        self.full_observations
            .lock()
            .expect("observations lock")
            .insert(group.to_owned(), observation);
    }

    /// What a DataQuota's last reconcile that reached the carrier cost, in this process.
    pub(crate) fn quota_requests(&self, quota: &str) -> Option<u64> {
        self.quota_requests
            .lock()
            .expect("costs lock")
            .get(quota)
            .copied()
    }

    /// Records what a DataQuota's reconcile cost.
    pub(crate) fn quota_requests_were(&self, quota: &str, requests: u64) {
        self.quota_requests
            .lock()
            .expect("costs lock")
            .insert(quota.to_owned(), requests);
    }

    /// A context for a client, with the default carrier URL policy.
    pub fn new(client: Client) -> Arc<Self> {
        Self::with_url_policy(client, simfleet_api::CarrierUrlPolicy::default())
    }

    /// A context for a client that sends credentials only to the URLs `carrier_urls` allows.
    pub(crate) fn with_url_policy(
        client: Client,
        carrier_urls: simfleet_api::CarrierUrlPolicy,
    ) -> Arc<Self> {
        Self::with_clock(client, carrier_urls, simfleet_core::clock::Clock::default())
    }

    /// A context whose reconciles read the time from `clock`.
    pub fn with_clock(
        client: Client,
        carrier_urls: simfleet_api::CarrierUrlPolicy,
        clock: simfleet_core::clock::Clock,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let carriers = Arc::new(CarrierCache::default());
        let health = Arc::new(readiness::Health::default());
        Arc::new(Self {
            events: EventPublisher::new(client.clone(), reporter),
            client,
            metrics: Arc::new(metrics::Metrics::new(
                carriers.clone(),
                health.clone(),
                clock.clone(),
            )),
            health,
            carriers,
            in_flight: Mutex::new(HashMap::new()),
            http: HttpSettings::default(),
            backoff: ErrorBackoff::default(),
            account_rechecks: AccountRechecks::default(),
            secret_watches: Default::default(),
            full_observations: Mutex::new(HashMap::new()),
            queued: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
            members: Default::default(),
            peer_wakeups: Wakeups::default(),
            quota_claims: Default::default(),
            quota_wakeups: Wakeups::default(),
            carrier_urls,
            clock,
            quota_views: Mutex::new(HashMap::new()),
            quota_wakes: Mutex::new(HashMap::new()),
            quota_audit_period: crate::data_quota::view::AUDIT_PERIOD,
            peer_read_wait: crate::controller::PEER_READ_WAIT,
            quota_event_poll: crate::data_quota::event_poll::EVENT_POLL,
            quota_requests: Mutex::new(HashMap::new()),
            group_stores: std::sync::OnceLock::new(),
            quota_store: std::sync::OnceLock::new(),
        })
    }
}
