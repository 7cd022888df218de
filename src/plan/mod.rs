//! Pure planning: what to change at the carrier, and what status says, from the spec, the
//! observed state and `now`. No I/O and no clock reads, so every rule is tested without a network.

pub mod budget_floor;
pub mod carrier_account;
pub mod claims;
pub mod data_quota;
pub mod numbers;
mod observe_only;
pub mod pause;
pub mod pending;
pub mod quota_batch;
pub mod quota_events;
pub mod quota_watch;
pub mod restore;
pub mod sim_group;
