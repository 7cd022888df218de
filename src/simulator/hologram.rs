//! Hologram's REST API v1 (`/api/1`), as its documents describe it: basic auth with the `apikey`
//! user (or `?apikey=`), the `{"success", "data"}` envelope, keyset paging (`continues` only
//! while more follow, `links.next`, `lastid`), the single- and multi-value filters, single and
//! bulk device state changes (job id, `preview`, `valid_tasks` warnings), the plain multi-device
//! route, and the bulk jobs list. Where the documents disagree, [`HologramVariants`] picks.

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
use super::world::{Job, JobKind, Surface, hologram_state_name};
use super::{HologramVariants, JobIdShape, JobsRoute, OrgIdPlacement, TagShape, WarningShape};

const DIALECT: Dialect = Dialect::Hologram;
/// Default page size of list routes.
const DEFAULT_LIMIT: usize = 25;
/// Largest page a list route serves.
pub const MAX_LIMIT: usize = 1000;
/// Most jobs one page of the jobs list shows.
const JOBS_PAGE: usize = 100;

/// The Hologram routes.
pub fn routes() -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/api/1/devices", get(list_devices))
        .route("/api/1/devices/{id}", get(get_device))
        .route("/api/1/devices/{id}/state", post(change_one))
        .route("/api/1/devices/state", post(change_many))
        .route(
            "/api/1/devices/batch/state",
            post(change_batch).get(list_jobs),
        )
        .route("/api/1/links/cellular", get(list_links))
        .route("/api/1/links/cellular/{linkid}/state", post(change_link))
        .route("/api/1/links/cellular/{linkid}/history", get(link_history))
        .route("/api/1/devices/tags", get(list_tags).post(create_tag))
        .route(
            "/api/1/devices/tags/{tagid}",
            axum::routing::delete(delete_tag),
        )
        .route("/api/1/devices/tags/{tagid}/link", post(link_tag))
        .route("/api/1/devices/tags/{tagid}/unlink", post(unlink_tag))
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
        .map_err(|wait| too_many_requests(DIALECT, state.config.retry_after_header.then_some(wait)))
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

/// A comma-separated list of numbers (`ids=1,2,3`).
fn param_u64_list(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Vec<u64>>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u64>().map_err(|_| {
                        bad_request(format!(
                            "{name} must be comma-separated positive integers, got {s:?}"
                        ))
                    })
                })
                .collect()
        })
        .transpose()
}

/// The filters and page of a list request.
struct ListQuery {
    orgs: Option<Vec<u64>>,
    tag: TagFilter,
    /// Rows named by id, ICCID or device (single- or multi-value filters), ascending.
    only_rows: Option<Vec<u32>>,
    limit: usize,
    start_after: Option<u64>,
}

enum TagFilter {
    Any,
    Tag(u16),
    /// A tag no SIM carries: nothing matches.
    Nothing,
}

/// Which id a list route's records have (and page by).
#[derive(Clone, Copy)]
enum Listed {
    Devices,
    Links,
}

impl Listed {
    fn id_of(self, row: u32) -> u64 {
        match self {
            Listed::Devices => device_id(row),
            Listed::Links => link_id(row),
        }
    }

    fn row_of(self, fleet: &Fleet, id: u64) -> Option<u32> {
        match self {
            Listed::Devices => fleet.row_of_device(id),
            Listed::Links => fleet.row_of_link(id),
        }
    }
}

