//! The `simfleet` binary as a user runs it.

use std::process::{Command, Output};

mod common;

fn simfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("simfleet runs")
}

#[test]
fn crd_prints_the_three_crds_as_one_yaml_stream() {
    let out = simfleet(&["crd"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, simfleet::api::crds_yaml().unwrap());
    let names: Vec<String> = serde_saphyr::from_multiple::<serde_json::Value>(&stdout)
        .unwrap()
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "carrieraccounts.simfleet.io",
            "simgroups.simfleet.io",
            "dataquotas.simfleet.io"
        ]
    );
}

#[test]
fn crd_out_dir_writes_one_file_per_kind() {
    let dir = std::env::temp_dir().join(format!("simfleet-crd-test-{}", std::process::id()));
    let out = simfleet(&["crd", "--out-dir", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for crd in simfleet::api::crds() {
        let written =
            std::fs::read_to_string(dir.join(simfleet::api::crd_file_name(&crd))).unwrap();
        assert_eq!(
            written,
            format!("---\n{}", simfleet::api::crd_yaml(&crd).unwrap())
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn version_prints_the_crate_version() {
    let out = simfleet(&["version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("simfleet {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_subcommand_has_help() {
    for command in ["run", "dev", "simulator", "crd", "plan", "version"] {
        let out = simfleet(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Usage: simfleet"), "{command}: {help}");
    }
}

#[test]
fn plan_reports_every_invalid_manifest_with_file_document_and_field_in_one_run() {
    let out = simfleet(&["plan", "-f", "tests/fixtures/invalid", "--output", "json"]);
    assert_eq!(out.status.code(), Some(2), "invalid manifests exit 2");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].as_array().unwrap();
    let fixtures: Vec<std::path::PathBuf> = std::fs::read_dir("tests/fixtures/invalid")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(fixtures.len() >= 38);
    for fixture in &fixtures {
        let text = std::fs::read_to_string(fixture).unwrap();
        let name = fixture.display().to_string();
        let found: Vec<&serde_json::Value> = errors
            .iter()
            .filter(|e| e["file"] == name.as_str())
            .collect();
        assert!(!found.is_empty(), "{name} is reported: {errors:?}");
        if let Some(field) = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect-field: "))
        {
            assert!(
                found
                    .iter()
                    .any(|e| e["message"].as_str().unwrap().contains(field.trim())
                        || e["field"]
                            .as_str()
                            .is_some_and(|f| f.contains(field.trim()))),
                "{name}: the field {field} is named: {found:?}"
            );
            assert!(
                found.iter().all(|e| e["document"].is_u64()),
                "{name}: document index"
            );
        }
    }
    // The table says the same for people, on stdout, with the same exit code.
    let out = simfleet(&["plan", "-f", "tests/fixtures/invalid"]);
    assert_eq!(out.status.code(), Some(2));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("problems in the manifests (nothing was planned)"),
        "{table}"
    );
}

#[test]
fn unknown_log_format_is_refused_with_the_choices() {
    let out = simfleet(&["--log-format", "xml", "version"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--log-format") && stderr.contains("json"),
        "{stderr}"
    );
}

#[test]
fn a_quota_audit_period_that_is_not_a_positive_duration_is_refused_naming_the_flag() {
    for bad in ["0s", "1 day", "-5m"] {
        let flag = format!("--quota-audit-period={bad}");
        let out = simfleet(&["run", &flag]);
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("--quota-audit-period") && stderr.contains("24h"),
            "{bad}: {stderr}"
        );
    }
}

/// `docs/simulator.md`'s command, as written but on a free port: the simulator starts with
/// those flags, prints the URLs the page lists, serves the fleet, and stops on Ctrl-C.
#[test]
fn the_simulator_page_s_command_starts_the_simulator_it_describes() {
    use std::io::{BufRead, BufReader};
    let command = common::doc_shell::without_comment(
        &common::doc_shell::commands("docs/simulator.md", "run by tests/cli.rs")[0],
    );
    let args: Vec<String> = command
        .strip_prefix("cargo run --release -- ")
        .expect("cargo run --release -- simulator ...")
        .split_whitespace()
        .map(|a| a.replace("127.0.0.1:8080", "127.0.0.1:0"))
        .collect();
    assert_eq!(args[0], "simulator");
    let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("/_sim/");
        printed.push(line);
        if done {
            break;
        }
    }
    // Keep reading what it prints after, so that it never writes to a closed pipe.
    let rest = std::thread::spawn(move || lines.for_each(drop));
    let printed = printed.join("\n");
    for surface in [
        "/api/1",
        "/api",
        "/_sim/",
        "simulator-api-key",
        "keyId-simulator",
    ] {
        assert!(printed.contains(surface), "{surface} in:\n{printed}");
    }
    common::send_signal(&child, "INT");
    let status = child.wait().unwrap();
    rest.join().unwrap();
    assert!(status.success(), "a clean stop on Ctrl-C: {status}");
}

/// Text logs written to a file or a pipe carry no colour codes (issue "Status that tells the
/// truth", point 6).
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = std::env::temp_dir().join(format!("simfleet-ansi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    // A server nobody listens on: the operator logs its start, then its failures to connect.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"http://127.0.0.1:9\"}}]\ncontexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args(["run", "--log-format", "text"])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut first = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut buffer = [0u8; 512];
    while !first.contains('\n') && std::time::Instant::now() < deadline {
        use std::io::Read;
        let n = stderr.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        first.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(first.contains("INFO"), "a log line: {first:?}");
    assert!(!first.contains('\u{1b}'), "no ANSI escape: {first:?}");
}
