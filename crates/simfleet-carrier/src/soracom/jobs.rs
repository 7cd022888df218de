//! Changing SIMs on Soracom: Batch API jobs of up to 10,000 SIMs in simfleet's batch group
//! (the job's status is the pending action's carrier status), or single-SIM routes for a few
//! SIMs and where the Batch API is forbidden.

use super::*;

impl SoracomClient {
    /// simfleet's batch group: found by name, or created; remembered.
    pub(super) async fn batch_group(&self) -> Result<String, CarrierError> {
        let mut cached = self.batch_group.lock().await;
        if let Some(id) = cached.as_ref() {
            return Ok(id.clone());
        }
        let mut pages = self.pages(|after| {
            let mut call = Self::get("/v1/batch_groups", "/v1/batch_groups").query("limit", PAGE);
            if let Some(after) = after {
                call = call.query("last_evaluated_key", after);
            }
            call
        });
        let mut found = None;
        while let Some(reply) = pages.try_next().await? {
            let groups: Vec<BatchGroup> = reply.parse("/v1/batch_groups")?;
            found = groups
                .into_iter()
                .find(|g| g.batch_group_name.as_deref() == Some(BATCH_GROUP_NAME))
                .map(|g| g.batch_group_id);
            if found.is_some() {
                break;
            }
        }
        drop(pages);
        let id = match found {
            Some(id) => id,
            None => {
                let call = Call::new(
                    Method::POST,
                    "/v1/batch_groups",
                    "/v1/batch_groups",
                    Auth::None,
                    Repeat::Unsafe,
                )
                .json(json!({
                    "batchGroupName": BATCH_GROUP_NAME,
                    "description": "State changes of SIMs by simfleet's SimGroups",
                }));
                self.send(call)
                    .await?
                    .parse::<BatchGroup>("/v1/batch_groups")?
                    .batch_group_id
            }
        };
        *cached = Some(id.clone());
        Ok(id)
    }

