//! The custom resources simfleet serves (group `simfleet.io`, version `v1alpha1`), and the
//! carrier-neutral model (`model`) that the carrier clients and the planner speak.
//!
//! One file per kind; this module holds what they share: references, the duration type,
//! the CRD list and its YAML rendering.

mod carrier_account;
pub mod conditions;
mod data_quota;
pub use simfleet_core::duration;
pub mod manifest;
pub mod model;
pub mod reference;
pub mod schema_engine;
mod sim_group;
pub mod validation;

pub use carrier_account::*;
pub use data_quota::*;
pub use duration::FriendlyDuration;
pub use sim_group::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// `apiVersion` written in manifests.
pub const API_VERSION: &str = "simfleet.io/v1alpha1";
/// Schema pattern of an ICCID: 19 to 22 digits starting with 89.
pub const ICCID_PATTERN: &str = "^89[0-9]{17,20}$";
/// Schema pattern of a carrier tag name: emnify stores tags comma-separated, so no commas.
pub const TAG_PATTERN: &str = "^[^,]+$";
/// Schema pattern of a carrier API base URL: no query, no fragment, and no user information
/// (`https://user:secret@host`): credentials belong in the Secret, never in the spec, where
/// `kubectl get` and the operator's messages would show them.
pub const BASE_URL_PATTERN: &str = r"^https?://[^\s/?#@]+([/][^\s?#]*)?$";

/// Annotation that approves a guarded SimGroup change for one generation: only the generation
/// held for approval when the value is first seen (an approval given ahead approves nothing).
pub const APPROVED_GENERATION_ANNOTATION: &str = "simfleet.io/approved-generation";

/// Annotation that approves a guarded SimGroup change by its content: the digest that the held
/// status (`status.heldChange.digest`) and `simfleet plan` print.
pub const APPROVED_CHANGE_ANNOTATION: &str = "simfleet.io/approved-change";

/// Annotation that pauses one resource: with the value `"true"`, the operator makes no carrier
/// request for it (not even a read) and leaves its status as it was, until it is removed or set
/// to `"false"`. Any other value is treated as paused and reported, so a typo never resumes.
pub const PAUSED_ANNOTATION: &str = "simfleet.io/paused";

/// Whether the operator acts on a resource or only observes it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Management {
    /// Observe, plan and act: submit the changes the plan needs.
    #[default]
    Manage,
    /// Observe and plan only: status shows what would change, and nothing is ever submitted or
    /// set at the carrier (adopting an existing fleet, watching before trusting).
    Observe,
}

/// Reference to another object in the same namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct LocalObjectRef {
    /// Name of the referenced object, in the same namespace as the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The CRDs of every simfleet kind, in the order they should be applied.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![CarrierAccount::crd(), SimGroup::crd(), DataQuota::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                *schema = bound_integers(schema);
            }
        }
    }
    crds
}

/// The largest integer a JSON number holds exactly (2^53): the bound of 64-bit fields, so every
/// accepted value reads back the same in any client. Counts never come near it; carrier ids
/// can (Soracom's SIM ids have 19 digits), so status keeps them as strings.
const JSON_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The range of each integer format the Rust types use. The API server ignores `format`, so
/// without these bounds it would accept a number the operator cannot read (and a watch that
/// cannot read an object stalls).
fn integer_range(format: &str) -> Option<(f64, f64)> {
    Some(match format {
        "uint8" => (0.0, f64::from(u8::MAX)),
        "uint16" => (0.0, f64::from(u16::MAX)),
        "uint32" => (0.0, f64::from(u32::MAX)),
        "uint64" => (0.0, JSON_SAFE_INTEGER),
        "int32" => (f64::from(i32::MIN), f64::from(i32::MAX)),
        "int64" => (-JSON_SAFE_INTEGER, JSON_SAFE_INTEGER),
        _ => return None,
    })
}

/// The schema with every integer's `minimum` and `maximum` inside its format's range, and
/// every description unwrapped.
fn bound_integers(
    schema: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps {
    fn walk(node: &mut serde_json::Value) {
        match node {
            serde_json::Value::Object(fields) => {
                let range = fields
                    .get("format")
                    .and_then(serde_json::Value::as_str)
                    .filter(|_| {
                        fields.get("type").and_then(serde_json::Value::as_str) == Some("integer")
                    })
                    .and_then(integer_range);
                if let Some((low, high)) = range {
                    let given = |key: &str| fields.get(key).and_then(serde_json::Value::as_f64);
                    let minimum = given("minimum").map_or(low, |m| m.max(low));
                    let maximum = given("maximum").map_or(high, |m| m.min(high));
                    fields.insert("minimum".into(), minimum.into());
                    fields.insert("maximum".into(), maximum.into());
                    // kube-apiserver knows int32 and int64 only (it warns "unrecognized format"
                    // on uint8 ... uint64); the bounds above carry the unsigned range.
                    let known = if high <= f64::from(i32::MAX) && low >= f64::from(i32::MIN) {
                        "int32"
                    } else {
                        "int64"
                    };
                    fields.insert("format".into(), known.into());
                }
                if let Some(serde_json::Value::String(text)) = fields.get_mut("description") {
                    *text = unwrapped(text);
                }
                fields.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(schema).expect("a schema serialises");
    walk(&mut value);
    serde_json::from_value(value).expect("bounds keep the schema valid")
}

/// A description as `kubectl explain` should show it: the doc comment's wrapped lines joined
/// (kubectl re-wraps them itself, and a line break of the source in mid-sentence reads as a
/// break in the text), paragraphs and list items kept on lines of their own.
fn unwrapped(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            let mut out = String::new();
            for line in paragraph.lines().map(str::trim) {
                if out.is_empty() {
                    out.push_str(line);
                } else if line.starts_with("- ") || line.starts_with("* ") {
                    out.push('\n');
                    out.push_str(line);
                } else {
                    out.push(' ');
                    out.push_str(line);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Renders one CRD as a YAML document (what `crds/` holds, one file per kind).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(crd)
}

/// Renders every CRD as one multi-document YAML stream (what `simfleet crd` prints).
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

/// File name, under `crds/`, of the rendered CRD (e.g. `simgroups.simfleet.io.yaml`).
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!(
        "{}.yaml",
        crd.metadata.name.as_deref().unwrap_or("unnamed-crd")
    )
}

#[cfg(test)]
mod description_tests {
    #[test]
    fn a_description_reads_as_sentences_for_kubectl_explain() {
        assert_eq!(
            super::unwrapped(
                "SIMs paused by the carrier's system: `Report` leaves them\npaused.\n\nA list:\n- one\n- two"
            ),
            "SIMs paused by the carrier's system: `Report` leaves them paused.\n\nA list:\n- one\n- two"
        );
        let crds = super::crds_yaml().unwrap();
        assert!(crds.contains("`Report` leaves them paused and reports them"));
    }
}
