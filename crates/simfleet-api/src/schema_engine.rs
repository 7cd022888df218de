//! A structural-schema engine, as kube-apiserver reads a CRD's OpenAPI v3 schema: the schema
//! translated for `jsonschema` (nullable, `x-kubernetes-*`), unknown fields pruned, defaults
//! applied, list and map semantics checked, Kubernetes metadata validated, and every problem
//! reported as a field error worded like the API server's. It knows nothing of simfleet.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value, json};

/// One problem with one field of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.selector.iccids[0]`.
    pub field: String,
    /// What kind of problem it is.
    pub kind: FieldErrorKind,
}

/// The kinds of field problems, after the API server's `field.ErrorType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing; the detail says what to set, when there is more to say.
    Required(String),
    /// The value is not acceptable: the offending value (as JSON) and why.
    Invalid { value: String, detail: String },
    /// The value has the wrong JSON type (shown as `Invalid value`, as the API server does; it
    /// stops the CEL rules from running).
    TypeInvalid { value: String, detail: String },
    /// The value is not one of the allowed values.
    NotSupported {
        value: String,
        supported: Vec<String>,
    },
    /// The value appears twice in a list that must hold distinct values.
    Duplicate { value: String },
    /// The field is not part of the schema (refused, like `kubectl`'s strict field validation).
    Unknown,
    /// A list has more items than allowed.
    TooMany { actual: usize, max: u64 },
    /// A string is longer than allowed.
    TooLong { max: u64 },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.kind {
            FieldErrorKind::Required(detail) if detail.is_empty() => {
                write!(f, "{field}: Required value")
            }
            FieldErrorKind::Required(detail) => write!(f, "{field}: Required value: {detail}"),
            FieldErrorKind::Invalid { value, detail }
            | FieldErrorKind::TypeInvalid { value, detail } => {
                write!(f, "{field}: Invalid value: {value}: {detail}")
            }
            FieldErrorKind::NotSupported { value, supported } => write!(
                f,
                "{field}: Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
            FieldErrorKind::Duplicate { value } => write!(f, "{field}: Duplicate value: {value}"),
            FieldErrorKind::Unknown => write!(f, "unknown field \"{field}\""),
            FieldErrorKind::TooMany { actual, max } => write!(
                f,
                "{field}: Too many: {actual}: must have at most {max} items"
            ),
            FieldErrorKind::TooLong { max } => {
                write!(f, "{field}: Too long: may not be more than {max} bytes")
            }
        }
    }
}

/// Removes fields a structural schema does not declare, as the API server prunes them, and
/// returns their paths. The root's `apiVersion`, `kind` and `metadata` are always kept.
pub fn prune_unknown(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_at(schema, object, String::new(), true, &mut pruned);
    pruned
}

