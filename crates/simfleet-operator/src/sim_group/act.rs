//! Submitting planned actions, the one way for changes and restores alike: in order, each
//! action's SIMs remembered as in flight and its id recorded in status (by the caller's
//! [`ActionLog`]) before the next one is sent. After a failed submit nothing more is sent: its
//! outcome may be unclear, so the next reconcile observes first.

use super::memory::GroupRef;
use futures::future::BoxFuture;

use crate::controller::{Context, Error};
use crate::sim_group::plan::PlannedAction;
use simfleet_api::model::Submission;
use simfleet_carrier::{Carrier, CarrierError};

/// An action the carrier took.
pub(crate) struct Sent<'a> {
    /// The action.
    pub(crate) action: &'a PlannedAction,
    /// The carrier's action ids, joined (what status and events show).
    pub(crate) id: String,
    /// What the carrier said.
    pub(crate) submission: Submission,
}

/// Where the submitting stopped, when it did not send every action.
pub(crate) struct Failed {
    /// The index of the action whose submit failed (it and those after it were not sent).
    pub(crate) at: usize,
    /// Why.
    pub(crate) error: CarrierError,
}

/// What a caller does around each submit: its status writes and events.
pub(crate) trait ActionLog: Send {
    /// Runs before `action` is sent (e.g. recording the SIMs' earlier states).
    fn before<'a>(&'a mut self, _action: &'a PlannedAction) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// Records an accepted action (its id in status) before the next one is sent.
    fn sent<'a>(&'a mut self, sent: Sent<'a>) -> BoxFuture<'a, Result<(), Error>>;
}

/// Submits `actions` for the resource `key`, telling `log` about each.
pub(crate) async fn act(
    context: &Context,
    carrier: &dyn Carrier,
    key: &GroupRef,
    actions: &[PlannedAction],
    log: &mut dyn ActionLog,
) -> Result<Option<Failed>, Error> {
    for (at, action) in actions.iter().enumerate() {
        log.before(action).await?;
        // SIMs another group sent since this one planned are not sent again.
        let sims = context.groups.reserve(key, action.change, &action.sims);
        if sims.is_empty() {
            continue;
        }
        let submission = match carrier.submit(action.change, &sims).await {
            Ok(submission) => submission,
            Err(error) => {
                context.groups.release(key);
                return Ok(Some(Failed { at, error }));
            }
        };
        let id = submission.action_ids.join(",");
        context
            .groups
            .remember_in_flight(key, &id, action.change, &sims, &submission.refused);
        log.sent(Sent {
            action,
            id,
            submission,
        })
        .await?;
    }
    Ok(None)
}
