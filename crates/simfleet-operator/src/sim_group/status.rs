//! What a SimGroup's status says after a plan: the counts, the pending actions, and the three
//! kstatus conditions with a reason for each situation (waiting for approval, for the next
//! rollout step, for the carrier; stalled for a conflict, drift, an empty selection, ...).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::*;

impl Plan {
    /// When a spaced rollout sends its last action, from the next one at `next`: one action of
    /// at most `batch_limit` SIMs each `rollout.interval` (the carrier's confirmations come on
    /// top, and cannot be foreseen).
    fn rollout_estimate(&self, next: Timestamp) -> String {
        let (Some(interval), true) = (self.interval, self.batch_limit > 0) else {
            return String::new();
        };
        let actions = self.remaining_after_actions.div_ceil(self.batch_limit) as i32;
        if actions <= 1 {
            return String::new();
        }
        match next.checked_add(interval * (actions - 1)) {
            Ok(last) => format!(
                "; at one action of {} each {}, the last goes at about {last} ({} in all)",
                count(self.batch_limit as u64, "SIM"),
                crate::plan::numbers::duration(interval.unsigned_abs()),
                count(actions as u64, "action")
            ),
            Err(_) => String::new(),
        }
    }

    /// SIMs of an Active group that the carrier's system paused and `systemPaused: Report`
    /// leaves paused.
    pub fn system_paused_left(&self) -> u64 {
        if self.desired == SimState::Active && self.system_paused == SystemPausedPolicy::Report {
            self.counts.paused_by_system
        } else {
            0
        }
    }

