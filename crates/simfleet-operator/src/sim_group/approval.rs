//! Approvals of changes past the guard, bound to what a person saw. Pure: no I/O, no clock.
//!
//! - `simfleet.io/approved-change: <digest>` approves the change whose content has that digest
//!   (its direction and the exact set of SIMs). `simfleet plan` and the held status print it, so
//!   the approval can never cover a change nobody was shown.
//! - `simfleet.io/approved-generation: <N>` approves generation N only when, at the moment the
//!   operator first sees that value, generation N is the one held for approval (status
//!   `heldChange`). A value written earlier (ahead of the spec change, or committed in Git with
//!   it) is ignored with `InvalidAnnotation`, and stays ignored: a value is judged once.
//!
//! Once approved, the rest of that generation's rollout goes on without asking again.

use simfleet_api::{
    APPROVED_CHANGE_ANNOTATION, APPROVED_GENERATION_ANNOTATION, ApprovalRecord, HeldChange,
    SimGroupStatus, StateChange,
};

/// The approval annotations as written on the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApprovalAnnotations {
    /// `simfleet.io/approved-generation`.
    pub generation: Option<String>,
    /// `simfleet.io/approved-change`.
    pub change: Option<String>,
}

/// No approval annotation.
pub static NO_APPROVAL: ApprovalAnnotations = ApprovalAnnotations {
    generation: None,
    change: None,
};

impl ApprovalAnnotations {
    /// The annotations of a group.
    pub fn of(group: &simfleet_api::SimGroup) -> Self {
        use kube::ResourceExt;
        let get = |key: &str| group.annotations().get(key).map(|v| v.trim().to_owned());
        Self {
            generation: get(APPROVED_GENERATION_ANNOTATION),
            change: get(APPROVED_CHANGE_ANNOTATION),
        }
    }
}

/// What is wrong with a group's `simfleet.io/approved-generation` when it holds no number and
/// was not judged yet (reported at once, even for a group at rest, which plans nothing).
pub fn not_a_number(
    annotations: &ApprovalAnnotations,
    previous: &SimGroupStatus,
) -> Option<String> {
    let value = annotations.generation.as_ref()?;
    let judged = previous
        .approval
        .as_ref()
        .and_then(|a| a.generation_annotation.as_ref());
    if value.parse::<i64>().is_ok() || judged == Some(value) {
        return None;
    }
    Some(format!(
        "annotation {APPROVED_GENERATION_ANNOTATION}={value:?} is not a generation number, so it approves nothing; approve the held change with {APPROVED_CHANGE_ANNOTATION}=<digest> (status.heldChange.digest), or {APPROVED_GENERATION_ANNOTATION}=<the generation held>"
    ))
}

/// The digest of a change's content: its direction, its size and its SIMs (in any order):
/// `Pause-184-1f0c9a2b3c4d5e6f`. Stable across processes and versions (FNV-1a over the sorted
/// device ids): it binds an approval to content, it is not a secret.
pub fn change_digest(change: StateChange, devices: &mut [u64]) -> String {
    devices.sort_unstable();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(format!("{change:?}").as_bytes());
    for device in devices.iter() {
        feed(&device.to_be_bytes());
    }
    format!("{change:?}-{}-{hash:016x}", devices.len())
}

/// The verdict on a pass's change past the guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// The change may go.
    pub approved: bool,
    /// What status keeps of the annotations as judged.
    pub record: ApprovalRecord,
    /// An annotation that approves nothing, and why (for an `InvalidAnnotation` event): set
    /// only when the value is new.
    pub ignored: Option<String>,
}

