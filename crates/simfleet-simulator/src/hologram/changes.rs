//! Hologram's state changes (`POST /devices/{id}/state`, `POST /devices/state`, the bulk
//! `POST /devices/batch/state`, the older `POST /links/cellular/{linkid}/state`), the bulk jobs
//! list and the per-link state history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::requests::{DIALECT, Params, bad_request, param_u64};
use crate::fleet::{Fleet, Target, device_id, link_id};
use crate::http::{Answer, ApiError, SimulatorState, json_response, parse_json};
use crate::world::{Job, JobKind, Surface};
use crate::{HologramVariants, JobIdShape, JobsRoute, OrgIdPlacement, WarningShape};

/// Most jobs one page of the jobs list shows.
const JOBS_PAGE: usize = 100;

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

pub(super) async fn change_one(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
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
pub(super) fn device_ids_of(body: &Value, max: usize) -> Result<Vec<u64>, ApiError> {
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

pub(super) async fn change_batch(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
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
pub(super) async fn change_many(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
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
pub(super) async fn change_link(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
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
pub(super) async fn link_history(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
) -> Answer {
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
pub(super) async fn list_jobs(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Params,
) -> Answer {
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
