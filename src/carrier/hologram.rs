//! Hologram's REST API v1: HTTP Basic auth with the `apikey` user, keyset paging, bulk state
//! changes of up to 10,000 devices. Written from Hologram's documented wire format.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

#[cfg(test)]
use super::http::Reply;
use super::http::{Auth, Call, CallCounters, HttpCore, Repeat};
use super::{Capabilities, Carrier, CarrierError};
use crate::api::StateChange;
use crate::model::{
    Lookup, ObservedState, QuotaEvent, QuotaReading, QuotaSetting, Refusal, RefusalKind, Selection,
    SimObservation, SimTarget, Submission,
};

/// Most devices in one Hologram bulk action.
pub const BULK_LIMIT: usize = 10_000;
/// Page size of list calls (Hologram's maximum).
const PAGE: usize = 1000;
/// Bytes of multi-value filter values in one call: the documents advise keeping the URL well
/// under 8 KB, and a batch must fit on one page.
const URL_VALUES: usize = 7000;

/// Which records a batched lookup lists.
#[derive(Clone, Copy, Debug)]
enum Listed {
    /// `/links/cellular` (by ICCID).
    Links,
    /// `/devices` (by device id).
    Devices,
}

/// Values split into batches whose comma-joined length stays under [`URL_VALUES`], at most a
/// page each.
fn url_batches(values: Vec<String>) -> Vec<Vec<String>> {
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut length = 0;
    for value in values {
        let full = batches
            .last()
            .is_none_or(|b| length + value.len() + 1 > URL_VALUES || b.len() >= PAGE);
        if full {
            batches.push(Vec::new());
            length = 0;
        }
        length += value.len() + 1;
        batches.last_mut().expect("pushed").push(value);
    }
    batches
}

/// A client of one Hologram account.
pub struct HologramClient {
    core: HttpCore,
    api_key: SecretString,
    org_id: Option<u64>,
    // The jobs list answered 403 (a plan without activity history): not asked again.
    jobs_forbidden: AtomicBool,
    last_lookup: std::sync::Mutex<Option<crate::model::LookupPlan>>,
}

/// A job as the jobs list `GET /devices/batch/state` shows it (the fields read).
#[derive(Debug, Deserialize)]
struct Task {
    job_id: Value,
    status: Option<String>,
    timestamp_end: Option<String>,
}

/// The jobs list's `data`.
#[derive(Debug, Deserialize)]
struct Tasks {
    tasks: Vec<Task>,
}

impl std::fmt::Debug for HologramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HologramClient")
            .field("core", &self.core)
            .field("api_key", &"[redacted]")
            .field("org_id", &self.org_id)
            .finish()
    }
}

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

fn protocol(message: impl Into<String>) -> CarrierError {
    CarrierError::Protocol {
        message: message.into(),
    }
}

/// A cellular link as Hologram lists it (the fields read). Typed and borrowing from the body:
/// building `serde_json::Value`s for every device of every page dominated observation time.
#[derive(Debug, Deserialize)]
struct Link<'a> {
    #[serde(borrow)]
    sim: Option<Cow<'a, str>>,
    deviceid: Option<u64>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
}

/// A device tag: an object `{"id", "name"}` in the API Blueprint, a plain name in the newer
/// pages; both are read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Tag<'a> {
    Name(#[serde(borrow)] Cow<'a, str>),
    Object {
        #[serde(borrow)]
        name: Option<Cow<'a, str>>,
    },
}

impl Tag<'_> {
    fn name(&self) -> Option<&str> {
        match self {
            Tag::Name(name) => Some(name),
            Tag::Object { name } => name.as_deref(),
        }
    }
}

/// A device's links.
#[derive(Debug, Deserialize)]
struct Links<'a> {
    #[serde(borrow)]
    cellular: Option<Vec<Link<'a>>>,
}

/// A device as `/devices` returns it (the fields read). A device has no top-level ICCID: it is
/// `links.cellular[].sim`.
#[derive(Debug, Deserialize)]
struct Device<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    tags: Option<Vec<Tag<'a>>>,
    #[serde(borrow)]
    links: Option<Links<'a>>,
}

