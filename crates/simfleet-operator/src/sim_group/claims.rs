//! Which other SimGroups claim a SIM: the index the planner consults for conflicts (and a
//! restore, so that it never undoes another group's claim). Built from the groups' specs and
//! their CarrierAccounts: only groups on the same carrier organisation claim the same SIMs.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

use kube::ResourceExt;

use crate::sim_group::plan::Claims;
use simfleet_api::model::SimObservation;
use simfleet_api::{CarrierAccount, SimGroup, SimState};

/// Other groups' claims (ICCIDs, device ids and tags) in the same namespace.
pub(crate) struct ClaimIndex {
    by_iccid: HashMap<String, (String, SimState)>,
    by_device: HashMap<u64, (String, SimState)>,
    by_tag: HashMap<String, (String, SimState)>,
}

impl ClaimIndex {
    /// The claims that conflict with `this` group: other groups on the same carrier wanting
    /// the opposite state.
    pub fn build(
        groups: &[impl Borrow<SimGroup>],
        accounts: &[impl Borrow<CarrierAccount>],
        this: &SimGroup,
    ) -> Self {
        let opposite = match this.spec.state {
            SimState::Active => SimState::Paused,
            SimState::Paused => SimState::Active,
        };
        Self::wanting(groups, accounts, this, opposite)
    }

    /// The claims of the other groups (same namespace, same carrier, not being deleted)
    /// wanting `state`.
    pub(crate) fn wanting(
        groups: &[impl Borrow<SimGroup>],
        accounts: &[impl Borrow<CarrierAccount>],
        this: &SimGroup,
        state: SimState,
    ) -> Self {
        let mut index = Self {
            by_iccid: HashMap::new(),
            by_device: HashMap::new(),
            by_tag: HashMap::new(),
        };
        let same_carrier = accounts_on_the_carrier_of(accounts, this);
        for other in groups.iter().map(Borrow::borrow) {
            // Only claims for one state are indexed, so another never hides them.
            if other.namespace() != this.namespace()
                || other.name_any() == this.name_any()
                || other.metadata.deletion_timestamp.is_some()
                || other.spec.state != state
                || !same_carrier.contains(other.spec.carrier_ref.name.as_str())
            {
                continue;
            }
            let claim = (other.name_any(), other.spec.state);
            for iccid in other.spec.selector.iccids.iter().flatten() {
                index.by_iccid.insert(iccid.clone(), claim.clone());
            }
            for id in other.spec.selector.device_ids.iter().flatten() {
                index.by_device.insert(*id, claim.clone());
            }
            for tag in other.spec.selector.tags.iter().flatten() {
                index.by_tag.insert(tag.clone(), claim.clone());
            }
        }
        index
    }
}

impl ClaimIndex {
    /// A fingerprint of the claims: it changes when another group's claim on these SIMs does
    /// (its selector, its state, its account), so a group at rest re-plans then, and only then.
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let sorted = |map: &HashMap<_, (String, SimState)>| {
            let mut entries: Vec<String> = map
                .values()
                .map(|(name, state)| format!("{name}:{state:?}"))
                .collect();
            entries.sort();
            entries
        };
        let mut keys: Vec<String> = self.by_iccid.keys().cloned().collect();
        keys.extend(self.by_device.keys().map(u64::to_string));
        keys.extend(self.by_tag.keys().map(|t| format!("tag:{t}")));
        keys.sort();
        keys.hash(&mut hasher);
        sorted(&self.by_iccid).hash(&mut hasher);
        let mut devices: Vec<String> = self
            .by_device
            .iter()
            .map(|(d, (n, s))| format!("{d}:{n}:{s:?}"))
            .collect();
        devices.sort();
        devices.hash(&mut hasher);
        sorted(&self.by_tag).hash(&mut hasher);
        hasher.finish()
    }
}

