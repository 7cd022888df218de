//! emnify's data quotas and quota events: a device's quota read, set (replaced) and deleted, its
//! events, and the organisation's quota events in one listing (`GET /v1/event`, filtered by the
//! quota event types and a time window), which tells which devices changed without reading each.

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use super::super::CarrierError;
use super::super::http::{Call, Repeat};
use super::{EVENT_PAGE, EVENT_PAGES, EXPIRY_FORMAT, EmnifyClient, PAGE, parse_expiry, protocol};
use simfleet_api::model::{
    DeviceQuotaEvent, OrgQuotaEvents, QuotaEvent, QuotaEventKind, QuotaReading, QuotaSetting,
    QuotaState,
};

/// The quota event types one organisation-wide listing asks for (emnify takes up to 6 values of
/// `type`, separated by `|`): 18 threshold reached, 19 used up, 60 expired, 56 assigned,
/// 57 deleted.
const QUOTA_EVENT_TYPES: &str = "18|19|60|56|57";
/// Most pages of 1,000 one organisation-wide listing reads; beyond, it says it is incomplete.
const ORG_EVENT_PAGES: usize = 20;
/// The kinds a device's own scan reports (the ones published as Kubernetes Events).
const SCANNED: [QuotaEventKind; 2] = [QuotaEventKind::UsedUp, QuotaEventKind::ThresholdReached];
/// emnify's `from`/`until` format.
const EVENT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// A listed event as a quota event (`None`: another kind of event).
fn quota_event(item: &Value, kinds: &[QuotaEventKind]) -> Result<Option<QuotaEvent>, CarrierError> {
    let at = item
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok().or_else(|| parse_expiry(t)))
        .ok_or_else(|| protocol("event: \"timestamp\" is not a time"))?;
    let description = item
        .pointer("/event_type/description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // emnify's documented event type ids.
    let kind = match (
        item.pointer("/event_type/id").and_then(Value::as_f64),
        description,
    ) {
        (Some(19.0), _) | (None, "Quota used up") => QuotaEventKind::UsedUp,
        (Some(18.0), _) | (None, "Quota threshold reached") => QuotaEventKind::ThresholdReached,
        (Some(60.0), _) => QuotaEventKind::Expired,
        (Some(56.0), _) => QuotaEventKind::Assigned,
        (Some(57.0), _) => QuotaEventKind::Deleted,
        _ => return Ok(None),
    };
    if !kinds.contains(&kind) {
        return Ok(None);
    }
    Ok(Some(QuotaEvent {
        id: item.get("id").and_then(Value::as_u64).unwrap_or(0),
        at,
        kind,
        description: item
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or(description)
            .to_owned(),
    }))
}

