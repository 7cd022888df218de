//! A CarrierAccount's status from what verifying it found: the kstatus verdict, the carrier's
//! capabilities, when it was last verified, and the month's request figures. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{self, READY, Verdict};
use crate::api::{BudgetStatus, CarrierAccountStatus, CarrierCapabilities};
use crate::model::BudgetReading;

/// How often the month's figures in status are refreshed (a status write; no carrier call).
pub(crate) const BUDGET_REFRESH: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// The account's status: verified (`Ok`: the message and the capabilities) or not (`Err`: the
/// reason and the message naming the fix). `lastVerifiedTime` is kept while the account stays
/// verified, so a resync writes nothing.
pub(crate) fn account_status(
    previous: &CarrierAccountStatus,
    generation: i64,
    verdict: Result<(String, CarrierCapabilities), (&str, String)>,
    budget: Option<BudgetStatus>,
    now: Timestamp,
) -> CarrierAccountStatus {
    let was_ready = conditions::is_true(&previous.conditions, READY);
    let mut status = CarrierAccountStatus {
        observed_generation: Some(generation),
        conditions: previous.conditions.clone(),
        capabilities: None,
        last_verified_time: previous.last_verified_time.clone(),
        budget,
    };
    match verdict {
        Ok((message, capabilities)) => {
            status.capabilities = Some(capabilities);
            if !was_ready {
                status.last_verified_time = Some(Time(now));
            }
            conditions::set_kstatus(
                &mut status.conditions,
                [
                    Verdict::new(true, "Verified", message),
                    Verdict::new(false, "Idle", "verified"),
                    Verdict::new(false, "Verified", "nothing needs a human"),
                ],
                generation,
                now,
            );
        }
        Err((reason, message)) => conditions::set_stalled(
            &mut status.conditions,
            reason,
            &message,
            "waiting for the fix the message names",
            generation,
            now,
        ),
    }
    status
}

/// The budget figures to publish: the ledger's, unless the published ones are of this month
/// and fresher than `BUDGET_REFRESH` (so that a resync, or this controller's own status write,
/// writes nothing), or there is no ledger yet.
pub(crate) fn budget_status(
    published: Option<&BudgetStatus>,
    reading: Option<BudgetReading>,
    now: jiff::Timestamp,
) -> Option<BudgetStatus> {
    let Some(reading) = reading else {
        return published.cloned();
    };
    if let Some(published) = published
        && published.month == reading.month
        && published.requests_per_month == reading.limit
        && now.duration_since(published.updated_time.0) < BUDGET_REFRESH
    {
        return Some(published.clone());
    }
    Some(BudgetStatus {
        month: reading.month,
        requests_per_month: reading.limit,
        requests_spent: reading.spent,
        projected_requests: reading.projected,
        deferred_reads: reading.deferred_reads,
        since: Time(reading.since),
        updated_time: Time(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn capabilities() -> CarrierCapabilities {
        CarrierCapabilities {
            max_sims_per_action: 10_000,
            bulk_state_change: true,
            bulk_state_change_unavailable: None,
            data_quota: false,
        }
    }

    #[test]
    fn a_verified_account_is_ready_and_keeps_its_verification_time_while_it_stays_so() {
        let first = account_status(
            &CarrierAccountStatus::default(),
            1,
            Ok(("credentials accepted".into(), capabilities())),
            None,
            at("2026-11-01T00:00:00Z"),
        );
        assert!(conditions::is_true(&first.conditions, READY));
        assert_eq!(
            first.last_verified_time,
            Some(Time(at("2026-11-01T00:00:00Z")))
        );
        let again = account_status(
            &first,
            1,
            Ok(("credentials accepted".into(), capabilities())),
            None,
            at("2026-11-01T00:10:00Z"),
        );
        assert_eq!(again, first, "a resync changes nothing");
        let broken = account_status(
            &again,
            1,
            Err((
                "InvalidCredentials",
                "the carrier refused the key; fix the Secret".into(),
            )),
            None,
            at("2026-11-01T00:20:00Z"),
        );
        assert!(!conditions::is_true(&broken.conditions, READY));
        assert!(conditions::is_true(&broken.conditions, conditions::STALLED));
        assert_eq!(broken.capabilities, None);
        assert_eq!(
            broken.last_verified_time, first.last_verified_time,
            "when it last worked"
        );
        let reconciling = broken
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::RECONCILING)
            .unwrap();
        assert_eq!(
            reconciling.reason, "InvalidCredentials",
            "not Idle/verified"
        );
    }

    #[test]
    fn budget_figures_are_refreshed_every_five_minutes_or_at_a_new_month_or_limit() {
        let reading = |spent: u64, month: &str, limit: Option<u64>| BudgetReading {
            month: month.into(),
            limit,
            spent,
            projected: spent * 10,
            since: at("2026-11-01T00:00:00Z"),
            deferred_reads: 0,
        };
        let t0 = at("2026-11-03T00:00:00Z");
        let first = budget_status(None, Some(reading(10, "2026-11", Some(100))), t0).unwrap();
        assert_eq!((first.requests_spent, first.projected_requests), (10, 100));
        let soon = t0 + jiff::SignedDuration::from_mins(4);
        assert_eq!(
            budget_status(Some(&first), Some(reading(20, "2026-11", Some(100))), soon),
            Some(first.clone()),
            "fresh enough: no write"
        );
        let later = t0 + BUDGET_REFRESH;
        assert_eq!(
            budget_status(Some(&first), Some(reading(20, "2026-11", Some(100))), later)
                .unwrap()
                .requests_spent,
            20
        );
        assert_eq!(
            budget_status(Some(&first), Some(reading(20, "2026-11", Some(500))), soon)
                .unwrap()
                .requests_per_month,
            Some(500),
            "a new limit shows at once"
        );
        assert_eq!(
            budget_status(Some(&first), None, soon),
            Some(first.clone()),
            "no ledger yet (after a restart, before the client is built): kept"
        );
    }
}
