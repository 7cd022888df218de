//! Soracom's Batch API: batch groups; jobs of 1 to 10,000 tasks of one state API, created and
//! run at once; one unfinished job per API for the operator; tasks run in order, one at a
//! time (`--soracom-task-ms` each), and the job's status and summary move as they do; per-task
//! results; jobs kept 32 days after they finish. Timestamps are seconds, as the spec's
//! examples are.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::sims::{Outcome, apply, route_target, sim_json};
use super::state::{Group, Job, SoracomWorld, Status, Task, TaskResult};
use super::{SameState, bad_request, limit_of, not_found, paged};
use crate::fleet::Fleet;
use crate::http::{Answer, ApiError, SimulatorState, json_response, parse_json};
use crate::world::ChangeCounters;

/// Most tasks in one job [doc A].
pub(crate) const MAX_TASKS: usize = 10_000;
/// How long finished jobs are kept [doc A].
const RETENTION: SignedDuration = SignedDuration::from_hours(32 * 24);
/// Page size of the batch listings without `limit`, and the most they serve (unstated).
const PAGE: usize = 100;

impl SoracomWorld {
    /// Runs every job's tasks due by `now`, in order, one at a time: task `k` of a job ends
    /// `k + 1` task times after the job was created. Drops jobs finished over 32 days ago.
    pub(crate) fn run_jobs(
        &mut self,
        fleet: &mut Fleet,
        counters: &mut ChangeCounters,
        now: Timestamp,
        task_time: SignedDuration,
    ) {
        let mut jobs = std::mem::take(&mut self.batch.jobs);
        for job in jobs.iter_mut().filter(|j| j.finished.is_none()) {
            while job.done < job.tasks.len() {
                let k = job.done as i64;
                let started = job
                    .created
                    .saturating_add(task_time * k as i32)
                    .expect("bounded");
                let ends = started.saturating_add(task_time).expect("bounded");
                if ends > now {
                    break;
                }
                let task = &mut job.tasks[job.done];
                let outcome: Outcome = match task.row {
                    Some(row) => apply(self, fleet, counters, row, job.to, SameState::Ok, ends),
                    None => Err((StatusCode::NOT_FOUND, "no such SIM".to_owned())),
                };
                let (status, error) = match outcome {
                    Ok(()) => (200, None),
                    Err((status, message)) => (status.as_u16(), Some(message)),
                };
                if error.is_some() {
                    job.errors += 1;
                }
                task.result = Some(TaskResult {
                    started,
                    finished: ends,
                    status,
                    error: error.clone(),
                });
                job.done += 1;
                job.updated = ends;
                if error.is_some() && job.abort_on_failure {
                    job.aborted = true;
                    break;
                }
            }
            if job.done == job.tasks.len() || job.aborted {
                job.finished = Some(job.updated);
            }
        }
        let cutoff = now.saturating_sub(RETENTION).expect("bounded");
        jobs.retain(|j| j.finished.is_none_or(|f| f > cutoff));
        self.batch.jobs = jobs;
    }
}

fn group_json(group: &Group) -> Value {
    json!({
        "batchGroupId": group.id,
        "batchGroupName": group.name,
        "description": group.description,
        "createdTime": group.created,
        "updatedTime": group.updated,
    })
}

/// A bounded text field of a body.
fn text_field(
    body: &Value,
    name: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) if required => Err(bad_request(format!("{name} is required"))),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(bad_request(format!(
            "{name} is longer than {max} characters"
        ))),
        Some(other) => Err(bad_request(format!("{name} must be a string, got {other}"))),
    }
}

/// `POST /v1/batch_groups` `{batchGroupName (≤ 100), description (≤ 500)}`.
pub(super) async fn create_group(State(state): State<Arc<SimulatorState>>, body: Bytes) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let name = text_field(&body, "batchGroupName", 100, true)?.unwrap_or_default();
    let description = text_field(&body, "description", 500, false)?.unwrap_or_default();
    let (mut world, now) = state.world();
    let id = world.soracom.next_id("bg-");
    let group = Group {
        id,
        name,
        description,
        created: now.as_second(),
        updated: now.as_second(),
    };
    let answer = group_json(&group);
    world.soracom.batch.groups.push(group);
    Ok(json_response(StatusCode::OK, answer))
}

