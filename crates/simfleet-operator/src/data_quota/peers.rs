//! How a DataQuota meets the others on its carrier organisation in this process: it claims its
//! devices in the shared registry (`claims`), wakes the DataQuotas it meets so that both sides
//! report a conflict, and, after a start, waits for their claims before it sets anything.

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::controller::Context;
use simfleet_api::DataQuota;

/// Records what a DataQuota targets and returns its devices that another DataQuota on the same
/// carrier organisation declares another quota for; the DataQuotas it meets (now or before)
/// look again, so that both sides say it. `None` within the peer wait (`--peer-read-wait`, [`PEER_READ_WAIT`] by default) of the start while
/// another DataQuota on the organisation has not claimed its devices in this process yet.
///
/// [`PEER_READ_WAIT`]: crate::controller::PEER_READ_WAIT
pub(super) fn claim_devices(
    context: &Context,
    quota: &DataQuota,
    devices: &[u64],
) -> Option<std::collections::BTreeMap<u64, String>> {
    let accounts = context
        .group_stores
        .get()
        .map(|stores| stores.accounts.state())
        .unwrap_or_default();
    let carrier_of = |q: &DataQuota| {
        accounts
            .iter()
            .find(|a| a.namespace() == q.namespace() && a.name_any() == q.spec.carrier_ref.name)
            .map(|a| a.spec.carrier())
    };
    let carrier = carrier_of(quota);
    let key = crate::controller::memory_key(quota);
    // The peers to wait for: only after a start (the store is set when the controller runs).
    let peers: Vec<String> = match context.quota_store.get() {
        Some(quotas) if context.started.elapsed() < context.peer_read_wait => quotas
            .state()
            .iter()
            .filter(|other| {
                let same_carrier = match (&carrier, carrier_of(other)) {
                    (Some(a), Some(b)) => a.same_carrier(&b),
                    _ => {
                        other.namespace() == quota.namespace()
                            && other.spec.carrier_ref.name == quota.spec.carrier_ref.name
                    }
                };
                other.metadata.deletion_timestamp.is_none() && same_carrier
            })
            .map(|other| crate::controller::memory_key(&**other))
            .filter(|other| *other != key)
            .collect(),
        _ => Vec::new(),
    };
    let claim = super::claims::QuotaClaim::of(quota, carrier, devices.iter().copied());
    let claimed = context.quota_claims.claim(&key, claim, &peers);
    wake(context, claimed.to_wake);
    (!claimed.peers_unclaimed).then_some(claimed.conflicting)
}

/// Has DataQuotas reconciled in full at once (their remembered view would otherwise wait for
/// the resync).
pub(super) fn wake(context: &Context, quotas: Vec<ObjectRef<DataQuota>>) {
    for quota in quotas {
        context.quotas.woken(&quota);
        context.quota_wakeups.wake(quota);
    }
}
