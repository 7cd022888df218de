//! `simfleet run`: the controllers for CarrierAccounts, SimGroups and DataQuotas, and what
//! drives each of them (reconcile with metrics, the error policy, readiness). Their shared
//! context, carrier clients, errors, events and the one status writer have a file each.

pub(crate) mod carrier_metrics;
pub(crate) mod carriers;
mod context;
mod errors;
pub(crate) mod events;
#[cfg(test)]
pub(crate) mod fake_carrier;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod namespaces;
pub(crate) mod pause;
pub(crate) mod readiness;
pub(crate) mod records;
pub(crate) mod resource_metrics;
mod run;
pub(crate) mod status;
#[cfg(test)]
pub(crate) mod test_world;

pub(crate) use carriers::CarrierCache;
pub use context::Context;
pub use errors::Error;
pub use run::{RunArgs, run, run_with_client};
pub(crate) use status::{wait_for_account, with_first_conditions, write_status};

pub(crate) use context::GroupStores;
pub(crate) use errors::from_finalizer;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Finalizer of SimGroups (onDelete runs before it is removed).
pub const SIM_GROUP_FINALIZER: &str = "simfleet.io/sim-group";
/// The finalizer that keeps a CarrierAccount until no SimGroup or DataQuota uses it.
pub const ACCOUNT_FINALIZER: &str = "simfleet.io/carrier-account-in-use";
/// Name under which the operator writes status and events.
pub const MANAGER: &str = "simfleet";

/// An object's key in the operator's memory (in-flight actions, views, request costs):
/// `namespace/name`.
pub(crate) fn memory_key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// An object's name for the error backoff and logs: `Kind/namespace/name`.
fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!("{}/{}", K::kind(&()), memory_key(object))
}

/// Runs a reconcile; a panic in it becomes its error. Unwinding through the controller's stream
/// would stop the controller for every object (and end the process), for one object's bug.
async fn without_panics<F>(work: F) -> Result<Action, Error>
where
    F: std::future::Future<Output = Result<Action, Error>>,
{
    match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work)).await {
        Ok(result) => result,
        Err(panic) => Err(Error::Panicked(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned()),
        )),
    }
}

/// Runs one reconcile of `object`: counts it and its duration in the metrics, and forgets the
/// object's earlier failures when it succeeds.
async fn reconciled<K, F>(context: &Context, object: &K, work: F) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let started = std::time::Instant::now();
    let result = without_panics(work).await;
    if let Err(Error::Panicked(message)) = &result {
        tracing::error!(object = %object_key(object), %message, "reconcile panicked");
    }
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
    if let Error::InUse(users) = error {
        tracing::debug!(object = %key, users, "deletion waits for the resources using it");
        return Action::requeue(std::time::Duration::from_secs(5));
    }
    if let Error::AccountVerifying = error {
        tracing::debug!(object = %key, "clean-up waits for the account's verification");
        return Action::requeue(std::time::Duration::from_secs(2));
    }
    if let Error::StaleRead(message) = error {
        tracing::debug!(object = %key, %message, "stale read; trying again");
        return Action::requeue(std::time::Duration::from_millis(200));
    }
    let wait = context.backoff.failed(&key);
    tracing::warn!(object = %key, %error, retry_in = ?wait, "reconcile error");
    Action::requeue(wait)
}

/// By default (`--peer-read-wait`), how long after a start a SimGroup or a DataQuota waits,
/// before it sends, for its peers on the same carrier organisation to read what they claim
/// (they do at once; a peer whose account is broken must not hold the others for ever).
pub(crate) const PEER_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs a controller until `stop`, marking readiness when its watch cache syncs; in-flight
/// reconciles finish first. Every reconcile is measured ([`reconciled`]) and every error
/// retried after the object's backoff ([`retry_policy`]), whatever the kind. kube-runtime holds
/// its runner until the watch cache is ready, and a stop that comes first (a pod deleted while
/// starting) would leave it waiting for a cache that never fills; no reconcile can be in flight
/// then, so the controller is dropped at once.
pub(crate) async fn drive<K, F>(
    controller: kube::runtime::Controller<K>,
    reconcile: fn(Arc<K>, Arc<Context>) -> F,
    context: Arc<Context>,
    stop: simfleet_core::shutdown::Stop,
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
    let measured = move |object: Arc<K>, context: Arc<Context>| {
        let work = reconcile(object.clone(), context.clone());
        async move { reconciled(&context, &*object, work).await }
    };
    let policy = |object: Arc<K>, error: &Error, context: Arc<Context>| {
        retry_policy(&*object, error, &context)
    };
    let store = controller.store();
    report_synced(store.clone(), context.health.clone());
    let run = controller
        .graceful_shutdown_on(stop.clone())
        .run(measured, policy, context)
        .for_each(|result| async move {
            match result {
                // Said already, once, by `retry_policy` (a wait at debug level).
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                Err(err) => tracing::warn!(kind = %K::kind(&()), %err, "controller failed"),
                Ok(_) => {}
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
fn report_synced<K>(store: kube::runtime::reflector::Store<K>, health: Arc<readiness::Health>)
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

/// The API of a kind, in one namespace or all.
pub(crate) fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
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
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_is_its_objects_error_not_the_controllers_end() {
        let failed = without_panics(async { panic!("index out of bounds") }).await;
        assert!(
            matches!(&failed, Err(Error::Panicked(m)) if m == "index out of bounds"),
            "{failed:?}"
        );
        let owned = without_panics(async { panic!("{} SIMs", 3) }).await;
        assert!(matches!(&owned, Err(Error::Panicked(m)) if m == "3 SIMs"));
        assert!(
            without_panics(async { Ok(Action::await_change()) })
                .await
                .is_ok()
        );
    }
}
