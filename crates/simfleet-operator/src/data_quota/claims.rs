//! Which other DataQuotas set a device: two DataQuotas on one carrier organisation (in any
//! namespace) that declare different quotas for the same device conflict, as SimGroups do.
//! Both report it (`counts.conflicting`, problem devices with reason `Conflict`, `Stalled`
//! `Conflict`), and neither sets or tops up that device: its quota stays as it is.
//!
//! What each DataQuota targets is known once its targets are resolved in this process; a
//! DataQuota whose targets change wakes those it now meets, or met before, so that both sides
//! say it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use simfleet_api::{CarrierIdentity, DataQuota};

/// One DataQuota's claim: where, what quota, on which devices.
#[derive(Clone, Debug)]
pub(crate) struct QuotaClaim {
    /// The carrier organisation of its account (`None`: not known; only the same account
    /// then meets it).
    pub carrier: Option<CarrierIdentity>,
    /// `namespace/account`, for an account whose organisation is not known.
    pub account: String,
    /// The quota it declares (volume, expiry, refill, threshold, action), as a comparable text.
    pub signature: String,
    /// Its target devices.
    pub devices: BTreeSet<u64>,
    /// How another DataQuota may name it: its name in the same namespace, otherwise nothing
    /// more than that one exists.
    namespace: String,
    name: String,
    object: ObjectRef<DataQuota>,
}

impl QuotaClaim {
    pub(crate) fn of(
        quota: &DataQuota,
        carrier: Option<CarrierIdentity>,
        devices: impl IntoIterator<Item = u64>,
    ) -> Self {
        let namespace = quota.namespace().unwrap_or_default();
        Self {
            carrier,
            account: format!("{namespace}/{}", quota.spec.carrier_ref.name),
            signature: signature(quota),
            devices: devices.into_iter().collect(),
            namespace,
            name: quota.name_any(),
            object: ObjectRef::from_obj(quota),
        }
    }

    fn same_carrier(&self, other: &QuotaClaim) -> bool {
        match (&self.carrier, &other.carrier) {
            (Some(a), Some(b)) => a.same_carrier(b),
            _ => self.account == other.account,
        }
    }

    fn label_for(&self, viewer: &QuotaClaim) -> String {
        if self.namespace == viewer.namespace {
            format!("DataQuota {}", self.name)
        } else {
            "a DataQuota in another namespace on the same carrier organisation".to_owned()
        }
    }
}

/// The quota a DataQuota declares, without what selects the devices or what happens on
/// deletion: two DataQuotas with the same signature agree.
fn signature(quota: &DataQuota) -> String {
    let mut spec = serde_json::to_value(&quota.spec).unwrap_or_default();
    if let Some(fields) = spec.as_object_mut() {
        for key in ["target", "carrierRef", "onDelete", "management"] {
            fields.remove(key);
        }
    }
    spec.to_string()
}

/// Every DataQuota's claim (`namespace/name`), shared by the reconciles of this process.
#[derive(Default)]
pub(crate) struct QuotaClaims {
    by_quota: Mutex<HashMap<String, Arc<QuotaClaim>>>,
}

/// What a DataQuota learns when it claims its devices.
pub(crate) struct Claimed {
    /// Its devices that another DataQuota declares another quota for, with how to name it.
    pub conflicting: BTreeMap<u64, String>,
    /// Other DataQuotas to look again: they meet this one now, or met it before.
    pub to_wake: Vec<ObjectRef<DataQuota>>,
    /// Whether one of the peers named to [`QuotaClaims::claim`] has not claimed yet (seen in
    /// the same moment as `conflicting`, so that a claim in between cannot go unseen).
    pub peers_unclaimed: bool,
}

impl QuotaClaims {
    /// Records `claim` for `key` and says which of its devices conflict, and whether each of
    /// `peers` (keys) has claimed.
    pub(crate) fn claim(&self, key: &str, claim: QuotaClaim, peers: &[String]) -> Claimed {
        let mut all = self.by_quota.lock().expect("quota claims lock");
        let before = all.get(key).cloned();
        let changed = before.as_ref().is_none_or(|b| {
            b.devices != claim.devices
                || b.signature != claim.signature
                || b.carrier != claim.carrier
        });
        let mut conflicting = BTreeMap::new();
        let mut to_wake = Vec::new();
        for (other_key, other) in all.iter() {
            if other_key == key || !other.same_carrier(&claim) {
                continue;
            }
            let meets_now = other.devices.iter().any(|d| claim.devices.contains(d));
            let met_before = before
                .as_ref()
                .is_some_and(|b| other.devices.iter().any(|d| b.devices.contains(d)));
            if changed && (meets_now || met_before) {
                to_wake.push(other.object.clone());
            }
            if other.signature == claim.signature {
                continue;
            }
            for device in other.devices.intersection(&claim.devices) {
                conflicting
                    .entry(*device)
                    .or_insert_with(|| other.label_for(&claim));
            }
        }
        all.insert(key.to_owned(), Arc::new(claim));
        Claimed {
            conflicting,
            to_wake,
            peers_unclaimed: peers.iter().any(|p| !all.contains_key(p)),
        }
    }

    /// The devices a DataQuota (`namespace/name`) claimed last, if it has claimed.
    pub(crate) fn devices_of(&self, key: &str) -> Option<BTreeSet<u64>> {
        let all = self.by_quota.lock().expect("quota claims lock");
        all.get(key).map(|claim| claim.devices.clone())
    }

    /// Forgets a deleted DataQuota; the ones it met look again.
    pub(crate) fn forget(&self, key: &str) -> Vec<ObjectRef<DataQuota>> {
        let mut all = self.by_quota.lock().expect("quota claims lock");
        let Some(gone) = all.remove(key) else {
            return Vec::new();
        };
        all.values()
            .filter(|o| o.same_carrier(&gone) && o.devices.iter().any(|d| gone.devices.contains(d)))
            .map(|o| o.object.clone())
            .collect()
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