fn list_query(
    fleet: &Fleet,
    params: &HashMap<String, String>,
    listed: Listed,
) -> Result<ListQuery, ApiError> {
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
    // Every id filter narrows to the rows it names; several filters intersect.
    let mut named: Option<HashSet<u32>> = None;
    let mut narrow = |rows: Vec<Option<u32>>| {
        let rows: HashSet<u32> = rows.into_iter().flatten().collect();
        named = Some(match named.take() {
            Some(before) => before.intersection(&rows).copied().collect(),
            None => rows,
        });
    };
    let one_or_many = |single: &str, multi: &str| -> Result<Option<Vec<u64>>, ApiError> {
        let mut values = param_u64(params, single)?.map(|v| vec![v]);
        if let Some(list) = param_u64_list(params, multi)? {
            values.get_or_insert_with(Vec::new).extend(list);
        }
        Ok(values)
    };
    if let Some(ids) = one_or_many("id", "ids")? {
        narrow(ids.iter().map(|&id| listed.row_of(fleet, id)).collect());
    }
    let mut iccids: Vec<&str> = params.get("sim").map(String::as_str).into_iter().collect();
    if let (Listed::Links, Some(list)) = (listed, params.get("sims")) {
        iccids.extend(list.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    if !iccids.is_empty() {
        narrow(iccids.iter().map(|i| fleet.row_of_iccid(i)).collect());
    }
    let devices = match listed {
        Listed::Links => one_or_many("deviceid", "deviceids")?,
        Listed::Devices => None,
    };
    if let Some(devices) = devices {
        narrow(devices.iter().map(|&d| fleet.row_of_device(d)).collect());
    }
    if let (Listed::Devices, Some(link)) = (listed, param_u64(params, "linkid")?) {
        narrow(vec![fleet.row_of_link(link)]);
    }
    let only_rows = named.map(|rows| {
        let mut rows: Vec<u32> = rows.into_iter().collect();
        rows.sort_unstable();
        rows
    });
    let mut orgs = param_u64(params, "orgid")?.map(|o| vec![o]);
    if let (Listed::Devices, Some(list)) = (listed, param_u64_list(params, "orgids")?) {
        orgs.get_or_insert_with(Vec::new).extend(list);
    }
    Ok(ListQuery {
        orgs,
        tag,
        only_rows,
        limit,
        start_after: param_u64(params, "startafter")?,
    })
}

/// Rows of one page (ascending by id) and whether more follow.
fn page(fleet: &Fleet, query: &ListQuery, listed: Listed) -> (Vec<u32>, bool) {
    let from = match query.start_after {
        Some(after) => match after.checked_sub(listed.id_of(0)) {
            Some(offset) => u32::try_from(offset + 1).unwrap_or(u32::MAX),
            None => 0,
        },
        None => 0,
    };
    let org_ok = |row: u32| {
        query
            .orgs
            .as_ref()
            .is_none_or(|orgs| orgs.contains(&fleet.sim(row).org_id))
    };
    let tag_ok = |row: u32| match query.tag {
        TagFilter::Any => true,
        TagFilter::Tag(t) => fleet.sim(row).tags.contains(&t),
        TagFilter::Nothing => false,
    };
    let candidates: Box<dyn Iterator<Item = u32>> = match (&query.only_rows, &query.tag) {
        (Some(rows), _) => Box::new(
            rows.iter()
                .copied()
                .filter(move |&r| r >= from)
                .filter(move |&r| tag_ok(r)),
        ),
        (None, TagFilter::Nothing) => Box::new(std::iter::empty()),
        (None, TagFilter::Tag(t)) => fleet.rows_from(Some(*t), from),
        (None, TagFilter::Any) => fleet.rows_from(None, from),
    };
    let has_link = |row: u32| matches!(listed, Listed::Devices) || fleet.sim(row).has_sim;
    let mut rows: Vec<u32> = candidates
        .filter(|&r| org_ok(r) && has_link(r))
        .take(query.limit + 1)
        .collect();
    let continues = rows.len() > query.limit;
    rows.truncate(query.limit);
    (rows, continues)
}

/// A cellular link's plan, as the newer pages show it.
#[derive(Serialize)]
struct PlanView {
    id: u32,
    zone: u32,
    name: &'static str,
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
    state: &'static str,
    whenclaimed: &'static str,
    whenexpires: &'static str,
    plan: PlanView,
}

/// A device tag as the API Blueprint shows it (the newer pages show the name alone).
#[derive(Serialize)]
#[serde(untagged)]
enum TagView<'a> {
    Object { id: u64, name: &'a str },
    Name(&'a str),
}

/// A device's links (none when no SIM is assigned).
#[derive(Serialize)]
struct LinksView {
    cellular: Vec<LinkView>,
}

/// A device as Hologram lists it: no top-level ICCID (it is `links.cellular[].sim`).
#[derive(Serialize)]
struct DeviceView<'a> {
    id: u64,
    orgid: u64,
    name: String,
    imei: String,
    tags: Vec<TagView<'a>>,
    links: LinksView,
}

/// The paging links of a list answer.
#[derive(Serialize)]
struct PageLinks {
    path: String,
    base: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A list route's answer: `continues` only while more follow (a missing one means the last
/// page), `links.next` and `lastid` for the next page.
#[derive(Serialize)]
struct ListEnvelope<T> {
    success: bool,
    limit: usize,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    continues: Option<bool>,
    links: PageLinks,
    #[serde(skip_serializing_if = "Option::is_none")]
    lastid: Option<u64>,
    data: Vec<T>,
}

/// A link as Hologram lists it; a change in flight shows as `PAUSED-PENDING-USER` or
/// `LIVE-PENDING`.
fn link_view(fleet: &Fleet, row: u32) -> LinkView {
    let sim = fleet.sim(row);
    LinkView {
        id: link_id(row),
        deviceid: device_id(row),
        sim: sim.iccid.to_string(),
        msisdn: format!("88234{:010}", row),
        imsi: format!("29505{:010}", row),
        state: hologram_state_name(sim),
        whenclaimed: "2025-01-01 00:00:00",
        whenexpires: "2030-01-01 00:00:00",
        plan: PlanView {
            id: 1,
            zone: 1,
            name: "Flexible",
        },
    }
}

/// A device with its tags and its one cellular link.
fn device_view(fleet: &Fleet, row: u32, tags: TagShape) -> DeviceView<'_> {
    let sim = fleet.sim(row);
    DeviceView {
        id: device_id(row),
        orgid: sim.org_id,
        name: format!("device-{}", device_id(row)),
        imei: format!("35209900{:07}", row),
        tags: sim
            .tags
            .iter()
            .map(|&t| match tags {
                TagShape::Objects => TagView::Object {
                    id: u64::from(t) + 1,
                    name: fleet.tag_name(t),
                },
                TagShape::Strings => TagView::Name(fleet.tag_name(t)),
            })
            .collect(),
        links: LinksView {
            cellular: if sim.has_sim {
                vec![link_view(fleet, row)]
            } else {
                Vec::new()
            },
        },
    }
}

/// Serialises a page while the world is still borrowed (the views borrow tag names).
fn list_envelope<T: Serialize>(
    rows: Vec<T>,
    last: Option<u64>,
    query: &ListQuery,
    continues: bool,
    next: impl FnOnce(u64) -> String,
    path: &str,
) -> Response {
    json_response(
        StatusCode::OK,
        ListEnvelope {
            success: true,
            limit: query.limit,
            size: rows.len(),
            continues: continues.then_some(true),
            links: PageLinks {
                path: path.to_owned(),
                base: "/api/1".into(),
                next: last.filter(|_| continues).map(next),
            },
            lastid: last,
            data: rows,
        },
    )
}

/// The URL of the page after `last`: the same query with `startafter` moved on.
fn next_url(
    headers: &HeaderMap,
    path: &str,
    params: &HashMap<String, String>,
) -> impl FnOnce(u64) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "startafter" && k.as_str() != "apikey")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort();
    let path = path.to_owned();
    move |last| {
        pairs.push(("startafter".into(), last.to_string()));
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("http://{host}{path}?{}", query.join("&"))
    }
}

