//! What a carrier account may spend in a calendar month (UTC) and what it has spent: every
//! request of the account is counted in one ledger, and reads that can wait (resyncs) are paced
//! so that the month's spend fits the budget. Writes are never held back by the budget: they
//! are what people asked for, and a pending action or a top-up is never dropped for it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp, ToSpan, tz::TimeZone};

use simfleet_api::model::{BudgetReading, ReadUrgency};
use simfleet_core::clock::Clock;

tokio::task_local! {
    /// The requests made by the task's current `metered` scope.
    static METER: Arc<AtomicU64>;
}

/// Runs `work` and counts the carrier requests it makes (attempts, retries included), whatever
/// else runs on the same account meanwhile.
pub async fn metered<F: Future>(work: F) -> (F::Output, u64) {
    let meter = Arc::new(AtomicU64::new(0));
    let output = METER.scope(meter.clone(), work).await;
    (output, meter.load(Ordering::Relaxed))
}

/// A read the budget holds back, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deferred {
    /// When the read fits the budget.
    pub until: Timestamp,
    /// Why, for logs and events (spent, limit and the fix).
    pub reason: String,
}

#[derive(Debug)]
struct LedgerState {
    month_start: Timestamp,
    month_end: Timestamp,
    spent: u64,
    since: Timestamp,
    seeded: bool,
    limit: Option<u64>,
    deferred_reads: u64,
    /// When this ledger began (the process's start, for this account).
    started: Timestamp,
    /// The time and count once the start-up burst was over, that the steady rate counts from.
    baseline: Option<(Timestamp, u64)>,
}

/// The request ledger of one carrier account, shared by every client built for it.
#[derive(Debug)]
pub struct RequestLedger {
    clock: Clock,
    state: Mutex<LedgerState>,
}

/// The UTC calendar month holding `now`: its first instant and the next month's.
pub fn month_bounds(now: Timestamp) -> (Timestamp, Timestamp) {
    let date = now.to_zoned(TimeZone::UTC).date();
    let first = date.first_of_month();
    let start = first
        .to_zoned(TimeZone::UTC)
        .expect("midnight UTC exists")
        .timestamp();
    let end = first
        .checked_add(1.month())
        .expect("a month after a valid date")
        .to_zoned(TimeZone::UTC)
        .expect("midnight UTC exists")
        .timestamp();
    (start, end)
}

/// What resync reads may have spent by `now`: the budget spread evenly over the month, plus
/// one day's share, so that a month's first reads are not held back.
pub fn paced_allowance(limit: u64, start: Timestamp, end: Timestamp, now: Timestamp) -> u64 {
    let length = end.duration_since(start).as_secs_f64();
    let elapsed = now.duration_since(start).as_secs_f64() + 86_400.0;
    (limit as f64 * (elapsed / length).min(1.0)) as u64
}

/// When the paced allowance reaches `needed` (at the latest, the month's end).
fn paced_until(limit: u64, start: Timestamp, end: Timestamp, needed: u64) -> Timestamp {
    let length = end.duration_since(start).as_secs_f64();
    let at = needed as f64 / limit.max(1) as f64 * length - 86_400.0;
    let at = start + SignedDuration::from_secs_f64(at.max(0.0).min(length));
    at.min(end)
}

/// How long after a process starts its requests are a start-up burst (every resource read
/// once, every account verified), not a rate to extrapolate.
const WARM_UP: SignedDuration = SignedDuration::from_hours(1);

/// The least time over which a steady rate is measured.
const RATE_WINDOW: SignedDuration = SignedDuration::from_mins(15);

/// The month's spend if requests go on at the steady rate: the rate seen since `baseline` (the
/// time and count once the start-up burst was over). `None` while that rate is not known yet
/// (within [`WARM_UP`] of the start, and for [`RATE_WINDOW`] after).
pub fn projection(
    spent: u64,
    baseline: Option<(Timestamp, u64)>,
    now: Timestamp,
    end: Timestamp,
) -> Option<u64> {
    let (from, counted_then) = baseline?;
    let window = now.duration_since(from);
    if window < RATE_WINDOW {
        return None;
    }
    let rate = spent.saturating_sub(counted_then) as f64 / window.as_secs_f64();
    let rest = end.duration_since(now).as_secs_f64().max(0.0);
    Some(spent + (rate * rest) as u64)
}

impl RequestLedger {
    /// A ledger with a monthly limit (`None`: no budget, nothing held back).
    pub fn new(clock: Clock, limit: Option<u64>) -> Self {
        let now = clock.now();
        let (month_start, month_end) = month_bounds(now);
        Self {
            clock,
            state: Mutex::new(LedgerState {
                month_start,
                month_end,
                spent: 0,
                since: now,
                seeded: false,
                limit,
                deferred_reads: 0,
                started: now,
                baseline: None,
            }),
        }
    }

    /// A ledger without a budget, for clients built outside the operator (benches, tools).
    pub fn unlimited() -> Arc<Self> {
        Arc::new(Self::new(Clock::default(), None))
    }

