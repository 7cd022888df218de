//! Failed authentications per carrier host, so that one account's bad credentials never lock
//! out the others. emnify locks authentication after three failed attempts in a row, for five
//! minutes, without saying for whom; the worst case is per client IP, which every account this
//! process serves on that host shares. So the process counts failures in a row per host, and a
//! credential not yet accepted may not make the failure that would lock it while accounts on the
//! host depend on authenticating.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// emnify's lock: after this many failed authentications in a row [doc].
pub const LOCK_AFTER: u32 = 3;

/// How long after a success the host counts as one that accounts depend on.
const IN_USE_FOR: Duration = Duration::from_secs(3600);

/// One host's record.
#[derive(Debug, Default)]
pub struct HostAuth {
    failures_in_a_row: u32,
    last_success: Option<Instant>,
}

impl HostAuth {
    /// Whether an authentication may be attempted: always with credentials the carrier accepted
    /// before; otherwise unless it could be the failure that locks the host while other
    /// accounts authenticated there within the hour. `Err` says why not.
    pub fn may_try(&self, accepted_before: bool, now: Instant) -> Result<(), String> {
        let would_lock = self.failures_in_a_row + 1 >= LOCK_AFTER;
        let in_use = self
            .last_success
            .is_some_and(|at| now.saturating_duration_since(at) < IN_USE_FOR);
        if accepted_before || !would_lock || !in_use {
            return Ok(());
        }
        Err(format!(
            "authentication deferred: the last {} authentications on this host failed, and a third \
             would lock authentication for 5 minutes for every account on it (emnify's rule); \
             this account's credentials are tried once another account authenticates",
            self.failures_in_a_row
        ))
    }

    pub fn succeeded(&mut self, now: Instant) {
        self.failures_in_a_row = 0;
        self.last_success = Some(now);
    }

    pub fn failed(&mut self) {
        self.failures_in_a_row += 1;
    }
}

/// The record of `host` (scheme, host and port of the carrier's URL), shared by every client
/// of this process: the carrier sees them all from one address.
pub fn host(host: &str) -> Arc<Mutex<HostAuth>> {
    static HOSTS: LazyLock<Mutex<HashMap<String, Arc<Mutex<HostAuth>>>>> =
        LazyLock::new(Mutex::default);
    HOSTS
        .lock()
        .expect("hosts lock")
        .entry(host.to_owned())
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_credential_never_makes_the_third_failure_while_the_host_is_in_use() {
        let now = Instant::now();
        let mut host = HostAuth::default();
        // Nobody authenticated yet: a lock would only hold up failing accounts.
        for _ in 0..3 {
            assert!(host.may_try(false, now).is_ok());
            host.failed();
        }
        host.succeeded(now);
        assert!(host.may_try(false, now).is_ok());
        host.failed();
        assert!(host.may_try(false, now).is_ok());
        host.failed();
        let deferred = host.may_try(false, now).unwrap_err();
        assert!(deferred.contains("a third would lock"), "{deferred}");
        // Accepted credentials still authenticate, and their success reopens the way.
        assert!(host.may_try(true, now).is_ok());
        host.succeeded(now);
        assert!(host.may_try(false, now).is_ok());
        // An hour without a success: nobody depends on the host any more.
        host.failed();
        host.failed();
        assert!(host.may_try(false, now + IN_USE_FOR).is_ok());
    }
}
