//! emnify's data quota routes: read, set and delete a device's quota (integer ids).

use super::*;

pub(super) async fn get_quota(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
) -> Answer {
    let (world, _) = state.world();
    let row = endpoint_row(&world, &id)?;
    match world.fleet.sim(row).quota.as_deref() {
        Some(quota) => Ok(json_response(StatusCode::OK, quota.to_json())),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("endpoint {id} has no data quota"),
        )),
    }
}

pub(super) async fn set_quota(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let body = parse_json(&body).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let (mut world, now) = state.world();
    let row = endpoint_row(&world, &id)?;
    if world.fleet.sim(row).state == LinkState::Dead {
        return Err(error(
            StatusCode::CONFLICT,
            format!("endpoint {id} is deleted"),
        ));
    }
    match Quota::from_request(&body, now) {
        Ok(quota) => {
            world.set_quota(row, quota, now);
            Ok(StatusCode::CREATED.into_response())
        }
        Err(message) => Err(error(StatusCode::UNPROCESSABLE_ENTITY, message)),
    }
}

pub(super) async fn delete_quota(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
) -> Answer {
    let (mut world, now) = state.world();
    let row = endpoint_row(&world, &id)?;
    if world.delete_quota(row, now) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("endpoint {id} has no data quota"),
        ))
    }
}
