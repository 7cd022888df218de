//! Every example is accepted and every invalid fixture is refused with its field named, by the
//! same schema + CEL validation the API server applies to the generated CRDs.

use std::path::{Path, PathBuf};

use simfleet_api::manifest::{self, Document};
use simfleet_api::validation::{ManifestValidator, SimfleetObject, ValidationError};

/// A file of the repository (the examples and the invalid fixtures live at its root).
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn validator() -> ManifestValidator {
    ManifestValidator::new().expect("the generated CRDs compile")
}

#[test]
fn every_example_validates_and_parses_into_its_typed_struct() {
    let validator = validator();
    let documents = manifest::read_path(&repo("examples")).unwrap();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for doc in &documents {
        let kind = doc.value["kind"].as_str().unwrap().to_owned();
        *kinds.entry(kind.clone()).or_default() += 1;
        if kind == "Secret" {
            assert_eq!(doc.value["apiVersion"], "v1", "{}", doc.location());
            continue;
        }
        match validator.parse(&doc.value) {
            Ok(SimfleetObject::CarrierAccount(a)) => assert_eq!(kind, "CarrierAccount", "{a:?}"),
            Ok(SimfleetObject::SimGroup(g)) => assert_eq!(kind, "SimGroup", "{g:?}"),
            Ok(SimfleetObject::DataQuota(q)) => assert_eq!(kind, "DataQuota", "{q:?}"),
            Err(err) => panic!("{} is refused: {err}", doc.location()),
        }
    }
    // The set the README promises: an account per provider, four SimGroups (one on Soracom),
    // three DataQuotas.
    assert_eq!(kinds.get("Secret"), Some(&4));
    assert_eq!(kinds.get("CarrierAccount"), Some(&4));
    assert_eq!(kinds.get("SimGroup"), Some(&4));
    assert_eq!(kinds.get("DataQuota"), Some(&3));
}

#[test]
fn the_kustomization_lists_every_example_file() {
    let text = std::fs::read_to_string(repo("examples/kustomization.yaml")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    for file in &files {
        assert!(
            text.contains(&format!("- {file}")),
            "examples/kustomization.yaml does not list {file}"
        );
    }
    // Following the kustomization reads the same documents as reading the files one by one.
    let via_kustomization = manifest::read_path(&repo("examples")).unwrap().len();
    let one_by_one: usize = files
        .iter()
        .map(|f| {
            manifest::read_path(&repo("examples").join(f))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(via_kustomization, one_by_one);
}

#[test]
fn examples_carry_the_documented_features() {
    let validator = validator();
    let parsed: Vec<SimfleetObject> = manifest::read_path(&repo("examples"))
        .unwrap()
        .iter()
        .filter(|d| validator.knows(&d.value))
        .map(|d| validator.parse(&d.value).unwrap())
        .collect();
    let groups: Vec<_> = parsed
        .iter()
        .filter_map(|o| match o {
            SimfleetObject::SimGroup(g) => Some(&g.spec),
            _ => None,
        })
        .collect();
    let quotas: Vec<_> = parsed
        .iter()
        .filter_map(|o| match o {
            SimfleetObject::DataQuota(q) => Some(&q.spec),
            _ => None,
        })
        .collect();
    assert!(
        groups.iter().any(|g| g.selector.iccids.is_some()),
        "a group by ICCID"
    );
    assert!(
        groups.iter().any(|g| g.selector.tags.is_some()),
        "a group by tag"
    );
    let rollout = groups
        .iter()
        .find_map(|g| g.rollout.as_ref())
        .expect("a rollout");
    assert_eq!(
        rollout.interval.as_ref().unwrap().as_duration().as_secs(),
        60
    );
    assert!(
        groups.iter().any(|g| g.guard.is_some()),
        "an approval guard"
    );
    assert!(
        quotas.iter().any(|q| q.expiry.at.is_some()),
        "an absolute expiry"
    );
    assert!(
        quotas.iter().any(|q| q.expiry.after.is_some()),
        "a relative expiry"
    );
    assert!(
        quotas
            .iter()
            .any(|q| q.mode == simfleet_api::QuotaMode::TopUp),
        "a top-up"
    );
}

/// A fixture and what its header says the refusal must name.
struct Fixture {
    path: PathBuf,
    field: String,
    message: String,
    document: Document,
}

fn invalid_fixtures() -> Vec<Fixture> {
    let dir = repo("tests/fixtures/invalid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let header = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                    .unwrap_or_else(|| panic!("{} lacks '# {key}:'", path.display()))
                    .to_owned()
            };
            let mut docs = manifest::parse_documents(&path, &text).unwrap();
            assert_eq!(
                docs.len(),
                1,
                "{}: one document per fixture",
                path.display()
            );
            Fixture {
                field: header("expect-field"),
                message: header("expect-message"),
                document: docs.remove(0),
                path,
            }
        })
        .collect()
}

#[test]
fn every_invalid_fixture_is_refused_with_its_field_named() {
    let validator = validator();
    let fixtures = invalid_fixtures();
    assert!(
        fixtures.len() >= 15,
        "only {} invalid fixtures",
        fixtures.len()
    );
    for fixture in fixtures {
        let name = fixture.path.file_name().unwrap().to_string_lossy();
        let err = match validator.parse(&fixture.document.value) {
            Ok(_) => panic!("{name} was accepted"),
            Err(err) => err,
        };
        let ValidationError::Invalid { errors, .. } = &err else {
            panic!("{name}: {err}");
        };
        let named = errors
            .iter()
            .find(|e| e.field == fixture.field)
            .unwrap_or_else(|| panic!("{name}: no error names {}: {err}", fixture.field));
        let text = named.to_string();
        assert!(
            text.contains(&fixture.field) && text.contains(&fixture.message),
            "{name}: expected {:?} naming {:?}, got {text:?}",
            fixture.message,
            fixture.field
        );
    }
}

#[test]
fn errors_read_like_the_api_servers() {
    let validator = validator();
    let fixture = |name: &str| {
        let path = repo(&format!("tests/fixtures/invalid/{name}.yaml"));
        manifest::read_path(&path).unwrap().remove(0).value
    };
    let message = |name: &str| validator.validate(&fixture(name)).unwrap_err().to_string();
    assert_eq!(
        message("sg-state-not-an-enum-value"),
        // The enum violation keeps the CEL rules from running, and kube-apiserver says so last.
        r#"SimGroup "group" is invalid: [spec.state: Unsupported value: "Pausd": supported values: "Active", "Paused", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"#
    );
    assert_eq!(
        message("sg-max-sims-per-action-10001"),
        r#"SimGroup "group" is invalid: [spec.rollout.maxSimsPerAction: Invalid value: 10001: should be less than or equal to 10000]"#
    );
    assert_eq!(
        message("dq-throttle"),
        r#"DataQuota "quota" is invalid: [spec.actionOnExhaustion: Invalid value: "Throttle": actionOnExhaustion: Throttle was decommissioned by the carrier on 2024-12-09; use Block]"#
    );
    assert_eq!(
        message("sg-unknown-field"),
        r#"SimGroup "group" is invalid: [unknown field "spec.rolout"]"#
    );
    assert_eq!(
        message("sg-selector-empty"),
        r#"SimGroup "group" is invalid: [spec.selector: Invalid value: "object": selector: set at least one of iccids, deviceIds, tags]"#
    );
}

#[test]
fn several_problems_are_all_reported_at_once() {
    let validator = validator();
    let object = serde_json::json!({
        "apiVersion": "simfleet.io/v1alpha1",
        "kind": "DataQuota",
        "metadata": {"name": "q"},
        "spec": {
            "carrierRef": {"name": "emnify"},
            "target": {"tags": ["a"]},
            "volumeMB": -1,
            "expiry": {"after": "soon"},
            "thresholdPercentage": 0,
            "colour": "blue"
        }
    });
    let err = validator.validate(&object).unwrap_err();
    let mut fields: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "spec.colour",
            "spec.expiry.after",
            "spec.thresholdPercentage",
            "spec.volumeMB"
        ]
    );
}

