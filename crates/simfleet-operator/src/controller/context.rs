//! What every reconcile shares: the Kubernetes client, the carrier clients, events, metrics,
//! the clock, and what this process remembers between reconciles.

use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::Reporter;

use super::carriers::CarrierCache;
use super::errors::ErrorBackoff;
use super::events::EventPublisher;
use super::{MANAGER, metrics, readiness};
use simfleet_carrier::HttpSettings;

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
    /// What this process remembers of each SimGroup between its reconciles.
    pub(crate) groups: crate::sim_group::memory::GroupMemory,
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
    /// The carrier base URLs credentials may be sent to.
    pub carrier_urls: simfleet_api::CarrierUrlPolicy,
    /// The one clock every reconcile reads.
    pub clock: simfleet_core::clock::Clock,
    /// What this process remembers of each DataQuota between its reconciles.
    pub(crate) quotas: crate::data_quota::memory::QuotaMemory,
    /// How long the audit of a DataQuota's devices takes to read each once.
    pub quota_audit_period: jiff::SignedDuration,
    /// How long after the start a SimGroup or DataQuota waits for its peers' claims.
    pub peer_read_wait: std::time::Duration,
    /// How often each account's quota events are listed for its DataQuotas.
    pub quota_event_poll: std::time::Duration,
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
            groups: Default::default(),
            http: HttpSettings::default(),
            backoff: ErrorBackoff::default(),
            account_rechecks: AccountRechecks::default(),
            secret_watches: Default::default(),
            started: std::time::Instant::now(),
            members: Default::default(),
            peer_wakeups: Wakeups::default(),
            quota_claims: Default::default(),
            quota_wakeups: Wakeups::default(),
            carrier_urls,
            clock,
            quotas: Default::default(),
            quota_audit_period: crate::data_quota::view::AUDIT_PERIOD,
            peer_read_wait: crate::controller::PEER_READ_WAIT,
            quota_event_poll: crate::data_quota::event_poll::EVENT_POLL,
            group_stores: std::sync::OnceLock::new(),
            quota_store: std::sync::OnceLock::new(),
        })
    }
}
