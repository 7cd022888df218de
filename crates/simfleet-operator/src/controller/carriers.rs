//! The carrier clients the controllers use: built from CarrierAccounts and their Secrets,
//! cached until either changes, and each account's request ledger. What a resource gets from
//! its account (a verified client, or why not) is `carrier_account::users`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use secrecy::SecretString;

use simfleet_api::CarrierAccount;
use simfleet_carrier::budget::RequestLedger;
use simfleet_carrier::{Carrier, CarrierError, HttpSettings};

/// The last refusal of an account's credentials.
pub(crate) struct Refusal {
    pub(crate) at: jiff::Timestamp,
    /// Refusals in a row.
    pub(crate) in_a_row: u32,
    /// The carrier's words.
    pub(crate) message: String,
}

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

    /// The last refusal of the credentials built for `fingerprint`: when, how many refusals in
    /// a row, and the carrier's words. `None` when they were not refused (a changed Secret or
    /// account has a new fingerprint, so it is tried at once).
    pub(crate) fn last_refusal(&self, key: &str, fingerprint: &str) -> Option<Refusal> {
        let clients = self.clients.lock().expect("cache lock");
        let cached = clients.get(key).filter(|c| c.fingerprint == fingerprint)?;
        let (at, message) = cached.refused.clone()?;
        Some(Refusal {
            at,
            in_a_row: cached.refusals,
            message,
        })
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
