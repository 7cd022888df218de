//! emnify's REST API (`/api/v1`, and the v2 bulk route), as its documents describe it:
//! application-token authentication (no refresh token; three failures in a row lock it for five
//! minutes; 100 per IP per 5 minutes), page/per_page listing (a page past the last answers the
//! last page again) with `q=` filters, endpoints with their service and tariff profiles and
//! `sim: null` / `tags: null` when none, SIMs, endpoint and SIM status PATCH, data quotas with
//! integer ids, and events with the documented type ids, per endpoint and organisation-wide.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};

use super::fleet::{Fleet, LinkState, device_id, sim_id};
use super::http::{
    AUTH_FAILURES_BEFORE_LOCK, Answer, ApiError, Dialect, SimulatorState, json_response,
    parse_json, too_many_requests,
};
use super::quota::{EventKind, Quota, whole_number};
use super::world::{ChangeRefusal, Event, World};
use super::{EmnifyBulk, EmnifyTagFilter};

mod changes;
mod events;
mod quotas;
pub(crate) mod state;

use events::{list_endpoint_events, list_events};
use quotas::{delete_quota, get_quota, set_quota};

const DIALECT: Dialect = Dialect::Emnify;
/// Page sizes of endpoint lists: default and largest (emnify's documented bounds).
const ENDPOINT_PAGE: (usize, usize) = (1000, 1000);
/// Page sizes of SIM lists.
const SIM_PAGE: (usize, usize) = (2000, 2500);
/// Page sizes of event lists (not documented: the endpoint list's).
const EVENT_PAGE: (usize, usize) = (1000, 1000);
/// Most endpoints one `PATCH /v2/endpoint/multi` changes.
pub(crate) const MAX_BULK_ENDPOINTS: usize = 2000;

/// The emnify routes.
pub fn routes(state: Arc<SimulatorState>) -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/api/v1/endpoint", get(list_endpoints))
        .route(
            "/api/v1/endpoint/{id}",
            get(get_endpoint).patch(patch_endpoint),
        )
        .route(
            "/api/v1/endpoint/{id}/quota/data",
            get(get_quota).post(set_quota).delete(delete_quota),
        )
        .route("/api/v1/endpoint/{id}/event", get(list_endpoint_events))
        .route("/api/v1/event", get(list_events))
        .route("/api/v2/endpoint/multi", patch(patch_endpoints))
        .route("/api/v1/sim", get(list_sims))
        .route("/api/v1/sim/{id}", get(get_sim).patch(patch_sim))
        // Every route but the authentication checks the bearer token first.
        .route_layer(axum::middleware::from_fn_with_state(state, gate))
        .route("/api/v1/authenticate", post(authenticate))
}

/// The gate of every emnify route but `/api/v1/authenticate`.
async fn gate(
    State(state): State<Arc<SimulatorState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match authorize(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => axum::response::IntoResponse::into_response(error),
    }
}

type Params = Query<HashMap<String, String>>;

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    DIALECT.error(status, message)
}

async fn authenticate(
    State(state): State<Arc<SimulatorState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Answer {
    let ip = peer.ip();
    let now = state.clock.now();
    if let Err(wait) = state.take_auth_budget(ip) {
        return Err(too_many_requests(
            DIALECT,
            state.config.retry_after_header.then_some(wait),
        ));
    }
    if let Some(until) = state.auth_locked_until(ip, now) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            format!(
                "authentication is locked after {AUTH_FAILURES_BEFORE_LOCK} failed attempts in a row, until {until}"
            ),
        ));
    }
    let body = parse_json(&body).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let Some(token) = body.get("application_token") else {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "send application_token to authenticate",
        ));
    };
    let Some(token) = token.as_str() else {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "application_token must be a string",
        ));
    };
    // One simulator account serves both protocols: a Hologram API key works here too.
    let known = state
        .config
        .emnify_app_tokens
        .iter()
        .chain(&state.config.hologram_api_keys)
        .any(|k| k == token);
    state.record_authentication(ip, known, now);
    if !known {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid application token"));
    }
    let (mut world, now) = state.world();
    let auth_token = world
        .emnify
        .issue_token(token, now, state.config.token_lifetime);
    // Application tokens get no refresh token.
    Ok(json_response(
        StatusCode::OK,
        json!({"auth_token": auth_token}),
    ))
}

