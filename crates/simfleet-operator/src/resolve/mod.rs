//! What a resource refers to, resolved the same way for the operator and for `simfleet plan`:
//! the selection a SimGroup's selector makes, the credential in a CarrierAccount's Secret, and
//! (a DataQuota's targets: `data_quota::targets`; a person's approval: `sim_group::approval`).

use k8s_openapi::api::core::v1::Secret;

use simfleet_api::SimGroup;
use simfleet_api::model::Selection;

/// The selection of a group, as the carrier client takes it.
pub(crate) fn selection_of(group: &SimGroup) -> Selection {
    let selector = &group.spec.selector;
    Selection {
        iccids: selector.iccids.clone().unwrap_or_default(),
        device_ids: selector.device_ids.clone().unwrap_or_default(),
        tags: selector.tags.clone().unwrap_or_default(),
    }
}

/// A Secret's value under `key` (from `data`, or `stringData` as written), trimmed; `None` when
/// absent or empty.
pub(crate) fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret_entry(secret, key).filter(|v| !v.is_empty())
}

/// A Secret's value under `key` (from `data`, or `stringData` as written), trimmed, empty or
/// not; `None` when the key is absent.
pub(crate) fn secret_entry(secret: &Secret, key: &str) -> Option<String> {
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
}
