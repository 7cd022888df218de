//! A DataQuota between resyncs: what the operator last saw of each target device, and which
//! devices to read again. Once a generation is applied, one organisation-wide listing of the
//! carrier's quota events says which devices changed (used up, threshold reached, expired,
//! assigned or deleted, by anyone); only those are read, plus a slice of an audit that reads
//! every device once per audit period, spread evenly. Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use jiff::{SignedDuration, Timestamp};

use super::plan::Outcome;
use simfleet_api::DataQuotaStatus;
use simfleet_api::model::{
    DeviceQuotaEvent, OrgQuotaEvents, QuotaReading, QuotaSetting, QuotaState,
};

/// The default audit period: every target device's quota is read once a day.
pub(crate) const AUDIT_PERIOD: SignedDuration = SignedDuration::from_hours(24);

/// What became of one device when it was last read (an owned [`Outcome`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Its quota as read, or as set (`None`: it has none).
    Quota(Option<QuotaReading>),
    /// A top-up's quota is gone at the carrier.
    Missing,
    /// The carrier cannot give it a quota.
    Ineligible(String),
    /// The carrier failed.
    Failed {
        /// The carrier refused the values.
        refused: bool,
        /// What happened.
        message: String,
    },
    /// Observe-only: would be set as given.
    WouldChange {
        /// The quota as read.
        reading: Option<QuotaReading>,
        /// What a managed DataQuota would set.
        setting: QuotaSetting,
        /// By a top-up.
        top_up: bool,
    },
}

impl Seen {
    /// What was seen, from an outcome of this reconcile.
    pub fn of(outcome: &Outcome<'_>) -> Self {
        match outcome {
            Outcome::Read(reading) => Seen::Quota(reading.cloned()),
            Outcome::Set(setting) => Seen::Quota(Some(as_set(setting))),
            Outcome::Missing => Seen::Missing,
            Outcome::Ineligible(why) => Seen::Ineligible(why.clone()),
            Outcome::Failed { refused, message } => Seen::Failed {
                refused: *refused,
                message: message.clone(),
            },
            Outcome::WouldChange {
                reading,
                setting,
                top_up,
            } => Seen::WouldChange {
                reading: reading.cloned(),
                setting: (*setting).clone(),
                top_up: *top_up,
            },
        }
    }

    /// The outcome to count.
    pub(crate) fn outcome(&self) -> Outcome<'_> {
        match self {
            Seen::Quota(reading) => Outcome::Read(reading.as_ref()),
            Seen::Missing => Outcome::Missing,
            Seen::Ineligible(why) => Outcome::Ineligible(why.clone()),
            Seen::Failed { refused, message } => Outcome::Failed {
                refused: *refused,
                message: message.clone(),
            },
            Seen::WouldChange {
                reading,
                setting,
                top_up,
            } => Outcome::WouldChange {
                reading: reading.as_ref(),
                setting,
                top_up: *top_up,
            },
        }
    }
}

/// The quota a successful set leaves: active, with the volume, expiry and terms sent.
fn as_set(setting: &QuotaSetting) -> QuotaReading {
    QuotaReading {
        state: QuotaState::Active,
        volume_mb: setting.volume_mb,
        expiry: Some(setting.expiry),
        auto_refill: setting.auto_refill,
        threshold_percentage: setting.threshold_percentage.map(f64::from),
        last_volume_added: Some(setting.volume_mb),
    }
}

/// What the operator last saw of one DataQuota's devices. Kept in memory: after a restart the
/// first reconcile reads every device again.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaView {
    /// The generation these readings belong to.
    pub generation: i64,
    /// Observe-only (`management: Observe`) when read.
    pub observe_only: bool,
    /// A digest of the target devices (a changed target reads everything again).
    pub targets: u64,
    /// Each target device, as last seen.
    pub devices: BTreeMap<u64, Seen>,
    /// The newest quota event time listed so far, in the carrier's clock (listings are
    /// windowed from it, so a skewed or virtual carrier clock misses nothing).
    pub anchor: Option<Timestamp>,
    /// The ids of the events the last listing returned: listed again in the overlap, they are
    /// not new changes.
    pub listed: BTreeSet<u64>,
    /// The audit's position: the last device it read.
    pub audit_cursor: Option<u64>,
    /// How far the audit has come in time: devices are due at `n / period` per unit of time.
    pub audited_to: Timestamp,
    /// A digest of the object's generation, labels, annotations, finalizers and deletion when
    /// last reconciled.
    pub trigger: u64,
    /// The status the last reconcile wrote.
    pub written: Option<DataQuotaStatus>,
    /// When the last reconcile asked to be looked at again (its requeue: the resync, or a
    /// sooner expiry).
    pub due_at: Timestamp,
}

