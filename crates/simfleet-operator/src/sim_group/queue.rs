//! The actions a group planned and has not sent, where the carrier runs one action of a kind
//! at a time (Soracom's Batch API): each goes when the previous one is final, without a new
//! observation in between, so that a change of 25,000 SIMs costs one observation to plan and
//! one to confirm, not one per job. Pure: no I/O, no clock.

use simfleet_api::PendingAction;
use simfleet_api::model::ActionStatus;

use super::plan::PlannedAction;

/// A group's queued actions, and what they were planned from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Queued {
    generation: i64,
    claims: u64,
    /// The plan corrected drift (its SIMs were recorded before, for a restore).
    pub(crate) corrects_drift: bool,
    actions: Vec<PlannedAction>,
}

impl Queued {
    /// The actions left after the first, planned at `generation` with the other groups'
    /// claims `claims`; none when there are none.
    pub(crate) fn new(
        generation: i64,
        claims: u64,
        corrects_drift: bool,
        actions: Vec<PlannedAction>,
    ) -> Option<Self> {
        (!actions.is_empty()).then_some(Self {
            generation,
            claims,
            corrects_drift,
            actions,
        })
    }

    /// The next action and the queue after it, when it may go without a new observation: the
    /// spec and the other groups' claims are as planned, and the carrier says every listed
    /// action is final. Otherwise `None`: the group observes and plans again.
    pub(crate) fn next(
        mut self,
        generation: i64,
        claims: u64,
        pending: &[PendingAction],
        statuses: &[ActionStatus],
    ) -> Option<(PlannedAction, Option<Queued>)> {
        let all_final = !pending.is_empty()
            && pending
                .iter()
                .all(|a| statuses.iter().any(|s| s.id == a.id && s.finished));
        if self.generation != generation || self.claims != claims || !all_final {
            return None;
        }
        let next = self.actions.remove(0);
        let rest = Self::new(generation, claims, self.corrects_drift, self.actions);
        Some((next, rest))
    }

    /// SIMs in the queue.
    pub(crate) fn sims(&self) -> usize {
        self.actions.iter().map(|a| a.sims.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use simfleet_api::StateChange;
    use simfleet_api::model::SimTarget;

    fn action(first: u64, n: u64) -> PlannedAction {
        PlannedAction {
            change: StateChange::Pause,
            sims: (first..first + n)
                .map(|device_id| SimTarget {
                    device_id,
                    sim_id: None,
                })
                .collect(),
        }
    }

    fn pending(id: &str) -> PendingAction {
        PendingAction {
            id: id.into(),
            action: StateChange::Pause,
            sims: 2,
            submitted_at: Time("2026-12-01T00:00:00Z".parse::<Timestamp>().unwrap()),
            carrier_status: None,
        }
    }

    fn status(id: &str, finished: bool) -> ActionStatus {
        ActionStatus {
            id: id.into(),
            status: String::new(),
            finished,
            refused: Vec::new(),
        }
    }

    #[test]
    fn the_next_action_goes_only_when_every_listed_action_is_final_and_nothing_changed() {
        let queue = Queued::new(3, 7, false, vec![action(1, 2), action(3, 1)]).unwrap();
        assert_eq!(queue.sims(), 3);
        let listed = [pending("job-1")];
        // Still running, unknown to the carrier, or nothing listed: observe instead.
        assert!(
            queue
                .clone()
                .next(3, 7, &listed, &[status("job-1", false)])
                .is_none()
        );
        assert!(queue.clone().next(3, 7, &listed, &[]).is_none());
        assert!(queue.clone().next(3, 7, &[], &[]).is_none());
        // A new generation, or other groups' claims changed: observe instead.
        assert!(
            queue
                .clone()
                .next(4, 7, &listed, &[status("job-1", true)])
                .is_none()
        );
        assert!(
            queue
                .clone()
                .next(3, 8, &listed, &[status("job-1", true)])
                .is_none()
        );
        let (next, rest) = queue.next(3, 7, &listed, &[status("job-1", true)]).unwrap();
        assert_eq!(next, action(1, 2));
        let (last, rest) = rest
            .unwrap()
            .next(3, 7, &[pending("job-2")], &[status("job-2", true)])
            .unwrap();
        assert_eq!(last, action(3, 1));
        assert!(rest.is_none());
        assert!(Queued::new(3, 7, false, Vec::new()).is_none());
    }
}
