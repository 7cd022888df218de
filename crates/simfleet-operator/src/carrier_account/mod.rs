//! CarrierAccount: which carrier, its URL, credentials from a Secret, its rate limit and
//! budget. A reconcile checks the account (the URL against the allowed prefixes, the Secret,
//! the carrier's answer to one cheap call, skipped when it answered moments ago), turns the
//! finding into a verdict whose words name the fix (`verdict`, pure), and reports it
//! (`reconcile`). The Secret each account names is watched by name (`secret_watch`) and held
//! with a finalizer while the account needs it (`credentials_hold`). The
//! verified carrier clients are cached in `controller::carriers`; what the other kinds get from
//! their account (a verified client, or why not) is `users`.

pub(crate) mod credentials_hold;
mod reconcile;
pub(crate) mod secret_watch;
mod users;
pub(crate) mod verdict;

pub use reconcile::run;

/// The reason of an account's first conditions while its first check runs (the resources
/// using it wait, and say so, until it ends).
pub(crate) const FIRST_CHECK: &str = "Verifying";
pub(crate) use users::{account_changes, cleanup_carrier, ready_carrier};
