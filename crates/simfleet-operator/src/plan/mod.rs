//! Planning that every kind shares: the pause annotation, the budget's floor, numbers in
//! messages. Pure: no I/O and no clock reads, so every rule is tested without a network. Each
//! kind's own planning is in its folder (`sim_group`, `data_quota`, `carrier_account`).

pub(crate) mod budget_floor;
pub mod numbers;
pub mod pause;
