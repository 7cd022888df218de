//! Which other SimGroups claim a SIM: the index the planner consults for conflicts (and a
//! restore, so that it never undoes another group's claim). Built from the groups' specs, their
//! CarrierAccounts and what each group last observed as its members: only groups on the same
//! carrier organisation claim the same SIMs, in whatever namespace they are.
//!
//! A claim is found two ways, so that conflicts are symmetric whatever the selector kinds:
//! - by the other group's selector (ICCIDs, device ids, and tags where the observation of the
//!   SIM carries its tags);
//! - by the other group's members, as its last observation found them (`Members`): a group
//!   selecting by tag claims the SIMs it found, even when this group looks them up by ICCID on
//!   a route that does not return tags.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::sim_group::plan::Claims;
use simfleet_api::model::SimObservation;
use simfleet_api::{CarrierAccount, SimGroup, SimState};

/// The SIMs a group found at its last full observation in this process, by device id and
/// ICCID, with a version that changes when the set does, and the selector they were found for
/// (a group edited since, which has not read again, claims by its new selector only).
#[derive(Debug, Default)]
pub(crate) struct Members {
    devices: HashSet<u64>,
    iccids: HashSet<String>,
    selector: u64,
    version: u64,
}

/// A digest of a group's selector, to tell members found for another selector.
fn selector_digest(group: &SimGroup) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&group.spec.selector)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl Members {
    fn contains(&self, sim: &SimObservation) -> bool {
        sim.device_id.is_some_and(|d| self.devices.contains(&d))
            || (!sim.iccid.is_empty() && self.iccids.contains(&sim.iccid))
    }
}

/// Every group's members (`namespace/name`), shared by the reconciles of this process.
#[derive(Default)]
pub(crate) struct MemberRegistry {
    by_group: Mutex<HashMap<String, Arc<Members>>>,
    next_version: std::sync::atomic::AtomicU64,
}

impl MemberRegistry {
    /// Records what a group's full observation found; the version changes only when the set
    /// does (so peers re-plan when, and only when, a claim moved).
    /// Returns whether they changed.
    pub(crate) fn observed(
        &self,
        group: &SimGroup,
        devices: HashSet<u64>,
        iccids: HashSet<String>,
    ) -> bool {
        let key = crate::controller::memory_key(group);
        let selector = selector_digest(group);
        let mut all = self.by_group.lock().expect("members lock");
        if all
            .get(&key)
            .is_some_and(|m| m.devices == devices && m.iccids == iccids && m.selector == selector)
        {
            return false;
        }
        let version = self
            .next_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        all.insert(
            key,
            Arc::new(Members {
                devices,
                iccids,
                selector,
                version,
            }),
        );
        true
    }

    /// Forgets a deleted group.
    pub(crate) fn forget(&self, group: &str) {
        self.by_group.lock().expect("members lock").remove(group);
    }

    fn get(&self, group: &str) -> Option<Arc<Members>> {
        self.by_group
            .lock()
            .expect("members lock")
            .get(group)
            .cloned()
    }
}

/// One other group's claim: how this group may name it, the state it wants, and its members.
struct Claimant {
    /// The other group's name where this group may see it (same namespace); otherwise words
    /// that say no more than that a group elsewhere claims the SIM.
    label: String,
    state: SimState,
    members: Option<Arc<Members>>,
}

/// Other groups' claims (ICCIDs, device ids, tags and observed members) on the same carrier
/// organisation, in any namespace.
pub(crate) struct ClaimIndex {
    by_iccid: HashMap<String, usize>,
    by_device: HashMap<u64, usize>,
    by_tag: HashMap<String, usize>,
    claimants: Vec<Claimant>,
    /// The claiming groups, to wake when this group's own members change.
    refs: Vec<ObjectRef<SimGroup>>,
    /// Claiming groups that select by tag and have read their SIMs before, but not yet in this
    /// process (after a restart): their claim on SIMs looked up without tags is not known yet.
    unread_tag_claimants: usize,
    /// When each claiming group that selects by tag and has never read its SIMs was created: a
    /// new tag group's claim on SIMs looked up without tags is not known until it reads.
    new_tag_claimants: Vec<jiff::Timestamp>,
}

/// How a claim of a group in another namespace is named: tenants see no more of each other
/// than that a claim exists (the namespace and the name stay with their owner).
pub(crate) const ELSEWHERE: &str =
    "a SimGroup in another namespace on the same carrier organisation";

impl ClaimIndex {
    /// The claims that conflict with `this` group: other groups on the same carrier
    /// organisation wanting the opposite state.
    pub fn build(
        groups: &[impl Borrow<SimGroup>],
        accounts: &[impl Borrow<CarrierAccount>],
        members: Option<&MemberRegistry>,
        this: &SimGroup,
    ) -> Self {
        let opposite = match this.spec.state {
            SimState::Active => SimState::Paused,
            SimState::Paused => SimState::Active,
        };
        Self::wanting(groups, accounts, members, this, opposite)
    }

