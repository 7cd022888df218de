//! One verdict per manifest: an API server (the sandbox, or the real kube-apiserver), with
//! `fieldValidation=Strict` as `kubectl apply` asks, and `simfleet plan` (which also reads each
//! object into the operator's types) accept and refuse the same manifests. The cases: every
//! example, every invalid fixture, and the bounds of every number, duration and URL in the
//! three schemas.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::first_version_schema;
use simfleet::api::duration::DURATION_PATTERN;
use simfleet::api::manifest::read_path;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Plural of a kind, for the API path.
fn plural(kind: &str) -> &'static str {
    match kind {
        "CarrierAccount" => "carrieraccounts",
        "SimGroup" => "simgroups",
        _ => "dataquotas",
    }
}

/// The spec schema of a kind, from the CRDs this build generates.
fn spec_schema(kind: &str) -> Value {
    let crd = simfleet::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let schema = first_version_schema(&crd);
    schema["properties"]["spec"].clone()
}

/// Every leaf of a schema with its path (array items marked `[]`).
fn leaves(schema: &Value, path: Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let mut next = path.clone();
            next.push(name.clone());
            leaves(child, next, out);
        }
    } else if let Some(items) = schema.get("items") {
        let mut next = path.clone();
        next.push("[]".into());
        leaves(items, next, out);
    } else {
        out.push((path, schema.clone()));
    }
}

/// `object` with `value` at `path` (under `spec`), creating what is missing on the way.
fn with_value(object: &Value, path: &[String], value: Value) -> Value {
    fn set(node: &mut Value, path: &[String], value: Value) {
        match path.split_first() {
            None => *node = value,
            Some((head, rest)) if head == "[]" => {
                let mut item = Value::Null;
                set(&mut item, rest, value);
                *node = json!([item]);
            }
            Some((head, rest)) => {
                if !node.is_object() {
                    *node = json!({});
                }
                set(&mut node[head.as_str()], rest, value);
            }
        }
    }
    let mut object = object.clone();
    set(&mut object["spec"], path, value);
    object
}

/// Values at and past the bounds a leaf's schema states.
fn boundary_values(schema: &Value) -> Vec<Value> {
    let mut values = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => {
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                values.extend([json!(max as i64), json!(max as i64 + 1)]);
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                values.extend([json!(min as i64), json!(min as i64 - 1)]);
            }
            values.extend([json!(u32::MAX as u64 + 1), json!(i64::MAX), json!(-1)]);
        }
        Some("number") => {
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                values.extend([json!(max), json!(max * 1.5)]);
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                values.extend([json!(min), json!(min / 2.0)]);
            }
            values.extend([json!(1e300), json!(-1.0)]);
        }
        Some("string")
            if schema.get("pattern").and_then(Value::as_str) == Some(DURATION_PATTERN) =>
        {
            values.extend(
                [
                    "30d",
                    "3650d",
                    "9999d",
                    "10000d",
                    "99999d",
                    "9999d99999h999999m9999999s",
                    "30m1h",
                    "1d1d",
                ]
                .map(|d| json!(d)),
            );
        }
        _ => {}
    }
    values
}

/// The simfleet documents of the examples, one per kind, to vary.
fn bases() -> Vec<Value> {
    let documents = read_path(&repo("examples")).unwrap();
    let pick = |kind: &str, name: &str| {
        documents
            .iter()
            .map(|d| d.value.clone())
            .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("examples hold {kind}/{name}"))
    };
    vec![
        pick("CarrierAccount", "hologram"),
        pick("SimGroup", "smart-meters"),
        pick("DataQuota", "cold-chain-monthly"),
    ]
}

