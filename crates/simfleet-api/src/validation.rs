//! Validation of simfleet objects against the generated CRDs, as the API server does it.
//!
//! The CRD is the single source of truth: the structural OpenAPI schema is checked with
//! `jsonschema` (translated the way the API server reads it), its `x-kubernetes-validations`
//! rules are evaluated with `kube-cel`, and the object is then parsed into the typed structs.
//! Errors are worded like the API server's (`spec.state: Unsupported value: ...`) so that a
//! user sees the same message offline as from `kubectl apply`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::schema_engine::{
    DNS_LABEL, DNS_SUBDOMAIN, FieldError, FieldErrorKind, describe_value, list_semantics_errors,
    metadata_errors, schema_errors, to_json_schema, value_at_path,
};
use super::{API_VERSION, CarrierAccount, DataQuota, SimGroup, crds};

/// Why an object was refused: every field problem found, in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `apiVersion`/`kind` do not name a simfleet kind.
    #[error(
        "{api_version}/{kind} is not a simfleet kind: expected apiVersion {API_VERSION} and kind CarrierAccount, SimGroup or DataQuota"
    )]
    NotSimfleet { api_version: String, kind: String },
    /// The object breaks its CRD's schema or rules.
    #[error("{kind} {name:?} is invalid: {}", join_errors(errors))]
    Invalid {
        kind: String,
        name: String,
        errors: Vec<FieldError>,
    },
}

fn join_errors(errors: &[FieldError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("[{}]", list.join(", "))
}

impl ValidationError {
    /// The field problems (empty for a kind that is not simfleet's).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ValidationError::Invalid { errors, .. } => errors,
            ValidationError::NotSimfleet { .. } => &[],
        }
    }
}

/// A validated simfleet object, parsed into its typed struct.
#[derive(Clone, Debug)]
pub enum SimfleetObject {
    /// A `CarrierAccount`.
    CarrierAccount(Box<CarrierAccount>),
    /// A `SimGroup`.
    SimGroup(Box<SimGroup>),
    /// A `DataQuota`.
    DataQuota(Box<DataQuota>),
}

/// The compiled schema and rules of one kind.
struct KindValidator {
    /// `group/version` of the served version the object must name.
    api_version: String,
    schema: jsonschema::Validator,
    cel: kube_cel::CompiledSchema,
    /// Whether the schema has CEL rules (`x-kubernetes-validations`).
    has_rules: bool,
    /// The structural schema as the CRD holds it (for list semantics).
    structural: Value,
}

