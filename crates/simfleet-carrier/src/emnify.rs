//! emnify's REST API: an application token exchanged for a bearer token (cached, renewed
//! before it lapses and once on 401), page/per_page listing, state changes through the bulk
//! route `PATCH /v2/endpoint/multi` (one PATCH per device when the credentials may not use it),
//! and per-device data quotas. Writes go one at a time per account, as emnify asks. Written from
//! emnify's documented wire format.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

mod quotas;
mod writes;

use super::http::{Auth, Call, CallCounters, HttpCore, Repeat};
use super::token_session::{Issuer, TokenSession};
use super::{Capabilities, Carrier, CarrierError};
use simfleet_api::StateChange;
use simfleet_api::model::{
    Lookup, ObservedState, OrgQuotaEvents, QuotaEvent, QuotaReading, QuotaSetting, Selection,
    SimObservation, SimTarget, Submission,
};
use writes::BulkPermission;

/// Page size of list calls.
const PAGE: usize = 1000;
/// Endpoints one `PATCH /v2/endpoint/multi` takes (emnify's documented maximum).
pub const BULK_LIMIT: usize = 2000;
/// SIMs one `submit` takes while the account writes per device (one PATCH each, in turn).
pub const PER_DEVICE_LIMIT: usize = 1000;
/// How long a 403 from the bulk route keeps an account on per-device writes.
const BULK_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Renew a token this long before it lapses.
const RENEW_MARGIN: SignedDuration = SignedDuration::from_secs(60);
/// emnify's expiry format.
const EXPIRY_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// Events per page, and at most this many pages read back per device.
const EVENT_PAGE: usize = 100;
const EVENT_PAGES: usize = 5;

/// The endpoint status id a change sets: 1 Disabled (pause), 0 Enabled (resume).
fn endpoint_status_of(change: StateChange) -> i64 {
    match change {
        StateChange::Pause => 1,
        StateChange::Resume => 0,
    }
}

/// Reads emnify's `YYYY-MM-DD HH:MM:SS` (UTC).
fn parse_expiry(text: &str) -> Option<Timestamp> {
    jiff::civil::DateTime::strptime(EXPIRY_FORMAT, text)
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

/// A client of one emnify account.
pub struct EmnifyClient {
    core: HttpCore,
    application_token: SecretString,
    /// The bearer token (renewed before it lapses, and once on 401).
    session: TokenSession<SecretString>,
    suspend_sim: bool,
    actions: AtomicU64,
    // emnify asks for writes to be sent one after another: one write at a time per account.
    writes: Mutex<()>,
    bulk: SyncMutex<BulkPermission>,
    bulk_retry_after: Duration,
    last_lookup: SyncMutex<Option<simfleet_api::model::LookupPlan>>,
    /// Whether the carrier accepted this client's application token once.
    accepted: AtomicBool,
}

impl std::fmt::Debug for EmnifyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmnifyClient")
            .field("core", &self.core)
            .field("application_token", &"[redacted]")
            .field("suspend_sim", &self.suspend_sim)
            .finish_non_exhaustive()
    }
}

/// A paged answer's `X-Total-Pages`. emnify documents it on every list, and a page past the last
/// repeats the last, so without it nobody knows where the list ends: its absence is a protocol
/// error (the observation stops, and nothing is written from it).
fn total_pages(reply: &super::http::Reply, route: &str) -> Result<usize, CarrierError> {
    let pages = reply.header_u64("X-Total-Pages").ok_or_else(|| {
        protocol(format!(
            "{route}: the answer has no X-Total-Pages header (emnify documents it on every list)"
        ))
    })?;
    Ok(usize::try_from(pages).unwrap_or(usize::MAX))
}

fn protocol(message: impl Into<String>) -> CarrierError {
    CarrierError::Protocol {
        message: message.into(),
    }
}

/// The lifetime a JWT states (`exp - iat`, or `exp - now` without `iat`).
fn token_lifetime(token: &str, now: Timestamp) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?,
    )
    .ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    let issued = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| now.as_second());
    u64::try_from(exp - issued).ok().map(Duration::from_secs)
}