impl QuotaView {
    /// How long until the next resync, when a reconcile has nothing to do: the object is as
    /// it was (`trigger`), its status is the one last written (nobody else changed it, e.g. a
    /// Stalled status written since), the generation was applied, and `due_at` is ahead (a
    /// watch event replaces the requeue kube-runtime had scheduled, so it is asked for again).
    /// `None`: reconcile now.
    pub(crate) fn until_resync(
        &self,
        trigger: u64,
        status: Option<&DataQuotaStatus>,
        now: Timestamp,
    ) -> Option<std::time::Duration> {
        let applied = status
            .and_then(|s| s.progress.as_ref())
            .is_none_or(|p| p.complete && p.retry_device_ids.is_empty());
        // As JSON: the status read back has whole-second times.
        let same = |a: Option<&DataQuotaStatus>, b: Option<&DataQuotaStatus>| {
            a.is_some() && serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
        };
        (trigger == self.trigger
            && same(status, self.written.as_ref())
            && applied
            && self.due_at > now)
            .then(|| std::time::Duration::try_from(self.due_at.duration_since(now)).ok())
            .flatten()
    }
}

/// A digest of the target devices (eligible and ineligible), to tell a changed target.
pub(crate) fn targets_digest(devices: &[u64], ineligible: &[(u64, String)]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    devices.hash(&mut hasher);
    for (id, _) in ineligible {
        id.hash(&mut hasher);
    }
    hasher.finish()
}

/// What a view must share with a pass for the pass to go on from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewKey {
    /// The generation.
    pub generation: i64,
    /// Observe-only (`management: Observe`).
    pub observe_only: bool,
    /// The digest of the target devices ([`targets_digest`]).
    pub targets: u64,
}

impl QuotaView {
    /// Whether a pass with this key may go on from this view.
    pub fn matches(&self, key: &ViewKey) -> bool {
        self.generation == key.generation
            && self.observe_only == key.observe_only
            && self.targets == key.targets
    }
}

/// What a DataQuota pass knows before it reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassStart<'a> {
    /// The view's key.
    pub key: ViewKey,
    /// The object's trigger digest (generation, labels, annotations, finalizers, deletion).
    pub trigger: u64,
    /// The target devices that can hold a quota, ascending.
    pub devices: &'a [u64],
    /// The target devices that cannot, and why.
    pub ineligible: &'a [(u64, String)],
    /// Now.
    pub now: Timestamp,
    /// The audit period: every device is read once per period.
    pub audit_period: SignedDuration,
}

/// The devices a pass reads (ascending) and the view it fills in. Once the generation is
/// applied (`applied`), with the view of the last pass (`prior`, matching) and a complete
/// listing of the organisation's quota events, only the devices the new events name and the
/// audit's slice; otherwise every device, into a new view. `anchor` is the newest event time
/// known before the listing; the view keeps the listing's newest and its ids. The ineligible
/// devices are in the view either way.
pub(crate) fn read_scope(
    start: &PassStart<'_>,
    prior: Option<QuotaView>,
    listing: Option<&OrgQuotaEvents>,
    applied: bool,
    anchor: Option<Timestamp>,
) -> (Vec<u64>, QuotaView) {
    let PassStart {
        key,
        trigger,
        devices,
        ineligible,
        now,
        audit_period,
    } = *start;
    let events = listing.map_or(&[][..], |l| &l.events[..]);
    let anchor = newest(anchor, events);
    let listed: BTreeSet<u64> = events.iter().map(|e| e.event.id).collect();
    let (reads, mut view) = match (prior.filter(|v| v.matches(&key)), listing) {
        (Some(view), Some(found)) if applied && found.complete => {
            let (reads, cursor, audited_to) =
                steady_reads(&view, devices, events, now, audit_period);
            let view = QuotaView {
                audit_cursor: cursor,
                audited_to,
                anchor,
                listed,
                ..view
            };
            (reads, view)
        }
        _ => (
            devices.to_vec(),
            QuotaView {
                generation: key.generation,
                observe_only: key.observe_only,
                targets: key.targets,
                devices: BTreeMap::new(),
                anchor,
                listed,
                trigger,
                written: None,
                due_at: now,
                audit_cursor: None,
                audited_to: now,
            },
        ),
    };
    for (device, why) in ineligible {
        view.devices.insert(*device, Seen::Ineligible(why.clone()));
    }
    (reads, view)
}