/// Checks the bearer token and takes a request from the credential's rate budget.
fn authorize(state: &SimulatorState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: authenticate at /api/v1/authenticate",
        ));
    };
    let credential = {
        let (world, now) = state.world();
        world
            .emnify
            .check_token(token, now)
            .map(|c| c.map(str::to_owned))
    };
    let credential = match credential {
        Some(Ok(credential)) => credential,
        Some(Err(())) => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "the auth token has expired; authenticate again",
            )
            .with_code(1103, "TokenExpired"));
        }
        None => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "the auth token is invalid; authenticate at /api/v1/authenticate",
            ));
        }
    };
    state
        .take_carrier_budget(&format!("emnify:{credential}"))
        .map_err(|wait| too_many_requests(DIALECT, state.config.retry_after_header.then_some(wait)))
}

/// The endpoint status id of a SIM's state (0 Enabled, 1 Disabled, 2 Deleted).
fn endpoint_status(state: LinkState) -> (u8, &'static str) {
    match state {
        LinkState::Live => (0, "Enabled"),
        LinkState::PausedUser | LinkState::PausedSys => (1, "Disabled"),
        LinkState::Dead => (2, "Deleted"),
    }
}

/// The SIM status id (1 Activated, 2 Suspended, 3 Deleted).
fn sim_status(fleet: &Fleet, row: u32) -> (u8, &'static str) {
    let sim = fleet.sim(row);
    if sim.state == LinkState::Dead {
        (3, "Deleted")
    } else if sim.sim_suspended {
        (2, "Suspended")
    } else {
        (1, "Activated")
    }
}

fn status_json((id, description): (u8, &str)) -> Value {
    json!({"id": id, "description": description})
}

fn endpoint_json(fleet: &Fleet, row: u32) -> Value {
    let sim = fleet.sim(row);
    let tags = fleet.tag_names_of(row);
    json!({
        "id": device_id(row),
        "name": format!("device-{}", device_id(row)),
        "tags": if tags.is_empty() { Value::Null } else { json!(tags.join(",")) },
        "status": status_json(endpoint_status(sim.state)),
        "service_profile": {"id": 1, "name": "Default Service Profile"},
        "tariff_profile": {"id": 1, "name": "Default Tariff Profile"},
        "ip_address": format!("10.{}.{}.{}", (row >> 16) & 0xff, (row >> 8) & 0xff, row & 0xff),
        "imei": format!("35209900{:07}", row),
        "imei_lock": false,
        "created": "2025-01-01T00:00:00.000+00:00",
        "last_updated": "2025-01-01T00:00:00.000+00:00",
        "sim": if sim.has_sim {
            json!({
                "id": sim_id(row),
                "iccid": sim.iccid.to_string(),
                "imsi": format!("29505{:010}", row),
                "msisdn": format!("88234{:010}", row),
                "status": status_json(sim_status(fleet, row)),
            })
        } else {
            Value::Null
        },
    })
}

fn sim_json(fleet: &Fleet, row: u32) -> Value {
    json!({
        "id": sim_id(row),
        "iccid": fleet.sim(row).iccid.to_string(),
        "imsi": format!("29505{:010}", row),
        "msisdn": format!("88234{:010}", row),
        "status": status_json(sim_status(fleet, row)),
        "endpoint": {"id": device_id(row), "name": format!("device-{}", device_id(row))},
    })
}

/// What a list route selects and which page.
struct ListQuery {
    /// `q=tags:X`: the tags that match (none: nothing matches).
    tags: Option<Vec<u16>>,
    status: Option<u8>,
    iccid: Option<Option<u32>>,
    page: usize,
    per_page: usize,
}

