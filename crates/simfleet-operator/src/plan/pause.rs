//! The pause annotation (`simfleet.io/paused`): whether a resource, or the CarrierAccount it
//! uses, is paused, and the conditions a paused resource shows. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use simfleet_api::PAUSED_ANNOTATION;
use simfleet_api::conditions::{self, RECONCILING};

/// The `Reconciling` reason of a paused resource.
pub const PAUSED: &str = "Paused";

/// Why a resource is paused, in words for its status and events; `None` when it is not.
/// `"true"` pauses and `"false"` does not (either case); any other value pauses too, and the
/// message names the fix, so that a typo never lets the operator touch a fleet meant to be left
/// alone.
pub(crate) fn pause_reason(annotations: &BTreeMap<String, String>, whose: &str) -> Option<String> {
    let value = annotations.get(PAUSED_ANNOTATION)?;
    match value.trim().to_ascii_lowercase().as_str() {
        "false" => None,
        "true" => Some(format!(
            "{whose} carries {PAUSED_ANNOTATION}: \"true\": no carrier request is made; remove the annotation (or set it to \"false\") to resume"
        )),
        _ => Some(format!(
            "{whose} carries {PAUSED_ANNOTATION}: {value:?}, which is neither \"true\" nor \"false\"; treated as paused (no carrier request is made) until it is set to \"true\", \"false\" or removed"
        )),
    }
}

/// Whether the conditions say the resource was paused when they were written.
pub(crate) fn was_paused(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == RECONCILING && c.reason == PAUSED)
}

/// The conditions of a paused resource: `Reconciling` is False with reason `Paused` and the
/// message; `Ready` and `Stalled` keep what was last observed (with their generation), as do
/// the counts beside them, so that the last known state stays visible.
pub fn paused_conditions(
    previous: &[Condition],
    message: &str,
    generation: i64,
    now: Timestamp,
) -> Vec<Condition> {
    let mut conditions = previous.to_vec();
    conditions::set(
        &mut conditions,
        RECONCILING,
        false,
        PAUSED,
        message,
        generation,
        now,
    );
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use simfleet_api::conditions::READY;

    fn annotated(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(PAUSED_ANNOTATION.to_owned(), value.to_owned())])
    }

    #[test]
    fn true_pauses_false_or_absent_does_not_and_anything_else_pauses_with_the_fix() {
        assert_eq!(pause_reason(&BTreeMap::new(), "SimGroup a"), None);
        assert_eq!(pause_reason(&annotated("false"), "SimGroup a"), None);
        assert_eq!(pause_reason(&annotated(" False "), "SimGroup a"), None);
        let paused = pause_reason(&annotated("true"), "SimGroup a").unwrap();
        assert!(
            paused.starts_with("SimGroup a carries simfleet.io/paused"),
            "{paused}"
        );
        assert!(pause_reason(&annotated("TRUE"), "SimGroup a").is_some());
        let typo = pause_reason(&annotated("yes"), "SimGroup a").unwrap();
        assert!(
            typo.contains("\"yes\"") && typo.contains("neither \"true\" nor \"false\""),
            "{typo}"
        );
        assert!(pause_reason(&annotated(""), "SimGroup a").is_some());
    }

    #[test]
    fn pausing_sets_reconciling_only_and_keeps_ready_as_observed() {
        let t1: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let mut before = Vec::new();
        conditions::set(&mut before, READY, true, "Converged", "5 of 5", 3, t1);
        conditions::set(
            &mut before,
            RECONCILING,
            true,
            "CarrierActionsPending",
            "x",
            3,
            t1,
        );
        assert!(!was_paused(&before));
        let paused = paused_conditions(&before, "paused by hand", 4, t2);
        assert!(was_paused(&paused));
        let ready = paused.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.observed_generation),
            ("True", Some(3))
        );
        let reconciling = paused.iter().find(|c| c.type_ == RECONCILING).unwrap();
        assert_eq!(
            (
                reconciling.status.as_str(),
                reconciling.message.as_str(),
                reconciling.observed_generation
            ),
            ("False", "paused by hand", Some(4))
        );
    }
}
