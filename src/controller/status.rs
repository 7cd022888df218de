//! The one status writer: a merge patch of the status subresource, skipped when nothing changed.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;

/// Writes a status, unless it is unchanged: the one place status is written.
pub(crate) async fn write_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    next: &S,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(next) {
        return Ok(());
    }
    // A merge patch removes a field only when it says null: fields the new status leaves out
    // (an emptied list is not serialised), at any depth, are nulled explicitly.
    let mut status = serde_json::to_value(next)?;
    if let Some(old) = current.and_then(|c| serde_json::to_value(c).ok()) {
        null_removed(&old, &mut status);
    }
    let patch = serde_json::json!({"status": status});
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Sets to null, in `new`, every object member `old` has and `new` lacks (recursively), so that
/// `new` as a merge patch over `old` yields exactly `new`.
fn null_removed(old: &serde_json::Value, new: &mut serde_json::Value) {
    if let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (old, new) {
        for (key, old_value) in old {
            match new.get_mut(key) {
                Some(new_value) => null_removed(old_value, new_value),
                None => {
                    new.insert(key.clone(), serde_json::Value::Null);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_patch_nulls_fields_removed_at_any_depth() {
        let old = serde_json::json!({"a": 1, "progress": {"done": 5, "journal": [1, 2]}, "list": [{"x": 1}]});
        let mut new = serde_json::json!({"progress": {"done": 6}, "list": [{"y": 2}]});
        super::null_removed(&old, &mut new);
        assert_eq!(
            new,
            serde_json::json!({"a": null, "progress": {"done": 6, "journal": null}, "list": [{"y": 2}]})
        );
        let mut merged = old.clone();
        json_patch::merge(&mut merged, &new);
        assert_eq!(
            merged,
            serde_json::json!({"progress": {"done": 6}, "list": [{"y": 2}]})
        );
    }
}