    /// The claims of the other groups (any namespace, same carrier organisation, not being
    /// deleted) wanting `state`.
    pub(crate) fn wanting(
        groups: &[impl Borrow<SimGroup>],
        accounts: &[impl Borrow<CarrierAccount>],
        members: Option<&MemberRegistry>,
        this: &SimGroup,
        state: SimState,
    ) -> Self {
        let mut index = Self {
            by_iccid: HashMap::new(),
            by_device: HashMap::new(),
            by_tag: HashMap::new(),
            claimants: Vec::new(),
            refs: Vec::new(),
            unread_tag_claimants: 0,
            new_tag_claimants: Vec::new(),
        };
        let same_carrier = accounts_on_the_carrier_of(accounts, this);
        let this_key = crate::controller::memory_key(this);
        for other in groups.iter().map(Borrow::borrow) {
            let other_key = crate::controller::memory_key(other);
            // Only claims for one state are indexed, so another never hides them.
            if other_key == this_key
                || other.metadata.deletion_timestamp.is_some()
                || other.spec.state != state
                || !same_carrier.contains(&(
                    other.namespace().unwrap_or_default(),
                    other.spec.carrier_ref.name.clone(),
                ))
            {
                continue;
            }
            let label = if other.namespace() == this.namespace() {
                format!("SimGroup {}", other.name_any())
            } else {
                ELSEWHERE.to_owned()
            };
            let at = index.claimants.len();
            index.refs.push(ObjectRef::from_obj(other));
            // Members found for the selector the group has now: an edited group that has not
            // read again (its account broken, say) claims by its new selector only.
            let known = members
                .and_then(|m| m.get(&other_key))
                .filter(|m| m.selector == selector_digest(other));
            let by_tag = other
                .spec
                .selector
                .tags
                .as_ref()
                .is_some_and(|t| !t.is_empty());
            let read_before = other.status.as_ref().is_some_and(|s| s.counts.is_some());
            if members.is_some() && known.is_none() && by_tag {
                match (read_before, &other.metadata.creation_timestamp) {
                    (true, _) => index.unread_tag_claimants += 1,
                    (false, Some(created)) => index.new_tag_claimants.push(created.0),
                    (false, None) => {}
                }
            }
            index.claimants.push(Claimant {
                label,
                state: other.spec.state,
                members: known,
            });
            for iccid in other.spec.selector.iccids.iter().flatten() {
                index.by_iccid.insert(iccid.clone(), at);
            }
            for id in other.spec.selector.device_ids.iter().flatten() {
                index.by_device.insert(*id, at);
            }
            for tag in other.spec.selector.tags.iter().flatten() {
                index.by_tag.insert(tag.clone(), at);
            }
        }
        index
    }

    /// Whether a claiming group that selects by tag has not read its SIMs in this process yet
    /// (after a restart): until it has, this group sends nothing, so that a SIM it looks up
    /// without tags is never changed against that group's claim.
    pub(crate) fn awaiting_tag_claimants(&self) -> bool {
        self.unread_tag_claimants > 0
    }

    /// Whether a claiming group that selects by tag, created after `since`, has not read its
    /// SIMs yet: until it has (it does at once, unless its account is broken), this group sends
    /// nothing, so that a SIM it looks up without tags is never changed against that new
    /// group's claim. Older ones are not waited for.
    pub(crate) fn awaiting_new_tag_claimants(&self, since: jiff::Timestamp) -> bool {
        self.new_tag_claimants
            .iter()
            .any(|created| *created > since)
    }

    /// The groups whose claims these are: they re-plan when this group's members change, so
    /// that both sides of a conflict report it.
    pub(crate) fn claimants(&self) -> &[ObjectRef<SimGroup>] {
        &self.refs
    }

    /// A fingerprint of the claims: it changes when another group's claim on these SIMs does
    /// (its selector, its state, its account, the members it found), so a group at rest
    /// re-plans then, and only then.
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let sorted = |entries: Vec<String>| {
            let mut entries = entries;
            entries.sort();
            entries
        };
        let describe = |at: &usize| {
            let c = &self.claimants[*at];
            format!("{}:{:?}", c.label, c.state)
        };
        sorted(
            self.by_iccid
                .iter()
                .map(|(k, at)| format!("i:{k}:{}", describe(at)))
                .collect(),
        )
        .hash(&mut hasher);
        sorted(
            self.by_device
                .iter()
                .map(|(k, at)| format!("d:{k}:{}", describe(at)))
                .collect(),
        )
        .hash(&mut hasher);
        sorted(
            self.by_tag
                .iter()
                .map(|(k, at)| format!("t:{k}:{}", describe(at)))
                .collect(),
        )
        .hash(&mut hasher);
        sorted(
            self.claimants
                .iter()
                .map(|c| {
                    format!(
                        "m:{}:{:?}:{}",
                        c.label,
                        c.state,
                        c.members.as_ref().map_or(0, |m| m.version)
                    )
                })
                .collect(),
        )
        .hash(&mut hasher);
        hasher.finish()
    }
}

