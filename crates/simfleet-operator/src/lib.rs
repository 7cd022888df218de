//! The operator: planning (pure), resolving what a resource selects, the `simfleet plan`
//! preview, and the controllers that run them against Kubernetes and the carriers.

pub mod carrier_account;
pub mod controller;
pub mod data_quota;
pub mod plan;
pub mod preview;
pub(crate) mod resolve;
pub mod sim_group;
pub mod telemetry;
