//! emnify's writes of endpoint (and SIM) status: through the bulk route
//! `PATCH /v2/endpoint/multi` in chunks of up to 2,000, or one PATCH per endpoint, in turn, when
//! the credentials may not use it (a 403, remembered for a day); a refused chunk is split to find
//! the refused devices; SIM suspension is a call per SIM after the endpoints.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use super::super::CarrierError;
use super::super::http::{Call, Repeat};
use super::{BULK_LIMIT, EmnifyClient, endpoint_status_of};
use simfleet_api::StateChange;
use simfleet_api::model::{Refusal, RefusalKind, SimTarget, Submission};

/// Whether an account may use the bulk route: emnify answers 403 to users without the bulk
/// permission, and the account then writes per device until `retry_at`.
#[derive(Debug, Default)]
pub(super) struct BulkPermission {
    forbidden: Option<Forbidden>,
}

#[derive(Debug)]
struct Forbidden {
    retry_at: Instant,
    note: String,
}

impl BulkPermission {
    /// True when the bulk route is to be tried at `now`.
    pub(super) fn allows(&self, now: Instant) -> bool {
        self.forbidden.as_ref().is_none_or(|f| now >= f.retry_at)
    }

    /// Remembers a 403 at `now`, with the carrier's words and the wall-clock time of the retry.
    pub(super) fn forbid(
        &mut self,
        now: Instant,
        wall: Timestamp,
        retry_after: Duration,
        message: &str,
    ) {
        let retry_wall = wall
            .checked_add(jiff::SignedDuration::try_from(retry_after).unwrap_or_default())
            .map_or_else(
                |_| "later".to_owned(),
                |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
        self.forbidden = Some(Forbidden {
            retry_at: now + retry_after,
            note: format!(
                "PATCH /v2/endpoint/multi answered 403 ({message}); writing one endpoint at a time until {retry_wall}, or until the Secret changes"
            ),
        });
    }

    /// Why the bulk route is not used at `now`, if it is not.
    pub(super) fn unavailable(&self, now: Instant) -> Option<String> {
        (!self.allows(now)).then(|| self.forbidden.as_ref().map(|f| f.note.clone()))?
    }
}

impl EmnifyClient {
    /// Whether the bulk route is to be used now.
    fn bulk_allowed(&self) -> bool {
        self.bulk.lock().expect("bulk lock").allows(Instant::now())
    }

    /// `PATCH {path}` with `{"status": {"id": status}}`: how emnify changes an endpoint's or a
    /// SIM's status. Setting a status is idempotent, so it is safe to repeat.
    async fn patch_status(
        &self,
        route: &'static str,
        path: String,
        status: i64,
    ) -> Result<super::super::http::Reply, CarrierError> {
        self.write(|auth| {
            Call::new(Method::PATCH, route, path.clone(), auth, Repeat::Safe)
                .json(json!({"status": {"id": status}}))
        })
        .await
    }

