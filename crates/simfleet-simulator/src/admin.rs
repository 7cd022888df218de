//! The simulator's own API under `/_sim/`, for tests, demos and benchmarks: statistics, the SIM
//! table, jobs, faults, the clock, data consumption and reset. Not part of either carrier.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use jiff::SignedDuration;
use serde_json::{Value, json};

use super::fleet::{LinkState, device_id, link_id, sim_id};
use super::http::{
    Answer, ApiError, Dialect, FaultRule, SimulatorState, json_response, parse_json,
};
use simfleet_core::duration::FriendlyDuration;

const DIALECT: Dialect = Dialect::Admin;
const MAX_TABLE_PAGE: usize = 10_000;

/// The admin routes.
pub fn routes() -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/_sim/stats", get(stats).delete(clear_stats))
        .route("/_sim/sims", get(sims))
        .route("/_sim/sims/{device_id}", patch(force_state))
        .route("/_sim/jobs", get(jobs))
        .route(
            "/_sim/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/_sim/clock", get(clock))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/consume", post(consume))
        .route("/_sim/tokens/expire", post(expire_tokens))
        .route("/_sim/reset", post(reset))
}

fn bad_request(message: impl Into<String>) -> ApiError {
    DIALECT.error(StatusCode::BAD_REQUEST, message)
}

async fn stats(State(state): State<Arc<SimulatorState>>) -> Answer {
    let requests = state.request_counts();
    let total: u64 = requests.iter().map(|r| r.count).sum();
    let mutating: u64 = requests
        .iter()
        .filter(|r| {
            !matches!(r.method.as_str(), "GET" | "HEAD")
                && !r.route.starts_with("/_sim/")
                && r.route != "/api/v1/authenticate"
                && r.route != "/v1/auth"
        })
        .map(|r| r.count)
        .sum();
    let rate_limited: u64 = requests
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.count)
        .sum();
    let (world, _) = state.world();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "requests": requests,
            "totals": {
                "requests": total,
                "mutatingCarrierRequests": mutating,
                "rateLimited": rate_limited,
                "maxEmnifyWritesInFlight": state.max_emnify_writes_in_flight(),
            },
            "changes": world.counters,
            "jobs": {
                "total": world.jobs.len(),
                "pending": world.jobs.iter().filter(|j| j.finished_at.is_none()).count(),
            },
        }),
    ))
}

