//! The devices a DataQuota targets, with the SimGroup its `simGroupRef` names read from the
//! cluster (the resolving itself is `crate::resolve::target_devices`).

use kube::ResourceExt;
use kube::api::Api;

use super::{Context, Error};
use crate::plan::data_quota::SpecProblem;
use crate::resolve::{Targets, target_devices};
use simfleet_api::{DataQuota, SimGroup};
use simfleet_carrier::Carrier;

/// The target's devices, or what is wrong with the target.
pub(super) async fn targets(
    context: &Context,
    quota: &DataQuota,
    carrier: &dyn Carrier,
) -> Result<Result<Targets, SpecProblem>, Error> {
    let namespace = quota.namespace().unwrap_or_default();
    let group = match &quota.spec.target.sim_group_ref {
        Some(group_ref) => {
            let groups: Api<SimGroup> = Api::namespaced(context.client.clone(), &namespace);
            groups.get_opt(&group_ref.name).await?
        }
        None => None,
    };
    Ok(target_devices(carrier, &quota.spec, group.as_ref(), &namespace).await?)
}