    fn current(&self) -> (std::sync::MutexGuard<'_, LedgerState>, Timestamp) {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("ledger lock");
        if now >= state.month_end {
            // A new month: the count starts again.
            let (start, end) = month_bounds(now);
            state.month_start = start;
            state.month_end = end;
            state.spent = 0;
            state.since = start;
            state.deferred_reads = 0;
            state.baseline = None;
        }
        if state.baseline.is_none() && now.duration_since(state.started) >= WARM_UP {
            state.baseline = Some((now, state.spent));
        }
        (state, now)
    }

    /// The time, by the operator's clock (the carrier clients read it here).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Sets the monthly limit (the account's spec changed).
    pub fn set_limit(&self, limit: Option<u64>) {
        self.current().0.limit = limit;
    }

    /// Counts one request.
    pub fn record(&self) {
        self.current().0.spent += 1;
        let _ = METER.try_with(|meter| meter.fetch_add(1, Ordering::Relaxed));
    }

    /// Adds what an earlier process counted this month (from the account's status), once: the
    /// count survives a restart. Another month's figures are ignored.
    pub fn seed(&self, month: &str, spent: u64, deferred_reads: u64, since: Timestamp) {
        let (mut state, _) = self.current();
        if state.seeded {
            return;
        }
        state.seeded = true;
        if month == month_name(state.month_start) {
            state.spent += spent;
            state.deferred_reads += deferred_reads;
            if let Some((_, counted)) = state.baseline.as_mut() {
                *counted += spent;
            }
            state.since = state.since.min(since).max(state.month_start);
        }
    }

    /// The month's figures now.
    pub fn reading(&self) -> BudgetReading {
        let (state, now) = self.current();
        BudgetReading {
            month: month_name(state.month_start),
            limit: state.limit,
            spent: state.spent,
            projected: projection(state.spent, state.baseline, now, state.month_end),
            since: state.since,
            deferred_reads: state.deferred_reads,
        }
    }

    /// Whether a read costing `cost` requests may go now; when it may not, it is counted as
    /// deferred and the answer says until when.
    pub fn admit_read(&self, cost: u64, urgency: ReadUrgency) -> Result<(), Deferred> {
        let (mut state, now) = self.current();
        let Some(limit) = state.limit else {
            return Ok(());
        };
        let needed = state.spent.saturating_add(cost);
        let deferred = match urgency {
            ReadUrgency::Needed if needed > limit => Some(Deferred {
                until: state.month_end,
                reason: format!(
                    "the month's budget is spent: {} of {limit} requests, and this read costs {cost}; reads resume on {} (raise spec.budget.requestsPerMonth to resume sooner)",
                    state.spent,
                    month_name(state.month_end)
                ),
            }),
            ReadUrgency::Resync => {
                let allowed = paced_allowance(limit, state.month_start, state.month_end, now);
                (needed > allowed).then(|| Deferred {
                    until: paced_until(limit, state.month_start, state.month_end, needed)
                        .max(now + SignedDuration::from_mins(1)),
                    reason: format!(
                        "resync reads are paced to the budget: {} requests spent, {allowed} allowed by now of {limit} this month, and this read costs {cost}",
                        state.spent
                    ),
                })
            }
            ReadUrgency::Needed => None,
        };
        match deferred {
            Some(deferred) => {
                state.deferred_reads += 1;
                Err(deferred)
            }
            None => Ok(()),
        }
    }
}

