use super::*;
use crate::data_quota::quota_events::EVENT_IDS_LIMIT;
use crate::data_quota::schedule::{RESYNC, requeue_after};
use simfleet_api::{
    ExhaustionAction, FriendlyDuration, LocalObjectRef, QuotaDeletePolicy, QuotaExpiry, QuotaTarget,
};
use std::time::Duration;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn spec(mode: QuotaMode, expiry: QuotaExpiry) -> DataQuotaSpec {
    DataQuotaSpec {
        carrier_ref: LocalObjectRef {
            name: "emnify".into(),
        },
        target: QuotaTarget {
            device_ids: Some(vec![1, 2, 3]),
            ..Default::default()
        },
        volume_mb: 500.0,
        expiry,
        auto_refill: false,
        threshold_percentage: Some(20),
        action_on_exhaustion: ExhaustionAction::Block,
        mode,
        on_delete: QuotaDeletePolicy::Orphan,
        management: Default::default(),
    }
}

fn after(text: &str) -> QuotaExpiry {
    QuotaExpiry {
        at: None,
        after: Some(text.parse::<FriendlyDuration>().unwrap()),
    }
}

fn reading(state: QuotaState, volume_mb: f64, expiry: Timestamp) -> QuotaReading {
    QuotaReading {
        state,
        volume_mb,
        expiry: Some(expiry),
        auto_refill: false,
        threshold_percentage: Some(20.0),
        last_volume_added: Some(500.0),
    }
}

const NOW: &str = "2026-11-23T10:00:00.250Z";

#[test]
fn a_relative_expiry_counts_from_the_first_apply_and_a_resync_does_not_move_it() {
    let spec = spec(QuotaMode::Set, after("30d"));
    let first = progress_for(&spec, 1, None, at(NOW)).unwrap();
    assert_eq!(first.expiry.0, at("2026-12-23T10:00:00Z"), "whole seconds");
    assert_eq!(first.started_at.0, at("2026-11-23T10:00:00Z"));
    // A day later, the same generation: the same expiry.
    let later = progress_for(&spec, 1, Some(&first), at("2026-11-24T10:00:00Z")).unwrap();
    assert_eq!(later.expiry, first.expiry);
    // A new generation starts a new count.
    let next = progress_for(&spec, 2, Some(&first), at("2026-11-24T10:00:00Z")).unwrap();
    assert_eq!(next.expiry.0, at("2026-12-24T10:00:00Z"));
    assert_eq!(next.done_through, None);
}

#[test]
fn spec_mistakes_the_schema_cannot_see_name_the_field_and_the_fix() {
    let cases = [
        (
            QuotaExpiry {
                at: Some(Time(at("2026-01-01T00:00:00Z"))),
                after: None,
            },
            ExhaustionAction::Block,
            "InvalidExpiry",
            "expiry.at: 2026-01-01T00:00:00Z is already past",
        ),
        (
            after("30d"),
            ExhaustionAction::Throttle,
            "InvalidAction",
            "actionOnExhaustion: Throttle was decommissioned",
        ),
    ];
    for (expiry, action, reason, message) in cases {
        let mut spec = spec(QuotaMode::Set, expiry);
        spec.action_on_exhaustion = action;
        let problem = progress_for(&spec, 1, None, at(NOW)).unwrap_err();
        assert_eq!(problem.reason, reason);
        assert!(problem.message.contains(message), "{}", problem.message);
        assert!(
            problem.message.contains("use "),
            "says the fix: {}",
            problem.message
        );
    }
    // An absolute expiry that passes later is not a mistake: the quota expires.
    let spec = spec(
        QuotaMode::Set,
        QuotaExpiry {
            at: Some(Time(at("2026-12-01T00:00:00Z"))),
            after: None,
        },
    );
    let progress = progress_for(&spec, 1, None, at(NOW)).unwrap();
    assert!(progress_for(&spec, 1, Some(&progress), at("2027-01-01T00:00:00Z")).is_ok());
}

