//! Soracom's documented wire format (its OpenAPI spec in soracom-cli), as the client reads it,
//! and how its statuses map onto simfleet's.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::super::CarrierError;
use simfleet_api::model::{ObservedState, SimObservation};

/// `POST /v1/auth`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuthResponse {
    pub(super) api_key: String,
    pub(super) token: String,
}

/// A TagSet: a flat map of names to values. Values are strings as documented; anything else
/// is read as its JSON text rather than refused.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct TagSet(HashMap<String, Value>);

impl TagSet {
    /// The tags as simfleet selects them: `NAME=VALUE`, except the always-present empty `name`.
    fn selectable(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| !(k.as_str() == "name" && v.as_str() == Some("")))
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        tags.sort();
        tags
    }
}

/// A `Sim` (`/v1/sims`): ICCIDs sit under `profiles`, keyed by ICCID.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Sim {
    pub(super) sim_id: String,
    status: Option<String>,
    #[serde(default)]
    tags: TagSet,
    expiry_time: Option<i64>,
    expiry_action: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Value>,
    active_profile_id: Option<String>,
}

/// A `Subscriber` (`/v1/subscribers`): one per IMSI, with the ICCID at the top; some times
/// are spelled two ways.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Subscriber {
    pub(super) sim_id: Option<String>,
    imsi: Option<String>,
    iccid: Option<String>,
    status: Option<String>,
    #[serde(default)]
    tags: TagSet,
    expiry_time: Option<i64>,
    expired_at: Option<i64>,
    expiry_action: Option<String>,
}

/// A batch group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchGroup {
    pub(super) batch_group_id: String,
    pub(super) batch_group_name: Option<String>,
}

/// A batch job.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchJob {
    pub(super) job_id: String,
    pub(super) job_name: Option<String>,
    pub(super) status: String,
    pub(super) summary: Option<Summary>,
}

/// A job's task counts.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Summary {
    #[serde(default)]
    pub(super) pending: u64,
    #[serde(default)]
    pub(super) success: u64,
    #[serde(default)]
    pub(super) error: u64,
}

/// A batch task and the answer of its inner call.
#[derive(Debug, Deserialize)]
pub(super) struct Task {
    pub(super) request: TaskRequest,
    pub(super) response: Option<TaskResponse>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TaskRequest {
    pub(super) path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TaskResponse {
    pub(super) status_code: u16,
    #[serde(default)]
    pub(super) body: Value,
}

impl BatchJob {
    /// Final: every task ran (`completed`, `failed`) or the job stopped (`aborted`).
    pub(super) fn finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "aborted")
    }

    /// The job's status and summary in words, as `status.pendingActions[].carrierStatus`.
    pub(super) fn describe(&self) -> String {
        let s = self.summary.as_ref();
        let (pending, success, error) = s.map_or((0, 0, 0), |s| (s.pending, s.success, s.error));
        format!(
            "{}: {success} done, {error} failed, {pending} to go",
            self.status
        )
    }
}

/// A SIM id as simfleet's device id: Soracom's SIM ids are digits (ICCID-like); one that is
/// not cannot be named in simfleet's status, and is reported as such.
pub(super) fn device_id(sim_id: &str) -> Option<u64> {
    sim_id.parse().ok()
}

/// A Soracom status as simfleet reads it.
///
/// - `active` is Active; `ready` and `standby` await a connection: both turn `active` by
///   themselves at the next connection attempt, so a Paused group deactivates them and an
///   Active group leaves them to connect unless it says otherwise (activating a `ready` SIM
///   early starts billing).
/// - `inactive` and `suspended` are Paused, or paused by the system when the SIM's expiry has
///   passed with action `deactivate` or `suspend` (Soracom's only automatic pause).
/// - `terminated` is ineligible; any other word is unknown, never success.
pub(super) fn observed_state(
    status: Option<&str>,
    expiry_ms: Option<i64>,
    expiry_action: Option<&str>,
    now_ms: i64,
) -> ObservedState {
    let expired_to_pause = expiry_ms.is_some_and(|t| t <= now_ms)
        && matches!(expiry_action, Some("deactivate" | "suspend"));
    match status {
        Some("active") => ObservedState::Active,
        Some(waiting @ ("ready" | "standby")) => ObservedState::AwaitingConnection(format!(
            "{waiting}: turns active by itself at its next connection attempt"
        )),
        Some("inactive" | "suspended") if expired_to_pause => ObservedState::PausedBySystem,
        Some("inactive" | "suspended") => ObservedState::Paused,
        Some("terminated") => {
            ObservedState::Ineligible("terminated: Soracom allows no further changes".into())
        }
        Some(other) => ObservedState::Unknown(other.to_owned()),
        None => ObservedState::Unknown("no status".into()),
    }
}

