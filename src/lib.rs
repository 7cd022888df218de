//! simfleet: a Kubernetes operator that keeps fleets of cellular IoT SIMs in the state declared in Git.
//!
//! This crate is the command line (`simfleet run`, `plan`, `crd`, and with the `dev` feature
//! `dev` and `simulator`). It re-exports the layers below it under their short names, so that
//! `simfleet::api::SimGroup` and the like name the one definition in each layer's crate.

pub use simfleet_api as api;
pub use simfleet_api::model;
pub use simfleet_carrier as carrier;
pub use simfleet_core::clock;
pub use simfleet_operator::{
    carrier_account, controller, data_quota, plan, preview, sim_group, telemetry,
};
#[cfg(feature = "dev")]
pub use simfleet_sandbox as sandbox;
#[cfg(feature = "dev")]
pub use simfleet_simulator as simulator;

pub mod cli;
#[cfg(feature = "dev")]
pub mod dev;
