//! Stopping on SIGTERM or Ctrl-C (SIGINT).

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// A request to stop: resolves on SIGTERM or Ctrl-C; clones resolve together.
pub type Stop = Shared<BoxFuture<'static, ()>>;

/// Listens for SIGTERM and Ctrl-C from this call on, not from the first await: a signal that
/// arrives in between (say, right after a command printed its addresses) is a request to stop
/// cleanly, not the default of dying at once. Must be called inside the tokio runtime.
pub fn requested() -> Stop {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt())
            .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut interrupt, mut terminate)) = signals {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            return;
        }
        // No Unix signals (or they could not be installed): Ctrl-C as the platform reports it.
        let _ = tokio::signal::ctrl_c().await;
    }
    .boxed()
    .shared()
}