/// The names of the accounts (in `this` group's namespace) on the same carrier organisation as
/// its own account. An account that is not known is only the same as itself.
fn accounts_on_the_carrier_of<'a>(
    accounts: &'a [impl Borrow<CarrierAccount>],
    this: &'a SimGroup,
) -> HashSet<&'a str> {
    let accounts = || accounts.iter().map(Borrow::borrow);
    let in_namespace = |a: &&CarrierAccount| a.namespace() == this.namespace();
    let own = this.spec.carrier_ref.name.as_str();
    let mut names: HashSet<&str> = HashSet::from([own]);
    if let Some(carrier) = accounts()
        .filter(in_namespace)
        .find(|a| a.metadata.name.as_deref() == Some(own))
        .map(|a| a.spec.carrier())
    {
        names.extend(
            accounts()
                .filter(in_namespace)
                .filter(|a| a.spec.carrier().same_carrier(&carrier))
                .filter_map(|a| a.metadata.name.as_deref()),
        );
    }
    names
}

impl Claims for ClaimIndex {
    fn claimed_by(&self, sim: &SimObservation) -> Option<(String, SimState)> {
        sim.device_id
            .and_then(|d| self.by_device.get(&d))
            .or_else(|| self.by_iccid.get(&sim.iccid))
            .or_else(|| sim.tags.iter().find_map(|t| self.by_tag.get(t)))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn account(name: &str, provider: &str, base_url: &str, org: Option<u64>) -> CarrierAccount {
        let mut spec =
            json!({"provider": provider, "baseUrl": base_url, "secretRef": {"name": "s"}});
        if let Some(org) = org {
            spec["orgId"] = json!(org);
        }
        serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": name, "namespace": "ns"}, "spec": spec})).unwrap()
    }

    fn group(name: &str, account: &str, state: &str) -> SimGroup {
        serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "metadata": {"name": name, "namespace": "ns"}, "spec": {"carrierRef": {"name": account}, "state": state, "selector": {"deviceIds": [1010]}}})).unwrap()
    }

    fn device(id: u64) -> SimObservation {
        SimObservation {
            iccid: String::new(),
            device_id: Some(id),
            sim_id: None,
            state: simfleet_api::model::ObservedState::Active,
            tags: Vec::new(),
        }
    }

    #[test]
    fn the_fingerprint_changes_with_a_peers_claim_and_only_then() {
        let accounts = [account("sim", "simulator", "http://127.0.0.1:1", None)];
        let this = group("this", "sim", "Active");
        let paused = group("other", "sim", "Paused");
        let active = group("other", "sim", "Active");
        let none = ClaimIndex::build(&[this.clone(), active], &accounts, &this).fingerprint();
        let one = ClaimIndex::build(&[this.clone(), paused.clone()], &accounts, &this);
        assert_ne!(
            none,
            one.fingerprint(),
            "a peer now wants the opposite state"
        );
        assert_eq!(
            one.fingerprint(),
            ClaimIndex::build(&[paused, this.clone()], &accounts, &this).fingerprint(),
            "the same claims in another order"
        );
    }

    #[test]
    fn groups_claim_the_same_device_only_on_the_same_carrier_organisation() {
        let accounts = [
            account(
                "holo-a",
                "hologram",
                "https://dashboard.hologram.io/api/1",
                Some(7),
            ),
            // Another account for the same organisation (another team's Secret, a trailing slash).
            account(
                "holo-b",
                "hologram",
                "https://Dashboard.hologram.io/api/1/",
                Some(7),
            ),
            account(
                "holo-other-org",
                "hologram",
                "https://dashboard.hologram.io/api/1",
                Some(8),
            ),
            account(
                "holo-any-org",
                "hologram",
                "https://dashboard.hologram.io/api/1",
                None,
            ),
            account("emnify", "emnify", "https://cdn.emnify.net/api", None),
        ];
        let this = group("pause", "holo-a", "Paused");
        let claimed = |other_account: &str| {
            let groups = [this.clone(), group("resume", other_account, "Active")];
            ClaimIndex::build(&groups, &accounts, &this).claimed_by(&device(1010))
        };
        assert_eq!(claimed("holo-a"), Some(("resume".into(), SimState::Active)));
        assert_eq!(
            claimed("holo-b"),
            Some(("resume".into(), SimState::Active)),
            "one organisation, two accounts"
        );
        assert_eq!(
            claimed("holo-any-org"),
            Some(("resume".into(), SimState::Active)),
            "an unscoped key reaches every organisation"
        );
        assert_eq!(claimed("holo-other-org"), None, "another organisation");
        assert_eq!(
            claimed("emnify"),
            None,
            "device 1010 at emnify is another SIM"
        );
        assert_eq!(
            claimed("not-there"),
            None,
            "an unknown account is only itself"
        );
    }
}