async fn list_devices(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let tags = state.config.hologram.tags;
    let (world, _) = state.world();
    let query = list_query(&world.fleet, &params, Listed::Devices)?;
    let (rows, continues) = page(&world.fleet, &query, Listed::Devices);
    let last = rows.last().map(|&r| device_id(r));
    let data: Vec<DeviceView> = rows
        .iter()
        .map(|&r| device_view(&world.fleet, r, tags))
        .collect();
    let path = "/api/1/devices";
    Ok(list_envelope(
        data,
        last,
        &query,
        continues,
        next_url(&headers, path, &params),
        path,
    ))
}

async fn list_links(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let (world, _) = state.world();
    let query = list_query(&world.fleet, &params, Listed::Links)?;
    let (rows, continues) = page(&world.fleet, &query, Listed::Links);
    let last = rows.last().map(|&r| link_id(r));
    let data: Vec<LinkView> = rows.iter().map(|&r| link_view(&world.fleet, r)).collect();
    drop(world);
    let path = "/api/1/links/cellular";
    Ok(list_envelope(
        data,
        last,
        &query,
        continues,
        next_url(&headers, path, &params),
        path,
    ))
}

async fn get_device(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let tags = state.config.hologram.tags;
    let (world, _) = state.world();
    match id.parse().ok().and_then(|id| world.fleet.row_of_device(id)) {
        Some(row) => Ok(json_response(
            StatusCode::OK,
            json!({"success": true, "data": device_view(&world.fleet, row, tags)}),
        )),
        None => Err(DIALECT.error(StatusCode::NOT_FOUND, format!("device {id} not found"))),
    }
}

