//! What every surface shares: the server state, request statistics, fault injection,
//! per-credential rate limits, and each carrier's error format.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as RateQuota};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use super::SimulatorConfig;
use super::clock::VirtualClock;
use super::world::World;

/// A token-bucket limit: sustained requests per second and burst.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Requests per second, sustained (may be fractional).
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl RateLimitSpec {
    fn limiter(self) -> Option<DefaultKeyedRateLimiter<String>> {
        if !(self.per_second > 0.0 && self.per_second.is_finite()) {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        let quota =
            RateQuota::with_period(period)?.allow_burst(NonZeroU32::new(self.burst.max(1))?);
        Some(governor::RateLimiter::keyed(quota))
    }
}

/// A fault injection rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Route template it applies to, as listed in the README (e.g. `/api/1/devices`,
    /// `/api/v1/endpoint/{id}`), or `*` (the default) for every carrier route.
    #[serde(default = "every_route")]
    pub route: String,
    /// Share of requests answered 503.
    #[serde(default)]
    pub error_rate: f64,
    /// Extra latency added to each request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// The next N requests are answered 503.
    #[serde(default)]
    pub burst_5xx: u32,
    /// The next N requests are answered 429.
    #[serde(default)]
    pub burst_429: u32,
    /// `Retry-After` seconds sent with injected 429s (none by default: neither carrier
    /// documents one).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Share of requests whose connection is cut before the body is complete.
    #[serde(default)]
    pub reset_rate: f64,
    /// Share of requests answered 200 with a body that is not JSON.
    #[serde(default)]
    pub malformed_rate: f64,
    /// Response headers left out of every answer (e.g. `X-Total-Pages`, which emnify documents).
    #[serde(default)]
    pub drop_headers: Vec<String>,
}

fn every_route() -> String {
    "*".into()
}

impl FaultRule {
    /// Checks the shares and bounds; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        for (name, share) in [
            ("errorRate", self.error_rate),
            ("resetRate", self.reset_rate),
            ("malformedRate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be a share from 0 to 1, got {share}"));
            }
        }
        if self.latency_ms > 60_000 {
            return Err("latencyMs must be at most 60000".into());
        }
        Ok(())
    }
}

/// Request counts by method, route template and status code.
#[derive(Debug, Default)]
pub(crate) struct RequestStats {
    counts: HashMap<(String, String, u16), u64>,
}

/// One row of the request statistics.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Status code answered.
    pub status: u16,
    /// How many.
    pub count: u64,
}

impl RequestStats {
    /// The counts, sorted by route, method and status.
    pub fn rows(&self) -> Vec<RequestCount> {
        let mut rows: Vec<RequestCount> = self
            .counts
            .iter()
            .map(|((method, route, status), &count)| RequestCount {
                method: method.clone(),
                route: route.clone(),
                status: *status,
                count,
            })
            .collect();
        rows.sort_by(|a, b| (&a.route, &a.method, a.status).cmp(&(&b.route, &b.method, b.status)));
        rows
    }
}

/// Which carrier's error format a path answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `{"success": false, "error": "..."}`.
    Hologram,
    /// `{"error_code": N, "error_token": "...", "message": "..."}`.
    Emnify,
    /// `{"code": "ABC1234", "message": "..."}` (Soracom, under `/v1`).
    Soracom,
    /// The admin API: `{"error": "..."}`.
    Admin,
}

impl Dialect {
    /// The dialect of a request path.
    pub(crate) fn of_path(path: &str) -> Self {
        if path.starts_with("/api/1/") || path == "/api/1" {
            Dialect::Hologram
        } else if path.starts_with("/api/") {
            Dialect::Emnify
        } else if path.starts_with("/v1/") || path == "/v1" {
            Dialect::Soracom
        } else {
            Dialect::Admin
        }
    }

    /// An error in this dialect.
    pub fn error(self, status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            dialect: self,
            status,
            message: message.into(),
            retry_after: None,
            code: None,
            soracom_code: None,
        }
    }
}

/// An error answered in a carrier's (or the admin API's) own format.
#[derive(Debug)]
pub(crate) struct ApiError {
    dialect: Dialect,
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    /// emnify's error code and token, when not the status's usual ones.
    code: Option<(u32, &'static str)>,
    /// Soracom's error code, when not the status's usual one.
    soracom_code: Option<&'static str>,
}

impl ApiError {
    /// With emnify's error code and token (e.g. 1103 `TokenExpired`).
    pub(crate) fn with_code(self, code: u32, token: &'static str) -> Self {
        Self {
            code: Some((code, token)),
            ..self
        }
    }

