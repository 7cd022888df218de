//! The carriers behind one narrow trait: observe SIM states, submit state changes, and manage
//! data quotas. Each carrier only translates; the operator owns the loop.
//!
//! `provider: simulator` uses the Hologram client for SIM states (`{baseUrl}/api/1`) and the
//! emnify client for data quotas (`{baseUrl}/api`): the simulator speaks both protocols, so no
//! third protocol client is needed.

mod auth_guard;
pub mod budget;
pub mod emnify;
pub mod hologram;
pub mod host_limits;
pub mod http;
mod simulator;
pub mod soracom;
mod token_session;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use jiff::Timestamp;
use secrecy::SecretString;

pub use emnify::EmnifyClient;
pub use hologram::HologramClient;
pub use http::CallCounters;
pub use http::HttpSettings;
use simfleet_api::model::{
    ActionStatus, CallFailure, Lookup, LookupPlan, OrgQuotaEvents, QuotaEvent, QuotaReading,
    QuotaSetting, Selection, SimObservation, SimTarget, Submission,
};
use simfleet_api::{CarrierAccountSpec, Provider, StateChange};
use simulator::SimulatorClient;
pub use soracom::SoracomClient;

/// Reads a selection's observation to its end, handing each page to `each` in order; the first
/// failure ends it. One full observation: what a reconcile plans from.
pub async fn observe_each(
    carrier: &dyn Carrier,
    selection: &Selection,
    mut each: impl FnMut(Vec<SimObservation>),
) -> Result<(), CarrierError> {
    let mut pages = carrier.observe(selection);
    while let Some(page) = pages.try_next().await? {
        each(page);
    }
    Ok(())
}

/// What a client has to list a selection: its SIMs looked up by ICCID or device id, and a tag's
/// pages. Every client observes a selection the same way ([`observe_selection`]).
pub(crate) trait SelectionPages: Sync {
    /// The listed SIMs (ICCIDs and device ids), looked up the cheapest way the carrier has.
    fn listed_pages(
        &self,
        lookups: Vec<Lookup>,
    ) -> BoxStream<'_, Result<Vec<SimObservation>, CarrierError>>;
    /// The pages of tag `index` of `selection`, without SIMs of an earlier tag or of `listed`.
    fn tagged<'a>(
        &'a self,
        selection: &'a Selection,
        index: usize,
        listed: Arc<HashSet<u64>>,
    ) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>>;
    /// Requests in flight at most.
    fn concurrency(&self) -> usize;
    /// How the last observation looked its listed SIMs up (reset when one starts).
    fn last_lookup(&self) -> &std::sync::Mutex<Option<LookupPlan>>;
}

/// A client's observation of a selection (its `Carrier::observe`): the listed SIMs, then each
/// tag's pages, each SIM once.
pub(crate) fn observe_selection<'a>(
    carrier: &'a impl SelectionPages,
    selection: &'a Selection,
) -> BoxStream<'a, Result<Vec<SimObservation>, CarrierError>> {
    *carrier.last_lookup().lock().expect("lookup lock") = None;
    union_of_selection(
        selection,
        carrier.concurrency(),
        move |lookups| carrier.listed_pages(lookups),
        move |index, listed| carrier.tagged(selection, index, listed),
    )
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
    /// True when the carrier runs one action (job) of a kind at a time: the next action of
    /// the same change goes only after the previous one is final (Soracom's Batch API).
    pub one_action_at_a_time: bool,
    /// True when one call says whether the pending actions are finished (Hologram's jobs list,
    /// Soracom's job status): they can be looked at often. False where only a full
    /// observation can (emnify).
    pub action_status_in_one_call: bool,
}

