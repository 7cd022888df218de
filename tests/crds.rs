//! The CRDs in `crds/` are exactly what this build generates, and they carry what users rely on.

use std::path::Path;

use serde_json::Value;
use simfleet::api;

mod common;
use common::first_version_schema;

/// Asserts that `dir` (relative to the repository) holds exactly the generated CRD files.
fn assert_holds_generated_crds(relative: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let mut expected_files = Vec::new();
    for crd in api::crds() {
        let name = api::crd_file_name(&crd);
        let generated = format!("---\n{}", api::crd_yaml(&crd).unwrap());
        let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{relative}/{name} differs from the CRD this code generates; regenerate with:\n    cargo run -- crd --out-dir {relative}"
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "{relative}/ holds files this code does not generate; regenerate with: cargo run -- crd --out-dir {relative}"
    );
}

#[test]
fn crds_directory_matches_the_generated_crds() {
    assert_holds_generated_crds("crds");
}

#[test]
fn the_charts_crds_match_the_generated_crds() {
    assert_holds_generated_crds("charts/simfleet/crds");
}

#[test]
fn the_stream_printed_by_simfleet_crd_is_the_files_concatenated() {
    let stream = api::crds_yaml().unwrap();
    let files: String = api::crds()
        .iter()
        .map(|c| format!("---\n{}", api::crd_yaml(c).unwrap()))
        .collect();
    assert_eq!(stream, files);
    let documents: Vec<Value> = serde_saphyr::from_multiple(&stream).unwrap();
    assert_eq!(documents.len(), 3);
}

/// Walks a schema and collects the paths of properties without a description.
fn undescribed(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let child_path = format!("{path}.{name}");
            let has_description = child
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !has_description {
                out.push(child_path.clone());
            }
            undescribed(child, &child_path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undescribed(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    for crd in api::crds() {
        let schema = first_version_schema(&crd);
        let mut missing = Vec::new();
        undescribed(&schema, &crd.spec.names.kind, &mut missing);
        assert!(
            missing.is_empty(),
            "fields without a description: {missing:#?}"
        );
        assert!(schema["description"].as_str().is_some_and(|d| d.len() > 40));
    }
}

#[test]
fn crds_have_names_columns_category_and_status_subresource() {
    let expected = [
        (
            "CarrierAccount",
            "carrier",
            vec!["Provider", "Ready", "Age"],
        ),
        (
            "SimGroup",
            "sg",
            vec!["State", "Selected", "In-State", "Pending", "Ready", "Age"],
        ),
        (
            "DataQuota",
            "dq",
            vec!["Volume", "Expiry", "Active", "Exhausted", "Ready", "Age"],
        ),
    ];
    let crds = api::crds();
    for (crd, (kind, short, columns)) in crds.iter().zip(expected) {
        assert_eq!(crd.spec.group, "simfleet.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["simfleet".to_owned()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{kind}: status subresource"
        );
        let shown: Vec<&str> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(shown, columns, "{kind}: printer columns");
    }
}

#[test]
fn conditions_are_a_map_keyed_by_type_with_the_standard_shape() {
    for crd in api::crds() {
        let schema = first_version_schema(&crd);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        let mut fields: Vec<&String> = conditions["items"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "lastTransitionTime",
                "message",
                "observedGeneration",
                "reason",
                "status",
                "type"
            ]
        );
    }
}

/// `docs/reference/` is exactly the reference this build renders from the CRDs: a field added,
/// a bound changed or a description edited shows there, or this fails.
#[test]
fn the_api_reference_matches_the_generated_one() {
    use simfleet::api::reference;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference");
    let expected = reference::reference_pages(&api::crds());
    for (name, text) in &expected {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            &on_disk == text,
            "docs/reference/{name} differs from what this code renders; regenerate with:\n    {}",
            reference::REGENERATE
        );
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    present.sort();
    let mut names: Vec<String> = expected.into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(present, names, "docs/reference/ holds only generated pages");
}