    /// With Soracom's error code (e.g. `AUM0001`).
    pub(crate) fn with_soracom_code(self, code: &'static str) -> Self {
        Self {
            soracom_code: Some(code),
            ..self
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.dialect {
            Dialect::Hologram => json!({"success": false, "error": self.message}),
            Dialect::Emnify => {
                let (code, token) = self.code.unwrap_or_else(|| emnify_code(self.status));
                json!({"error_code": code, "error_token": token, "message": self.message})
            }
            Dialect::Soracom => {
                let code = self
                    .soracom_code
                    .unwrap_or_else(|| soracom_code(self.status));
                json!({"code": code, "message": self.message})
            }
            Dialect::Admin => json!({"error": self.message}),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.max(1).to_string()).expect("digits"),
            );
        }
        response
    }
}

/// What a handler answers: a response, or an error in the surface's format.
pub(crate) type Answer = Result<Response, ApiError>;

/// emnify's error code and token of a status: the documented ones for 401 (1102
/// `InvalidToken`), 403 (1104 `Forbidden`) and 429 (1105 `TooManyRequests`); emnify documents
/// no codes for the others, so those carry the HTTP status.
fn emnify_code(status: StatusCode) -> (u32, &'static str) {
    match status.as_u16() {
        401 => (1102, "InvalidToken"),
        403 => (1104, "Forbidden"),
        429 => (1105, "TooManyRequests"),
        400 => (400, "bad_request"),
        404 => (404, "not_found"),
        409 => (409, "conflict"),
        422 => (422, "validation_failed"),
        other => (u32::from(other), "service_unavailable"),
    }
}

/// Soracom's error code of a status, where no route names one: `AUM0001` is the only code
/// Soracom's own tests show for authentication; the others are the simulator's (Soracom's
/// documents list no codes).
fn soracom_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => "AUM0001",
        404 => "SIM0404",
        429 => "API0429",
        400 => "SEM0001",
        _ => "AGW0005",
    }
}

/// The simulator's shared state.
pub struct SimulatorState {
    /// What it was started with (used again by reset).
    pub config: SimulatorConfig,
    /// The virtual clock.
    pub clock: VirtualClock,
    world: Mutex<World>,
    faults: Mutex<(Vec<FaultRule>, fastrand::Rng)>,
    stats: Mutex<RequestStats>,
    emnify_writes: WritesInFlight,
    carrier_limiter: Option<DefaultKeyedRateLimiter<String>>,
    auth_limiter: Option<DefaultKeyedRateLimiter<String>>,
    emnify_ip_limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Failed emnify authentications in a row, and the lock, by client IP.
    auth_failures: Mutex<HashMap<std::net::IpAddr, AuthFailures>>,
}

/// The simulator's virtual clock drives an operator's clock in tests and benchmarks.
impl simfleet_core::clock::TimeSource for SimulatorState {
    fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }
}

/// Failed authentications in a row from one client IP.
#[derive(Debug, Default, Clone, Copy)]
struct AuthFailures {
    in_a_row: u32,
    locked_until: Option<Timestamp>,
}

/// Failed authentications in a row that lock emnify authentication.
pub(crate) const AUTH_FAILURES_BEFORE_LOCK: u32 = 3;
/// How long the lock lasts (virtual time).
pub(crate) const AUTH_LOCK: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

impl std::fmt::Debug for SimulatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorState").finish_non_exhaustive()
    }
}