impl Capabilities {
    /// The capabilities as a CarrierAccount's status publishes them.
    pub fn published(&self) -> simfleet_api::CarrierCapabilities {
        simfleet_api::CarrierCapabilities {
            max_sims_per_action: u32::try_from(self.max_sims_per_action).unwrap_or(u32::MAX),
            bulk_state_change: self.bulk,
            bulk_state_change_unavailable: self.bulk_unavailable.clone(),
            data_quota: self.data_quota,
        }
    }
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
    /// The client did not try to authenticate: a failure could lock authentication for every
    /// account on the carrier host (see `auth_guard`).
    #[error("{message}")]
    AuthenticationDeferred {
        /// Why, and when it is tried.
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

impl CarrierError {
    /// The failure as the planner tells failures apart.
    pub fn failure(&self) -> CallFailure {
        match self {
            CarrierError::Conflict { message } | CarrierError::NotFound { message } => {
                CallFailure::Gone(message.clone())
            }
            CarrierError::Rejected { .. } | CarrierError::Unprocessable { .. } => {
                CallFailure::Refused(self.to_string())
            }
            _ => CallFailure::Other(self.to_string()),
        }
    }
}

/// The external carrier API, narrow and carrier-neutral.
pub trait Carrier: Send + Sync {
    /// What the carrier can do.
    fn capabilities(&self) -> Capabilities;

    /// One cheap authenticated call, to verify the credentials.
    fn verify(&self) -> BoxFuture<'_, Result<(), CarrierError>>;

    /// What is wrong with a selection for this carrier, if anything (e.g. a Soracom tag
    /// without a value), in words that name the field and the fix.
    fn selection_problem(&self, _selection: &Selection) -> Option<String> {
        None
    }

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

    /// Why this carrier holds no data quotas, in its own words: what the quota methods answer
    /// unless the carrier has them (`capabilities().data_quota`).
    fn no_quotas(&self) -> CarrierError {
        CarrierError::Unsupported {
            provider: "this carrier",
            what: "data quotas",
        }
    }

    /// A device's data quota, or `None` when it has none.
    fn read_quota(
        &self,
        _device_id: u64,
    ) -> BoxFuture<'_, Result<Option<QuotaReading>, CarrierError>> {
        let error = self.no_quotas();
        Box::pin(async move { Err(error) })
    }

    /// Sets (replaces) a device's data quota.
    fn set_quota<'a>(
        &'a self,
        _device_id: u64,
        _quota: &'a QuotaSetting,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        let error = self.no_quotas();
        Box::pin(async move { Err(error) })
    }

    /// Deletes a device's data quota; false when it had none.
    fn delete_quota(&self, _device_id: u64) -> BoxFuture<'_, Result<bool, CarrierError>> {
        let error = self.no_quotas();
        Box::pin(async move { Err(error) })
    }

    /// A device's quota events at or after `since` (all of them without it), newest first;
    /// other kinds of event are skipped.
    fn quota_events(
        &self,
        _device_id: u64,
        _since: Option<Timestamp>,
    ) -> BoxFuture<'_, Result<Vec<QuotaEvent>, CarrierError>> {
        let error = self.no_quotas();
        Box::pin(async move { Err(error) })
    }

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
        Provider::Soracom => {
            // Soracom's routes start with /v1; a base URL given with it works too.
            let base = base.strip_suffix("/v1").unwrap_or(base);
            Arc::new(SoracomClient::new(
                core("soracom", base.to_owned())?,
                &credential,
                spec.suspend_sim_on_pause.unwrap_or(false),
            )?)
        }
        Provider::Emnify => Arc::new(EmnifyClient::new(
            core("emnify", base.to_owned())?,
            credential,
            spec.suspend_sim_on_pause.unwrap_or(false),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_whether_to_try_again() {
        let gone = CarrierError::Conflict {
            message: "endpoint 3 is deleted".into(),
        };
        assert_eq!(
            gone.failure(),
            CallFailure::Gone("endpoint 3 is deleted".into())
        );
        let unknown = CarrierError::NotFound {
            message: "no device 9".into(),
        };
        assert_eq!(unknown.failure(), CallFailure::Gone("no device 9".into()));
        let refused = CarrierError::Unprocessable {
            message: "volume out of bounds".into(),
        };
        assert_eq!(
            refused.failure(),
            CallFailure::Refused(
                "the carrier cannot process the request: volume out of bounds".into()
            )
        );
        let rejected = CarrierError::Rejected {
            field: Some("volume".into()),
            message: "too large".into(),
        };
        assert!(matches!(rejected.failure(), CallFailure::Refused(_)));
        let down = CarrierError::Transient {
            message: "503".into(),
            request_sent: true,
        };
        assert!(
            matches!(down.failure(), CallFailure::Other(m) if m.contains("may have been applied"))
        );
    }
}
