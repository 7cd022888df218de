//! The carriers behind one narrow trait: observe SIM states, submit state changes, and manage
//! data quotas. Each carrier only translates; the operator owns the loop.
//!
//! `provider: simulator` uses the Hologram client for SIM states (`{baseUrl}/api/1`) and the
//! emnify client for data quotas (`{baseUrl}/api`): the simulator speaks both protocols, so no
//! third protocol client is needed.

pub mod budget;
pub mod emnify;
pub mod hologram;
pub mod http;
mod simulator;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use jiff::Timestamp;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::api::{CarrierAccountSpec, Provider, StateChange};
pub use emnify::EmnifyClient;
pub use hologram::HologramClient;
pub use http::{CallCounters, HttpSettings};
use simulator::SimulatorClient;

/// Which SIMs to observe: the union of the lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// SIMs by ICCID.
    pub iccids: Vec<String>,
    /// SIMs by the carrier's device (endpoint) id.
    pub device_ids: Vec<u64>,
    /// SIMs whose device carries any of these tags.
    pub tags: Vec<String>,
}

/// A SIM's state as the carrier reports it, in carrier-neutral terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObservedState {
    /// Live: data flows.
    Active,
    /// Paused by the customer.
    Paused,
    /// Paused by the carrier's system (billing, limits).
    PausedBySystem,
    /// A change is in flight at the carrier, towards this state.
    Pending(StateChange),
    /// Cannot change (deactivated, unknown, another organisation); the reason in words.
    Ineligible(String),
    /// A state this client does not know; never taken as success.
    Unknown(String),
}

/// One observed SIM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimObservation {
    /// ICCID (as selected, when the carrier did not find it).
    pub iccid: String,
    /// The carrier's device (endpoint) id, when it knows the SIM.
    pub device_id: Option<u64>,
    /// emnify's SIM id (needed to suspend the SIM itself).
    pub sim_id: Option<u64>,
    /// Normalised state.
    pub state: ObservedState,
    /// The device's carrier tags, when the listing gives them (empty otherwise).
    pub tags: Vec<String>,
}

/// One explicitly listed SIM to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// By ICCID.
    Iccid(String),
    /// By device (endpoint) id.
    Device(u64),
}

impl Lookup {
    /// The observation of a listed SIM the carrier does not know.
    pub fn unknown(self) -> SimObservation {
        let (iccid, device_id, what) = match self {
            Lookup::Iccid(iccid) => (iccid, None, "ICCID"),
            Lookup::Device(id) => (String::new(), Some(id), "device id"),
        };
        SimObservation {
            iccid,
            device_id,
            sim_id: None,
            tags: Vec::new(),
            state: ObservedState::Ineligible(format!(
                "unknown {what} (not in this account or organisation)"
            )),
        }
    }
}

/// The union of a selection as a stream of pages, each SIM once: the listed SIMs first (the
/// client streams them from `listed`, looked up the cheapest way it has), then each tag's pages.
/// `tagged(i, listed)` pages tag `i`, skipping SIMs that carry an earlier tag or whose device id
/// is in `listed`; so only the listed ids (at most 40,000) are remembered, and tag listings of
/// any size stream.
fn union_of_selection<'a>(
    selection: &'a Selection,
    concurrency: usize,
    listed: impl FnOnce(Vec<Lookup>) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>>
    + Send
    + 'a,
    tagged: impl Fn(
        usize,
        Arc<HashSet<u64>>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>>
    + Send
    + 'a,
) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
    let lookups: Vec<Lookup> = selection
        .iccids
        .iter()
        .map(|i| Lookup::Iccid(i.clone()))
        .chain(selection.device_ids.iter().map(|&d| Lookup::Device(d)))
        .collect();
    let listed_ids = Arc::new(Mutex::new(HashSet::new()));
    let record = listed_ids.clone();
    let mut seen = HashSet::new();
    let listed = if lookups.is_empty() {
        stream::empty().boxed()
    } else {
        listed(lookups)
    }
    .map_ok(move |page| {
        // A SIM listed by ICCID and by device id is reported once.
        page.into_iter()
            .filter(|o| {
                let key = o
                    .device_id
                    .map_or_else(|| o.iccid.clone(), |d| d.to_string());
                seen.insert(key)
            })
            .collect::<Vec<_>>()
    })
    .try_filter(|page| futures::future::ready(!page.is_empty()))
    .inspect_ok(move |page| {
        record
            .lock()
            .expect("ids lock")
            .extend(page.iter().filter_map(|o| o.device_id));
    });
    // Tags are listed concurrently: skipping SIMs that carry an earlier tag needs no order.
    let tags = stream::iter(0..selection.tags.len())
        .map(move |index| {
            tagged(
                index,
                Arc::new(listed_ids.lock().expect("ids lock").clone()),
            )
        })
        .flatten_unordered(concurrency);
    listed.chain(tags).boxed()
}

