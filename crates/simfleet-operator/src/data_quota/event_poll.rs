//! The carrier's quota events reach the DataQuotas they concern within a poll, not at their
//! resync (20 minutes): one listing of the organisation's quota events per account each
//! `--quota-event-poll` (default a minute), shared by every DataQuota of the account; a DataQuota
//! whose device a new event names is reconciled at once, and reads only the devices the events
//! name (its view is kept). A minute's listing costs about 43,000 requests a month per account,
//! under 0.5% of emnify's 10 million.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::view::listing_window;
use crate::controller::Context;
use simfleet_api::DataQuota;

/// By default, how often each account's quota events are listed.
pub(crate) const EVENT_POLL: Duration = Duration::from_secs(60);

/// Event ids kept per account to tell new events from listed ones.
const REMEMBERED: usize = 10_000;

/// What the poller last saw of one account's events.
#[derive(Default)]
struct Seen {
    /// Where the next listing starts: the newest event time seen, in the carrier's clock (the
    /// operator's may differ); without one, the newest page is listed.
    anchor: Option<Timestamp>,
    ids: BTreeSet<u64>,
}

/// Lists each account's quota events every `context.quota_event_poll` until `stop`.
pub(crate) async fn run(context: Arc<Context>, stop: simfleet_core::shutdown::Stop) {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.clone() => return,
            () = tokio::time::sleep(context.quota_event_poll) => {}
        }
        poll(&context, &mut seen).await;
    }
}

/// One round: each account with DataQuotas whose client is verified.
async fn poll(context: &Context, seen: &mut HashMap<String, Seen>) {
    let Some(quotas) = context.quota_store.get() else {
        return;
    };
    let mut by_account: HashMap<(String, String), Vec<Arc<DataQuota>>> = HashMap::new();
    for quota in quotas.state() {
        let key = (
            quota.namespace().unwrap_or_default(),
            quota.spec.carrier_ref.name.clone(),
        );
        by_account.entry(key).or_default().push(quota);
    }
    seen.retain(|key, _| {
        by_account
            .keys()
            .any(|(ns, name)| *key == format!("{ns}/{name}"))
    });
    for ((namespace, account), quotas) in by_account {
        let Some(carrier) = context.carriers.verified(&namespace, &account) else {
            tracing::debug!(account = %format!("{namespace}/{account}"), "no verified client to list quota events with");
            continue;
        };
        if !carrier.capabilities().data_quota {
            continue;
        }
        let key = format!("{namespace}/{account}");
        let memory = seen.entry(key.clone()).or_default();
        let now = context.clock.now();
        let window = listing_window(memory.anchor, now);
        let listing = match carrier.org_quota_events(window).await {
            Ok(Some(listing)) => listing,
            Ok(None) => continue,
            Err(err) => {
                tracing::debug!(account = %key, %err, "listing the quota events failed");
                continue;
            }
        };
        let fresh: BTreeSet<u64> = listing
            .events
            .iter()
            .filter(|e| !memory.ids.contains(&e.event.id))
            .map(|e| e.device_id)
            .collect();
        tracing::debug!(account = %key, listed = listing.events.len(), new = fresh.len(), "quota events listed");
        memory.ids.extend(listing.events.iter().map(|e| e.event.id));
        while memory.ids.len() > REMEMBERED {
            memory.ids.pop_first();
        }
        memory.anchor = super::view::newest(memory.anchor, &listing.events);
        // Every event not seen before counts, the first listing's too (an event between a
        // DataQuota's last pass and that listing must not wait for the resync): a DataQuota
        // that already read it finds nothing new, at the cost of one listing.
        if fresh.is_empty() {
            continue;
        }
        for quota in quotas.iter().filter(|q| targets_any(context, q, &fresh)) {
            let object = ObjectRef::from_obj(&**quota);
            tracing::debug!(quota = %object, "a quota event names its devices; reconciling now");
            context.quotas.due_now(&object, now);
            context.quota_wakeups.wake(object);
        }
    }
}

/// Whether the DataQuota claimed one of `devices` in its last pass (one it has not claimed yet
/// reads all its devices anyway).
fn targets_any(context: &Context, quota: &DataQuota, devices: &BTreeSet<u64>) -> bool {
    context
        .quota_claims
        .devices_of(&crate::controller::memory_key(quota))
        .is_none_or(|claimed| claimed.iter().any(|d| devices.contains(d)))
}
