//! The namespace lifecycle: content may be created only in an existing, active namespace;
//! deleting a namespace deletes what is in it, and the namespace goes once it is empty.

use serde_json::{Value, json};

use super::objects::{meta, meta_mut, now_text};
use super::{ChangeKind, Store};
use crate::status::ApiStatus;

impl Store {
    pub(super) fn namespace_check(&self, def: usize, namespace: &str) -> Result<(), ApiStatus> {
        if !self.defs[def].namespaced {
            return Ok(());
        }
        let ns = self
            .def_index("", "namespaces")
            .expect("namespaces are served");
        match self.objects.get(&(ns, String::new(), namespace.to_owned())) {
            None => Err(ApiStatus::not_found(&self.defs[ns], namespace)),
            Some(n) if meta(n, "deletionTimestamp").is_some() => Err(ApiStatus {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    self.defs[def].qualified()
                ),
                details: None,
                page_not_found: false,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Namespace deletion cascades to everything in it; the namespace goes once it is empty.
    pub(super) fn delete_namespace(
        &mut self,
        def: usize,
        name: &str,
        mut stored: Value,
    ) -> Result<Value, ApiStatus> {
        if meta(&stored, "deletionTimestamp").is_none() {
            let rv = self.next_rv();
            meta_mut(&mut stored).insert("deletionTimestamp".into(), json!(now_text()));
            meta_mut(&mut stored).insert("resourceVersion".into(), json!(rv));
            stored["status"] = json!({"phase": "Terminating"});
            self.objects
                .insert((def, String::new(), name.to_owned()), stored.clone());
            self.record(def, "", ChangeKind::Modified, stored.clone());
        }
        let inside: Vec<(usize, String)> = self
            .objects
            .keys()
            .filter(|(_, ns, _)| ns == name)
            .map(|(d, _, n)| (*d, n.clone()))
            .collect();
        for (d, object) in inside {
            self.delete(d, name, &object)?;
        }
        self.finish_namespace(name);
        Ok(self.get(def, "", name).unwrap_or(stored))
    }

    /// Removes a terminating namespace that has become empty.
    pub(super) fn finish_namespace(&mut self, namespace: &str) {
        if namespace.is_empty() {
            return;
        }
        let ns = self
            .def_index("", "namespaces")
            .expect("namespaces are served");
        let key = (ns, String::new(), namespace.to_owned());
        let terminating = self
            .objects
            .get(&key)
            .is_some_and(|n| meta(n, "deletionTimestamp").is_some());
        let empty = !self.objects.keys().any(|(_, n, _)| n == namespace);
        if terminating && empty {
            let mut object = self.objects.remove(&key).expect("checked");
            let rv = self.next_rv();
            meta_mut(&mut object).insert("resourceVersion".into(), json!(rv));
            self.record(ns, "", ChangeKind::Deleted, object);
        }
    }
}
