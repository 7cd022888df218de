//! The carrier clients against the simulator over real HTTP, and the HTTP core against a
//! server of its own: one test binary, so that `cargo test -p simfleet-carrier` runs them.

mod emnify;
mod hologram;
mod http;
mod secrets;
mod soracom;