/// Reads `{"state": "pause" | "live" | "deactivate"}` (`deactivate` is permanent).
fn target_of(body: &Value) -> Result<Target, ApiError> {
    match body.get("state").and_then(Value::as_str) {
        Some("pause") => Ok(Target::Pause),
        Some("live") => Ok(Target::Live),
        Some("deactivate") => Ok(Target::Deactivate),
        Some(other) => Err(bad_request(format!(
            "state {other:?} is not valid: use \"pause\", \"live\" or \"deactivate\""
        ))),
        None => Err(bad_request(
            "state is required: \"pause\", \"live\" or \"deactivate\"",
        )),
    }
}

/// The state name a change leads to while in flight (the bulk answer's `newstate`).
fn new_state(target: Target) -> &'static str {
    match target {
        Target::Pause => "PAUSED-PENDING-USER",
        Target::Live => "LIVE-PENDING",
        Target::Deactivate => "DEAD",
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
            json!({"success": true, "data": {"newstate": new_state(target)}}),
        )),
    }
}

/// The device ids of a state change body (`deviceids`: at most the bulk limit, no repeats).
fn device_ids_of(body: &Value, max: usize) -> Result<Vec<u64>, ApiError> {
    if body.get("deviceFilters").is_some() && body.get("deviceids").is_none() {
        return Err(bad_request(
            "deviceFilters is not served by the simulator: list deviceids",
        ));
    }
    let Some(ids) = body.get("deviceids").and_then(Value::as_array) else {
        return Err(bad_request("deviceids is required: a list of device ids"));
    };
    if ids.is_empty() {
        return Err(bad_request(
            "deviceids is empty: list at least one device id",
        ));
    }
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
    Ok(devices)
}

/// The organisation a bulk request names: in the body, or (`OrgIdPlacement::Query`) in a
/// required query parameter.
fn org_of(
    body: &Value,
    params: &HashMap<String, String>,
    placement: OrgIdPlacement,
) -> Result<Option<u64>, ApiError> {
    let query = param_u64(params, "orgid")?;
    match placement {
        OrgIdPlacement::Query => query.map(Some).ok_or_else(|| {
            bad_request("orgid is a required query parameter of /devices/batch/state")
        }),
        OrgIdPlacement::Body => match body.get("orgid") {
            None | Some(Value::Null) => Ok(query),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad_request(format!("orgid must be a positive integer, got {v}"))),
        },
    }
}

/// A job id in the shape the variant says.
fn job_id_json(id: &str, shape: JobIdShape) -> Value {
    match (shape, id.parse::<u64>()) {
        (JobIdShape::Number, Ok(n)) => json!(n),
        _ => json!(id),
    }
}

async fn change_batch(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let variants: HologramVariants = state.config.hologram;
    let body = parse_json(&body).map_err(bad_request)?;
    let target = target_of(&body)?;
    let devices = device_ids_of(&body, state.config.max_bulk)?;
    let org = org_of(&body, &params, variants.orgid)?;
    if body.get("preview").and_then(Value::as_bool) == Some(true)
        || params
            .get("preview")
            .is_some_and(|p| p == "1" || p == "true")
    {
        return Err(bad_request(
            "preview is not served by the simulator: send the change itself",
        ));
    }
    let (mut world, now) = state.world();
    let out = world.submit_hologram(&devices, target, org, now);
    let warnings: Vec<Value> = out
        .invalid
        .iter()
        .map(|(device, reason)| {
            let linkid = world.fleet.row_of_device(*device).map(link_id);
            match variants.warnings {
                WarningShape::Objects => {
                    json!({"deviceid": device, "linkid": linkid, "message": reason})
                }
                WarningShape::Strings => json!(format!("device {device}: {reason}")),
            }
        })
        .collect();
    drop(world);
    let jobid = out
        .job_id
        .as_deref()
        .map_or(Value::Null, |id| job_id_json(id, variants.jobid));
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": {
            "jobid": jobid,
            "preview": false,
            "valid_tasks": [{"task_results": {
                "warnings": warnings,
                "devices_modified": out.accepted,
                "profiles_modified": 0,
                "newstate": new_state(target),
            }}],
        }}),
    ))
}

/// `POST /devices/state`: the same change without a job id in the answer.
async fn change_many(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let body = parse_json(&body).map_err(bad_request)?;
    let target = target_of(&body)?;
    let devices = device_ids_of(&body, state.config.max_bulk)?;
    let org = org_of(&body, &params, OrgIdPlacement::Body)?;
    let (mut world, now) = state.world();
    world.submit_hologram(&devices, target, org, now);
    Ok(json_response(StatusCode::OK, json!({"success": true})))
}