/// kube-apiserver's last cause when a schema violation kept the CEL rules from running.
const CEL_SKIPPED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Whether `error` keeps the CEL rules from running (kube-apiserver's `hasBlockingErr` in the
/// custom resource strategy: type, required, enum, maxLength and maxItems violations).
fn blocks_cel(error: &FieldError) -> bool {
    matches!(
        error.kind,
        FieldErrorKind::TypeInvalid { .. }
            | FieldErrorKind::Required(_)
            | FieldErrorKind::NotSupported { .. }
            | FieldErrorKind::TooLong { .. }
            | FieldErrorKind::TooMany { .. }
    )
}

/// Validates objects against CRDs: simfleet's (`new`), or any given (`from_crds`, as the
/// sandbox does). Build once, use often.
pub struct ManifestValidator {
    kinds: BTreeMap<String, KindValidator>,
    cel: kube_cel::Validator,
}

impl fmt::Debug for ManifestValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestValidator")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The CRD's schema could not be compiled (a bug in this build, not in user input).
#[derive(Debug, thiserror::Error)]
#[error("the {kind} CRD schema does not compile: {message}")]
pub struct SchemaCompileError {
    kind: String,
    message: String,
}

impl ManifestValidator {
    /// Compiles the schemas and CEL rules of every simfleet CRD.
    pub fn new() -> Result<Self, SchemaCompileError> {
        Self::from_crds(&crds())
    }

    /// Compiles the schemas and CEL rules of the given CRDs (their first served version).
    pub fn from_crds(crds: &[CustomResourceDefinition]) -> Result<Self, SchemaCompileError> {
        let mut kinds = BTreeMap::new();
        for crd in crds {
            let kind = crd.spec.names.kind.clone();
            let compile_error = |message: String| SchemaCompileError {
                kind: kind.clone(),
                message,
            };
            let served = crd.spec.versions.iter().find(|v| v.served);
            let api_version = format!(
                "{}/{}",
                crd.spec.group,
                served.map_or("", |v| v.name.as_str())
            );
            let structural = served
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .ok_or_else(|| compile_error("no served version has a schema".into()))
                .and_then(|s| serde_json::to_value(s).map_err(|e| compile_error(e.to_string())))?;
            let schema = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .should_validate_formats(true)
                .build(&to_json_schema(&structural, true))
                .map_err(|e| compile_error(e.to_string()))?;
            let cel = kube_cel::compile_schema(&structural);
            let compile_failures = cel.compilation_errors();
            if !compile_failures.is_empty() {
                return Err(compile_error(format!("{compile_failures:?}")));
            }
            kinds.insert(
                kind,
                KindValidator {
                    api_version,
                    has_rules: structural.to_string().contains("x-kubernetes-validations"),
                    schema,
                    cel,
                    structural,
                },
            );
        }
        Ok(Self {
            kinds,
            cel: kube_cel::Validator::new(),
        })
    }

    /// True when `apiVersion`/`kind` name a kind this validator knows.
    pub fn knows(&self, object: &Value) -> bool {
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        object
            .get("kind")
            .and_then(Value::as_str)
            .and_then(|k| self.kinds.get(k))
            .is_some_and(|v| Some(v.api_version.as_str()) == api_version)
    }

    /// Checks an object against its CRD's schema and rules, reporting every problem found.
    pub fn validate(&self, object: &Value) -> Result<(), ValidationError> {
        let api_version = str_at(object, "apiVersion");
        let kind = str_at(object, "kind");
        let validator = match self.kinds.get(kind) {
            Some(v) if api_version == v.api_version => v,
            _ => {
                return Err(ValidationError::NotSimfleet {
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                });
            }
        };
        let mut errors = metadata_errors(object);
        errors.extend(schema_errors(&validator.schema, object, pattern_hint));
        errors.extend(list_semantics_errors(
            &validator.structural,
            object,
            String::new(),
        ));
        // CEL rules assume a well-shaped object: as kube-apiserver does, they do not run after a
        // type, required, enum or size violation, and a last cause says they were skipped.
        if errors.iter().any(blocks_cel) {
            if validator.has_rules {
                errors.push(FieldError {
                    kind: FieldErrorKind::Invalid {
                        value: "null".into(),
                        detail: CEL_SKIPPED.into(),
                    },
                    field: "<nil>".into(),
                });
            }
        } else if let Err(failures) = self.cel.validate_compiled(&validator.cel, object, None) {
            errors.extend(failures.iter().map(|failure| FieldError {
                kind: FieldErrorKind::Invalid {
                    value: describe_value(value_at_path(object, &failure.field_path)),
                    detail: failure.message.clone(),
                },
                field: failure.field_path.clone(),
            }));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationError::Invalid {
                kind: kind.to_owned(),
                name: str_at(object, "metadata/name").to_owned(),
                errors,
            })
        }
    }

    /// Validates an object and parses it into its typed struct.
    pub fn parse(&self, object: &Value) -> Result<SimfleetObject, ValidationError> {
        self.validate(object)?;
        let kind = str_at(object, "kind");
        let typed = match kind {
            "CarrierAccount" => typed(object).map(SimfleetObject::CarrierAccount),
            "SimGroup" => typed(object).map(SimfleetObject::SimGroup),
            _ => typed(object).map(SimfleetObject::DataQuota),
        };
        typed.map_err(|error| ValidationError::Invalid {
            kind: kind.to_owned(),
            name: str_at(object, "metadata/name").to_owned(),
            errors: vec![error],
        })
    }
}

/// Deserialises into a typed struct, naming the field when that fails.
fn typed<T: DeserializeOwned>(object: &Value) -> Result<Box<T>, FieldError> {
    serde_path_to_error::deserialize(object)
        .map(Box::new)
        .map_err(|err| {
            let field = err.path().to_string();
            FieldError {
                kind: FieldErrorKind::Invalid {
                    value: describe_value(value_at_path(object, &field)),
                    detail: err.into_inner().to_string(),
                },
                field,
            }
        })
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(&format!("/{pointer}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// What a pattern means, in words that tell the user what to write instead.
fn pattern_hint(pattern: &str) -> Option<&'static str> {
    match pattern {
        p if p == super::ICCID_PATTERN => {
            Some("an ICCID is 19 to 22 digits starting with 89, written as a quoted string")
        }
        p if p == super::TAG_PATTERN => Some("a tag name cannot contain a comma"),
        p if p == super::BASE_URL_PATTERN => Some(
            "write an http:// or https:// URL without credentials (user:secret@), query or fragment; credentials go in the Secret",
        ),
        p if p == super::duration::DURATION_PATTERN => Some(
            "write digits followed by a unit d, h, m or s, each unit at most once and in that order, e.g. 30s, 15m, 1h30m, 30d (at most 9999d)",
        ),
        p if p == DNS_SUBDOMAIN => Some(
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ),
        p if p == DNS_LABEL => Some(
            "use lowercase letters, digits and '-', starting and ending with a letter or digit",
        ),
        _ => None,
    }
}
