//! Data quotas as emnify models them: volume in MB, expiry, auto-refill, threshold, and the
//! events raised when a quota reaches its threshold or is used up.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// emnify's expiry format (`YYYY-MM-DD HH:MM:SS`, UTC).
pub(crate) const EXPIRY_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A quota's state (emnify status ids 1, 2, 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaStatus {
    /// Data may flow.
    Active = 1,
    /// The volume is used up; the device is blocked.
    Exhausted = 2,
    /// The expiry date passed.
    Expired = 3,
}

impl QuotaStatus {
    /// emnify's description of the status.
    pub fn description(self) -> &'static str {
        match self {
            QuotaStatus::Active => "ACTIVE",
            QuotaStatus::Exhausted => "EXHAUSTED",
            QuotaStatus::Expired => "EXPIRED",
        }
    }

    fn from_id(id: i64) -> Option<Self> {
        match id {
            1 => Some(QuotaStatus::Active),
            2 => Some(QuotaStatus::Exhausted),
            3 => Some(QuotaStatus::Expired),
            _ => None,
        }
    }
}

/// A device's data quota.
#[derive(Clone, Debug, PartialEq)]
pub struct Quota {
    /// emnify's integer id of the quota (given when it is set).
    pub id: u64,
    /// Current state.
    pub status: QuotaStatus,
    /// Remaining volume in MB.
    pub volume: f64,
    /// When it expires.
    pub expiry: Timestamp,
    /// Refilled to `last_volume_added` every 24 hours.
    pub auto_refill: bool,
    /// Remaining percentage that raises "Quota threshold reached".
    pub threshold_percentage: Option<f64>,
    /// Remaining volume that raises "Quota threshold reached".
    pub threshold_volume: Option<f64>,
    /// The volume of the last set (what a refill restores).
    pub last_volume_added: f64,
    /// When `status` last changed.
    pub last_status_change: Timestamp,
    /// The threshold event was raised for the current fill.
    pub threshold_raised: bool,
    /// Next auto-refill.
    pub next_refill: Option<Timestamp>,
}

/// Formats a time the way emnify writes expiry dates.
pub(crate) fn format_expiry(t: Timestamp) -> String {
    t.strftime(EXPIRY_FORMAT).to_string()
}

