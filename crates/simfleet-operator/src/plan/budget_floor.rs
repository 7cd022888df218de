//! Whether an account's monthly budget can pay for a resource at all: its cheapest full
//! observation must fit in a month, or the resource stalls with `BudgetTooSmall`, naming the
//! field and the fix, and makes no carrier call.

use crate::data_quota::plan::SpecProblem;
use crate::sim_group::plan::RESYNC;

/// Condition reason of a resource the budget cannot pay for.
pub(crate) const BUDGET_TOO_SMALL: &str = "BudgetTooSmall";

/// A SimGroup whose last full observation cost `requests`: refused when that is more than the
/// account's `limit` a month. The fix names what a resync at the group's period needs.
pub(crate) fn group_over_budget(requests: u64, limit: u64, account: &str) -> Option<SpecProblem> {
    (requests > limit).then(|| {
        let monthly = requests * (31 * 86_400 / RESYNC.as_secs());
        SpecProblem {
            reason: BUDGET_TOO_SMALL,
            message: format!(
                "observing this group costs {requests} carrier requests, more than CarrierAccount {account}'s budget of {limit} a month; raise spec.budget.requestsPerMonth to at least {monthly} (a resync every {} min for a month) or select fewer SIMs",
                RESYNC.as_secs() / 60,
            ),
        }
    })
}

/// A DataQuota targeting `targeted` devices: reading each once (and listing the quota events
/// once) is the least it can cost; refused when that is more than the account's `limit`.
pub(crate) fn quota_over_budget(targeted: u64, limit: u64, account: &str) -> Option<SpecProblem> {
    let observation = targeted + 1;
    (observation > limit).then(|| SpecProblem {
        reason: BUDGET_TOO_SMALL,
        message: format!(
            "reading this DataQuota's {} once costs {observation} carrier requests, more than CarrierAccount {account}'s budget of {limit} a month; raise spec.budget.requestsPerMonth on the account or target fewer devices",
            super::numbers::count(targeted, "device")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_over_budget_is_told_what_budget_its_resyncs_need() {
        assert_eq!(group_over_budget(300, 300, "emnify"), None);
        let problem = group_over_budget(301, 300, "emnify").unwrap();
        assert_eq!(problem.reason, "BudgetTooSmall");
        // 301 requests every 10 minutes for 31 days.
        assert!(
            problem.message.contains("to at least 1343664"),
            "{}",
            problem.message
        );
        assert!(problem.message.contains("spec.budget.requestsPerMonth"));
        assert!(
            problem
                .message
                .contains("CarrierAccount emnify's budget of 300")
        );
    }

    #[test]
    fn a_quota_over_budget_counts_one_read_a_device_and_the_listing() {
        assert_eq!(quota_over_budget(99, 100, "emnify"), None);
        let problem = quota_over_budget(100, 100, "emnify").unwrap();
        assert_eq!(problem.reason, "BudgetTooSmall");
        assert!(
            problem.message.starts_with(
                "reading this DataQuota's 100 devices once costs 101 carrier requests"
            )
        );
        assert!(problem.message.contains("spec.budget.requestsPerMonth"));
    }
}
