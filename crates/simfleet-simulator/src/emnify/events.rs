//! emnify's event listings: per endpoint and organisation-wide, with the documented `q` filters
//! (`type` up to six values joined by `|`, `from` and `until` only together) and paging.

use super::*;

/// The filters of an event list: `q=type:N|M,from:T,until:T` (up to 6 types separated by `|`;
/// `type:` may also repeat; `from` and `until` only together, as emnify documents).
pub(super) struct EventQuery {
    types: Vec<u32>,
    from: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
    page: usize,
    per_page: usize,
}

pub(super) fn event_query(params: &HashMap<String, String>) -> Result<EventQuery, ApiError> {
    let (page, per_page) = page_params(params, EVENT_PAGE)?;
    let time = |field: &str, text: &str| {
        text.parse::<jiff::Timestamp>()
            .ok()
            .or_else(|| crate::quota::parse_expiry(text))
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("{field} {text:?} is not a time: use RFC 3339 or YYYY-MM-DD HH:MM:SS"),
                )
            })
    };
    let mut query = EventQuery {
        types: Vec::new(),
        from: None,
        until: None,
        page,
        per_page,
    };
    // A time holds ':' itself: split each term at its first ':' only.
    for term in q_terms(params) {
        match term.split_once(':') {
            // Up to 6 types, separated by '|', as emnify documents for `type`.
            Some(("type", v)) => {
                let values: Vec<&str> = v.split('|').collect();
                if values.len() > 6 {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "type takes at most 6 values separated by '|', got {}",
                            values.len()
                        ),
                    ));
                }
                for value in values {
                    query.types.push(value.parse().map_err(|_| {
                        error(
                            StatusCode::BAD_REQUEST,
                            format!("type {value:?} must be an event type id, e.g. 19"),
                        )
                    })?);
                }
            }
            Some(("from", v)) => query.from = Some(time("from", v)?),
            Some(("until", v)) => query.until = Some(time("until", v)?),
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("filter {term:?} is not supported: use type:N, from:T, until:T"),
                ));
            }
        }
    }
    // emnify documents each of from and until as "only valid with" the other.
    if query.from.is_some() != query.until.is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "from and until are only valid together: give both (YYYY-MM-DDTHH:mm:ssZ)",
        ));
    }
    Ok(query)
}

/// Events, newest first, filtered and paged (a page past the last answers the last again).
pub(super) fn events_response<'a>(
    events: impl DoubleEndedIterator<Item = &'a Event>,
    query: &EventQuery,
    fleet: &Fleet,
) -> Response {
    let selected: Vec<&Event> = events
        .rev()
        .filter(|e| query.types.is_empty() || query.types.contains(&e.kind.type_id()))
        .filter(|e| query.from.is_none_or(|f| e.at >= f))
        .filter(|e| query.until.is_none_or(|u| e.at <= u))
        .collect();
    let total = selected.len();
    let page = query.page.min(total.div_ceil(query.per_page).max(1));
    let items = selected
        .iter()
        .skip((page - 1) * query.per_page)
        .take(query.per_page)
        .map(|e| event_json(e, fleet))
        .collect();
    paged_response(items, total, query.per_page, page)
}

/// An event as emnify lists it.
pub(super) fn event_json(event: &Event, fleet: &Fleet) -> Value {
    let severity = match event.kind {
        EventKind::UsedUp | EventKind::ThresholdReached | EventKind::QuotaExpired => {
            json!({"id": 1, "description": "WARN"})
        }
        _ => json!({"id": 0, "description": "INFO"}),
    };
    let device = device_id(event.row);
    json!({
        "id": event.id,
        "alert": false,
        "timestamp": event.at.to_string(),
        "event_type": {"id": event.kind.type_id(), "description": event.kind.description()},
        "event_source": {"id": 2, "description": "API"},
        "event_severity": severity,
        "description": format!("{} for endpoint {device}", event.kind.description()),
        "endpoint": {"id": device, "name": format!("device-{device}")},
        "sim": fleet.sim(event.row).has_sim.then(|| json!({"id": sim_id(event.row), "iccid": fleet.sim(event.row).iccid.to_string()})),
    })
}

/// `GET /v1/endpoint/{id}/event`: the device's events; 200 `[]` for an endpoint that does not
/// exist, as emnify documents.
pub(super) async fn list_endpoint_events(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let query = event_query(&params)?;
    let (world, _) = state.world();
    let row = id.parse().ok().and_then(|id| world.fleet.row_of_device(id));
    Ok(match row {
        Some(row) => events_response(world.events_of(row), &query, &world.fleet),
        None => paged_response(Vec::new(), 0, query.per_page, 1),
    })
}

/// `GET /v1/event`: the organisation's events (one listing finds every device's quota events).
pub(super) async fn list_events(
    State(state): State<Arc<SimulatorState>>,
    Query(params): Params,
) -> Answer {
    let query = event_query(&params)?;
    let (world, _) = state.world();
    Ok(events_response(
        world.all_events().iter(),
        &query,
        &world.fleet,
    ))
}