/// Reads an emnify expiry date (`YYYY-MM-DD HH:MM:SS`, UTC).
pub(crate) fn parse_expiry(text: &str) -> Option<Timestamp> {
    jiff::civil::DateTime::strptime(EXPIRY_FORMAT, text)
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

impl Quota {
    /// Reads a `POST /v1/endpoint/{id}/quota/data` body with emnify's validation; the error
    /// names the field.
    pub(crate) fn from_request(body: &Value, now: Timestamp) -> Result<Quota, String> {
        let object = body.as_object().ok_or("the body must be a JSON object")?;
        let status_id = object
            .get("status")
            .ok_or("status is required, e.g. {\"id\": 1}")?
            .get("id")
            .and_then(whole_number)
            .ok_or("status.id must be an integer")?;
        let status = QuotaStatus::from_id(status_id).ok_or_else(|| {
            format!(
                "status.id {status_id} is unknown: use 1 (ACTIVE), 2 (EXHAUSTED) or 3 (EXPIRED)"
            )
        })?;
        let volume = object
            .get("volume")
            .ok_or("volume is required (MB)")?
            .as_f64()
            .ok_or("volume must be a number (MB)")?;
        if !(volume >= 0.0 && volume.is_finite()) {
            return Err("volume must be 0 or more (MB)".into());
        }
        let expiry_text = object
            .get("expiry_date")
            .ok_or("expiry_date is required (YYYY-MM-DD HH:MM:SS, UTC)")?
            .as_str()
            .ok_or("expiry_date must be a string YYYY-MM-DD HH:MM:SS")?;
        let expiry = parse_expiry(expiry_text).ok_or_else(|| {
            format!("expiry_date {expiry_text:?} is not in the format YYYY-MM-DD HH:MM:SS")
        })?;
        if expiry <= now {
            return Err(format!("expiry_date {expiry_text} must be in the future"));
        }
        let action = object
            .get("action_on_exhaustion")
            .ok_or("action_on_exhaustion is required, e.g. {\"id\": 1} (Block)")?
            .get("id")
            .and_then(whole_number)
            .ok_or("action_on_exhaustion.id must be an integer")?;
        match action {
            1 => {}
            2 => {
                return Err(
                    "action_on_exhaustion 2 (Throttle) is deprecated and was decommissioned on 2024-12-09; use 1 (Block)"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "action_on_exhaustion.id {other} is unknown: use 1 (Block)"
                ));
            }
        }
        if object.contains_key("peak_throughput") {
            return Err(
                "peak_throughput is deprecated with throttling and is no longer accepted".into(),
            );
        }
        let auto_refill = match object.get("auto_refill") {
            None => false,
            Some(v) => match whole_number(v) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err("auto_refill must be 0 or 1".into()),
            },
        };
        let threshold_percentage = match object.get("threshold_percentage") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                _ => return Err("threshold_percentage must be a number from 0 to 100".into()),
            },
        };
        let threshold_volume = match object.get("threshold_volume") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(t) if t >= 0.0 => Some(t),
                _ => return Err("threshold_volume must be a number, 0 or more (MB)".into()),
            },
        };
        Ok(Quota {
            id: 0,
            status,
            volume,
            expiry,
            auto_refill,
            threshold_percentage,
            threshold_volume,
            last_volume_added: volume,
            last_status_change: now,
            threshold_raised: false,
            next_refill: auto_refill.then(|| {
                now.saturating_add(SignedDuration::from_hours(24))
                    .unwrap_or(now)
            }),
        })
    }

    /// The quota as emnify's GET returns it (unset thresholds left out: the documented schema
    /// types them as numbers).
    pub(crate) fn to_json(&self) -> Value {
        let mut quota = json!({
            "id": self.id,
            "status": {"id": self.status as u8, "description": self.status.description()},
            "volume": self.volume,
            "expiry_date": format_expiry(self.expiry),
            "action_on_exhaustion": {"id": 1, "description": "Block"},
            "auto_refill": u8::from(self.auto_refill),
            "last_volume_added": self.last_volume_added,
            "last_status_change_date": format_expiry(self.last_status_change),
        });
        if let Some(p) = self.threshold_percentage {
            quota["threshold_percentage"] = json!(p);
        }
        if let Some(v) = self.threshold_volume {
            quota["threshold_volume"] = json!(v);
        }
        quota
    }

    /// The next time this quota changes by itself (expiry or refill), if any.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        if self.status == QuotaStatus::Expired {
            return None;
        }
        Some(match self.next_refill {
            Some(refill) if refill < self.expiry => refill,
            _ => self.expiry,
        })
    }

    /// Applies what is due at `now`: expiry, then refills. True when it expired now.
    pub(crate) fn settle(&mut self, now: Timestamp) -> bool {
        if self.status == QuotaStatus::Expired {
            return false;
        }
        if self.expiry <= now {
            self.status = QuotaStatus::Expired;
            self.last_status_change = self.expiry;
            self.next_refill = None;
            return true;
        }
        while let Some(refill) = self.next_refill.filter(|&r| r <= now) {
            self.volume = self.last_volume_added;
            self.threshold_raised = false;
            if self.status != QuotaStatus::Active {
                self.status = QuotaStatus::Active;
                self.last_status_change = refill;
            }
            self.next_refill = refill.saturating_add(SignedDuration::from_hours(24)).ok();
        }
        false
    }

    /// Uses `mb` of data; returns the events this raises. Data a session used before the block
    /// took hold is still counted: the volume goes below zero, as emnify documents.
    pub fn consume(&mut self, mb: f64, now: Timestamp) -> Vec<EventKind> {
        let mut events = Vec::new();
        self.volume -= mb;
        let below_threshold = self.threshold_percentage.is_some_and(|p| {
            self.last_volume_added > 0.0 && self.volume * 100.0 / self.last_volume_added <= p
        }) || self.threshold_volume.is_some_and(|t| self.volume <= t);
        if below_threshold && !self.threshold_raised && self.volume > 0.0 {
            self.threshold_raised = true;
            events.push(EventKind::ThresholdReached);
        }
        if self.volume <= 0.0 {
            self.status = QuotaStatus::Exhausted;
            self.last_status_change = now;
            events.push(EventKind::UsedUp);
        }
        events
    }
}

