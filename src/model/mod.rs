//! The carrier-neutral model: the SIMs a resource selects, what the carrier says of them and
//! of their quotas, and how urgent a read is. The planner, the carrier clients and the
//! controllers all speak it; it imports none of them.

mod quotas;
mod sims;

pub use quotas::*;
pub use sims::*;

/// How much a read may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadUrgency {
    /// A periodic re-read of something that has not changed: paced to the budget.
    Resync,
    /// A read that a change, a pending action or a new object needs: held back only when the
    /// month's budget is spent.
    Needed,
}
