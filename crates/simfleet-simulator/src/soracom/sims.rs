//! Soracom's SIM routes: `GET /v1/sims` (no filters), `GET /v1/subscribers` (tag, status and
//! limit filters, one row per IMSI), `GET /v1/query/sims` (partial, case-insensitive, from a
//! lagging index), `GET /v1/sims/{sim_id}`, the synchronous state routes answering with the SIM,
//! and `set_expiry_time` / `unset_expiry_time`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::state::{OPERATOR_ID, SoracomWorld, Status};
use super::{DIALECT, SameState, bad_request, limit_of, not_found, paged};
use crate::fleet::Fleet;
use crate::http::{Answer, ApiError, SimulatorState, json_response, parse_json};
use crate::world::{ChangeCounters, World};

type Params = Query<HashMap<String, String>>;

/// Page size of `/v1/sims` without `limit`, and the most it serves (Soracom states neither).
const SIMS_DEFAULT_LIMIT: usize = 100;
const SIMS_MAX_LIMIT: usize = 100;
/// `/v1/subscribers`: 1 to 100 [doc A].
const SUBSCRIBERS_MAX_LIMIT: usize = 100;
/// `/v1/query/*`: default 10, at most 100 [doc A].
const QUERY_DEFAULT_LIMIT: usize = 10;

/// The state routes and the status each leads to.
pub(super) fn route_target(action: &str) -> Option<Status> {
    Some(match action {
        "activate" => Status::Active,
        "deactivate" => Status::Inactive,
        "set_to_standby" => Status::Standby,
        "suspend" => Status::Suspended,
        "terminate" => Status::Terminated,
        _ => return None,
    })
}

/// What a state change answered: the status reached, or Soracom's error.
pub(super) type Outcome = Result<(), (StatusCode, String)>;

/// Applies a state change to a row at once, as Soracom does: `terminated` changes no more,
/// termination needs protection off, and a change to the current state answers as
/// `--soracom-same-state` says.
pub(super) fn apply(
    soracom: &mut SoracomWorld,
    fleet: &mut Fleet,
    counters: &mut ChangeCounters,
    row: u32,
    to: Status,
    same_state: SameState,
    now: Timestamp,
) -> Outcome {
    counters.submitted_sims += 1;
    let from = soracom.status(fleet, row);
    if from == Status::Terminated {
        counters.refused_sims += 1;
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "SIM {} is terminated: it can take no further changes",
                SoracomWorld::sim_id(row)
            ),
        ));
    }
    if to == Status::Terminated {
        counters.refused_sims += 1;
        return Err((
            StatusCode::BAD_REQUEST,
            "termination protection is on: enable termination first".into(),
        ));
    }
    if from == to {
        counters.redundant_sims += 1;
        return match same_state {
            SameState::Ok => Ok(()),
            SameState::Error => Err((
                StatusCode::BAD_REQUEST,
                format!("SIM is already {}", to.name()),
            )),
        };
    }
    soracom.set_status(fleet, row, to, now);
    counters.applied_sims += 1;
    Ok(())
}

/// Soracom's TagSet of a row: a flat map that always has `name`. A fleet tag `NAME=VALUE` is
/// Soracom tag NAME with VALUE; a tag without `=` has the empty value.
fn tags_of(fleet: &Fleet, row: u32) -> Map<String, Value> {
    let mut tags = Map::new();
    tags.insert("name".into(), json!(""));
    for tag in fleet.tag_names_of(row) {
        let (name, value) = tag.split_once('=').unwrap_or((tag, ""));
        tags.insert(name.to_owned(), json!(value));
    }
    tags
}

fn expiry_fields(world: &World, row: u32, now: Timestamp) -> (Value, Value) {
    match world.soracom.expiry(&world.fleet, row, now) {
        Some((ms, action)) => (json!(ms), json!(action)),
        None => (Value::Null, Value::Null),
    }
}

