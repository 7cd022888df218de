//! Planning a DataQuota: per device, whether to set the declared quota, top it up, or keep it,
//! and what status says. Pure: no I/O, no clock (`now` is a parameter).
//!
//! The rules:
//! - each generation is applied once per device, in ascending device id order, with progress
//!   kept in status (`doneThrough`), so a restart resumes where it stopped;
//! - `expiry.after` counts from when the generation was first applied (kept in status), so a
//!   resync never pushes the expiry forward; an expiry already past at that moment is refused;
//! - `mode: Set` sets `volumeMB`; `mode: TopUp` sets what is left plus `volumeMB` (an expired
//!   quota has nothing left), and the absolute result is journaled before it is sent;
//! - once applied, a device whose quota was removed at the carrier gets it again (`Set`; a
//!   `TopUp` reports it), and one whose expiry, refill or threshold was changed there gets the
//!   declared values back with its remaining volume kept (no free refill).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::quota_events::EventMark;
use crate::plan::numbers::{count, thousands};
use simfleet_api::conditions::{self, Verdict};
use simfleet_api::model::ReadUrgency;
use simfleet_api::model::{QuotaReading, QuotaSetting, QuotaState};
use simfleet_api::{
    DataQuotaSpec, DataQuotaStatus, ExhaustionAction, PROBLEM_SAMPLE_LIMIT, ProblemDevice,
    QuotaCounts, QuotaMode, QuotaProgress,
};

/// Most devices a progress record lists for retry.
pub(crate) const RETRY_LIMIT: usize = 1000;

/// A mistake in the spec that the schema cannot catch: the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// Condition reason.
    pub reason: &'static str,
    /// The message, naming the field and the fix.
    pub message: String,
}

/// How much a DataQuota's next reads may wait for the account's budget: once its generation is
/// applied in full (nothing to retry, no top-up journaled), its reads are resyncs, paced to the
/// budget; until then they are needed.
pub(crate) fn read_urgency(previous: &DataQuotaStatus, generation: i64) -> ReadUrgency {
    let applied = previous.observed_generation == Some(generation)
        && previous
            .progress
            .as_ref()
            .is_some_and(|p| p.generation == generation && applied_in_full(p));
    if applied {
        ReadUrgency::Resync
    } else {
        ReadUrgency::Needed
    }
}

/// Whether a progress record's generation is applied in full: every device, nothing to retry,
/// no top-up journaled.
pub(crate) fn applied_in_full(progress: &QuotaProgress) -> bool {
    progress.complete
        && progress.retry_device_ids.is_empty()
        && progress.top_ups_in_flight.is_empty()
}

/// The progress record of this generation: the previous one if it is this generation's,
/// otherwise a new one started `now` (refused when its expiry would already be past).
pub(crate) fn progress_for(
    spec: &DataQuotaSpec,
    generation: i64,
    previous: Option<&QuotaProgress>,
    now: Timestamp,
) -> Result<QuotaProgress, SpecProblem> {
    // The CRD refuses it too; this holds where an older CRD let it through.
    if spec.action_on_exhaustion == ExhaustionAction::Throttle {
        return Err(SpecProblem {
            reason: "InvalidAction",
            message: "actionOnExhaustion: Throttle was decommissioned by the carrier on 2024-12-09; use Block".into(),
        });
    }
    if let Some(progress) = previous.filter(|p| p.generation == generation) {
        return Ok(progress.clone());
    }
    let started = whole_seconds(now);
    let expiry =
        match (&spec.expiry.at, &spec.expiry.after) {
            (Some(at), _) => whole_seconds(at.0),
            (None, Some(after)) => started.checked_add(after.as_duration()).map_err(|_| {
                SpecProblem {
                    reason: "InvalidExpiry",
                    message: format!(
                        "expiry.after: {after} reaches past the year 9999; use a shorter duration"
                    ),
                }
            })?,
            (None, None) => {
                return Err(SpecProblem {
                    reason: "InvalidExpiry",
                    message: "expiry: set at (an RFC 3339 time) or after (a duration such as 30d)"
                        .into(),
                });
            }
        };
    if expiry <= now {
        return Err(SpecProblem {
            reason: "InvalidExpiry",
            message: format!(
                "expiry.at: {expiry} is already past (now {started}); set a future time, or use expiry.after (e.g. 30d)"
            ),
        });
    }
    Ok(QuotaProgress {
        generation,
        started_at: Time(started),
        expiry: Time(expiry),
        done_through: None,
        complete: false,
        retry_device_ids: Vec::new(),
        top_ups_in_flight: Vec::new(),
    })
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Whether a device already has this generation applied.
pub(crate) fn is_done(progress: &QuotaProgress, device_id: u64) -> bool {
    (progress.complete || progress.done_through.is_some_and(|d| device_id <= d))
        && !progress.retry_device_ids.contains(&device_id)
}

/// What to do with one device.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DeviceAction {
    /// Its quota is as declared.
    Keep,
    /// Set this quota (idempotent: sending it twice changes nothing).
    Set(QuotaSetting),
    /// Top up: set this quota, whose volume is what was left plus `volumeMB`. Journal it first.
    TopUp(QuotaSetting),
    /// Applied by a top-up, but the quota is gone at the carrier: reported, not topped up again.
    Missing,
}

