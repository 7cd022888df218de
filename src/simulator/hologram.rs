//! Hologram's REST API v1 (`/api/1`): basic auth with the `apikey` user, keyset paging,
//! single and bulk device state changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};

use super::fleet::{Fleet, Target, device_id, link_id};
use super::http::{
    Answer, ApiError, Dialect, SimulatorState, json_response, parse_json, too_many_requests,
};
use super::world::refused_json;

const DIALECT: Dialect = Dialect::Hologram;
/// Default page size of list routes.
const DEFAULT_LIMIT: usize = 25;
/// Largest page a list route serves.
pub const MAX_LIMIT: usize = 1000;

/// The Hologram routes.
pub fn routes() -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/api/1/devices", get(list_devices))
        .route("/api/1/devices/{id}", get(get_device))
        .route("/api/1/devices/{id}/state", post(change_one))
        .route("/api/1/devices/batch/state", post(change_batch))
        .route("/api/1/links/cellular", get(list_links))
}

type Params = Query<HashMap<String, String>>;

/// Checks the API key (HTTP Basic user `apikey`, or `?apikey=`) and takes a request from its
/// rate budget.
fn authorize(
    state: &SimulatorState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.strip_prefix("apikey:").map(str::to_owned));
    let key = from_header.or_else(|| params.get("apikey").cloned());
    let Some(key) = key.filter(|k| state.config.hologram_api_keys.contains(k)) else {
        return Err(DIALECT.error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key: use HTTP Basic auth with user \"apikey\" and your API key as password",
        ));
    };
    state
        .take_carrier_budget(&format!("hologram:{key}"))
        .map_err(|wait| too_many_requests(DIALECT, wait))
}

fn bad_request(message: impl Into<String>) -> ApiError {
    DIALECT.error(StatusCode::BAD_REQUEST, message)
}

fn param_u64(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| bad_request(format!("{name} must be a positive integer, got {v:?}")))
        })
        .transpose()
}

/// The filters and page of a list request.
struct ListQuery {
    org: Option<u64>,
    tag: TagFilter,
    only_row: Option<Option<u32>>,
    limit: usize,
    start_after: Option<u64>,
}

enum TagFilter {
    Any,
    Tag(u16),
    /// A tag no SIM carries: nothing matches.
    Nothing,
}

fn list_query(fleet: &Fleet, params: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let limit = match param_u64(params, "limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(bad_request(format!(
                "limit must be from 1 to {MAX_LIMIT}, got {n}"
            )));
        }
    };
    let tag = match (params.get("tagname"), param_u64(params, "tagid")?) {
        (Some(name), _) => fleet
            .tag_id(name)
            .map_or(TagFilter::Nothing, TagFilter::Tag),
        (None, Some(id)) => u16::try_from(id.wrapping_sub(1))
            .ok()
            .filter(|&t| usize::from(t) < fleet.tag_count())
            .map_or(TagFilter::Nothing, TagFilter::Tag),
        (None, None) => TagFilter::Any,
    };
    let only_row = match (params.get("sim"), param_u64(params, "deviceid")?) {
        (Some(iccid), _) => Some(fleet.row_of_iccid(iccid)),
        (None, Some(device)) => Some(fleet.row_of_device(device)),
        (None, None) => None,
    };
    Ok(ListQuery {
        org: param_u64(params, "orgid")?,
        tag,
        only_row,
        limit,
        start_after: param_u64(params, "startafter")?,
    })
}

