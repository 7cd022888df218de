//! `simfleet run`: the controllers for CarrierAccounts, SimGroups and DataQuotas, their shared context,
//! errors and the one status writer.

pub mod carrier_account;
pub mod carrier_metrics;
pub mod data_quota;
pub mod health;
pub mod metrics;
mod pause;
mod quota_events;
mod quota_targets;
pub mod resource_metrics;
mod restore;
mod run;
pub mod sim_group;

pub use run::{RunArgs, USER_AGENT, run, run_with_client};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::CarrierAccount;
use crate::carrier::budget::RequestLedger;
use crate::carrier::{Carrier, CarrierError, HttpSettings};

/// Finalizer of SimGroups (onDelete runs before it is removed).
pub const SIM_GROUP_FINALIZER: &str = "simfleet.io/sim-group";
/// Name under which the operator writes status and events.
pub const MANAGER: &str = "simfleet";

/// Why a reconcile failed (variant names become metric labels).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The carrier failed.
    #[error("carrier: {0}")]
    Carrier(#[from] CarrierError),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A status could not be encoded (a bug).
    #[error("encoding status: {0}")]
    Encode(#[from] serde_json::Error),
    /// A deleted group's SIMs are being restored (not a failure: the finalizer waits).
    #[error("restoring the SIMs' earlier states: {0} SIMs awaiting the carrier")]
    Restoring(u64),
    /// A stored restore record could not be read.
    #[error("{0}")]
    RestoreRecord(String),
}

/// A finalizer helper's error as ours: our own errors keep their kind (error_policy tells a
/// restore in progress apart).
fn from_finalizer(error: kube::runtime::finalizer::Error<Error>) -> Error {
    match error {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    }
}

impl Error {
    /// The `result` label of the reconcile metric.
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_error",
            Error::Carrier(_) => "carrier_error",
            Error::Finalizer(_) => "finalizer_error",
            Error::Encode(_) => "encode_error",
            Error::Restoring(_) => "restoring",
            Error::RestoreRecord(_) => "restore_record_error",
        }
    }
}

/// An object's name for the error backoff and logs: `Kind/namespace/name`.
fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// Runs one reconcile of `object`: counts it and its duration in the metrics, and forgets the
/// object's earlier failures when it succeeds.
async fn reconciled<K, F>(context: &Context, object: &K, work: F) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let started = std::time::Instant::now();
    let result = work.await;
    let label = result
        .as_ref()
        .map_or_else(Error::metric_label, |_| "success");
    context
        .metrics
        .reconciled(&K::kind(&()), label, started.elapsed());
    if result.is_ok() {
        context.backoff.succeeded(&object_key(object));
    }
    result
}

/// The `error_policy` of every controller: retry after the object's backoff (5 s, doubling to
/// 5 minutes). A restore waiting for the carrier is not a failure: it is looked at again soon.
fn retry_policy<K: Resource<DynamicType = ()>>(
    object: &K,
    error: &Error,
    context: &Context,
) -> Action {
    let key = object_key(object);
    if let Error::Restoring(waiting) = error {
        tracing::debug!(object = %key, waiting, "restore in progress");
        return Action::requeue(std::time::Duration::from_secs(5));
    }
    let wait = context.backoff.failed(&key);
    tracing::warn!(object = %key, %error, retry_in = ?wait, "reconcile error");
    Action::requeue(wait)
}

/// Runs a controller until `stop`, marking readiness when its watch cache syncs; in-flight
/// reconciles finish first. kube-runtime holds its runner until the watch cache is ready, and
/// a stop that comes first (a pod deleted while starting) would leave it waiting for a cache
/// that never fills; no reconcile can be in flight then, so the controller is dropped at once.
async fn drive<K, F>(
    controller: kube::runtime::Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Context>) -> F,
    error_policy: impl Fn(Arc<K>, &Error, Arc<Context>) -> Action,
    context: Arc<Context>,
    stop: crate::shutdown::Stop,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let store = controller.store();
    report_synced(store.clone(), context.health.clone());
    let run = controller
        .graceful_shutdown_on(stop.clone())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::warn!(kind = %K::kind(&()), %err, "reconcile failed");
            }
        });
    let before_sync = async {
        stop.await;
        // Polled once (it would displace the runner's waker, which no longer matters here).
        if matches!(
            futures::FutureExt::now_or_never(store.wait_until_ready()),
            Some(Ok(()))
        ) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = run => {},
        () = before_sync => tracing::debug!("stopped before the watch cache synced"),
    }
}

