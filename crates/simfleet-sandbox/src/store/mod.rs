//! The sandbox's object store and the API semantics controllers rely on: a global
//! resourceVersion, optimistic concurrency, `generation` bumped on spec changes only, the status
//! subresource, finalizers and deletion, namespace cascade, and a change log for watches.

mod admission;
mod namespaces;
mod objects;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::events::View;
use super::registry::ResourceDef;
use super::request_log::RequestLog;
pub(crate) use super::selector::Filter;
use super::status::ApiStatus;
use objects::{meta, meta_mut, meta_str, now_text, random_suffix, spec_part, uid};
use simfleet_api::schema_engine::FieldErrorKind;
use simfleet_api::validation::ManifestValidator;

/// Changes kept for watches to resume from, by default; older resourceVersions get 410 Gone.
pub(crate) const DEFAULT_LOG_CAPACITY: usize = 20_000;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl ChangeKind {
    /// The watch event type.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    /// The resourceVersion it produced.
    pub rv: u64,
    /// Index of the resource definition.
    pub def: usize,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (before removal, for deletions).
    pub object: Value,
}

/// How a write treats fields the schema does not declare (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them with a warning.
    Warn,
    /// Refuse the request.
    Strict,
}

/// The kinds of patch the API server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch (with `test`).
    Json,
    /// Strategic merge patch: served as a merge patch (none of our resources has merge keys).
    Strategic,
    /// Server-side apply: the applied fields are merged in; field ownership is not tracked.
    Apply,
}

/// A successful write: the object and any warnings.
pub(crate) struct Written {
    /// The stored object.
    pub object: Value,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
    /// True when a new object was created.
    pub created: bool,
}

impl Written {
    /// The written object as a view shows it.
    fn shown(self, view: View) -> Self {
        Self {
            object: view.to_view(self.object),
            ..self
        }
    }
}

/// A stored object as `view` shows it (as stored without one).
fn shown(view: Option<View>, object: Value) -> Value {
    match view {
        Some(view) => view.to_view(object),
        None => object,
    }
}

/// The changes a watch replays, and the receiver of later ones.
pub(crate) type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// How a write is made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteOptions {
    /// Through the status subresource.
    pub status: bool,
    /// How undeclared fields are treated.
    pub validation: FieldValidation,
}

/// The store.
pub(crate) struct Store {
    /// Resource definitions (indexes are stable).
    pub defs: Vec<ResourceDef>,
    objects: BTreeMap<(usize, String, String), Value>,
    rv: u64,
    log: VecDeque<Arc<Change>>,
    log_capacity: usize,
    tx: broadcast::Sender<Arc<Change>>,
    validator: ManifestValidator,
    /// The requests made, for the RBAC check and tests.
    pub requests: RequestLog,
    /// Server-side apply field owners.
    pub owners: super::owners::FieldOwners,
}

