//! The simulator's carrier surfaces over real HTTP: against each carrier's documented facts
//! (emnify's OpenAPI document) and against the carriers' official clients. One test binary, so
//! that `cargo test -p simfleet-simulator` runs them.

mod emnify;
mod emnify_contract;
mod hologram;
mod official_clients;