/// The row of a link id in the path, or 404.
fn link_row(fleet: &Fleet, id: &str) -> Result<u32, ApiError> {
    id.parse()
        .ok()
        .and_then(|id| fleet.row_of_link(id))
        .filter(|&row| fleet.sim(row).has_sim)
        .ok_or_else(|| DIALECT.error(StatusCode::NOT_FOUND, format!("link {id} not found")))
}

/// `POST /links/cellular/{linkid}/state` (the older per-link route): `pause` or `live`.
async fn change_link(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let body = parse_json(&body).map_err(bad_request)?;
    let target = match target_of(&body)? {
        Target::Deactivate => {
            return Err(bad_request(
                "state \"deactivate\" is not taken here: use \"pause\" or \"live\"",
            ));
        }
        target => target,
    };
    let (mut world, now) = state.world();
    let row = link_row(&world.fleet, &id)?;
    let out = world.submit_hologram(&[device_id(row)], target, None, now);
    match out.invalid.first() {
        Some((_, reason)) => {
            Err(DIALECT.error(StatusCode::CONFLICT, format!("link {id}: {reason}")))
        }
        None => Ok(json_response(
            StatusCode::OK,
            json!({"success": true, "data": {"newstate": new_state(target)}}),
        )),
    }
}

/// `GET /links/cellular/{linkid}/history`: the link's state changes, oldest first.
async fn link_history(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let (world, _) = state.world();
    let row = link_row(&world.fleet, &id)?;
    let data: Vec<Value> = world
        .history_of(row)
        .map(|h| {
            json!({
                "id": h.id,
                "timestamp": h.at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                "linkid": link_id(h.row),
                "oldstate": h.old.hologram_name(),
                "newstate": h.new.hologram_name(),
                "reason": "USER",
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": data}),
    ))
}

/// A device tag as Hologram shows it: `{id, name, deviceids}`.
fn tag_json(fleet: &Fleet, tag: u16) -> Value {
    json!({
        "id": u64::from(tag) + 1,
        "name": fleet.tag_name(tag),
        "deviceids": fleet.tag_rows(tag).iter().map(|&r| device_id(r)).collect::<Vec<_>>(),
    })
}

/// The tag of a tag id in the path, or 404.
fn tag_of(fleet: &Fleet, id: &str) -> Result<u16, ApiError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| u16::try_from(id.checked_sub(1)?).ok())
        .filter(|&t| fleet.tag_exists(t))
        .ok_or_else(|| DIALECT.error(StatusCode::NOT_FOUND, format!("tag {id} not found")))
}

/// The rows of a body's `deviceids`, or 400 naming the unknown one.
fn device_rows(fleet: &Fleet, body: &Value) -> Result<Vec<u32>, ApiError> {
    let ids = device_ids_of(body, usize::MAX)?;
    ids.iter()
        .map(|&id| {
            fleet
                .row_of_device(id)
                .ok_or_else(|| bad_request(format!("device {id} not found")))
        })
        .collect()
}

/// `GET /devices/tags{?orgid,id,deviceids,limit}`.
async fn list_tags(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let only = param_u64(&params, "id")?;
    let devices = param_u64_list(&params, "deviceids")?;
    let limit = param_u64(&params, "limit")?.unwrap_or(u64::MAX) as usize;
    let (world, _) = state.world();
    let fleet = &world.fleet;
    let data: Vec<Value> = (0..fleet.tag_count() as u16)
        .filter(|&t| fleet.tag_exists(t))
        .filter(|&t| only.is_none_or(|id| id == u64::from(t) + 1))
        .filter(|&t| {
            devices.as_ref().is_none_or(|ids| {
                ids.iter()
                    .filter_map(|&d| fleet.row_of_device(d))
                    .any(|row| fleet.sim(row).tags.contains(&t))
            })
        })
        .take(limit)
        .map(|t| tag_json(fleet, t))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": data}),
    ))
}

