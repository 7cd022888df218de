//! The carrier clients the controllers use: built from CarrierAccounts and their Secrets,
//! cached until either changes, each account's request ledger, and which account changes
//! concern the resources using it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::api::Api;
use secrecy::SecretString;

use super::{Context, Error};
use simfleet_api::CarrierAccount;
use simfleet_carrier::budget::RequestLedger;
use simfleet_carrier::{Carrier, CarrierError, HttpSettings};

/// A client and the fingerprint (account generation, Secret version) it was built for.
struct CachedCarrier {
    fingerprint: String,
    provider: String,
    client: Arc<dyn Carrier>,
    /// When this client's credentials were last accepted by the carrier.
    verified_at: Option<jiff::Timestamp>,
    /// How often the carrier refused these credentials in a row, when last, and its words.
    refusals: u32,
    refused: Option<(jiff::Timestamp, String)>,
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
    pub(crate) fn get_or_build(
        &self,
        account: &CarrierAccount,
        fingerprint: String,
        credential: SecretString,
        settings: &HttpSettings,
        clock: &simfleet_core::clock::Clock,
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
        let client =
            simfleet_carrier::connect(&account.spec, credential, settings.clone(), ledger)?;
        clients.insert(
            key,
            CachedCarrier {
                fingerprint,
                provider: format!("{:?}", account.spec.provider).to_lowercase(),
                client: client.clone(),
                verified_at: None,
                refusals: 0,
                refused: None,
            },
        );
        Ok(client)
    }

    /// When the client built for `fingerprint` last had its credentials accepted.
    pub(crate) fn verified_at(&self, key: &str, fingerprint: &str) -> Option<jiff::Timestamp> {
        let clients = self.clients.lock().expect("cache lock");
        let cached = clients.get(key)?;
        (cached.fingerprint == fingerprint)
            .then_some(cached.verified_at)
            .flatten()
    }

    /// Notes that the carrier accepted the account's current credentials (`None`: it did not).
    pub(crate) fn set_verified(&self, key: &str, at: Option<jiff::Timestamp>) {
        if let Some(cached) = self.clients.lock().expect("cache lock").get_mut(key) {
            cached.verified_at = at;
            if at.is_some() {
                cached.refusals = 0;
                cached.refused = None;
            }
        }
    }

    /// Notes that the carrier refused the account's current credentials at `at`.
    pub(crate) fn set_refused(&self, key: &str, at: jiff::Timestamp, message: String) {
        if let Some(cached) = self.clients.lock().expect("cache lock").get_mut(key) {
            cached.refusals += 1;
            cached.refused = Some((at, message));
        }
    }

    /// When the credentials built for `fingerprint`, refused before, may be tried again, and
    /// the carrier's last words: `None` when they were not refused (a changed Secret or
    /// account has a new fingerprint, so it is tried at once).
    pub(crate) fn refused_until(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Option<(jiff::Timestamp, String)> {
        let clients = self.clients.lock().expect("cache lock");
        let cached = clients.get(key).filter(|c| c.fingerprint == fingerprint)?;
        let (at, message) = cached.refused.clone()?;
        let backoff = crate::carrier_account::verdict::refusal_backoff(cached.refusals);
        Some((at + backoff, message))
    }

    /// Hands `client` out as the verified client of `key` (`namespace/name`), for tests.
    #[cfg(test)]
    pub(crate) fn install(&self, key: &str, client: Arc<dyn Carrier>) {
        self.clients.lock().expect("cache lock").insert(
            key.to_owned(),
            CachedCarrier {
                fingerprint: "installed".into(),
                provider: "fake".into(),
                client,
                verified_at: None,
                refusals: 0,
                refused: None,
            },
        );
    }

    /// The request ledger of an account (`namespace/name`), once a client was built for it.
    pub fn ledger(&self, key: &str) -> Option<Arc<RequestLedger>> {
        self.ledgers.lock().expect("cache lock").get(key).cloned()
    }

    /// Each cached client's account (`namespace/name`), provider and month's figures.
    pub(crate) fn budgets(&self) -> Vec<(String, String, simfleet_api::model::BudgetReading)> {
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
    pub(crate) fn snapshot(&self) -> Vec<(String, String, Arc<simfleet_carrier::CallCounters>)> {
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

    /// Drops a deleted account's client (its ledger stays: the month's count is the account's).
    pub(crate) fn forget(&self, key: &str) {
        self.clients.lock().expect("cache lock").remove(key);
    }

    /// The cached client of an account whose credentials the carrier accepted and has not
    /// refused since (its Secret may be gone by now, as in a teardown).
    pub(crate) fn verified(&self, namespace: &str, name: &str) -> Option<Arc<dyn Carrier>> {
        self.clients
            .lock()
            .expect("cache lock")
            .get(&format!("{namespace}/{name}"))
            .filter(|cached| cached.verified_at.is_some())
            .map(|cached| cached.client.clone())
    }

    /// The cached client of an account, verified or not (whether it is usable is the account's
    /// `Ready` condition: see [`ready_carrier`]).
    pub(crate) fn cached(&self, namespace: &str, name: &str) -> Option<Arc<dyn Carrier>> {
        self.clients
            .lock()
            .expect("cache lock")
            .get(&format!("{namespace}/{name}"))
            .map(|cached| cached.client.clone())
    }
}

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
                && c.reason == "Verifying"
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