fn modified_ms(world: &World, row: u32, created: i64) -> i64 {
    world
        .soracom
        .extras
        .get(&row)
        .and_then(|e| e.modified_ms)
        .unwrap_or(created)
}

/// A row as Soracom's `Sim`: no top-level ICCID or IMSI; they sit under `profiles`.
pub(super) fn sim_json(world: &World, row: u32, now: Timestamp, created: i64) -> Value {
    let sim = world.fleet.sim(row);
    let status = world.soracom.status(&world.fleet, row).name();
    let iccid = sim.iccid.to_string();
    let imsi = SoracomWorld::imsi(row);
    let (expiry_time, expiry_action) = expiry_fields(world, row, now);
    json!({
        "simId": SoracomWorld::sim_id(row),
        "status": status,
        "type": "uicc",
        "moduleType": "nano",
        "speedClass": "s1.4xfast",
        "groupId": null,
        "tags": tags_of(&world.fleet, row),
        "expiryTime": expiry_time,
        "expiryAction": expiry_action,
        "terminationEnabled": false,
        "operatorId": OPERATOR_ID,
        "serialNumber": format!("SIM{row:09}"),
        "createdTime": created,
        "lastModifiedTime": modified_ms(world, row, created),
        "capabilities": {"data": true, "sms": true},
        "sessionStatus": {"online": false},
        "profiles": {
            iccid.clone(): {
                "iccid": iccid,
                "primaryImsi": imsi,
                "otaSupported": false,
                "subscribers": {
                    imsi.clone(): {
                        "imsi": imsi,
                        "msisdn": format!("81{:010}", row),
                        "status": status,
                        "subscription": "plan01s",
                        "bundles": [],
                        "capabilities": {"data": true, "sms": true},
                    }
                }
            }
        },
    })
}

/// A row as the older `Subscriber` (one per IMSI), with both spellings of its times.
fn subscriber_json(world: &World, row: u32, now: Timestamp, created: i64) -> Value {
    let sim = world.fleet.sim(row);
    let (expiry_time, expiry_action) = expiry_fields(world, row, now);
    let modified = modified_ms(world, row, created);
    json!({
        "imsi": SoracomWorld::imsi(row),
        "iccid": sim.iccid.to_string(),
        "msisdn": format!("81{:010}", row),
        "simId": SoracomWorld::sim_id(row),
        "subscription": "plan01s",
        "status": world.soracom.status(&world.fleet, row).name(),
        "speedClass": "s1.4xfast",
        "moduleType": "nano",
        "groupId": null,
        "tags": tags_of(&world.fleet, row),
        "expiryTime": expiry_time,
        "expiredAt": expiry_time,
        "expiryAction": expiry_action,
        "terminationEnabled": false,
        "operatorId": OPERATOR_ID,
        "serialNumber": format!("SIM{row:09}"),
        "apn": "soracom.io",
        "ipAddress": null,
        "plan": 1,
        "createdTime": created,
        "createdAt": created,
        "lastModifiedTime": modified,
        "lastModifiedAt": modified,
        "sessionStatus": {"online": false},
    })
}

fn created_ms(state: &SimulatorState) -> i64 {
    state
        .config
        .start_time
        .unwrap_or_else(|| state.clock.now())
        .as_millisecond()
        - 86_400_000 * 30
}

/// A page of at most `limit` rows out of `limit + 1` read, and its last row when more follow
/// (the row whose key is the next page's `last_evaluated_key`).
fn split_page(rows: &[u32], limit: usize) -> (&[u32], Option<u32>) {
    let page = &rows[..rows.len().min(limit)];
    let last = (rows.len() > limit).then(|| *page.last().expect("a full page"));
    (page, last)
}

