//! What the crates' tests share (a dev-dependency only): the carrier simulator started for a
//! test and spoken to over HTTP (`simulator`), and carrier clients set up for tests
//! (`carrier`), and a test world of the sandbox API server and the simulator (`world`). Helpers
//! that need the operator, a real Kubernetes API server or the `simfleet` binary stay with the
//! tests that use them.

pub mod carrier;
pub mod simulator;
pub mod tools;
pub mod world;
