//! `onDelete: Remove` for DataQuotas: the record of the devices whose quota this DataQuota set
//! (or found as it declares it), with the expiry it set. The expiry tells its quota apart: a
//! quota someone else set later (another DataQuota, the carrier's portal) has another one. On
//! deletion only recorded devices whose quota still has the recorded expiry are removed, so a
//! device that joined the target later, or whose quota someone else set, keeps its quota. Pure.

use std::collections::BTreeMap;

use jiff::Timestamp;

use simfleet_api::model::QuotaReading;

/// Chunk key listing `DEVICE EXPIRY` lines (expiry in Unix seconds).
pub(crate) const SET_QUOTAS: &str = "setQuotas";

/// Bytes of entries per stored chunk: a ConfigMap holds at most 1 MiB in all.
pub(crate) const CHUNK_BYTES: usize = 900 * 1024;

/// The devices a DataQuota gave its quota, and the expiry of that quota.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QuotaRecord {
    set: BTreeMap<u64, i64>,
}

/// A stored record could not be read.
#[derive(Debug, thiserror::Error)]
#[error("quota record: {entry:?} is not `DEVICE EXPIRY` (two whole numbers)")]
pub(crate) struct QuotaRecordError {
    entry: String,
}

impl QuotaRecord {
    /// Whether no device is recorded.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// How many devices are recorded.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// The recorded devices, ascending.
    pub fn devices(&self) -> impl Iterator<Item = u64> + '_ {
        self.set.keys().copied()
    }

    /// Notes devices given (or found with) this DataQuota's quota; returns whether anything
    /// changed.
    pub fn note(&mut self, devices: &[(u64, Timestamp)]) -> bool {
        let mut changed = false;
        for (device, expiry) in devices {
            let expiry = expiry.as_second();
            if self.set.insert(*device, expiry) != Some(expiry) {
                changed = true;
            }
        }
        changed
    }

    /// Whether `device` was given (or found with) the quota of expiry `expiry` (Unix seconds).
    pub fn gave(&self, device: u64, expiry: i64) -> bool {
        self.set.get(&device) == Some(&expiry)
    }

    /// Whether the quota read from `device` is still the one this DataQuota set.
    pub fn still_ours(&self, device: u64, reading: Option<&QuotaReading>) -> bool {
        let Some(recorded) = self.set.get(&device) else {
            return false;
        };
        reading
            .and_then(|r| r.expiry)
            .is_some_and(|expiry| expiry.as_second() == *recorded)
    }

    /// The record as chunks of string data (one ConfigMap each), each at most `max_bytes`.
    pub(crate) fn to_chunks(&self, max_bytes: usize) -> Vec<BTreeMap<String, String>> {
        let mut chunks = Vec::new();
        let mut current = String::new();
        for (device, expiry) in &self.set {
            let line = format!("{device} {expiry}\n");
            if !current.is_empty() && current.len() + line.len() > max_bytes {
                chunks.push(std::mem::take(&mut current));
            }
            current.push_str(&line);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
            .into_iter()
            .map(|data| BTreeMap::from([(SET_QUOTAS.to_owned(), data)]))
            .collect()
    }

    /// Reads a record back from its chunks.
    pub(crate) fn from_chunks<'a>(
        chunks: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    ) -> Result<Self, QuotaRecordError> {
        let mut record = Self::default();
        for chunk in chunks {
            for line in chunk
                .get(SET_QUOTAS)
                .map(String::as_str)
                .unwrap_or("")
                .lines()
            {
                let bad = || QuotaRecordError {
                    entry: line.to_owned(),
                };
                let (device, expiry) = line.split_once(' ').ok_or_else(bad)?;
                record.set.insert(
                    device.parse().map_err(|_| bad())?,
                    expiry.parse().map_err(|_| bad())?,
                );
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simfleet_api::model::QuotaState;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn reading(expiry: &str) -> QuotaReading {
        QuotaReading {
            state: QuotaState::Active,
            volume_mb: 10.0,
            expiry: Some(at(expiry)),
            auto_refill: false,
            threshold_percentage: None,
            last_volume_added: None,
        }
    }

    #[test]
    fn only_a_recorded_device_whose_quota_still_has_the_recorded_expiry_is_ours() {
        let mut record = QuotaRecord::default();
        assert!(record.note(&[(7, at("2026-12-31T00:00:00Z"))]));
        assert!(
            !record.note(&[(7, at("2026-12-31T00:00:00Z"))]),
            "unchanged"
        );
        assert!(record.still_ours(7, Some(&reading("2026-12-31T00:00:00Z"))));
        // Someone set another quota since: not ours any more.
        assert!(!record.still_ours(7, Some(&reading("2027-01-31T00:00:00Z"))));
        assert!(!record.still_ours(7, None), "no quota: nothing to remove");
        // A device this DataQuota never set (it joined the tag later, or another one set it).
        assert!(!record.still_ours(8, Some(&reading("2026-12-31T00:00:00Z"))));
    }

    #[test]
    fn chunks_stay_under_the_byte_bound_and_read_back_whole() {
        let mut record = QuotaRecord::default();
        let entries: Vec<(u64, Timestamp)> = (0..5_000u64)
            .map(|d| (u64::MAX - d, at("2026-12-31T00:00:00Z")))
            .collect();
        record.note(&entries);
        let chunks = record.to_chunks(10_000);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c[SET_QUOTAS].len() <= 10_000));
        assert_eq!(QuotaRecord::from_chunks(&chunks).unwrap(), record);
        let bad = BTreeMap::from([(SET_QUOTAS.to_owned(), "12 x\n".to_owned())]);
        let err = QuotaRecord::from_chunks([&bad]).unwrap_err().to_string();
        assert!(err.contains("\"12 x\""), "{err}");
    }
}