/// The quota this generation declares, with `volume_mb` as its volume.
pub fn declared(spec: &DataQuotaSpec, progress: &QuotaProgress, volume_mb: f64) -> QuotaSetting {
    QuotaSetting {
        volume_mb,
        expiry: progress.expiry.0,
        auto_refill: spec.auto_refill,
        threshold_percentage: spec.threshold_percentage,
    }
}

/// Decides one device from its quota as read.
pub(crate) fn decide(
    spec: &DataQuotaSpec,
    progress: &QuotaProgress,
    device_id: u64,
    reading: Option<&QuotaReading>,
) -> DeviceAction {
    if !is_done(progress, device_id) {
        return match spec.mode {
            QuotaMode::Set => DeviceAction::Set(declared(spec, progress, spec.volume_mb)),
            QuotaMode::TopUp => {
                // What is left: nothing without a quota or once expired.
                let left = reading
                    .filter(|r| r.state != QuotaState::Expired)
                    .map_or(0.0, |r| r.volume_mb.max(0.0));
                DeviceAction::TopUp(declared(spec, progress, left + spec.volume_mb))
            }
        };
    }
    let Some(reading) = reading else {
        return match spec.mode {
            QuotaMode::Set => DeviceAction::Set(declared(spec, progress, spec.volume_mb)),
            QuotaMode::TopUp => DeviceAction::Missing,
        };
    };
    let changed_outside = reading.expiry != Some(progress.expiry.0)
        || reading.auto_refill != spec.auto_refill
        || !same_threshold(spec, reading);
    if changed_outside {
        // The declared terms again, with the remaining volume kept: no free refill.
        DeviceAction::Set(declared(spec, progress, reading.volume_mb.max(0.0)))
    } else {
        DeviceAction::Keep
    }
}

fn same_threshold(spec: &DataQuotaSpec, reading: &QuotaReading) -> bool {
    match (reading.threshold_percentage, spec.threshold_percentage) {
        (None, None) => true,
        (Some(read), Some(want)) => (read - f64::from(want)).abs() < 0.001,
        _ => false,
    }
}

/// Decides one device for an observe-only DataQuota (`management: Observe`): as [`decide`],
/// except that a device this generation has not been applied to, whose quota already is the
/// declared one, is kept rather than set again. "Already declared" (`mode: Set` only; a top-up
/// always changes the volume): not expired, `volumeMB`, auto-refill and threshold as declared,
/// and the expiry `expiry.at`, or, for `expiry.after`, one ahead and no later than `after`
/// from now.
pub(crate) fn decide_observed(
    spec: &DataQuotaSpec,
    progress: &QuotaProgress,
    device_id: u64,
    reading: Option<&QuotaReading>,
) -> DeviceAction {
    let already_declared = |r: &QuotaReading| {
        spec.mode == QuotaMode::Set
            && r.state != QuotaState::Expired
            && (r.volume_mb - spec.volume_mb).abs() < 0.001
            && r.auto_refill == spec.auto_refill
            && same_threshold(spec, r)
            && match spec.expiry.at {
                Some(_) => r.expiry == Some(progress.expiry.0),
                None => r
                    .expiry
                    .is_some_and(|e| e > progress.started_at.0 && e <= progress.expiry.0),
            }
    };
    match decide(spec, progress, device_id, reading) {
        DeviceAction::Set(_)
            if !is_done(progress, device_id) && reading.is_some_and(already_declared) =>
        {
            DeviceAction::Keep
        }
        other => other,
    }
}

