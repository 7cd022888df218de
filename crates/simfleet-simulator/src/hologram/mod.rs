//! Hologram's REST API v1 (`/api/1`), as its documents describe it: basic auth with the `apikey`
//! user (or `?apikey=`), the `{"success", "data"}` envelope, keyset paging (`continues` only
//! while more follow, `links.next`, `lastid`), the single- and multi-value filters, single and
//! bulk device state changes (job id, `preview`, `valid_tasks` warnings), the plain multi-device
//! route, and the bulk jobs list. Where the documents disagree, [`HologramVariants`] picks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

mod changes;
mod requests;
mod tags;

use crate::TagShape;
use crate::fleet::{Fleet, device_id, link_id};
use crate::http::{Answer, ApiError, SimulatorState, json_response};
use crate::world::hologram_state_name;
use requests::{DIALECT, Params, bad_request, param_u64, param_u64_list};

/// Default page size of list routes.
const DEFAULT_LIMIT: usize = 25;
/// Largest page a list route serves.
pub(crate) const MAX_LIMIT: usize = 1000;

/// The Hologram routes.
pub fn routes(state: Arc<SimulatorState>) -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/api/1/devices", get(list_devices))
        .route("/api/1/devices/{id}", get(get_device))
        .route("/api/1/devices/{id}/state", post(changes::change_one))
        .route("/api/1/devices/state", post(changes::change_many))
        .route(
            "/api/1/devices/batch/state",
            post(changes::change_batch).get(changes::list_jobs),
        )
        .route("/api/1/links/cellular", get(list_links))
        .route(
            "/api/1/links/cellular/{linkid}/state",
            post(changes::change_link),
        )
        .route(
            "/api/1/links/cellular/{linkid}/history",
            get(changes::link_history),
        )
        .route(
            "/api/1/devices/tags",
            get(tags::list_tags).post(tags::create_tag),
        )
        .route(
            "/api/1/devices/tags/{tagid}",
            axum::routing::delete(tags::delete_tag),
        )
        .route("/api/1/devices/tags/{tagid}/link", post(tags::link_tag))
        .route("/api/1/devices/tags/{tagid}/unlink", post(tags::unlink_tag))
        .route_layer(axum::middleware::from_fn_with_state(state, requests::gate))
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

async fn get_device(State(state): State<Arc<SimulatorState>>, Path(id): Path<String>) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Target;

    #[test]
    fn pending_changes_show_with_hologram_s_documented_pending_names() {
        let mut fleet = Fleet::seeded(&crate::fleet::SeedConfig {
            sims: 3,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..Default::default()
        });
        for (row, to) in [(0, Target::Pause), (1, Target::Live)] {
            fleet.sim_mut(row).pending = Some(crate::fleet::Pending { to, job: 0 });
        }
        assert_eq!(link_view(&fleet, 0).state, "PAUSED-PENDING-USER");
        assert_eq!(link_view(&fleet, 1).state, "LIVE-PENDING");
        assert_eq!(link_view(&fleet, 2).state, "LIVE");
    }
}