/// Every case: a name and one manifest.
pub fn cases() -> Vec<(String, Value)> {
    let mut cases = Vec::new();
    for document in read_path(&repo("examples")).unwrap() {
        if document.value["apiVersion"] == simfleet::api::API_VERSION {
            cases.push((
                format!(
                    "example-{}",
                    document.value["metadata"]["name"].as_str().unwrap()
                ),
                document.value,
            ));
        }
    }
    for entry in std::fs::read_dir(repo("tests/fixtures/invalid")).unwrap() {
        let path = entry.unwrap().path();
        for document in read_path(&path).unwrap() {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            cases.push((format!("fixture-{stem}"), document.value));
        }
    }
    for base in bases() {
        let kind = base["kind"].as_str().unwrap().to_owned();
        let mut all = Vec::new();
        leaves(&spec_schema(&kind), Vec::new(), &mut all);
        for (path, schema) in all {
            for (i, value) in boundary_values(&schema).into_iter().enumerate() {
                let name = format!(
                    "{}-{}-{i}",
                    kind.to_lowercase(),
                    path.join("-").replace("[]", "item").to_lowercase()
                );
                cases.push((name, with_value(&base, &path, value)));
            }
        }
        if kind == "CarrierAccount" {
            for (i, url) in [
                "https://apikey:secret@dashboard.hologram.io/api/1",
                "https://apikey@dashboard.hologram.io",
                "http://127.0.0.1:8080",
                "https://dashboard.hologram.io/api/1/@team",
            ]
            .into_iter()
            .enumerate()
            {
                cases.push((
                    format!("carrieraccount-baseurl-{i}"),
                    with_value(&base, &["baseUrl".into()], json!(url)),
                ));
            }
        }
    }
    // Unique, DNS-safe object names, so every case can be created side by side.
    for (i, (_, object)) in cases.iter_mut().enumerate() {
        if object["metadata"]["name"].is_string() {
            object["metadata"]["name"] = json!(format!("case-{i}"));
        }
    }
    cases
}

/// What `simfleet plan` and an API server said of every case.
pub struct Verdicts {
    pub cases: usize,
    pub accepted: usize,
    pub refused: usize,
    /// Cases the two judge differently, each with both answers.
    pub disagreements: Vec<String>,
}

/// Asks `simfleet plan` and the API server behind `client` (a create in `namespace`, with
/// `fieldValidation=Strict`) about every case.
pub async fn compare(client: kube::Client, namespace: &str) -> Verdicts {
    let cases = cases();
    let dir = std::env::temp_dir().join(format!(
        "simfleet-verdicts-{namespace}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (_, object)) in cases.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{i:04}.yaml")),
            serde_json::to_string(object).unwrap(),
        )
        .unwrap();
    }
    let plan_dir = dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .args(["plan", "-f"])
            .arg(&plan_dir)
            .args(["--output", "json"])
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "plan's JSON report: {e}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let refused_by_plan: BTreeSet<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["file"].as_str())
        .map(|f| {
            Path::new(f)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    let mut verdicts = Verdicts {
        cases: cases.len(),
        accepted: 0,
        refused: 0,
        disagreements: Vec::new(),
    };
    for (i, (name, object)) in cases.iter().enumerate() {
        let kind = object["kind"].as_str().unwrap_or("SimGroup");
        let mut object = object.clone();
        if object["metadata"].is_object() {
            object["metadata"]["namespace"] = json!(namespace);
        }
        // Strict, as `kubectl apply` sends it: unknown fields are refused, not dropped. Each case
        // has a name of its own, so the accepted ones are created side by side.
        let request = http::Request::post(format!(
            "/apis/simfleet.io/v1alpha1/namespaces/{namespace}/{}?fieldValidation=Strict",
            plural(kind)
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&object).unwrap())
        .unwrap();
        let answer = client.request_text(request).await;
        let api_accepts = answer.is_ok();
        let plan_accepts = !refused_by_plan.contains(&format!("{i:04}"));
        if api_accepts {
            verdicts.accepted += 1;
        } else {
            verdicts.refused += 1;
        }
        if api_accepts != plan_accepts {
            verdicts.disagreements.push(format!(
                "{name}: API server {}; plan {}",
                match &answer {
                    Ok(_) => "accepts".to_owned(),
                    Err(err) => format!("refuses: {err}"),
                },
                if plan_accepts { "accepts" } else { "refuses" }
            ));
        }
    }
    verdicts
}
