//! Soracom's API v1: one `/v1/auth` per token lifetime (the token is cached and renewed ten
//! minutes before it lapses, since `/auth` is limited per IP), the two headers on every call,
//! pacing on `X-Soracom-Ratelimit-*`, observation by tag through `/v1/subscribers` (deduplicated
//! by SIM id) and by listed SIMs through single reads or the full listing, and changes through
//! Batch API jobs of up to 10,000 SIMs, whose status is the pending action's carrier status.
//! Written from Soracom's documented wire format (`wire`).

mod wire;

use crate::token_session::{Issuer, TokenSession};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{Auth, Call, CallCounters, HttpCore, Repeat, Reply};
use super::{Capabilities, Carrier, CarrierError, ListedSet};
use simfleet_api::StateChange;
use simfleet_api::model::{
    ActionStatus, Lookup, LookupPlan, Refusal, RefusalKind, Selection, SimObservation, SimTarget,
    Submission,
};
use wire::{AuthResponse, BatchGroup, BatchJob, Sim, Subscriber, Task};

/// Most tasks in one Batch API job.
pub const JOB_LIMIT: usize = 10_000;
/// Page size of SIM listings (`/v1/subscribers` takes 1 to 100).
const PAGE: usize = 100;
/// Changes of at most this many SIMs use the single-SIM routes: a job costs its creation and
/// at least one read of its status.
const DIRECT_LIMIT: usize = 2;
/// Listed SIMs read one at a time up to this many; more are found in the full listing.
const ONE_BY_ONE_LIMIT: usize = 100;
/// Token lifetime asked for (Soracom's default), and how early it is renewed.
const TOKEN_SECONDS: i64 = 86_400;
const RENEW_EARLY: SignedDuration = SignedDuration::from_mins(10);
/// The batch group simfleet's jobs go in (found by name, or created once).
pub const BATCH_GROUP_NAME: &str = "simfleet";
/// ICCID values per `/v1/query/sims` call, to keep its URL short.
const QUERY_VALUES: usize = 40;

/// What Soracom offers in place of a data quota (support article 218341087: no volume cap).
pub const NO_QUOTA: &str = "data quotas (Soracom enforces no volume cap per SIM; it offers \
    an expiry time with an action, speed classes, and Event Handler rules on traffic volume \
    instead)";

/// What `/v1/auth` issues: both headers every call carries.
struct Session {
    api_key: SecretString,
    token: SecretString,
}

/// A client of one Soracom operator (one coverage endpoint).
pub struct SoracomClient {
    core: HttpCore,
    key_id: String,
    key: SecretString,
    /// `suspend` instead of `deactivate` when pausing.
    suspend_on_pause: bool,
    /// The API key and token (renewed before they lapse, and once on 401 or 403).
    session: TokenSession<Session>,
    batch_group: tokio::sync::Mutex<Option<String>>,
    /// Per route: no call before this instant (the route's minute is spent).
    not_before: Mutex<HashMap<&'static str, Instant>>,
    /// The Batch API answered 403: single-SIM routes only.
    batch_forbidden: AtomicBool,
    /// ICCID to SIM id, as the search found them (the pairing never changes).
    sim_ids: Mutex<HashMap<String, String>>,
    last_lookup: Mutex<Option<LookupPlan>>,
}

/// Soracom's `POST /v1/auth`: the auth key for an API key and token, asked to last
/// [`TOKEN_SECONDS`].
impl Issuer<Session> for SoracomClient {
    async fn issue(&self) -> Result<(Session, Option<SignedDuration>), CarrierError> {
        let call = Call::new(
            Method::POST,
            "/v1/auth",
            "/v1/auth",
            Auth::None,
            Repeat::Safe,
        )
        .json(json!({
            "authKeyId": self.key_id,
            "authKey": self.key.expose_secret(),
            "tokenTimeoutSeconds": TOKEN_SECONDS,
        }));
        let reply = self.core.send(&call).await?;
        let answer: AuthResponse = reply.parse("/v1/auth")?;
        let session = Session {
            api_key: SecretString::from(answer.api_key),
            token: SecretString::from(answer.token),
        };
        Ok((session, Some(SignedDuration::from_secs(TOKEN_SECONDS))))
    }