    pub(super) fn route_word(&self, change: StateChange) -> &'static str {
        match change {
            StateChange::Resume => "activate",
            StateChange::Pause if self.suspend_on_pause => "suspend",
            StateChange::Pause => "deactivate",
        }
    }

    /// Changes SIMs one call each through the synchronous single-SIM routes.
    pub(super) async fn submit_direct(
        &self,
        word: &'static str,
        sims: &[SimTarget],
    ) -> Result<Submission, CarrierError> {
        let ids: Vec<u64> = sims.iter().map(|s| s.device_id).collect();
        let results: Vec<(u64, Result<Reply, CarrierError>)> = stream::iter(ids)
            .map(|device_id| async move {
                let call = Call::new(
                    Method::POST,
                    "/v1/sims/{sim_id}/{change}",
                    format!("/v1/sims/{device_id}/{word}"),
                    Auth::None,
                    // Setting a state again is harmless.
                    Repeat::Safe,
                );
                (device_id, self.send(call).await)
            })
            .buffered(self.core.concurrency())
            .collect()
            .await;
        let mut submission = Submission {
            action_ids: vec![format!("{word}-{}", sims[0].device_id)],
            ..Submission::default()
        };
        for (device_id, result) in results {
            match result {
                Ok(_) => submission.accepted += 1,
                Err(CarrierError::NotFound { message }) => submission.refused.push(Refusal {
                    device_id,
                    reason: message,
                    kind: RefusalKind::Ineligible,
                }),
                Err(CarrierError::Rejected { message, .. }) => submission.refused.push(Refusal {
                    device_id,
                    reason: message,
                    kind: RefusalKind::Failed,
                }),
                Err(e) if submission.accepted == 0 && submission.refused.is_empty() => {
                    return Err(e);
                }
                Err(e) => submission.refused.push(Refusal {
                    device_id,
                    reason: e.to_string(),
                    kind: RefusalKind::Retryable,
                }),
            }
        }
        Ok(submission)
    }

    /// Creates one job for the SIMs. After a timeout (no idempotency key), the group's jobs
    /// are listed for the job's unique name before anything is tried again.
    pub(super) async fn submit_job(
        &self,
        word: &'static str,
        sims: &[SimTarget],
    ) -> Result<Submission, CarrierError> {
        let group = self.batch_group().await?;
        let name = format!("simfleet-{word}-{:016x}", fastrand::u64(..));
        let tasks: Vec<JobTask> = sims
            .iter()
            .map(|s| JobTask {
                request: TaskCall {
                    path: format!("/v1/sims/{}/{word}", s.device_id),
                    method: "POST",
                },
            })
            .collect();
        let call = Call::new(
            Method::POST,
            "/v1/batch_groups/{batch_group_id}/jobs",
            format!("/v1/batch_groups/{group}/jobs"),
            Auth::None,
            Repeat::Unsafe,
        )
        .json_of(&JobRequest {
            job_name: &name,
            description: format!("simfleet: {word} {} SIMs", sims.len()),
            abort_on_failure: false,
            tasks,
        });
        let job = match self.send(call).await {
            Ok(reply) => reply.parse::<BatchJob>("/v1/batch_groups/{batch_group_id}/jobs")?,
            Err(
                error @ CarrierError::Transient {
                    request_sent: true, ..
                },
            ) => match self.job_named(&group, &name).await? {
                Some(job) => job,
                None => return Err(error),
            },
            Err(CarrierError::Rejected { message, .. }) if message.contains("already running") => {
                return Err(CarrierError::Transient {
                    message: format!(
                        "Soracom runs one job per API at a time, and a {word} job is running: {message}"
                    ),
                    request_sent: false,
                });
            }
            Err(e) => return Err(e),
        };
        Ok(Submission {
            action_ids: vec![job.job_id],
            accepted: sims.len(),
            refused: Vec::new(),
        })
    }

    /// The job of the group named `name`, if it was created.
    pub(super) async fn job_named(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<BatchJob>, CarrierError> {
        let path = format!("/v1/batch_groups/{group}/jobs");
        let mut pages = self.pages(move |after| {
            let mut call = Self::get("/v1/batch_groups/{batch_group_id}/jobs", path.clone())
                .query("limit", PAGE);
            if let Some(after) = after {
                call = call.query("last_evaluated_key", after);
            }
            call
        });
        while let Some(reply) = pages.try_next().await? {
            let jobs: Vec<BatchJob> = reply.parse("/v1/batch_groups/{batch_group_id}/jobs")?;
            if let Some(job) = jobs
                .into_iter()
                .find(|j| j.job_name.as_deref() == Some(name))
            {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// A job's status; for a job that ended with failed tasks, those SIMs as refusals with
    /// Soracom's words (404: the SIM is gone).
    pub(super) async fn job_status(
        &self,
        group: &str,
        id: &str,
    ) -> Result<ActionStatus, CarrierError> {
        let reply = match self
            .send(Self::get(
                "/v1/batch_groups/{batch_group_id}/jobs/{job_id}",
                format!("/v1/batch_groups/{group}/jobs/{id}"),
            ))
            .await
        {
            Ok(reply) => reply,
            Err(CarrierError::NotFound { message }) => {
                return Ok(ActionStatus {
                    id: id.to_owned(),
                    status: format!("not found at Soracom (jobs are kept 32 days): {message}"),
                    finished: true,
                    refused: Vec::new(),
                });
            }
            Err(e) => return Err(e),
        };
        let job: BatchJob = reply.parse("/v1/batch_groups/{batch_group_id}/jobs/{job_id}")?;
        let mut refused = Vec::new();
        if job.finished() && job.summary.as_ref().is_some_and(|s| s.error > 0) {
            let path = format!("/v1/batch_groups/{group}/jobs/{id}/tasks");
            let mut pages = self.pages(move |after| {
                let mut call = Self::get(
                    "/v1/batch_groups/{batch_group_id}/jobs/{job_id}/tasks",
                    path.clone(),
                )
                .query("status", "error")
                .query("limit", PAGE);
                if let Some(after) = after {
                    call = call.query("last_evaluated_key", after);
                }
                call
            });
            while let Some(reply) = pages.try_next().await? {
                let tasks: Vec<Task> =
                    reply.parse("/v1/batch_groups/{batch_group_id}/jobs/{job_id}/tasks")?;
                refused.extend(tasks.iter().filter_map(refusal_of));
            }
        }
        Ok(ActionStatus {
            id: id.to_owned(),
            status: job.describe(),
            finished: job.finished(),
            refused,
        })
    }
}

/// `POST /v1/batch_groups/{id}/jobs`'s body, serialized without a JSON tree.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JobRequest<'a> {
    job_name: &'a str,
    description: String,
    abort_on_failure: bool,
    tasks: Vec<JobTask>,
}

#[derive(serde::Serialize)]
struct JobTask {
    request: TaskCall,
}

#[derive(serde::Serialize)]
struct TaskCall {
    path: String,
    method: &'static str,
}

/// A failed task as a refusal of its SIM.
fn refusal_of(task: &Task) -> Option<Refusal> {
    let device_id = wire::device_id(wire::task_sim_id(&task.request.path)?)?;
    let (code, body) = task
        .response
        .as_ref()
        .map_or((0, &Value::Null), |r| (r.status_code, &r.body));
    let reason = body
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| format!("the task failed (HTTP {code})"), str::to_owned);
    Some(Refusal {
        device_id,
        reason,
        kind: if code == 404 {
            RefusalKind::Ineligible
        } else {
            RefusalKind::Failed
        },
    })
}
