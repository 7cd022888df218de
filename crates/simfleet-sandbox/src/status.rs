//! Kubernetes `Status` error bodies, worded as the API server words them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::registry::ResourceDef;
use simfleet_api::schema_engine::FieldError;

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone)]
pub(crate) struct ApiStatus {
    /// HTTP code.
    pub code: u16,
    /// Machine reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// Human message.
    pub message: String,
    /// `details`, when there are any.
    pub details: Option<Value>,
    /// Answered as kube-apiserver's plain-text "404 page not found" rather than a `Status`.
    pub page_not_found: bool,
}

/// The built-in API groups the sandbox serves: a path in one of them (or in the core group)
/// that names no resource gets a `Status`; any other unknown path, like a custom resource
/// group's, gets kube-apiserver's plain-text "404 page not found".
const BUILT_IN_GROUPS: [&str; 2] = ["events.k8s.io", "coordination.k8s.io"];

impl ApiStatus {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            page_not_found: false,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for an object.
    pub(crate) fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    /// 404 for a path that names no resource, as kube-apiserver answers it: a `Status` in the
    /// core and built-in groups, plain text elsewhere.
    pub(crate) fn no_resource(path: &str) -> Self {
        let built_in = path.starts_with("/api/")
            || BUILT_IN_GROUPS
                .iter()
                .any(|group| path.starts_with(&format!("/apis/{group}/")));
        let mut status = Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}));
        status.page_not_found = !built_in;
        status
    }

    /// 409 for a name in use.
    pub(crate) fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    /// 409 for a stale resourceVersion.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    /// 409 for a server-side apply that would change fields other managers own.
    pub(crate) fn apply_conflict(
        def: &ResourceDef,
        name: &str,
        conflicts: &[(String, String)],
    ) -> Self {
        let list: Vec<String> = conflicts
            .iter()
            .map(|(field, manager)| format!("conflict with \"{manager}\": {field}"))
            .collect();
        Self::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                list.join(", ")
            ),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural, "causes": conflicts.iter().map(|(field, _)| json!({"reason": "FieldManagerConflict", "field": field})).collect::<Vec<_>>()}))
    }

    /// 422 with one cause per field.
    pub fn invalid(def: &ResourceDef, name: &str, errors: &[FieldError]) -> Self {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                // A cause's message does not repeat its field, as the API server writes them.
                let text = e.to_string();
                let message = text
                    .strip_prefix(&format!("{}: ", e.field))
                    .unwrap_or(&text)
                    .to_owned();
                json!({"reason": cause_reason(e), "message": message, "field": e.field})
            })
            .collect();
        let kind = if def.group.is_empty() {
            def.kind.clone()
        } else {
            format!("{}.{}", def.kind, def.group)
        };
        let message = if list.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", list[0])
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", list.join(", "))
        };
        Self::new(422, "Invalid", message).with_details(
            json!({"name": name, "group": def.group, "kind": def.kind, "causes": causes}),
        )
    }

    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 410 for a watch from a resourceVersion the log no longer holds.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415.
    pub(crate) fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// The `Status` object.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

fn cause_reason(error: &FieldError) -> &'static str {
    use simfleet_api::schema_engine::FieldErrorKind as K;
    match error.kind {
        K::Required(_) => "FieldValueRequired",
        K::NotSupported { .. } => "FieldValueNotSupported",
        K::Duplicate { .. } => "FieldValueDuplicate",
        K::Unknown => "FieldValueInvalid",
        K::TooMany { .. } => "FieldValueTooMany",
        K::TooLong { .. } => "FieldValueTooLong",
        K::Invalid { .. } => "FieldValueInvalid",
        K::TypeInvalid { .. } => "FieldValueTypeInvalid",
    }
}

impl IntoResponse for ApiStatus {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.page_not_found {
            return (
                code,
                [("content-type", "text/plain; charset=utf-8")],
                "404 page not found\n",
            )
                .into_response();
        }
        (code, Json(self.body())).into_response()
    }
}