    fn now(&self) -> Timestamp {
        self.core.now()
    }
}

impl SoracomClient {
    /// A client for `core` (base URL without `/v1`), with the Secret's `AUTH_KEY_ID:AUTH_KEY`.
    pub fn new(
        core: HttpCore,
        credential: &SecretString,
        suspend_on_pause: bool,
    ) -> Result<Self, CarrierError> {
        let (id, key) = credential
            .expose_secret()
            .trim()
            .split_once(':')
            .filter(|(id, key)| !id.is_empty() && !key.is_empty())
            .ok_or_else(|| CarrierError::Unauthorized {
                message: "the Secret's Soracom credential must be the auth key id and the auth key as AUTH_KEY_ID:AUTH_KEY".into(),
            })?;
        Ok(Self {
            core,
            key_id: id.to_owned(),
            key: SecretString::from(key.to_owned()),
            suspend_on_pause,
            session: TokenSession::new(RENEW_EARLY),
            batch_group: tokio::sync::Mutex::new(None),
            not_before: Mutex::new(HashMap::new()),
            batch_forbidden: AtomicBool::new(false),
            sim_ids: Mutex::new(HashMap::new()),
            last_lookup: Mutex::new(None),
        })
    }

    /// Sends a call with the token, paced on the route's rate headers; a 401 or 403 has the
    /// token renewed and the call sent once more (Soracom does not document which of the two
    /// an expired token gets).
    async fn send(&self, call: Call<'static>) -> Result<Reply, CarrierError> {
        let route = call.route;
        let refused = |e: &CarrierError| {
            matches!(
                e,
                CarrierError::Unauthorized { .. } | CarrierError::Forbidden { .. }
            )
        };
        let reply = self
            .session
            .send(self, refused, |session| {
                let call = &call;
                async move {
                    self.pace(route).await;
                    let this = Call {
                        method: call.method.clone(),
                        route,
                        path: call.path.clone(),
                        query: call.query.clone(),
                        body: call.body.clone(),
                        auth: Auth::SoracomToken(&session.token.api_key, &session.token.token),
                        repeat: call.repeat,
                    };
                    self.core.send(&this).await
                }
            })
            .await?;
        self.note_rate(route, &reply);
        Ok(reply)
    }

