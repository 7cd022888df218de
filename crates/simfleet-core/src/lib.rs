//! What every simfleet layer shares and nothing Kubernetes: the clock that tests drive, the
//! durations people write (`30s`, `1h30m`), and stopping on a signal. The carrier simulator
//! depends on this crate alone, so it can be used without the operator.

pub mod clock;
pub mod duration;
pub mod shutdown;
