//! Failed authentications per carrier host, so that one account's bad credentials never lock
//! out the others. emnify locks authentication after three failed attempts in a row, for five
//! minutes, without saying for whom; the worst case is per client IP, which every account this
//! process serves on that host shares. So the process counts failures in a row per host (and
//! per provider: another provider's calls on the same host are never held back), and a
//! credential the carrier refused before is not tried again where that failure would lock the
//! host while accounts on it depend on authenticating. A credential not tried yet (a new or a
//! fixed Secret) is tried at once: holding it back would keep a repaired account waiting for
//! another account's success.

use std::collections::{HashMap, HashSet};
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
    /// Credentials (by a digest, never the secret) the carrier refused here.
    refused: HashSet<u64>,
}

/// A credential's digest, to know it again without keeping it.
pub fn credential_digest(secret: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    secret.hash(&mut hasher);
    hasher.finish()
}

impl HostAuth {
    /// Whether an authentication may be attempted: always with credentials the carrier accepted
    /// before; otherwise unless it could be the failure that locks the host while other
    /// accounts authenticated there within the hour. `Err` says why not.
    /// `credential`: the digest of the credential to try.
    pub fn may_try(
        &self,
        accepted_before: bool,
        credential: u64,
        now: Instant,
    ) -> Result<(), String> {
        let would_lock = self.failures_in_a_row + 1 >= LOCK_AFTER;
        let in_use = self
            .last_success
            .is_some_and(|at| now.saturating_duration_since(at) < IN_USE_FOR);
        let refused_before = self.refused.contains(&credential);
        if accepted_before || !refused_before || !would_lock || !in_use {
            return Ok(());
        }
        Err(format!(
            "authentication deferred: the carrier refused these credentials before, and the last {} \
             authentications on this host failed; another failure would lock authentication for 5 \
             minutes for every account on it (emnify's rule); fix the Secret (a changed credential \
             is tried at once), or they are tried again once another account authenticates",
            self.failures_in_a_row
        ))
    }

    pub fn succeeded(&mut self, credential: u64, now: Instant) {
        self.failures_in_a_row = 0;
        self.last_success = Some(now);
        self.refused.remove(&credential);
    }

    pub fn failed(&mut self, credential: u64) {
        self.failures_in_a_row += 1;
        self.refused.insert(credential);
    }
}

/// The record of `provider` at `host` (scheme, host and port of the carrier's URL), shared by
/// every client of this process: the carrier sees them all from one address.
pub fn host(provider: &str, host: &str) -> Arc<Mutex<HostAuth>> {
    static HOSTS: LazyLock<Mutex<HashMap<String, Arc<Mutex<HostAuth>>>>> =
        LazyLock::new(Mutex::default);
    HOSTS
        .lock()
        .expect("hosts lock")
        .entry(format!("{provider} {host}"))
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_credential_never_makes_the_third_failure_while_the_host_is_in_use() {
        let now = Instant::now();
        let mut host = HostAuth::default();
        let (bad, other_bad, fixed, good) = (1, 2, 3, 4);
        // Nobody authenticated yet: a lock would only hold up failing accounts.
        for _ in 0..3 {
            assert!(host.may_try(false, bad, now).is_ok());
            host.failed(bad);
        }
        host.succeeded(good, now);
        assert!(host.may_try(false, bad, now).is_ok());
        host.failed(bad);
        assert!(host.may_try(false, other_bad, now).is_ok());
        host.failed(other_bad);
        let deferred = host.may_try(false, bad, now).unwrap_err();
        assert!(
            deferred.contains("refused these credentials before"),
            "{deferred}"
        );
        assert!(host.may_try(false, other_bad, now).is_err());
        // A credential not tried yet (a fixed Secret) goes at once.
        assert!(host.may_try(false, fixed, now).is_ok());
        // Accepted credentials still authenticate, and their success reopens the way.
        assert!(host.may_try(true, good, now).is_ok());
        host.succeeded(fixed, now);
        assert!(host.may_try(false, bad, now).is_ok());
        // An hour without a success: nobody depends on the host any more.
        host.failed(bad);
        host.failed(bad);
        assert!(host.may_try(false, bad, now + IN_USE_FOR).is_ok());
    }

    #[test]
    fn providers_on_one_host_are_counted_apart() {
        let emnify = host("emnify", "http://127.0.0.1:9");
        let simulator = host("simulator", "http://127.0.0.1:9");
        emnify.lock().unwrap().failed(1);
        assert_eq!(simulator.lock().unwrap().failures_in_a_row, 0);
    }
}
