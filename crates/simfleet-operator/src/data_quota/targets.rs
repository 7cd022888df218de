//! The devices a DataQuota targets: device ids, tags, or the SIMs of a SimGroup, resolved at the
//! carrier (only reads), with those that cannot hold a quota set apart. The operator reads the
//! SimGroup from the cluster ([`targets`]); `simfleet plan` from the manifests.

use kube::ResourceExt;
use kube::api::Api;

use super::plan::SpecProblem;
use crate::controller::{Context, Error};
use crate::resolve::selection_of;
use simfleet_api::model::{ObservedState, Selection};
use simfleet_api::{DataQuota, SimGroup};
use simfleet_carrier::{Carrier, CarrierError, observe_each};

/// The devices a DataQuota targets: those the carrier can give a quota (ascending, each
/// once), and those it cannot, with the reason (observed as deleted, without a SIM, unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Targets {
    /// Devices to read and set.
    pub devices: Vec<u64>,
    /// Devices observed as ineligible, with the carrier's reason.
    pub ineligible: Vec<(u64, String)>,
}

/// The devices a DataQuota targets, given the SimGroup its `simGroupRef` names (`None` when
/// there is none by that name), or what is wrong with the target. Only reads from the carrier.
pub(crate) async fn target_devices(
    carrier: &dyn Carrier,
    spec: &simfleet_api::DataQuotaSpec,
    group: Option<&SimGroup>,
    namespace: &str,
) -> Result<Result<Targets, SpecProblem>, CarrierError> {
    let target = &spec.target;
    let mut ids: Vec<u64> = target.device_ids.clone().unwrap_or_default();
    let (selection, what) = if let Some(group_ref) = &target.sim_group_ref {
        let Some(group) = group else {
            return Ok(Err(SpecProblem {
                reason: "SimGroupNotFound",
                message: format!(
                    "target.simGroupRef: SimGroup {} not found in namespace {namespace}; create it or fix the name",
                    group_ref.name
                ),
            }));
        };
        if group.spec.carrier_ref.name != spec.carrier_ref.name {
            return Ok(Err(SpecProblem {
                reason: "CarrierMismatch",
                message: format!(
                    "target.simGroupRef: SimGroup {} uses CarrierAccount {}, this DataQuota uses {}; set carrierRef.name to {}",
                    group_ref.name,
                    group.spec.carrier_ref.name,
                    spec.carrier_ref.name,
                    group.spec.carrier_ref.name
                ),
            }));
        }
        (
            selection_of(group),
            format!("the SIMs of SimGroup {}", group_ref.name),
        )
    } else {
        let tags = target.tags.clone().unwrap_or_default();
        let what = format!("tags {}", tags.join(", "));
        (
            Selection {
                tags,
                ..Default::default()
            },
            what,
        )
    };
    let mut ineligible = Vec::new();
    if selection != Selection::default() {
        observe_each(carrier, &selection, |page| {
            for sim in page {
                match (sim.device_id, sim.state) {
                    (Some(id), ObservedState::Ineligible(why)) => ineligible.push((id, why)),
                    (Some(id), _) => ids.push(id),
                    (None, _) => {}
                }
            }
        })
        .await?;
    }
    ids.sort_unstable();
    ids.dedup();
    ineligible.sort_unstable();
    ineligible.dedup_by_key(|(id, _)| *id);
    // A device listed by id and also observed as ineligible is ineligible.
    ids.retain(|id| ineligible.binary_search_by_key(id, |(i, _)| *i).is_err());
    if ids.is_empty() && ineligible.is_empty() {
        return Ok(Err(SpecProblem {
            reason: "NoTargets",
            message: format!(
                "target: {what} select no device at the carrier; fix target (tags are matched exactly)"
            ),
        }));
    }
    Ok(Ok(Targets {
        devices: ids,
        ineligible,
    }))
}

/// The target's devices, with the SimGroup its `simGroupRef` names read from the cluster, or
/// what is wrong with the target.
pub(crate) async fn targets(
    context: &Context,
    quota: &DataQuota,
    carrier: &dyn Carrier,
) -> Result<Result<Targets, SpecProblem>, Error> {
    let namespace = quota.namespace().unwrap_or_default();
    let group = match &quota.spec.target.sim_group_ref {
        Some(group_ref) => {
            let groups: Api<SimGroup> = Api::namespaced(context.client.clone(), &namespace);
            let group = groups.get_opt(&group_ref.name).await?;
            // A group being deleted selects nothing (it claims no SIM either).
            if group
                .as_ref()
                .is_some_and(|g| g.metadata.deletion_timestamp.is_some())
            {
                return Ok(Err(SpecProblem {
                    reason: "SimGroupDeleting",
                    message: format!(
                        "target.simGroupRef: SimGroup {} is being deleted; this DataQuota targets no device until a SimGroup of that name exists again (the devices keep their quotas)",
                        group_ref.name
                    ),
                }));
            }
            group
        }
        None => None,
    };
    Ok(target_devices(carrier, &quota.spec, group.as_ref(), &namespace).await?)
}