/// Normalises an endpoint (with its SIM) into an observation.
fn endpoint_observation(endpoint: &Value) -> Result<SimObservation, CarrierError> {
    let id = endpoint
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| protocol("an endpoint has no numeric \"id\""))?;
    let status = endpoint
        .pointer("/status/id")
        .and_then(Value::as_i64)
        .ok_or_else(|| protocol(format!("endpoint {id} has no \"status.id\"")))?;
    let sim = endpoint.get("sim").filter(|s| !s.is_null());
    let iccid = sim
        .and_then(|s| s.get("iccid"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let sim_id = sim.and_then(|s| s.get("id")).and_then(Value::as_u64);
    let sim_status = sim
        .and_then(|s| s.pointer("/status/id"))
        .and_then(Value::as_i64);
    let state = match (status, sim, sim_status) {
        (2, _, _) => ObservedState::Ineligible("endpoint deleted".into()),
        (_, None, _) => ObservedState::Ineligible("no SIM assigned to the endpoint".into()),
        (_, _, Some(3)) => ObservedState::Ineligible("SIM deleted".into()),
        (0, _, _) => ObservedState::Active,
        (1, _, _) => ObservedState::Paused,
        (other, _, _) => ObservedState::Unknown(format!("endpoint status {other}")),
    };
    let tags = endpoint
        .get("tags")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(SimObservation {
        iccid,
        device_id: Some(id),
        sim_id,
        state,
        tags,
    })
}

/// emnify's `POST /v1/authenticate`: the application token for a bearer token, whose lifetime
/// its own claims state. One account's bad credentials must not lock authentication for the
/// others on the host (`auth_guard`).
impl Issuer<SecretString> for EmnifyClient {
    async fn issue(&self) -> Result<(SecretString, Option<SignedDuration>), CarrierError> {
        let call = Call::new(
            Method::POST,
            "/v1/authenticate",
            "/v1/authenticate",
            Auth::None,
            Repeat::Safe,
        )
        .json(json!({"application_token": self.application_token.expose_secret()}));
        let host = super::auth_guard::host(self.core.provider(), &self.core.origin());
        let accepted_before = self.accepted.load(Ordering::SeqCst);
        let credential =
            super::auth_guard::credential_digest(self.application_token.expose_secret());
        host.lock()
            .expect("auth guard lock")
            .may_try(accepted_before, credential, Instant::now())
            .map_err(|message| CarrierError::AuthenticationDeferred { message })?;
        let answer = self.core.send(&call).await;
        {
            let mut host = host.lock().expect("auth guard lock");
            match &answer {
                Ok(_) => host.succeeded(credential, Instant::now()),
                Err(CarrierError::Unauthorized { .. } | CarrierError::Forbidden { .. }) => {
                    host.failed(credential)
                }
                Err(_) => {}
            }
        }
        let reply = answer?;
        self.accepted.store(true, Ordering::SeqCst);
        let body = reply.json("/v1/authenticate")?;
        let value = body
            .get("auth_token")
            .and_then(Value::as_str)
            .ok_or_else(|| protocol("/v1/authenticate: no \"auth_token\" in the answer"))?
            .to_owned();
        let lifetime = token_lifetime(&value, self.core.now())
            .and_then(|life| SignedDuration::try_from(life).ok());
        Ok((SecretString::from(value), lifetime))
    }

    fn now(&self) -> Timestamp {
        self.core.now()
    }
}

impl EmnifyClient {
    /// A client over `core` (base URL ending in `/api`).
    pub fn new(core: HttpCore, application_token: SecretString, suspend_sim: bool) -> Self {
        Self {
            core,
            application_token,
            session: TokenSession::new(RENEW_MARGIN),
            suspend_sim,
            actions: AtomicU64::new(1),
            writes: Mutex::new(()),
            bulk: SyncMutex::new(BulkPermission::default()),
            bulk_retry_after: BULK_RETRY_AFTER,
            last_lookup: SyncMutex::new(None),
            accepted: AtomicBool::new(false),
        }
    }

    /// How long a 403 from the bulk route keeps the account on per-device writes (a day by
    /// default; tests shorten it).
    pub fn with_bulk_retry_after(mut self, wait: Duration) -> Self {
        self.bulk_retry_after = wait;
        self
    }

    /// Sends an authenticated call; on 401 (emnify's answer to an expired token) authenticates
    /// again once and retries.
    async fn send(
        &self,
        build: impl Fn(Auth<'_>) -> Call<'_>,
    ) -> Result<super::http::Reply, CarrierError> {
        let refused = |e: &CarrierError| matches!(e, CarrierError::Unauthorized { .. });
        self.session
            .send(self, refused, |issued| {
                let build = &build;
                async move { self.core.send(&build(Auth::Bearer(&issued.token))).await }
            })
            .await
    }

    /// Sends a write (PATCH, POST, DELETE): one at a time per account, as emnify asks.
    async fn write(
        &self,
        build: impl Fn(Auth<'_>) -> Call<'_>,
    ) -> Result<super::http::Reply, CarrierError> {
        let _turn = self.writes.lock().await;
        self.send(build).await
    }

    /// One page of endpoints matching `q`, and the total number of pages.
    async fn endpoint_page(
        &self,
        q: &str,
        page: usize,
    ) -> Result<(Vec<Value>, usize), CarrierError> {
        let (items, _) = self.endpoint_page_sized(q, page, PAGE).await?;
        Ok(items)
    }

    /// One page of `per_page` endpoints matching `q` (and the total pages), and the total
    /// number of matches (`X-Total-Count`).
    async fn endpoint_page_sized(
        &self,
        q: &str,
        page: usize,
        per_page: usize,
    ) -> Result<((Vec<Value>, usize), usize), CarrierError> {
        let reply = self
            .send(|auth| {
                let call = Call::new(
                    Method::GET,
                    "/v1/endpoint",
                    "/v1/endpoint",
                    auth,
                    Repeat::Safe,
                );
                let call = if q.is_empty() {
                    call
                } else {
                    call.query("q", q)
                };
                call.query("page", page).query("per_page", per_page)
            })
            .await?;
        let pages = total_pages(&reply, "/v1/endpoint")?;
        let total = reply.header_u64("X-Total-Count").unwrap_or(0) as usize;
        match reply.json("/v1/endpoint")? {
            Value::Array(items) => Ok(((items, pages), total)),
            _ => Err(protocol("/v1/endpoint: the answer is not a list")),
        }
    }

    /// The endpoint of an ICCID, or of an endpoint id.
    async fn lookup(&self, key: Lookup) -> Result<SimObservation, CarrierError> {
        let found = match &key {
            Lookup::Iccid(iccid) => self
                .endpoint_page(&format!("iccid:{iccid}"), 1)
                .await?
                .0
                .into_iter()
                .next(),
            Lookup::Device(id) => {
                let answer = self
                    .send(|auth| {
                        Call::new(
                            Method::GET,
                            "/v1/endpoint/{id}",
                            format!("/v1/endpoint/{id}"),
                            auth,
                            Repeat::Safe,
                        )
                    })
                    .await;
                match answer {
                    Ok(reply) => Some(reply.json("/v1/endpoint/{id}")?),
                    Err(CarrierError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        match found {
            Some(endpoint) => endpoint_observation(&endpoint),
            None => Ok(key.unknown()),
        }
    }

    /// The organisation's endpoints, page by page, keeping the listed ones; those never found
    /// come last, as unknown.
    fn full_listing(
        &self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'_, Result<Vec<SimObservation>, CarrierError>> {
        let wanted = std::sync::Arc::new(SyncMutex::new(Some(super::ListedSet::new(&lookups))));
        let last = wanted.clone();
        stream::try_unfold(Some(1usize), move |page| {
            let wanted = wanted.clone();
            async move {
                let Some(page) = page else {
                    return Ok(None);
                };
                let (items, pages) = self.endpoint_page("", page).await?;
                let observed = items
                    .iter()
                    .map(endpoint_observation)
                    .collect::<Result<Vec<_>, _>>()?;
                let found = wanted
                    .lock()
                    .expect("listed lock")
                    .as_mut()
                    .map(|w| w.take(observed))
                    .unwrap_or_default();
                let next = (page < pages).then_some(page + 1);
                Ok(Some((found, next)))
            }
        })
        .chain(stream::once(async move {
            Ok(last
                .lock()
                .expect("listed lock")
                .take()
                .map(super::ListedSet::unknown)
                .unwrap_or_default())
        }))
        .try_filter(|page| futures::future::ready(!page.is_empty()))
        .boxed()
    }
}

impl super::SelectionPages for EmnifyClient {
    /// The listed SIMs, the cheaper way: one call each (`q=iccid:` or `GET /endpoint/{id}`:
    /// emnify documents no multi-value filter), or the organisation's whole endpoint listing
    /// filtered here, whose cost the total (`X-Total-Count` of a one-item page) tells.
    fn listed_pages(
        &self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'_, Result<Vec<SimObservation>, CarrierError>> {
        async move {
            let one_by_one = lookups.len() as u64;
            // The total costs a call: worth it only when a listing could be cheaper.
            let full = if one_by_one > 2 {
                let (_, total) = self.endpoint_page_sized("", 1, 1).await?;
                Some(1 + (total as u64).div_ceil(PAGE as u64))
            } else {
                None
            };
            let plan = match full {
                Some(calls) if calls < one_by_one => {
                    simfleet_api::model::LookupPlan::FullListing { calls }
                }
                _ => simfleet_api::model::LookupPlan::OneByOne { calls: one_by_one },
            };
            tracing::debug!(%plan, one_by_one, full_listing = ?full, "looking up listed SIMs");
            *self.last_lookup.lock().expect("lookup lock") = Some(plan);
            Ok::<_, CarrierError>(match plan {
                simfleet_api::model::LookupPlan::FullListing { .. } => self.full_listing(lookups),
                _ => super::one_by_one(lookups, self.core.concurrency(), move |key| {
                    self.lookup(key).boxed()
                }),
            })
        }
        .into_stream()
        .try_flatten()
        .boxed()
    }

    /// Pages of one tag's endpoints, skipping those reported under an earlier tag or listed.
    fn tagged<'a>(
        &'a self,
        selection: &'a Selection,
        index: usize,
        listed: Arc<HashSet<u64>>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
        let tag = selection.tags[index].clone();
        let q = format!("tags:{tag}");
        let earlier: HashSet<String> = selection.tags[..index].iter().cloned().collect();
        stream::try_unfold(Some(1usize), move |page| {
            let (q, tag, earlier, listed) =
                (q.clone(), tag.clone(), earlier.clone(), listed.clone());
            async move {
                let Some(page) = page else {
                    return Ok(None);
                };
                let (items, pages) = self.endpoint_page(&q, page).await?;
                let mut out = Vec::with_capacity(items.len());
                for endpoint in &items {
                    let observation = endpoint_observation(endpoint)?;
                    let tags: Vec<&str> = endpoint
                        .get("tags")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .collect();
                    // Whether `q=tags:` matches exactly is not documented: a tag that only
                    // contains the selected one (`smart-meter` for `meter`) is not a match.
                    let carries_tag = tags.contains(&tag.as_str());
                    let carries_earlier = tags.iter().any(|t| earlier.contains(*t));
                    if carries_tag
                        && !carries_earlier
                        && !observation.device_id.is_some_and(|id| listed.contains(&id))
                    {
                        out.push(observation);
                    }
                }
                let next = (!items.is_empty() && page < pages).then_some(page + 1);
                Ok(Some((out, next)))
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

impl Carrier for EmnifyClient {
    fn capabilities(&self) -> Capabilities {
        let unavailable = self
            .bulk
            .lock()
            .expect("bulk lock")
            .unavailable(Instant::now());
        Capabilities {
            max_sims_per_action: if unavailable.is_some() {
                PER_DEVICE_LIMIT
            } else {
                BULK_LIMIT
            },
            bulk: unavailable.is_none(),
            bulk_unavailable: unavailable,
            data_quota: true,
            one_action_at_a_time: false,
            action_status_in_one_call: false,
        }
    }

    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>> {
        async move {
            self.send(|auth| {
                Call::new(
                    Method::GET,
                    "/v1/endpoint",
                    "/v1/endpoint",
                    auth,
                    Repeat::Safe,
                )
                .query("per_page", 1)
            })
            .await
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
        self.submit_change(change, sims).boxed()
    }

    fn read_quota(
        &self,
        device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>> {
        self.quota_reading(device_id)
    }

    fn set_quota<'a>(
        &'a self,
        device_id: u64,
        quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        self.quota_write(device_id, quota)
    }

    fn quota_events(
        &self,
        device_id: u64,
        since: Option<Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>> {
        self.device_quota_events(device_id, since)
    }

    fn org_quota_events(
        &self,
        window: Option<(Timestamp, Timestamp)>,
    ) -> BoxFuture<'_, Result<Option<OrgQuotaEvents>, CarrierError>> {
        self.organisation_quota_events(window)
    }

    fn delete_quota(&self, device_id: u64) -> BoxFuture<'_, Result<bool, CarrierError>> {
        self.quota_removal(device_id)
    }

    fn last_lookup_plan(&self) -> Option<simfleet_api::model::LookupPlan> {
        *self.last_lookup.lock().expect("lookup lock")
    }

    fn counters(&self) -> Arc<CallCounters> {
        self.core.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_states_are_normalised() {
        let endpoint = |status: i64, sim_status: i64| json!({"id": 7, "status": {"id": status}, "sim": {"id": 9, "iccid": "8944500000000000001", "status": {"id": sim_status}}});
        assert_eq!(
            endpoint_observation(&endpoint(0, 1)).unwrap().state,
            ObservedState::Active
        );
        assert_eq!(
            endpoint_observation(&endpoint(1, 2)).unwrap().state,
            ObservedState::Paused
        );
        assert!(matches!(
            endpoint_observation(&endpoint(2, 1)).unwrap().state,
            ObservedState::Ineligible(_)
        ));
        assert!(matches!(
            endpoint_observation(&endpoint(0, 3)).unwrap().state,
            ObservedState::Ineligible(_)
        ));
        assert_eq!(
            endpoint_observation(&endpoint(5, 1)).unwrap().state,
            ObservedState::Unknown("endpoint status 5".into())
        );
        let no_sim = json!({"id": 7, "status": {"id": 0}});
        assert!(matches!(
            endpoint_observation(&no_sim).unwrap().state,
            ObservedState::Ineligible(_)
        ));
        assert!(matches!(
            endpoint_observation(&json!({"id": "x"})),
            Err(CarrierError::Protocol { .. })
        ));
    }

    #[test]
    fn a_token_lifetime_comes_from_its_own_claims() {
        let encode =
            |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.sig",
            encode(json!({"alg": "HS512"})),
            encode(json!({"iat": 1000, "exp": 4600}))
        );
        assert_eq!(
            token_lifetime(&token, Timestamp::UNIX_EPOCH),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(token_lifetime("opaque-token", Timestamp::UNIX_EPOCH), None);
        // Without `iat`, the lifetime counts from now, by the operator's clock.
        let no_iat = format!(
            "{}.{}.sig",
            encode(json!({"alg": "HS512"})),
            encode(json!({"exp": 4600}))
        );
        let now = Timestamp::from_second(1600).unwrap();
        assert_eq!(
            token_lifetime(&no_iat, now),
            Some(Duration::from_secs(3000))
        );
    }
}