/// Marks readiness once a controller's watch cache has its first full list.
fn report_synced<K>(store: kube::runtime::reflector::Store<K>, health: Arc<health::Health>)
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default + Send + Sync,
{
    tokio::spawn(async move {
        // The readiness signal wakes only its last waiter (the controller waits on it too), so
        // it is polled again each second rather than awaited once.
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(1), store.wait_until_ready())
                .await
            {
                Ok(Ok(())) => {
                    tracing::debug!(kind = %K::kind(&Default::default()), "watch cache synced");
                    health.synced();
                    return;
                }
                Ok(Err(err)) => {
                    tracing::warn!(%err, "watch cache never synced");
                    return;
                }
                Err(_) => continue,
            }
        }
    });
}

/// A client and the fingerprint (account generation, Secret version) it was built for.
struct CachedCarrier {
    fingerprint: String,
    provider: String,
    client: Arc<dyn Carrier>,
    /// When this client's credentials were last accepted by the carrier.
    verified_at: Option<jiff::Timestamp>,
}

/// Carrier clients built from CarrierAccounts, rebuilt when the account or its Secret changes,
/// and each account's request ledger, which outlives its clients.
#[derive(Default)]
pub struct CarrierCache {
    clients: Mutex<HashMap<String, CachedCarrier>>,
    ledgers: Mutex<HashMap<String, Arc<RequestLedger>>>,
}

impl std::fmt::Debug for CarrierCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierCache").finish_non_exhaustive()
    }
}

impl CarrierCache {
    /// The client of an account, built (or rebuilt) for this fingerprint.
    fn get_or_build(
        &self,
        account: &CarrierAccount,
        fingerprint: String,
        credential: SecretString,
        settings: &HttpSettings,
        clock: &crate::clock::Clock,
    ) -> Result<Arc<dyn Carrier>, CarrierError> {
        let key = format!(
            "{}/{}",
            account.namespace().unwrap_or_default(),
            account.name_any()
        );
        let limit = account.spec.effective_requests_per_month();
        let ledger = self
            .ledgers
            .lock()
            .expect("cache lock")
            .entry(key.clone())
            .or_insert_with(|| Arc::new(RequestLedger::new(clock.clone(), limit)))
            .clone();
        ledger.set_limit(limit);
        let mut clients = self.clients.lock().expect("cache lock");
        if let Some(cached) = clients.get(&key)
            && cached.fingerprint == fingerprint
        {
            return Ok(cached.client.clone());
        }
        let client = crate::carrier::connect(&account.spec, credential, settings.clone(), ledger)?;
        clients.insert(
            key,
            CachedCarrier {
                fingerprint,
                provider: format!("{:?}", account.spec.provider).to_lowercase(),
                client: client.clone(),
                verified_at: None,
            },
        );
        Ok(client)
    }

    /// When the client built for `fingerprint` last had its credentials accepted.
    fn verified_at(&self, key: &str, fingerprint: &str) -> Option<jiff::Timestamp> {
        let clients = self.clients.lock().expect("cache lock");
        let cached = clients.get(key)?;
        (cached.fingerprint == fingerprint)
            .then_some(cached.verified_at)
            .flatten()
    }

    /// Notes that the carrier accepted the account's current credentials (`None`: it did not).
    fn set_verified(&self, key: &str, at: Option<jiff::Timestamp>) {
        if let Some(cached) = self.clients.lock().expect("cache lock").get_mut(key) {
            cached.verified_at = at;
        }
    }

    /// The request ledger of an account (`namespace/name`), once a client was built for it.
    pub fn ledger(&self, key: &str) -> Option<Arc<RequestLedger>> {
        self.ledgers.lock().expect("cache lock").get(key).cloned()
    }