pub(super) async fn list_groups(
    State(state): State<Arc<SimulatorState>>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let limit = limit_of(&params, PAGE, PAGE)?;
    let (world, _) = state.world();
    let groups = &world.soracom.batch.groups;
    let from = after_key(&params, groups.iter().map(|g| g.id.as_str()))?;
    let page: Vec<&Group> = groups.iter().skip(from).take(limit).collect();
    let more = groups.len() > from + page.len();
    let next = more.then(|| page.last().map(|g| g.id.clone())).flatten();
    Ok(paged(
        json!(page.iter().map(|g| group_json(g)).collect::<Vec<_>>()),
        next,
        &uri,
    ))
}

/// Where a page starts: after the item whose key is `last_evaluated_key`.
fn after_key<'a>(
    params: &HashMap<String, String>,
    keys: impl Iterator<Item = &'a str>,
) -> Result<usize, ApiError> {
    let Some(key) = params.get("last_evaluated_key").filter(|k| !k.is_empty()) else {
        return Ok(0);
    };
    keys.into_iter()
        .position(|k| k == key)
        .map(|p| p + 1)
        .ok_or_else(|| {
            bad_request(format!(
                "last_evaluated_key {key:?} is not a key this listing gave"
            ))
        })
}

fn group_index(world: &SoracomWorld, id: &str) -> Result<usize, ApiError> {
    world
        .batch
        .groups
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| not_found(format!("no batch group {id}")))
}

pub(super) async fn get_group(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
) -> Answer {
    let (world, _) = state.world();
    let index = group_index(&world.soracom, &id)?;
    Ok(json_response(
        StatusCode::OK,
        group_json(&world.soracom.batch.groups[index]),
    ))
}

/// `PUT /v1/batch_groups/{id}` `{batchGroupName?, description?}`.
pub(super) async fn update_group(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let name = text_field(&body, "batchGroupName", 100, false)?;
    let description = text_field(&body, "description", 500, false)?;
    let (mut world, now) = state.world();
    let index = group_index(&world.soracom, &id)?;
    let group = &mut world.soracom.batch.groups[index];
    if let Some(name) = name {
        group.name = name;
    }
    if let Some(description) = description {
        group.description = description;
    }
    group.updated = now.as_second();
    Ok(json_response(StatusCode::OK, group_json(group)))
}

