//! The one HTTP core every carrier client uses: timeouts, a client-side rate limit, a bound on
//! concurrent requests, retries with exponential backoff and jitter for what is safe to
//! repeat (honouring `Retry-After`), typed errors, tracing and call counters.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

use super::CarrierError;
use super::budget::RequestLedger;

/// Timeouts and retry policy of the HTTP core.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request, answer included.
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay.
    pub min_backoff: Duration,
    /// Longest backoff delay (a `Retry-After` may ask for longer, up to `max_retry_after`).
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; beyond it the call fails as rate limited.
    pub max_retry_after: Duration,
    /// How long to wait after a 429 that says nothing of when to retry, drawn between the two
    /// (neither carrier documents `Retry-After`; Hologram asks for 5 to 10 s).
    pub rate_limited_wait: (Duration, Duration),
    /// Limits per carrier host (origin) shared by every account there, over the documented
    /// ones (`simfleet run --carrier-host-limit`).
    pub host_limits: Vec<(String, super::host_limits::HostLimit)>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_retries: 5,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            rate_limited_wait: (Duration::from_secs(5), Duration::from_secs(10)),
            host_limits: Vec::new(),
        }
    }
}

/// Whether a request may be sent again after an unclear outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Reads and idempotent writes: retried after timeouts and 5xx.
    Safe,
    /// Non-idempotent writes (a bulk submit): retried only when the carrier surely did not act
    /// on it (429, connection refused).
    Unsafe,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// No credentials.
    None,
    /// HTTP Basic.
    Basic(&'a str, &'a SecretString),
    /// `Authorization: Bearer`.
    Bearer(&'a SecretString),
    /// Soracom's two headers: `X-Soracom-API-Key` and `X-Soracom-Token`.
    SoracomToken(&'a SecretString, &'a SecretString),
}

/// One request to make.
pub struct Call<'a> {
    /// HTTP method.
    pub method: Method,
    /// Route template, for logs and counters (e.g. `/devices/batch/state`).
    pub route: &'static str,
    /// Path after the base URL, with ids filled in.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// JSON body, serialized once (retries send the same bytes).
    pub body: Option<Bytes>,
    /// Credentials.
    pub auth: Auth<'a>,
    /// Whether it may be repeated.
    pub repeat: Repeat,
}