/// Hologram's answer envelope: `{"success", "data"}`, on lists also `continues` (present only
/// while more pages follow) and `lastid` (the newer pages' cursor).
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: Option<bool>,
    data: Option<T>,
    continues: Option<bool>,
    lastid: Option<u64>,
}

/// Where the next page starts: after `lastid` when the answer gives it (the documents also say
/// devices are listed "most recent first", so the last record's id is only the fallback).
#[derive(Debug, PartialEq, Eq)]
enum NextPage {
    After(Option<u64>),
    None,
}

impl<T> Envelope<T> {
    /// The data of a successful answer, and whether more pages follow.
    fn into_data(self, route: &str) -> Result<(T, bool), CarrierError> {
        self.into_page(route)
            .map(|(data, next)| (data, next != NextPage::None))
    }

    /// The data of a successful list answer, and where the next page starts.
    fn into_page(self, route: &str) -> Result<(T, NextPage), CarrierError> {
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
fn link_observation(link: &Link<'_>) -> Result<SimObservation, CarrierError> {
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
fn device_observation(device: &Device<'_>) -> Result<SimObservation, CarrierError> {
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

impl HologramClient {
    /// A client over `core` (base URL ending in `/api/1`).
    pub fn new(core: HttpCore, api_key: SecretString, org_id: Option<u64>) -> Self {
        Self {
            core,
            api_key,
            org_id,
            jobs_forbidden: AtomicBool::new(false),
            last_lookup: std::sync::Mutex::new(None),
        }
    }

    fn call(
        &self,
        method: Method,
        route: &'static str,
        path: impl Into<String>,
        repeat: Repeat,
    ) -> Call<'_> {
        let call = Call::new(
            method,
            route,
            path,
            Auth::Basic("apikey", &self.api_key),
            repeat,
        );
        match self.org_id {
            Some(org) => call.query("orgid", org),
            None => call,
        }
    }

    /// The listed SIMs, looked up many per call through Hologram's multi-value filters: ICCIDs
    /// with `/links/cellular?sims=`, device ids with `/devices?ids=` (devices carry their tags,
    /// which conflicts with tag groups need). Each call's values stay under [`URL_VALUES`]
    /// bytes, as the documents advise for an unpublished limit. Hologram publishes no totals,
    /// so the cost of listing the whole organisation is not known beforehand: batches it is.
    fn listed_pages(
        &self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'_, Result<Vec<SimObservation>, CarrierError>> {
        let mut iccids = Vec::new();
        let mut devices = Vec::new();
        for key in lookups {
            match key {
                Lookup::Iccid(i) => iccids.push(i),
                Lookup::Device(d) => devices.push(d.to_string()),
            }
        }
        let batches: Vec<(Listed, Vec<String>)> = url_batches(iccids)
            .into_iter()
            .map(|b| (Listed::Links, b))
            .chain(
                url_batches(devices)
                    .into_iter()
                    .map(|b| (Listed::Devices, b)),
            )
            .collect();
        let plan = crate::model::LookupPlan::Batched {
            calls: batches.len() as u64,
        };
        tracing::debug!(%plan, "looking up listed SIMs");
        *self.last_lookup.lock().expect("lookup lock") = Some(plan);
        stream::iter(batches)
            .map(move |(listed, values)| self.lookup_batch(listed, values))
            .buffered(self.core.concurrency())
            .boxed()
    }

    /// One batch of listed SIMs (all on one page: a batch holds fewer than a page), the ones not
    /// found as unknown.
    async fn lookup_batch(
        &self,
        listed: Listed,
        values: Vec<String>,
    ) -> Result<Vec<SimObservation>, CarrierError> {
        let (route, filter, keys): (&'static str, &str, Vec<Lookup>) = match listed {
            Listed::Links => (
                "/links/cellular",
                "sims",
                values.iter().cloned().map(Lookup::Iccid).collect(),
            ),
            Listed::Devices => (
                "/devices",
                "ids",
                values
                    .iter()
                    .filter_map(|v| v.parse().ok())
                    .map(Lookup::Device)
                    .collect(),
            ),
        };
        // The values go into the path as they are: commas are fine in a query, and encoded
        // (%2C) they would take three times the URL length.
        let call = self
            .call(
                Method::GET,
                route,
                format!("{route}?{filter}={}", values.join(",")),
                Repeat::Safe,
            )
            .query("limit", PAGE);
        let reply = self.core.send(&call).await?;
        let observed = match listed {
            Listed::Links => {
                let (links, _) = reply
                    .parse::<Envelope<Vec<Link>>>(route)?
                    .into_data(route)?;
                links
                    .iter()
                    .map(link_observation)
                    .collect::<Result<Vec<_>, _>>()?
            }
            Listed::Devices => {
                let (devices, _) = reply
                    .parse::<Envelope<Vec<Device>>>(route)?
                    .into_data(route)?;
                devices
                    .iter()
                    .map(device_observation)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let mut wanted = super::ListedSet::new(&keys);
        let mut page = wanted.take(observed);
        page.extend(wanted.unknown());
        Ok(page)
    }

    /// Pages of the devices carrying one tag, skipping those reported under an earlier tag or
    /// listed explicitly.
    fn tagged<'a>(
        &'a self,
        selection: &'a Selection,
        index: usize,
        listed: Arc<HashSet<u64>>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        let tag = &selection.tags[index];
        let earlier: HashSet<&str> = selection.tags[..index].iter().map(String::as_str).collect();
        stream::try_unfold(Some(None::<u64>), move |cursor| {
            let earlier = earlier.clone();
            let listed = listed.clone();
            async move {
                let Some(after) = cursor else {
                    return Ok(None);
                };
                let mut call = self
                    .call(Method::GET, "/devices", "/devices", Repeat::Safe)
                    .query("tagname", tag)
                    .query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("startafter", after);
                }
                let reply = self.core.send(&call).await?;
                let (devices, next) = reply
                    .parse::<Envelope<Vec<Device>>>("/devices")?
                    .into_page("/devices")?;
                let mut page = Vec::with_capacity(devices.len());
                let mut last = None;
                for device in &devices {
                    let observed = device_observation(device)?;
                    let id = observed.device_id.expect("a device observation has its id");
                    last = Some(id);
                    let carries_earlier =
                        observed.tags.iter().any(|n| earlier.contains(n.as_str()));
                    if carries_earlier || listed.contains(&id) {
                        continue;
                    }
                    page.push(observed);
                }
                let next = match (next, last) {
                    (NextPage::After(Some(cursor)), _) | (NextPage::After(None), Some(cursor)) => {
                        Some(Some(cursor))
                    }
                    (NextPage::After(None), None) => {
                        return Err(protocol("/devices: \"continues\" is true on an empty page"));
                    }
                    (NextPage::None, _) => None,
                };
                Ok(Some((page, next)))
            }
        })
        .try_filter(|page| futures::future::ready(!page.is_empty()))
        .boxed()
    }
}

impl Carrier for HologramClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_sims_per_action: BULK_LIMIT,
            bulk: true,
            bulk_unavailable: None,
            data_quota: false,
        }
    }

    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>> {
        async move {
            let call = self
                .call(Method::GET, "/devices", "/devices", Repeat::Safe)
                .query("limit", 1);
            let reply = self.core.send(&call).await?;
            reply
                .parse::<Envelope<Vec<Device>>>("/devices")?
                .into_data("/devices")
                .map(|_| ())
        }
        .boxed()
    }

