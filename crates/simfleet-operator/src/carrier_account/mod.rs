//! CarrierAccount: which carrier, its URL, credentials from a Secret, its rate limit and
//! budget. A reconcile checks the account (the URL against the allowed prefixes, the Secret,
//! the carrier's answer to one cheap call, skipped when it answered moments ago), turns the
//! finding into a verdict whose words name the fix (`verdict`, pure), and reports it
//! (`reconcile`). The Secret each account names is watched by name (`secret_watch`) and held
//! with a finalizer while the account needs it (`credentials_hold`). The
//! verified carrier clients that the other kinds use are cached in
//! `controller::carriers`.

pub(crate) mod credentials_hold;
mod reconcile;
pub(crate) mod secret_watch;
pub(crate) mod verdict;

pub use reconcile::run;
