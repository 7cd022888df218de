//! Hologram's documented wire format, as read and written: link and device shapes (tags as
//! objects or strings), the `{success, data}` envelope with keyset paging, state names, and
//! the bulk route's request word and answer (job id and warnings).

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::super::CarrierError;
use simfleet_api::StateChange;
use simfleet_api::model::{ObservedState, Refusal, RefusalKind, SimObservation, Submission};

/// Normalises a Hologram link state: the documented names (`PAUSED` as the Blueprint's summary
/// writes it, `PAUSED-BY-SYS` as one guide spells it), and the pending states
/// `PAUSED-PENDING-USER` (a pause in flight) and `LIVE-PENDING` (a resume in flight). Anything
/// else is unknown: never success.
pub fn normalise(state: &str) -> ObservedState {
    match state {
        "LIVE" => ObservedState::Active,
        "PAUSED-USER" | "PAUSED" => ObservedState::Paused,
        "PAUSED-SYS" | "PAUSED-BY-SYS" => ObservedState::PausedBySystem,
        "DEAD" => ObservedState::Ineligible("deactivated (DEAD)".into()),
        "PAUSED-PENDING-USER" => ObservedState::Pending(StateChange::Pause),
        "LIVE-PENDING" => ObservedState::Pending(StateChange::Resume),
        other => ObservedState::Unknown(other.to_owned()),
    }
}

pub(super) fn protocol(message: impl Into<String>) -> CarrierError {
    CarrierError::Protocol {
        message: message.into(),
    }
}

/// A cellular link as Hologram lists it (the fields read). Typed and borrowing from the body:
/// building `serde_json::Value`s for every device of every page dominated observation time.
#[derive(Debug, Deserialize)]
pub(super) struct Link<'a> {
    #[serde(borrow)]
    pub(super) sim: Option<Cow<'a, str>>,
    pub(super) deviceid: Option<u64>,
    #[serde(borrow)]
    pub(super) state: Option<Cow<'a, str>>,
}

/// A device tag: an object `{"id", "name"}` in the API Blueprint, a plain name in the newer
/// pages; both are read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Tag<'a> {
    Name(#[serde(borrow)] Cow<'a, str>),
    Object {
        #[serde(borrow)]
        name: Option<Cow<'a, str>>,
    },
}

impl Tag<'_> {
    pub(super) fn name(&self) -> Option<&str> {
        match self {
            Tag::Name(name) => Some(name),
            Tag::Object { name } => name.as_deref(),
        }
    }
}

/// A device's links.
#[derive(Debug, Deserialize)]
pub(super) struct Links<'a> {
    #[serde(borrow)]
    pub(super) cellular: Option<Vec<Link<'a>>>,
}

/// A device as `/devices` returns it (the fields read). A device has no top-level ICCID: it is
/// `links.cellular[].sim`.
#[derive(Debug, Deserialize)]
pub(super) struct Device<'a> {
    pub(super) id: Option<u64>,
    #[serde(borrow)]
    pub(super) tags: Option<Vec<Tag<'a>>>,
    #[serde(borrow)]
    pub(super) links: Option<Links<'a>>,
}

/// Hologram's answer envelope: `{"success", "data"}`, on lists also `continues` (present only
/// while more pages follow) and `lastid` (the newer pages' cursor).
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<T> {
    pub(super) success: Option<bool>,
    pub(super) data: Option<T>,
    pub(super) continues: Option<bool>,
    pub(super) lastid: Option<u64>,
}

/// Where the next page starts: after `lastid` when the answer gives it (the documents also say
/// devices are listed "most recent first", so the last record's id is only the fallback).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NextPage {
    After(Option<u64>),
    None,
}

impl<T> Envelope<T> {
    /// The data of a successful answer, and whether more pages follow.
    pub(super) fn into_data(self, route: &str) -> Result<(T, bool), CarrierError> {
        self.into_page(route)
            .map(|(data, next)| (data, next != NextPage::None))
    }

    /// The data of a successful list answer, and where the next page starts.
    pub(super) fn into_page(self, route: &str) -> Result<(T, NextPage), CarrierError> {
        if self.success != Some(true) {
            return Err(protocol(format!("{route}: \"success\" is not true")));
        }
        let data = self
            .data
            .ok_or_else(|| protocol(format!("{route}: no \"data\"")))?;
        let next = if self.continues == Some(true) {
            NextPage::After(self.lastid)
        } else {
            NextPage::None
        };
        Ok((data, next))
    }
}

