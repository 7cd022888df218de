//! Soracom's API (`/v1` at the simulator's root, so that `http://127.0.0.1:PORT` stands in for
//! `https://api.soracom.io`), as Soracom's OpenAPI spec and documents describe it: `POST
//! /v1/auth` and the two headers every other call sends, SIM listings with keyset paging, the
//! lagging search, the synchronous single-SIM state routes, expiry, the Batch API, `{code,
//! message}` errors and the per-minute rate limit with its `X-Soracom-Ratelimit-*` headers.
//! Where no source settles a fact, [`SoracomOptions`] picks, and can be switched.

pub(crate) mod admin;
mod batch;
mod sims;
pub(crate) mod state;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::http::{Answer, ApiError, Dialect, SimulatorState, json_response, parse_json};
use state::{OPERATOR_ID, Token};

pub(crate) const DIALECT: Dialect = Dialect::Soracom;

/// The auth key the simulator accepts when none is configured (`--soracom-auth-key`).
pub const DEFAULT_AUTH_KEY: (&str, &str) = ("keyId-simulator", "secret-simulator");

/// Where Soracom's documents are silent, what the simulator answers; each a start-up option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoracomOptions {
    /// Auth key ids and secrets accepted by `POST /v1/auth`.
    pub auth_keys: Vec<(String, String)>,
    /// The status of a call with an expired or revoked token (undocumented; 401 by default).
    pub expired_token: ExpiredToken,
    /// The answer to a state change to the state the SIM is in (undocumented; 200 by default).
    pub same_state: SameState,
    /// Requests per minute per route (Soracom publishes no numbers); 0: no limit, no headers.
    pub rate_limit_per_minute: u32,
    /// How long each batch task takes (tasks run one at a time; throughput is unpublished).
    pub task_time: SignedDuration,
    /// How far `/v1/query/*` lags writes (Soracom's own test waits 15 s for its index).
    pub query_lag: SignedDuration,
    /// Whether the credentials may use the Batch API (a SAM user's permissions may deny it).
    pub batch: BatchAccess,
}

/// Whether the Batch API answers for the simulator's credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchAccess {
    /// It runs jobs.
    #[default]
    Allowed,
    /// 403 on every batch route, as for a user whose permissions do not include it.
    Forbidden,
}

impl Default for SoracomOptions {
    fn default() -> Self {
        Self {
            auth_keys: vec![(DEFAULT_AUTH_KEY.0.into(), DEFAULT_AUTH_KEY.1.into())],
            expired_token: ExpiredToken::Unauthorized,
            same_state: SameState::Ok,
            rate_limit_per_minute: 6_000,
            task_time: SignedDuration::from_millis(50),
            query_lag: SignedDuration::from_secs(15),
            batch: BatchAccess::Allowed,
        }
    }
}

/// The status of a call with an expired or revoked token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiredToken {
    /// 401 `AUM0001` (what the soracom-labs MCP server re-authenticates on).
    #[default]
    Unauthorized,
    /// 403.
    Forbidden,
}

/// The answer to a change to the state a SIM is already in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SameState {
    /// 200 with the unchanged SIM.
    #[default]
    Ok,
    /// 400.
    Error,
}

/// Token lifetime when `/v1/auth` names none, and its bounds [doc A, D1].
const TOKEN_DEFAULT_SECS: i64 = 86_400;
const TOKEN_MIN_SECS: i64 = 180;
const TOKEN_MAX_SECS: i64 = 172_800;

/// The Soracom routes, behind the gate that checks the token and counts the rate.
pub fn routes(state: Arc<SimulatorState>) -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/v1/auth", post(auth))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/operators/{operator_id}/token", post(renew_token))
        .route("/v1/sims", get(sims::list_sims))
        .route("/v1/sims/{sim_id}", get(sims::get_sim))
        .route("/v1/sims/{sim_id}/{action}", post(sims::change_sim))
        .route("/v1/subscribers", get(sims::list_subscribers))
        .route("/v1/query/sims", get(sims::query_sims))
        .route(
            "/v1/batch_groups",
            post(batch::create_group).get(batch::list_groups),
        )
        .route(
            "/v1/batch_groups/{group_id}",
            get(batch::get_group)
                .put(batch::update_group)
                .delete(batch::delete_group),
        )
        .route(
            "/v1/batch_groups/{group_id}/jobs",
            post(batch::create_job).get(batch::list_jobs),
        )
        .route(
            "/v1/batch_groups/{group_id}/jobs/{job_id}",
            get(batch::get_job),
        )
        .route(
            "/v1/batch_groups/{group_id}/jobs/{job_id}/tasks",
            get(batch::list_tasks),
        )
        .route_layer(axum::middleware::from_fn_with_state(state, gate))
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    DIALECT.error(StatusCode::BAD_REQUEST, message)
}

pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
    DIALECT.error(StatusCode::NOT_FOUND, message)
}

/// Checks the API key and token on every route but `/v1/auth` (and counts `/v1/auth`
/// against the per-IP limit), takes the request from its route's minute, runs the batch jobs
/// up to now, and adds the rate-limit headers to the answer.
async fn gate(State(state): State<Arc<SimulatorState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(String::new, |m| m.as_str().to_owned());
    if route == "/v1/auth" {
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if peer.is_some_and(|ip| state.take_auth_budget(ip).is_err()) {
            return DIALECT
                .error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many authentications from this address; wait up to one minute",
                )
                .into_response();
        }
        return next.run(request).await;
    }
    let limit = state.config.soracom.rate_limit_per_minute;
    let window = {
        let (mut world, now) = state.world();
        if let Err(error) = check_token(&state, &world.soracom.tokens, request.headers(), now) {
            return error.into_response();
        }
        if route.starts_with("/v1/batch_groups")
            && state.config.soracom.batch == BatchAccess::Forbidden
        {
            return DIALECT
                .error(
                    StatusCode::FORBIDDEN,
                    "the credentials' permissions do not allow the Batch API",
                )
                .with_soracom_code("SEM0403")
                .into_response();
        }
        let world = &mut *world;
        let task_time = state.config.soracom.task_time;
        world
            .soracom
            .run_jobs(&mut world.fleet, &mut world.counters, now, task_time);
        (limit > 0).then(|| take_minute(&mut world.soracom.windows, &route, now, limit))
    };
    let mut response = match window {
        Some(ref w) if w.remaining.is_none() => DIALECT
            .error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded. Wait up to one minute before calling again.",
            )
            .into_response(),
        _ => next.run(request).await,
    };
    if let Some(w) = window {
        let headers = response.headers_mut();
        let mut put = |name: &'static str, value: i64| {
            headers.insert(
                name,
                HeaderValue::from_str(&value.to_string()).expect("digits"),
            );
        };
        put("x-soracom-ratelimit-limit", i64::from(limit));
        put(
            "x-soracom-ratelimit-remaining",
            i64::from(w.remaining.unwrap_or(0)),
        );
        put("x-soracom-ratelimit-seconds-before-refresh", w.refresh_secs);
    }
    response
}

/// What a request left of its route's minute: `remaining` is `None` when it was over.
struct Minute {
    remaining: Option<u32>,
    refresh_secs: i64,
}

fn take_minute(
    windows: &mut std::collections::HashMap<String, (i64, u32)>,
    route: &str,
    now: Timestamp,
    limit: u32,
) -> Minute {
    let second = now.as_second();
    let start = second - second.rem_euclid(60);
    let entry = windows.entry(route.to_owned()).or_insert((start, 0));
    if entry.0 != start {
        *entry = (start, 0);
    }
    let over = entry.1 >= limit;
    if !over {
        entry.1 += 1;
    }
    Minute {
        remaining: (!over).then(|| limit - entry.1),
        refresh_secs: (start + 60 - second).max(1),
    }
}

/// The token the headers carry, if it is live: both headers, from one `/v1/auth`.
fn check_token(
    state: &SimulatorState,
    tokens: &std::collections::HashMap<String, Token>,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(api_key), Some(token)) = (header("x-soracom-api-key"), header("x-soracom-token"))
    else {
        return Err(DIALECT
            .error(
                StatusCode::UNAUTHORIZED,
                "Token is required in the request header",
            )
            .with_soracom_code("AUM0001"));
    };
    match tokens.get(token) {
        Some(t) if t.api_key == api_key && !t.revoked && t.expires > now => Ok(()),
        Some(t) if t.api_key == api_key => {
            let status = match state.config.soracom.expired_token {
                ExpiredToken::Unauthorized => StatusCode::UNAUTHORIZED,
                ExpiredToken::Forbidden => StatusCode::FORBIDDEN,
            };
            let what = if t.revoked { "revoked" } else { "expired" };
            Err(DIALECT
                .error(status, format!("the token has {what}; call /v1/auth again"))
                .with_soracom_code("AUM0001"))
        }
        _ => Err(DIALECT
            .error(StatusCode::UNAUTHORIZED, "invalid API key or token")
            .with_soracom_code("AUM0001")),
    }
}