#[test]
fn other_kinds_are_not_mistaken_for_simfleet_ones() {
    let validator = validator();
    let secret =
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    assert!(!validator.knows(&secret));
    let wrong_version = serde_json::json!({
        "apiVersion": "simfleet.io/v1", "kind": "SimGroup", "metadata": {"name": "s"}
    });
    let err = validator.validate(&wrong_version).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected apiVersion simfleet.io/v1alpha1"),
        "{err}"
    );
}

#[test]
fn typed_parsing_keeps_defaults_and_durations() {
    let validator = validator();
    let object = serde_json::json!({
        "apiVersion": "simfleet.io/v1alpha1",
        "kind": "SimGroup",
        "metadata": {"name": "g"},
        "spec": {
            "carrierRef": {"name": "simulator"},
            "state": "Active",
            "selector": {"deviceIds": [7]},
            "rollout": {"interval": "1h30m"}
        }
    });
    let SimfleetObject::SimGroup(group) = validator.parse(&object).unwrap() else {
        panic!("not a SimGroup");
    };
    use simfleet_api::{DriftPolicy, SimGroupDeletePolicy, SystemPausedPolicy};
    assert_eq!(group.spec.drift, DriftPolicy::Correct);
    assert_eq!(group.spec.system_paused, SystemPausedPolicy::Report);
    assert_eq!(group.spec.on_delete, SimGroupDeletePolicy::Orphan);
    let interval = group.spec.rollout.unwrap().interval.unwrap();
    assert_eq!(interval.as_duration().as_secs(), 5400);
}

/// `suspendSimOnPause` is what a Soracom account sets to pause to `suspended` rather than
/// `inactive` (the CRD once refused it for every provider but emnify).
#[test]
fn suspend_sim_on_pause_is_accepted_for_emnify_and_soracom_only() {
    let validator = validator();
    let account = |provider: &str| {
        serde_json::json!({
            "apiVersion": "simfleet.io/v1alpha1",
            "kind": "CarrierAccount",
            "metadata": {"name": "account", "namespace": "fleet"},
            "spec": {"provider": provider, "secretRef": {"name": "creds"}, "suspendSimOnPause": true}
        })
    };
    for provider in ["emnify", "soracom"] {
        assert!(
            validator.parse(&account(provider)).is_ok(),
            "{provider}: {:?}",
            validator.parse(&account(provider)).err()
        );
    }
    for provider in ["hologram", "simulator"] {
        let err = validator.parse(&account(provider)).unwrap_err().to_string();
        assert!(err.contains("spec.suspendSimOnPause"), "{provider}: {err}");
    }
}
