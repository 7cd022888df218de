//! Where a DataQuota's record of the quotas it set is kept (ConfigMaps `<quota>-quotas-<n>`),
//! and `onDelete: Remove`, which reads it: only recorded devices whose quota is still the one
//! this DataQuota set lose it.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};

use crate::controller::records::{self, RecordKind};
use crate::controller::{Context, Error};
use crate::data_quota::record::{CHUNK_BYTES, QuotaRecord};
use simfleet_api::DataQuota;
use simfleet_carrier::Carrier;

/// A DataQuota's record as loaded, and what is stored of it (so a save writes only the chunks
/// that changed).
pub(crate) struct StoredRecord {
    pub(crate) record: QuotaRecord,
    stored: Vec<BTreeMap<String, String>>,
}

const QUOTA_RECORD: RecordKind = RecordKind {
    label: "simfleet.io/quota-record-of",
    suffix: "quotas",
    description: "The devices whose quota this DataQuota set, with the quota's expiry, for onDelete: Remove (only those are removed, and only while their quota is still this one). Kept by the operator; do not edit.",
};

/// Reads a DataQuota's record (empty when none was written).
pub(crate) async fn load(client: &kube::Client, quota: &DataQuota) -> Result<StoredRecord, Error> {
    let stored = records::load(client, &QUOTA_RECORD, quota).await?;
    let record =
        QuotaRecord::from_chunks(&stored).map_err(|e| Error::RestoreRecord(e.to_string()))?;
    Ok(StoredRecord { record, stored })
}

/// Notes devices and writes the changed chunks, before their quotas are sent.
pub(crate) async fn note(
    client: &kube::Client,
    quota: &DataQuota,
    held: &mut StoredRecord,
    devices: &[(u64, jiff::Timestamp)],
) -> Result<(), Error> {
    if held.record.note(devices) {
        held.stored = records::save(
            client,
            &QUOTA_RECORD,
            quota,
            &held.stored,
            held.record.to_chunks(CHUNK_BYTES),
        )
        .await?;
    }
    Ok(())
}

/// What a removal did.
pub(crate) struct Removal {
    /// Quotas removed.
    pub(crate) removed: usize,
    /// Recorded devices whose quota someone else set since: kept.
    pub(crate) kept: usize,
    /// Recorded devices that have no quota now.
    pub(crate) absent: usize,
}

/// Removes the quota of each recorded device whose quota is still the recorded one, reading
/// each first, up to `in_flight` at once; then deletes the record.
pub(crate) async fn remove_recorded(
    context: &Context,
    quota: &DataQuota,
    carrier: &dyn Carrier,
    record: &QuotaRecord,
    in_flight: usize,
) -> Result<Removal, Error> {
    let outcomes: Vec<Option<bool>> = stream::iter(record.devices())
        .map(|device| async move {
            let reading = match carrier.read_quota(device).await {
                Ok(reading) => reading,
                // Gone from the carrier: nothing to remove.
                Err(err) if matches!(err.failure(), simfleet_api::model::CallFailure::Gone(_)) => {
                    None
                }
                Err(err) => return Err(Error::Carrier(err)),
            };
            if reading.is_none() {
                return Ok(None);
            }
            if !record.still_ours(device, reading.as_ref()) {
                return Ok(Some(false));
            }
            carrier.delete_quota(device).await?;
            Ok(Some(true))
        })
        .buffered(in_flight)
        .try_collect()
        .await?;
    records::remove(&context.client, &QUOTA_RECORD, quota).await?;
    Ok(Removal {
        removed: outcomes.iter().filter(|o| **o == Some(true)).count(),
        kept: outcomes.iter().filter(|o| **o == Some(false)).count(),
        absent: outcomes.iter().filter(|o| o.is_none()).count(),
    })
}

/// Removes a DataQuota's record, whatever is in it (its ConfigMaps' finalizers released).
pub(crate) async fn release(client: &kube::Client, quota: &DataQuota) -> Result<(), Error> {
    records::remove(client, &QUOTA_RECORD, quota).await
}