fn prune_at(schema: &Value, value: &mut Value, path: String, root: bool, pruned: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            let unknown: Vec<String> = fields
                .keys()
                .filter(|k| {
                    let always_kept =
                        root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                    !(props.contains_key(*k) || always_kept)
                })
                .cloned()
                .collect();
            for key in unknown {
                fields.remove(&key);
                pruned.push(join_field(&path, &key));
            }
            for (key, child) in fields.iter_mut() {
                if let Some(child_schema) = props.get(key) {
                    prune_at(child_schema, child, join_field(&path, key), false, pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(item_schema, item, format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Fills in the schema's `default`s for absent fields of present objects, as the API server
/// defaults on admission.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (key, child_schema) in props {
                if !fields.contains_key(key)
                    && let Some(default) = child_schema.get("default")
                {
                    fields.insert(key.clone(), default.clone());
                }
                if let Some(child) = fields.get_mut(key) {
                    apply_defaults(child_schema, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Translates a CRD's structural schema into JSON Schema with the API server's meaning:
/// `nullable` allows null, and an object with declared properties refuses undeclared ones
/// (as `kubectl apply`'s strict field validation does) unless it preserves unknown fields.
pub fn to_json_schema(structural: &Value, root: bool) -> Value {
    let Value::Object(node) = structural else {
        return structural.clone();
    };
    let mut out = Map::new();
    for (key, value) in node {
        let translated = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(name, schema)| (name.clone(), to_json_schema(schema, false)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" if value.is_object() => to_json_schema(value, false),
            "nullable" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), translated);
    }
    if node.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(ty)) = node.get("type") {
            out.insert("type".into(), json!([ty, "null"]));
        }
        if let Some(Value::Array(options)) = out.get_mut("enum") {
            options.push(Value::Null);
        }
    }
    if root {
        // Every object carries these; the CRD schema leaves them to the API server.
        let props = out
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("properties is an object");
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert("metadata".into(), metadata_schema());
    }
    let preserves_unknown = node.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !preserves_unknown
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// A DNS-1123 subdomain, the rule for object names.
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A DNS-1123 label, the rule for namespace names.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The parts of ObjectMeta the API server validates that a manifest author can get wrong.
pub fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "generateName": {"type": "string", "maxLength": 253},
            "namespace": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": true,
    })
}

/// `metadata.name` (or `generateName`) is required, as on the API server.
pub fn metadata_errors(object: &Value) -> Vec<FieldError> {
    let has = |key: &str| {
        object
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if has("name") || has("generateName") {
        Vec::new()
    } else {
        vec![FieldError {
            field: "metadata.name".into(),
            kind: FieldErrorKind::Required("name or generateName is required".into()),
        }]
    }
}

/// Runs the JSON Schema and words each failure like the API server.
/// `hint` says in words what a refused pattern means, where the caller knows.
pub fn schema_errors(
    schema: &jsonschema::Validator,
    object: &Value,
    hint: fn(&str) -> Option<&'static str>,
) -> Vec<FieldError> {
    use jsonschema::error::ValidationErrorKind as K;
    let mut errors = Vec::new();
    for error in schema.iter_errors(object) {
        let pointer = error.instance_path().as_str().to_owned();
        let field = pointer_to_field(object, &pointer);
        let value = describe_value(Some(error.instance()));
        let invalid = |detail: String| FieldErrorKind::Invalid {
            value: value.clone(),
            detail,
        };
        let kind = match error.kind() {
            K::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                errors.push(FieldError {
                    field: join_field(&field, name),
                    kind: FieldErrorKind::Required(String::new()),
                });
                continue;
            }
            K::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    errors.push(FieldError {
                        field: join_field(&field, name),
                        kind: FieldErrorKind::Unknown,
                    });
                }
                continue;
            }
            K::Enum { options } => FieldErrorKind::NotSupported {
                value,
                supported: options
                    .as_array()
                    .map(|o| {
                        o.iter()
                            .filter(|v| !v.is_null())
                            .map(Value::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            K::Type { kind } => {
                let expected = type_name(kind);
                let hint = if expected == "string" && error.instance().is_number() {
                    " (quote the value in YAML)"
                } else {
                    ""
                };
                FieldErrorKind::TypeInvalid {
                    value: value.clone(),
                    detail: format!("must be of type {expected}{hint}"),
                }
            }
            K::Pattern { pattern } => match hint(pattern) {
                Some(hint) => invalid(format!("should match '{pattern}' ({hint})")),
                None => invalid(format!("should match '{pattern}'")),
            },
            K::Minimum { limit } => invalid(format!(
                "should be greater than or equal to {}",
                number(limit)
            )),
            K::Maximum { limit } => {
                invalid(format!("should be less than or equal to {}", number(limit)))
            }
            K::ExclusiveMinimum { limit } => {
                invalid(format!("should be greater than {}", number(limit)))
            }
            K::ExclusiveMaximum { limit } => {
                invalid(format!("should be less than {}", number(limit)))
            }
            K::MinItems { limit } => invalid(format!("should have at least {limit} items")),
            K::MaxItems { limit } => FieldErrorKind::TooMany {
                actual: error.instance().as_array().map_or(0, Vec::len),
                max: *limit,
            },
            K::MinLength { limit } => invalid(format!("should be at least {limit} chars long")),
            K::MaxLength { limit } => FieldErrorKind::TooLong { max: *limit },
            K::Format { format } if format == "date-time" => {
                invalid("must be an RFC 3339 date-time such as 2027-01-31T23:59:59Z".into())
            }
            K::Format { format } => invalid(format!("must be of format {format}")),
            _ => invalid(error.to_string()),
        };
        errors.push(FieldError { field, kind });
    }
    errors
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(ty) => ty.to_string(),
        // Only nullable types have two; the non-null one is what the user should write.
        jsonschema::error::TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .filter(|t| t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// Writes a schema bound the way people write it: `10000`, not `10000.0`.
fn number(limit: &Value) -> String {
    match limit.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => limit.to_string(),
    }
}

/// Checks the list semantics a JSON Schema cannot express: `x-kubernetes-list-type: set`
/// (distinct items) and `map` (distinct keys).
pub fn list_semantics_errors(schema: &Value, value: &Value, path: String) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match value {
        Value::Object(fields) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, child) in fields {
                    if let Some(child_schema) = props.get(name) {
                        errors.extend(list_semantics_errors(
                            child_schema,
                            child,
                            join_field(&path, name),
                        ));
                    }
                }
            }
        }
        Value::Array(items) => {
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let identity = match list_type {
                    Some("set") => Some(item.to_string()),
                    Some("map") => Some(
                        keys.iter()
                            .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join("\u{0}"),
                    ),
                    _ => None,
                };
                if let Some(identity) = identity
                    && !seen.insert(identity)
                {
                    let shown = match list_type {
                        Some("map") => describe_value(Some(&json!(
                            keys.iter()
                                .map(|k| (
                                    k.to_string(),
                                    item.get(k).cloned().unwrap_or(Value::Null)
                                ))
                                .collect::<Map<_, _>>()
                        ))),
                        _ => item.to_string(),
                    };
                    errors.push(FieldError {
                        field: item_path.clone(),
                        kind: FieldErrorKind::Duplicate { value: shown },
                    });
                }
                if let Some(item_schema) = schema.get("items") {
                    errors.extend(list_semantics_errors(item_schema, item, item_path));
                }
            }
        }
        _ => {}
    }
    errors
}

