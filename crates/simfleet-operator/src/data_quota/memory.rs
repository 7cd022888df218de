//! What this process remembers of each DataQuota between its reconciles, keyed by the quota
//! (`ObjectRef`): what it last saw of its devices (its view, which spares a read until the
//! resync), how often it was woken (a pass woken while it ran keeps no view, so that the
//! reconcile that follows looks again in full), and what its last resync cost in requests.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use simfleet_api::{DataQuota, DataQuotaStatus};

use super::view::QuotaView;

/// A DataQuota, as its memory is keyed.
pub(crate) type QuotaRef = ObjectRef<DataQuota>;

/// Each DataQuota's memory in this process.
#[derive(Default)]
pub(crate) struct QuotaMemory {
    views: Mutex<HashMap<QuotaRef, QuotaView>>,
    wakes: Mutex<HashMap<QuotaRef, u64>>,
    requests: Mutex<HashMap<QuotaRef, u64>>,
}

impl QuotaMemory {
    /// How long the quota's view says to wait before its next read (none: read now).
    pub(crate) fn until_resync(
        &self,
        quota: &QuotaRef,
        trigger: u64,
        status: Option<&DataQuotaStatus>,
        now: Timestamp,
    ) -> Option<std::time::Duration> {
        self.views
            .lock()
            .expect("views lock")
            .get(quota)
            .and_then(|view| view.until_resync(trigger, status, now))
    }

    /// Takes the quota's view for a pass (it is kept again at the pass's end).
    pub(crate) fn take_view(&self, quota: &QuotaRef) -> Option<QuotaView> {
        self.views.lock().expect("views lock").remove(quota)
    }

    /// Keeps the view a pass ends with, unless the quota was woken since the pass began
    /// (`wakes` then): a claim or a SimGroup changed while it ran, which it may not have seen.
    pub(crate) fn keep_view(&self, quota: &QuotaRef, view: QuotaView, wakes: u64) {
        let woken = self.wakes.lock().expect("wakes lock");
        if woken.get(quota).copied().unwrap_or(0) == wakes {
            self.views
                .lock()
                .expect("views lock")
                .insert(quota.clone(), view);
        }
    }

    /// Makes the quota's view due now (its next reconcile reads instead of waiting for the
    /// resync); the view itself is kept.
    pub(crate) fn due_now(&self, quota: &QuotaRef, now: Timestamp) {
        if let Some(view) = self.views.lock().expect("views lock").get_mut(quota) {
            view.due_at = view.due_at.min(now);
        }
    }

    /// Drops the quota's view and counts a wake: its next reconcile reads its targets again,
    /// and a pass that is running keeps no view.
    pub(crate) fn woken(&self, quota: &QuotaRef) {
        let mut wakes = self.wakes.lock().expect("wakes lock");
        self.views.lock().expect("views lock").remove(quota);
        *wakes.entry(quota.clone()).or_default() += 1;
    }

    /// How often the quota was woken so far: a pass notes it before it claims its devices.
    pub(crate) fn wakes(&self, quota: &QuotaRef) -> u64 {
        self.wakes
            .lock()
            .expect("wakes lock")
            .get(quota)
            .copied()
            .unwrap_or(0)
    }

    /// What the quota's last resync that reached the carrier cost, in requests.
    pub(crate) fn requests(&self, quota: &QuotaRef) -> Option<u64> {
        self.requests
            .lock()
            .expect("costs lock")
            .get(quota)
            .copied()
    }

    /// Records what a resync of the quota cost.
    pub(crate) fn requests_were(&self, quota: &QuotaRef, requests: u64) {
        self.requests
            .lock()
            .expect("costs lock")
            .insert(quota.clone(), requests);
    }

    /// Forgets a deleted quota's view and cost. Its wake count stays: a pass still running
    /// must see that it was woken.
    pub(crate) fn forget(&self, quota: &QuotaRef) {
        self.views.lock().expect("views lock").remove(quota);
        self.requests.lock().expect("costs lock").remove(quota);
    }
}