    fn observe<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        *self.last_lookup.lock().expect("lookup lock") = None;
        super::union_of_selection(
            selection,
            self.core.concurrency(),
            move |lookups| self.listed_pages(lookups),
            move |index, listed| self.tagged(selection, index, listed),
        )
    }

    fn submit<'a>(
        &'a self,
        change: StateChange,
        sims: &'a [SimTarget],
    ) -> BoxFuture<'a, Result<Submission, CarrierError>> {
        async move {
            if sims.is_empty() {
                return Ok(Submission::default());
            }
            if sims.len() > BULK_LIMIT {
                return Err(CarrierError::Rejected {
                    field: Some("deviceids".into()),
                    message: format!(
                        "{} devices in one action; Hologram takes at most {BULK_LIMIT}",
                        sims.len()
                    ),
                });
            }
            let state = state_word(change);
            let ids: Vec<u64> = sims.iter().map(|s| s.device_id).collect();
            let mut body = json!({"state": state, "deviceids": ids});
            // One version of the documents wants orgid in the body, another as a required
            // query parameter: `call` adds it to the query, and it goes in the body too.
            if let Some(org) = self.org_id {
                body["orgid"] = json!(org);
            }
            // Not idempotent: after a timeout the caller observes states before resubmitting.
            let call = self
                .call(
                    Method::POST,
                    "/devices/batch/state",
                    "/devices/batch/state",
                    Repeat::Unsafe,
                )
                .json(body);
            let reply = self.core.send(&call).await?;
            bulk_answer(&reply.json("/devices/batch/state")?, &ids)
        }
        .boxed()
    }

    fn action_statuses<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<crate::model::ActionStatus>, CarrierError>> {
        async move {
            if ids.is_empty() || self.jobs_forbidden.load(Ordering::Relaxed) {
                return Ok(Vec::new());
            }
            let call = self.call(
                Method::GET,
                "/devices/batch/state",
                "/devices/batch/state",
                Repeat::Safe,
            );
            let reply = match self.core.send(&call).await {
                Ok(reply) => reply,
                Err(CarrierError::Forbidden { message }) => {
                    tracing::debug!(%message, "the jobs list is not available for this account");
                    self.jobs_forbidden.store(true, Ordering::Relaxed);
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            let (data, _) = reply
                .parse::<Envelope<Tasks>>("/devices/batch/state")?
                .into_data("/devices/batch/state")?;
            Ok(data
                .tasks
                .into_iter()
                .filter_map(|task| {
                    // job_id is a number in one example and a string in another.
                    let id = match task.job_id {
                        Value::Number(n) => n.to_string(),
                        Value::String(s) => s,
                        _ => return None,
                    };
                    ids.contains(&id).then(|| crate::model::ActionStatus {
                        id,
                        // The status values are not documented: the end time is.
                        finished: task.timestamp_end.as_deref().is_some_and(|t| !t.is_empty()),
                        status: task.status.unwrap_or_default(),
                    })
                })
                .collect())
        }
        .boxed()
    }

    fn read_quota(
        &self,
        _device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>> {
        async move { Err(self.no_quotas()) }.boxed()
    }

    fn set_quota<'a>(
        &'a self,
        _device_id: u64,
        _quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        async move { Err(self.no_quotas()) }.boxed()
    }

    fn delete_quota(&self, _device_id: u64) -> BoxFuture<'_, Result<bool, CarrierError>> {
        async move { Err(self.no_quotas()) }.boxed()
    }

    fn quota_events(
        &self,
        _device_id: u64,
        _since: Option<jiff::Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>> {
        async move { Err(self.no_quotas()) }.boxed()
    }

    fn last_lookup_plan(&self) -> Option<crate::model::LookupPlan> {
        *self.last_lookup.lock().expect("lookup lock")
    }

    fn counters(&self) -> Arc<CallCounters> {
        self.core.counters()
    }
}

/// The bulk route's `state` for a change. Hologram also accepts `deactivate`, which is
/// permanent: simfleet has no change that sends it.
fn state_word(change: StateChange) -> &'static str {
    match change {
        StateChange::Pause => "pause",
        StateChange::Resume => "live",
    }
}

/// Reads the bulk route's answer: `data.jobid` (a number or a string) and the warnings of
/// `data.valid_tasks[].task_results` (objects `{deviceid, linkid, message}` or plain strings),
/// which name the devices that could not change. A string warning is matched to the submitted
/// device id it names; one that names none is left to the next observation.
fn bulk_answer(body: &Value, submitted: &[u64]) -> Result<Submission, CarrierError> {
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

impl HologramClient {
    fn no_quotas(&self) -> CarrierError {
        CarrierError::Unsupported {
            provider: self.core.provider(),
            what: "data quotas (Hologram has no per-device quota API)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                status: reqwest::StatusCode::OK,
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
            status: reqwest::StatusCode::OK,
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
