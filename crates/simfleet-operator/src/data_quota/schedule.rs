//! When a DataQuota is reconciled: what wakes it (a change of its own, not its status
//! writes), and how soon it comes back (at once while a generation is being applied, 30 s
//! after failures, else at the next expiry, at most after [`RESYNC`]). Pure.

use std::time::Duration;

use jiff::Timestamp;

use super::plan::QuotaTally;
use simfleet_api::{DataQuota, QuotaProgress};

/// Resync period when nothing expires sooner: each resync lists the carrier's quota events
/// once and reads only the devices they name, and the audit's slice (`watch`).
pub const RESYNC: Duration = Duration::from_secs(1200);

/// What, besides status, makes a DataQuota worth reconciling: kube-runtime's predicate keys
/// of its generation, labels, annotations and finalizers, and its deletion. (The check is made
/// in the reconcile, not on the watch: a reconcile the account's watch or a requeue asked for
/// must still see whether the quota itself changed since its last status write.)
pub(crate) fn trigger_of(quota: &DataQuota) -> u64 {
    use kube::runtime::utils::predicates;
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        predicates::generation(quota),
        predicates::labels(quota),
        predicates::annotations(quota),
        predicates::finalizers(quota),
        quota.metadata.deletion_timestamp.as_ref().map(|t| t.0),
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// How soon to reconcile again: at the next expiry, at most after [`RESYNC`].
pub(crate) fn requeue_after(
    tally: &QuotaTally,
    progress: &QuotaProgress,
    now: Timestamp,
) -> Duration {
    if !progress.complete {
        return Duration::from_secs(1);
    }
    if !progress.retry_device_ids.is_empty() {
        return Duration::from_secs(30);
    }
    until_next_expiry(tally, now)
}

/// How soon to reconcile an observe-only DataQuota again: 30 s after a failed read, else at
/// the next expiry, at most after [`RESYNC`].
pub(crate) fn observed_requeue_after(tally: &QuotaTally, now: Timestamp) -> Duration {
    if tally.counts().failed > 0 {
        return Duration::from_secs(30);
    }
    until_next_expiry(tally, now)
}

fn until_next_expiry(tally: &QuotaTally, now: Timestamp) -> Duration {
    match tally.earliest_expiry() {
        Some(expiry) => {
            let wait = expiry.duration_since(now).as_secs().max(1) as u64 + 1;
            Duration::from_secs(wait).min(RESYNC)
        }
        None => RESYNC,
    }
}
