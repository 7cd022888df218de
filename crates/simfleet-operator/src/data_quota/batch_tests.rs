use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use simfleet_api::model::QuotaState;
use simfleet_api::{
    ExhaustionAction, LocalObjectRef, Management, QuotaDeletePolicy, QuotaExpiry, QuotaTarget,
};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

const EXPIRY: &str = "2026-12-23T10:00:00Z";

fn spec(mode: QuotaMode) -> DataQuotaSpec {
    DataQuotaSpec {
        carrier_ref: LocalObjectRef {
            name: "emnify".into(),
        },
        target: QuotaTarget {
            device_ids: Some(vec![1, 2, 3, 4]),
            ..Default::default()
        },
        volume_mb: 500.0,
        expiry: QuotaExpiry {
            at: Some(Time(at(EXPIRY))),
            after: None,
        },
        auto_refill: false,
        threshold_percentage: Some(20),
        action_on_exhaustion: ExhaustionAction::Block,
        mode,
        on_delete: QuotaDeletePolicy::Orphan,
        management: Management::Manage,
    }
}

fn progress() -> QuotaProgress {
    QuotaProgress {
        generation: 1,
        started_at: Time(at("2026-11-23T10:00:00Z")),
        expiry: Time(at(EXPIRY)),
        done_through: None,
        complete: false,
        retry_device_ids: Vec::new(),
        top_ups_in_flight: Vec::new(),
    }
}

fn left(volume_mb: f64) -> QuotaReading {
    QuotaReading {
        state: QuotaState::Active,
        volume_mb,
        expiry: Some(at(EXPIRY)),
        auto_refill: false,
        threshold_percentage: Some(20.0),
        last_volume_added: Some(500.0),
    }
}

fn setting(volume_mb: f64) -> QuotaSetting {
    QuotaSetting {
        volume_mb,
        expiry: at(EXPIRY),
        auto_refill: false,
        threshold_percentage: Some(20),
    }
}

#[test]
fn a_first_pass_sets_every_readable_device_and_sorts_out_the_failures() {
    let readings = vec![
        (1, Ok(None)),
        (2, Ok(Some(left(120.0)))),
        (3, Err(CallFailure::Gone("endpoint 3 is deleted".into()))),
        (
            4,
            Err(CallFailure::Other("the carrier is unavailable".into())),
        ),
    ];
    let batch = QuotaBatch::plan(&spec(QuotaMode::Set), &progress(), false, &readings);
    assert_eq!(batch.sends, [(1, setting(500.0)), (2, setting(500.0))]);
    assert!(batch.journal.is_empty(), "a set is idempotent: no journal");
    // A deleted device is ineligible, not retried; an unavailable carrier is tried again.
    assert_eq!(batch.failed, [4]);
    assert_eq!(
        batch.seen,
        [
            (
                3,
                Seen::Ineligible(
                    "the carrier cannot give this device a quota: endpoint 3 is deleted".into()
                )
            ),
            (
                4,
                Seen::Failed {
                    refused: false,
                    message: "the carrier is unavailable".into()
                }
            ),
        ]
    );
    assert!(batch.moved());
}

#[test]
fn a_top_up_is_journaled_with_its_absolute_result() {
    let readings = vec![(1, Ok(Some(left(120.0)))), (2, Ok(None))];
    let batch = QuotaBatch::plan(&spec(QuotaMode::TopUp), &progress(), false, &readings);
    assert_eq!(batch.sends, [(1, setting(620.0)), (2, setting(500.0))]);
    assert_eq!(
        batch.journal,
        [
            TopUpInFlight {
                device_id: 1,
                volume_mb: 620.0
            },
            TopUpInFlight {
                device_id: 2,
                volume_mb: 500.0
            },
        ]
    );
}

#[test]
fn observe_only_sends_nothing_and_says_what_it_would_set() {
    let readings = vec![(1, Ok(Some(left(500.0)))), (2, Ok(Some(left(120.0))))];
    let batch = QuotaBatch::plan(&spec(QuotaMode::Set), &progress(), true, &readings);
    assert!(batch.sends.is_empty() && batch.journal.is_empty());
    assert!(!batch.moved());
    assert_eq!(
        batch.seen,
        [
            // Already the declared quota: kept.
            (1, Seen::Quota(Some(left(500.0)))),
            (
                2,
                Seen::WouldChange {
                    reading: Some(left(120.0)),
                    setting: setting(500.0),
                    top_up: false,
                }
            ),
        ]
    );
}

