//! A CarrierAccount's status from what checking it found: the verdict and its words, the
//! kstatus conditions, the carrier's capabilities, when it was last verified, the month's
//! request figures, and when to check again. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use simfleet_api::conditions::{self, READY, Verdict};
use simfleet_api::model::BudgetReading;
use simfleet_api::{BudgetStatus, CarrierAccountSpec, CarrierAccountStatus, CarrierCapabilities};

/// How often the month's figures in status are refreshed (a status write; no carrier call).
pub(crate) const BUDGET_REFRESH: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// How often an account's credentials are checked against the carrier (one call).
pub(crate) const VERIFY_PERIOD: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);
/// How soon an account that is not verified is looked at again.
pub(crate) const NOT_READY_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// What checking an account found, in the order it is checked: the URL before the Secret is
/// read, the Secret before anything is built, and the carrier's answer last.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AccountFinding {
    /// `baseUrl` is not among the carrier URLs the operator may send credentials to.
    UrlNotAllowed {
        /// The prefixes allowed for this provider.
        allowed: Vec<String>,
    },
    /// The Secret `secretRef` names does not exist.
    SecretNotFound,
    /// The Secret has no such key.
    SecretKeyMissing,
    /// The Secret has the key, with an empty value.
    SecretKeyEmpty,
    /// The value is not of the form the carrier's credential takes: the client's words.
    SecretValueInvalid(String),
    /// The carrier accepted the credentials.
    Accepted(CarrierCapabilities),
    /// The carrier refused the credentials (401 or 403): its words.
    Refused(String),
    /// The carrier could not be asked (unreachable, 5xx, an answer not understood): what
    /// happened.
    Unreachable(String),
    /// The credentials were not tried, lest a failure lock authentication for every account
    /// on the carrier host: why.
    Deferred(String),
}

/// The account's verdict, in words that name the fix: verified (`Ok`: the message and the
/// capabilities), or not (`Err`: the reason and the message).
pub(crate) fn verdict(
    spec: &CarrierAccountSpec,
    namespace: &str,
    finding: AccountFinding,
) -> Result<(String, CarrierCapabilities), (&'static str, String)> {
    let url = spec.effective_base_url();
    let secret = &spec.secret_ref.name;
    let key = spec.effective_secret_key();
    match finding {
        AccountFinding::UrlNotAllowed { allowed } => Err((
            "UrlNotAllowed",
            format!(
                "baseUrl {url} is not among the carrier URLs this operator may send credentials to ({}); use one of them, or ask the operator's administrator to allow it (simfleet run --allowed-carrier-url, Helm value allowedCarrierUrls)",
                allowed.join(", ")
            ),
        )),
        AccountFinding::SecretNotFound => Err((
            "SecretNotFound",
            format!(
                "Secret {secret} not found in namespace {namespace}; create it with the key {key}"
            ),
        )),
        AccountFinding::SecretKeyMissing => Err((
            "SecretKeyMissing",
            format!("Secret {secret} has no key {key}; add it or set secretRef.key"),
        )),
        AccountFinding::SecretKeyEmpty => Err((
            "SecretKeyEmpty",
            format!("Secret {secret} key {key} is empty; put the credential in it"),
        )),
        AccountFinding::SecretValueInvalid(message) => Err((
            "InvalidSecretValue",
            format!("Secret {secret} key {key}: {message}; fix the value in the Secret"),
        )),
        AccountFinding::Accepted(capabilities) => {
            Ok((format!("credentials accepted by {url}"), capabilities))
        }
        AccountFinding::Refused(message) => Err((
            "InvalidCredentials",
            format!(
                "the carrier refused the credentials in Secret {secret} (key {key}): {message}"
            ),
        )),
        AccountFinding::Unreachable(message) => Err(("Unreachable", format!("{url}: {message}"))),
        AccountFinding::Deferred(message) => {
            Err(("AuthenticationDeferred", format!("{url}: {message}")))
        }
    }
}