impl SimulatorState {
    /// State around a built world.
    pub fn new(config: SimulatorConfig, world: World) -> Self {
        let start = config.start_time.unwrap_or_else(Timestamp::now);
        Self {
            clock: VirtualClock::new(config.clock, start),
            world: Mutex::new(world),
            faults: Mutex::new((
                config.faults.clone(),
                fastrand::Rng::with_seed(config.seed.seed),
            )),
            stats: Mutex::new(RequestStats::default()),
            emnify_writes: WritesInFlight::default(),
            carrier_limiter: config.rate_limit.and_then(RateLimitSpec::limiter),
            auth_limiter: config.auth_rate_limit.and_then(RateLimitSpec::limiter),
            emnify_ip_limiter: config.emnify_ip_rate_limit.and_then(RateLimitSpec::limiter),
            auth_failures: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// The world, settled to the clock's current time, and that time.
    pub fn world(&self) -> (MutexGuard<'_, World>, Timestamp) {
        let now = self.clock.now();
        let mut world = self.world.lock().expect("world lock");
        world.settle(now);
        (world, now)
    }

    /// Replaces the world (reset).
    pub(crate) fn replace_world(&self, world: World) {
        *self.world.lock().expect("world lock") = world;
        self.auth_failures.lock().expect("auth lock").clear();
        self.clear_request_counts();
        self.faults.lock().expect("faults lock").0 = self.config.faults.clone();
    }

    /// The request statistics.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        self.stats.lock().expect("stats lock").rows()
    }

    /// Clears the request statistics.
    pub fn clear_request_counts(&self) {
        self.stats.lock().expect("stats lock").counts.clear();
        self.emnify_writes.clear();
    }

    /// The most emnify write requests (PATCH, POST, DELETE) in flight at once since the
    /// statistics were cleared: emnify asks for writes to be sent one after another.
    pub(crate) fn max_emnify_writes_in_flight(&self) -> u64 {
        self.emnify_writes.max.load(Ordering::Relaxed)
    }

    /// The fault rules in force.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.faults.lock().expect("faults lock").0.clone()
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.faults.lock().expect("faults lock").0 = rules;
    }

    /// Takes one request from a credential's carrier budget; `Err` holds the seconds to wait.
    pub(crate) fn take_carrier_budget(&self, credential: &str) -> Result<(), u64> {
        take(self.carrier_limiter.as_ref(), credential)
    }

    /// Takes one request from a client IP's emnify budget (emnify limits requests per IP).
    fn take_emnify_ip_budget(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        take(self.emnify_ip_limiter.as_ref(), &ip.to_string())
    }

    /// Takes one request from a client IP's authentication budget (emnify: 100 per IP per 5
    /// minutes).
    pub(crate) fn take_auth_budget(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        take(self.auth_limiter.as_ref(), &ip.to_string())
    }

    /// When authentication from `ip` is locked (after three failures in a row), until when.
    pub(crate) fn auth_locked_until(
        &self,
        ip: std::net::IpAddr,
        now: Timestamp,
    ) -> Option<Timestamp> {
        self.auth_failures
            .lock()
            .expect("auth lock")
            .get(&ip)
            .and_then(|f| f.locked_until)
            .filter(|&until| until > now)
    }

    /// Counts an authentication's outcome from `ip`: a success clears the count, the third
    /// failure in a row locks authentication for five minutes.
    pub(crate) fn record_authentication(
        &self,
        ip: std::net::IpAddr,
        succeeded: bool,
        now: Timestamp,
    ) {
        let mut failures = self.auth_failures.lock().expect("auth lock");
        if succeeded {
            failures.remove(&ip);
            return;
        }
        let entry = failures.entry(ip).or_default();
        if entry.locked_until.is_some_and(|until| until <= now) {
            *entry = AuthFailures::default();
        }
        entry.in_a_row += 1;
        if entry.in_a_row >= AUTH_FAILURES_BEFORE_LOCK {
            entry.locked_until = now.checked_add(AUTH_LOCK).ok();
        }
    }

    /// Decides the injected fault for one request, if any (and consumes bursts).
    fn fault_for(&self, route: &str) -> Option<Injected> {
        let mut guard = self.faults.lock().expect("faults lock");
        let (rules, rng) = &mut *guard;
        let mut latency = 0;
        let mut injected = None;
        let mut drop_headers = Vec::new();
        for rule in rules
            .iter_mut()
            .filter(|r| r.route == "*" || r.route == route)
        {
            latency += rule.latency_ms;
            drop_headers.extend(rule.drop_headers.iter().cloned());
            if injected.is_some() {
                continue;
            }
            injected = if rule.burst_429 > 0 {
                rule.burst_429 -= 1;
                Some(Fault::TooMany(rule.retry_after_secs))
            } else if rule.burst_5xx > 0 {
                rule.burst_5xx -= 1;
                Some(Fault::Unavailable)
            } else if rule.error_rate > 0.0 && rng.f64() < rule.error_rate {
                Some(Fault::Unavailable)
            } else if rule.reset_rate > 0.0 && rng.f64() < rule.reset_rate {
                Some(Fault::Reset)
            } else if rule.malformed_rate > 0.0 && rng.f64() < rule.malformed_rate {
                Some(Fault::Malformed)
            } else {
                None
            };
        }
        (latency > 0 || injected.is_some() || !drop_headers.is_empty()).then_some(Injected {
            latency: Duration::from_millis(latency),
            fault: injected,
            drop_headers,
        })
    }
}