impl Store {
    /// A store with the `default` and `kube-system` namespaces, validating custom resources
    /// with `validator` (compiled from the CRDs that `defs` serve).
    pub fn new(defs: Vec<ResourceDef>, log_capacity: usize, validator: ManifestValidator) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut store = Self {
            defs,
            objects: BTreeMap::new(),
            rv: 1,
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            tx,
            validator,
            requests: RequestLog::default(),
            owners: Default::default(),
        };
        let ns = store
            .def_index("", "namespaces")
            .expect("namespaces are served");
        for name in ["default", "kube-system"] {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            store
                .create(ns, "", object, FieldValidation::Strict)
                .expect("a fresh store takes its namespaces");
        }
        store
    }

    /// The index of a resource by group and plural.
    pub(crate) fn def_index(&self, group: &str, plural: &str) -> Option<usize> {
        self.defs
            .iter()
            .position(|d| d.group == group && d.plural == plural)
    }

    /// The current resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    fn record(&mut self, def: usize, namespace: &str, kind: ChangeKind, object: Value) {
        let change = Arc::new(Change {
            rv: self.rv,
            def,
            namespace: namespace.to_owned(),
            kind,
            object,
        });
        if self.log.len() == self.log_capacity {
            self.log.pop_front();
        }
        self.log.push_back(change.clone());
        let _ = self.tx.send(change);
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// Where the objects of `def` are stored: the definition they are kept under, and the view
    /// that converts them when `def` shows another resource's objects (events.k8s.io Events).
    pub(crate) fn stored_as(&self, def: usize) -> (usize, Option<View>) {
        match self.defs[def].stored_as {
            Some((group, plural, view)) => (
                self.def_index(group, plural)
                    .expect("a view's resource is served"),
                Some(view),
            ),
            None => (def, None),
        }
    }

    /// One object.
    pub fn get(&self, def: usize, namespace: &str, name: &str) -> Result<Value, ApiStatus> {
        let (stored, view) = self.stored_as(def);
        self.objects
            .get(&(stored, namespace.to_owned(), name.to_owned()))
            .cloned()
            .map(|o| shown(view, o))
            .ok_or_else(|| ApiStatus::not_found(&self.defs[def], name))
    }

    /// A page of objects (`namespace` None: all namespaces), the continue token and the
    /// number of items remaining after it.
    pub fn list(
        &self,
        def: usize,
        namespace: Option<&str>,
        filter: &Filter,
        limit: Option<usize>,
        after: Option<(String, String)>,
    ) -> (Vec<Value>, Option<String>) {
        let (def, view) = self.stored_as(def);
        let mut items = Vec::new();
        let mut more = None;
        let start = after.map(|(ns, name)| (def, ns, name));
        let range = self
            .objects
            .range((def, String::new(), String::new())..(def + 1, String::new(), String::new()));
        for ((_, ns, name), object) in range {
            if let Some(start) = &start
                && (def, ns.clone(), name.clone()) <= *start
            {
                continue;
            }
            if namespace.is_some_and(|n| n != ns) || !filter.matches(object) {
                continue;
            }
            if limit.is_some_and(|l| items.len() == l) {
                more = Some(format!(
                    "{ns}\u{0}{}",
                    items
                        .last()
                        .map(|o: &Value| meta_str(o, "name"))
                        .unwrap_or("")
                ));
                break;
            }
            items.push(shown(view, object.clone()));
        }
        let token = more.map(|_| {
            let last = items.last().expect("a full page has a last item");
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
                "{}\u{0}{}",
                meta_str(last, "namespace"),
                meta_str(last, "name")
            ))
        });
        (items, token)
    }

    /// Decodes a continue token.
    pub(crate) fn decode_continue(token: &str) -> Result<(String, String), ApiStatus> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiStatus::bad_request("invalid continue token"))?;
        let (ns, name) = raw
            .split_once('\u{0}')
            .ok_or_else(|| ApiStatus::bad_request("invalid continue token"))?;
        Ok((ns.to_owned(), name.to_owned()))
    }

    /// Creates an object.
    pub fn create(
        &mut self,
        def: usize,
        namespace: &str,
        mut object: Value,
        validation: FieldValidation,
    ) -> Result<Written, ApiStatus> {
        if let (stored, Some(view)) = self.stored_as(def) {
            return self
                .create(stored, namespace, view.to_stored(object), validation)
                .map(|w| w.shown(view));
        }
        let d = self.defs[def].clone();
        if !object.is_object() {
            return Err(ApiStatus::bad_request("the body must be a JSON object"));
        }
        let body_ns = meta_str(&object, "namespace").to_owned();
        if d.namespaced && !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiStatus::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.namespace_check(def, namespace)?;
        object["apiVersion"] = json!(d.api_version());
        object["kind"] = json!(d.kind);
        let generate = meta_str(&object, "generateName").to_owned();
        if meta_str(&object, "name").is_empty() && !generate.is_empty() {
            meta_mut(&mut object).insert(
                "name".into(),
                json!(format!("{generate}{}", random_suffix(5))),
            );
        }
        let name = meta_str(&object, "name").to_owned();
        if name.is_empty() {
            return Err(ApiStatus::invalid(
                &d,
                "",
                &[simfleet_api::schema_engine::FieldError {
                    field: "metadata.name".into(),
                    kind: FieldErrorKind::Required("name or generateName is required".into()),
                }],
            ));
        }
        if self
            .objects
            .contains_key(&(def, namespace.to_owned(), name.clone()))
        {
            return Err(ApiStatus::already_exists(&d, &name));
        }
        if d.status_subresource && d.custom {
            object.as_object_mut().expect("checked").remove("status");
        }
        {
            let m = meta_mut(&mut object);
            for key in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "managedFields",
            ] {
                m.remove(key);
            }
            if d.namespaced {
                m.insert("namespace".into(), json!(namespace));
            } else {
                m.remove("namespace");
            }
        }
        let warnings = self.admit(def, &mut object, validation)?;
        if d.plural == "namespaces" && object.pointer("/status/phase").is_none() {
            object["status"] = json!({"phase": "Active"});
        }
        let rv = self.next_rv();
        let m = meta_mut(&mut object);
        m.insert("uid".into(), json!(uid()));
        m.insert("creationTimestamp".into(), json!(now_text()));
        m.insert("resourceVersion".into(), json!(rv));
        if d.custom {
            m.insert("generation".into(), json!(1));
        }
        self.objects
            .insert((def, namespace.to_owned(), name), object.clone());
        self.record(def, namespace, ChangeKind::Added, object.clone());
        Ok(Written {
            object,
            warnings,
            created: true,
        })
    }

    /// Replaces an object (`status`: the status subresource).
    pub fn update(
        &mut self,
        def: usize,
        namespace: &str,
        name: &str,
        mut object: Value,
        options: WriteOptions,
    ) -> Result<Written, ApiStatus> {
        if let (stored, Some(view)) = self.stored_as(def) {
            let object = view.to_stored(object);
            let current = self.get(stored, namespace, name)?;
            let changed = view.immutable_changes(&current, &object);
            if !changed.is_empty() {
                let errors: Vec<_> = changed
                    .into_iter()
                    .map(|(field, value)| simfleet_api::schema_engine::FieldError {
                        field,
                        kind: FieldErrorKind::Invalid {
                            value,
                            detail: "field is immutable".into(),
                        },
                    })
                    .collect();
                return Err(ApiStatus::invalid(&self.defs[stored], name, &errors));
            }
            return self
                .update(stored, namespace, name, object, options)
                .map(|w| w.shown(view));
        }
        let WriteOptions { status, validation } = options;
        let d = self.defs[def].clone();
        let stored = self.get(def, namespace, name)?;
        if !object.is_object() {
            return Err(ApiStatus::bad_request("the body must be a JSON object"));
        }
        let given_rv = meta_str(&object, "resourceVersion").to_owned();
        if given_rv.is_empty() && d.custom && !status {
            return Err(ApiStatus::invalid(
                &d,
                name,
                &[simfleet_api::schema_engine::FieldError {
                    field: "metadata.resourceVersion".into(),
                    kind: FieldErrorKind::Invalid {
                        value: "0x0".into(),
                        detail: "must be specified for an update".into(),
                    },
                }],
            ));
        }
        if !given_rv.is_empty() && given_rv != meta_str(&stored, "resourceVersion") {
            return Err(ApiStatus::conflict(&d, name));
        }
        let body_name = meta_str(&object, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiStatus::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        object["apiVersion"] = json!(d.api_version());
        object["kind"] = json!(d.kind);
        let mut next = if status {
            // The status subresource changes status only.
            let mut next = stored.clone();
            match object.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    next.as_object_mut()
                        .expect("stored objects are objects")
                        .remove("status");
                }
            }
            next
        } else {
            if d.status_subresource {
                // Main writes leave status alone.
                match stored.get("status") {
                    Some(s) => object["status"] = s.clone(),
                    None => {
                        object.as_object_mut().expect("checked").remove("status");
                    }
                }
            }
            let m = meta_mut(&mut object);
            for key in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "namespace",
                "name",
            ] {
                match meta(&stored, key) {
                    Some(v) => m.insert(key.into(), v.clone()),
                    None => m.remove(key),
                };
            }
            m.remove("managedFields");
            object
        };
        let warnings = self.admit(def, &mut next, validation)?;
        if d.custom && !status && spec_part(&next) != spec_part(&stored) {
            let generation = meta(&stored, "generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        // A write that changes nothing is not a write: no new resourceVersion, no event.
        meta_mut(&mut next).insert(
            "resourceVersion".into(),
            json!(meta_str(&stored, "resourceVersion")),
        );
        if next == stored {
            return Ok(Written {
                object: stored,
                warnings,
                created: false,
            });
        }
        let rv = self.next_rv();
        meta_mut(&mut next).insert("resourceVersion".into(), json!(rv));
        let deleting = meta(&next, "deletionTimestamp").is_some();
        let finalizers_left = meta(&next, "finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers_left {
            self.objects
                .remove(&(def, namespace.to_owned(), name.to_owned()));
            self.record(def, namespace, ChangeKind::Deleted, next.clone());
            self.finish_namespace(namespace);
            return Ok(Written {
                object: next,
                warnings,
                created: false,
            });
        }
        self.objects
            .insert((def, namespace.to_owned(), name.to_owned()), next.clone());
        self.record(def, namespace, ChangeKind::Modified, next.clone());
        Ok(Written {
            object: next,
            warnings,
            created: false,
        })
    }

    /// Applies a patch and writes the result (server-side apply may create).
    pub fn patch(
        &mut self,
        def: usize,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        options: WriteOptions,
    ) -> Result<Written, ApiStatus> {
        let WriteOptions { status, validation } = options;
        let stored = match self.get(def, namespace, name) {
            Ok(stored) => stored,
            Err(_) if kind == PatchKind::Apply && !status => {
                let mut object = patch.clone();
                meta_mut(&mut object).insert("name".into(), json!(name));
                return self.create(def, namespace, object, validation);
            }
            Err(e) => return Err(e),
        };
        let mut patched = stored.clone();
        match kind {
            PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
                if !patch.is_object() {
                    return Err(ApiStatus::bad_request(
                        "a merge patch must be a JSON object",
                    ));
                }
                json_patch::merge(&mut patched, patch);
            }
            PatchKind::Json => {
                let mut operations: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| ApiStatus::bad_request(format!("invalid JSON patch: {e}")))?;
                // As on the API server, `test` of a missing path against null succeeds (kube's
                // finalizer helper relies on it before adding the first finalizer).
                operations.0.retain(|op| match op {
                    json_patch::PatchOperation::Test(t) => {
                        !(t.value.is_null() && patched.pointer(t.path.as_str()).is_none())
                    }
                    _ => true,
                });
                json_patch::patch(&mut patched, &operations).map_err(|e| ApiStatus {
                    code: 422,
                    reason: "Invalid",
                    message: format!(
                        "the server rejected our request due to an error in our request: {e}"
                    ),
                    details: None,
                    page_not_found: false,
                })?;
            }
        }
        // A patch carries a resourceVersion precondition only when it sets one.
        let given = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let rv = if given.is_empty() {
            meta_str(&stored, "resourceVersion").to_owned()
        } else {
            given.to_owned()
        };
        meta_mut(&mut patched).insert("resourceVersion".into(), json!(rv));
        self.update(def, namespace, name, patched, options)
    }

    /// Deletes an object: with finalizers it is marked for deletion, otherwise removed.
    pub fn delete(&mut self, def: usize, namespace: &str, name: &str) -> Result<Value, ApiStatus> {
        if let (stored, Some(view)) = self.stored_as(def) {
            return self
                .delete(stored, namespace, name)
                .map(|o| view.to_view(o));
        }
        let mut stored = self.get(def, namespace, name)?;
        let is_namespace = self.defs[def].plural == "namespaces";
        if is_namespace {
            return self.delete_namespace(def, name, stored);
        }
        let finalizers = meta(&stored, "finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            if meta(&stored, "deletionTimestamp").is_none() {
                let rv = self.next_rv();
                let m = meta_mut(&mut stored);
                m.insert("deletionTimestamp".into(), json!(now_text()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                m.insert("resourceVersion".into(), json!(rv));
                if self.defs[def].custom {
                    let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(1);
                    m.insert("generation".into(), json!(generation + 1));
                }
                self.objects
                    .insert((def, namespace.to_owned(), name.to_owned()), stored.clone());
                self.record(def, namespace, ChangeKind::Modified, stored.clone());
            }
            return Ok(stored);
        }
        self.objects
            .remove(&(def, namespace.to_owned(), name.to_owned()));
        let rv = self.next_rv();
        meta_mut(&mut stored).insert("resourceVersion".into(), json!(rv));
        self.record(def, namespace, ChangeKind::Deleted, stored.clone());
        self.finish_namespace(namespace);
        Ok(stored)
    }

    /// The changes after `rv` for a watch, and a receiver for later ones; `Err` when `rv` is
    /// older than the log holds (410 Gone).
    pub(crate) fn watch_from(&self, rv: u64) -> Result<WatchStart, ApiStatus> {
        let oldest = self.log.front().map_or(self.rv, |c| c.rv);
        if rv + 1 < oldest && self.log.len() == self.log_capacity {
            return Err(ApiStatus::gone(format!(
                "too old resource version: {rv} ({})",
                oldest - 1
            )));
        }
        let backlog = self.log.iter().filter(|c| c.rv > rv).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// A receiver for changes from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}