/// Looks each listed SIM up on its own, `concurrency` at a time, in pages of `LOOKUP_PAGE`:
/// for carriers (or selections) where no cheaper way exists.
fn one_by_one<'a>(
    lookups: Vec<Lookup>,
    concurrency: usize,
    lookup: impl Fn(Lookup) -> BoxFuture<'a, Result<SimObservation, CarrierError>> + Send + 'a,
) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
    stream::iter(lookups)
        .map(lookup)
        .buffered(concurrency)
        .try_chunks(LOOKUP_PAGE)
        .map_err(|e| e.1)
        .boxed()
}

/// Listed SIMs looked up one by one are gathered into pages of this many.
const LOOKUP_PAGE: usize = 200;

/// The listed SIMs a page of a full listing holds, as observations (each key once), and the
/// keys still to find; the listed SIMs a finished listing did not find are unknown.
struct ListedSet {
    iccids: HashSet<String>,
    devices: HashSet<u64>,
}

impl ListedSet {
    fn new(lookups: &[Lookup]) -> Self {
        let mut set = Self {
            iccids: HashSet::new(),
            devices: HashSet::new(),
        };
        for key in lookups {
            match key {
                Lookup::Iccid(i) => {
                    set.iccids.insert(i.clone());
                }
                Lookup::Device(d) => {
                    set.devices.insert(*d);
                }
            }
        }
        set
    }

    /// The observations of a listing page that are listed; they are found.
    fn take(&mut self, page: Vec<SimObservation>) -> Vec<SimObservation> {
        page.into_iter()
            .filter(|o| {
                let by_iccid = self.iccids.remove(&o.iccid);
                let by_device = o.device_id.is_some_and(|d| self.devices.remove(&d));
                by_iccid || by_device
            })
            .collect()
    }

    /// The listed SIMs never found, as unknown.
    fn unknown(self) -> Vec<SimObservation> {
        let mut iccids: Vec<String> = self.iccids.into_iter().collect();
        iccids.sort();
        let mut devices: Vec<u64> = self.devices.into_iter().collect();
        devices.sort_unstable();
        iccids
            .into_iter()
            .map(Lookup::Iccid)
            .chain(devices.into_iter().map(Lookup::Device))
            .map(Lookup::unknown)
            .collect()
    }
}

/// A carrier action as the carrier's jobs list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionStatus {
    /// The action (job) id.
    pub id: String,
    /// The carrier's words for its status (e.g. Hologram's `PROCESSING`).
    pub status: String,
    /// True when the carrier says it has finished (Hologram: `timestamp_end` is set).
    pub finished: bool,
}

/// How an observation looks listed SIMs up, and what it costs in calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupPlan {
    /// Many per call, through the carrier's multi-value filters.
    Batched {
        /// Calls.
        calls: u64,
    },
    /// One call per listed SIM.
    OneByOne {
        /// Calls.
        calls: u64,
    },
    /// The organisation's whole listing, filtered here.
    FullListing {
        /// Calls (pages, and one call for the total).
        calls: u64,
    },
}

impl LookupPlan {
    /// Calls it costs.
    pub fn calls(self) -> u64 {
        match self {
            LookupPlan::Batched { calls }
            | LookupPlan::OneByOne { calls }
            | LookupPlan::FullListing { calls } => calls,
        }
    }
}

fn calls_text(calls: u64) -> String {
    if calls == 1 {
        "1 call".into()
    } else {
        format!("{calls} calls")
    }
}

impl std::fmt::Display for LookupPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupPlan::Batched { calls } => write!(f, "batched lookups, {}", calls_text(*calls)),
            LookupPlan::OneByOne { calls } => {
                write!(f, "one lookup per SIM, {}", calls_text(*calls))
            }
            LookupPlan::FullListing { calls } => {
                write!(f, "the full listing, {}", calls_text(*calls))
            }
        }
    }
}

/// A SIM to change, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTarget {
    /// Device (endpoint) id.
    pub device_id: u64,
    /// emnify SIM id, if known.
    pub sim_id: Option<u64>,
}

/// A SIM the carrier did not take into a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Device id.
    pub device_id: u64,
    /// The carrier's reason.
    pub reason: String,
    /// What the operator should make of it.
    pub kind: RefusalKind,
}

