//! Soracom's API v1: one `/v1/auth` per token lifetime (the token is cached and renewed ten
//! minutes before it lapses, since `/auth` is limited per IP), the two headers on every call,
//! pacing on `X-Soracom-Ratelimit-*`, observation by tag through `/v1/subscribers` (deduplicated
//! by SIM id) and by listed SIMs through single reads or the full listing, and changes through
//! Batch API jobs of up to 10,000 SIMs, whose status is the pending action's carrier status.
//! Written from Soracom's documented wire format (`wire`).

mod jobs;
mod listing;
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
