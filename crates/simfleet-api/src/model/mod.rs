//! The carrier-neutral model: the SIMs a resource selects, what the carrier says of them and
//! of their quotas, and how urgent a read is. The planner, the carrier clients and the
//! controllers all speak it; it imports none of them.

use jiff::Timestamp;

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

/// How a carrier call failed, as far as planning tells failures apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// The carrier does not know the thing asked for, or it is gone (404, 409): the reason in
    /// the carrier's words. Trying again changes nothing.
    Gone(String),
    /// The carrier refused the request's content (400, 422): a human must look.
    Refused(String),
    /// Anything else (unavailable, rate limited, an answer not understood): tried again.
    Other(String),
}

/// The month's figures of one account.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetReading {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Requests the account may spend in a month (`spec.budget`, or the provider's ceiling);
    /// `None`: no budget.
    pub limit: Option<u64>,
    /// Requests counted this month.
    pub spent: u64,
    /// Requests the month will cost at the steady rate; `None` while the operator's start-up
    /// burst is not over (no rate to extrapolate yet).
    pub projected: Option<u64>,
    /// When counting began this month (the month's start, or when the operator first counted).
    pub since: Timestamp,
    /// Reads the budget held back this month.
    pub deferred_reads: u64,
}