async fn clear_stats(State(state): State<Arc<SimulatorState>>) -> Answer {
    state.clear_request_counts();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /_sim/sims?iccid=&deviceId=&tag=&state=&offset=&limit=`: the SIM table.
async fn sims(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        params.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| {
                bad_request(format!("{name} must be a non-negative integer, got {v:?}"))
            })
        })
    };
    let (offset, limit) = match (number("offset", 0), number("limit", 100)) {
        (Ok(o), Ok(l)) if (1..=MAX_TABLE_PAGE).contains(&l) => (o, l),
        (Ok(_), Ok(l)) => {
            return Err(bad_request(format!(
                "limit must be from 1 to {MAX_TABLE_PAGE}, got {l}"
            )));
        }
        (Err(r), _) | (_, Err(r)) => return Err(r),
    };
    let wanted_state = match params.get("state") {
        None => None,
        Some(s) => match serde_json::from_value::<LinkState>(json!(s)) {
            Ok(state) => Some(state),
            Err(_) => {
                return Err(bad_request(format!(
                    "state {s:?} is not one of LIVE, PAUSED-USER, PAUSED-SYS, DEAD"
                )));
            }
        },
    };
    let pending_only = params.get("pending").is_some_and(|v| v == "true");
    let (world, _) = state.world();
    let fleet = &world.fleet;
    let tag = match params.get("tag") {
        None => None,
        Some(name) => match fleet.tag_id(name) {
            Some(t) => Some(t),
            None => {
                return Ok(json_response(
                    StatusCode::OK,
                    json!({"total": 0, "sims": []}),
                ));
            }
        },
    };
    let only: Option<Option<u32>> = match (params.get("iccid"), params.get("deviceId")) {
        (Some(iccid), _) => Some(fleet.row_of_iccid(iccid)),
        (None, Some(id)) => Some(id.parse().ok().and_then(|id| fleet.row_of_device(id))),
        (None, None) => None,
    };
    let candidates: Box<dyn Iterator<Item = u32>> = match only {
        Some(row) => Box::new(
            row.into_iter()
                .filter(move |&r| tag.is_none_or(|t| fleet.sim(r).tags.contains(&t))),
        ),
        None => fleet.rows_from(tag, 0),
    };
    let mut total = 0;
    let mut rows = Vec::new();
    for row in candidates.filter(|&r| {
        let sim = fleet.sim(r);
        wanted_state.is_none_or(|s| sim.state == s) && (!pending_only || sim.pending.is_some())
    }) {
        if total >= offset && rows.len() < limit {
            rows.push(row);
        }
        total += 1;
    }
    let sims: Vec<Value> = rows
        .iter()
        .map(|&row| {
            let sim = fleet.sim(row);
            json!({
                "iccid": sim.iccid.to_string(),
                "deviceId": device_id(row),
                "linkId": link_id(row),
                "simId": sim_id(row),
                "orgId": sim.org_id,
                "tags": fleet.tag_names_of(row),
                "state": sim.state,
                "pending": sim.pending.map(|p| json!({"to": p.to, "job": world.jobs[p.job as usize].id})),
                "simSuspended": sim.sim_suspended,
                "quota": sim.quota.as_deref().map(|q| q.to_json()),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"total": total, "sims": sims}),
    ))
}

/// `PATCH /_sim/sims/{deviceId}` `{"state": "LIVE"}`: changes a SIM at once, as someone in the
/// carrier's dashboard would (drift), or puts it in `PAUSED-SYS`.
async fn force_state(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let new_state = match body
        .get("state")
        .map(|s| serde_json::from_value::<LinkState>(s.clone()))
    {
        Some(Ok(s)) => s,
        _ => {
            return Err(bad_request(
                "state is required: LIVE, PAUSED-USER, PAUSED-SYS or DEAD",
            ));
        }
    };
    let (mut world, _) = state.world();
    let Some(row) = id.parse().ok().and_then(|id| world.fleet.row_of_device(id)) else {
        return Err(DIALECT.error(StatusCode::NOT_FOUND, format!("device {id} not found")));
    };
    world.force_state(row, new_state);
    Ok(json_response(
        StatusCode::OK,
        json!({"deviceId": device_id(row), "state": new_state}),
    ))
}

/// `GET /_sim/jobs?status=pending|finished`.
async fn jobs(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let filter = params.get("status").map(String::as_str);
    if !matches!(filter, None | Some("pending") | Some("finished")) {
        return Err(bad_request("status must be pending or finished"));
    }
    let (world, _) = state.world();
    let jobs: Vec<_> = world
        .jobs
        .iter()
        .filter(|j| match filter {
            Some("pending") => j.finished_at.is_none(),
            Some("finished") => j.finished_at.is_some(),
            _ => true,
        })
        .collect();
    Ok(json_response(StatusCode::OK, json!({"jobs": jobs})))
}

async fn get_faults(State(state): State<Arc<SimulatorState>>) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        json!({"rules": state.faults()}),
    ))
}

/// `PUT /_sim/faults` `{"rules": [FaultRule...]}` replaces the fault rules.
async fn put_faults(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let rules: Vec<FaultRule> = match body.get("rules").map(|r| serde_json::from_value(r.clone())) {
        Some(Ok(rules)) => rules,
        Some(Err(e)) => return Err(bad_request(format!("rules: {e}"))),
        None => return Err(bad_request("rules is required: a list of fault rules")),
    };
    for (i, rule) in rules.iter().enumerate() {
        if let Err(e) = rule.check() {
            return Err(bad_request(format!("rules[{i}].{e}")));
        }
    }
    state.set_faults(rules);
    Ok(json_response(
        StatusCode::OK,
        json!({"rules": state.faults()}),
    ))
}

async fn clear_faults(State(state): State<Arc<SimulatorState>>) -> Answer {
    state.set_faults(Vec::new());
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clock(State(state): State<Arc<SimulatorState>>) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        json!({"now": state.clock.now(), "mode": state.clock.mode()}),
    ))
}

/// `POST /_sim/clock/advance` `{"by": "1h30m"}` or `{"seconds": 90}`.
async fn advance_clock(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let by = match (body.get("by"), body.get("seconds")) {
        (Some(Value::String(text)), None) => match text.parse::<FriendlyDuration>() {
            Ok(d) => d.as_duration(),
            Err(e) => return Err(bad_request(format!("by: {e}"))),
        },
        (None, Some(seconds)) => match seconds.as_f64() {
            Some(s) if s >= 0.0 && s.is_finite() => SignedDuration::from_secs_f64(s),
            _ => return Err(bad_request("seconds must be a number, 0 or more")),
        },
        _ => {
            return Err(bad_request(
                "send exactly one of by (e.g. \"1h30m\") or seconds",
            ));
        }
    };
    let now = state.clock.advance(by);
    // Apply what became due, so the next reader sees a settled world either way.
    drop(state.world());
    Ok(json_response(StatusCode::OK, json!({"now": now})))
}

/// `POST /_sim/consume` `{"deviceId": 1001, "mb": 12.5}`: the device uses data.
async fn consume(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let Some(device) = body.get("deviceId").and_then(Value::as_u64) else {
        return Err(bad_request("deviceId is required: an endpoint id"));
    };
    let mb = match body.get("mb").and_then(Value::as_f64) {
        Some(mb) if mb > 0.0 && mb.is_finite() => mb,
        _ => return Err(bad_request("mb is required: a number above 0")),
    };
    let (mut world, now) = state.world();
    let Some(row) = world.fleet.row_of_device(device) else {
        return Err(DIALECT.error(StatusCode::NOT_FOUND, format!("device {device} not found")));
    };
    match world.consume(row, mb, now) {
        Ok(quota) => Ok(json_response(
            StatusCode::OK,
            json!({"deviceId": device, "quota": quota.to_json()}),
        )),
        Err(message) => Err(DIALECT.error(StatusCode::CONFLICT, message)),
    }
}

async fn expire_tokens(State(state): State<Arc<SimulatorState>>) -> Answer {
    let (mut world, now) = state.world();
    let expired = world.expire_tokens(now);
    Ok(json_response(StatusCode::OK, json!({"expired": expired})))
}

/// `POST /_sim/reset`: rebuilds the fleet from the start-up settings, forgets jobs, tokens,
/// statistics and runtime fault rules. The clock keeps its time.
async fn reset(State(state): State<Arc<SimulatorState>>) -> Answer {
    match super::build_world(&state.config) {
        Ok(world) => {
            let sims = world.fleet.len();
            state.replace_world(world);
            Ok(json_response(StatusCode::OK, json!({"sims": sims})))
        }
        Err(e) => Err(DIALECT.error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