#[test]
fn a_device_at_its_threshold_or_used_up_is_flagged_for_events() {
    let mut spent = left(0.0);
    spent.state = QuotaState::Exhausted;
    let readings = vec![
        (1, Ok(Some(left(400.0)))),
        (2, Ok(Some(left(90.0)))),
        (3, Ok(Some(spent))),
        (4, Ok(None)),
    ];
    let batch = QuotaBatch::plan(&spec(QuotaMode::Set), &progress(), true, &readings);
    assert_eq!(batch.flagged, [2, 3]);
}

#[test]
fn a_set_that_ends_well_counts_as_read_and_a_refused_one_as_failed() {
    let mut batch = QuotaBatch::default();
    batch.record_set(1, &setting(500.0), Ok(()));
    let refused = CallFailure::Refused("volume out of bounds".into());
    batch.record_set(2, &setting(500.0), Err(&refused));
    assert_eq!(batch.set, [1]);
    assert_eq!(batch.failed, [2]);
    let Seen::Quota(Some(read)) = &batch.seen[0].1 else {
        panic!("{:?}", batch.seen[0]);
    };
    assert_eq!(
        (&read.state, read.volume_mb, read.expiry),
        (&QuotaState::Active, 500.0, Some(at(EXPIRY)))
    );
    assert_eq!(
        batch.seen[1].1,
        Seen::Failed {
            refused: true,
            message: "volume out of bounds".into()
        }
    );
}

#[test]
fn progress_moves_past_a_batch_and_keeps_what_to_retry() {
    let mut p = progress();
    p.top_ups_in_flight = vec![TopUpInFlight {
        device_id: 2,
        volume_mb: 620.0,
    }];
    p.retry_device_ids = vec![1];
    advance(&mut p, &[1, 2, 3], &[3]);
    assert!(p.top_ups_in_flight.is_empty(), "the journal is done with");
    assert_eq!(p.done_through, Some(3));
    // 1 succeeded this time; 3 failed and is not applied: listed for retry.
    assert_eq!(p.retry_device_ids, [3]);
    assert!(!is_done(&p, 3));
    // Once complete, doneThrough stays, and a failed applied device is not listed.
    p.complete = true;
    p.retry_device_ids.clear();
    advance(&mut p, &[4, 5], &[5]);
    assert_eq!(p.done_through, Some(3));
    assert!(p.retry_device_ids.is_empty());
}

#[test]
fn the_retry_list_is_bounded() {
    let mut p = progress();
    let devices: Vec<u64> = (1..=(RETRY_LIMIT as u64 + 50)).collect();
    advance(&mut p, &devices, &devices);
    assert_eq!(p.retry_device_ids.len(), RETRY_LIMIT);
}

#[test]
fn a_batch_journals_its_top_ups_and_a_journaled_top_up_sent_again_is_applied() {
    let mut p = progress();
    let sets = QuotaBatch::plan(&spec(QuotaMode::Set), &p, false, &[(1, Ok(None))]);
    assert!(!journal(&mut p, &sets), "a set needs no journal");
    let top_ups = QuotaBatch::plan(
        &spec(QuotaMode::TopUp),
        &p,
        false,
        &[(5, Ok(None)), (7, Ok(Some(left(20.0))))],
    );
    assert!(journal(&mut p, &top_ups));
    assert_eq!(p.top_ups_in_flight, top_ups.journal);
    p.done_through = Some(2);
    p.retry_device_ids = vec![7];
    journal_resent(&mut p, 7);
    assert_eq!(p.done_through, Some(7));
    assert!(p.retry_device_ids.is_empty());
    journal_resent(&mut p, 5);
    assert_eq!(p.done_through, Some(7), "never backwards");
    assert!(
        p.top_ups_in_flight.is_empty(),
        "each left the journal once sent"
    );
    finish(&mut p);
    assert!(p.complete && is_done(&p, 1_000));
}