/// The events the simulator lists, with emnify's documented event type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// 18: the remaining volume reached the threshold.
    ThresholdReached,
    /// 19: the volume reached zero; the device is blocked.
    UsedUp,
    /// 60: the quota passed its expiry date.
    QuotaExpired,
    /// 56: a quota was assigned (set).
    QuotaAssigned,
    /// 57: a quota was deleted.
    QuotaDeleted,
    /// 42: the endpoint was enabled.
    EndpointEnabled,
    /// 43: the endpoint was disabled.
    EndpointDisabled,
}

impl EventKind {
    /// emnify's event type id.
    pub(crate) fn type_id(self) -> u32 {
        match self {
            EventKind::ThresholdReached => 18,
            EventKind::UsedUp => 19,
            EventKind::QuotaExpired => 60,
            EventKind::QuotaAssigned => 56,
            EventKind::QuotaDeleted => 57,
            EventKind::EndpointEnabled => 42,
            EventKind::EndpointDisabled => 43,
        }
    }

    /// emnify's description of the event type.
    pub fn description(self) -> &'static str {
        match self {
            EventKind::ThresholdReached => "Quota threshold reached",
            EventKind::UsedUp => "Quota used up",
            EventKind::QuotaExpired => "Data quota expired",
            EventKind::QuotaAssigned => "Quota assigned",
            EventKind::QuotaDeleted => "Quota deleted",
            EventKind::EndpointEnabled => "Endpoint enabled",
            EventKind::EndpointDisabled => "Endpoint disabled",
        }
    }
}

/// A JSON number that is a whole number, written `1` or `1.0` (emnify's official client sends
/// status ids as floats).
pub(crate) fn whole_number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
            .map(|f| f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn body(extra: Value) -> Value {
        let mut b = json!({
            "status": {"id": 1}, "volume": 100, "expiry_date": "2026-07-01 00:00:00",
            "action_on_exhaustion": {"id": 1}
        });
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    }

    #[test]
    fn refuses_each_bad_field_by_name() {
        let cases = [
            (
                json!({"expiry_date": "2026-05-01 00:00:00"}),
                "must be in the future",
            ),
            (
                json!({"expiry_date": "2026-07-01T00:00:00Z"}),
                "not in the format",
            ),
            (json!({"action_on_exhaustion": {"id": 2}}), "decommissioned"),
            (json!({"volume": -1}), "volume must be 0 or more"),
            (json!({"status": {"id": 9}}), "status.id 9 is unknown"),
            (json!({"auto_refill": 2}), "auto_refill must be 0 or 1"),
            (json!({"threshold_percentage": 120}), "threshold_percentage"),
        ];
        for (extra, expected) in cases {
            let err = Quota::from_request(&body(extra.clone()), now()).unwrap_err();
            assert!(err.contains(expected), "{extra}: {err}");
        }
        let mut missing = body(json!({}));
        missing.as_object_mut().unwrap().remove("volume");
        assert!(
            Quota::from_request(&missing, now())
                .unwrap_err()
                .contains("volume is required")
        );
    }

    #[test]
    fn consumption_raises_threshold_then_used_up_once_each() {
        let mut q = Quota::from_request(&body(json!({"threshold_percentage": 20})), now()).unwrap();
        assert_eq!(q.consume(50.0, now()), []);
        assert_eq!(q.consume(35.0, now()), [EventKind::ThresholdReached]);
        assert_eq!(q.consume(5.0, now()), []);
        assert_eq!(q.consume(50.0, now()), [EventKind::UsedUp]);
        assert_eq!(q.status, QuotaStatus::Exhausted);
        // Data used past zero is counted: the volume goes negative, as emnify documents.
        assert_eq!(q.volume, -40.0);
    }

    #[test]
    fn expiry_and_daily_refill() {
        let mut q = Quota::from_request(&body(json!({"auto_refill": 1})), now()).unwrap();
        q.consume(100.0, now());
        assert_eq!(q.status, QuotaStatus::Exhausted);
        let next_day = now()
            .saturating_add(SignedDuration::from_hours(25))
            .unwrap();
        assert!(!q.settle(next_day), "a refill is no expiry");
        assert_eq!((q.status, q.volume), (QuotaStatus::Active, 100.0));
        let after_expiry: Timestamp = "2026-07-01T00:00:01Z".parse().unwrap();
        assert!(q.settle(after_expiry), "expired now");
        assert_eq!(q.status, QuotaStatus::Expired);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.to_json()["status"]["description"], "EXPIRED");
    }
}