/// How long refused credentials wait before they are tried again: 30 s after the first refusal,
/// doubling to at most an hour (each try is a failed authentication, and carriers lock those).
pub(crate) fn refusal_backoff(refusals: u32) -> jiff::SignedDuration {
    use backon::BackoffBuilder;
    let wait = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_secs(30))
        .with_max_delay(std::time::Duration::from_secs(3600))
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(refusals.saturating_sub(1) as usize)
        .unwrap_or(std::time::Duration::from_secs(3600));
    jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::from_hours(1))
}

/// When the credentials were last accepted, if that still stands without a new call: less
/// than [`VERIFY_PERIOD`] ago, for the same account and Secret (`verified_at` is kept per
/// fingerprint), with the account Ready for this generation. A reconcile that this
/// controller's own status write caused then makes no carrier call.
pub(crate) fn still_verified(
    verified_at: Option<Timestamp>,
    previous: &CarrierAccountStatus,
    generation: i64,
    now: Timestamp,
) -> Option<Timestamp> {
    verified_at
        .filter(|at| now.duration_since(*at) < VERIFY_PERIOD)
        .filter(|_| {
            conditions::is_true(&previous.conditions, READY)
                && previous.observed_generation == Some(generation)
        })
}

/// How long until the account is looked at again: soon while it is not verified; otherwise
/// when the credentials are due for a check or the budget figures for a refresh, whichever
/// comes first (at least a second).
pub(crate) fn next_check(
    status: &CarrierAccountStatus,
    verified_at: Option<Timestamp>,
    now: Timestamp,
) -> std::time::Duration {
    if !conditions::is_true(&status.conditions, READY) {
        return NOT_READY_RECHECK;
    }
    let verify_due = verified_at.unwrap_or(now) + VERIFY_PERIOD;
    let budget_due = status
        .budget
        .as_ref()
        .map_or(verify_due, |b| b.updated_time.0 + BUDGET_REFRESH);
    let wait = verify_due.min(budget_due).duration_since(now);
    wait.max(jiff::SignedDuration::from_secs(1)).unsigned_abs()
}