/// Reads a link (`{"id", "deviceid", "sim", "state", ...}`).
pub(super) fn link_observation(link: &Link<'_>) -> Result<SimObservation, CarrierError> {
    let iccid = link
        .sim
        .as_deref()
        .ok_or_else(|| protocol("a cellular link has no \"sim\" (ICCID)"))?;
    let device_id = link
        .deviceid
        .ok_or_else(|| protocol("a cellular link has no numeric \"deviceid\""))?;
    let state = link
        .state
        .as_deref()
        .ok_or_else(|| protocol("a cellular link has no \"state\""))?;
    Ok(SimObservation {
        iccid: iccid.to_owned(),
        device_id: Some(device_id),
        sim_id: None,
        state: normalise(state),
        tags: Vec::new(),
    })
}

/// A device as `/devices` lists it (tags and its first cellular link) as an observation.
pub(super) fn device_observation(device: &Device<'_>) -> Result<SimObservation, CarrierError> {
    let id = device
        .id
        .ok_or_else(|| protocol("a device has no numeric \"id\""))?;
    let tags: Vec<String> = device
        .tags
        .iter()
        .flatten()
        .filter_map(|t| t.name().map(str::to_owned))
        .collect();
    let link = device
        .links
        .as_ref()
        .and_then(|l| l.cellular.as_ref())
        .and_then(|c| c.first());
    Ok(match link {
        Some(link) => SimObservation {
            tags,
            ..link_observation(link)?
        },
        None => SimObservation {
            iccid: String::new(),
            device_id: Some(id),
            sim_id: None,
            state: ObservedState::Ineligible("the device has no cellular link".into()),
            tags,
        },
    })
}

/// The bulk route's `state` for a change. Hologram also accepts `deactivate`, which is
/// permanent: simfleet has no change that sends it.
pub(super) fn state_word(change: StateChange) -> &'static str {
    match change {
        StateChange::Pause => "pause",
        StateChange::Resume => "live",
    }
}

