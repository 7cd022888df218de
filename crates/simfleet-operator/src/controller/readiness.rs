//! Readiness and leadership of this replica: the watch caches are synced, or it follows a
//! leader; and whether it runs the controllers.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Controllers whose watch caches must sync before `/readyz` says ready.
const CONTROLLERS: u8 = 3;

/// Readiness: the watch caches of the three kinds are synced, or this replica follows a
/// leader (then it has no caches to sync and is ready to take over).
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicU8,
    follower: AtomicBool,
}

impl Health {
    /// Notes that one controller's watch cache is synced.
    pub(crate) fn synced(&self) {
        self.synced.fetch_add(1, Ordering::SeqCst);
    }

    /// Notes whether this replica is a leader-election follower.
    pub fn following(&self, follower: bool) {
        self.follower.store(follower, Ordering::SeqCst);
    }

    /// Whether this replica runs the controllers (it leads, or leader election is off).
    pub fn leading(&self) -> bool {
        !self.follower.load(Ordering::SeqCst)
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.follower.load(Ordering::SeqCst) || self.synced.load(Ordering::SeqCst) >= CONTROLLERS
    }
}