impl<'a> Call<'a> {
    /// A call with no query and no body.
    pub fn new(
        method: Method,
        route: &'static str,
        path: impl Into<String>,
        auth: Auth<'a>,
        repeat: Repeat,
    ) -> Self {
        Self {
            method,
            route,
            path: path.into(),
            query: Vec::new(),
            body: None,
            auth,
            repeat,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    /// Sets the JSON body.
    pub fn json(self, body: Value) -> Self {
        self.json_of(&body)
    }

    /// Sets the JSON body from any serializable value, without building a JSON tree first
    /// (a Soracom job of 10,000 tasks is a 600 KB body).
    pub fn json_of(mut self, body: &impl serde::Serialize) -> Self {
        self.body = Some(Bytes::from(
            serde_json::to_vec(body).expect("a request body serializes"),
        ));
        self
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, or a Protocol error naming the route.
    pub fn json(&self, route: &str) -> Result<Value, CarrierError> {
        self.parse(route)
    }

    /// The body read as `T` (borrowing strings from it where it can), or a Protocol error
    /// naming the route and what was wrong.
    pub fn parse<'a, T: serde::Deserialize<'a>>(&'a self, route: &str) -> Result<T, CarrierError> {
        let mut reader = serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            // The path names the field that is not as documented (e.g. `data[3].tags[0]`).
            let path = e.path().to_string();
            let inner = e.into_inner();
            CarrierError::Protocol {
                message: if inner.classify() == serde_json::error::Category::Data {
                    format!(
                        "{route}: the body does not have the carrier's documented shape at {path} ({inner})"
                    )
                } else {
                    format!("{route}: the body is not JSON ({inner})")
                },
            }
        })
    }

    /// A numeric header, if present and readable.
    pub fn header_u64(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }
}

/// Counters of carrier calls, exported by the metrics endpoint.
#[derive(Debug, Default)]
pub struct CallCounters {
    by_route: Mutex<HashMap<(&'static str, String), u64>>,
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

impl CallCounters {
    fn record(&self, route: &'static str, outcome: String) {
        *self
            .by_route
            .lock()
            .expect("counters lock")
            .entry((route, outcome))
            .or_default() += 1;
    }

    /// Calls by route and outcome (status code, or `timeout` / `connect` / `network`).
    pub fn by_route(&self) -> Vec<(&'static str, String, u64)> {
        let mut rows: Vec<_> = self
            .by_route
            .lock()
            .expect("counters lock")
            .iter()
            .map(|((route, outcome), n)| (*route, outcome.clone(), *n))
            .collect();
        rows.sort();
        rows
    }

    /// Total calls made (attempts, retries included).
    pub fn total(&self) -> u64 {
        self.by_route.lock().expect("counters lock").values().sum()
    }

    /// Retries made.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// 429 answers received.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

/// Writes go before reads: while a write waits for the account's capacity, no read takes a
/// concurrency permit or a rate-limit token, so a large group's listing never makes another
/// group's submit wait for more than the reads already on their way.
#[derive(Debug, Default)]
struct WritesFirst {
    waiting: AtomicUsize,
    cleared: Notify,
}

/// A write waiting for capacity; reads wait while any exists.
struct WaitingWrite<'a>(&'a WritesFirst);

impl WritesFirst {
    fn waiting(&self) -> WaitingWrite<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        WaitingWrite(self)
    }

    /// Returns once no write is waiting.
    async fn clear(&self) {
        loop {
            let cleared = self.cleared.notified();
            tokio::pin!(cleared);
            cleared.as_mut().enable();
            if self.waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            cleared.await;
        }
    }
}

impl Drop for WaitingWrite<'_> {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.cleared.notify_waiters();
        }
    }
}

/// The scheme, host and port of a URL.
fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_owned())
}

/// The HTTP core of one carrier account.
pub struct HttpCore {
    provider: &'static str,
    base: String,
    client: reqwest::Client,
    // Shared with sibling cores (one account's limit across its protocol surfaces).
    limiter: Arc<DefaultDirectRateLimiter>,
    // Shared with every account on the same host, when the host has a limit.
    host_limiter: Option<Arc<DefaultDirectRateLimiter>>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    settings: HttpSettings,
    counters: Arc<CallCounters>,
    ledger: Arc<RequestLedger>,
    writes_first: Arc<WritesFirst>,
}

impl std::fmt::Debug for HttpCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCore")
            .field("provider", &self.provider)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A failed attempt, with what the retry policy needs to know.
struct Failure {
    error: CarrierError,
    retry_after: Option<Duration>,
}

