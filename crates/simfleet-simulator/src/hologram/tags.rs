//! Hologram's device tags: list, create, link, unlink and delete (`/devices/tags`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::changes::device_ids_of;
use super::requests::{DIALECT, Params, bad_request, param_u64, param_u64_list};
use crate::fleet::{Fleet, device_id};
use crate::http::{Answer, ApiError, SimulatorState, json_response, parse_json};

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
pub(super) async fn list_tags(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Params,
) -> Answer {
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
pub(super) async fn create_tag(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
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
async fn relink_tag(state: Arc<SimulatorState>, id: String, body: Bytes, link: bool) -> Answer {
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

pub(super) async fn link_tag(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    relink_tag(state, id, body, true).await
}

pub(super) async fn unlink_tag(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    relink_tag(state, id, body, false).await
}

/// `DELETE /devices/tags/{tagid}`: the tag goes, and with it from every device.
pub(super) async fn delete_tag(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
) -> Answer {
    let (mut world, _) = state.world();
    let tag = tag_of(&world.fleet, &id)?;
    world.fleet.delete_tag(tag);
    Ok(json_response(StatusCode::OK, json!({"success": true})))
}
