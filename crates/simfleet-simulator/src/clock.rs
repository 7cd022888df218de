//! The simulator's virtual clock: every delay, token lifetime and quota expiry reads it, so
//! tests move time forward instead of sleeping.

use std::sync::Mutex;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// How the virtual clock moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Follows wall-clock time, plus whatever was added by `advance` (for `dev` and demos).
    #[default]
    Realtime,
    /// Stands still until advanced (for tests).
    Manual,
}

/// A clock that can be advanced.
#[derive(Debug)]
pub struct VirtualClock {
    mode: ClockMode,
    started: Instant,
    start: Timestamp,
    advanced: Mutex<SignedDuration>,
}

impl VirtualClock {
    /// A clock reading `start` now.
    pub fn new(mode: ClockMode, start: Timestamp) -> Self {
        Self {
            mode,
            started: Instant::now(),
            start,
            advanced: Mutex::new(SignedDuration::ZERO),
        }
    }

    /// How the clock moves.
    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        let advanced = *self.advanced.lock().expect("clock lock");
        let elapsed = match self.mode {
            ClockMode::Realtime => {
                SignedDuration::try_from(self.started.elapsed()).unwrap_or(SignedDuration::MAX)
            }
            ClockMode::Manual => SignedDuration::ZERO,
        };
        self.start
            .saturating_add(advanced.saturating_add(elapsed))
            .expect("a signed duration is always a valid timestamp offset")
    }

    /// Moves the clock forward by `by` (negative durations are refused by the caller).
    pub fn advance(&self, by: SignedDuration) -> Timestamp {
        {
            let mut advanced = self.advanced.lock().expect("clock lock");
            *advanced = advanced.saturating_add(by);
        }
        self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = VirtualClock::new(ClockMode::Manual, start);
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_hours(25));
        assert_eq!(clock.now().to_string(), "2026-01-02T01:00:00Z");
    }

    #[test]
    fn a_realtime_clock_includes_what_was_advanced() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = VirtualClock::new(ClockMode::Realtime, start);
        clock.advance(SignedDuration::from_hours(1));
        assert!(clock.now() >= "2026-01-01T01:00:00Z".parse().unwrap());
    }
}
