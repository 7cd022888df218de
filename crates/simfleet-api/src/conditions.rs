//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) in the standard `metav1.Condition`
//! shape, set so that `lastTransitionTime` moves only when the status changes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The overall verdict (kstatus).
pub const READY: &str = "Ready";
/// Work in progress (kstatus).
pub const RECONCILING: &str = "Reconciling";
/// Cannot progress without a human (kstatus).
pub const STALLED: &str = "Stalled";

/// Sets a condition, keeping `lastTransitionTime` when its status does not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: i64,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = Some(generation);
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            observed_generation: Some(generation),
            last_transition_time: Time(now),
        }),
    }
}

/// One condition's status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What a person reads.
    pub message: String,
}

impl Verdict {
    /// A verdict.
    pub fn new(status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Sets the three kstatus conditions at once.
pub fn set_kstatus(
    conditions: &mut Vec<Condition>,
    [ready, reconciling, stalled]: [Verdict; 3],
    generation: i64,
    now: Timestamp,
) {
    for (type_, verdict) in [
        (READY, ready),
        (RECONCILING, reconciling),
        (STALLED, stalled),
    ] {
        set(
            conditions,
            type_,
            verdict.status,
            &verdict.reason,
            verdict.message,
            generation,
            now,
        );
    }
}

/// Sets the kstatus conditions of a resource that cannot go on without a human: `Stalled` with
/// the reason and the message (which names the fix), `Ready` false with the same, and
/// `Reconciling` false, saying what it waits for. Every kind is stalled this one way.
pub fn set_stalled(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    waiting_for: &str,
    generation: i64,
    now: Timestamp,
) {
    set_kstatus(
        conditions,
        [
            Verdict::new(false, reason, message),
            Verdict::new(false, reason, waiting_for),
            Verdict::new(true, reason, message),
        ],
        generation,
        now,
    );
}

/// True when the condition is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_resource_says_why_in_all_three_conditions() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set_stalled(
            &mut conditions,
            "BudgetTooSmall",
            "raise it",
            "waiting",
            4,
            now,
        );
        let shown: Vec<(&str, &str, &str, &str, Option<i64>)> = conditions
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_str(),
                    c.message.as_str(),
                    c.observed_generation,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (READY, "False", "BudgetTooSmall", "raise it", Some(4)),
                (RECONCILING, "False", "BudgetTooSmall", "waiting", Some(4)),
                (STALLED, "True", "BudgetTooSmall", "raise it", Some(4)),
            ]
        );
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let t1: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            "Progressing",
            "1 of 2",
            1,
            t1,
        );
        set(
            &mut conditions,
            READY,
            false,
            "Progressing",
            "still 1 of 2",
            2,
            t2,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t1));
        assert_eq!(conditions[0].message, "still 1 of 2");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set(&mut conditions, READY, true, "Converged", "2 of 2", 2, t2);
        assert_eq!(conditions[0].last_transition_time, Time(t2));
        assert!(is_true(&conditions, READY));
        assert!(!is_true(&conditions, STALLED));
    }
}
