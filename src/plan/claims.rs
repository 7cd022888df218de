//! Which other SimGroups claim a SIM: the index the planner consults for conflicts (and a
//! restore, so that it never undoes another group's claim). Built from the groups' specs.

use std::collections::HashMap;

use kube::ResourceExt;

use crate::api::{SimGroup, SimState};
use crate::carrier::SimObservation;
use crate::plan::sim_group::Claims;

/// Other groups' claims (ICCIDs, device ids and tags) in the same namespace.
pub struct ClaimIndex {
    by_iccid: HashMap<String, (String, SimState)>,
    by_device: HashMap<u64, (String, SimState)>,
    by_tag: HashMap<String, (String, SimState)>,
}

impl ClaimIndex {
    /// The claims that conflict with `this` group: other groups wanting the opposite state.
    pub fn build(groups: &[SimGroup], this: &SimGroup) -> Self {
        let opposite = match this.spec.state {
            SimState::Active => SimState::Paused,
            SimState::Paused => SimState::Active,
        };
        Self::wanting(groups, this, opposite)
    }

    /// The claims of the other groups (same namespace, not being deleted) wanting `state`.
    pub fn wanting(groups: &[SimGroup], this: &SimGroup, state: SimState) -> Self {
        let mut index = Self {
            by_iccid: HashMap::new(),
            by_device: HashMap::new(),
            by_tag: HashMap::new(),
        };
        for other in groups {
            // Only claims for one state are indexed, so another never hides them.
            if other.namespace() != this.namespace()
                || other.name_any() == this.name_any()
                || other.metadata.deletion_timestamp.is_some()
                || other.spec.state != state
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

impl Claims for ClaimIndex {
    fn claimed_by(&self, sim: &SimObservation) -> Option<(String, SimState)> {
        sim.device_id
            .and_then(|d| self.by_device.get(&d))
            .or_else(|| self.by_iccid.get(&sim.iccid))
            .or_else(|| sim.tags.iter().find_map(|t| self.by_tag.get(t)))
            .cloned()
    }
}
