//! The operator image's binary carries no test doubles: built as the Dockerfile builds it
//! (without the `dev` feature), it has no `dev` or `simulator` subcommand, and no code of the
//! carrier simulator or the sandbox API server.
//!
//! The build is a debug build (the image's is release): which crates are linked in does not
//! depend on the profile, and a debug build reuses the dependencies the suite has compiled.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The feature flags of the Dockerfile's `cargo build` line.
fn image_feature_flags() -> Vec<String> {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
            .expect("the Dockerfile is readable");
    let line = dockerfile
        .lines()
        .find(|line| line.contains("cargo build"))
        .expect("the Dockerfile builds with cargo build");
    line.split_whitespace()
        .filter(|word| word.contains("features"))
        .map(str::to_owned)
        .collect()
}

/// Builds the `simfleet` binary with `flags` and returns its path: the binary goes to a target
/// directory of its own (so the suite's `simfleet` stays the one other tests run), while the
/// compiled dependencies are shared with the suite's build (cargo's `build-dir`).
fn build(flags: &[String], name: &str) -> PathBuf {
    let suite_bin = PathBuf::from(env!("CARGO_BIN_EXE_simfleet"));
    // target/debug/simfleet → target/
    let target = suite_bin
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    let target_dir = target.join(name);
    let out = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--bin", "simfleet", "--target-dir"])
        .arg(&target_dir)
        .args(flags)
        .env("CARGO_BUILD_BUILD_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build {flags:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join("debug/simfleet")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn the_image_binary_has_no_simulator_or_sandbox() {
    let flags = image_feature_flags();
    assert_eq!(
        flags,
        ["--no-default-features"],
        "the image builds without the dev feature"
    );
    let binary = build(&flags, "production");

    let help = Command::new(&binary)
        .arg("--help")
        .output()
        .expect("simfleet runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("run "), "{help}");
    assert!(help.contains("plan "), "{help}");
    assert!(!help.contains("dev "), "no `dev` subcommand:\n{help}");
    assert!(
        !help.contains("simulator "),
        "no `simulator` subcommand:\n{help}"
    );
    let dev = Command::new(&binary)
        .arg("dev")
        .output()
        .expect("simfleet runs");
    assert!(!dev.status.success());
    assert!(
        String::from_utf8_lossy(&dev.stderr).contains("unrecognized subcommand 'dev'"),
        "{}",
        String::from_utf8_lossy(&dev.stderr)
    );

    // Symbol names carry their crate's name; the suite's own binary (with `dev`) shows that
    // the search finds them where they are.
    let production = std::fs::read(&binary).expect("the binary is readable");
    let with_dev = std::fs::read(env!("CARGO_BIN_EXE_simfleet")).expect("the binary is readable");
    for crate_name in ["simfleet_simulator", "simfleet_sandbox"] {
        assert!(
            contains(&with_dev, crate_name),
            "{crate_name} in the dev build"
        );
        assert!(
            !contains(&production, crate_name),
            "{crate_name} is linked into the image's binary"
        );
    }
    for crate_name in ["simfleet_operator", "simfleet_carrier"] {
        assert!(
            contains(&production, crate_name),
            "{crate_name} in the image's binary"
        );
    }
}
