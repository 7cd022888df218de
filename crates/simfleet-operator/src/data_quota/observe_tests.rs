//! Observe-only DataQuotas (`management: Observe`): what counts as already declared, and the
//! status that says so.

use super::*;

#[test]
fn observing_keeps_a_device_that_already_has_the_declared_quota_and_reports_the_others() {
    let now = at(NOW);
    let absolute = QuotaExpiry {
        at: Some(Time(at("2027-01-01T00:00:00Z"))),
        after: None,
    };
    let set = spec(QuotaMode::Set, absolute);
    let progress = progress_for(&set, 1, None, now).unwrap();
    let declared = reading(QuotaState::Active, 500.0, at("2027-01-01T00:00:00Z"));
    assert_eq!(
        decide_observed(&set, &progress, 1, Some(&declared)),
        DeviceAction::Keep
    );
    // A managed DataQuota sets it anyway (idempotent); observing must not call that a change.
    assert!(matches!(
        decide(&set, &progress, 1, Some(&declared)),
        DeviceAction::Set(_)
    ));
    let other_volume = reading(QuotaState::Active, 200.0, at("2027-01-01T00:00:00Z"));
    let other_expiry = reading(QuotaState::Active, 500.0, at("2027-02-01T00:00:00Z"));
    for differs in [Some(&other_volume), Some(&other_expiry), None] {
        assert!(matches!(
            decide_observed(&set, &progress, 1, differs),
            DeviceAction::Set(_)
        ));
    }
    // expiry.after: any expiry ahead and no later than `after` from now is the declared one.
    let relative = spec(QuotaMode::Set, after("30d"));
    let progress = progress_for(&relative, 1, None, now).unwrap();
    let in_ten_days = reading(QuotaState::Active, 500.0, at("2026-12-03T10:00:00Z"));
    let in_sixty_days = reading(QuotaState::Active, 500.0, at("2027-01-22T10:00:00Z"));
    assert_eq!(
        decide_observed(&relative, &progress, 1, Some(&in_ten_days)),
        DeviceAction::Keep
    );
    assert!(matches!(
        decide_observed(&relative, &progress, 1, Some(&in_sixty_days)),
        DeviceAction::Set(_)
    ));
    // A top-up always changes the volume.
    let top_up = spec(QuotaMode::TopUp, after("30d"));
    let progress = progress_for(&top_up, 1, None, now).unwrap();
    assert!(matches!(
        decide_observed(&top_up, &progress, 1, Some(&in_ten_days)),
        DeviceAction::TopUp(_)
    ));
}

#[test]
fn an_observed_status_is_ready_only_when_nothing_would_change_and_keeps_the_progress() {
    let now = at(NOW);
    let set = spec(QuotaMode::Set, after("30d"));
    let progress = progress_for(&set, 1, None, now).unwrap();
    let matching = reading(QuotaState::Active, 500.0, at("2026-12-03T10:00:00Z"));
    let low = reading(QuotaState::Active, 20.0, at("2026-12-03T10:00:00Z"));
    let setting = declared(&set, &progress, 500.0);
    let previous = DataQuotaStatus::default();

    let mut tally = QuotaTally::default();
    tally.add(1, Outcome::Read(Some(&matching)), now);
    tally.add(
        2,
        Outcome::WouldChange {
            reading: Some(&low),
            setting: &setting,
            top_up: false,
        },
        now,
    );
    tally.add(
        3,
        Outcome::WouldChange {
            reading: None,
            setting: &setting,
            top_up: false,
        },
        now,
    );
    let status = observed_status(&previous, 1, &tally, EventMark::default(), now);
    let counts = status.counts.clone().unwrap();
    assert_eq!(
        (
            counts.targeted,
            counts.would_change,
            counts.none,
            counts.active
        ),
        (3, 2, 1, 2)
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ObserveOnly")
    );
    assert!(
        ready
            .message
            .starts_with("1 of 3 eligible devices have the declared quota"),
        "{}",
        ready.message
    );
    let reconciling = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .unwrap();
    assert!(
        reconciling
            .message
            .contains("2 devices would get a new quota"),
        "{}",
        reconciling.message
    );
    assert_eq!(status.progress, None, "nothing applied, nothing recorded");
    assert!(
        status.problem_devices.iter().any(|p| p.device_id == 2
            && p.reason == "WouldChange"
            && p.message.contains("20 MB left")),
        "{:?}",
        status.problem_devices
    );

    let mut tally = QuotaTally::default();
    tally.add(1, Outcome::Read(Some(&matching)), now);
    let status = observed_status(&previous, 1, &tally, EventMark::default(), now);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Converged")
    );
}
