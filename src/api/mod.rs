//! The custom resources simfleet serves (group `simfleet.io`, version `v1alpha1`).
//!
//! One file per kind; this module holds what they share: references, the duration type,
//! the CRD list and its YAML rendering.

mod carrier_account;
pub mod conditions;
mod data_quota;
pub mod duration;
pub mod manifest;
mod sim_group;
pub mod validation;

pub use carrier_account::*;
pub use data_quota::*;
pub use duration::{DurationError, FriendlyDuration};
pub use sim_group::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// API group of every simfleet kind.
pub const GROUP: &str = "simfleet.io";
/// API version of every simfleet kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` written in manifests.
pub const API_VERSION: &str = "simfleet.io/v1alpha1";
/// Schema pattern of an ICCID: 19 to 22 digits starting with 89.
pub const ICCID_PATTERN: &str = "^89[0-9]{17,20}$";
/// Schema pattern of a carrier tag name: emnify stores tags comma-separated, so no commas.
pub const TAG_PATTERN: &str = "^[^,]+$";
/// Schema pattern of a carrier API base URL.
pub const BASE_URL_PATTERN: &str = r"^https?://[^\s/?#]+[^\s?#]*$";

/// Annotation that approves a guarded SimGroup change for one generation.
pub const APPROVED_GENERATION_ANNOTATION: &str = "simfleet.io/approved-generation";

/// Reference to another object in the same namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct LocalObjectRef {
    /// Name of the referenced object, in the same namespace as the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The CRDs of every simfleet kind, in the order they should be applied.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![CarrierAccount::crd(), SimGroup::crd(), DataQuota::crd()]
}

/// Renders one CRD as a YAML document (what `crds/` holds, one file per kind).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(crd)
}

/// Renders every CRD as one multi-document YAML stream (what `simfleet crd` prints).
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

/// File name, under `crds/`, of the rendered CRD (e.g. `simgroups.simfleet.io.yaml`).
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!(
        "{}.yaml",
        crd.metadata.name.as_deref().unwrap_or("unnamed-crd")
    )
}