/// `a.b` from `a` and `b`; `b` alone at the root.
fn join_field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Turns a JSON pointer into the API server's field path: `/spec/iccids/0` -> `spec.iccids[0]`.
pub fn pointer_to_field(object: &Value, pointer: &str) -> String {
    let mut field = String::new();
    let mut current = Some(object);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match current {
            Some(Value::Array(items)) => {
                field.push_str(&format!("[{segment}]"));
                current = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                field = join_field(&field, &segment);
                current = other.and_then(|v| v.get(&segment));
            }
        }
    }
    field
}

/// Finds the value at an API-server field path such as `spec.selector.iccids[0]`.
pub fn value_at_path<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    let mut current = object;
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            current = current.get(index.parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

/// The API server shows scalars as JSON and composite values by their type.
pub fn describe_value(value: Option<&Value>) -> String {
    match value {
        Some(Value::Object(_)) => "\"object\"".into(),
        Some(Value::Array(_)) => "\"array\"".into(),
        Some(Value::Null) | None => "null".into(),
        Some(scalar) => scalar.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_becomes_field_path_with_indexes() {
        let object = json!({"spec": {"selector": {"iccids": ["a", "b"]}}});
        assert_eq!(
            pointer_to_field(&object, "/spec/selector/iccids/1"),
            "spec.selector.iccids[1]"
        );
        assert_eq!(pointer_to_field(&object, ""), "");
        assert_eq!(
            value_at_path(&object, "spec.selector.iccids[1]"),
            Some(&json!("b"))
        );
    }

    #[test]
    fn nullable_allows_null_and_objects_refuse_undeclared_fields() {
        let schema = to_json_schema(
            &json!({"type": "object", "properties": {
                "a": {"type": "string", "nullable": true},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"x": {"type": "string"}}}
            }}),
            false,
        );
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&schema)
            .unwrap();
        assert!(validator.is_valid(&json!({"a": null})));
        assert!(validator.is_valid(&json!({"free": {"y": 1}})));
        assert!(!validator.is_valid(&json!({"b": 1})));
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_defaults_fill_absent_ones() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "a": {"type": "string", "default": "x"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}
            }}
        }});
        let mut object = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"},
            "spec": {"list": [{"k": "1", "extra": 2}], "typo": 1}, "other": true});
        let pruned = prune_unknown(&schema, &mut object);
        assert_eq!(pruned, ["other", "spec.typo", "spec.list[0].extra"]);
        apply_defaults(&schema, &mut object);
        assert_eq!(object["spec"], json!({"a": "x", "list": [{"k": "1"}]}));
        assert_eq!(object["metadata"], json!({"name": "n"}));
    }

    #[test]
    fn sets_refuse_duplicates_and_maps_refuse_duplicate_keys() {
        let schema = json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "conds": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["type"], "items": {"type": "object"}}
        }});
        let object =
            json!({"tags": ["a", "b", "a"], "conds": [{"type": "Ready"}, {"type": "Ready"}]});
        let errors = list_semantics_errors(&schema, &object, String::new());
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["conds[1]", "tags[2]"]);
        assert_eq!(
            errors[0].to_string(),
            "conds[1]: Duplicate value: \"object\""
        );
        assert_eq!(errors[1].to_string(), "tags[2]: Duplicate value: \"a\"");
    }
}