/// The key after which a page starts: the row after it (keys are ids that grow with rows).
fn start_row(
    params: &HashMap<String, String>,
    row_of: impl Fn(&str) -> Option<u64>,
) -> Result<u32, ApiError> {
    match params.get("last_evaluated_key") {
        None => Ok(0),
        Some(key) if key.is_empty() => Ok(0),
        Some(key) => row_of(key)
            .and_then(|r| u32::try_from(r + 1).ok())
            .ok_or_else(|| {
                bad_request(format!(
                    "last_evaluated_key {key:?} is not a key this listing gave"
                ))
            }),
    }
}

/// `GET /v1/sims?limit&last_evaluated_key`: every SIM, by SIM id.
pub(super) async fn list_sims(
    State(state): State<Arc<SimulatorState>>,
    OriginalUri(uri): OriginalUri,
    Query(params): Params,
) -> Answer {
    let limit = limit_of(&params, SIMS_DEFAULT_LIMIT, SIMS_MAX_LIMIT)?;
    let from = start_row(&params, |k| {
        k.parse::<u64>()
            .ok()?
            .checked_sub(super::state::SIM_ID_BASE)
    })?;
    let created = created_ms(&state);
    let (world, now) = state.world();
    let rows: Vec<u32> = world
        .fleet
        .rows_from(None, from)
        .filter(|&r| world.fleet.sim(r).has_sim)
        .take(limit + 1)
        .collect();
    let (page, last) = split_page(&rows, limit);
    let body: Vec<Value> = page
        .iter()
        .map(|&r| sim_json(&world, r, now, created))
        .collect();
    let next = last.map(SoracomWorld::sim_id);
    Ok(paged(json!(body), next, &uri))
}

/// `GET /v1/sims/{sim_id}`.
pub(super) async fn get_sim(
    State(state): State<Arc<SimulatorState>>,
    Path(sim_id): Path<String>,
) -> Answer {
    let created = created_ms(&state);
    let (world, now) = state.world();
    let row = SoracomWorld::row_of_sim_id(&world.fleet, &sim_id)
        .ok_or_else(|| not_found(format!("no SIM {sim_id}")))?;
    Ok(json_response(
        StatusCode::OK,
        sim_json(&world, row, now, created),
    ))
}