/// `page` (from 1) and `per_page` (within the route's bounds), or a 400 naming the parameter.
fn page_params(
    params: &HashMap<String, String>,
    (default_per_page, max_per_page): (usize, usize),
) -> Result<(usize, usize), ApiError> {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        params.get(name).map_or(Ok(default), |v| {
            v.parse::<usize>().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("{name} must be a positive integer, got {v:?}"),
                )
            })
        })
    };
    let page = number("page", 1)?;
    if page == 0 {
        return Err(error(StatusCode::BAD_REQUEST, "page starts at 1"));
    }
    let per_page = number("per_page", default_per_page)?;
    if !(1..=max_per_page).contains(&per_page) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("per_page must be from 1 to {max_per_page}, got {per_page}"),
        ));
    }
    Ok((page, per_page))
}

/// The terms of `q=field:value,field:value`.
fn q_terms(params: &HashMap<String, String>) -> impl Iterator<Item = &str> {
    params
        .get("q")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
}

fn list_query(
    fleet: &Fleet,
    tag_filter: EmnifyTagFilter,
    params: &HashMap<String, String>,
    (default_per_page, max_per_page): (usize, usize),
) -> Result<ListQuery, ApiError> {
    let (page, per_page) = page_params(params, (default_per_page, max_per_page))?;
    if let Some(sort) = params.get("sort").filter(|s| s.as_str() != "id") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("sort {sort:?} is not supported: use id"),
        ));
    }
    let mut query = ListQuery {
        tags: None,
        status: None,
        iccid: None,
        page,
        per_page,
    };
    for term in q_terms(params) {
        let Some((field, value)) = term.split_once(':') else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("filter {term:?} must be field:value"),
            ));
        };
        match field {
            "tags" => {
                query.tags = Some(match tag_filter {
                    EmnifyTagFilter::Exact => fleet.tag_id(value).into_iter().collect(),
                    EmnifyTagFilter::Substring => (0..fleet.tag_count())
                        .filter_map(|id| u16::try_from(id).ok())
                        .filter(|&id| fleet.tag_exists(id) && fleet.tag_name(id).contains(value))
                        .collect(),
                })
            }
            "status" => match value.parse() {
                Ok(s) => query.status = Some(s),
                Err(_) => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!("status filter {value:?} must be a status id"),
                    ));
                }
            },
            "iccid" => query.iccid = Some(fleet.row_of_iccid(value)),
            other => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown filter field {other:?}: use tags, status or iccid"),
                ));
            }
        }
    }
    Ok(query)
}

/// One page of matching rows, the total number of matches and the page served: a page past
/// the last answers the last page again, as emnify documents (stop on `X-Total-Pages`).
fn page(
    fleet: &Fleet,
    query: &ListQuery,
    status_of: fn(&Fleet, u32) -> u8,
    listed: fn(&Fleet, u32) -> bool,
) -> (Vec<u32>, usize, usize) {
    let matches = || {
        let candidates: Box<dyn Iterator<Item = u32>> = match (query.iccid, &query.tags) {
            (Some(row), _) => Box::new(row.into_iter()),
            (None, Some(tags)) if tags.is_empty() => Box::new(std::iter::empty()),
            (None, Some(tags)) if tags.len() == 1 => fleet.rows_from(Some(tags[0]), 0),
            (None, _) => fleet.rows_from(None, 0),
        };
        let tag_ok = move |row: u32| match &query.tags {
            Some(tags) => fleet.sim(row).tags.iter().any(|t| tags.contains(t)),
            None => true,
        };
        candidates.filter(move |&r| {
            listed(fleet, r) && tag_ok(r) && query.status.is_none_or(|s| status_of(fleet, r) == s)
        })
    };
    let window = |page: usize| {
        let skip = (page - 1) * query.per_page;
        let mut rows = Vec::with_capacity(query.per_page.min(1024));
        let mut total = 0;
        for row in matches() {
            if total >= skip && rows.len() < query.per_page {
                rows.push(row);
            }
            total += 1;
        }
        (rows, total)
    };
    let (rows, total) = window(query.page);
    let last = total.div_ceil(query.per_page).max(1);
    if query.page > last {
        let (rows, total) = window(last);
        return (rows, total, last);
    }
    (rows, total, query.page)
}