/// Counts requests in flight and remembers the most at once.
#[derive(Debug, Default)]
struct WritesInFlight {
    now: AtomicU64,
    max: AtomicU64,
}

impl WritesInFlight {
    /// Counts one request in flight until the guard is dropped.
    fn enter(&self) -> WriteGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        WriteGuard(self)
    }

    fn clear(&self) {
        // Requests in flight now still count when they overlap later ones.
        self.max
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

struct WriteGuard<'a>(&'a WritesInFlight);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// True for an emnify request that writes (PATCH, POST, DELETE), authentication aside.
fn is_emnify_write(dialect: Dialect, method: &Method, route: &str) -> bool {
    dialect == Dialect::Emnify
        && matches!(*method, Method::PATCH | Method::POST | Method::DELETE)
        && route != "/api/v1/authenticate"
}

fn take(limiter: Option<&DefaultKeyedRateLimiter<String>>, credential: &str) -> Result<(), u64> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter
        .check_key(&credential.to_owned())
        .map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
}

#[derive(Debug)]
enum Fault {
    Unavailable,
    TooMany(Option<u64>),
    Reset,
    Malformed,
}

#[derive(Debug, Default)]
struct Injected {
    latency: Duration,
    fault: Option<Fault>,
    drop_headers: Vec<String>,
}

/// A 429 in the request's dialect, in each carrier's documented body (Hologram `{"success":
/// false, "error": "API rate limit exceeded"}`, emnify error code 1105), with `Retry-After`
/// only when asked for (neither carrier documents one).
pub(crate) fn too_many_requests(dialect: Dialect, retry_after: Option<u64>) -> ApiError {
    let message = match dialect {
        Dialect::Hologram => "API rate limit exceeded".to_owned(),
        _ => match retry_after {
            Some(secs) => format!("rate limit exceeded; retry after {secs} s"),
            None => "rate limit exceeded".to_owned(),
        },
    };
    ApiError {
        retry_after,
        ..dialect.error(StatusCode::TOO_MANY_REQUESTS, message)
    }
}

/// Middleware: injects faults on carrier routes and counts every request by route and status.
pub async fn observe(
    State(state): State<Arc<SimulatorState>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |m| m.as_str().to_owned());
    let dialect = Dialect::of_path(&path);
    let _write = is_emnify_write(dialect, &method, &route).then(|| state.emnify_writes.enter());
    let injected = if dialect == Dialect::Admin {
        None
    } else {
        state.fault_for(&route)
    };
    let Injected {
        latency,
        fault,
        drop_headers,
    } = injected.unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // emnify's per-IP limit, whichever credential calls.
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let over_ip_limit = dialect == Dialect::Emnify
        && peer.is_some_and(|ip| state.take_emnify_ip_budget(ip).is_err());
    let mut response = match fault {
        _ if over_ip_limit => too_many_requests(dialect, None).into_response(),
        Some(Fault::Unavailable) => dialect
            .error(
                StatusCode::SERVICE_UNAVAILABLE,
                "injected fault: service unavailable",
            )
            .into_response(),
        Some(Fault::TooMany(secs)) => too_many_requests(dialect, secs).into_response(),
        Some(Fault::Reset) => cut_connection(),
        Some(Fault::Malformed) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"success\": tru",
        )
            .into_response(),
        None => next.run(request).await,
    };
    for name in &drop_headers {
        response.headers_mut().remove(name.as_str());
    }
    let key = (method_name(&method), route, response.status().as_u16());
    *state
        .stats
        .lock()
        .expect("stats lock")
        .counts
        .entry(key)
        .or_default() += 1;
    response
}

fn method_name(method: &Method) -> String {
    method.as_str().to_owned()
}

/// A response whose body fails after the headers: the client sees the connection cut.
fn cut_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: connection reset",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("static response")
}

/// Parses a JSON body, or says what is wrong with it.
pub(crate) fn parse_json(body: &Bytes) -> Result<Value, String> {
    if body.is_empty() {
        return Err("the request body is empty; send a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("the request body is not valid JSON: {e}"))
}

/// A JSON response with a status.
pub(crate) fn json_response(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}
