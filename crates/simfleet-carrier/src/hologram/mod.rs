//! Hologram's REST API v1: HTTP Basic auth with the `apikey` user, keyset paging, bulk state
//! changes of up to 10,000 devices. Written from Hologram's documented wire format (`wire`).

mod wire;

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

use super::http::{Auth, Call, CallCounters, HttpCore, Repeat};
use super::{Capabilities, Carrier, CarrierError};
use simfleet_api::StateChange;
use simfleet_api::model::{Lookup, Selection, SimObservation, SimTarget, Submission};
use wire::{
    Device, Envelope, Link, NextPage, bulk_answer, device_observation, link_observation, protocol,
    state_word,
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
    last_lookup: std::sync::Mutex<Option<simfleet_api::model::LookupPlan>>,
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
}

impl super::SelectionPages for HologramClient {
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
        let plan = simfleet_api::model::LookupPlan::Batched {
            calls: batches.len() as u64,
        };
        tracing::debug!(%plan, "looking up listed SIMs");
        *self.last_lookup.lock().expect("lookup lock") = Some(plan);
        stream::iter(batches)
            .map(move |(listed, values)| self.lookup_batch(listed, values))
            .buffered(self.core.concurrency())
            .boxed()
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

    fn concurrency(&self) -> usize {
        self.core.concurrency()
    }

    fn last_lookup(&self) -> &std::sync::Mutex<Option<simfleet_api::model::LookupPlan>> {
        &self.last_lookup
    }
}

impl Carrier for HologramClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_sims_per_action: BULK_LIMIT,
            bulk: true,
            bulk_unavailable: None,
            data_quota: false,
            one_action_at_a_time: false,
            action_status_in_one_call: !self.jobs_forbidden.load(Ordering::Relaxed),
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
        super::observe_selection(self, selection)
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
    ) -> BoxFuture<'a, Result<Vec<simfleet_api::model::ActionStatus>, CarrierError>> {
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
                    ids.contains(&id)
                        .then(|| simfleet_api::model::ActionStatus {
                            refused: Vec::new(),
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

    fn no_quotas(&self) -> CarrierError {
        CarrierError::Unsupported {
            provider: self.core.provider(),
            what: "data quotas (Hologram has no per-device quota API)",
        }
    }

    fn last_lookup_plan(&self) -> Option<simfleet_api::model::LookupPlan> {
        *self.last_lookup.lock().expect("lookup lock")
    }

    fn counters(&self) -> Arc<CallCounters> {
        self.core.counters()
    }
}