/// The status of an account being deleted while resources still use it: `Reconciling` says
/// what the deletion waits for; `Ready` is kept, since its users need the carrier to clean up.
pub(crate) fn deletion_waits_status(
    previous: &CarrierAccountStatus,
    generation: i64,
    users: &[String],
    now: Timestamp,
) -> CarrierAccountStatus {
    let mut status = previous.clone();
    status.used_by = Some(u32::try_from(users.len()).unwrap_or(u32::MAX));
    let named: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
    let more = users.len().saturating_sub(named.len());
    conditions::set(
        &mut status.conditions,
        conditions::RECONCILING,
        true,
        "DeletionWaitsForUsers",
        format!(
            "deleting: waits until the {} resources that use this account are gone ({}{}); their onDelete runs with it",
            users.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
        generation,
        now,
    );
    status
}

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
        used_by: previous.used_by,
        secret_held: previous.secret_held.clone(),
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

    #[test]
    fn refused_credentials_wait_longer_each_time_up_to_an_hour() {
        let waits: Vec<i64> = [1, 2, 3, 4, 8, 20]
            .iter()
            .map(|&n| refusal_backoff(n).as_secs())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 3600, 3600]);
    }

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

    fn spec() -> CarrierAccountSpec {
        serde_json::from_value(serde_json::json!({
            "provider": "emnify",
            "secretRef": {"name": "emnify-token"},
        }))
        .unwrap()
    }

    #[test]
    fn each_finding_has_its_reason_and_names_the_fix() {
        let cases = [
            (
                AccountFinding::UrlNotAllowed {
                    allowed: vec!["https://cdn.emnify.net".into()],
                },
                "UrlNotAllowed",
                "(https://cdn.emnify.net); use one of them, or ask the operator's administrator to allow it (simfleet run --allowed-carrier-url, Helm value allowedCarrierUrls)",
            ),
            (
                AccountFinding::SecretNotFound,
                "SecretNotFound",
                "Secret emnify-token not found in namespace fleet; create it with the key",
            ),
            (
                AccountFinding::SecretKeyMissing,
                "SecretKeyMissing",
                "Secret emnify-token has no key",
            ),
            (
                AccountFinding::SecretKeyEmpty,
                "SecretKeyEmpty",
                "Secret emnify-token key applicationToken is empty; put the credential in it",
            ),
            (
                AccountFinding::SecretValueInvalid("must be AUTH_KEY_ID:AUTH_KEY".into()),
                "InvalidSecretValue",
                "Secret emnify-token key applicationToken: must be AUTH_KEY_ID:AUTH_KEY; fix the value",
            ),
            (
                AccountFinding::Refused("bad token".into()),
                "InvalidCredentials",
                "the carrier refused the credentials in Secret emnify-token (key",
            ),
            (
                AccountFinding::Unreachable("connection refused".into()),
                "Unreachable",
                ": connection refused",
            ),
        ];
        for (finding, reason, words) in cases {
            let (got, message) = verdict(&spec(), "fleet", finding).unwrap_err();
            assert_eq!(got, reason);
            assert!(message.contains(words), "{reason}: {message}");
        }
        let (message, caps) =
            verdict(&spec(), "fleet", AccountFinding::Accepted(capabilities())).unwrap();
        assert!(
            message.starts_with("credentials accepted by https://"),
            "{message}"
        );
        assert_eq!(caps, capabilities());
    }

    #[test]
    fn credentials_accepted_moments_ago_stand_only_for_a_ready_account_of_this_generation() {
        let t0 = at("2026-11-01T00:00:00Z");
        let ready = account_status(
            &CarrierAccountStatus::default(),
            3,
            Ok(("ok".into(), capabilities())),
            None,
            t0,
        );
        let soon = t0 + jiff::SignedDuration::from_mins(9);
        assert_eq!(still_verified(Some(t0), &ready, 3, soon), Some(t0));
        assert_eq!(
            still_verified(None, &ready, 3, soon),
            None,
            "never verified"
        );
        assert_eq!(
            still_verified(Some(t0), &ready, 4, soon),
            None,
            "a new generation"
        );
        let due = t0 + VERIFY_PERIOD;
        assert_eq!(still_verified(Some(t0), &ready, 3, due), None, "due again");
        let broken = account_status(&ready, 3, Err(("Unreachable", "down".into())), None, t0);
        assert_eq!(
            still_verified(Some(t0), &broken, 3, soon),
            None,
            "not Ready"
        );
    }

    #[test]
    fn the_next_check_is_at_the_verification_or_the_budget_refresh_whichever_is_first() {
        let t0 = at("2026-11-01T00:00:00Z");
        let mut ready = account_status(
            &CarrierAccountStatus::default(),
            1,
            Ok(("ok".into(), capabilities())),
            None,
            t0,
        );
        assert_eq!(
            next_check(&ready, Some(t0), t0),
            VERIFY_PERIOD.unsigned_abs()
        );
        let reading = BudgetReading {
            month: "2026-11".into(),
            limit: Some(100),
            spent: 1,
            projected: Some(30),
            since: t0,
            deferred_reads: 0,
        };
        ready.budget = budget_status(None, Some(reading), t0);
        assert_eq!(
            next_check(&ready, Some(t0), t0),
            BUDGET_REFRESH.unsigned_abs()
        );
        // Past due: at least a second, not a busy loop.
        let late = t0 + jiff::SignedDuration::from_hours(1);
        assert_eq!(
            next_check(&ready, Some(t0), late),
            std::time::Duration::from_secs(1)
        );
        let broken = account_status(&ready, 1, Err(("Unreachable", "down".into())), None, t0);
        assert_eq!(next_check(&broken, Some(t0), t0), NOT_READY_RECHECK);
    }

    #[test]
    fn budget_figures_are_refreshed_every_five_minutes_or_at_a_new_month_or_limit() {
        let reading = |spent: u64, month: &str, limit: Option<u64>| BudgetReading {
            month: month.into(),
            limit,
            spent,
            projected: Some(spent * 10),
            since: at("2026-11-01T00:00:00Z"),
            deferred_reads: 0,
        };
        let t0 = at("2026-11-03T00:00:00Z");
        let first = budget_status(None, Some(reading(10, "2026-11", Some(100))), t0).unwrap();
        assert_eq!(
            (first.requests_spent, first.projected_requests),
            (10, Some(100))
        );
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