/// The accounts (`namespace`, `name`) on the same carrier organisation as `this` group's own
/// account, in any namespace: the carrier's identity of an account, not its namespace, says
/// which SIMs it reaches. An account that is not known is only the same as itself.
fn accounts_on_the_carrier_of(
    accounts: &[impl Borrow<CarrierAccount>],
    this: &SimGroup,
) -> HashSet<(String, String)> {
    let accounts = || accounts.iter().map(Borrow::borrow);
    let namespace = this.namespace().unwrap_or_default();
    let own = this.spec.carrier_ref.name.clone();
    let mut names = HashSet::from([(namespace.clone(), own.clone())]);
    if let Some(carrier) = accounts()
        .find(|a| a.namespace().unwrap_or_default() == namespace && a.name_any() == own)
        .map(|a| a.spec.carrier())
    {
        names.extend(
            accounts()
                .filter(|a| a.spec.carrier().same_carrier(&carrier))
                .map(|a| (a.namespace().unwrap_or_default(), a.name_any())),
        );
    }
    names
}

impl Claims for ClaimIndex {
    fn claimed_by(&self, sim: &SimObservation) -> Option<(String, SimState)> {
        let at = sim
            .device_id
            .and_then(|d| self.by_device.get(&d))
            .or_else(|| self.by_iccid.get(&sim.iccid))
            .or_else(|| sim.tags.iter().find_map(|t| self.by_tag.get(t)))
            .copied()
            .or_else(|| {
                self.claimants
                    .iter()
                    .position(|c| c.members.as_ref().is_some_and(|m| m.contains(sim)))
            })?;
        let claimant = &self.claimants[at];
        Some((claimant.label.clone(), claimant.state))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn account_in(
        namespace: &str,
        name: &str,
        provider: &str,
        base_url: &str,
        org: Option<u64>,
    ) -> CarrierAccount {
        let mut spec =
            json!({"provider": provider, "baseUrl": base_url, "secretRef": {"name": "s"}});
        if let Some(org) = org {
            spec["orgId"] = json!(org);
        }
        serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": name, "namespace": namespace}, "spec": spec})).unwrap()
    }

    fn account(name: &str, provider: &str, base_url: &str, org: Option<u64>) -> CarrierAccount {
        account_in("ns", name, provider, base_url, org)
    }

    fn group_in(
        namespace: &str,
        name: &str,
        account: &str,
        state: &str,
        selector: serde_json::Value,
    ) -> SimGroup {
        serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "metadata": {"name": name, "namespace": namespace}, "spec": {"carrierRef": {"name": account}, "state": state, "selector": selector}})).unwrap()
    }

    fn group(name: &str, account: &str, state: &str) -> SimGroup {
        group_in("ns", name, account, state, json!({"deviceIds": [1010]}))
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

    const NONE: Option<&MemberRegistry> = None;

    #[test]
    fn the_fingerprint_changes_with_a_peers_claim_and_only_then() {
        let accounts = [account("sim", "simulator", "http://127.0.0.1:1", None)];
        let this = group("this", "sim", "Active");
        let paused = group("other", "sim", "Paused");
        let active = group("other", "sim", "Active");
        let none = ClaimIndex::build(&[this.clone(), active], &accounts, NONE, &this).fingerprint();
        let one = ClaimIndex::build(&[this.clone(), paused.clone()], &accounts, NONE, &this);
        assert_ne!(
            none,
            one.fingerprint(),
            "a peer now wants the opposite state"
        );
        assert_eq!(
            one.fingerprint(),
            ClaimIndex::build(&[paused, this.clone()], &accounts, NONE, &this).fingerprint(),
            "the same claims in another order"
        );
    }

    #[test]
    fn a_new_tag_group_that_has_not_read_is_waited_for_only_while_it_is_new() {
        // Found by the real-cluster run: an ICCID group created beside a new tag group of
        // another namespace paused a SIM the tag group claims, before the tag group had read.
        let accounts = [account("sim", "simulator", "http://127.0.0.1:1", None)];
        let this = group_in(
            "ns",
            "by-iccid",
            "sim",
            "Paused",
            json!({"iccids": ["8944500000000000001"]}),
        );
        let mut tagged = group_in(
            "ns",
            "by-tag",
            "sim",
            "Active",
            json!({"tags": ["vending"]}),
        );
        let created: jiff::Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        tagged.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created),
        );
        let registry = MemberRegistry::default();
        let index = |tagged: &SimGroup| {
            ClaimIndex::build(
                &[this.clone(), tagged.clone()],
                &accounts,
                Some(&registry),
                &this,
            )
        };
        let minute = jiff::SignedDuration::from_mins(1);
        assert!(index(&tagged).awaiting_new_tag_claimants(created - minute));
        assert!(
            !index(&tagged).awaiting_new_tag_claimants(created + minute),
            "created before the wait: not waited for"
        );
        registry.observed(&tagged, HashSet::from([1001]), HashSet::new());
        assert!(
            !index(&tagged).awaiting_new_tag_claimants(created - minute),
            "it has read"
        );
    }

    #[test]
    fn a_peer_found_by_tag_claims_what_it_observed_and_its_fingerprint_follows() {
        let accounts = [account("sim", "simulator", "http://127.0.0.1:1", None)];
        let this = group_in(
            "ns",
            "by-iccid",
            "sim",
            "Paused",
            json!({"iccids": ["8944500000000000001"]}),
        );
        let tagged = group_in(
            "ns",
            "by-tag",
            "sim",
            "Active",
            json!({"tags": ["cold-chain"]}),
        );
        let registry = MemberRegistry::default();
        let sim = SimObservation {
            iccid: "8944500000000000001".into(),
            ..device(1001)
        };
        let before = ClaimIndex::build(
            &[this.clone(), tagged.clone()],
            &accounts,
            Some(&registry),
            &this,
        );
        assert_eq!(
            before.claimed_by(&sim),
            None,
            "a lookup by ICCID carries no tags"
        );
        registry.observed(&tagged, HashSet::from([1001]), HashSet::new());
        let after = ClaimIndex::build(&[this.clone(), tagged], &accounts, Some(&registry), &this);
        assert_eq!(
            after.claimed_by(&sim),
            Some(("SimGroup by-tag".into(), SimState::Active))
        );
        assert_ne!(before.fingerprint(), after.fingerprint());
    }

    #[test]
    fn members_found_for_an_earlier_selector_are_not_claims() {
        let accounts = [account("sim", "simulator", "http://127.0.0.1:1", None)];
        let this = group_in(
            "ns",
            "by-iccid",
            "sim",
            "Paused",
            json!({"iccids": ["8944500000000000001"]}),
        );
        let tagged = group_in(
            "ns",
            "by-tag",
            "sim",
            "Active",
            json!({"tags": ["cold-chain"]}),
        );
        let registry = MemberRegistry::default();
        registry.observed(&tagged, HashSet::from([1001]), HashSet::new());
        // Edited to other SIMs; it has not read them yet (its account is broken, say).
        let edited = group_in(
            "ns",
            "by-tag",
            "sim",
            "Active",
            json!({"deviceIds": [1002]}),
        );
        let sim = SimObservation {
            iccid: "8944500000000000001".into(),
            ..device(1001)
        };
        let index = ClaimIndex::build(&[this.clone(), edited], &accounts, Some(&registry), &this);
        assert_eq!(index.claimed_by(&sim), None);
    }

    #[test]
    fn groups_in_two_namespaces_on_one_organisation_claim_the_same_sims_without_names() {
        let accounts = [
            account_in(
                "fleet-a",
                "holo",
                "hologram",
                "https://dashboard.hologram.io/api/1",
                Some(7),
            ),
            account_in(
                "fleet-b",
                "holo",
                "hologram",
                "https://dashboard.hologram.io/api/1/",
                Some(7),
            ),
            account_in(
                "fleet-c",
                "holo",
                "hologram",
                "https://dashboard.hologram.io/api/1",
                Some(8),
            ),
        ];
        let this = group_in(
            "fleet-a",
            "vending",
            "holo",
            "Active",
            json!({"tags": ["vending"]}),
        );
        for (namespace, claimed) in [("fleet-b", true), ("fleet-c", false)] {
            let other = group_in(
                namespace,
                "returned",
                "holo",
                "Paused",
                json!({"deviceIds": [1010]}),
            );
            let index = ClaimIndex::build(&[this.clone(), other], &accounts, NONE, &this);
            assert_eq!(
                index.claimed_by(&device(1010)),
                claimed.then(|| (ELSEWHERE.to_owned(), SimState::Paused)),
                "{namespace}"
            );
        }
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
            ClaimIndex::build(&groups, &accounts, NONE, &this).claimed_by(&device(1010))
        };
        let resume = Some(("SimGroup resume".into(), SimState::Active));
        assert_eq!(claimed("holo-a"), resume);
        assert_eq!(claimed("holo-b"), resume, "one organisation, two accounts");
        assert_eq!(
            claimed("holo-any-org"),
            resume,
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