    /// Waits while the route's minute is spent.
    async fn pace(&self, route: &'static str) {
        let until = self
            .not_before
            .lock()
            .expect("pace lock")
            .get(route)
            .copied();
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Remembers when a route's minute refreshes once its last request is spent.
    fn note_rate(&self, route: &'static str, reply: &Reply) {
        if reply.header_u64("x-soracom-ratelimit-remaining") == Some(0) {
            let wait = reply
                .header_u64("x-soracom-ratelimit-seconds-before-refresh")
                .unwrap_or(60);
            self.not_before
                .lock()
                .expect("pace lock")
                .insert(route, Instant::now() + Duration::from_secs(wait));
        }
    }

    fn get(route: &'static str, path: impl Into<String>) -> Call<'static> {
        Call::new(Method::GET, route, path, Auth::None, Repeat::Safe)
    }

    fn now_ms(&self) -> i64 {
        self.core.now().as_millisecond()
    }

    /// The pages of a keyset-paged listing, following `x-soracom-next-key` until it is
    /// missing or empty (a short page is not the end).
    fn pages<'a>(
        &'a self,
        make: impl Fn(Option<&str>) -> Call<'static> + Send + Sync + 'a,
    ) -> BoxStream<'a, Result<Reply, CarrierError>> {
        let make = Arc::new(make);
        stream::try_unfold(Some(None::<String>), move |cursor| {
            let make = make.clone();
            async move {
                let Some(after) = cursor else {
                    return Ok(None);
                };
                let reply = self.send(make(after.as_deref())).await?;
                let next = reply
                    .headers
                    .get("x-soracom-next-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned);
                Ok(Some((reply, next.map(Some))))
            }
        })
        .boxed()
    }

    /// Finds the SIM ids of ICCIDs not paired yet, `QUERY_VALUES` a call; returns the calls.
    async fn pair_iccids(&self, iccids: &[String]) -> Result<u64, CarrierError> {
        let missing: Vec<String> = {
            let known = self.sim_ids.lock().expect("ids lock");
            iccids
                .iter()
                .filter(|i| !known.contains_key(*i))
                .cloned()
                .collect()
        };
        let mut calls = 0;
        for chunk in missing.chunks(QUERY_VALUES) {
            let wanted: HashSet<&str> = chunk.iter().map(String::as_str).collect();
            let mut pages = self.pages(|after| {
                let mut call = Self::get("/v1/query/sims", "/v1/query/sims")
                    .query("iccid", chunk.join(","))
                    .query("search_type", "or")
                    .query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("last_evaluated_key", after);
                }
                call
            });
            while let Some(reply) = pages.try_next().await? {
                calls += 1;
                let sims: Vec<Sim> = reply.parse("/v1/query/sims")?;
                let mut known = self.sim_ids.lock().expect("ids lock");
                // The search matches parts of values: only exact ICCIDs pair.
                for sim in &sims {
                    for iccid in sim.iccids() {
                        if wanted.contains(iccid) {
                            known.insert(iccid.to_owned(), sim.sim_id.clone());
                        }
                    }
                }
            }
        }
        Ok(calls)
    }

    /// One listed SIM, read fresh: unknown when Soracom does not have it.
    async fn read_one(&self, lookup: Lookup) -> Result<SimObservation, CarrierError> {
        let sim_id = match &lookup {
            Lookup::Device(d) => Some(d.to_string()),
            Lookup::Iccid(i) => self.sim_ids.lock().expect("ids lock").get(i).cloned(),
        };
        let Some(sim_id) = sim_id else {
            return Ok(lookup.unknown());
        };
        match self
            .send(Self::get("/v1/sims/{sim_id}", format!("/v1/sims/{sim_id}")))
            .await
        {
            Ok(reply) => Ok(reply
                .parse::<Sim>("/v1/sims/{sim_id}")?
                .observation(self.now_ms())),
            Err(CarrierError::NotFound { .. }) => Ok(lookup.unknown()),
            Err(e) => Err(e),
        }
    }

