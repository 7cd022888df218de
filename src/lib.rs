//! simfleet: a Kubernetes operator that keeps fleets of cellular IoT SIMs in the state declared in Git.

pub mod api;
pub mod carrier;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod dev;
pub mod model;
pub mod plan;
pub mod preview;
pub(crate) mod resolve;
pub mod sandbox;
pub(crate) mod shutdown;
pub mod simulator;
pub mod telemetry;