impl EmnifyClient {
    /// `GET /v1/endpoint/{id}/quota/data`; a 404 is "no quota".
    pub(super) fn quota_reading(
        &self,
        device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>> {
        async move {
            let path = format!("/v1/endpoint/{device_id}/quota/data");
            let reply = match self
                .send(|auth| {
                    Call::new(
                        Method::GET,
                        "/v1/endpoint/{id}/quota/data",
                        path.clone(),
                        auth,
                        Repeat::Safe,
                    )
                })
                .await
            {
                Ok(reply) => reply,
                Err(CarrierError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let body = reply.json("/v1/endpoint/{id}/quota/data")?;
            let state = match body.pointer("/status/id").and_then(Value::as_i64) {
                Some(1) => QuotaState::Active,
                Some(2) => QuotaState::Exhausted,
                Some(3) => QuotaState::Expired,
                other => QuotaState::Unknown(format!("{other:?}")),
            };
            let volume_mb = body
                .get("volume")
                .and_then(Value::as_f64)
                .ok_or_else(|| protocol("quota: \"volume\" is not a number"))?;
            let expiry = body
                .get("expiry_date")
                .and_then(Value::as_str)
                .and_then(parse_expiry);
            Ok(Some(QuotaReading {
                state,
                volume_mb,
                expiry,
                auto_refill: body.get("auto_refill").and_then(Value::as_i64) == Some(1),
                threshold_percentage: body.get("threshold_percentage").and_then(Value::as_f64),
                last_volume_added: body.get("last_volume_added").and_then(Value::as_f64),
            }))
        }
        .boxed()
    }

    /// `POST /v1/endpoint/{id}/quota/data` (replaces the quota).
    pub(super) fn quota_write<'a>(
        &'a self,
        device_id: u64,
        quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        async move {
            let mut body = json!({
                "status": {"id": 1},
                "volume": quota.volume_mb,
                "expiry_date": quota.expiry.strftime(EXPIRY_FORMAT).to_string(),
                "action_on_exhaustion": {"id": 1},
                "auto_refill": u8::from(quota.auto_refill),
            });
            if let Some(p) = quota.threshold_percentage {
                body["threshold_percentage"] = json!(p);
            }
            let path = format!("/v1/endpoint/{device_id}/quota/data");
            // Setting a quota replaces it: repeating the same POST is harmless.
            self.write(|auth| {
                Call::new(
                    Method::POST,
                    "/v1/endpoint/{id}/quota/data",
                    path.clone(),
                    auth,
                    Repeat::Safe,
                )
                .json(body.clone())
            })
            .await
            .map(|_| ())
        }
        .boxed()
    }

    /// `GET /v1/endpoint/{id}/event`, newest first, back to `since`.
    pub(super) fn device_quota_events(
        &self,
        device_id: u64,
        since: Option<Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>> {
        async move {
            let path = format!("/v1/endpoint/{device_id}/event");
            let mut events = Vec::new();
            // Newest first: stop at the first page reaching back past `since`.
            for page in 1..=EVENT_PAGES {
                let reply = self
                    .send(|auth| {
                        Call::new(
                            Method::GET,
                            "/v1/endpoint/{id}/event",
                            path.clone(),
                            auth,
                            Repeat::Safe,
                        )
                        .query("page", page)
                        .query("per_page", EVENT_PAGE)
                    })
                    .await?;
                let pages = super::total_pages(&reply, "/v1/endpoint/{id}/event")?;
                let Value::Array(items) = reply.json("/v1/endpoint/{id}/event")? else {
                    return Err(protocol(
                        "/v1/endpoint/{id}/event: the answer is not a list",
                    ));
                };
                let mut reached_since = false;
                for item in &items {
                    let Some(event) = quota_event(item, &SCANNED)? else {
                        continue;
                    };
                    if since.is_some_and(|s| event.at < s) {
                        reached_since = true;
                        break;
                    }
                    events.push(event);
                }
                if reached_since || page >= pages || items.is_empty() {
                    break;
                }
            }
            Ok(events)
        }
        .boxed()
    }

    /// `DELETE /v1/endpoint/{id}/quota/data`; false when there was none.
    pub(super) fn quota_removal(
        &self,
        device_id: u64,
    ) -> BoxFuture<'_, Result<bool, CarrierError>> {
        async move {
            let path = format!("/v1/endpoint/{device_id}/quota/data");
            match self
                .write(|auth| {
                    Call::new(
                        Method::DELETE,
                        "/v1/endpoint/{id}/quota/data",
                        path.clone(),
                        auth,
                        Repeat::Safe,
                    )
                })
                .await
            {
                Ok(_) => Ok(true),
                Err(CarrierError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    /// `GET /v1/event?q=type:18|19|60|56|57,from:F,until:U`: every quota event of the
    /// organisation in the window (without one, all of them), newest first, at most 20 pages of
    /// 1,000.
    pub(super) fn organisation_quota_events(
        &self,
        window: Option<(Timestamp, Timestamp)>,
    ) -> BoxFuture<'_, Result<Option<OrgQuotaEvents>, CarrierError>> {
        async move {
            let q = match window {
                Some((from, until)) => format!(
                    "type:{QUOTA_EVENT_TYPES},from:{},until:{}",
                    from.strftime(EVENT_TIME_FORMAT),
                    until.strftime(EVENT_TIME_FORMAT)
                ),
                None => format!("type:{QUOTA_EVENT_TYPES}"),
            };
            let all = [
                QuotaEventKind::UsedUp,
                QuotaEventKind::ThresholdReached,
                QuotaEventKind::Expired,
                QuotaEventKind::Assigned,
                QuotaEventKind::Deleted,
            ];
            let mut events = Vec::new();
            for page in 1..=ORG_EVENT_PAGES {
                let reply = self
                    .send(|auth| {
                        Call::new(
                            Method::GET,
                            "/v1/event",
                            String::from("/v1/event"),
                            auth,
                            Repeat::Safe,
                        )
                        .query("q", q.clone())
                        .query("page", page)
                        .query("per_page", PAGE)
                    })
                    .await?;
                let pages = super::total_pages(&reply, "/v1/event")?;
                let Value::Array(items) = reply.json("/v1/event")? else {
                    return Err(protocol("/v1/event: the answer is not a list"));
                };
                for item in &items {
                    let Some(device_id) = item.pointer("/endpoint/id").and_then(Value::as_u64)
                    else {
                        continue;
                    };
                    if let Some(event) = quota_event(item, &all)? {
                        events.push(DeviceQuotaEvent { device_id, event });
                    }
                }
                if page >= pages || items.is_empty() {
                    return Ok(Some(OrgQuotaEvents {
                        events,
                        complete: true,
                    }));
                }
            }
            Ok(Some(OrgQuotaEvents {
                events,
                complete: false,
            }))
        }
        .boxed()
    }
}