fn observation(
    sim_id: &str,
    iccid: String,
    state: ObservedState,
    tags: Vec<String>,
) -> SimObservation {
    let device_id = device_id(sim_id);
    let state = if device_id.is_none() {
        ObservedState::Ineligible(format!(
            "Soracom SIM id {sim_id:?} is not a number, and simfleet names SIMs by numeric ids"
        ))
    } else {
        state
    };
    SimObservation {
        iccid,
        device_id,
        sim_id: None,
        state,
        tags,
    }
}

impl Sim {
    /// The SIM's ICCID: its active profile's, or its first profile's.
    pub(super) fn iccids(&self) -> Vec<&str> {
        self.profiles.keys().map(String::as_str).collect()
    }

    pub(super) fn observation(&self, now_ms: i64) -> SimObservation {
        let iccid = self
            .active_profile_id
            .as_deref()
            .filter(|p| self.profiles.contains_key(*p))
            .or_else(|| self.profiles.keys().next().map(String::as_str))
            .unwrap_or_default()
            .to_owned();
        let state = observed_state(
            self.status.as_deref(),
            self.expiry_time,
            self.expiry_action.as_deref(),
            now_ms,
        );
        observation(&self.sim_id, iccid, state, self.tags.selectable())
    }
}

impl Subscriber {
    pub(super) fn observation(&self, now_ms: i64) -> Result<SimObservation, CarrierError> {
        let sim_id = self
            .sim_id
            .as_deref()
            .ok_or_else(|| CarrierError::Protocol {
                message: format!(
                    "/v1/subscribers: subscriber {} has no simId",
                    self.imsi.as_deref().unwrap_or("?")
                ),
            })?;
        let state = observed_state(
            self.status.as_deref(),
            self.expiry_time.or(self.expired_at),
            self.expiry_action.as_deref(),
            now_ms,
        );
        Ok(observation(
            sim_id,
            self.iccid.clone().unwrap_or_default(),
            state,
            self.tags.selectable(),
        ))
    }
}

/// The SIM id a task's path names (`/v1/sims/{sim_id}/deactivate`).
pub(super) fn task_sim_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/sims/")?.split('/').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_documented() {
        let now = 1_000_000;
        let state = |s, t, a| observed_state(Some(s), t, a, now);
        assert_eq!(state("active", None, None), ObservedState::Active);
        assert!(
            matches!(state("ready", None, None), ObservedState::AwaitingConnection(m) if m.starts_with("ready"))
        );
        assert!(
            matches!(state("standby", None, None), ObservedState::AwaitingConnection(m) if m.starts_with("standby"))
        );
        assert_eq!(state("inactive", None, None), ObservedState::Paused);
        assert_eq!(state("suspended", None, None), ObservedState::Paused);
        assert_eq!(
            state("inactive", Some(now - 1), Some("deactivate")),
            ObservedState::PausedBySystem
        );
        assert_eq!(
            state("suspended", Some(now), Some("suspend")),
            ObservedState::PausedBySystem
        );
        // An expiry still ahead, or one that does nothing, is no pause by the system.
        assert_eq!(
            state("inactive", Some(now + 1), Some("deactivate")),
            ObservedState::Paused
        );
        assert_eq!(
            state("inactive", Some(now - 1), Some("doNothing")),
            ObservedState::Paused
        );
        assert!(matches!(
            state("terminated", None, None),
            ObservedState::Ineligible(_)
        ));
        assert_eq!(
            state("testing", None, None),
            ObservedState::Unknown("testing".into())
        );
    }

    #[test]
    fn a_sim_reads_its_iccid_from_its_profiles_and_its_tags_as_name_value() {
        let sim: Sim = serde_json::from_value(serde_json::json!({
            "simId": "8942310000000000001",
            "status": "inactive",
            "tags": {"name": "", "fleet": "cold-chain"},
            "profiles": {"8944500000000000001": {"iccid": "8944500000000000001"}},
        }))
        .unwrap();
        let o = sim.observation(0);
        assert_eq!(o.iccid, "8944500000000000001");
        assert_eq!(o.device_id, Some(8_942_310_000_000_000_001));
        assert_eq!(o.tags, vec!["fleet=cold-chain".to_owned()]);
        assert_eq!(o.state, ObservedState::Paused);
    }

    #[test]
    fn a_sim_id_that_is_not_a_number_is_reported_not_guessed() {
        let sim: Sim = serde_json::from_value(serde_json::json!({
            "simId": "abc-1", "status": "active", "profiles": {},
        }))
        .unwrap();
        let o = sim.observation(0);
        assert_eq!(o.device_id, None);
        assert!(matches!(o.state, ObservedState::Ineligible(m) if m.contains("abc-1")));
    }

    #[test]
    fn a_subscriber_accepts_either_spelling_of_its_expiry() {
        let s: Subscriber = serde_json::from_value(serde_json::json!({
            "imsi": "440103000000001", "iccid": "8944500000000000001",
            "simId": "8942310000000000001", "status": "inactive",
            "expiredAt": 5, "expiryAction": "deactivate",
        }))
        .unwrap();
        assert_eq!(
            s.observation(10).unwrap().state,
            ObservedState::PausedBySystem
        );
    }
}
