//! OpenAPI v3 documents built from the CRD schemas, so that `kubectl explain` works.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::SandboxState;
use super::status::ApiStatus;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Every group-version served.
fn group_versions(state: &SandboxState) -> Vec<(String, String)> {
    let store = state.store();
    let mut out: Vec<(String, String)> = Vec::new();
    for def in store.defs.iter() {
        if !out
            .iter()
            .any(|(g, v)| *g == def.group && *v == def.version)
        {
            out.push((def.group.clone(), def.version.clone()));
        }
    }
    out
}

/// `GET /openapi/v3`: where each group-version's document is.
pub(crate) async fn root(State(state): State<Arc<SandboxState>>) -> Response {
    let mut paths = Map::new();
    for (group, version) in group_versions(&state) {
        let path = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=sandbox")}),
        );
    }
    axum::Json(json!({"paths": paths})).into_response()
}

/// The reverse-DNS schema name kubectl expects (`io.simfleet.v1alpha1.SimGroup`,
/// `io.k8s.api.core.v1.Secret`).
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        return format!("io.k8s.api.core.{version}.{kind}");
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `GET /openapi/v3/apis/{group}/{version}`.
pub(crate) async fn group_version(
    State(state): State<Arc<SandboxState>>,
    Path(path): Path<String>,
) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["apis", group, version] => (*group, *version),
        ["api", version] => ("", *version),
        _ => return ApiStatus::no_resource(&format!("/openapi/v3/{path}")).into_response(),
    };
    let group = &group;
    let version = &version;
    let store = state.store();
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for def in store
        .defs
        .iter()
        .filter(|d| d.group == *group && d.version == *version)
    {
        let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
        let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(&def.group, &def.version, &def.kind))});
        let answer = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
        let field_validation = json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}, "description": "How to treat fields the schema does not declare: Ignore, Warn or Strict."});
        let operation = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "responses": answer, "parameters": [field_validation]});
        let prefix = if def.group.is_empty() {
            format!("/api/{}", def.version)
        } else {
            format!("/apis/{}/{}", def.group, def.version)
        };
        let base = if def.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", def.plural)
        } else {
            format!("{prefix}/{}", def.plural)
        };
        paths.insert(
            base.clone(),
            json!({"get": operation("list"), "post": operation("post")}),
        );
        paths.insert(format!("{base}/{{name}}"), json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch"), "delete": operation("delete")}));
        if def.status_subresource {
            paths.insert(format!("{base}/{{name}}/status"), json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch")}));
        }
        // Built-in kinds get an open schema: the sandbox stores them without a schema.
        let mut schema = def.schema.clone().unwrap_or_else(|| {
            json!({"type": "object", "description": format!("{} (stored by the sandbox without a schema).", def.kind), "x-kubernetes-preserve-unknown-fields": true, "properties": {}})
        });
        let props = schema
            .as_object_mut()
            .expect("a schema is an object")
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("properties is an object");
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        props.insert("metadata".into(), json!({"description": "Standard object's metadata.", "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}]}));
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": def.group, "version": def.version, "kind": def.kind}]);
        schemas.insert(schema_name(&def.group, &def.version, &def.kind), schema);
    }
    if schemas.is_empty() {
        return ApiStatus::no_resource(&format!("/openapi/v3/{path}")).into_response();
    }
    schemas.insert(OBJECT_META.into(), object_meta());
    axum::Json(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
    .into_response()
}

fn object_meta() -> Value {
    let string = |d: &str| json!({"type": "string", "description": d});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "properties": {
            "name": string("Name must be unique within a namespace."),
            "generateName": string("An optional prefix used by the server to generate a unique name."),
            "namespace": string("Namespace defines the space within which each name must be unique."),
            "uid": string("UID is the unique in time and space value for this object."),
            "resourceVersion": string("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "When this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "When this resource will be deleted."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values to organize and categorize objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
        },
    })
}
