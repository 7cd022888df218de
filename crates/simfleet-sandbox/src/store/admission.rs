//! Admission, as the API server does it on every write: Secrets' `stringData` folded into
//! `data`; custom resources pruned (or refused) for unknown fields, defaulted, and validated
//! against their CRD's schema and rules.

use serde_json::{Value, json};

use super::{FieldValidation, Store};
use crate::status::ApiStatus;
use simfleet_api::schema_engine::{FieldErrorKind, apply_defaults, prune_unknown};
use simfleet_api::validation::ValidationError;

impl Store {
    /// Validates, prunes and defaults a custom resource the way the API server admits it.
    pub(super) fn admit(
        &self,
        def: usize,
        object: &mut Value,
        validation: FieldValidation,
    ) -> Result<Vec<String>, ApiStatus> {
        let d = &self.defs[def];
        if d.group.is_empty() && d.plural == "secrets" {
            fold_string_data(object)?;
        }
        let Some(schema) = &d.schema else {
            return Ok(Vec::new());
        };
        let mut warnings = Vec::new();
        if validation != FieldValidation::Strict {
            for field in prune_unknown(schema, object) {
                if validation == FieldValidation::Warn {
                    warnings.push(format!("unknown field \"{field}\""));
                }
            }
        }
        apply_defaults(schema, object);
        match self.validator.validate(object) {
            Ok(()) => Ok(warnings),
            Err(ValidationError::Invalid { errors, name, .. }) => {
                let unknown: Vec<_> = errors
                    .iter()
                    .filter(|e| e.kind == FieldErrorKind::Unknown)
                    .collect();
                if !unknown.is_empty() {
                    let list: Vec<String> = unknown.iter().map(|e| e.to_string()).collect();
                    return Err(ApiStatus::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        d.kind,
                        d.version,
                        d.kind,
                        list.join(", ")
                    )));
                }
                Err(ApiStatus::invalid(d, &name, &errors))
            }
            Err(other) => Err(ApiStatus::bad_request(other.to_string())),
        }
    }
}

/// How Go's JSON decoder names a value's type in its errors.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Folds a Secret's write-only `stringData` into `data` (base64; `stringData` wins on a shared
/// key) and drops it, as the API server does on every write.
fn fold_string_data(secret: &mut Value) -> Result<(), ApiStatus> {
    use base64::Engine;
    let Some(string_data) = secret.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return Ok(());
    };
    // kube-apiserver's decoding errors, word for word.
    let undecodable = |json_type: &str, go_type: &str| {
        ApiStatus::bad_request(format!(
            "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {json_type} into Go struct field Secret.stringData of type {go_type}"
        ))
    };
    let Value::Object(entries) = string_data else {
        return Err(undecodable(json_type(&string_data), "map[string]string"));
    };
    if !secret.get("data").is_some_and(Value::is_object) {
        secret["data"] = json!({});
    }
    for (key, value) in entries {
        let Value::String(text) = value else {
            return Err(undecodable(json_type(&value), "string"));
        };
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
    Ok(())
}