/// What a refusal means for the SIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// A transient failure: trying again later may succeed.
    Retryable,
    /// The carrier refused or failed the change.
    Failed,
    /// The carrier says the SIM cannot take the change (deleted, unknown, invalid for it).
    Ineligible,
}

/// What the carrier said to a state change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Submission {
    /// The carrier's action (job) ids, for people to correlate with its dashboard.
    pub action_ids: Vec<String>,
    /// SIMs accepted.
    pub accepted: usize,
    /// SIMs refused up front (or failed), with reasons.
    pub refused: Vec<Refusal>,
}

/// A data quota to set.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaSetting {
    /// Volume in MB.
    pub volume_mb: f64,
    /// Expiry (sent in the carrier's format, UTC).
    pub expiry: Timestamp,
    /// Refill daily.
    pub auto_refill: bool,
    /// Remaining percentage that raises the threshold event.
    pub threshold_percentage: Option<u8>,
}

/// A quota's state at the carrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaState {
    /// Data may flow.
    Active,
    /// Used up; the device is blocked.
    Exhausted,
    /// Past its expiry.
    Expired,
    /// A status this client does not know.
    Unknown(String),
}

/// A device's quota as read from the carrier.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaReading {
    /// State.
    pub state: QuotaState,
    /// Remaining volume in MB.
    pub volume_mb: f64,
    /// Expiry.
    pub expiry: Option<Timestamp>,
    /// Refilled daily.
    pub auto_refill: bool,
    /// Threshold percentage.
    pub threshold_percentage: Option<f64>,
    /// The volume of the last set (what a refill restores; the base of the threshold).
    pub last_volume_added: Option<f64>,
}

/// What a quota event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaEventKind {
    /// "Quota used up": the device is blocked.
    UsedUp,
    /// "Quota threshold reached".
    ThresholdReached,
    /// "Data quota expired".
    Expired,
    /// A quota was assigned (by anyone: this operator, the portal, another client).
    Assigned,
    /// A quota was deleted.
    Deleted,
}

/// A quota event of the organisation, with the device it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceQuotaEvent {
    /// The carrier's device id.
    pub device_id: u64,
    /// The event.
    pub event: QuotaEvent,
}

/// The quota events of an organisation in a time window, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrgQuotaEvents {
    /// The events.
    pub events: Vec<DeviceQuotaEvent>,
    /// False when the listing stopped at its page bound: older events of the window are
    /// missing, so the caller cannot rely on it to say which devices changed.
    pub complete: bool,
}

/// A quota event the carrier listed for a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaEvent {
    /// The carrier's event id.
    pub id: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Which quota event.
    pub kind: QuotaEventKind,
    /// The carrier's description.
    pub description: String,
}

/// What a carrier can do, as the operator uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Most SIMs one `submit` takes.
    pub max_sims_per_action: usize,
    /// True when one request changes many SIMs at the carrier (Hologram's bulk actions,
    /// emnify's `PATCH /v2/endpoint/multi`); false for one call per device.
    pub bulk: bool,
    /// Why this account writes per device although the carrier has a bulk route, and when
    /// the bulk route is tried again.
    pub bulk_unavailable: Option<String>,
    /// True when the carrier supports data quotas.
    pub data_quota: bool,
}

/// Why a carrier call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// The credentials were refused.
    #[error("the carrier refused the credentials: {message}")]
    Unauthorized {
        /// The carrier's words.
        message: String,
    },
    /// Too many requests; retries were exhausted.
    #[error("the carrier is rate limiting (retry after {retry_after:?})")]
    RateLimited {
        /// How long the carrier asked to wait.
        retry_after: Option<Duration>,
    },
    /// The credentials are valid but lack the permission for this request (HTTP 403).
    #[error("the carrier forbids this request for these credentials: {message}")]
    Forbidden {
        /// The carrier's words.
        message: String,
    },
    /// The carrier understood the request and refused what it asks for (HTTP 422).
    #[error("the carrier cannot process the request: {message}")]
    Unprocessable {
        /// The carrier's words.
        message: String,
    },
    /// The carrier refused the request's content (malformed or out of bounds).
    #[error("the carrier refused the request{}: {message}", field.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    Rejected {
        /// The field it names, when it names one.
        field: Option<String>,
        /// The carrier's words.
        message: String,
    },
    /// The resource does not exist.
    #[error("not found at the carrier: {message}")]
    NotFound {
        /// The carrier's words.
        message: String,
    },
    /// The resource is in a state that forbids the change.
    #[error("conflict at the carrier: {message}")]
    Conflict {
        /// The carrier's words.
        message: String,
    },
    /// A timeout, connection failure or 5xx that retries did not overcome.
    #[error("the carrier is unavailable: {message}{}", if *request_sent { " (the request may have been applied: observe before resubmitting)" } else { "" })]
    Transient {
        /// What happened.
        message: String,
        /// True when the carrier may have received (and applied) the request.
        request_sent: bool,
    },
    /// The carrier answered something this client cannot read.
    #[error("unexpected answer from the carrier: {message}")]
    Protocol {
        /// What was wrong with it.
        message: String,
    },
    /// The carrier does not offer this operation.
    #[error("{provider} does not support {what}")]
    Unsupported {
        /// The carrier.
        provider: &'static str,
        /// The operation.
        what: &'static str,
    },
}