    /// Changes endpoints through `PATCH /v2/endpoint/multi`; returns the devices refused. A 422
    /// refuses the whole request and emnify documents no per-item ids, so a refused chunk is
    /// split in halves until the refused devices are found alone; the rest go through. A 5xx or
    /// timeout is not resent (the caller observes first): the bulk request is not retried after
    /// an unclear outcome.
    fn change_bulk<'a>(
        &'a self,
        change: StateChange,
        sims: &'a [SimTarget],
    ) -> BoxFuture<'a, Result<Vec<Refusal>, CarrierError>> {
        async move {
            let status = endpoint_status_of(change);
            let body = Value::Array(
                sims.iter()
                    .map(|s| json!({"id": s.device_id, "status": {"id": status}}))
                    .collect(),
            );
            let answer = self
                .write(|auth| {
                    Call::new(
                        Method::PATCH,
                        "/v2/endpoint/multi",
                        "/v2/endpoint/multi",
                        auth,
                        Repeat::Unsafe,
                    )
                    .json(body.clone())
                })
                .await;
            match answer {
                Ok(_) => Ok(Vec::new()),
                Err(CarrierError::Unprocessable { message }) if sims.len() == 1 => {
                    Ok(vec![Refusal {
                        device_id: sims[0].device_id,
                        reason: message,
                        kind: RefusalKind::Ineligible,
                    }])
                }
                Err(CarrierError::Unprocessable { .. }) => {
                    let (first, second) = sims.split_at(sims.len() / 2);
                    let mut refused = self.change_bulk(change, first).await?;
                    refused.extend(self.change_bulk(change, second).await?);
                    Ok(refused)
                }
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    /// PATCHes one device; a refusal by the carrier is returned as such, not as an error.
    async fn change_one(
        &self,
        change: StateChange,
        sim: SimTarget,
    ) -> Result<Option<Refusal>, CarrierError> {
        let id = sim.device_id;
        let answer = self
            .patch_status(
                "/v1/endpoint/{id}",
                format!("/v1/endpoint/{id}"),
                endpoint_status_of(change),
            )
            .await;
        let refused = |reason: String, kind| Refusal {
            device_id: id,
            reason,
            kind,
        };
        match answer {
            Ok(_) => Ok(None),
            Err(
                CarrierError::Conflict { message }
                | CarrierError::NotFound { message }
                | CarrierError::Unprocessable { message },
            ) => Ok(Some(refused(message, RefusalKind::Ineligible))),
            Err(CarrierError::Rejected { message, .. }) => {
                Ok(Some(refused(message, RefusalKind::Failed)))
            }
            Err(CarrierError::Transient { message, .. }) => {
                Ok(Some(refused(message, RefusalKind::Retryable)))
            }
            Err(e) => Err(e),
        }
    }

    /// Suspends (or activates) one device's SIM after its endpoint changed: suspension stops
    /// the SIM's billing and costs a call per SIM (emnify has no bulk SIM suspension).
    async fn change_sim(
        &self,
        change: StateChange,
        sim: SimTarget,
    ) -> Result<Option<Refusal>, CarrierError> {
        let Some(sim_id) = sim.sim_id else {
            return Ok(None);
        };
        let status = match change {
            StateChange::Pause => 2,
            StateChange::Resume => 1,
        };
        let answer = self
            .patch_status("/v1/sim/{id}", format!("/v1/sim/{sim_id}"), status)
            .await;
        let refused = |reason: String, kind| {
            Ok(Some(Refusal {
                device_id: sim.device_id,
                reason: format!("SIM status: {reason}"),
                kind,
            }))
        };
        match answer {
            Ok(_) => Ok(None),
            Err(CarrierError::Transient { message, .. }) => {
                refused(message, RefusalKind::Retryable)
            }
            Err(e @ (CarrierError::Unauthorized { .. } | CarrierError::RateLimited { .. })) => {
                Err(e)
            }
            Err(e) => refused(e.to_string(), RefusalKind::Failed),
        }
    }

    /// One submission: the bulk route (falling back to per-device writes after a 403), then
    /// the SIMs' suspension when the account asks for it.
    pub(super) async fn submit_change(
        &self,
        change: StateChange,
        sims: &[SimTarget],
    ) -> Result<Submission, CarrierError> {
        // Actions planned before a switch to per-device writes may hold up to BULK_LIMIT.
        if sims.len() > BULK_LIMIT {
            return Err(CarrierError::Rejected {
                field: None,
                message: format!(
                    "{} SIMs in one submission; this client takes at most {BULK_LIMIT}",
                    sims.len()
                ),
            });
        }
        let mut bulk = self.bulk_allowed();
        // emnify has no job ids: the client names each submission so that status can list it.
        let action = format!(
            "emnify-{}-{}",
            self.core.now().as_millisecond(),
            self.actions.fetch_add(1, Ordering::Relaxed)
        );
        let mut refused = Vec::new();
        if bulk {
            match self.change_bulk(change, sims).await {
                Ok(r) => refused = r,
                Err(CarrierError::Forbidden { message }) => {
                    tracing::warn!(%message, "emnify's bulk route is forbidden for this account; writing one endpoint at a time");
                    self.bulk.lock().expect("bulk lock").forbid(
                        Instant::now(),
                        self.core.now(),
                        self.bulk_retry_after,
                        &message,
                    );
                    bulk = false;
                }
                Err(e) => return Err(e),
            }
        }
        if !bulk {
            for &sim in sims {
                if let Some(refusal) = self.change_one(change, sim).await? {
                    refused.push(refusal);
                }
            }
        }
        if self.suspend_sim {
            let changed: Vec<SimTarget> = sims
                .iter()
                .filter(|s| !refused.iter().any(|r| r.device_id == s.device_id))
                .copied()
                .collect();
            for sim in changed {
                if let Some(refusal) = self.change_sim(change, sim).await? {
                    refused.push(refusal);
                }
            }
        }
        Ok(Submission {
            action_ids: vec![action],
            accepted: sims.len() - refused.len(),
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_keeps_the_bulk_route_off_until_the_retry_time() {
        let mut bulk = BulkPermission::default();
        let start = Instant::now();
        assert!(bulk.allows(start));
        assert_eq!(bulk.unavailable(start), None);
        bulk.forbid(
            start,
            "2026-11-20T12:00:00Z".parse().unwrap(),
            Duration::from_secs(86_400),
            "no bulk permission",
        );
        assert!(!bulk.allows(start + Duration::from_secs(86_399)));
        let note = bulk.unavailable(start).unwrap();
        assert!(note.contains("403 (no bulk permission)"), "{note}");
        assert!(note.contains("until the Secret changes"), "{note}");
        let later = start + Duration::from_secs(86_400);
        assert!(bulk.allows(later), "tried again after a day");
        assert_eq!(bulk.unavailable(later), None);
    }
}