/// Which devices a reconcile between resyncs reads: those whose quota events (in `events`, not
/// listed before) say they changed, and the audit's slice. Returns the devices (ascending) and the view's new
/// audit position.
pub(crate) fn steady_reads(
    view: &QuotaView,
    devices: &[u64],
    events: &[DeviceQuotaEvent],
    now: Timestamp,
    period: SignedDuration,
) -> (Vec<u64>, Option<u64>, Timestamp) {
    let targeted: BTreeSet<u64> = devices.iter().copied().collect();
    let mut reads: BTreeSet<u64> = events
        .iter()
        .filter(|e| !view.listed.contains(&e.event.id))
        .map(|e| e.device_id)
        .filter(|d| targeted.contains(d))
        .collect();
    let (slice, cursor, audited_to) = audit_slice(devices, view, now, period);
    reads.extend(slice);
    (reads.into_iter().collect(), cursor, audited_to)
}

/// The audit's slice: the devices due since `view.audited_to` at `n / period`, after the
/// cursor (wrapping), and the new position. Whole devices only: the time of a fraction of a
/// device carries over, so the audit neither drifts nor bunches.
fn audit_slice(
    devices: &[u64],
    view: &QuotaView,
    now: Timestamp,
    period: SignedDuration,
) -> (Vec<u64>, Option<u64>, Timestamp) {
    let n = devices.len() as i128;
    let period_ns = period.as_nanos().max(1);
    let elapsed_ns = now.duration_since(view.audited_to).as_nanos().max(0);
    let due = (n * elapsed_ns / period_ns).min(n) as usize;
    if due == 0 || devices.is_empty() {
        return (Vec::new(), view.audit_cursor, view.audited_to);
    }
    let start = view
        .audit_cursor
        .map_or(0, |c| devices.partition_point(|&d| d <= c));
    let slice: Vec<u64> = devices
        .iter()
        .cycle()
        .skip(start % devices.len())
        .take(due)
        .copied()
        .collect();
    let advanced = if due as i128 == n {
        now
    } else {
        let ns = i64::try_from(due as i128 * period_ns / n).unwrap_or(i64::MAX);
        view.audited_to
            .checked_add(SignedDuration::from_nanos(ns))
            .unwrap_or(now)
            .min(now)
    };
    (slice.clone(), slice.last().copied(), advanced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use simfleet_api::model::{QuotaEvent, QuotaEventKind};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn view(cursor: Option<u64>, audited_to: &str) -> QuotaView {
        QuotaView {
            generation: 1,
            observe_only: false,
            targets: 0,
            devices: BTreeMap::new(),
            anchor: None,
            listed: BTreeSet::from([7]),
            trigger: 1,
            written: Some(DataQuotaStatus::default()),
            due_at: at(audited_to),
            audit_cursor: cursor,
            audited_to: at(audited_to),
        }
    }

    fn event(device_id: u64) -> DeviceQuotaEvent {
        DeviceQuotaEvent {
            device_id,
            event: QuotaEvent {
                id: device_id,
                at: at("2026-11-01T00:00:00Z"),
                kind: QuotaEventKind::Deleted,
                description: String::new(),
            },
        }
    }

    #[test]
    fn the_audit_reads_every_device_once_per_period_evenly_and_without_drift() {
        let devices: Vec<u64> = (1..=10_000).collect();
        let mut v = view(None, "2026-11-01T00:00:00Z");
        let mut read = Vec::new();
        // 144 reconciles 10 minutes apart: a day.
        for step in 1..=144 {
            let now = at("2026-11-01T00:00:00Z") + SignedDuration::from_mins(10 * step);
            let (slice, cursor, audited_to) = audit_slice(&devices, &v, now, AUDIT_PERIOD);
            assert!(slice.len() <= 70, "evenly: {}", slice.len());
            read.extend(slice);
            v.audit_cursor = cursor;
            v.audited_to = audited_to;
        }
        read.sort_unstable();
        read.dedup();
        assert_eq!(read.len(), 10_000, "every device once a day");
        assert_eq!(v.audited_to, at("2026-11-02T00:00:00Z"));
        // The next day starts over from the first device.
        let (slice, _, _) = audit_slice(&devices, &v, at("2026-11-02T00:10:00Z"), AUDIT_PERIOD);
        assert_eq!(slice.first(), Some(&1));
    }

    #[test]
    fn a_short_interval_carries_its_fraction_of_a_device_over() {
        let devices: Vec<u64> = (1..=10).collect();
        let v = view(Some(3), "2026-11-01T00:00:00Z");
        // 10 devices a day: one is due every 2.4 h; after 1 h none is.
        let (slice, cursor, audited_to) =
            audit_slice(&devices, &v, at("2026-11-01T01:00:00Z"), AUDIT_PERIOD);
        assert!(slice.is_empty());
        assert_eq!((cursor, audited_to), (Some(3), v.audited_to));
        let (slice, cursor, audited_to) =
            audit_slice(&devices, &v, at("2026-11-01T05:00:00Z"), AUDIT_PERIOD);
        assert_eq!(slice, [4, 5]);
        assert_eq!(cursor, Some(5));
        assert_eq!(audited_to, at("2026-11-01T04:48:00Z"));
    }

    #[test]
    fn steady_reads_are_the_changed_target_devices_and_the_audit_slice() {
        let devices: Vec<u64> = (1..=1_000).collect();
        let v = view(None, "2026-11-01T00:00:00Z");
        // Ten minutes: 6 devices of the audit, plus those new events name (not other devices',
        // nor event 7, listed before).
        let (reads, _, _) = steady_reads(
            &v,
            &devices,
            &[event(500), event(5), event(424_242), event(7)],
            at("2026-11-01T00:10:00Z"),
            AUDIT_PERIOD,
        );
        assert_eq!(reads, [1, 2, 3, 4, 5, 6, 500]);
    }

    fn key(generation: i64) -> ViewKey {
        ViewKey {
            generation,
            observe_only: false,
            targets: 0,
        }
    }

    fn start<'a>(devices: &'a [u64], ineligible: &'a [(u64, String)]) -> PassStart<'a> {
        PassStart {
            key: key(1),
            trigger: 9,
            devices,
            ineligible,
            now: at("2026-11-01T00:10:00Z"),
            audit_period: AUDIT_PERIOD,
        }
    }

    #[test]
    fn an_applied_quota_with_a_complete_listing_reads_only_what_changed() {
        let devices: Vec<u64> = (1..=1_000).collect();
        let ineligible = [(2_000, "deleted".to_string())];
        let mut prior = view(None, "2026-11-01T00:00:00Z");
        prior.devices.insert(3, Seen::Missing);
        let listing = OrgQuotaEvents {
            events: vec![event(500), event(7)],
            complete: true,
        };
        let (reads, view) = read_scope(
            &start(&devices, &ineligible),
            Some(prior),
            Some(&listing),
            true,
            None,
        );
        assert_eq!(reads, [1, 2, 3, 4, 5, 6, 500]);
        assert_eq!(
            view.devices.get(&3),
            Some(&Seen::Missing),
            "kept from the last pass"
        );
        assert_eq!(
            view.devices.get(&2_000),
            Some(&Seen::Ineligible("deleted".into()))
        );
        assert_eq!(view.listed, BTreeSet::from([500, 7]));
        assert_eq!(view.anchor, Some(at("2026-11-01T00:00:00Z")));
        assert_eq!(view.audit_cursor, Some(6));
    }

    #[test]
    fn otherwise_every_device_is_read_into_a_new_view() {
        let devices: Vec<u64> = (1..=20).collect();
        let complete = OrgQuotaEvents {
            events: vec![event(5)],
            complete: true,
        };
        let partial = OrgQuotaEvents {
            events: vec![event(5)],
            complete: false,
        };
        let prior = || {
            let mut v = view(None, "2026-11-01T00:00:00Z");
            v.devices.insert(3, Seen::Missing);
            v
        };
        let mut other_generation = start(&devices, &[]);
        other_generation.key = key(2);
        let cases = [
            (
                "no view in memory",
                start(&devices, &[]),
                None,
                Some(&complete),
                true,
            ),
            (
                "another generation",
                other_generation,
                Some(prior()),
                Some(&complete),
                true,
            ),
            (
                "not yet applied",
                start(&devices, &[]),
                Some(prior()),
                Some(&complete),
                false,
            ),
            (
                "listing incomplete",
                start(&devices, &[]),
                Some(prior()),
                Some(&partial),
                true,
            ),
            (
                "listing unavailable",
                start(&devices, &[]),
                Some(prior()),
                None,
                true,
            ),
        ];
        for (why, start, prior, listing, applied) in cases {
            let (reads, view) = read_scope(&start, prior, listing, applied, None);
            assert_eq!(reads, devices, "{why}");
            assert!(view.devices.is_empty(), "{why}: a new view");
            assert_eq!(
                (view.generation, view.trigger),
                (start.key.generation, 9),
                "{why}"
            );
        }
    }

    #[test]
    fn a_digest_changes_with_the_target() {
        let a = targets_digest(&[1, 2, 3], &[]);
        assert_eq!(a, targets_digest(&[1, 2, 3], &[]));
        assert_ne!(a, targets_digest(&[1, 2, 4], &[]));
        assert_ne!(a, targets_digest(&[1, 2, 3], &[(9, "deleted".into())]));
    }
}

/// How far past the later of the anchor and `now` a listing's window reaches: emnify takes
/// `from` only with `until`, and nothing that happened may be left out, whatever the
/// carrier's clock says, so the window is open-ended in practice.
pub const WINDOW_AHEAD: SignedDuration = SignedDuration::from_hours(24 * 3650);

/// The window of the next organisation-wide listing: from `EVENT_OVERLAP` before the newest
/// event seen (the carrier's clock) to [`WINDOW_AHEAD`] past the later of it and `now`; `None`
/// without any anchor yet: the newest events.
pub fn listing_window(anchor: Option<Timestamp>, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    anchor.map(|a| {
        (
            a.checked_sub(super::quota_events::EVENT_OVERLAP)
                .unwrap_or(Timestamp::MIN),
            a.max(now)
                .checked_add(WINDOW_AHEAD)
                .unwrap_or(Timestamp::MAX),
        )
    })
}

/// The newest event time among `events` and `anchor`.
pub fn newest(anchor: Option<Timestamp>, events: &[DeviceQuotaEvent]) -> Option<Timestamp> {
    events.iter().map(|e| e.event.at).chain(anchor).max()
}

#[cfg(test)]
mod resync_tests {
    use super::*;

    #[test]
    fn a_reconcile_after_its_own_status_write_waits_for_the_resync() {
        let t0: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let written = DataQuotaStatus {
            observed_generation: Some(1),
            ..Default::default()
        };
        let view = QuotaView {
            generation: 1,
            observe_only: false,
            targets: 0,
            devices: BTreeMap::new(),
            anchor: None,
            listed: BTreeSet::new(),
            audit_cursor: None,
            audited_to: t0,
            trigger: 42,
            written: Some(written.clone()),
            due_at: t0 + SignedDuration::from_mins(20),
        };
        let soon = t0 + SignedDuration::from_secs(5);
        assert_eq!(
            view.until_resync(42, Some(&written), soon),
            Some(std::time::Duration::from_secs(1195))
        );
        // The object changed (a label, an annotation, the spec), or someone else wrote status,
        // or the resync is due: reconcile.
        assert_eq!(view.until_resync(43, Some(&written), soon), None);
        let other = DataQuotaStatus::default();
        assert_eq!(view.until_resync(42, Some(&other), soon), None);
        assert_eq!(
            view.until_resync(42, Some(&written), t0 + SignedDuration::from_mins(20)),
            None
        );
    }
}
