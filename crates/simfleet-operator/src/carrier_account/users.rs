//! What the resources using a CarrierAccount get from it: its verified carrier client (or why
//! there is none usable), the client a deleted resource's clean-up uses, and which of the
//! account's changes concern them (the predicates their controllers watch accounts with).

use std::sync::Arc;

use kube::api::Api;
use simfleet_api::CarrierAccount;
use simfleet_carrier::Carrier;

use crate::controller::{Context, Error};

/// The CarrierAccount changes that concern the resources using them, as kube-runtime
/// predicates over a watch of `api` (kept in `writer`'s store): its spec, its annotations
/// (pause) and its verdict (conditions and capabilities), not the month's figures it refreshes
/// every few minutes, which would otherwise make every group read the carrier again each time.
pub(crate) fn account_changes(
    api: Api<CarrierAccount>,
    writer: kube::runtime::reflector::store::Writer<CarrierAccount>,
) -> impl futures::Stream<Item = Result<CarrierAccount, kube::runtime::watcher::Error>> + Send {
    use kube::runtime::utils::{Predicate, PredicateConfig, predicates};
    use kube::runtime::{WatchStreamExt, watcher};
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(account_verdict),
            PredicateConfig::default(),
        )
}

/// A predicate key of an account's verdict: its conditions' types, statuses, reasons and the
/// generation they describe (a changed spec, a budget for one, reaches the groups once the
/// account has applied it), and the capabilities it publishes.
fn account_verdict(account: &CarrierAccount) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let status = account.status.as_ref()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for condition in &status.conditions {
        (
            &condition.type_,
            &condition.status,
            &condition.reason,
            condition.observed_generation,
        )
            .hash(&mut hasher);
    }
    serde_json::to_string(&status.capabilities)
        .unwrap_or_default()
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Why a resource cannot use its CarrierAccount: condition reason and message.
pub(crate) struct AccountProblem {
    /// Condition reason.
    pub reason: &'static str,
    /// Message naming the account and what is wrong.
    pub message: String,
    /// The account has not been judged by this process yet (just created, or the operator just
    /// started and the account's last verdict was good): a wait of seconds, not a problem for a
    /// human, so the resource says nothing new and looks again soon.
    pub verifying: bool,
}

/// The verified carrier client of a CarrierAccount, or why there is none usable.
/// The client a deleted resource's clean-up (restore, quota removal) uses: the Ready account's,
/// or else one whose credentials the carrier accepted and has not refused since. A teardown
/// (`kubectl delete -f dir/`) may delete the Secret first: the account then stops being Ready,
/// but the credentials still work, and the clean-up must still run.
pub(crate) async fn cleanup_carrier(
    context: &Context,
    namespace: &str,
    account_name: &str,
) -> Result<Result<Arc<dyn Carrier>, AccountProblem>, Error> {
    Ok(
        match ready_carrier(context, namespace, account_name).await? {
            Ok(carrier) => Ok(carrier),
            Err(problem) => context
                .carriers
                .verified(namespace, account_name)
                .ok_or(problem),
        },
    )
}

pub(crate) async fn ready_carrier(
    context: &Context,
    namespace: &str,
    account_name: &str,
) -> Result<Result<Arc<dyn Carrier>, AccountProblem>, Error> {
    let accounts: Api<CarrierAccount> = Api::namespaced(context.client.clone(), namespace);
    let Some(account) = accounts.get_opt(account_name).await? else {
        return Ok(Err(AccountProblem {
            reason: "CarrierAccountNotFound",
            message: format!("CarrierAccount {account_name} not found in namespace {namespace}"),
            verifying: false,
        }));
    };
    let ready = account.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == simfleet_api::conditions::READY)
    });
    // The account's first check is under way (`with_first_conditions`): no verdict yet.
    let first_check = account.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == simfleet_api::conditions::RECONCILING
                && c.status == "True"
                && c.reason == super::FIRST_CHECK
        })
    });
    let ready = ready.filter(|_| !first_check);
    let cached = context.carriers.cached(namespace, account_name);
    match (cached, ready) {
        (Some(carrier), Some(c)) if c.status == "True" => Ok(Ok(carrier)),
        (_, None) => Ok(Err(AccountProblem {
            reason: "CarrierAccountNotReady",
            message: format!("CarrierAccount {account_name} is being verified"),
            verifying: true,
        })),
        (None, Some(c)) if c.status == "True" => Ok(Err(AccountProblem {
            reason: "CarrierAccountNotReady",
            message: format!(
                "CarrierAccount {account_name} is being verified by this operator (it was Ready)"
            ),
            verifying: true,
        })),
        (_, ready) => Ok(Err(AccountProblem {
            reason: "CarrierAccountNotReady",
            message: format!(
                "CarrierAccount {account_name} is not ready: {}",
                ready.map_or("not verified yet", |c| c.message.as_str())
            ),
            verifying: false,
        })),
    }
}