/// `DELETE /v1/batch_groups/{id}`: 204; 400 while one of its jobs runs.
pub(super) async fn delete_group(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
) -> Answer {
    let (mut world, _) = state.world();
    let index = group_index(&world.soracom, &id)?;
    let batch = &mut world.soracom.batch;
    if batch
        .jobs
        .iter()
        .any(|j| j.group == id && j.finished.is_none())
    {
        return Err(bad_request(format!(
            "batch group {id} has a job that has not finished; delete it after the job ends"
        )));
    }
    batch.groups.remove(index);
    batch.jobs.retain(|j| j.group != id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The task API of a request, and the status it sets: the state routes by SIM id only.
fn task_api(path: &str, method: &str) -> Result<(&'static str, Status, String), String> {
    let rest = path.strip_prefix("/v1/sims/").ok_or_else(|| {
        format!("{path}: tasks call /v1/sims/{{sim_id}}/... (the Batch API works by SIM id)")
    })?;
    let (sim_id, action) = rest
        .split_once('/')
        .ok_or_else(|| format!("{path}: no action after the SIM id"))?;
    let (api, to) = match action {
        "activate" => ("activateSim", Status::Active),
        "deactivate" => ("deactivateSim", Status::Inactive),
        "set_to_standby" => ("setSimToStandby", Status::Standby),
        "suspend" => ("suspendSim", Status::Suspended),
        "set_group" | "unset_group" | "tags" | "set_vpg_ip_address_map_entry" => {
            return Err(format!(
                "{path}: the simulator runs the state task APIs only (activateSim, deactivateSim, setSimToStandby, suspendSim)"
            ));
        }
        other => return Err(format!("{path}: {other} is not an API the Batch API runs")),
    };
    debug_assert_eq!(route_target(action), Some(to));
    if method != "POST" {
        return Err(format!("{path}: {api} is called with POST, not {method}"));
    }
    Ok((api, to, sim_id.to_owned()))
}

/// `POST /v1/batch_groups/{id}/jobs` `{tasks: [{request: {path, method, body}}], jobName,
/// description, abortOnFailure}`: creates the job and runs it. 400 when the tasks mix APIs,
/// number 0 or over 10,000, or a job of the same API has not finished; 404 without the group.
pub(super) async fn create_job(
    State(state): State<Arc<SimulatorState>>,
    Path(group): Path<String>,
    body: Bytes,
) -> Answer {
    let body = parse_json(&body).map_err(bad_request)?;
    let name = text_field(&body, "jobName", 100, false)?.unwrap_or_default();
    let description = text_field(&body, "description", 500, false)?.unwrap_or_default();
    let abort_on_failure = body
        .get("abortOnFailure")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(tasks) = body.get("tasks").and_then(Value::as_array) else {
        return Err(bad_request(
            "tasks is required: [{\"request\": {\"path\", \"method\", \"body\"}}]",
        ));
    };
    if tasks.is_empty() || tasks.len() > MAX_TASKS {
        return Err(bad_request(format!(
            "a job has 1 to {MAX_TASKS} tasks, got {}",
            tasks.len()
        )));
    }
    let mut api = None;
    let mut parsed = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let request = task
            .get("request")
            .ok_or_else(|| bad_request(format!("tasks[{i}].request is required")))?;
        let path = request
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request(format!("tasks[{i}].request.path is required")))?;
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request(format!("tasks[{i}].request.method is required")))?;
        let (this, to, sim_id) =
            task_api(path, method).map_err(|m| bad_request(format!("tasks[{i}]: {m}")))?;
        match api {
            None => api = Some((this, to)),
            Some((first, _)) if first != this => {
                return Err(bad_request(format!(
                    "a job runs one API: tasks[0] calls {first}, tasks[{i}] calls {this}"
                )));
            }
            Some(_) => {}
        }
        parsed.push((
            path.to_owned(),
            request.get("body").cloned().unwrap_or(Value::Null),
            sim_id,
        ));
    }
    let (api, to) = api.expect("at least one task");
    let (mut world, now) = state.world();
    group_index(&world.soracom, &group)?;
    if let Some(running) = world
        .soracom
        .batch
        .jobs
        .iter()
        .find(|j| j.api == api && j.finished.is_none())
    {
        return Err(bad_request(format!(
            "a job with the same API ({api}) is already running for this operator: {}",
            running.id
        )));
    }
    let id = world.soracom.next_id("job-");
    let tasks = parsed
        .into_iter()
        .map(|(path, body, sim_id)| Task {
            path,
            body,
            row: SoracomWorld::row_of_sim_id(&world.fleet, &sim_id),
            result: None,
        })
        .collect();
    let job = Job {
        id,
        group,
        name,
        description,
        abort_on_failure,
        api,
        to,
        tasks,
        done: 0,
        errors: 0,
        aborted: false,
        created: now,
        updated: now,
        finished: None,
    };
    let answer = job.json();
    world.soracom.batch.jobs.push(job);
    Ok(json_response(StatusCode::OK, answer))
}

/// `GET /v1/batch_groups/{id}/jobs?limit&last_evaluated_key`, oldest first.
pub(super) async fn list_jobs(
    State(state): State<Arc<SimulatorState>>,
    OriginalUri(uri): OriginalUri,
    Path(group): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let limit = limit_of(&params, PAGE, PAGE)?;
    let (world, _) = state.world();
    group_index(&world.soracom, &group)?;
    let jobs: Vec<&Job> = world
        .soracom
        .batch
        .jobs
        .iter()
        .filter(|j| j.group == group)
        .collect();
    let from = after_key(&params, jobs.iter().map(|j| j.id.as_str()))?;
    let page: Vec<&&Job> = jobs.iter().skip(from).take(limit).collect();
    let more = jobs.len() > from + page.len();
    let next = more.then(|| page.last().map(|j| j.id.clone())).flatten();
    Ok(paged(
        json!(page.iter().map(|j| j.json()).collect::<Vec<_>>()),
        next,
        &uri,
    ))
}