/// The external carrier API, narrow and carrier-neutral.
pub trait Carrier: Send + Sync {
    /// What the carrier can do.
    fn capabilities(&self) -> Capabilities;

    /// One cheap authenticated call, to verify the credentials.
    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>>;

    /// Streams the selected SIMs' states, a page at a time; each SIM once.
    fn observe<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>>;

    /// Submits one state change for at most `capabilities().max_sims_per_action` SIMs.
    /// Not retried after a timeout: the caller observes states before trying again.
    fn submit<'a>(
        &'a self,
        change: StateChange,
        sims: &'a [SimTarget],
    ) -> BoxFuture<'a, Result<Submission, CarrierError>>;

    /// The carrier's own status of some of its actions, where it lists its jobs; empty where
    /// it does not. Never a confirmation (observed SIM states are), but it says cheaply when a
    /// full observation would find nothing new.
    fn action_statuses<'a>(
        &'a self,
        _ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ActionStatus>, CarrierError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// A device's data quota, or `None` when it has none.
    fn read_quota(
        &self,
        device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>>;

    /// Sets (replaces) a device's data quota.
    fn set_quota<'a>(
        &'a self,
        device_id: u64,
        quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>>;

    /// Deletes a device's data quota; false when it had none.
    fn delete_quota(&self, device_id: u64) -> BoxFuture<'_, Result<bool, CarrierError>>;

    /// A device's quota events at or after `since` (all of them without it), newest first;
    /// other kinds of event are skipped.
    fn quota_events(
        &self,
        device_id: u64,
        since: Option<Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>>;

    /// Every quota event of the organisation in `window` (from, until), or the newest page of
    /// them without one (threshold reached, used up, expired, assigned, deleted), newest
    /// first, in one listing: it says which devices' quotas changed, so that only those are
    /// read again. `None` when the carrier has no such listing.
    fn org_quota_events(
        &self,
        _window: Option<(Timestamp, Timestamp)>,
    ) -> BoxFuture<'_, Result<Option<OrgQuotaEvents>, CarrierError>> {
        Box::pin(async { Ok(None) })
    }

    /// How the last observation looked its listed SIMs up, and the calls that cost.
    fn last_lookup_plan(&self) -> Option<LookupPlan> {
        None
    }

    /// Counters of the calls made, for metrics.
    fn counters(&self) -> Arc<CallCounters>;
}

/// Builds the client a CarrierAccount describes, with the credential read from its Secret;
/// every request it makes is counted in `ledger`.
pub fn connect(
    spec: &CarrierAccountSpec,
    credential: SecretString,
    settings: HttpSettings,
    ledger: Arc<budget::RequestLedger>,
) -> Result<Arc<dyn Carrier>, CarrierError> {
    let base = spec.effective_base_url().trim_end_matches('/');
    let rate = spec.effective_rate_limit();
    let concurrency = spec.effective_concurrency() as usize;
    let core = |provider, base: String| {
        http::HttpCore::new(
            provider,
            base,
            rate.requests_per_second,
            rate.burst,
            concurrency,
            settings.clone(),
            ledger.clone(),
        )
    };
    Ok(match spec.provider {
        Provider::Hologram => Arc::new(HologramClient::new(
            core("hologram", base.to_owned())?,
            credential,
            spec.org_id,
        )),
        Provider::Simulator => {
            let states = core("simulator", format!("{base}/api/1"))?;
            let quotas = states.sibling("simulator", format!("{base}/api"));
            Arc::new(SimulatorClient {
                states: HologramClient::new(states, credential.clone(), spec.org_id),
                quotas: EmnifyClient::new(quotas, credential, false),
            })
        }
        Provider::Emnify => Arc::new(EmnifyClient::new(
            core("emnify", base.to_owned())?,
            credential,
            spec.suspend_sim_on_pause.unwrap_or(false),
        )),
    })
}