fn paged_response(items: Vec<Value>, total: usize, per_page: usize, page: usize) -> Response {
    let pages = total.div_ceil(per_page);
    let mut response = axum::Json(Value::Array(items)).into_response();
    let headers = response.headers_mut();
    headers.insert("X-Total-Count", HeaderValue::from(total as u64));
    headers.insert("X-Total-Pages", HeaderValue::from(pages as u64));
    headers.insert("X-Count-Per-Page", HeaderValue::from(per_page as u64));
    headers.insert("X-Current-Page", HeaderValue::from(page as u64));
    response
}

/// Every row is an endpoint.
fn any_endpoint(_: &Fleet, _: u32) -> bool {
    true
}

/// Rows with a SIM assigned are SIMs.
fn has_sim(fleet: &Fleet, row: u32) -> bool {
    fleet.sim(row).has_sim
}

async fn list_endpoints(State(state): State<Arc<SimulatorState>>, Query(params): Params) -> Answer {
    let (world, _) = state.world();
    let query = list_query(
        &world.fleet,
        state.config.emnify_tag_filter,
        &params,
        ENDPOINT_PAGE,
    )?;
    let (rows, total, served) = page(
        &world.fleet,
        &query,
        |f, r| endpoint_status(f.sim(r).state).0,
        any_endpoint,
    );
    let items = rows
        .iter()
        .map(|&r| endpoint_json(&world.fleet, r))
        .collect();
    drop(world);
    Ok(paged_response(items, total, query.per_page, served))
}

async fn list_sims(State(state): State<Arc<SimulatorState>>, Query(params): Params) -> Answer {
    let (world, _) = state.world();
    let query = list_query(
        &world.fleet,
        state.config.emnify_tag_filter,
        &params,
        SIM_PAGE,
    )?;
    let (rows, total, served) = page(&world.fleet, &query, |f, r| sim_status(f, r).0, has_sim);
    let items = rows.iter().map(|&r| sim_json(&world.fleet, r)).collect();
    drop(world);
    Ok(paged_response(items, total, query.per_page, served))
}

/// Resolves an endpoint id from the path, or answers 404.
fn endpoint_row(world: &World, id: &str) -> Result<u32, ApiError> {
    id.parse()
        .ok()
        .and_then(|id| world.fleet.row_of_device(id))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("endpoint {id} not found")))
}

async fn get_endpoint(State(state): State<Arc<SimulatorState>>, Path(id): Path<String>) -> Answer {
    let (world, _) = state.world();
    let row = endpoint_row(&world, &id)?;
    Ok(json_response(
        StatusCode::OK,
        endpoint_json(&world.fleet, row),
    ))
}

async fn get_sim(State(state): State<Arc<SimulatorState>>, Path(id): Path<String>) -> Answer {
    let (world, _) = state.world();
    match id.parse().ok().and_then(|id| world.fleet.row_of_sim_id(id)) {
        Some(row) => Ok(json_response(StatusCode::OK, sim_json(&world.fleet, row))),
        None => Err(error(StatusCode::NOT_FOUND, format!("sim {id} not found"))),
    }
}

/// Reads `{"status": {"id": N}}`.
fn status_id(body: &Bytes) -> Result<i64, ApiError> {
    let body = parse_json(body).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    body.get("status")
        .and_then(|s| s.get("id"))
        .and_then(whole_number)
        .ok_or_else(|| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "status.id is required and must be an integer",
            )
        })
}

