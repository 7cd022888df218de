//! The admin API's Soracom part, under `/_sim/soracom/`: the batch jobs, and a SIM's status or
//! expiry set by hand (as a person in Soracom's console would, or as a SIM reaches `ready`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use serde_json::{Value, json};

use super::batch::admin_jobs;
use super::state::{SoracomWorld, Status};
use crate::http::{Answer, Dialect, SimulatorState, json_response, parse_json};

const DIALECT: Dialect = Dialect::Admin;

pub(crate) fn routes() -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/_sim/soracom/jobs", get(jobs))
        .route("/_sim/soracom/sims/{sim_id}", patch(set_sim))
}

/// `GET /_sim/soracom/jobs`: every batch job with its status and summary.
async fn jobs(State(state): State<Arc<SimulatorState>>) -> Answer {
    let (world, _) = state.world();
    Ok(json_response(
        StatusCode::OK,
        json!({"jobs": admin_jobs(&world.soracom)}),
    ))
}

/// `PATCH /_sim/soracom/sims/{sim_id}` `{status?, expiryTime?, expiryAction?}`: any of
/// Soracom's statuses (`ready` and `standby` included) and the expiry, at once.
async fn set_sim(
    State(state): State<Arc<SimulatorState>>,
    Path(sim_id): Path<String>,
    body: Bytes,
) -> Answer {
    let body = parse_json(&body).map_err(|m| DIALECT.error(StatusCode::BAD_REQUEST, m))?;
    let (mut world, now) = state.world();
    let row = SoracomWorld::row_of_sim_id(&world.fleet, &sim_id)
        .ok_or_else(|| DIALECT.error(StatusCode::NOT_FOUND, format!("no SIM {sim_id}")))?;
    let world = &mut *world;
    if let Some(status) = body.get("status") {
        let to = status.as_str().and_then(Status::parse).ok_or_else(|| {
            DIALECT.error(
                StatusCode::BAD_REQUEST,
                format!("status {status} is not one of ready, active, inactive, standby, suspended, terminated"),
            )
        })?;
        world.soracom.set_status(&mut world.fleet, row, to, now);
    }
    if let Some(time) = body.get("expiryTime") {
        let extra = world.soracom.extras.entry(row).or_default();
        extra.expiry = match time {
            Value::Null => None,
            t => Some((
                t.as_i64().ok_or_else(|| {
                    DIALECT.error(
                        StatusCode::BAD_REQUEST,
                        "expiryTime is UNIX milliseconds or null",
                    )
                })?,
                body.get("expiryAction")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )),
        };
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"simId": sim_id, "status": world.soracom.status(&world.fleet, row).name()}),
    ))
}