/// Rows of one page (ascending by id) and whether more follow.
fn page(fleet: &Fleet, query: &ListQuery, id_of: fn(u32) -> u64) -> (Vec<u32>, bool) {
    let from = match query.start_after {
        Some(after) => match after.checked_sub(id_of(0)) {
            Some(offset) => u32::try_from(offset + 1).unwrap_or(u32::MAX),
            None => 0,
        },
        None => 0,
    };
    let org_ok = |row: u32| query.org.is_none_or(|org| fleet.sim(row).org_id == org);
    let tag_ok = |row: u32| match query.tag {
        TagFilter::Any => true,
        TagFilter::Tag(t) => fleet.sim(row).tags.contains(&t),
        TagFilter::Nothing => false,
    };
    let candidates: Box<dyn Iterator<Item = u32>> = match (query.only_row, &query.tag) {
        (Some(row), _) => Box::new(
            row.filter(|&r| r >= from)
                .into_iter()
                .filter(move |&r| tag_ok(r)),
        ),
        (None, TagFilter::Nothing) => Box::new(std::iter::empty()),
        (None, TagFilter::Tag(t)) => fleet.rows_from(Some(*t), from),
        (None, TagFilter::Any) => fleet.rows_from(None, from),
    };
    let mut rows: Vec<u32> = candidates
        .filter(|&r| org_ok(r))
        .take(query.limit + 1)
        .collect();
    let continues = rows.len() > query.limit;
    rows.truncate(query.limit);
    (rows, continues)
}

/// A cellular link as Hologram lists it. Typed, not a `serde_json::Value`: a page of 1,000
/// devices is served many times a second in benchmarks, and building Values dominated.
#[derive(Serialize)]
struct LinkView {
    id: u64,
    deviceid: u64,
    sim: String,
    msisdn: String,
    imsi: String,
    planid: u32,
    zone: &'static str,
    state: &'static str,
    whenclaimed: &'static str,
    whenexpires: &'static str,
}

/// A device tag as Hologram lists it.
#[derive(Serialize)]
struct TagView<'a> {
    id: u64,
    name: &'a str,
}

/// A device's links.
#[derive(Serialize)]
struct LinksView {
    cellular: [LinkView; 1],
}

/// A device as Hologram lists it.
#[derive(Serialize)]
struct DeviceView<'a> {
    id: u64,
    orgid: u64,
    name: String,
    imei: String,
    iccid: String,
    tags: Vec<TagView<'a>>,
    links: LinksView,
}

/// A list route's answer.
#[derive(Serialize)]
struct ListEnvelope<T> {
    success: bool,
    size: usize,
    limit: usize,
    continues: bool,
    data: Vec<T>,
}

/// A link as Hologram lists it; a change in flight shows as `PAUSE-PENDING` / `LIVE-PENDING`.
fn link_view(fleet: &Fleet, row: u32) -> LinkView {
    let sim = fleet.sim(row);
    let state = match sim.pending {
        Some(p) if p.to == Target::Pause => "PAUSE-PENDING",
        Some(_) => "LIVE-PENDING",
        None => sim.state.hologram_name(),
    };
    LinkView {
        id: link_id(row),
        deviceid: device_id(row),
        sim: sim.iccid.to_string(),
        msisdn: format!("88234{:010}", row),
        imsi: format!("29505{:010}", row),
        planid: 1,
        zone: "global",
        state,
        whenclaimed: "2025-01-01 00:00:00",
        whenexpires: "2030-01-01 00:00:00",
    }
}

/// A device with its tags and its one cellular link.
fn device_view(fleet: &Fleet, row: u32) -> DeviceView<'_> {
    let sim = fleet.sim(row);
    DeviceView {
        id: device_id(row),
        orgid: sim.org_id,
        name: format!("device-{}", device_id(row)),
        imei: format!("35209900{:07}", row),
        iccid: sim.iccid.to_string(),
        tags: sim
            .tags
            .iter()
            .map(|&t| TagView {
                id: u64::from(t) + 1,
                name: fleet.tag_name(t),
            })
            .collect(),
        links: LinksView {
            cellular: [link_view(fleet, row)],
        },
    }
}

/// Serialises a page while the world is still borrowed (the views borrow tag names).
fn list_envelope<T: Serialize>(rows: Vec<T>, limit: usize, continues: bool) -> Response {
    json_response(
        StatusCode::OK,
        ListEnvelope {
            success: true,
            size: rows.len(),
            limit,
            continues,
            data: rows,
        },
    )
}

async fn list_devices(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let (world, _) = state.world();
    let query = list_query(&world.fleet, &params)?;
    let (rows, continues) = page(&world.fleet, &query, device_id);
    let data: Vec<DeviceView> = rows.iter().map(|&r| device_view(&world.fleet, r)).collect();
    Ok(list_envelope(data, query.limit, continues))
}