#[test]
fn set_and_top_up_decide_per_device_as_a_table() {
    let now = at(NOW);
    let set = spec(QuotaMode::Set, after("30d"));
    let top_up = spec(QuotaMode::TopUp, after("30d"));
    let mut progress = progress_for(&set, 1, None, now).unwrap();
    let expiry = progress.expiry.0;
    let other_expiry = at("2027-03-01T00:00:00Z");
    let declared = |volume_mb: f64| QuotaSetting {
        volume_mb,
        expiry,
        auto_refill: false,
        threshold_percentage: Some(20),
    };
    progress.done_through = Some(10);
    let cases: Vec<(
        &str,
        &DataQuotaSpec,
        u64,
        Option<QuotaReading>,
        DeviceAction,
    )> = vec![
        // Not applied yet (ids above doneThrough).
        (
            "set, no quota yet",
            &set,
            11,
            None,
            DeviceAction::Set(declared(500.0)),
        ),
        (
            "set replaces what is left",
            &set,
            11,
            Some(reading(QuotaState::Active, 120.0, other_expiry)),
            DeviceAction::Set(declared(500.0)),
        ),
        (
            "top-up adds to what is left",
            &top_up,
            11,
            Some(reading(QuotaState::Active, 120.0, other_expiry)),
            DeviceAction::TopUp(declared(620.0)),
        ),
        (
            "top-up of an exhausted quota",
            &top_up,
            11,
            Some(reading(QuotaState::Exhausted, 0.0, other_expiry)),
            DeviceAction::TopUp(declared(500.0)),
        ),
        (
            "top-up of an expired quota: nothing was left",
            &top_up,
            11,
            Some(reading(QuotaState::Expired, 80.0, other_expiry)),
            DeviceAction::TopUp(declared(500.0)),
        ),
        (
            "top-up without a quota",
            &top_up,
            11,
            None,
            DeviceAction::TopUp(declared(500.0)),
        ),
        // Applied already (ids up to doneThrough).
        (
            "set, applied, being used",
            &set,
            5,
            Some(reading(QuotaState::Active, 20.0, expiry)),
            DeviceAction::Keep,
        ),
        (
            "set, applied, used up",
            &set,
            5,
            Some(reading(QuotaState::Exhausted, 0.0, expiry)),
            DeviceAction::Keep,
        ),
        (
            "top-up, applied: never added twice",
            &top_up,
            5,
            Some(reading(QuotaState::Active, 20.0, expiry)),
            DeviceAction::Keep,
        ),
        (
            "set, removed at the carrier",
            &set,
            5,
            None,
            DeviceAction::Set(declared(500.0)),
        ),
        (
            "top-up, removed at the carrier",
            &top_up,
            5,
            None,
            DeviceAction::Missing,
        ),
        (
            "expiry changed at the carrier: terms back, volume kept",
            &set,
            5,
            Some(reading(QuotaState::Active, 42.0, other_expiry)),
            DeviceAction::Set(declared(42.0)),
        ),
    ];
    for (name, spec, device, reading, expected) in cases {
        assert_eq!(
            decide(spec, &progress, device, reading.as_ref()),
            expected,
            "{name}"
        );
    }
    // A device whose set failed is tried again although its id is below doneThrough.
    progress.retry_device_ids = vec![5];
    assert_eq!(
        decide(
            &set,
            &progress,
            5,
            Some(&reading(QuotaState::Active, 20.0, expiry))
        ),
        DeviceAction::Set(declared(500.0))
    );
    progress.complete = true;
    progress.retry_device_ids.clear();
    assert_eq!(decide(&top_up, &progress, 99, None), DeviceAction::Missing);
}

