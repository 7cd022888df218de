//! The operator's one clock. Controllers read the time only through it, so that tests and
//! benchmarks can drive it with the simulator's virtual clock instead of waiting.

use std::sync::Arc;

use jiff::Timestamp;

/// Something that tells the time.
pub trait TimeSource: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The clock of one operator: the system's, or an injected source.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn TimeSource>>);

impl Clock {
    /// A clock reading `source`.
    pub fn from_source(source: Arc<dyn TimeSource>) -> Self {
        Self(Some(source))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Some(source) => source.now(),
            None => Timestamp::now(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(injected)"
        } else {
            "Clock(system)"
        })
    }
}
