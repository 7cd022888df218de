//! The quotas of the simulated world: set and deleted (each a "Quota assigned" or deleted event),
//! consumed, used up at their deadlines.

use jiff::Timestamp;

use super::{Event, World};
use crate::quota::{EventKind, Quota, QuotaStatus};

impl World {
    /// Sets (replaces) a device's quota ("Quota assigned").
    pub fn set_quota(&mut self, row: u32, mut quota: Quota, now: Timestamp) {
        self.forget_deadline(row);
        if let Some(next) = quota.next_deadline() {
            self.quota_deadlines.insert((next, row));
        }
        quota.id = self.next_quota;
        self.next_quota += 1;
        self.fleet.sim_mut(row).quota = Some(Box::new(quota));
        self.record_event(row, EventKind::QuotaAssigned, now);
    }

    /// Deletes a device's quota ("Quota deleted"); false when it had none.
    pub fn delete_quota(&mut self, row: u32, now: Timestamp) -> bool {
        self.forget_deadline(row);
        let had = self.fleet.sim_mut(row).quota.take().is_some();
        if had {
            self.record_event(row, EventKind::QuotaDeleted, now);
        }
        had
    }

    /// Records an event about a row.
    pub(super) fn record_event(&mut self, row: u32, kind: EventKind, at: Timestamp) {
        let id = self.next_event;
        self.next_event += 1;
        self.events_of
            .entry(row)
            .or_default()
            .push(self.events.len());
        self.events.push(Event { id, at, kind, row });
    }

    pub(super) fn forget_deadline(&mut self, row: u32) {
        if let Some(next) = self
            .fleet
            .sim(row)
            .quota
            .as_deref()
            .and_then(Quota::next_deadline)
        {
            self.quota_deadlines.remove(&(next, row));
        }
    }

    /// Uses data on a device; the error says why data cannot flow.
    pub fn consume(&mut self, row: u32, mb: f64, now: Timestamp) -> Result<&Quota, String> {
        let sim = self.fleet.sim_mut(row);
        let quota = sim
            .quota
            .as_deref_mut()
            .ok_or("the device has no data quota, so it is denied data")?;
        if quota.status != QuotaStatus::Active {
            return Err(format!(
                "the device's quota is {}, so it is denied data",
                quota.status.description()
            ));
        }
        let raised = quota.consume(mb, now);
        for kind in raised {
            self.record_event(row, kind, now);
        }
        Ok(self.fleet.sim(row).quota.as_deref().expect("checked above"))
    }
}