/// `YYYY-MM` of an instant, in UTC.
pub fn month_name(at: Timestamp) -> String {
    at.strftime("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use simfleet_core::clock::TimeSource;

    struct Fixed(Mutex<Timestamp>);

    impl TimeSource for Fixed {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn ledger(now: &str, limit: Option<u64>) -> (RequestLedger, Arc<Fixed>) {
        let source = Arc::new(Fixed(Mutex::new(at(now))));
        (
            RequestLedger::new(Clock::from_source(source.clone()), limit),
            source,
        )
    }

    #[test]
    fn months_are_utc_calendar_months() {
        let (start, end) = month_bounds(at("2026-02-14T23:59:00Z"));
        assert_eq!(start, at("2026-02-01T00:00:00Z"));
        assert_eq!(end, at("2026-03-01T00:00:00Z"));
        let (start, end) = month_bounds(at("2026-12-31T23:59:59Z"));
        assert_eq!(
            (start, end),
            (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(month_name(start), "2026-12");
    }

    #[test]
    fn resync_reads_are_paced_and_needed_reads_only_stop_when_the_month_is_spent() {
        // 30-day month, 3,000 requests: 100 a day, and one day's share at the start.
        let (ledger, clock) = ledger("2026-11-01T00:00:00Z", Some(3_000));
        for _ in 0..90 {
            ledger.record();
        }
        assert_eq!(ledger.admit_read(10, ReadUrgency::Resync), Ok(()));
        let held = ledger.admit_read(11, ReadUrgency::Resync).unwrap_err();
        // 101 requests are allowed once 1.01 days' share has accrued: 0.01 day (14 min 24 s)
        // after the start.
        assert_eq!(held.until, at("2026-11-01T00:14:24Z"));
        assert!(held.reason.contains("paced"), "{}", held.reason);
        assert_eq!(ledger.admit_read(11, ReadUrgency::Needed), Ok(()));
        assert_eq!(ledger.reading().deferred_reads, 1);
        // Two weeks in (14 days and a day's share): 1,500 are allowed, 90 spent.
        *clock.0.lock().unwrap() = at("2026-11-15T00:00:00Z");
        assert_eq!(ledger.admit_read(1_410, ReadUrgency::Resync), Ok(()));
        assert!(ledger.admit_read(1_411, ReadUrgency::Resync).is_err());
        // The month's budget spent: even needed reads wait for the next month.
        for _ in 0..2_910 {
            ledger.record();
        }
        let held = ledger.admit_read(1, ReadUrgency::Needed).unwrap_err();
        assert_eq!(held.until, at("2026-12-01T00:00:00Z"));
        assert!(held.reason.contains("3000 of 3000"), "{}", held.reason);
        // A new month starts from nothing.
        *clock.0.lock().unwrap() = at("2026-12-01T00:00:01Z");
        assert_eq!(ledger.reading().spent, 0);
        assert_eq!(ledger.reading().month, "2026-12");
        assert_eq!(ledger.admit_read(1, ReadUrgency::Needed), Ok(()));
    }

    #[test]
    fn without_a_budget_nothing_is_held_back() {
        let (ledger, _) = ledger("2026-11-01T00:00:00Z", None);
        for _ in 0..1_000 {
            ledger.record();
        }
        assert_eq!(ledger.admit_read(u64::MAX / 2, ReadUrgency::Resync), Ok(()));
        assert_eq!(ledger.reading().limit, None);
    }

    #[test]
    fn the_projection_extends_the_steady_rate_not_the_start_up_burst() {
        // 1,000 requests a day since the baseline (3 days): 27 more days at that rate.
        let projected = projection(
            5_000,
            Some((at("2026-11-01T00:00:00Z"), 2_000)),
            at("2026-11-04T00:00:00Z"),
            at("2026-12-01T00:00:00Z"),
        );
        assert_eq!(projected, Some(5_000 + 27_000));
        // Too short a window: no estimate yet.
        let early = projection(
            5_000,
            Some((at("2026-11-01T00:00:00Z"), 2_000)),
            at("2026-11-01T00:10:00Z"),
            at("2026-12-01T00:00:00Z"),
        );
        assert_eq!(early, None);
        assert_eq!(
            projection(
                5_000,
                None,
                at("2026-11-04T00:00:00Z"),
                at("2026-12-01T00:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn a_start_up_burst_is_not_projected_over_the_month() {
        let (ledger, clock) = ledger("2026-11-02T00:00:00Z", Some(1_000_000));
        // Ten minutes of first reads: 6,000 requests. No estimate while warming up.
        for _ in 0..6_000 {
            ledger.record();
        }
        let advance = |by: SignedDuration| {
            let mut now = clock.0.lock().unwrap();
            *now = now.checked_add(by).unwrap();
        };
        advance(SignedDuration::from_mins(10));
        assert_eq!(ledger.reading().projected, None);
        // After the warm-up, a steady 1 request a minute: about 1 a minute for the rest.
        advance(SignedDuration::from_mins(50));
        assert_eq!(
            ledger.reading().projected,
            None,
            "the window has just begun"
        );
        for _ in 0..60 {
            advance(SignedDuration::from_mins(1));
            ledger.record();
        }
        let projected = ledger.reading().projected.unwrap();
        let rest_minutes = at("2026-12-01T00:00:00Z")
            .duration_since(at("2026-11-02T02:00:00Z"))
            .as_mins() as u64;
        assert_eq!(projected, 6_060 + rest_minutes);
    }

    #[test]
    fn an_earlier_processs_count_is_added_once_and_only_for_the_same_month() {
        let (november, _) = ledger("2026-11-20T00:00:00Z", Some(10));
        november.record();
        november.seed("2026-11", 500, 3, at("2026-11-02T00:00:00Z"));
        november.seed("2026-11", 500, 3, at("2026-11-02T00:00:00Z"));
        let reading = november.reading();
        assert_eq!(reading.spent, 501);
        assert_eq!(reading.since, at("2026-11-02T00:00:00Z"));
        assert_eq!(reading.deferred_reads, 3);
        let (october, _) = ledger("2026-10-03T00:00:00Z", None);
        october.seed("2026-09", 500, 3, at("2026-09-02T00:00:00Z"));
        assert_eq!(october.reading().spent, 0);
    }

    #[tokio::test]
    async fn a_metered_scope_counts_only_its_own_requests() {
        let ledger = RequestLedger::unlimited();
        ledger.record();
        let ((), inside) = metered(async {
            ledger.record();
            ledger.record();
        })
        .await;
        assert_eq!(inside, 2);
        assert_eq!(ledger.reading().spent, 3);
    }
}
