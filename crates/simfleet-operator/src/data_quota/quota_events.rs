//! Reporting the carrier's quota events once: the mark a DataQuota's status keeps (the newest
//! reported event's time and the ids near it), and one scan against it. Pure: no I/O, no clock.

use jiff::{SignedDuration, Timestamp};

use simfleet_api::DataQuotaStatus;
use simfleet_api::model::{QuotaReading, QuotaState};

/// How far back each scan of the carrier's quota events reads again. Devices are read one
/// after another, so an event raised on an already-read device during a scan can be older than
/// the newest event of a device read later; reading this far back again finds it, and the ids
/// keep it from being reported twice.
pub(crate) const EVENT_OVERLAP: SignedDuration = SignedDuration::from_mins(15);
/// Most reported event ids kept in status.
pub(crate) const EVENT_IDS_LIMIT: usize = 1000;

/// How far the carrier's quota events have been reported: the newest reported event's time, and
/// the ids of the reported events from `EVENT_OVERLAP` before it on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMark {
    /// The newest reported event's time.
    pub time: Option<Timestamp>,
    /// Ids of the reported events in the overlap window (and of earlier ones not read again).
    pub ids: Vec<u64>,
}

impl EventMark {
    /// The mark a status records.
    pub fn of(status: &DataQuotaStatus) -> Self {
        Self {
            time: status.last_event_time.as_ref().map(|t| t.0),
            ids: status.last_event_ids.clone(),
        }
    }

    /// The time from which the next scan reads events (none: all of them).
    pub fn since(&self) -> Option<Timestamp> {
        self.time.map(|t| t - EVENT_OVERLAP)
    }

    /// Starts a scan of the devices' events.
    pub fn scan(&self) -> EventScan {
        EventScan {
            previous: self.clone(),
            listed: Vec::new(),
        }
    }
}

/// One scan of the carrier's quota events against the mark of the previous one.
#[derive(Debug)]
pub struct EventScan {
    previous: EventMark,
    listed: Vec<(u64, Timestamp)>,
}

impl EventScan {
    /// Whether a listed event is new, i.e. to be reported now; either way it is remembered.
    pub fn take(&mut self, id: u64, at: Timestamp) -> bool {
        let reported = self.previous.ids.contains(&id);
        let new = !reported
            && !self.listed.iter().any(|&(seen, _)| seen == id)
            && self.previous.since().is_none_or(|since| at >= since);
        if new || reported {
            self.listed.push((id, at));
        }
        new
    }

    /// The mark to record: the newest time seen, and the ids of every reported event that a
    /// later scan may list again (the newest `EVENT_IDS_LIMIT`).
    pub fn finish(self) -> EventMark {
        let time = self
            .listed
            .iter()
            .map(|&(_, at)| at)
            .chain(self.previous.time)
            .max();
        let window = time.map(|t| t - EVENT_OVERLAP);
        let listed: Vec<u64> = self.listed.iter().map(|&(id, _)| id).collect();
        let mut ids: Vec<u64> = self
            .listed
            .iter()
            .filter(|&&(_, at)| window.is_none_or(|w| at >= w))
            .map(|&(id, _)| id)
            // Reported earlier and not listed this time (their device was not read): kept.
            .chain(
                self.previous
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| !listed.contains(id)),
            )
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let excess = ids.len().saturating_sub(EVENT_IDS_LIMIT);
        ids.drain(..excess);
        EventMark { time, ids }
    }
}

/// Whether a reading suggests a quota event worth listing (used up, or at its threshold).
pub(crate) fn may_have_events(reading: &QuotaReading, declared_mb: f64) -> bool {
    reading.state == QuotaState::Exhausted
        || reading.threshold_percentage.is_some_and(|p| {
            let base = reading.last_volume_added.unwrap_or(declared_mb);
            reading.volume_mb <= base * p / 100.0
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(state: QuotaState, left: f64, threshold: Option<f64>) -> QuotaReading {
        QuotaReading {
            state,
            volume_mb: left,
            expiry: None,
            auto_refill: false,
            threshold_percentage: threshold,
            last_volume_added: Some(500.0),
        }
    }

    #[test]
    fn a_used_up_quota_or_one_at_its_threshold_may_have_events() {
        assert!(may_have_events(
            &reading(QuotaState::Exhausted, 0.0, None),
            500.0
        ));
        // 20% of the last 500 MB added is 100 MB.
        assert!(may_have_events(
            &reading(QuotaState::Active, 100.0, Some(20.0)),
            1.0
        ));
        assert!(!may_have_events(
            &reading(QuotaState::Active, 101.0, Some(20.0)),
            1.0
        ));
        assert!(!may_have_events(
            &reading(QuotaState::Active, 1.0, None),
            500.0
        ));
        // Without a last volume, the declared one is the base.
        let mut unknown_base = reading(QuotaState::Active, 50.0, Some(20.0));
        unknown_base.last_volume_added = None;
        assert!(may_have_events(&unknown_base, 250.0));
        assert!(!may_have_events(&unknown_base, 200.0));
    }
}