    /// Listed SIMs found by reading every SIM of the operator.
    fn full_listing<'a>(
        &'a self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        let set = Arc::new(Mutex::new(Some(ListedSet::new(&lookups))));
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let now_ms = self.now_ms();
        let (taking, counting) = (set.clone(), calls.clone());
        let found = self
            .pages(|after| {
                let mut call = Self::get("/v1/sims", "/v1/sims").query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("last_evaluated_key", after);
                }
                call
            })
            .and_then(move |reply| {
                counting.fetch_add(1, Ordering::Relaxed);
                let page = reply.parse::<Vec<Sim>>("/v1/sims").map(|sims| {
                    let observed = sims.iter().map(|s| s.observation(now_ms)).collect();
                    taking
                        .lock()
                        .expect("set lock")
                        .as_mut()
                        .map_or_else(Vec::new, |set| set.take(observed))
                });
                futures::future::ready(page)
            });
        let rest = stream::once(async move {
            *self.last_lookup.lock().expect("lookup lock") = Some(LookupPlan::FullListing {
                calls: calls.load(Ordering::Relaxed),
            });
            Ok(set
                .lock()
                .expect("set lock")
                .take()
                .map_or_else(Vec::new, ListedSet::unknown))
        });
        found
            .chain(rest)
            .try_filter(|page| futures::future::ready(!page.is_empty()))
            .boxed()
    }

    /// simfleet's batch group: found by name, or created; remembered.
    async fn batch_group(&self) -> Result<String, CarrierError> {
        let mut cached = self.batch_group.lock().await;
        if let Some(id) = cached.as_ref() {
            return Ok(id.clone());
        }
        let mut pages = self.pages(|after| {
            let mut call = Self::get("/v1/batch_groups", "/v1/batch_groups").query("limit", PAGE);
            if let Some(after) = after {
                call = call.query("last_evaluated_key", after);
            }
            call
        });
        let mut found = None;
        while let Some(reply) = pages.try_next().await? {
            let groups: Vec<BatchGroup> = reply.parse("/v1/batch_groups")?;
            found = groups
                .into_iter()
                .find(|g| g.batch_group_name.as_deref() == Some(BATCH_GROUP_NAME))
                .map(|g| g.batch_group_id);
            if found.is_some() {
                break;
            }
        }
        drop(pages);
        let id = match found {
            Some(id) => id,
            None => {
                let call = Call::new(
                    Method::POST,
                    "/v1/batch_groups",
                    "/v1/batch_groups",
                    Auth::None,
                    Repeat::Unsafe,
                )
                .json(json!({
                    "batchGroupName": BATCH_GROUP_NAME,
                    "description": "State changes of SIMs by simfleet's SimGroups",
                }));
                self.send(call)
                    .await?
                    .parse::<BatchGroup>("/v1/batch_groups")?
                    .batch_group_id
            }
        };
        *cached = Some(id.clone());
        Ok(id)
    }

    fn route_word(&self, change: StateChange) -> &'static str {
        match change {
            StateChange::Resume => "activate",
            StateChange::Pause if self.suspend_on_pause => "suspend",
            StateChange::Pause => "deactivate",
        }
    }

    /// Changes SIMs one call each through the synchronous single-SIM routes.
    async fn submit_direct(
        &self,
        word: &'static str,
        sims: &[SimTarget],
    ) -> Result<Submission, CarrierError> {
        let ids: Vec<u64> = sims.iter().map(|s| s.device_id).collect();
        let results: Vec<(u64, Result<Reply, CarrierError>)> = stream::iter(ids)
            .map(|device_id| async move {
                let call = Call::new(
                    Method::POST,
                    "/v1/sims/{sim_id}/{change}",
                    format!("/v1/sims/{device_id}/{word}"),
                    Auth::None,
                    // Setting a state again is harmless.
                    Repeat::Safe,
                );
                (device_id, self.send(call).await)
            })
            .buffered(self.core.concurrency())
            .collect()
            .await;
        let mut submission = Submission {
            action_ids: vec![format!("{word}-{}", sims[0].device_id)],
            ..Submission::default()
        };
        for (device_id, result) in results {
            match result {
                Ok(_) => submission.accepted += 1,
                Err(CarrierError::NotFound { message }) => submission.refused.push(Refusal {
                    device_id,
                    reason: message,
                    kind: RefusalKind::Ineligible,
                }),
                Err(CarrierError::Rejected { message, .. }) => submission.refused.push(Refusal {
                    device_id,
                    reason: message,
                    kind: RefusalKind::Failed,
                }),
                Err(e) if submission.accepted == 0 && submission.refused.is_empty() => {
                    return Err(e);
                }
                Err(e) => submission.refused.push(Refusal {
                    device_id,
                    reason: e.to_string(),
                    kind: RefusalKind::Retryable,
                }),
            }
        }
        Ok(submission)
    }

    /// Creates one job for the SIMs. After a timeout (no idempotency key), the group's jobs
    /// are listed for the job's unique name before anything is tried again.
    async fn submit_job(
        &self,
        word: &'static str,
        sims: &[SimTarget],
    ) -> Result<Submission, CarrierError> {
        let group = self.batch_group().await?;
        let name = format!("simfleet-{word}-{:016x}", fastrand::u64(..));
        let tasks: Vec<JobTask> = sims
            .iter()
            .map(|s| JobTask {
                request: TaskCall {
                    path: format!("/v1/sims/{}/{word}", s.device_id),
                    method: "POST",
                },
            })
            .collect();
        let call = Call::new(
            Method::POST,
            "/v1/batch_groups/{batch_group_id}/jobs",
            format!("/v1/batch_groups/{group}/jobs"),
            Auth::None,
            Repeat::Unsafe,
        )
        .json_of(&JobRequest {
            job_name: &name,
            description: format!("simfleet: {word} {} SIMs", sims.len()),
            abort_on_failure: false,
            tasks,
        });
        let job = match self.send(call).await {
            Ok(reply) => reply.parse::<BatchJob>("/v1/batch_groups/{batch_group_id}/jobs")?,
            Err(
                error @ CarrierError::Transient {
                    request_sent: true, ..
                },
            ) => match self.job_named(&group, &name).await? {
                Some(job) => job,
                None => return Err(error),
            },
            Err(CarrierError::Rejected { message, .. }) if message.contains("already running") => {
                return Err(CarrierError::Transient {
                    message: format!(
                        "Soracom runs one job per API at a time, and a {word} job is running: {message}"
                    ),
                    request_sent: false,
                });
            }
            Err(e) => return Err(e),
        };
        Ok(Submission {
            action_ids: vec![job.job_id],
            accepted: sims.len(),
            refused: Vec::new(),
        })
    }

    /// The job of the group named `name`, if it was created.
    async fn job_named(&self, group: &str, name: &str) -> Result<Option<BatchJob>, CarrierError> {
        let path = format!("/v1/batch_groups/{group}/jobs");
        let mut pages = self.pages(move |after| {
            let mut call = Self::get("/v1/batch_groups/{batch_group_id}/jobs", path.clone())
                .query("limit", PAGE);
            if let Some(after) = after {
                call = call.query("last_evaluated_key", after);
            }
            call
        });
        while let Some(reply) = pages.try_next().await? {
            let jobs: Vec<BatchJob> = reply.parse("/v1/batch_groups/{batch_group_id}/jobs")?;
            if let Some(job) = jobs
                .into_iter()
                .find(|j| j.job_name.as_deref() == Some(name))
            {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// A job's status; for a job that ended with failed tasks, those SIMs as refusals with
    /// Soracom's words (404: the SIM is gone).
    async fn job_status(&self, group: &str, id: &str) -> Result<ActionStatus, CarrierError> {
        let reply = match self
            .send(Self::get(
                "/v1/batch_groups/{batch_group_id}/jobs/{job_id}",
                format!("/v1/batch_groups/{group}/jobs/{id}"),
            ))
            .await
        {
            Ok(reply) => reply,
            Err(CarrierError::NotFound { message }) => {
                return Ok(ActionStatus {
                    id: id.to_owned(),
                    status: format!("not found at Soracom (jobs are kept 32 days): {message}"),
                    finished: true,
                    refused: Vec::new(),
                });
            }
            Err(e) => return Err(e),
        };
        let job: BatchJob = reply.parse("/v1/batch_groups/{batch_group_id}/jobs/{job_id}")?;
        let mut refused = Vec::new();
        if job.finished() && job.summary.as_ref().is_some_and(|s| s.error > 0) {
            let path = format!("/v1/batch_groups/{group}/jobs/{id}/tasks");
            let mut pages = self.pages(move |after| {
                let mut call = Self::get(
                    "/v1/batch_groups/{batch_group_id}/jobs/{job_id}/tasks",
                    path.clone(),
                )
                .query("status", "error")
                .query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("last_evaluated_key", after);
                }
                call
            });
            while let Some(reply) = pages.try_next().await? {
                let tasks: Vec<Task> =
                    reply.parse("/v1/batch_groups/{batch_group_id}/jobs/{job_id}/tasks")?;
                refused.extend(tasks.iter().filter_map(refusal_of));
            }
        }
        Ok(ActionStatus {
            id: id.to_owned(),
            status: job.describe(),
            finished: job.finished(),
            refused,
        })
    }
}

/// `POST /v1/batch_groups/{id}/jobs`'s body, serialized without a JSON tree.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JobRequest<'a> {
    job_name: &'a str,
    description: String,
    abort_on_failure: bool,
    tasks: Vec<JobTask>,
}