    /// Each cached client's account (`namespace/name`), provider and month's figures.
    pub fn budgets(&self) -> Vec<(String, String, crate::carrier::budget::BudgetReading)> {
        let providers: Vec<(String, String)> = {
            let clients = self.clients.lock().expect("cache lock");
            clients
                .iter()
                .map(|(key, cached)| (key.clone(), cached.provider.clone()))
                .collect()
        };
        let mut rows: Vec<_> = providers
            .into_iter()
            .filter_map(|(key, provider)| {
                let reading = self.ledger(&key)?.reading();
                Some((key, provider, reading))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// Each cached client's account (`namespace/name`), provider and call counters.
    pub fn snapshot(&self) -> Vec<(String, String, Arc<crate::carrier::CallCounters>)> {
        let clients = self.clients.lock().expect("cache lock");
        let mut rows: Vec<_> = clients
            .iter()
            .map(|(key, cached)| {
                (
                    key.clone(),
                    cached.provider.clone(),
                    cached.client.counters(),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The client of an account verified by the CarrierAccount controller, if any.
    fn verified(&self, namespace: &str, name: &str) -> Option<Arc<dyn Carrier>> {
        self.clients
            .lock()
            .expect("cache lock")
            .get(&format!("{namespace}/{name}"))
            .map(|cached| cached.client.clone())
    }
}

/// Which CarrierAccount changes concern the resources that use it: its spec, annotations
/// (pause) and verdict, not the month's figures it refreshes every few minutes, which would
/// otherwise make every group re-read the carrier each time.
#[derive(Default)]
pub(crate) struct AccountChanges {
    seen: Mutex<HashMap<String, u64>>,
}

impl AccountChanges {
    /// True when `account` differs from how this watch last saw it, the budget aside.
    pub(crate) fn changed(&self, account: &CarrierAccount) -> bool {
        use std::hash::{Hash, Hasher};
        let mut status = account.status.clone();
        if let Some(status) = status.as_mut() {
            status.budget = None;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        account.metadata.generation.hash(&mut hasher);
        account.metadata.uid.hash(&mut hasher);
        account.metadata.annotations.hash(&mut hasher);
        serde_json::to_string(&status)
            .unwrap_or_default()
            .hash(&mut hasher);
        let fingerprint = hasher.finish();
        let key = format!(
            "{}/{}",
            account.namespace().unwrap_or_default(),
            account.name_any()
        );
        self.seen
            .lock()
            .expect("changes lock")
            .insert(key, fingerprint)
            != Some(fingerprint)
    }
}

/// When a group was last observed in full, and what that cost in carrier requests.
#[derive(Clone, Copy, Debug)]
struct FullObservation {
    at: jiff::Timestamp,
    requests: u64,
}

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Carrier clients by account.
    pub carriers: Arc<CarrierCache>,
    /// Kubernetes Events.
    pub events: EventPublisher,
    /// Device ids in actions this process submitted and has not seen confirmed, by group and
    /// action id (carriers that do not show pending states are covered by this).
    pub in_flight: Mutex<HashMap<String, HashMap<String, HashSet<u64>>>>,
    /// HTTP settings of carrier clients.
    pub http: HttpSettings,
    /// Retry delays after failed reconciles.
    pub backoff: ErrorBackoff,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Readiness.
    pub health: Arc<health::Health>,
    /// Accounts for the CarrierAccount controller to look at again.
    pub account_rechecks: AccountRechecks,
    /// When each group (`namespace/name`) was last observed in full, in this process.
    full_observations: Mutex<HashMap<String, FullObservation>>,
    /// The carrier base URLs credentials may be sent to.
    pub carrier_urls: crate::api::CarrierUrlPolicy,
    /// The one clock every reconcile reads.
    pub clock: crate::clock::Clock,
    /// What each DataQuota (`namespace/name`) last saw of its devices, in this process.
    pub quota_views: Mutex<HashMap<String, crate::plan::quota_watch::QuotaView>>,
    /// How long the audit of a DataQuota's devices takes to read each once.
    pub quota_audit_period: jiff::SignedDuration,
    /// What each DataQuota's last reconcile that reached the carrier cost in requests.
    quota_requests: Mutex<HashMap<String, u64>>,
}

/// Asks the CarrierAccount controller to look at its accounts again, e.g. when a client's
/// capabilities changed during a submit (emnify's bulk route answered 403), so that status
/// shows it at once instead of at the next resync. Accounts are few and such changes rare, so
/// all are looked at (kube-runtime's per-object trigger is unstable).
pub struct AccountRechecks {
    sender: futures::channel::mpsc::UnboundedSender<()>,
    receiver: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<()>>>,
}

impl Default for AccountRechecks {
    fn default() -> Self {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl AccountRechecks {
    /// Asks for the accounts to be reconciled again.
    pub fn request(&self) {
        // The controller may have stopped; nothing is lost then.
        let _ = self.sender.unbounded_send(());
    }

    /// The requests, for the one CarrierAccount controller (empty for a second taker).
    fn take(&self) -> futures::channel::mpsc::UnboundedReceiver<()> {
        self.receiver
            .lock()
            .expect("rechecks lock")
            .take()
            .unwrap_or_else(|| futures::channel::mpsc::unbounded().1)
    }
}

/// Publishes Kubernetes Events through kube's recorder. The recorder folds every event of one
/// reason on one object into a series that keeps the first note, so one recorder per (reason,
/// note) is used: true repeats become a series, different events stay apart.
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    recorders: Mutex<HashMap<(String, String), Recorder>>,
}

/// Distinct (reason, note) pairs remembered before the memory is cleared.
const EVENT_RECORDERS: usize = 1000;

impl EventPublisher {
    fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recorders: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an event about `object` (a failure to publish is only logged: events are
    /// best effort).
    pub async fn publish(
        &self,
        object: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let recorder = {
            let mut recorders = self.recorders.lock().expect("recorders lock");
            if recorders.len() >= EVENT_RECORDERS {
                recorders.clear();
            }
            recorders
                .entry((reason.to_owned(), note.clone()))
                .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
                .clone()
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, object).await {
            tracing::debug!(%err, "publishing an event failed");
        }
    }
}

/// Consecutive failed reconciles by object: the wait starts at 5 s and doubles, up to 5 minutes.
#[derive(Default)]
pub struct ErrorBackoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl ErrorBackoff {
    /// Counts a failure and returns how long to wait before retrying.
    pub fn failed(&self, key: &str) -> std::time::Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        std::time::Duration::from_secs((5u64 << (*count - 1).min(6)).min(300))
    }

    /// Forgets an object's failures after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }
}

impl Context {
    /// Remembers the SIMs of a submitted action (those the carrier did not refuse) as in flight
    /// for a group, until status no longer lists the action.
    fn remember_in_flight(
        &self,
        group: &str,
        action_id: &str,
        sims: &[crate::model::SimTarget],
        refused: &[crate::model::Refusal],
    ) {
        let refused: HashSet<u64> = refused.iter().map(|r| r.device_id).collect();
        self.in_flight
            .lock()
            .expect("in-flight lock")
            .entry(group.to_owned())
            .or_default()
            .insert(
                action_id.to_owned(),
                sims.iter()
                    .map(|s| s.device_id)
                    .filter(|d| !refused.contains(d))
                    .collect(),
            );
    }

    /// A group's last full observation by this process (none after a restart).
    fn last_full_observation(&self, group: &str) -> Option<FullObservation> {
        self.full_observations
            .lock()
            .expect("observations lock")
            .get(group)
            .copied()
    }

    /// Records a group's full observation.
    fn observed_in_full(&self, group: &str, observation: FullObservation) {
        self.full_observations
            .lock()
            .expect("observations lock")
            .insert(group.to_owned(), observation);
    }

    /// What a DataQuota's last reconcile that reached the carrier cost, in this process.
    fn quota_requests(&self, quota: &str) -> Option<u64> {
        self.quota_requests
            .lock()
            .expect("costs lock")
            .get(quota)
            .copied()
    }

    /// Records what a DataQuota's reconcile cost.
    fn quota_requests_were(&self, quota: &str, requests: u64) {
        self.quota_requests
            .lock()
            .expect("costs lock")
            .insert(quota.to_owned(), requests);
    }

    /// A context for a client, with the default carrier URL policy.
    pub fn new(client: Client) -> Arc<Self> {
        Self::with_url_policy(client, crate::api::CarrierUrlPolicy::default())
    }

    /// A context for a client that sends credentials only to the URLs `carrier_urls` allows.
    pub fn with_url_policy(
        client: Client,
        carrier_urls: crate::api::CarrierUrlPolicy,
    ) -> Arc<Self> {
        Self::with_clock(client, carrier_urls, crate::clock::Clock::default())
    }

    /// A context whose reconciles read the time from `clock`.
    pub fn with_clock(
        client: Client,
        carrier_urls: crate::api::CarrierUrlPolicy,
        clock: crate::clock::Clock,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let carriers = Arc::new(CarrierCache::default());
        let health = Arc::new(health::Health::default());
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
            full_observations: Mutex::new(HashMap::new()),
            carrier_urls,
            clock,
            quota_views: Mutex::new(HashMap::new()),
            quota_audit_period: crate::plan::quota_watch::AUDIT_PERIOD,
            quota_requests: Mutex::new(HashMap::new()),
        })
    }
}

/// Writes a status, unless it is unchanged: the one place status is written.
pub async fn write_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    next: &S,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(next) {
        return Ok(());
    }
    // A merge patch removes a field only when it says null: fields the new status leaves out
    // (an emptied list is not serialised), at any depth, are nulled explicitly.
    let mut status = serde_json::to_value(next)?;
    if let Some(old) = current.and_then(|c| serde_json::to_value(c).ok()) {
        null_removed(&old, &mut status);
    }
    let patch = serde_json::json!({"status": status});
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Sets to null, in `new`, every object member `old` has and `new` lacks (recursively), so that
/// `new` as a merge patch over `old` yields exactly `new`.
fn null_removed(old: &serde_json::Value, new: &mut serde_json::Value) {
    if let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (old, new) {
        for (key, old_value) in old {
            match new.get_mut(key) {
                Some(new_value) => null_removed(old_value, new_value),
                None => {
                    new.insert(key.clone(), serde_json::Value::Null);
                }
            }
        }
    }
}

/// Why a resource cannot use its CarrierAccount: condition reason and message.
pub struct AccountProblem {
    /// Condition reason.
    pub reason: &'static str,
    /// Message naming the account and what is wrong.
    pub message: String,
}

/// The verified carrier client of a CarrierAccount, or why there is none usable.
async fn ready_carrier(
    context: &Context,
    namespace: &str,
    account_name: &str,
) -> Result<Result<Arc<dyn Carrier>, AccountProblem>, Error> {
    let accounts: Api<CarrierAccount> = Api::namespaced(context.client.clone(), namespace);
    let Some(account) = accounts.get_opt(account_name).await? else {
        return Ok(Err(AccountProblem {
            reason: "CarrierAccountNotFound",
            message: format!("CarrierAccount {account_name} not found in namespace {namespace}"),
        }));
    };
    let ready = account.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == crate::api::conditions::READY)
    });
    match context.carriers.verified(namespace, account_name) {
        Some(carrier) if ready.is_some_and(|c| c.status == "True") => Ok(Ok(carrier)),
        _ => Ok(Err(AccountProblem {
            reason: "CarrierAccountNotReady",
            message: format!(
                "CarrierAccount {account_name} is not ready: {}",
                ready.map_or("not verified yet", |c| c.message.as_str())
            ),
        })),
    }
}

/// The API of a kind, in one namespace or all.
fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ErrorBackoff;

    #[test]
    fn a_status_patch_nulls_fields_removed_at_any_depth() {
        let old = serde_json::json!({"a": 1, "progress": {"done": 5, "journal": [1, 2]}, "list": [{"x": 1}]});
        let mut new = serde_json::json!({"progress": {"done": 6}, "list": [{"y": 2}]});
        super::null_removed(&old, &mut new);
        assert_eq!(
            new,
            serde_json::json!({"a": null, "progress": {"done": 6, "journal": null}, "list": [{"y": 2}]})
        );
        let mut merged = old.clone();
        json_patch::merge(&mut merged, &new);
        assert_eq!(
            merged,
            serde_json::json!({"progress": {"done": 6}, "list": [{"y": 2}]})
        );
    }

    #[test]
    fn the_error_backoff_doubles_up_to_five_minutes_and_resets_on_success() {
        let backoff = ErrorBackoff::default();
        let waits: Vec<Duration> = (0..9).map(|_| backoff.failed("SimGroup/ns/g")).collect();
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(
            backoff.failed("SimGroup/ns/other").as_secs(),
            5,
            "per object"
        );
        backoff.succeeded("SimGroup/ns/g");
        assert_eq!(backoff.failed("SimGroup/ns/g").as_secs(), 5);
    }
}
