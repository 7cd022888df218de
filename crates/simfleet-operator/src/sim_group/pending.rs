//! The pending carrier actions of a SimGroup: which are still unconfirmed, when a poll may skip
//! the full observation, and how long to wait. Pure: no I/O, no clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use simfleet_api::conditions;
use simfleet_api::model::ActionStatus;
use simfleet_api::model::ReadUrgency;
use simfleet_api::{PendingAction, SimGroupStatus};

/// How long an action may stay unconfirmed before the group is Stalled.
pub(crate) const CONFIRMATION_DEADLINE: SignedDuration = SignedDuration::from_hours(24);

/// The `Reconciling` reason of a group with nothing to submit and nothing in flight.
pub(crate) const IDLE: &str = "Idle";

/// Whether `generation`'s change was carried out: a status at that generation said nothing was
/// left to submit and nothing was in flight. From then on, a SIM found in another state was
/// changed outside simfleet (drift), whatever else keeps the group from Ready (paused by the
/// system, conflicts, failures).
pub(crate) fn change_carried_out(previous: &SimGroupStatus, generation: i64) -> bool {
    previous.observed_generation == Some(generation)
        && previous.conditions.iter().any(|c| {
            c.type_ == conditions::RECONCILING
                && c.status == "False"
                && c.reason == IDLE
                && c.observed_generation == Some(generation)
        })
}

/// Sets each listed action's `carrier_status` from the carrier's jobs list.
pub(crate) fn note_carrier_statuses(pending: &mut [PendingAction], statuses: &[ActionStatus]) {
    for action in pending {
        if let Some(status) = statuses.iter().find(|s| s.id == action.id) {
            action.carrier_status = Some(status.status.clone());
        }
    }
}

/// How much the next observation of a group may wait: a group that carried out its change,
/// unchanged since, with nothing pending, is at rest and only re-read to find drift (a resync,
/// paced to `driftCheck` and the budget); anything else (a new generation, pending actions, a
/// change not carried out, one just resumed) needs the read to make progress.
pub(crate) fn read_urgency(
    previous: &SimGroupStatus,
    generation: i64,
    resumed: bool,
) -> ReadUrgency {
    let at_rest =
        change_carried_out(previous, generation) && previous.pending_actions.is_empty() && !resumed;
    if at_rest {
        ReadUrgency::Resync
    } else {
        ReadUrgency::Needed
    }
}

/// How long a group at rest, last read in full at `last_read`, waits for its drift check; `None`
/// when the check is due.
pub fn drift_check_wait(
    last_read: Timestamp,
    drift_check: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let due = last_read
        .checked_add(SignedDuration::try_from(drift_check).ok()?)
        .ok()?;
    (due > now).then(|| due.duration_since(now).unsigned_abs())
}

/// Longest time a group with pending actions goes without a full observation, whatever the
/// carrier's jobs list says.
pub(crate) const FULL_OBSERVATION_CEILING: SignedDuration = SignedDuration::from_mins(30);

/// Whether a reconcile of a group with `pending` actions can skip the full observation: the
/// carrier's jobs list shows every pending action unfinished (so no SIM has changed yet), and a
/// full observation was made less than [`FULL_OBSERVATION_CEILING`] ago. Anything else (an
/// action finished or not listed, no jobs list, the ceiling reached) observes in full.
pub fn poll_says_wait(
    pending: &[PendingAction],
    statuses: &[ActionStatus],
    last_full: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let recent = last_full.is_some_and(|at| now.duration_since(at) < FULL_OBSERVATION_CEILING);
    recent
        && !pending.is_empty()
        && pending
            .iter()
            .all(|action| statuses.iter().any(|s| s.id == action.id && !s.finished))
}

/// What a look at pending actions costs at the carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollCost {
    /// One call for their status (Hologram's jobs list, Soracom's job status).
    OneCall,
    /// A full observation of the group's SIMs (emnify lists no jobs).
    Observation,
}