/// `POST /devices/tags {name, deviceids?}`: creates a tag (or names the existing one).
async fn create_tag(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let body = parse_json(&body).map_err(bad_request)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && !n.contains(','))
        .ok_or_else(|| bad_request("name is required: a tag name without commas"))?;
    let (mut world, _) = state.world();
    let rows = match body.get("deviceids") {
        Some(_) => device_rows(&world.fleet, &body)?,
        None => Vec::new(),
    };
    let tag = world
        .fleet
        .create_tag(name)
        .ok_or_else(|| bad_request("too many tags"))?;
    for row in rows {
        world.fleet.link_tag(tag, row);
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": tag_json(&world.fleet, tag)}),
    ))
}

/// Links or unlinks a tag to the body's devices.
async fn relink_tag(
    state: Arc<SimulatorState>,
    headers: HeaderMap,
    id: String,
    params: HashMap<String, String>,
    body: Bytes,
    link: bool,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let body = parse_json(&body).map_err(bad_request)?;
    let (mut world, _) = state.world();
    let tag = tag_of(&world.fleet, &id)?;
    for row in device_rows(&world.fleet, &body)? {
        if link {
            world.fleet.link_tag(tag, row);
        } else {
            world.fleet.unlink_tag(tag, row);
        }
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": tag_json(&world.fleet, tag)}),
    ))
}

async fn link_tag(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    relink_tag(state, headers, id, params, body, true).await
}

async fn unlink_tag(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    relink_tag(state, headers, id, params, body, false).await
}

/// `DELETE /devices/tags/{tagid}`: the tag goes, and with it from every device.
async fn delete_tag(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    let (mut world, _) = state.world();
    let tag = tag_of(&world.fleet, &id)?;
    world.fleet.delete_tag(tag);
    Ok(json_response(StatusCode::OK, json!({"success": true})))
}

/// A job as the jobs list shows it. Hologram documents the fields but not the `status` values:
/// the simulator says `PROCESSING` until every device has changed, then `COMPLETED`.
fn task_json(job: &Job, shape: JobIdShape) -> Value {
    let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S").to_string();
    json!({
        "job_id": job_id_json(&job.id, shape),
        "timestamp_start": time(job.submitted_at),
        "timestamp_end": job.finished_at.map(time),
        "device_count": job.sims,
        "action": match job.kind {
            JobKind::Pause => "pause",
            JobKind::Deactivate => "deactivate",
            _ => "live",
        },
        "status": if job.finished_at.is_some() { "COMPLETED" } else { "PROCESSING" },
        "source": "api",
    })
}

/// `GET /devices/batch/state`: the organisation's bulk jobs, newest first (403 without activity
/// history).
async fn list_jobs(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    authorize(&state, &headers, &params)?;
    if state.config.hologram.jobs == JobsRoute::Forbidden {
        return Err(DIALECT.error(
            StatusCode::FORBIDDEN,
            "your organization's plan does not include activity history",
        ));
    }
    let start_after = param_u64(&params, "startafter")?;
    let shape = state.config.hologram.jobid;
    let (world, _) = state.world();
    let jobs: Vec<&Job> = world
        .jobs
        .iter()
        .rev()
        .filter(|j| j.surface == Surface::Hologram)
        .filter(|j| start_after.is_none_or(|after| j.id.parse::<u64>().is_ok_and(|id| id < after)))
        .collect();
    let total = world
        .jobs
        .iter()
        .filter(|j| j.surface == Surface::Hologram)
        .count();
    let page: Vec<Value> = jobs
        .iter()
        .take(JOBS_PAGE)
        .map(|j| task_json(j, shape))
        .collect();
    let more = jobs.len() > JOBS_PAGE;
    let next = jobs
        .get(JOBS_PAGE - 1)
        .filter(|_| more)
        .map(|j| job_id_json(&j.id, shape));
    Ok(json_response(
        StatusCode::OK,
        json!({"success": true, "data": {
            "tasks": page,
            "startAfterIds": next,
            "totalPages": total.div_ceil(JOBS_PAGE).max(1),
            "totalTasks": total,
        }}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_changes_show_with_hologram_s_documented_pending_names() {
        let mut fleet = Fleet::seeded(&super::super::fleet::SeedConfig {
            sims: 3,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..Default::default()
        });
        for (row, to) in [(0, Target::Pause), (1, Target::Live)] {
            fleet.sim_mut(row).pending = Some(super::super::fleet::Pending { to, job: 0 });
        }
        assert_eq!(link_view(&fleet, 0).state, "PAUSED-PENDING-USER");
        assert_eq!(link_view(&fleet, 1).state, "LIVE-PENDING");
        assert_eq!(link_view(&fleet, 2).state, "LIVE");
    }
}