#[derive(serde::Serialize)]
struct JobTask {
    request: TaskCall,
}

#[derive(serde::Serialize)]
struct TaskCall {
    path: String,
    method: &'static str,
}

/// A failed task as a refusal of its SIM.
fn refusal_of(task: &Task) -> Option<Refusal> {
    let device_id = wire::device_id(wire::task_sim_id(&task.request.path)?)?;
    let (code, body) = task
        .response
        .as_ref()
        .map_or((0, &Value::Null), |r| (r.status_code, &r.body));
    let reason = body
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| format!("the task failed (HTTP {code})"), str::to_owned);
    Some(Refusal {
        device_id,
        reason,
        kind: if code == 404 {
            RefusalKind::Ineligible
        } else {
            RefusalKind::Failed
        },
    })
}

impl super::SelectionPages for SoracomClient {
    /// Listed SIMs: a few are read one at a time (ICCIDs paired with SIM ids through the
    /// search, which lags writes but never changes a pairing); many are found in the full
    /// listing `/v1/sims`.
    fn listed_pages<'a>(
        &'a self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        if lookups.len() > ONE_BY_ONE_LIMIT {
            return self.full_listing(lookups);
        }
        stream::once(async move {
            let iccids: Vec<String> = lookups
                .iter()
                .filter_map(|l| match l {
                    Lookup::Iccid(i) => Some(i.clone()),
                    Lookup::Device(_) => None,
                })
                .collect();
            let searches = self.pair_iccids(&iccids).await?;
            let reads = lookups.len() as u64;
            *self.last_lookup.lock().expect("lookup lock") = Some(LookupPlan::OneByOne {
                calls: searches + reads,
            });
            Ok::<_, CarrierError>(lookups)
        })
        .map_ok(move |lookups| {
            super::one_by_one(lookups, self.core.concurrency(), move |lookup| {
                self.read_one(lookup).boxed()
            })
        })
        .try_flatten()
        .boxed()
    }

    /// The SIMs carrying tag `index` (`NAME=VALUE`), from `/v1/subscribers`, each SIM once,
    /// skipping SIMs that carry an earlier tag or are listed.
    fn tagged<'a>(
        &'a self,
        selection: &'a Selection,
        index: usize,
        listed: Arc<HashSet<u64>>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        let tag = &selection.tags[index];
        let Some((name, value)) = tag.split_once('=') else {
            let error = CarrierError::Rejected {
                field: Some("selector.tags".into()),
                message: format!("{tag:?}: Soracom selects tags as NAME=VALUE"),
            };
            return stream::once(async move { Err(error) }).boxed();
        };
        let (name, value) = (name.to_owned(), value.to_owned());
        let earlier: HashSet<String> = selection.tags[..index].iter().cloned().collect();
        let mut seen = HashSet::new();
        let now_ms = self.now_ms();
        self.pages(move |after| {
            let mut call = Self::get("/v1/subscribers", "/v1/subscribers")
                .query("tag_name", &name)
                .query("tag_value", &value)
                .query("limit", PAGE);
            if let Some(after) = after {
                call = call.query("last_evaluated_key", after);
            }
            call
        })
        .and_then(move |reply| {
            let page = reply
                .parse::<Vec<Subscriber>>("/v1/subscribers")
                .and_then(|subscribers| {
                    subscribers
                        .iter()
                        // One row per IMSI: a SIM with several IMSIs is listed once.
                        .filter(|s| s.sim_id.as_ref().is_none_or(|id| seen.insert(id.clone())))
                        .map(|s| s.observation(now_ms))
                        .filter(|o| {
                            o.as_ref().map_or(true, |o| {
                                !o.tags.iter().any(|t| earlier.contains(t))
                                    && o.device_id.is_none_or(|d| !listed.contains(&d))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                });
            futures::future::ready(page)
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

impl Carrier for SoracomClient {
    fn capabilities(&self) -> Capabilities {
        let forbidden = self.batch_forbidden.load(Ordering::Relaxed);
        Capabilities {
            max_sims_per_action: JOB_LIMIT,
            bulk: !forbidden,
            bulk_unavailable: forbidden.then(|| {
                "the Batch API answered 403 for these credentials: SIMs change one call each until the operator restarts".into()
            }),
            data_quota: false,
            one_action_at_a_time: true,
            action_status_in_one_call: true,
        }
    }

    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>> {
        async move {
            let reply = self
                .send(Self::get("/v1/sims", "/v1/sims").query("limit", 1))
                .await?;
            reply.parse::<Vec<Sim>>("/v1/sims").map(|_| ())
        }
        .boxed()
    }

    fn selection_problem(&self, selection: &Selection) -> Option<String> {
        let bare: Vec<&str> = selection
            .tags
            .iter()
            .filter(|t| !t.contains('='))
            .map(String::as_str)
            .collect();
        (!bare.is_empty()).then(|| {
            format!(
                "selector.tags: {} has no value; Soracom tags are name/value pairs and its tag filter needs both: write NAME=VALUE (e.g. fleet=cold-chain) to select the SIMs whose tag NAME is exactly VALUE",
                bare.join(", ")
            )
        })
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
            if sims.len() > JOB_LIMIT {
                return Err(CarrierError::Rejected {
                    field: Some("tasks".into()),
                    message: format!(
                        "{} SIMs in one action; a Soracom batch job takes at most {JOB_LIMIT}",
                        sims.len()
                    ),
                });
            }
            let word = self.route_word(change);
            if sims.len() <= DIRECT_LIMIT || self.batch_forbidden.load(Ordering::Relaxed) {
                return self.submit_direct(word, sims).await;
            }
            match self.submit_job(word, sims).await {
                Err(CarrierError::Forbidden { message }) => {
                    tracing::warn!(%message, "the Batch API is not permitted; changing SIMs one call each");
                    self.batch_forbidden.store(true, Ordering::Relaxed);
                    self.submit_direct(word, sims).await
                }
                other => other,
            }
        }
        .boxed()
    }

    fn action_statuses<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ActionStatus>, CarrierError>> {
        async move {
            // Single-SIM changes are synchronous: they have no job to ask about.
            let jobs: Vec<&String> = ids
                .iter()
                .filter(|id| {
                    !["activate-", "deactivate-", "suspend-"]
                        .iter()
                        .any(|p| id.starts_with(p))
                })
                .collect();
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            let group = self.batch_group().await?;
            let mut statuses = Vec::with_capacity(jobs.len());
            for id in jobs {
                statuses.push(self.job_status(&group, id).await?);
            }
            Ok(statuses)
        }
        .boxed()
    }

    fn no_quotas(&self) -> CarrierError {
        CarrierError::Unsupported {
            provider: "soracom",
            what: NO_QUOTA,
        }
    }

    fn last_lookup_plan(&self) -> Option<LookupPlan> {
        *self.last_lookup.lock().expect("lookup lock")
    }

    fn counters(&self) -> Arc<CallCounters> {
        self.core.counters()
    }
}