fn find_job<'a>(world: &'a SoracomWorld, group: &str, id: &str) -> Result<&'a Job, ApiError> {
    group_index(world, group)?;
    world
        .batch
        .jobs
        .iter()
        .find(|j| j.group == group && j.id == id)
        .ok_or_else(|| not_found(format!("no job {id} in batch group {group}")))
}

/// `GET /v1/batch_groups/{id}/jobs/{job_id}`.
pub(super) async fn get_job(
    State(state): State<Arc<SimulatorState>>,
    Path((group, id)): Path<(String, String)>,
) -> Answer {
    let (world, _) = state.world();
    Ok(json_response(
        StatusCode::OK,
        find_job(&world.soracom, &group, &id)?.json(),
    ))
}

/// `GET .../jobs/{job_id}/tasks?limit&status&last_evaluated_key`: the tasks with each inner
/// call's answer, in order; `taskId` counts from 1.
pub(super) async fn list_tasks(
    State(state): State<Arc<SimulatorState>>,
    OriginalUri(uri): OriginalUri,
    Path((group, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let limit = limit_of(&params, PAGE, PAGE)?;
    let wanted = match params.get("status").map(String::as_str) {
        None => None,
        Some(s @ ("pending" | "success" | "error")) => Some(s),
        Some(other) => {
            return Err(bad_request(format!(
                "status must be pending, success or error, got {other:?}"
            )));
        }
    };
    let after = match params.get("last_evaluated_key").filter(|k| !k.is_empty()) {
        None => 0,
        Some(k) => k
            .parse::<usize>()
            .map_err(|_| bad_request(format!("last_evaluated_key {k:?} is not a task id")))?,
    };
    let created = state
        .config
        .start_time
        .unwrap_or_else(|| state.clock.now())
        .as_millisecond();
    let (world, now) = state.world();
    let job = find_job(&world.soracom, &group, &id)?;
    let status_of = |t: &Task| match &t.result {
        None => "pending",
        Some(r) if r.error.is_none() => "success",
        Some(_) => "error",
    };
    let selected: Vec<(usize, &Task)> = job
        .tasks
        .iter()
        .enumerate()
        .skip(after)
        .filter(|(_, t)| wanted.is_none_or(|w| status_of(t) == w))
        .take(limit + 1)
        .collect();
    let more = selected.len() > limit;
    let page = &selected[..selected.len().min(limit)];
    let body: Vec<Value> = page
        .iter()
        .map(|(i, t)| {
            let response = t.result.as_ref().map(|r| {
                let body = match (&r.error, t.row) {
                    (Some(message), _) => json!({"code": if r.status == 404 { "SIM0404" } else { "SEM0001" }, "message": message}),
                    (None, Some(row)) => sim_json(&world, row, now, created),
                    (None, None) => Value::Null,
                };
                json!({"statusCode": r.status, "body": body})
            });
            json!({
                "taskId": i + 1,
                "status": status_of(t),
                "request": {"path": t.path, "method": "POST", "body": t.body},
                "response": response,
                "startedTime": t.result.as_ref().map(|r| r.started.as_second()),
                "finishedTime": t.result.as_ref().map(|r| r.finished.as_second()),
            })
        })
        .collect();
    let next = more.then(|| (page.last().expect("a full page").0 + 1).to_string());
    Ok(paged(json!(body), next, &uri))
}

/// Every job, for the admin API: id, group, API, status and summary.
pub(crate) fn admin_jobs(world: &SoracomWorld) -> Vec<Value> {
    world.batch.jobs.iter().map(Job::json).collect()
}
