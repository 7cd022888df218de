//! The crates follow the layers: each depends only on crates below it, the operator reaches
//! the test doubles (sandbox, simulator) only in its tests, and the simulator stands alone
//! (nothing of Kubernetes or the operator); the test kit is only a dev-dependency.

use std::collections::BTreeMap;
use std::process::Command;

/// Each workspace crate and its layer, from the bottom up.
const LAYERS: [(&str, u8); 8] = [
    ("simfleet-core", 0),
    ("simfleet-api", 1),
    ("simfleet-simulator", 1),
    ("simfleet-carrier", 2),
    ("simfleet-sandbox", 2),
    ("simfleet-testkit", 3),
    ("simfleet-operator", 3),
    ("simfleet", 4),
];

/// The workspace's packages, as `cargo metadata` reads them from the manifests.
fn packages() -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    metadata["packages"].as_array().unwrap().clone()
}

/// Each workspace crate's simfleet dependencies, with their kind (`normal`, `dev`).
fn workspace_dependencies() -> BTreeMap<String, Vec<(String, String)>> {
    packages()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| dep["name"].as_str().unwrap().starts_with("simfleet"))
                .map(|dep| {
                    let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                    (dep["name"].as_str().unwrap().to_owned(), kind)
                })
                .collect();
            (package["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn layer(name: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(crate_name, _)| *crate_name == name)
        .unwrap_or_else(|| panic!("{name} has no layer in tests/layers.rs"))
        .1
}

#[test]
fn each_crate_depends_only_on_crates_below_it() {
    let crates = workspace_dependencies();
    assert_eq!(crates.len(), LAYERS.len(), "{crates:?}");
    for (name, deps) in &crates {
        for (dep, kind) in deps {
            if kind == "dev" {
                continue;
            }
            assert!(
                layer(dep) < layer(name),
                "{name} (layer {}) depends on {dep} (layer {})",
                layer(name),
                layer(dep)
            );
        }
    }
}

#[test]
fn the_operator_uses_the_test_doubles_only_in_tests_and_the_simulator_stands_alone() {
    let crates = workspace_dependencies();
    for name in ["simfleet-api", "simfleet-carrier", "simfleet-operator"] {
        for (dep, kind) in &crates[name] {
            if dep == "simfleet-sandbox" || dep == "simfleet-simulator" {
                assert_eq!(kind, "dev", "{name} depends on {dep} outside its tests");
            }
        }
    }
    let simulator: Vec<&str> = crates["simfleet-simulator"]
        .iter()
        .filter(|(_, kind)| kind == "normal")
        .map(|(dep, _)| dep.as_str())
        .collect();
    assert_eq!(simulator, ["simfleet-core"]);
    // What the tests share is only ever a dev-dependency.
    for (name, deps) in &crates {
        for (dep, kind) in deps {
            if dep == "simfleet-testkit" {
                assert_eq!(
                    kind, "dev",
                    "{name} depends on the test kit outside its tests"
                );
            }
        }
    }
    // The binary's only way to the test doubles is the `dev` feature.
    let packages = packages();
    let root = packages.iter().find(|p| p["name"] == "simfleet").unwrap();
    for dep in root["dependencies"].as_array().unwrap() {
        let name = dep["name"].as_str().unwrap();
        if (name == "simfleet-sandbox" || name == "simfleet-simulator") && dep["kind"].is_null() {
            assert_eq!(
                dep["optional"], true,
                "{name} is optional (the `dev` feature)"
            );
        }
    }
    assert_eq!(
        root["features"]["dev"],
        serde_json::json!(["dep:simfleet-simulator", "dep:simfleet-sandbox"])
    );
}
