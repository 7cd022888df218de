//! The tools `./scripts/test` installs for the tests.

use std::path::PathBuf;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The Python with the carriers' official clients: `SIMFLEET_PYTHON` (set by
/// `./scripts/test`), or the virtual environment it makes in the workspace.
pub fn python() -> PathBuf {
    std::env::var_os("SIMFLEET_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| workspace_root().join(".simfleet/venv/bin/python"))
}