/// `POST /v1/auth` with `{authKeyId, authKey, tokenTimeoutSeconds?}`: 200 `{apiKey,
/// operatorId, token}`; 401 "Authentication failed." The simulator issues auth keys only (no
/// e-mail or SAM user sign-in).
async fn auth(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let text = |name: &str| body.get(name).and_then(Value::as_str);
    let timeout = match body.get("tokenTimeoutSeconds") {
        None | Some(Value::Null) => TOKEN_DEFAULT_SECS,
        Some(v) => match v.as_i64() {
            Some(s) if (TOKEN_MIN_SECS..=TOKEN_MAX_SECS).contains(&s) => s,
            _ => {
                return Err(bad_request(format!(
                    "tokenTimeoutSeconds must be from {TOKEN_MIN_SECS} to {TOKEN_MAX_SECS}, got {v}"
                )));
            }
        },
    };
    let known = match (text("authKeyId"), text("authKey")) {
        (Some(id), Some(key)) => state
            .config
            .soracom
            .auth_keys
            .iter()
            .any(|(i, k)| i == id && k == key),
        _ => false,
    };
    if !known {
        return Err(DIALECT.error(StatusCode::UNAUTHORIZED, "Authentication failed."));
    }
    let (mut world, now) = state.world();
    let api_key = world.soracom.next_id("api-");
    let token = world.soracom.next_id("token-");
    world.soracom.tokens.insert(
        token.clone(),
        Token {
            api_key: api_key.clone(),
            expires: now
                .saturating_add(SignedDuration::from_secs(timeout))
                .expect("bounded"),
            revoked: false,
        },
    );
    Ok(json_response(
        StatusCode::OK,
        json!({"apiKey": api_key, "operatorId": OPERATOR_ID, "token": token}),
    ))
}

/// `POST /v1/auth/logout`: 204, and the key and token stop working at once.
async fn logout(State(state): State<Arc<SimulatorState>>, headers: HeaderMap) -> Answer {
    let (mut world, _) = state.world();
    if let Some(token) = headers.get("x-soracom-token").and_then(|v| v.to_str().ok())
        && let Some(t) = world.soracom.tokens.get_mut(token)
    {
        t.revoked = true;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/operators/{operator_id}/token` `{tokenTimeoutSeconds}`: a new token for the same
/// API key while the old one is valid (the gate has checked it).
async fn renew_token(
    State(state): State<Arc<SimulatorState>>,
    axum::extract::Path(operator_id): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    if operator_id != OPERATOR_ID {
        return Err(DIALECT.error(
            StatusCode::FORBIDDEN,
            format!("operator {operator_id} is not yours"),
        ));
    }
    let timeout = if body.is_empty() {
        TOKEN_DEFAULT_SECS
    } else {
        parse_json(&body)
            .map_err(bad_request)?
            .get("tokenTimeoutSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(TOKEN_DEFAULT_SECS)
            .clamp(TOKEN_MIN_SECS, TOKEN_MAX_SECS)
    };
    let api_key = headers
        .get("x-soracom-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (mut world, now) = state.world();
    let token = world.soracom.next_id("token-");
    world.soracom.tokens.insert(
        token.clone(),
        Token {
            api_key,
            expires: now
                .saturating_add(SignedDuration::from_secs(timeout))
                .expect("bounded"),
            revoked: false,
        },
    );
    Ok(json_response(StatusCode::OK, json!({"token": token})))
}

/// Paging headers of a list answer: `x-soracom-next-key` and an RFC 8288 `link` while more
/// follow; none on the last page.
pub(crate) fn paged(body: Value, next_key: Option<String>, uri: &axum::http::Uri) -> Response {
    let mut response = json_response(StatusCode::OK, body);
    if let Some(key) = next_key {
        let headers = response.headers_mut();
        headers.insert(
            "x-soracom-next-key",
            HeaderValue::from_str(&key).expect("ids are ASCII"),
        );
        let query: Vec<String> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("last_evaluated_key="))
            .map(str::to_owned)
            .chain([format!("last_evaluated_key={key}")])
            .collect();
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"));
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert("link", value);
        }
    }
    response
}

/// A page size: `limit`, from 1 to `max` (`default` without one).
pub(crate) fn limit_of(
    params: &std::collections::HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_request(format!(
                "limit must be an integer from 1 to {max}, got {v:?}"
            ))),
        },
    }
}
