//! A watch on each Secret a CarrierAccount names, by its name (`metadata.name=` field selector,
//! a get then a watch, never a list): a rotated, fixed or deleted Secret reaches its accounts at
//! once, and the operator never reads a Secret no account names. The watch needs `watch` on
//! Secrets besides `get` (the chart says why).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use simfleet_api::CarrierAccount;

/// What is done when a watched Secret changes: the accounts are looked at again.
pub(crate) type OnChange = Arc<dyn Fn() + Send + Sync>;

/// The Secret watches, one per named Secret, with the accounts that name each.
#[derive(Default)]
pub(crate) struct SecretWatches {
    watched: Mutex<HashMap<SecretKey, Watched>>,
}

/// A Secret: namespace and name.
type SecretKey = (String, String);

struct Watched {
    /// The accounts (names, in the Secret's namespace) that name it.
    accounts: BTreeSet<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SecretWatches {
    /// Follows the Secret `account` names (and no longer one it named before); starts its watch
    /// when no other account's runs.
    pub(crate) fn follow(&self, client: &Client, account: &CarrierAccount, on_change: &OnChange) {
        let namespace = account.namespace().unwrap_or_default();
        let name = account.name_any();
        let key = (namespace.clone(), account.spec.secret_ref.name.clone());
        let mut watched = self.watched.lock().expect("secret watches lock");
        if watched
            .get(&key)
            .is_some_and(|w| w.accounts.contains(&name))
        {
            return;
        }
        Self::unfollow(&mut watched, &namespace, &name);
        let entry = watched.entry(key.clone()).or_insert_with(|| {
            let api: Api<Secret> = Api::namespaced(client.clone(), &key.0);
            Watched {
                accounts: BTreeSet::new(),
                task: tokio::spawn(watch_secret(api, key.1.clone(), on_change.clone())),
            }
        });
        entry.accounts.insert(name);
    }

    /// Stops following for a deleted account; a Secret no account names is no longer watched.
    pub(crate) fn forget(&self, account: &CarrierAccount) {
        let mut watched = self.watched.lock().expect("secret watches lock");
        Self::unfollow(
            &mut watched,
            &account.namespace().unwrap_or_default(),
            &account.name_any(),
        );
    }

    /// The Secrets watched, for tests.
    #[cfg(test)]
    pub(crate) fn watched(&self) -> Vec<SecretKey> {
        let watched = self.watched.lock().expect("secret watches lock");
        let mut keys: Vec<SecretKey> = watched.keys().cloned().collect();
        keys.sort();
        keys
    }

    fn unfollow(watched: &mut HashMap<SecretKey, Watched>, namespace: &str, account: &str) {
        watched.retain(|(ns, _), w| {
            if ns == namespace {
                w.accounts.remove(account);
            }
            !w.accounts.is_empty()
        });
    }
}

/// Watches one Secret by name until aborted: from the version a get returned (from now when it
/// does not exist yet, so that its creation is an event), again from the last version seen
/// when the server ends the watch, and from a new get when that version is gone (410).
async fn watch_secret(api: Api<Secret>, name: String, on_change: OnChange) {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let mut version: Option<String> = None;
    let mut failures = retry_waits();
    loop {
        let from = match &version {
            Some(v) => v.clone(),
            None => match api.get_metadata_opt(&name).await {
                Ok(found) => found.and_then(|s| s.resource_version()).unwrap_or_default(),
                Err(err) => {
                    tracing::debug!(secret = %name, %err, "reading the Secret's version failed");
                    tokio::time::sleep(failures.next().unwrap_or(MAX_WAIT)).await;
                    continue;
                }
            },
        };
        let events = match api.watch(&params, &from).await {
            Ok(events) => events,
            Err(err) => {
                tracing::debug!(secret = %name, %err, "watching the Secret failed");
                tokio::time::sleep(failures.next().unwrap_or(MAX_WAIT)).await;
                continue;
            }
        };
        version = Some(from);
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(WatchEvent::Added(s) | WatchEvent::Modified(s) | WatchEvent::Deleted(s)) => {
                    failures = retry_waits();
                    version = s.resource_version();
                    tracing::debug!(secret = %name, "the Secret changed; its accounts look again");
                    on_change();
                }
                Ok(WatchEvent::Bookmark(mark)) => version = Some(mark.metadata.resource_version),
                Ok(WatchEvent::Error(status)) => {
                    // 410: the version is gone; a change may have been missed meanwhile.
                    tracing::debug!(secret = %name, code = status.code, "the Secret's watch ended");
                    version = None;
                    on_change();
                    break;
                }
                Err(err) => {
                    tracing::debug!(secret = %name, %err, "the Secret's watch broke");
                    tokio::time::sleep(failures.next().unwrap_or(MAX_WAIT)).await;
                    break;
                }
            }
        }
    }
}

/// The longest wait between tries.
const MAX_WAIT: Duration = Duration::from_secs(16);

/// The waits after failures in a row: 1 s, doubling to 16 s.
fn retry_waits() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX_WAIT)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, secret: &str) -> CarrierAccount {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount",
            "metadata": {"name": name, "namespace": "fleet"},
            "spec": {"provider": "simulator", "secretRef": {"name": secret}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn one_watch_per_named_secret_while_an_account_names_it() {
        // Nothing listens there: the watches only retry until dropped.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let on_change: OnChange = Arc::new(|| {});
        let watches = SecretWatches::default();
        let key = |name: &str| ("fleet".to_owned(), name.to_owned());
        watches.follow(&client, &account("a", "shared"), &on_change);
        watches.follow(&client, &account("b", "shared"), &on_change);
        assert_eq!(watches.watched(), [key("shared")]);
        // An account that names another Secret now: the old one is still named by `b`.
        watches.follow(&client, &account("a", "own"), &on_change);
        assert_eq!(watches.watched(), [key("own"), key("shared")]);
        watches.forget(&account("b", "shared"));
        assert_eq!(watches.watched(), [key("own")]);
        watches.forget(&account("a", "own"));
        assert!(watches.watched().is_empty());
    }

    #[test]
    fn a_failing_watch_waits_longer_each_time_up_to_16_seconds() {
        let waits: Vec<u64> = retry_waits().take(7).map(|d| d.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 16, 16]);
    }
}