/// What became of one device in this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<'a> {
    /// Left as read (`None`: it has no quota).
    Read(Option<&'a QuotaReading>),
    /// Set as given.
    Set(&'a QuotaSetting),
    /// Observe-only: would be set as given (`top_up`: by a top-up); left as read.
    WouldChange {
        /// The quota as read (`None`: it has none).
        reading: Option<&'a QuotaReading>,
        /// What a managed DataQuota would set.
        setting: &'a QuotaSetting,
        /// The setting is a top-up (what is left plus `volumeMB`).
        top_up: bool,
    },
    /// A top-up's quota is gone at the carrier.
    Missing,
    /// The carrier cannot give this device a quota (its endpoint is deleted, it has no SIM,
    /// the carrier does not know it): not retried; the reason in words.
    Ineligible(String),
    /// The carrier failed (`refused`: it refused the values, a human must look; otherwise a
    /// transient failure, tried again); the reason in words.
    Failed {
        /// The carrier refused the request's content (4xx), not a transient failure.
        refused: bool,
        /// What happened.
        message: String,
    },
}

/// Counts, problem sample and expiries over the target devices.
#[derive(Clone, Debug, Default)]
pub struct QuotaTally {
    counts: QuotaCounts,
    problems: Vec<ProblemDevice>,
    earliest_expiry: Option<Timestamp>,
    refused: u64,
    /// Devices that would change and have a quota now (the others count as `none`).
    would_change_with_quota: u64,
}

impl QuotaTally {
    fn problem(&mut self, device_id: u64, reason: &str, message: String) {
        if self.problems.len() < PROBLEM_SAMPLE_LIMIT {
            self.problems.push(ProblemDevice {
                device_id,
                reason: reason.into(),
                message,
            });
        }
    }

    /// Counts one device.
    pub fn add(&mut self, device_id: u64, outcome: Outcome<'_>, now: Timestamp) {
        self.counts.targeted += 1;
        let (state, expiry) = match outcome {
            Outcome::Set(setting) => (QuotaState::Active, Some(setting.expiry)),
            Outcome::WouldChange {
                reading,
                setting,
                top_up,
            } => {
                self.counts.would_change += 1;
                self.problem(
                    device_id,
                    "WouldChange",
                    format!(
                        "has {}; a managed DataQuota would {} {} MB expiring {} (management: Observe sets nothing)",
                        reading.map_or_else(
                            || "no quota".to_owned(),
                            |r| format!("{} MB left ({:?})", r.volume_mb, r.state)
                        ),
                        if top_up { "top it up to" } else { "set" },
                        setting.volume_mb,
                        setting.expiry
                    ),
                );
                match reading {
                    Some(r) => {
                        self.would_change_with_quota += 1;
                        (r.state.clone(), r.expiry)
                    }
                    None => {
                        self.counts.none += 1;
                        return;
                    }
                }
            }
            Outcome::Read(Some(reading)) => (reading.state.clone(), reading.expiry),
            Outcome::Read(None) => {
                self.counts.none += 1;
                self.problem(
                    device_id,
                    "NoQuota",
                    "no data quota: the carrier denies this device data".into(),
                );
                return;
            }
            Outcome::Missing => {
                self.counts.none += 1;
                self.problem(
                    device_id,
                    "NoQuota",
                    "the topped-up quota was removed at the carrier; the device is denied data (change the spec to top up again)".into(),
                );
                return;
            }
            Outcome::Ineligible(message) => {
                self.counts.ineligible += 1;
                self.problem(device_id, "Ineligible", message);
                return;
            }
            Outcome::Failed { refused, message } => {
                self.counts.failed += 1;
                if refused {
                    self.refused += 1;
                    self.problem(device_id, "Refused", message);
                } else {
                    self.problem(device_id, "Failed", message);
                }
                return;
            }
        };
        let expired = state == QuotaState::Expired;
        match state {
            QuotaState::Active => self.counts.active += 1,
            QuotaState::Exhausted => {
                self.counts.exhausted += 1;
                self.problem(
                    device_id,
                    "Exhausted",
                    "quota used up: data is blocked until it is renewed or topped up".into(),
                );
            }
            QuotaState::Expired => {
                self.counts.expired += 1;
                self.problem(
                    device_id,
                    "Expired",
                    format!(
                        "quota expired{}",
                        expiry.map(|e| format!(" at {e}")).unwrap_or_default()
                    ),
                );
            }
            QuotaState::Unknown(raw) => {
                self.counts.failed += 1;
                self.problem(
                    device_id,
                    "Failed",
                    format!("the carrier reports a quota status simfleet does not know: {raw}"),
                );
            }
        }
        // The carrier's state decides what has expired (its clock, not ours).
        if let Some(expiry) = expiry.filter(|&e| e > now && !expired) {
            self.earliest_expiry = Some(self.earliest_expiry.map_or(expiry, |e| e.min(expiry)));
        }
    }

    /// Adds a note to a device's problem entry (e.g. the carrier event that reported it).
    pub fn annotate(&mut self, device_id: u64, reason: &str, note: &str) {
        if let Some(p) = self
            .problems
            .iter_mut()
            .find(|p| p.device_id == device_id && p.reason == reason)
        {
            p.message = format!("{}; {note}", p.message);
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> &QuotaCounts {
        &self.counts
    }

    /// The earliest expiry among the quotas seen.
    pub(crate) fn earliest_expiry(&self) -> Option<Timestamp> {
        self.earliest_expiry
    }
}

/// The status to write after applying `progress`.
pub fn status(
    previous: &DataQuotaStatus,
    generation: i64,
    tally: &QuotaTally,
    progress: QuotaProgress,
    events: EventMark,
    now: Timestamp,
) -> DataQuotaStatus {
    status_of(previous, generation, tally, Some(progress), events, now)
}

/// How far a long apply is, for the conditions written while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ApplyPace {
    /// Devices this pass has read (and set where needed) so far.
    pub done: usize,
    /// Devices this pass reads in all.
    pub total: usize,
    /// Time this pass has taken so far.
    pub elapsed: std::time::Duration,
}

impl ApplyPace {
    /// "120 of 999 devices done, 879 left, about 2m 27s at the pace so far (6.0 a second)".
    fn describe(&self) -> String {
        let left = self.total.saturating_sub(self.done);
        let seconds = self.elapsed.as_secs_f64();
        let estimate = if self.done > 0 && seconds >= 1.0 && left > 0 {
            let pace = self.done as f64 / seconds;
            let eta = std::time::Duration::from_secs((left as f64 / pace).ceil() as u64);
            format!(
                ", about {} at the pace so far ({pace:.1} a second)",
                crate::plan::numbers::duration(eta)
            )
        } else {
            String::new()
        };
        format!(
            "{} of {} done, {} left{estimate}",
            thousands(self.done as u64),
            count(self.total as u64, "device"),
            thousands(left as u64)
        )
    }
}

/// The conditions of a DataQuota while a long apply runs (written with its progress, after each
/// batch): not Ready, Reconciling with reason `Applying`, the devices left and an estimate from
/// the pace so far; nothing needs a human. The rest of the status stays as last written.
pub(crate) fn applying_conditions(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    generation: i64,
    pace: ApplyPace,
    now: Timestamp,
) {
    let message = format!("applying generation {generation}: {}", pace.describe());
    conditions::set_kstatus(
        conditions,
        [
            Verdict::new(false, "Applying", message.clone()),
            Verdict::new(true, "Applying", message),
            Verdict::new(false, "Progressing", "nothing needs a human"),
        ],
        generation,
        now,
    );
}

/// The status of an observe-only DataQuota: `Ready` when every eligible device already has the
/// declared quota, `Reconciling=False` with reason `ObserveOnly`, and the progress as it was
/// (nothing was applied).
pub(crate) fn observed_status(
    previous: &DataQuotaStatus,
    generation: i64,
    tally: &QuotaTally,
    events: EventMark,
    now: Timestamp,
) -> DataQuotaStatus {
    status_of(previous, generation, tally, None, events, now)
}

/// The status to write; `progress` is `None` when observing only.
fn status_of(
    previous: &DataQuotaStatus,
    generation: i64,
    tally: &QuotaTally,
    applied: Option<QuotaProgress>,
    events: EventMark,
    now: Timestamp,
) -> DataQuotaStatus {
    let observe = applied.is_none();
    let progress = applied.clone().unwrap_or_else(|| QuotaProgress {
        generation,
        started_at: Time(now),
        expiry: Time(now),
        done_through: None,
        complete: true,
        retry_device_ids: Vec::new(),
        top_ups_in_flight: Vec::new(),
    });
    let c = &tally.counts;
    let eligible = c.targeted - c.ineligible;
    let declared = eligible - c.none - c.failed - tally.would_change_with_quota;
    let ready =
        progress.complete && c.none == 0 && c.failed == 0 && c.would_change == 0 && eligible > 0;
    let ineligible = if c.ineligible > 0 {
        format!("; {} ineligible (see problemDevices)", c.ineligible)
    } else {
        String::new()
    };
    // A used-up or expired quota is the declared quota doing its work, so Ready stays True;
    // the message says which devices are blocked and why (docs/concepts.md, "Data quotas").
    let blocked = match (c.exhausted, c.expired) {
        (0, 0) => String::new(),
        (1, 0) => "; 1 exhausted: its data is blocked until its quota is refilled or topped up (see problemDevices)".to_owned(),
        (n, 0) => format!("; {} exhausted: their data is blocked until their quota is refilled or topped up (see problemDevices)", thousands(n)),
        (_, n) => format!(
            "; {} exhausted and {} expired: their data is blocked until their quota is refilled, topped up or renewed (see problemDevices)",
            thousands(c.exhausted),
            thousands(n)
        ),
    };
    let ready_message = format!(
        "{} of {} have the declared quota ({} active, {} exhausted, {} expired){blocked}{ineligible}",
        thousands(declared),
        count(eligible, "eligible device"),
        thousands(c.active),
        thousands(c.exhausted),
        thousands(c.expired)
    );
    let reconciling = if observe {
        Verdict::new(
            false,
            "ObserveOnly",
            if c.would_change == 0 {
                "management: Observe: the carrier matches the spec; nothing is set".to_owned()
            } else {
                format!(
                    "management: Observe: {} would get a new quota (see problemDevices); nothing is set; set management: Manage to act",
                    count(c.would_change, "device")
                )
            },
        )
    } else if progress.complete && progress.retry_device_ids.is_empty() {
        Verdict::new(false, "Idle", "this generation is applied")
    } else {
        Verdict::new(
            true,
            "Applying",
            format!(
                "applying generation {generation}: {} devices to try again{}",
                progress.retry_device_ids.len(),
                if progress.complete {
                    ""
                } else {
                    " and more to apply"
                }
            ),
        )
    };
    let refused = tally.refused > 0;
    let stalled = if refused {
        Verdict::new(
            true,
            "Refused",
            format!(
                "the carrier refused the quota of {}; see problemDevices",
                count(tally.refused, "device")
            ),
        )
    } else if ready {
        Verdict::new(false, "InDesiredState", "nothing needs a human")
    } else {
        Verdict::new(false, "Progressing", "nothing needs a human")
    };
    let mut conditions = previous.conditions.clone();
    conditions::set_kstatus(
        &mut conditions,
        [
            Verdict::new(
                ready,
                if ready {
                    "Converged"
                } else if refused {
                    "Refused"
                } else if observe {
                    "ObserveOnly"
                } else {
                    "Progressing"
                },
                ready_message,
            ),
            reconciling,
            stalled,
        ],
        generation,
        now,
    );
    DataQuotaStatus {
        observed_generation: Some(generation),
        conditions,
        counts: Some(c.clone()),
        earliest_expiry: tally.earliest_expiry.map(Time),
        problem_devices: kept_notes(&tally.problems, &previous.problem_devices),
        progress: if observe {
            previous.progress.clone()
        } else {
            applied
        },
        last_event_time: events.time.map(Time),
        last_event_ids: events.ids,
    }
}

/// The problems, each keeping the note the previous status gave it (a carrier event is
/// reported once, so the note that names it would otherwise vanish at the next resync).
fn kept_notes(problems: &[ProblemDevice], previous: &[ProblemDevice]) -> Vec<ProblemDevice> {
    problems
        .iter()
        .map(|p| {
            let noted = previous.iter().find(|q| {
                q.device_id == p.device_id
                    && q.reason == p.reason
                    && q.message
                        .strip_prefix(p.message.as_str())
                        .and_then(|rest| rest.strip_prefix("; "))
                        .is_some_and(|note| !note.is_empty())
            });
            ProblemDevice {
                message: noted.map_or_else(|| p.message.clone(), |q| q.message.clone()),
                ..p.clone()
            }
        })
        .collect()
}

/// The status of a DataQuota that cannot proceed without a human: Stalled, with the message.
pub fn stalled_status(
    previous: &DataQuotaStatus,
    generation: i64,
    problem: &SpecProblem,
    now: Timestamp,
) -> DataQuotaStatus {
    let mut status = previous.clone();
    status.observed_generation = Some(generation);
    conditions::set_stalled(
        &mut status.conditions,
        problem.reason,
        &problem.message,
        "waiting for what the message names (the spec, the carrier account or its Secret, the SimGroup)",
        generation,
        now,
    );
    status
}

/// The status of a DataQuota whose target cannot be resolved (its SimGroup is gone or on
/// another account): Stalled, and it targets no device, so it counts none.
pub fn untargeted_status(
    previous: &DataQuotaStatus,
    generation: i64,
    problem: &SpecProblem,
    now: Timestamp,
) -> DataQuotaStatus {
    let mut status = stalled_status(previous, generation, problem, now);
    status.counts = Some(QuotaCounts::default());
    status.problem_devices.clear();
    status.earliest_expiry = None;
    status
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

/// The status of a DataQuota some of whose devices another DataQuota declares another quota
/// for: counted and sampled, `Stalled` and not `Ready` with reason `Conflict` (a person decides
/// which quota the devices get). `conflicting`: each device and the other DataQuota's name as
/// this one may see it.
pub(crate) fn with_conflicts(
    mut status: DataQuotaStatus,
    conflicting: &std::collections::BTreeMap<u64, String>,
    generation: i64,
    now: Timestamp,
) -> DataQuotaStatus {
    if conflicting.is_empty() {
        return status;
    }
    let n = conflicting.len() as u64;
    if let Some(counts) = status.counts.as_mut() {
        counts.targeted += n;
        counts.conflicting = n;
    }
    for (device, other) in conflicting {
        if status.problem_devices.len() >= simfleet_api::PROBLEM_SAMPLE_LIMIT {
            break;
        }
        status.problem_devices.push(simfleet_api::ProblemDevice {
            device_id: *device,
            reason: "Conflict".into(),
            message: format!("{other} declares another quota for this device; neither sets it"),
        });
    }
    let message = format!(
        "{} targeted by another DataQuota with another quota (see problemDevices); neither sets them: remove them from one target, or make the quotas equal",
        count(n, "device")
    );
    let reconciling = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::RECONCILING)
        .map(|c| Verdict::new(c.status == "True", &c.reason, c.message.clone()))
        .unwrap_or_else(|| Verdict::new(false, "Idle", "this generation is applied"));
    conditions::set_kstatus(
        &mut status.conditions,
        [
            Verdict::new(false, "Conflict", message.clone()),
            reconciling,
            Verdict::new(true, "Conflict", message),
        ],
        generation,
        now,
    );
    status
}