#[test]
fn status_counts_states_finds_the_earliest_expiry_and_requeues_at_it() {
    let now = at(NOW);
    let spec = spec(QuotaMode::Set, after("30d"));
    let mut progress = progress_for(&spec, 1, None, now).unwrap();
    progress.complete = true;
    let soon = at("2026-11-23T10:10:00Z");
    let readings = [
        reading(QuotaState::Active, 100.0, soon),
        reading(QuotaState::Exhausted, 0.0, progress.expiry.0),
        reading(QuotaState::Expired, 10.0, at("2026-11-01T00:00:00Z")),
    ];
    let mut tally = QuotaTally::default();
    for (i, r) in readings.iter().enumerate() {
        tally.add(i as u64 + 1, Outcome::Read(Some(r)), now);
    }
    tally.add(4, Outcome::Read(None), now);
    tally.annotate(2, "Exhausted", "carrier event 7: Quota used up");
    let status = status(
        &DataQuotaStatus::default(),
        1,
        &tally,
        progress.clone(),
        EventMark::default(),
        now,
    );
    let counts = status.counts.clone().unwrap();
    assert_eq!(
        (
            counts.targeted,
            counts.active,
            counts.exhausted,
            counts.expired,
            counts.none,
            counts.failed
        ),
        (4, 1, 1, 1, 1, 0)
    );
    assert_eq!(status.earliest_expiry, Some(Time(soon)));
    let reasons: Vec<&str> = status
        .problem_devices
        .iter()
        .map(|p| p.reason.as_str())
        .collect();
    assert_eq!(reasons, ["Exhausted", "Expired", "NoQuota"]);
    assert!(
        status.problem_devices[0]
            .message
            .contains("carrier event 7")
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        ready.status, "False",
        "a device without a quota is denied data"
    );
    // The next resync reads the same states; the event is not reported again, yet its note
    // stays with the device.
    let mut resync = QuotaTally::default();
    for (i, r) in readings.iter().enumerate() {
        resync.add(i as u64 + 1, Outcome::Read(Some(r)), now);
    }
    resync.add(4, Outcome::Read(None), now);
    let again = super::status(
        &status,
        1,
        &resync,
        progress.clone(),
        EventMark::default(),
        now,
    );
    assert_eq!(again.problem_devices, status.problem_devices);
    assert_eq!(
        requeue_after(&tally, &progress, now),
        // The expiry is 599.75 s away: a second past it, in whole seconds, before the resync.
        Duration::from_secs(600)
    );
    assert!(Duration::from_secs(600) < RESYNC);

    let mut tally = QuotaTally::default();
    let set = declared_for_test(progress.expiry.0);
    tally.add(1, Outcome::Set(&set), now);
    tally.add(
        2,
        Outcome::Failed {
            refused: true,
            message: "422 volume".into(),
        },
        now,
    );
    let status = status_of(&tally, &progress, now);
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "Refused")
    );
    let mut tally = QuotaTally::default();
    tally.add(1, Outcome::Set(&set), now);
    let status = status_of(&tally, &progress, now);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}

fn declared_for_test(expiry: Timestamp) -> QuotaSetting {
    QuotaSetting {
        volume_mb: 500.0,
        expiry,
        auto_refill: false,
        threshold_percentage: Some(20),
    }
}

fn status_of(tally: &QuotaTally, progress: &QuotaProgress, now: Timestamp) -> DataQuotaStatus {
    status(
        &DataQuotaStatus::default(),
        1,
        tally,
        progress.clone(),
        EventMark::default(),
        now,
    )
}

#[test]
fn each_carrier_event_is_taken_once_even_when_events_share_a_timestamp() {
    let t = at("2026-11-23T10:00:00Z");
    let mut scan = EventMark::default().scan();
    assert!(scan.take(7, t));
    assert!(!scan.take(7, t), "the same event again");
    assert!(scan.take(8, t), "another event at the same second");
    assert!(scan.take(9, at("2026-11-23T10:00:01Z")));
    let mark = scan.finish();
    assert_eq!(
        mark,
        EventMark {
            time: Some(at("2026-11-23T10:00:01Z")),
            ids: vec![7, 8, 9]
        }
    );
    // The next scan reads the overlap window again and reports nothing twice.
    assert_eq!(mark.since(), Some(at("2026-11-23T09:45:01Z")));
    let mut again = mark.scan();
    assert!(!again.take(8, t));
    assert!(!again.take(9, at("2026-11-23T10:00:01Z")));
    assert!(again.take(10, t), "same second as reported ones, yet new");
    assert!(
        !again.take(3, at("2026-11-23T09:40:00Z")),
        "older than the window: reported long ago"
    );
    assert_eq!(again.finish().ids, vec![7, 8, 9, 10]);
}

