//! DataQuota, the whole story in one folder: a per-device data quota, set where it differs from
//! the spec, topped up where the spec says, kept until the next expiry, and removed on deletion
//! when asked.
//!
//! A pass (`reconcile`) goes one batch of 100 devices at a time:
//! 1. **Resolve** the target devices (`targets`: device ids, tags, or a SimGroup's SIMs), and
//!    this generation's progress record (`plan::progress_for`); claim them among the other
//!    DataQuotas on the carrier organisation (`peers`, with the registry in `claims`): devices
//!    another declares another quota for are left to that conflict.
//! 2. **A journal left by a crash** is sent as it is: a top-up computed before the crash is never
//!    read and added again (`batch`).
//! 3. **Observe.** One listing of the organisation's quota events says which devices changed
//!    since the last pass (`view`, what the operator last saw of each device); only those, and the
//!    audit's slice, are read. Between passes, `event_poll` lists each account's quota events
//!    once a minute and wakes the DataQuotas whose devices they name.
//! 4. **Plan** a batch (`plan`, `batch`, pure): the quotas to set, the top-ups to journal first,
//!    what became of each device, and how progress moves.
//! 5. **Act**: the journal reaches status, the batch's sets are sent, progress is written.
//! 6. **Report**: counts and conditions (`plan::status`), the carrier's quota events once
//!    (`quota_events` is the pure mark, `event_reports` publishes them as Kubernetes Events), and the record that
//!    `onDelete: Remove` reads (`record` is pure, `record_store` keeps it in ConfigMaps).
//!
//! When a DataQuota is reconciled (what wakes it, and when it comes back) is `schedule`.
//! The files without I/O (`plan`, `batch`, `view`, `quota_events`, `record`, `schedule`) are tested
//! without a network.

pub(crate) mod batch;
pub(crate) mod claims;
pub(crate) mod event_poll;
mod event_reports;
pub(crate) mod memory;
mod peers;
pub mod plan;
pub(crate) mod quota_events;
pub(crate) mod reconcile;
pub(crate) mod record;
mod record_store;
pub mod schedule;
pub(crate) mod targets;
pub(crate) mod view;

pub use reconcile::run;
