//! SimGroup, the whole story in one folder: SIMs held in a declared state, Active or Paused,
//! through the carrier's asynchronous bulk actions, with status read as the carrier's
//! pending-activity list.
//!
//! A reconcile (`reconcile`) goes: resolve → observe → plan → act → report.
//! 1. **Resolve** the verified carrier client of its CarrierAccount, the selection and the
//!    approved generation (`crate::resolve`), and the other groups' claims (`claims`).
//! 2. **Observe.** With actions pending, the carrier's jobs list (one call) says whether a full
//!    observation could find anything new (`pending`); the selection's pages are folded into
//!    the planner as they come.
//! 3. **Plan** (`plan`, pure): the actions to submit (bounded by the rollout, the approval
//!    guard and the carrier's limit), the SIMs that cannot change, conflicts, drift, and what
//!    is still in flight (`in_flight`: each action remembers its direction, so a reversed
//!    change converges). An observe-only group plans and reports only (`observe_only`).
//! 4. **Act** (`act`): each action is submitted in order, its SIMs remembered as in flight and
//!    its id written to status before the next is sent; `onDelete: Restore` keeps the record
//!    of earlier states first (`restore` is pure, `restore_store` keeps it in ConfigMaps and
//!    runs the restore on deletion).
//! 5. **Report**: counts, pending actions and conditions (`status`), written once.
//!
//! Where the carrier runs one action of a kind at a time (Soracom), the planned actions after
//! the first wait in a queue (`queue`), and each goes when the carrier says the previous one
//! is final, without observing again in between.
//!
//! When a group is reconciled (what wakes it) is `schedule`. The files without I/O (`plan`, `status`, `in_flight`, `pending`, `claims`,
//! `observe_only`, `queue`, `restore`) are tested without a network.

mod act;
pub mod approval;
pub(crate) mod claims;
pub mod in_flight;
pub(crate) mod memory;
mod observe_only;
pub(crate) mod pending;
pub mod plan;
pub(crate) mod queue;
mod reconcile;
pub(crate) mod restore;
mod restore_store;
mod schedule;

pub use schedule::run;
