//! Pure planning of SimGroups and CarrierAccounts: what to change at the carrier, and what
//! status says, from the spec, the observed state and `now`. No I/O and no clock reads, so every
//! rule is tested without a network. (A DataQuota's planning is in `data_quota`.)

pub(crate) mod budget_floor;
pub(crate) mod carrier_account;
pub(crate) mod claims;
pub mod in_flight;
pub(crate) mod numbers;
mod observe_only;
pub mod pause;
pub(crate) mod pending;
pub(crate) mod restore;
pub mod sim_group;