/// How long to wait while actions are pending: a quarter of the newest action's age, at
/// least 1 s where a look costs one call and 10 s where it costs an observation, at most 5
/// minutes (carriers confirm in minutes, rarely a day). A job that ends at once is seen at
/// once; a long one is looked at a few more times than with a 10 s floor (about 5 more calls
/// over 10 minutes).
pub fn pending_backoff(
    pending: &[PendingAction],
    now: Timestamp,
    cost: PollCost,
) -> Option<Duration> {
    let floor = match cost {
        PollCost::OneCall => 1,
        PollCost::Observation => 10,
    };
    pending
        .iter()
        .map(|a| now.duration_since(a.submitted_at.0))
        .min()
        .map(|age| Duration::from_secs((age.as_secs() / 4).clamp(floor, 300) as u64))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use simfleet_api::StateChange;

    fn now() -> Timestamp {
        "2026-11-20T12:00:00Z".parse().unwrap()
    }

    fn action(id: &str, sims: u32, minutes_ago: i64) -> PendingAction {
        pause_submitted(id, sims, minutes_ago, now())
    }

    /// A pending pause of `sims` SIMs submitted `minutes_ago` before `now` (for the planner's
    /// tests too).
    pub(in crate::sim_group) fn pause_submitted(
        id: &str,
        sims: u32,
        minutes_ago: i64,
        now: Timestamp,
    ) -> PendingAction {
        PendingAction {
            carrier_status: None,
            id: id.into(),
            action: StateChange::Pause,
            sims,
            submitted_at: Time(
                now.checked_sub(SignedDuration::from_mins(minutes_ago))
                    .unwrap(),
            ),
        }
    }

    #[test]
    fn only_a_converged_unchanged_group_with_nothing_pending_is_a_resync() {
        let mut ready = SimGroupStatus {
            observed_generation: Some(3),
            ..SimGroupStatus::default()
        };
        conditions::set_kstatus(
            &mut ready.conditions,
            [
                conditions::Verdict::new(true, "InDesiredState", "all in state"),
                conditions::Verdict::new(false, IDLE, "done"),
                conditions::Verdict::new(false, "InDesiredState", "nothing needs a human"),
            ],
            3,
            now(),
        );
        assert_eq!(read_urgency(&ready, 3, false), ReadUrgency::Resync);
        assert_eq!(
            read_urgency(&ready, 4, false),
            ReadUrgency::Needed,
            "a new generation"
        );
        assert_eq!(
            read_urgency(&ready, 3, true),
            ReadUrgency::Needed,
            "just resumed"
        );
        let mut polling = ready.clone();
        polling.pending_actions.push(action("10001", 5, 1));
        assert_eq!(
            read_urgency(&polling, 3, false),
            ReadUrgency::Needed,
            "a poll"
        );
        let fresh = SimGroupStatus::default();
        assert_eq!(
            read_urgency(&fresh, 1, false),
            ReadUrgency::Needed,
            "never observed"
        );
    }

    #[test]
    fn a_drift_check_waits_its_period_from_the_last_read_whatever_wakes_the_group() {
        let read = now();
        let ten = Duration::from_secs(600);
        let later = |s: i64| read.checked_add(SignedDuration::from_secs(s)).unwrap();
        assert_eq!(
            drift_check_wait(read, ten, later(1)),
            Some(Duration::from_secs(599))
        );
        assert_eq!(
            drift_check_wait(read, ten, later(599)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(drift_check_wait(read, ten, later(600)), None);
        assert_eq!(
            drift_check_wait(read, Duration::from_secs(60), later(61)),
            None
        );
    }

    #[test]
    fn a_poll_skips_the_full_observation_only_while_every_pending_action_is_unfinished() {
        let now = now();
        let pending = vec![action("10001", 5_000, 3), action("10002", 5_000, 2)];
        let status = |id: &str, finished: bool| ActionStatus {
            refused: Vec::new(),
            id: id.into(),
            status: if finished { "COMPLETED" } else { "PROCESSING" }.into(),
            finished,
        };
        let observed = now.checked_sub(SignedDuration::from_mins(3)).ok();
        let both = [status("10001", false), status("10002", false)];
        assert!(poll_says_wait(&pending, &both, observed, now));
        // One finished: observe in full (its SIMs may have changed).
        let one_done = [status("10001", true), status("10002", false)];
        assert!(!poll_says_wait(&pending, &one_done, observed, now));
        // One not listed (no jobs list, or an older job): observe in full.
        assert!(!poll_says_wait(&pending, &both[..1], observed, now));
        assert!(!poll_says_wait(&pending, &[], observed, now));
        // No full observation yet in this process (a restart), or the ceiling reached.
        assert!(!poll_says_wait(&pending, &both, None, now));
        let long_ago = now.checked_sub(FULL_OBSERVATION_CEILING).ok();
        assert!(!poll_says_wait(&pending, &both, long_ago, now));
        // Nothing pending: nothing to wait for.
        assert!(!poll_says_wait(&[], &both, observed, now));
        // The wait grows with the newest action's age: 10 s (1 s where a look is one call),
        // then a quarter of it, at most 5 min.
        let observation = PollCost::Observation;
        assert_eq!(
            pending_backoff(&pending, now, observation),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            pending_backoff(&[action("x", 1, 0)], now, observation),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            pending_backoff(&[action("x", 1, 0)], now, PollCost::OneCall),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            pending_backoff(&[action("x", 1, 600)], now, PollCost::OneCall),
            Some(Duration::from_secs(300))
        );
        assert_eq!(pending_backoff(&[], now, observation), None);
    }
}