/// `POST /v1/sims/{sim_id}/{activate|deactivate|set_to_standby|suspend|terminate}` (a body is
/// optional: clients send none or `{}`): 200 with the SIM after the change; `set_expiry_time`
/// and `unset_expiry_time` are served here too.
pub(super) async fn change_sim(
    State(state): State<Arc<SimulatorState>>,
    Path((sim_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let created = created_ms(&state);
    let (mut world, now) = state.world();
    let row = SoracomWorld::row_of_sim_id(&world.fleet, &sim_id)
        .ok_or_else(|| not_found(format!("no SIM {sim_id}")))?;
    let world_ref = &mut *world;
    match action.as_str() {
        "set_expiry_time" => set_expiry(world_ref, row, &body, now)?,
        "unset_expiry_time" => {
            let extra = world_ref.soracom.extras.entry(row).or_default();
            if extra.expiry.take().is_none() {
                return Err(not_found(format!("SIM {sim_id} has no expiry time set")));
            }
        }
        other => {
            let to = route_target(other)
                .ok_or_else(|| not_found(format!("no route /v1/sims/{{sim_id}}/{other}")))?;
            apply(
                &mut world_ref.soracom,
                &mut world_ref.fleet,
                &mut world_ref.counters,
                row,
                to,
                state.config.soracom.same_state,
                now,
            )
            .map_err(|(status, message)| DIALECT.error(status, message))?;
        }
    }
    Ok(json_response(
        StatusCode::OK,
        sim_json(&world, row, now, created),
    ))
}

/// `set_expiry_time` `{expiryTime (ms, required), expiryAction}`.
fn set_expiry(world: &mut World, row: u32, body: &Bytes, now: Timestamp) -> Result<(), ApiError> {
    let body = parse_json(body).map_err(bad_request)?;
    let Some(ms) = body.get("expiryTime").and_then(Value::as_i64) else {
        return Err(bad_request(
            "expiryTime (UNIX time in milliseconds) is required",
        ));
    };
    let action = match body.get("expiryAction") {
        None | Some(Value::Null) => None,
        Some(Value::String(a))
            if [
                "doNothing",
                "deleteSession",
                "deactivate",
                "suspend",
                "terminate",
            ]
            .contains(&a.as_str()) =>
        {
            Some(a.clone())
        }
        Some(other) => {
            return Err(bad_request(format!(
                "expiryAction must be doNothing, deleteSession, deactivate, suspend or terminate, got {other}"
            )));
        }
    };
    let extra = world.soracom.extras.entry(row).or_default();
    extra.expiry = Some((ms, action));
    extra.modified_ms = Some(now.as_millisecond());
    Ok(())
}

/// The rows `tag_name`/`tag_value` select: exact, or by value prefix.
fn tagged_rows(fleet: &Fleet, name: &str, value: &str, prefix: bool) -> BTreeSet<u32> {
    let mut rows = BTreeSet::new();
    if !prefix {
        if let Some(tag) = fleet.tag_id(&format!("{name}={value}")) {
            rows.extend(fleet.tag_rows(tag).iter().copied());
        }
        if value.is_empty()
            && let Some(tag) = fleet.tag_id(name)
        {
            rows.extend(fleet.tag_rows(tag).iter().copied());
        }
        return rows;
    }
    let wanted = format!("{name}={value}");
    for id in 0..fleet.tag_count() {
        let id = id as u16;
        if fleet.tag_exists(id) && fleet.tag_name(id).starts_with(&wanted) {
            rows.extend(fleet.tag_rows(id).iter().copied());
        }
    }
    rows
}

/// `GET /v1/subscribers?tag_name&tag_value&tag_value_match_mode&status_filter&limit
/// &last_evaluated_key`: one row per IMSI, keyed by IMSI.
pub(super) async fn list_subscribers(
    State(state): State<Arc<SimulatorState>>,
    OriginalUri(uri): OriginalUri,
    Query(params): Params,
) -> Answer {
    let limit = limit_of(&params, SUBSCRIBERS_MAX_LIMIT, SUBSCRIBERS_MAX_LIMIT)?;
    let from = start_row(&params, |k| {
        k.parse::<u64>().ok()?.checked_sub(super::state::IMSI_BASE)
    })?;
    let statuses: Option<Vec<&str>> = params.get("status_filter").map(|f| f.split('|').collect());
    if let Some(bad) = statuses.iter().flatten().find(|s| {
        ![
            "active",
            "inactive",
            "ready",
            "instock",
            "shipped",
            "suspended",
            "terminated",
            "standby",
        ]
        .contains(s)
    }) {
        return Err(bad_request(format!(
            "status_filter: unknown status {bad:?}"
        )));
    }
    let prefix = match params.get("tag_value_match_mode").map(String::as_str) {
        None | Some("exact") => false,
        Some("prefix") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "tag_value_match_mode must be exact or prefix, got {other:?}"
            )));
        }
    };
    let created = created_ms(&state);
    let (world, now) = state.world();
    let fleet = &world.fleet;
    let tagged = match (params.get("tag_name"), params.get("tag_value")) {
        (Some(name), Some(value)) => Some(tagged_rows(fleet, name, value, prefix)),
        (Some(_), None) => {
            return Err(bad_request("tag_value is required with tag_name"));
        }
        (None, _) => None,
    };
    let candidates: Box<dyn Iterator<Item = u32>> = match &tagged {
        Some(rows) => Box::new(rows.range(from..).copied()),
        None => fleet.rows_from(None, from),
    };
    let rows: Vec<u32> = candidates
        .filter(|&r| fleet.sim(r).has_sim)
        .filter(|&r| {
            statuses
                .as_ref()
                .is_none_or(|s| s.contains(&world.soracom.status(fleet, r).name()))
        })
        .take(limit + 1)
        .collect();
    let (page, last) = split_page(&rows, limit);
    let body: Vec<Value> = page
        .iter()
        .map(|&r| subscriber_json(&world, r, now, created))
        .collect();
    let next = last.map(SoracomWorld::imsi);
    Ok(paged(json!(body), next, &uri))
}