#[test]
fn events_of_devices_read_one_after_another_are_all_reported_once() {
    // Device 1001's event is newer than device 1002's; 1001 is read first.
    let mut scan = EventMark::default().scan();
    assert!(scan.take(20, at("2026-11-23T10:05:00Z")));
    assert!(
        scan.take(19, at("2026-11-23T10:01:00Z")),
        "an older event of a device read later is still new"
    );
    let mark = scan.finish();
    // An event raised on device 1001 after it was read, older than the mark.
    let mut next = mark.scan();
    assert!(!next.take(20, at("2026-11-23T10:05:00Z")));
    assert!(
        next.take(21, at("2026-11-23T10:04:00Z")),
        "raised during the scan"
    );
    assert!(!next.take(19, at("2026-11-23T10:01:00Z")));
    let mark = next.finish();
    assert_eq!(mark.time, Some(at("2026-11-23T10:05:00Z")));
    // Reported events whose devices were not read this time are remembered.
    let later = mark.scan().finish();
    assert_eq!(later.ids, vec![19, 20, 21]);
    // Listed again once far past the window: forgotten, and not reported again either.
    let mut far = EventMark {
        time: Some(at("2026-11-23T11:00:00Z")),
        ids: later.ids.clone(),
    }
    .scan();
    assert!(!far.take(30, at("2026-11-23T10:30:00Z")));
    assert!(!far.take(19, at("2026-11-23T10:01:00Z")));
    assert!(far.take(31, at("2026-11-23T10:50:00Z")));
    assert_eq!(far.finish().ids, vec![20, 21, 31]);
}

#[test]
fn the_mark_keeps_at_most_the_newest_1000_ids() {
    let t = at("2026-11-23T10:00:00Z");
    let mut scan = EventMark::default().scan();
    for id in 1..=1500 {
        assert!(scan.take(id, t));
    }
    let ids = scan.finish().ids;
    assert_eq!(ids.len(), EVENT_IDS_LIMIT);
    assert_eq!(ids.first(), Some(&501));
}

#[test]
fn an_ineligible_device_is_counted_and_sampled_and_does_not_keep_ready_false() {
    let now = at(NOW);
    let spec = spec(QuotaMode::Set, after("30d"));
    let mut progress = progress_for(&spec, 1, None, now).unwrap();
    progress.complete = true;
    let set = declared_for_test(progress.expiry.0);
    let mut tally = QuotaTally::default();
    tally.add(1, Outcome::Set(&set), now);
    tally.add(2, Outcome::Set(&set), now);
    tally.add(3, Outcome::Ineligible("endpoint deleted".into()), now);
    let status = status_of(&tally, &progress, now);
    let counts = status.counts.as_ref().unwrap();
    assert_eq!(
        (
            counts.targeted,
            counts.active,
            counts.ineligible,
            counts.failed
        ),
        (3, 2, 1, 0)
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{}", ready.message);
    assert!(
        ready.message.contains("2 of 2 eligible") && ready.message.contains("1 ineligible"),
        "{}",
        ready.message
    );
    assert_eq!(status.problem_devices[0].device_id, 3);
    assert_eq!(status.problem_devices[0].reason, "Ineligible");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(
        stalled.status, "False",
        "an ineligible device needs no human"
    );
    assert_eq!(
        requeue_after(&tally, &progress, now),
        RESYNC,
        "not retried soon"
    );
    // Only ineligible devices: nothing to be Ready about.
    let mut only = QuotaTally::default();
    only.add(3, Outcome::Ineligible("endpoint deleted".into()), now);
    let status = status_of(&only, &progress, now);
    assert_eq!(
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status,
        "False"
    );
}

#[path = "observe_tests.rs"]
mod observe;

#[test]
fn a_quota_reads_at_resync_pace_only_once_its_generation_is_applied_in_full() {
    let spec = spec(QuotaMode::Set, after("30d"));
    let mut progress = progress_for(&spec, 2, None, at(NOW)).unwrap();
    let status = |progress: &QuotaProgress| DataQuotaStatus {
        observed_generation: Some(2),
        progress: Some(progress.clone()),
        ..DataQuotaStatus::default()
    };
    assert_eq!(
        read_urgency(&status(&progress), 2),
        ReadUrgency::Needed,
        "still applying"
    );
    progress.complete = true;
    assert_eq!(read_urgency(&status(&progress), 2), ReadUrgency::Resync);
    assert_eq!(
        read_urgency(&status(&progress), 3),
        ReadUrgency::Needed,
        "a new generation"
    );
    progress.retry_device_ids.push(2);
    assert_eq!(
        read_urgency(&status(&progress), 2),
        ReadUrgency::Needed,
        "a retry is due"
    );
    progress.retry_device_ids.clear();
    progress
        .top_ups_in_flight
        .push(simfleet_api::TopUpInFlight {
            device_id: 1,
            volume_mb: 10.0,
        });
    assert_eq!(
        read_urgency(&status(&progress), 2),
        ReadUrgency::Needed,
        "a journaled top-up"
    );
    assert_eq!(
        read_urgency(&DataQuotaStatus::default(), 1),
        ReadUrgency::Needed
    );
}