async fn list_links(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let (world, _) = state.world();
    let query = list_query(&world.fleet, &params)?;
    let (rows, continues) = page(&world.fleet, &query, link_id);
    let data: Vec<LinkView> = rows.iter().map(|&r| link_view(&world.fleet, r)).collect();
    drop(world);
    Ok(list_envelope(data, query.limit, continues))
}

async fn get_device(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let (world, _) = state.world();
    match id.parse().ok().and_then(|id| world.fleet.row_of_device(id)) {
        Some(row) => Ok(json_response(
            StatusCode::OK,
            json!({"success": true, "data": device_view(&world.fleet, row)}),
        )),
        None => Err(DIALECT.error(StatusCode::NOT_FOUND, format!("device {id} not found"))),
    }
}

/// Reads `{"state": "pause" | "live"}`.
fn target_of(body: &Value) -> Result<Target, ApiError> {
    match body.get("state").and_then(Value::as_str) {
        Some("pause") => Ok(Target::Pause),
        Some("live") => Ok(Target::Live),
        Some(other) => Err(bad_request(format!(
            "state {other:?} is not valid: use \"pause\" or \"live\""
        ))),
        None => Err(bad_request("state is required: \"pause\" or \"live\"")),
    }
}

async fn change_one(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let body = parse_json(&body).map_err(bad_request)?;
    let target = target_of(&body)?;
    let Ok(device) = id.parse::<u64>() else {
        return Err(DIALECT.error(StatusCode::NOT_FOUND, format!("device {id} not found")));
    };
    let (mut world, now) = state.world();
    if world.fleet.row_of_device(device).is_none() {
        return Err(DIALECT.error(StatusCode::NOT_FOUND, format!("device {device} not found")));
    }
    let org = param_u64(&params, "orgid").ok().flatten();
    let out = world.submit_hologram(&[device], target, org, now);
    match out.invalid.first() {
        Some((_, reason)) => {
            Err(DIALECT.error(StatusCode::CONFLICT, format!("device {device}: {reason}")))
        }
        None => Ok(json_response(
            StatusCode::OK,
            json!({"success": true, "data": {"jobid": out.job_id}}),
        )),
    }
}

async fn change_batch(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let body = parse_json(&body).map_err(bad_request)?;
    let target = target_of(&body)?;
    let Some(ids) = body.get("deviceids").and_then(Value::as_array) else {
        return Err(bad_request("deviceids is required: a list of device ids"));
    };
    if ids.is_empty() {
        return Err(bad_request(
            "deviceids is empty: list at least one device id",
        ));
    }
    let max = state.config.max_bulk;
    if ids.len() > max {
        return Err(bad_request(format!(
            "too many devices: {} in one request, at most {max} per bulk action; split the change",
            ids.len()
        )));
    }
    let mut devices = Vec::with_capacity(ids.len());
    let mut seen = HashSet::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let Some(id) = id.as_u64() else {
            return Err(bad_request(format!(
                "deviceids[{i}] must be a positive integer, got {id}"
            )));
        };
        if !seen.insert(id) {
            return Err(bad_request(format!(
                "deviceids[{i}]: device {id} is listed twice"
            )));
        }
        devices.push(id);
    }
    let org = match body.get("orgid") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(org) => Some(org),
            None => {
                return Err(bad_request(format!(
                    "orgid must be a positive integer, got {v}"
                )));
            }
        },
    };
    let (mut world, now) = state.world();
    let out = world.submit_hologram(&devices, target, org, now);
    drop(world);
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": {
            "jobid": out.job_id,
            "accepted": out.accepted,
            "invalid": refused_json(&out.invalid),
        }}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_changes_show_as_pending_states() {
        let mut fleet = Fleet::seeded(&super::super::fleet::SeedConfig {
            sims: 2,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..Default::default()
        });
        fleet.sim_mut(0).pending = Some(super::super::fleet::Pending {
            to: Target::Pause,
            job: 0,
        });
        assert_eq!(link_view(&fleet, 0).state, "PAUSE-PENDING");
        assert_eq!(
            link_view(&fleet, 1).state,
            super::super::fleet::LinkState::Live.hologram_name()
        );
    }
}