/// `GET /v1/query/sims?iccid&sim_id&tag&status&search_type&limit&last_evaluated_key`: partial,
/// case-insensitive matches (each value at least 2 characters, commas split values) from a
/// search index rebuilt at most every `--soracom-query-lag`: it lags writes.
pub(super) async fn query_sims(
    State(state): State<Arc<SimulatorState>>,
    OriginalUri(uri): OriginalUri,
    Query(params): Params,
) -> Answer {
    let limit = limit_of(&params, QUERY_DEFAULT_LIMIT, 100)?;
    let from = start_row(&params, |k| {
        k.parse::<u64>()
            .ok()?
            .checked_sub(super::state::SIM_ID_BASE)
    })?;
    let any = match params.get("search_type").map(String::as_str) {
        None | Some("and") => false,
        Some("or") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "search_type must be and or or, got {other:?}"
            )));
        }
    };
    let mut filters: Vec<(&str, Vec<String>)> = Vec::new();
    for name in ["iccid", "sim_id", "imsi", "tag", "status"] {
        if let Some(values) = params.get(name) {
            let values: Vec<String> = values.split(',').map(|v| v.to_lowercase()).collect();
            if let Some(short) = values.iter().find(|v| v.chars().count() < 2) {
                return Err(bad_request(format!(
                    "{name}: every value needs at least 2 characters, got {short:?}"
                )));
            }
            filters.push((name, values));
        }
    }
    let created = created_ms(&state);
    let lag = state.config.soracom.query_lag;
    let (mut world, now) = state.world();
    let stale = world
        .soracom
        .index
        .as_ref()
        .is_none_or(|(at, _)| now.duration_since(*at) >= lag);
    if stale {
        let statuses = (0..world.fleet.len() as u32)
            .map(|r| world.soracom.status(&world.fleet, r))
            .collect();
        world.soracom.index = Some((now, statuses));
    }
    let world = &*world;
    let indexed = &world.soracom.index.as_ref().expect("built").1;
    let fields = |row: u32, name: &str| -> Vec<String> {
        match name {
            "iccid" => vec![world.fleet.sim(row).iccid.to_string()],
            "sim_id" => vec![SoracomWorld::sim_id(row)],
            "imsi" => vec![SoracomWorld::imsi(row)],
            "tag" => world
                .fleet
                .tag_names_of(row)
                .iter()
                .map(|t| t.to_lowercase())
                .collect(),
            _ => vec![
                indexed
                    .get(row as usize)
                    .map_or("", |s| s.name())
                    .to_owned(),
            ],
        }
    };
    let matches = |row: u32| {
        let mut each = filters.iter().map(|(name, values)| {
            let have = fields(row, name);
            values
                .iter()
                .any(|v| have.iter().any(|h| h.contains(v.as_str())))
        });
        if any {
            each.any(|m| m)
        } else {
            each.all(|m| m)
        }
    };
    let rows: Vec<u32> = world
        .fleet
        .rows_from(None, from)
        .filter(|&r| world.fleet.sim(r).has_sim && (r as usize) < indexed.len())
        .filter(|&r| matches(r))
        .take(limit + 1)
        .collect();
    let (page, last) = split_page(&rows, limit);
    let body: Vec<Value> = page
        .iter()
        .map(|&r| {
            let mut sim = sim_json(world, r, now, created);
            // The index's status, not the table's: the search lags.
            sim["status"] = json!(indexed[r as usize].name());
            sim
        })
        .collect();
    let next = last.map(SoracomWorld::sim_id);
    Ok(paged(json!(body), next, &uri))
}