    /// The status to write, with conditions set from `previous` (transition times kept).
    pub fn status(&self, previous: &SimGroupStatus) -> SimGroupStatus {
        let mut conditions: Vec<Condition> = previous.conditions.clone();
        let c = &self.counts;
        let eligible = c.selected - c.ineligible;
        let state = format!("{:?}", self.desired);
        let waiting_problems = self
            .problems
            .iter()
            .any(|p| p.reason == ProblemReason::Drift);
        let off_state = c.pending + c.conflicting + c.failed + self.remaining_after_actions as u64;
        // SIMs the carrier paused, left so by `systemPaused: Report`, are exceptions the group
        // reports, not work it can do: a fleet always has a few, and a group that waited for
        // them would never be Ready (docs/concepts.md, "Paused by the system").
        let excepted = self.system_paused_left();
        // SIMs left to turn active at their next connection are where the group wants them.
        let settled = c.in_desired_state + c.awaiting_connection + excepted;
        let ready = settled == eligible && off_state == 0 && !waiting_problems;
        let mut exceptions = Vec::new();
        if excepted > 0 {
            exceptions.push(format!(
                "{} paused by the carrier's system and left so (systemPaused: Report)",
                thousands(excepted)
            ));
        }
        if c.awaiting_connection > 0 {
            exceptions.push(format!(
                "{} awaiting their next connection (awaitingConnection: Leave)",
                thousands(c.awaiting_connection)
            ));
        }
        if c.ineligible > 0 {
            exceptions.push(format!("{} ineligible", thousands(c.ineligible)));
        }
        let ready_message = format!(
            "{} of {} {state}{}",
            thousands(c.in_desired_state),
            count(eligible, "eligible SIM"),
            match (exceptions.is_empty(), excepted > 0 || c.ineligible > 0) {
                (true, _) => String::new(),
                (false, true) => format!("; {} (see problemSims)", exceptions.join("; ")),
                (false, false) => format!("; {}", exceptions.join("; ")),
            }
        );
        let ids: Vec<&str> = self.pending.iter().map(|a| a.id.as_str()).collect();
        let reconciling = !self.pending.is_empty()
            || self.remaining_after_actions > 0
            || !self.actions.is_empty();
        let reconciling_message = if self.pending.is_empty() {
            format!(
                "{} still to change",
                count(self.remaining_after_actions as u64, "SIM")
            )
        } else {
            format!(
                "{} of {} awaiting carrier confirmation; {} {}",
                thousands(c.pending),
                count(c.selected, "SIM"),
                if ids.len() == 1 { "action" } else { "actions" },
                ids.join(", ")
            )
        };
        let stalled: Option<(&str, String)> = match (&self.hold, &self.stalled_action) {
            (Some(Hold::ApprovalRequired { changes, limit }), _) => Some((
                "ApprovalRequired",
                format!(
                    "the change touches {}, more than guard.maxChangesWithoutApproval ({}); approve exactly this change with the annotation simfleet.io/approved-change={} (or simfleet.io/approved-generation={} while it is held)",
                    count(*changes as u64, "SIM"),
                    thousands(u64::from(*limit)),
                    self.change_digest.as_deref().unwrap_or("-"),
                    self.generation
                ),
            )),
            (_, Some(action)) => Some((
                "ActionUnconfirmed",
                format!(
                    "carrier action {} ({}, submitted {}) is unconfirmed after 24 h; check it in the carrier's dashboard",
                    action.id,
                    count(u64::from(action.sims), "SIM"),
                    action.submitted_at.0
                ),
            )),
            _ if c.selected == 0 => Some((
                "NoSimsSelected",
                format!(
                    "the selector ({}) matches no SIM at the carrier; check it for a typo",
                    self.selector
                ),
            )),
            _ if eligible == 0 => Some((
                "NoEligibleSims",
                format!(
                    "none of the {} selected SIMs can change (all ineligible; see problemSims)",
                    thousands(c.selected)
                ),
            )),
            _ if c.conflicting > 0 => Some((
                "Conflict",
                format!(
                    "{} claimed by another SimGroup with the opposite state: neither changes them; change one side's selector or state",
                    count(c.conflicting, "SIM")
                ),
            )),
            _ if c.drifted > 0 && self.drift_policy == DriftPolicy::Report => Some((
                "Drift",
                format!(
                    "{} changed outside simfleet (see problemSims); drift: Report leaves them so; change them back at the carrier, or set drift: Correct",
                    count(c.drifted, "SIM")
                ),
            )),
            _ => None,
        };
        let ready = ready && stalled.is_none();
        let ready_reason = if ready {
            "Converged"
        } else if let Some((reason, _)) = &stalled {
            reason
        } else if self.observe_only.is_some() {
            "ObserveOnly"
        } else if c.drifted > 0 {
            "DriftCorrecting"
        } else {
            "Progressing"
        };
        let reconciling = match (&self.observe_only, &self.hold) {
            (Some(_), _) if !self.pending.is_empty() => {
                Verdict::new(true, "CarrierActionsPending", reconciling_message)
            }
            (Some(observe), _) => {
                Verdict::new(false, "ObserveOnly", observe_message(observe, self.changes))
            }
            (None, Some(Hold::ApprovalRequired { changes, .. })) => Verdict::new(
                true,
                "AwaitingApproval",
                format!(
                    "{} waiting for approval (annotation simfleet.io/approved-change={}); nothing is sent until then{}",
                    count(*changes as u64, "SIM"),
                    self.change_digest.as_deref().unwrap_or("-"),
                    if self.pending.is_empty() {
                        String::new()
                    } else {
                        format!("; {reconciling_message}")
                    }
                ),
            ),
            (None, Some(Hold::Interval { until })) => Verdict::new(
                true,
                "RolloutInterval",
                format!(
                    "{} still to change; the next carrier action goes at {until} (rollout.interval){}{}",
                    count(self.remaining_after_actions as u64, "SIM"),
                    self.rollout_estimate(*until),
                    if self.pending.is_empty() {
                        String::new()
                    } else {
                        format!("; {reconciling_message}")
                    }
                ),
            ),
            (None, Some(Hold::ActionRunning { id })) => Verdict::new(
                true,
                "CarrierActionsPending",
                format!(
                    "{} still to change: the carrier runs one action of a kind at a time, and the next goes when {id} is done; {reconciling_message}",
                    count(self.remaining_after_actions as u64, "SIM")
                ),
            ),
            (None, _) if reconciling && self.pending.is_empty() && self.actions.is_empty() => {
                Verdict::new(true, "ChangesQueued", reconciling_message)
            }
            (None, _) if reconciling => {
                Verdict::new(true, "CarrierActionsPending", reconciling_message)
            }
            (None, _) => Verdict::new(false, IDLE, "no carrier action in flight or to send"),
        };
        let stalled = match stalled {
            Some((reason, message)) => Verdict::new(true, reason, message),
            None if ready => Verdict::new(false, "InDesiredState", "nothing needs a human"),
            None => Verdict::new(false, "Progressing", "nothing needs a human"),
        };
        conditions::set_kstatus(
            &mut conditions,
            [
                Verdict::new(ready, ready_reason, ready_message),
                reconciling,
                stalled,
            ],
            self.generation,
            self.now,
        );
        SimGroupStatus {
            observed_generation: Some(self.generation),
            conditions,
            counts: Some(self.counts.clone()),
            pending_actions: self.pending.clone(),
            problem_sims: self.problems.clone(),
            last_action_time: self.last_action_time.clone(),
            held_change: self.held_change.clone(),
            approval: self.approval.clone(),
            would_submit: self
                .observe_only
                .as_ref()
                .map(|o| o.would_submit.clone())
                .unwrap_or_default(),
        }
    }
}
