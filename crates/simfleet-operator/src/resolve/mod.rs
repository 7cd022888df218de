//! What a resource refers to, resolved the same way for the operator and for `simfleet plan`:
//! the selection a SimGroup's selector makes, the credential in a CarrierAccount's Secret, and
//! the generation a person approved (a DataQuota's targets: `data_quota::targets`).

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use simfleet_api::model::Selection;
use simfleet_api::{APPROVED_GENERATION_ANNOTATION, SimGroup};

/// The selection of a group, as the carrier client takes it.
pub(crate) fn selection_of(group: &SimGroup) -> Selection {
    let selector = &group.spec.selector;
    Selection {
        iccids: selector.iccids.clone().unwrap_or_default(),
        device_ids: selector.device_ids.clone().unwrap_or_default(),
        tags: selector.tags.clone().unwrap_or_default(),
    }
}

/// The generation a person approved with the `simfleet.io/approved-generation` annotation, if
/// it holds a number.
pub fn approved_generation(group: &SimGroup) -> Option<i64> {
    group
        .annotations()
        .get(APPROVED_GENERATION_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
}

/// What is wrong with a group's `simfleet.io/approved-generation` annotation, when it is set but
/// holds no generation number (it then approves nothing).
pub fn approval_annotation_problem(group: &SimGroup) -> Option<String> {
    let value = group.annotations().get(APPROVED_GENERATION_ANNOTATION)?;
    if value.trim().parse::<i64>().is_ok() {
        return None;
    }
    Some(format!(
        "annotation {APPROVED_GENERATION_ANNOTATION}={value:?} is not a generation number, so it approves nothing; write the group's metadata.generation, e.g. {APPROVED_GENERATION_ANNOTATION}={}",
        group.metadata.generation.unwrap_or(1)
    ))
}

/// A Secret's value under `key` (from `data`, or `stringData` as written), trimmed; `None` when
/// absent or empty.
pub(crate) fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.trim().to_owned())
        })
        .filter(|v| !v.is_empty())
}