fn refusal(what: &str, id: &str, refusal: ChangeRefusal, allowed: &str) -> ApiError {
    match refusal {
        ChangeRefusal::Deleted => error(
            StatusCode::CONFLICT,
            format!("{what} {id} is deleted and cannot change status"),
        ),
        ChangeRefusal::UnknownStatus(s) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("status.id {s} is not valid here: use {allowed}"),
        ),
    }
}

async fn patch_endpoint(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let status = status_id(&body)?;
    let (mut world, now) = state.world();
    let row = endpoint_row(&world, &id)?;
    match world.patch_endpoint(row, status, now) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(r) => Err(refusal("endpoint", &id, r, "0 (Enabled) or 1 (Disabled)")),
    }
}

/// `PATCH /v2/endpoint/multi`: a JSON array of `{"id", "status": {"id"}}` (only `id` required;
/// the simulator models no other endpoint field). Every item is checked before anything
/// changes: one bad item refuses the whole request with 422, its `errors[]` naming each bad
/// item (by index and endpoint id, in the message: emnify documents no per-item id field).
async fn patch_endpoints(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
    if state.config.emnify_bulk == EmnifyBulk::Forbidden {
        return Err(error(
            StatusCode::FORBIDDEN,
            "the user does not have permission to bulk update endpoints",
        ));
    }
    let body = parse_json(&body).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let Value::Array(items) = body else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON array of endpoint objects",
        ));
    };
    if items.is_empty() || items.len() > MAX_BULK_ENDPOINTS {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "send from 1 to {MAX_BULK_ENDPOINTS} endpoints per request, got {}",
                items.len()
            ),
        ));
    }
    let (mut world, now) = state.world();
    let mut changes = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let id = item
            .get("id")
            .and_then(whole_number)
            .and_then(|i| u64::try_from(i).ok());
        let problem = match id {
            None => Some("id is required and must be an integer".to_owned()),
            Some(id) if !seen.insert(id) => Some(format!("endpoint {id} is listed twice")),
            Some(id) => match world.fleet.row_of_device(id) {
                None => Some(format!("endpoint {id} not found")),
                Some(row) => match item.get("status") {
                    None => None,
                    Some(status) => match status.get("id").and_then(whole_number) {
                        None => Some(format!(
                            "endpoint {id}: status.id must be an integer: 0 (Enabled) or 1 (Disabled)"
                        )),
                        Some(status) => match world.endpoint_target(row, status) {
                            Ok(_) => {
                                changes.push((row, status));
                                None
                            }
                            Err(ChangeRefusal::Deleted) => {
                                Some(format!("endpoint {id} is deleted and cannot change status"))
                            }
                            Err(ChangeRefusal::UnknownStatus(s)) => Some(format!(
                                "endpoint {id}: status.id {s} is invalid: use 0 (Enabled) or 1 (Disabled)"
                            )),
                        },
                    },
                },
            },
        };
        if let Some(message) = problem {
            errors.push(json!({
                "error_code": 422,
                "error_token": "validation_failed",
                "message": format!("item {index}: {message}"),
            }));
        }
    }
    if !errors.is_empty() {
        world.counters.refused_sims += errors.len() as u64;
        return Ok(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "error_code": 422,
                "error_token": "validation_failed",
                "message": format!("{} of {} endpoints are invalid; nothing was changed", errors.len(), items.len()),
                "errors": errors,
            }),
        ));
    }
    world
        .patch_endpoints(&changes, now)
        .expect("every item was checked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn patch_sim(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let status = status_id(&body)?;
    let (mut world, now) = state.world();
    let Some(row) = id.parse().ok().and_then(|id| world.fleet.row_of_sim_id(id)) else {
        return Err(error(StatusCode::NOT_FOUND, format!("sim {id} not found")));
    };
    match world.patch_sim(row, status, now) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(r) => Err(refusal("sim", &id, r, "1 (Activated) or 2 (Suspended)")),
    }
}