/// Judges the annotations for this pass's change (`digest`), given what status said before.
/// `held`: the change exceeds the guard (otherwise nothing waits, and a new approval value is
/// only recorded, with a note that nothing waited for it).
pub fn judge(
    annotations: &ApprovalAnnotations,
    previous: &SimGroupStatus,
    generation: i64,
    digest: Option<&str>,
    held: bool,
) -> Judgement {
    let before = previous.approval.clone().unwrap_or_default();
    let mut record = before.clone();
    let mut approved = before.approved_generation == Some(generation);
    let mut ignored = None;
    let held_before: Option<&HeldChange> = previous.held_change.as_ref();

    if annotations.generation != before.generation_annotation {
        record.generation_annotation = annotations.generation.clone();
        if let Some(value) = &annotations.generation {
            match value.parse::<i64>() {
                // Reported as soon as it is seen, before any reading (see `not_a_number`).
                Err(_) => {}
                Ok(n)
                    if n == generation
                        && held_before.is_some_and(|h| {
                            h.generation == n && Some(h.digest.as_str()) == digest
                        }) =>
                {
                    approved = true;
                }
                Ok(n) => {
                    let why = match held_before {
                        Some(h) if h.generation == n => {
                            "the change held at that generation is no longer the change to make"
                                .to_owned()
                        }
                        Some(h) => {
                            format!("generation {} is the one held for approval", h.generation)
                        }
                        None if n > generation => format!(
                            "generation {n} does not exist yet (an approval cannot be given ahead of the change)"
                        ),
                        None => "no change was held for approval when it was given".to_owned(),
                    };
                    ignored = Some(format!(
                        "annotation {APPROVED_GENERATION_ANNOTATION}={n} approves nothing: {why}; approve a held change once it is shown, with {APPROVED_CHANGE_ANNOTATION}=<status.heldChange.digest>"
                    ));
                }
            }
        }
    }
    if let Some(value) = &annotations.change {
        if Some(value.as_str()) == digest {
            approved = true;
        } else if annotations.change != before.change_annotation && (held || digest.is_some()) {
            ignored = Some(format!(
                "annotation {APPROVED_CHANGE_ANNOTATION}={value} approves nothing: the change to make now is {}; approve the change as shown",
                digest.unwrap_or("none")
            ));
        }
    }
    record.change_annotation = annotations.change.clone();
    if approved && held {
        record.approved_generation = Some(generation);
    }
    Judgement {
        approved,
        record,
        ignored: ignored.filter(|_| held || annotations.generation != before.generation_annotation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_at(generation: i64, digest: &str) -> SimGroupStatus {
        SimGroupStatus {
            held_change: Some(HeldChange {
                generation,
                digest: digest.into(),
                action: StateChange::Resume,
                sims: 301,
            }),
            ..Default::default()
        }
    }

    fn by_generation(value: &str) -> ApprovalAnnotations {
        ApprovalAnnotations {
            generation: Some(value.into()),
            change: None,
        }
    }

    #[test]
    fn the_digest_is_of_the_content_in_any_order() {
        let a = change_digest(StateChange::Pause, &mut [3, 1, 2]);
        assert_eq!(a, change_digest(StateChange::Pause, &mut [1, 2, 3]));
        assert!(a.starts_with("Pause-3-"), "{a}");
        assert_ne!(a, change_digest(StateChange::Resume, &mut [1, 2, 3]));
        assert_ne!(a, change_digest(StateChange::Pause, &mut [1, 2, 4]));
    }

    #[test]
    fn an_approval_given_ahead_of_the_change_approves_nothing_and_stays_ignored() {
        // At generation 4 nothing is held; generation 5 is approved ahead.
        let early = judge(
            &by_generation("5"),
            &SimGroupStatus::default(),
            4,
            None,
            false,
        );
        assert!(!early.approved);
        assert!(early.ignored.unwrap().contains("does not exist yet"));
        // Generation 5 comes, and is held: the value seen before still approves nothing.
        let previous = SimGroupStatus {
            approval: Some(early.record),
            ..Default::default()
        };
        let next = judge(
            &by_generation("5"),
            &previous,
            5,
            Some("Resume-301-x"),
            true,
        );
        assert!(!next.approved, "a value is judged once, when first seen");
        assert_eq!(next.ignored, None, "and reported once");
    }

    #[test]
    fn an_approval_committed_with_the_spec_approves_nothing() {
        let judged = judge(
            &by_generation("1"),
            &SimGroupStatus::default(),
            1,
            Some("Pause-13-x"),
            true,
        );
        assert!(!judged.approved);
        assert!(judged.ignored.is_some());
    }

    #[test]
    fn the_generation_held_is_approved_and_its_rollout_goes_on() {
        let previous = held_at(5, "Resume-301-x");
        let judged = judge(
            &by_generation("5"),
            &previous,
            5,
            Some("Resume-301-x"),
            true,
        );
        assert!(judged.approved);
        assert_eq!(judged.record.approved_generation, Some(5));
        // The next step of the rollout changes fewer SIMs: still approved.
        let previous = SimGroupStatus {
            approval: Some(judged.record),
            ..Default::default()
        };
        assert!(
            judge(
                &by_generation("5"),
                &previous,
                5,
                Some("Resume-201-y"),
                true
            )
            .approved
        );
        // A new generation asks again.
        assert!(
            !judge(
                &by_generation("5"),
                &previous,
                6,
                Some("Resume-301-z"),
                true
            )
            .approved
        );
    }

    #[test]
    fn the_digest_approves_exactly_its_content() {
        let by_change = |digest: &str| ApprovalAnnotations {
            generation: None,
            change: Some(digest.into()),
        };
        let previous = SimGroupStatus::default();
        assert!(
            judge(
                &by_change("Pause-13-a"),
                &previous,
                2,
                Some("Pause-13-a"),
                true
            )
            .approved
        );
        let other = judge(
            &by_change("Pause-13-a"),
            &previous,
            2,
            Some("Pause-14-b"),
            true,
        );
        assert!(!other.approved);
        assert!(other.ignored.unwrap().contains("Pause-14-b"));
    }
}