/// Reads the bulk route's answer: `data.jobid` (a number or a string) and the warnings of
/// `data.valid_tasks[].task_results` (objects `{deviceid, linkid, message}` or plain strings),
/// which name the devices that could not change. A string warning is matched to the submitted
/// device id it names; one that names none is left to the next observation.
pub(super) fn bulk_answer(body: &Value, submitted: &[u64]) -> Result<Submission, CarrierError> {
    let route = "/devices/batch/state";
    if body.get("success") != Some(&Value::Bool(true)) {
        return Err(protocol(format!("{route}: \"success\" is not true")));
    }
    let job = match body.pointer("/data/jobid") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(protocol(format!(
                "{route}: no \"data.jobid\" in the answer"
            )));
        }
    };
    let tasks = match body.pointer("/data/valid_tasks") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(tasks)) => tasks.as_slice(),
        Some(_) => {
            return Err(protocol(format!(
                "{route}: \"data.valid_tasks\" is not a list"
            )));
        }
    };
    let submitted: HashSet<u64> = submitted.iter().copied().collect();
    let mut refused: Vec<Refusal> = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let warnings = match task.pointer("/task_results/warnings") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(w)) => w,
            Some(_) => {
                return Err(protocol(format!(
                    "{route}: \"data.valid_tasks[{t}].task_results.warnings\" is not a list"
                )));
            }
        };
        for warning in warnings {
            let (device, message) = match warning {
                Value::Object(w) => (
                    w.get("deviceid").and_then(Value::as_u64),
                    w.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("refused")
                        .to_owned(),
                ),
                Value::String(text) => (
                    text.split(|c: char| !c.is_ascii_digit())
                        .filter_map(|n| n.parse::<u64>().ok())
                        .find(|n| submitted.contains(n)),
                    text.clone(),
                ),
                _ => (None, String::new()),
            };
            if let Some(device_id) = device.filter(|d| submitted.contains(d))
                && !refused.iter().any(|r| r.device_id == device_id)
            {
                refused.push(Refusal {
                    device_id,
                    reason: message,
                    kind: RefusalKind::Failed,
                });
            }
        }
    }
    Ok(Submission {
        action_ids: vec![job],
        accepted: submitted.len() - refused.len(),
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Reply;
    use serde_json::json;

    #[test]
    fn known_states_are_normalised_and_unknown_ones_are_never_success() {
        assert_eq!(normalise("LIVE"), ObservedState::Active);
        assert_eq!(normalise("PAUSED-SYS"), ObservedState::PausedBySystem);
        assert_eq!(
            normalise("LIVE-PENDING"),
            ObservedState::Pending(StateChange::Resume)
        );
        assert!(matches!(normalise("DEAD"), ObservedState::Ineligible(_)));
        assert_eq!(
            normalise("HIBERNATE"),
            ObservedState::Unknown("HIBERNATE".into())
        );
    }

    #[test]
    fn the_client_never_sends_deactivate() {
        for change in [StateChange::Pause, StateChange::Resume] {
            assert_ne!(state_word(change), "deactivate");
        }
        assert_eq!(
            [
                state_word(StateChange::Pause),
                state_word(StateChange::Resume)
            ],
            ["pause", "live"]
        );
    }

    #[test]
    fn tags_are_read_as_objects_or_strings_and_paging_follows_lastid() {
        let body = |tags: &str, tail: &str| {
            format!(
                r#"{{"success": true, "data": [{{"id": 1001, "tags": {tags}, "links": {{"cellular": [{{"sim": "8944500000000000001", "deviceid": 1001, "state": "PAUSED-PENDING-USER"}}]}}}}]{tail}}}"#
            )
        };
        for (tags, tail, next) in [
            (
                r#"[{"id": 1, "name": "meter"}]"#,
                r#", "continues": true, "lastid": 1500"#,
                NextPage::After(Some(1500)),
            ),
            (
                r#"["meter"]"#,
                r#", "continues": true"#,
                NextPage::After(None),
            ),
            (r#"["meter"]"#, "", NextPage::None),
        ] {
            let text = body(tags, tail);
            let reply = Reply {
                headers: Default::default(),
                body: text.into(),
            };
            let (devices, paging) = reply
                .parse::<Envelope<Vec<Device>>>("/devices")
                .unwrap()
                .into_page("/devices")
                .unwrap();
            assert_eq!(paging, next, "{tags}{tail}");
            let observed = device_observation(&devices[0]).unwrap();
            assert_eq!(observed.tags, ["meter"]);
            assert_eq!(observed.state, ObservedState::Pending(StateChange::Pause));
        }
    }

    #[test]
    fn bulk_answers_read_job_ids_and_warnings_in_every_documented_shape() {
        let submitted = [1001, 1002, 1003];
        for (jobid, warnings) in [
            (
                "10000",
                r#"[{"deviceid": 1002, "linkid": 500002, "message": "SIM state is locked (PAUSED-PENDING-USER). Contact support"}]"#,
            ),
            (
                r#""10000""#,
                r#"["device 1002: SIM state is locked (PAUSED-PENDING-USER). Contact support"]"#,
            ),
        ] {
            let body: Value = serde_json::from_str(&format!(
                r#"{{"success": true, "data": {{"jobid": {jobid}, "preview": false, "valid_tasks": [{{"task_results": {{"warnings": {warnings}, "devices_modified": 2, "newstate": "PAUSED-PENDING-USER"}}}}]}}}}"#
            ))
            .unwrap();
            let submission = bulk_answer(&body, &submitted).unwrap();
            assert_eq!(submission.action_ids, ["10000"]);
            assert_eq!(submission.accepted, 2);
            assert_eq!(submission.refused.len(), 1);
            assert_eq!(submission.refused[0].device_id, 1002);
            assert!(submission.refused[0].reason.contains("locked"));
        }
        // A string warning naming no submitted device is left to the next observation.
        let body = json!({"success": true, "data": {"jobid": 7, "valid_tasks": [{"task_results": {"warnings": ["rate of changes is high"]}}]}});
        assert!(bulk_answer(&body, &submitted).unwrap().refused.is_empty());
        let no_job = json!({"success": true, "data": {"preview": false}});
        assert!(matches!(
            bulk_answer(&no_job, &submitted),
            Err(CarrierError::Protocol { .. })
        ));
        let bad_warnings = json!({"success": true, "data": {"jobid": 1, "valid_tasks": [{"task_results": {"warnings": "x"}}]}});
        let err = bulk_answer(&bad_warnings, &submitted).unwrap_err();
        assert!(err.to_string().contains("warnings"), "{err}");
    }

    #[test]
    fn malformed_links_are_protocol_errors() {
        let link: Link = serde_json::from_str(r#"{"deviceid": 1, "state": "LIVE"}"#).unwrap();
        let err = link_observation(&link).unwrap_err();
        assert!(err.to_string().contains("no \"sim\""), "{err}");
        let reply = |body: &str| Reply {
            headers: Default::default(),
            body: body.to_owned().into(),
        };
        let not_a_list = reply(r#"{"success": true, "data": {}}"#);
        let err = not_a_list
            .parse::<Envelope<Vec<Device>>>("/devices")
            .unwrap_err();
        assert!(matches!(err, CarrierError::Protocol { .. }));
        assert!(
            err.to_string().contains(
                "/devices: the body does not have the carrier's documented shape at data"
            ),
            "{err}"
        );
        // The path names the field that is not as documented.
        let bad_tag = reply(r#"{"success": true, "data": [{"id": 1, "tags": [5]}]}"#);
        let err = bad_tag
            .parse::<Envelope<Vec<Device>>>("/devices")
            .unwrap_err();
        assert!(err.to_string().contains("at data[0].tags[0]"), "{err}");
        let failed = reply(r#"{"success": false, "data": []}"#);
        let err = failed
            .parse::<Envelope<Vec<Device>>>("/devices")
            .unwrap()
            .into_data("/devices")
            .unwrap_err();
        assert!(err.to_string().contains("\"success\" is not true"), "{err}");
    }
}