impl HttpCore {
    /// A core for `base` (no trailing slash) with a rate limit and a concurrency bound, counting
    /// every request in `ledger`.
    pub fn new(
        provider: &'static str,
        base: String,
        requests_per_second: f64,
        burst: u32,
        concurrency: usize,
        settings: HttpSettings,
        ledger: Arc<RequestLedger>,
    ) -> Result<Self, CarrierError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("simfleet/", env!("CARGO_PKG_VERSION")))
            // Carrier APIs do not redirect; a redirect is never followed, so credentials never
            // reach a host the account did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CarrierError::Protocol {
                message: format!("building the HTTP client: {e}"),
            })?;
        let period = Duration::from_secs_f64(1.0 / requests_per_second.max(0.001));
        let quota = Quota::with_period(period)
            .ok_or_else(|| CarrierError::Rejected {
                field: Some("rateLimit.requestsPerSecond".into()),
                message: "must be above 0".into(),
            })?
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        let origin = origin_of(&base);
        let host_limit = settings
            .host_limits
            .iter()
            .find(|(o, _)| o.trim_end_matches('/') == origin)
            .map(|(_, limit)| *limit)
            .or_else(|| super::host_limits::HostLimit::documented(&origin));
        Ok(Self {
            provider,
            base,
            client,
            limiter: Arc::new(RateLimiter::direct(quota)),
            host_limiter: host_limit.map(|limit| super::host_limits::limiter(&origin, limit)),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            settings,
            counters: Arc::new(CallCounters::default()),
            ledger,
            writes_first: Arc::default(),
        })
    }

    /// The scheme, host and port of the carrier's URL (what the carrier sees as one client
    /// address is per process, whichever account calls).
    pub fn origin(&self) -> String {
        origin_of(&self.base)
    }

    /// A core for another base URL of the same account: it shares this core's rate limit,
    /// concurrency bound, counters, ledger and write priority.
    pub fn sibling(&self, provider: &'static str, base: String) -> Self {
        Self {
            provider,
            base,
            client: self.client.clone(),
            limiter: self.limiter.clone(),
            host_limiter: self.host_limiter.clone(),
            permits: self.permits.clone(),
            concurrency: self.concurrency,
            settings: self.settings.clone(),
            counters: self.counters.clone(),
            ledger: self.ledger.clone(),
            writes_first: self.writes_first.clone(),
        }
    }

    /// The time, by the operator's clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.ledger.now()
    }

    /// The counters of this core.
    pub fn counters(&self) -> Arc<CallCounters> {
        self.counters.clone()
    }

    /// Most requests in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The provider name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Makes a call, retrying what is safe to retry.
    pub async fn send(&self, call: &Call<'_>) -> Result<Reply, CarrierError> {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.settings.min_backoff)
            .with_max_delay(self.settings.max_backoff)
            .with_max_times(self.settings.max_retries);
        let attempt = AtomicU64::new(0);
        let max_retry_after = self.settings.max_retry_after;
        let result = (|| async {
            self.attempt(call, attempt.fetch_add(1, Ordering::Relaxed) + 1)
                .await
        })
        .retry(backoff)
        .when(|failure: &Failure| {
            let retry = match &failure.error {
                CarrierError::RateLimited { .. } => {
                    failure.retry_after.is_none_or(|d| d <= max_retry_after)
                }
                CarrierError::Transient {
                    request_sent: false,
                    ..
                } => true,
                CarrierError::Transient {
                    request_sent: true, ..
                } => call.repeat == Repeat::Safe,
                _ => false,
            };
            if retry {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            retry
        })
        // `delay` is None once the retries are spent: then no wait, whatever was asked.
        .adjust(
            |failure: &Failure, delay| match (&failure.error, failure.retry_after) {
                (_, Some(asked)) => delay.map(|_| asked),
                (CarrierError::RateLimited { .. }, None) => delay.map(|_| {
                    let (low, high) = self.settings.rate_limited_wait;
                    let spread = high.saturating_sub(low).as_millis() as u64;
                    low + Duration::from_millis(fastrand::u64(0..=spread))
                }),
                _ => delay,
            },
        )
        .await;
        result.map_err(|failure| failure.error)
    }

    /// A concurrency permit and a rate-limit token; a read gives way to waiting writes.
    async fn capacity(&self, read: bool) -> tokio::sync::SemaphorePermit<'_> {
        if !read {
            let _waiting = self.writes_first.waiting();
            let permit = self.permits.acquire().await.expect("never closed");
            self.limiter.until_ready().await;
            self.host_capacity().await;
            return permit;
        }
        loop {
            self.writes_first.clear().await;
            let permit = self.permits.acquire().await.expect("never closed");
            // A write began waiting while this read queued for a permit: it goes first.
            if self.writes_first.waiting.load(Ordering::SeqCst) > 0 {
                drop(permit);
                continue;
            }
            self.limiter.until_ready().await;
            self.host_capacity().await;
            return permit;
        }
    }

    /// A token of the host's limit, when it has one. The jitter spreads the accounts waiting
    /// on one host, so that none always wakes first.
    async fn host_capacity(&self) {
        if let Some(host) = &self.host_limiter {
            host.until_ready_with_jitter(governor::Jitter::up_to(Duration::from_millis(20)))
                .await;
        }
    }

    async fn attempt(&self, call: &Call<'_>, attempt: u64) -> Result<Reply, Failure> {
        let span = tracing::debug_span!(
            "carrier_call",
            provider = self.provider,
            route = call.route,
            attempt,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        async {
            let _permit = self.capacity(call.method == Method::GET).await;
            self.ledger.record();
            let started = Instant::now();
            let mut request = self
                .client
                .request(call.method.clone(), format!("{}{}", self.base, call.path))
                .query(&call.query);
            request = match call.auth {
                Auth::None => request,
                Auth::Basic(user, password) => {
                    request.basic_auth(user, Some(password.expose_secret()))
                }
                Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
                Auth::SoracomToken(api_key, token) => request
                    .header("X-Soracom-API-Key", api_key.expose_secret())
                    .header("X-Soracom-Token", token.expose_secret()),
            };
            if let Some(body) = &call.body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err(network_failure(&e, true)),
                    }
                }
                Err(e) => Err(network_failure(&e, !e.is_connect())),
            };
            let span = tracing::Span::current();
            span.record("duration_ms", started.elapsed().as_millis() as u64);
            match outcome {
                Err((label, failure)) => {
                    span.record("status", label);
                    self.counters.record(call.route, label.to_owned());
                    tracing::debug!(error = %failure.error, "carrier call failed");
                    Err(failure)
                }
                Ok((status, headers, body)) => {
                    span.record("status", status.as_u16());
                    self.counters
                        .record(call.route, status.as_u16().to_string());
                    tracing::debug!("carrier call answered");
                    if status.is_success() {
                        return Ok(Reply { headers, body });
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(classify(status, &headers, &body))
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// A network-level failure; `sent` says whether the carrier may have received the request.
fn network_failure(error: &reqwest::Error, sent: bool) -> (&'static str, Failure) {
    let label = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "network"
    };
    // `without_url` keeps query strings (and anything in them) out of messages.
    let message = format!("{label}: {}", strip_url(error));
    (
        label,
        Failure {
            error: CarrierError::Transient {
                message,
                request_sent: sent,
            },
            retry_after: None,
        },
    )
}

/// The error with its URL shown as host and path (the query, which may hold credentials, is left
/// out), and its underlying causes (e.g. "connection refused", a DNS failure), which reqwest's
/// own message omits.
fn strip_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path();
        text = text.replace(url.as_str(), &shown);
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Turns a non-2xx answer into a typed error with the carrier's message.
fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Failure {
    let message = carrier_message(body).unwrap_or_else(|| format!("HTTP {status}"));
    // Soracom says when its minute refreshes instead of `Retry-After`.
    let retry_after = [
        reqwest::header::RETRY_AFTER.as_str(),
        "x-soracom-ratelimit-seconds-before-refresh",
    ]
    .iter()
    .find_map(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    })
    .map(Duration::from_secs);
    let error = match status.as_u16() {
        401 => CarrierError::Unauthorized { message },
        403 => CarrierError::Forbidden { message },
        404 => CarrierError::NotFound { message },
        409 => CarrierError::Conflict { message },
        429 => CarrierError::RateLimited { retry_after },
        400 => CarrierError::Rejected {
            field: None,
            message,
        },
        422 => CarrierError::Unprocessable { message },
        500..=599 => CarrierError::Transient {
            message: format!("HTTP {status}: {message}"),
            request_sent: true,
        },
        _ => CarrierError::Protocol {
            message: format!("unexpected HTTP {status}: {message}"),
        },
    };
    Failure { error, retry_after }
}

/// The human message in a carrier's error body (`error` or `message`, followed by the
/// messages of emnify's `errors[]`; Soracom's wrapper `errorMessage.message` is unwrapped), if
/// any.
fn carrier_message(body: &[u8]) -> Option<String> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    if let Some(inner) = value.get("errorMessage").filter(|v| v.is_object()) {
        value = inner.clone();
    }
    let text = value
        .get("message")
        .or_else(|| value.get("error"))
        .and_then(Value::as_str)?;
    let details: Vec<&str> = value
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .collect();
    let text = if details.is_empty() {
        text.to_owned()
    } else {
        format!("{text}: {}", details.join("; "))
    };
    Some(text.chars().take(500).collect())
}
