//! The resources the sandbox serves: the CRDs it is started with (by default simfleet's, from the
//! same code that writes `crds/`)
//! and the core resources the operator and kubectl use.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::events::{FieldLabels, View};

/// A printer column of a resource (from its CRD, or built in).
#[derive(Clone, Debug)]
pub(crate) struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// Simple JSONPath of the value.
    pub json_path: String,
    /// 0: always shown; above: only with `-o wide`.
    pub priority: i32,
    /// What it shows.
    pub description: String,
}

/// One resource type.
#[derive(Clone, Debug)]
pub(crate) struct ResourceDef {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural name (the path segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories (`kubectl get simfleet`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource (main writes ignore status; status writes only status).
    pub status_subresource: bool,
    /// A custom resource: validated against its schema, with `metadata.generation`.
    pub custom: bool,
    /// Printer columns after NAME.
    pub columns: Vec<Column>,
    /// The structural schema, for custom resources.
    pub schema: Option<Value>,
    /// The field selectors it takes.
    pub field_labels: FieldLabels,
    /// When its objects are another resource's, seen through a view: that resource's group and
    /// plural, and the view.
    pub stored_as: Option<(&'static str, &'static str, View)>,
}

impl ResourceDef {
    /// `group/version`, or `version` for core.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, or `plural` for core: how the API server names the resource in messages.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The discovery entry (`APIResource`).
    pub(crate) fn discovery(&self) -> Value {
        let verbs = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })
    }
}

fn core(kind: &str, plural: &str, namespaced: bool, columns: Vec<Column>) -> ResourceDef {
    ResourceDef {
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: Vec::new(),
        categories: Vec::new(),
        namespaced,
        status_subresource: plural == "namespaces",
        custom: false,
        columns,
        schema: None,
        field_labels: FieldLabels::Metadata,
        stored_as: None,
    }
}

fn column(name: &str, kind: &str, json_path: &str) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        json_path: json_path.into(),
        priority: 0,
        description: String::new(),
    }
}

fn age() -> Column {
    column("Age", "date", ".metadata.creationTimestamp")
}

/// The resource definition of a CRD's served version.
pub(crate) fn from_crd(crd: &CustomResourceDefinition) -> ResourceDef {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.served)
        .expect("a served version");
    ResourceDef {
        group: crd.spec.group.clone(),
        version: version.name.clone(),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
        singular: crd
            .spec
            .names
            .singular
            .clone()
            .unwrap_or_else(|| crd.spec.names.kind.to_lowercase()),
        short_names: crd.spec.names.short_names.clone().unwrap_or_default(),
        categories: crd.spec.names.categories.clone().unwrap_or_default(),
        namespaced: crd.spec.scope == "Namespaced",
        status_subresource: version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some()),
        custom: true,
        columns: version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| Column {
                name: c.name.clone(),
                kind: c.type_.clone(),
                json_path: c.json_path.clone(),
                priority: c.priority.unwrap_or(0),
                description: c.description.clone().unwrap_or_default(),
            })
            .collect(),
        schema: version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok()),
        field_labels: FieldLabels::Metadata,
        stored_as: None,
    }
}

/// Every resource the sandbox serves: the built-in kinds, and the custom resources of `crds`.
pub fn all(crds: &[CustomResourceDefinition]) -> Vec<ResourceDef> {
    let mut defs = vec![
        {
            let mut ns = core(
                "Namespace",
                "namespaces",
                false,
                vec![column("Status", "string", ".status.phase"), age()],
            );
            ns.short_names = vec!["ns".into()];
            ns
        },
        {
            let mut cm = core(
                "ConfigMap",
                "configmaps",
                true,
                vec![column("Data", "integer", ".data"), age()],
            );
            cm.short_names = vec!["cm".into()];
            cm
        },
        core(
            "Secret",
            "secrets",
            true,
            vec![column("Type", "string", ".type"), age()],
        ),
        {
            let mut ev = core(
                "Event",
                "events",
                true,
                vec![
                    column("Type", "string", ".type"),
                    column("Reason", "string", ".reason"),
                    column("Object", "string", ".involvedObject.name"),
                    column("Message", "string", ".message"),
                ],
            );
            ev.short_names = vec!["ev".into()];
            ev.field_labels = FieldLabels::CoreEvents;
            ev
        },
        ResourceDef {
            group: "events.k8s.io".into(),
            version: "v1".into(),
            kind: "Event".into(),
            plural: "events".into(),
            singular: "event".into(),
            short_names: vec!["ev".into()],
            categories: Vec::new(),
            namespaced: true,
            status_subresource: false,
            custom: false,
            columns: vec![
                column("Type", "string", ".type"),
                column("Reason", "string", ".reason"),
                column("Note", "string", ".note"),
            ],
            schema: None,
            field_labels: FieldLabels::EventsV1,
            stored_as: Some(("", "events", View::EventsV1)),
        },
        ResourceDef {
            group: "coordination.k8s.io".into(),
            version: "v1".into(),
            kind: "Lease".into(),
            plural: "leases".into(),
            singular: "lease".into(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced: true,
            status_subresource: false,
            custom: false,
            columns: vec![column("Holder", "string", ".spec.holderIdentity"), age()],
            schema: None,
            field_labels: FieldLabels::Metadata,
            stored_as: None,
        },
    ];
    defs.extend(crds.iter().map(from_crd));
    defs
}
