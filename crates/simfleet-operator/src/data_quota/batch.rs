//! One batch of a DataQuota pass: from the quotas read, what to set, what to journal first, and
//! what became of each device; then how the progress record moves. Pure: the controller reads
//! and sets, this module decides.

use simfleet_api::model::{CallFailure, QuotaReading, QuotaSetting};
use simfleet_api::{DataQuotaSpec, QuotaMode, QuotaProgress, TopUpInFlight};

use super::plan::{DeviceAction, Outcome, RETRY_LIMIT, decide, decide_observed, is_done};
use super::quota_events::may_have_events;
use super::view::Seen;

/// What became of a device whose call failed: a device the carrier does not know, or whose
/// endpoint is deleted, can hold no quota (not retried); anything else failed, refused (a human
/// must look) or transient (tried again).
pub(crate) fn failure_outcome(failure: &CallFailure) -> Outcome<'static> {
    match failure {
        CallFailure::Gone(message) => Outcome::Ineligible(format!(
            "the carrier cannot give this device a quota: {message}"
        )),
        CallFailure::Refused(message) => Outcome::Failed {
            refused: true,
            message: message.clone(),
        },
        CallFailure::Other(message) => Outcome::Failed {
            refused: false,
            message: message.clone(),
        },
    }
}

/// A batch of devices: planned from their readings, completed by the results of the sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct QuotaBatch {
    /// What became of each device so far (a device to set gets its entry when the set ends).
    pub seen: Vec<(u64, Seen)>,
    /// The quotas to set, in device order.
    pub sends: Vec<(u64, QuotaSetting)>,
    /// The top-ups among the sends: journaled in status before any of them is sent.
    pub journal: Vec<TopUpInFlight>,
    /// Devices whose read or set failed (an ineligible device is not among them).
    pub failed: Vec<u64>,
    /// Devices whose quota may have events to report (used up, threshold, expired).
    pub flagged: Vec<u64>,
    /// Devices set in this batch.
    pub set: Vec<u64>,
    /// Devices that have (or are about to be sent) this DataQuota's quota, with its expiry:
    /// for the record that `onDelete: Remove` reads (written before the sends).
    pub ours: Vec<(u64, jiff::Timestamp)>,
}

impl QuotaBatch {
    /// Plans a batch from each device's reading. `observe`: observe-only
    /// (`management: Observe`), which sets nothing and says what it would set.
    pub fn plan(
        spec: &DataQuotaSpec,
        progress: &QuotaProgress,
        observe: bool,
        readings: &[(u64, Result<Option<QuotaReading>, CallFailure>)],
    ) -> Self {
        let mut batch = QuotaBatch::default();
        for (device, reading) in readings {
            let device = *device;
            let reading = match reading {
                Ok(reading) => reading.as_ref(),
                Err(failure) => {
                    batch.record(device, failure_outcome(failure));
                    continue;
                }
            };
            if reading.is_some_and(|r| may_have_events(r, spec.volume_mb)) {
                batch.flagged.push(device);
            }
            if observe {
                let outcome = match decide_observed(spec, progress, device, reading) {
                    DeviceAction::Keep => Outcome::Read(reading),
                    DeviceAction::Missing => Outcome::Missing,
                    DeviceAction::Set(setting) | DeviceAction::TopUp(setting) => {
                        let top_up = spec.mode == QuotaMode::TopUp;
                        let setting = &setting;
                        batch.record(
                            device,
                            Outcome::WouldChange {
                                reading,
                                setting,
                                top_up,
                            },
                        );
                        continue;
                    }
                };
                batch.record(device, outcome);
                continue;
            }
            match decide(spec, progress, device, reading) {
                DeviceAction::Keep => {
                    // Found with the quota this generation declares (set by an earlier pass).
                    if reading.and_then(|r| r.expiry).map(|e| e.as_second())
                        == Some(progress.expiry.0.as_second())
                    {
                        batch.ours.push((device, progress.expiry.0));
                    }
                    batch.record(device, Outcome::Read(reading));
                }
                DeviceAction::Missing => batch.record(device, Outcome::Missing),
                DeviceAction::Set(setting) => {
                    batch.ours.push((device, setting.expiry));
                    batch.sends.push((device, setting));
                }
                DeviceAction::TopUp(setting) => {
                    batch.ours.push((device, setting.expiry));
                    batch.journal.push(TopUpInFlight {
                        device_id: device,
                        volume_mb: setting.volume_mb,
                    });
                    batch.sends.push((device, setting));
                }
            }
        }
        batch
    }

    /// Records how one set ended.
    pub(crate) fn record_set(
        &mut self,
        device: u64,
        setting: &QuotaSetting,
        result: Result<(), &CallFailure>,
    ) {
        match result {
            Ok(()) => {
                self.set.push(device);
                self.record(device, Outcome::Set(setting));
            }
            Err(failure) => self.record(device, failure_outcome(failure)),
        }
    }

    /// Whether the progress record changed in a way worth writing: something was set or failed.
    pub fn moved(&self) -> bool {
        !self.sends.is_empty() || !self.failed.is_empty()
    }

    fn record(&mut self, device: u64, outcome: Outcome<'_>) {
        if matches!(outcome, Outcome::Failed { .. }) {
            self.failed.push(device);
        }
        self.seen.push((device, Seen::of(&outcome)));
    }
}

/// Moves the progress record past a batch (`devices`, ascending): the journal is done with;
/// failed devices not yet applied are listed for retry (at most [`RETRY_LIMIT`]), the batch's
/// others leave the list; a first pass advances `doneThrough` to the batch's last device.
pub fn advance(progress: &mut QuotaProgress, devices: &[u64], failed: &[u64]) {
    progress.top_ups_in_flight.clear();
    // Applied devices that failed are re-checked anyway at the next pass.
    let retry: Vec<u64> = failed
        .iter()
        .copied()
        .filter(|d| !is_done(progress, *d))
        .collect();
    progress.retry_device_ids.retain(|d| !devices.contains(d));
    progress.retry_device_ids.extend(retry);
    progress.retry_device_ids.truncate(RETRY_LIMIT);
    if !progress.complete {
        progress.done_through = devices.last().copied().max(progress.done_through);
    }
}

/// Journals a batch's top-ups in the progress record, to be written before any is sent;
/// false when the batch has none (nothing to write).
pub(crate) fn journal(progress: &mut QuotaProgress, batch: &QuotaBatch) -> bool {
    if batch.journal.is_empty() {
        return false;
    }
    progress.top_ups_in_flight = batch.journal.clone();
    true
}

/// Moves the progress record past a journaled top-up sent again (after a restart): the device
/// is applied, leaves the retry list and the journal.
pub(crate) fn journal_resent(progress: &mut QuotaProgress, device: u64) {
    progress.done_through = progress.done_through.max(Some(device));
    progress.retry_device_ids.retain(|d| *d != device);
    progress.top_ups_in_flight.retain(|e| e.device_id != device);
}

/// Marks the generation applied to every target device, once a pass has gone through them all.
pub(crate) fn finish(progress: &mut QuotaProgress) {
    progress.complete = true;
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
