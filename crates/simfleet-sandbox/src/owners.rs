//! Server-side apply field ownership, as far as conflicts need it: which field manager last set
//! each field of an object, and the conflicts an apply without `force` meets (409, as the API
//! server answers when an apply would change a field another manager set). Lists are atomic
//! here (owned whole), a simplification of the API server's list-map granularity.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// Bookkeeping fields nobody owns.
const UNOWNED: [&str; 10] = [
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/uid",
    "/metadata/resourceVersion",
    "/metadata/generation",
    "/metadata/creationTimestamp",
    "/metadata/deletionTimestamp",
    "/metadata/managedFields",
];

/// Identifies an object: resource definition index, namespace, name.
pub(crate) type ObjectKey = (usize, String, String);

/// The leaf fields of a value by JSON pointer (objects recurse; lists and scalars are leaves).
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}/{}", key.replace('~', "~0").replace('/', "~1"));
                if !UNOWNED.contains(&path.as_str()) {
                    leaves(child, &path, out);
                }
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// `/spec/holderIdentity` as the API server prints it: `.spec.holderIdentity`.
fn dotted(path: &str) -> String {
    path.replace('/', ".")
}

/// Field owners of every object.
#[derive(Debug, Default)]
pub(crate) struct FieldOwners {
    by_object: HashMap<ObjectKey, BTreeMap<String, String>>,
}

impl FieldOwners {
    /// Records a write by `manager`: fields it added or changed are its own; removed fields
    /// have no owner any more.
    pub fn record(&mut self, key: ObjectKey, manager: &str, before: Option<&Value>, after: &Value) {
        let mut old = BTreeMap::new();
        if let Some(before) = before {
            leaves(before, "", &mut old);
        }
        let mut new = BTreeMap::new();
        leaves(after, "", &mut new);
        let owners = self.by_object.entry(key).or_default();
        if before.is_none() {
            owners.clear();
        }
        owners.retain(|path, _| new.contains_key(path));
        for (path, value) in new {
            if old.get(&path) != Some(&value) {
                owners.insert(path, manager.to_owned());
            }
        }
    }

    /// Forgets a deleted object.
    pub(crate) fn forget(&mut self, key: &ObjectKey) {
        self.by_object.remove(key);
    }

    /// The fields `applied` would change that another manager owns, with that manager.
    pub fn conflicts(
        &self,
        key: &ObjectKey,
        manager: &str,
        current: &Value,
        applied: &Value,
    ) -> Vec<(String, String)> {
        let Some(owners) = self.by_object.get(key) else {
            return Vec::new();
        };
        let mut now = BTreeMap::new();
        leaves(current, "", &mut now);
        let mut wanted = BTreeMap::new();
        leaves(applied, "", &mut wanted);
        wanted
            .iter()
            .filter(|(path, value)| now.get(*path).is_some_and(|v| v != *value))
            .filter_map(|(path, _)| {
                owners
                    .get(path)
                    .filter(|owner| owner.as_str() != manager)
                    .map(|owner| (dotted(path), owner.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> ObjectKey {
        (0, "default".into(), "lease".into())
    }

    #[test]
    fn an_apply_conflicts_only_on_changed_fields_another_manager_set() {
        let mut owners = FieldOwners::default();
        let first = json!({"metadata": {"name": "lease", "resourceVersion": "1"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
        owners.record(key(), "a", None, &first);
        let conflicts = owners.conflicts(
            &key(),
            "b",
            &first,
            &json!({"spec": {"holderIdentity": "b", "leaseDurationSeconds": 15}}),
        );
        assert_eq!(
            conflicts,
            [(".spec.holderIdentity".to_owned(), "a".to_owned())]
        );
        assert!(
            owners
                .conflicts(
                    &key(),
                    "a",
                    &first,
                    &json!({"spec": {"holderIdentity": "a2"}})
                )
                .is_empty(),
            "its own field"
        );
        // A removed field has no owner: anyone may set it again.
        let released = json!({"metadata": {"name": "lease"}, "spec": {"leaseDurationSeconds": 15}});
        owners.record(key(), "b", Some(&first), &released);
        assert!(
            owners
                .conflicts(
                    &key(),
                    "b",
                    &released,
                    &json!({"spec": {"holderIdentity": "b"}})
                )
                .is_empty()
        );
    }
}
