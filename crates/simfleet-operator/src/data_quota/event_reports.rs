//! The carrier's quota events for a DataQuota: reported once as Kubernetes Events (from the
//! organisation-wide listing, or per device where a carrier has none), and the listing after
//! the operator's own sets that keeps them from looking like changes.

use std::collections::{BTreeMap, BTreeSet};

use kube::runtime::events::EventType;

use crate::controller::Context;
use crate::controller::events::publish;
use crate::data_quota::plan::QuotaTally;
use crate::data_quota::quota_events::EventMark;
use crate::data_quota::view::{QuotaView, Seen, listing_window};
use simfleet_api::DataQuota;
use simfleet_api::model::{OrgQuotaEvents, QuotaEvent, QuotaEventKind};
use simfleet_carrier::Carrier;

/// Where a reconcile finds the carrier's quota events: the organisation-wide listing (its events
/// of the target devices), or, when the carrier has none or it failed this time, one scan per
/// device whose reading suggests an event.
pub(crate) struct EventSource<'a> {
    /// The organisation-wide listing, if the carrier has one.
    pub listing: Option<&'a OrgQuotaEvents>,
    /// The target devices.
    pub targets: &'a BTreeMap<u64, Seen>,
    /// Devices whose reading suggests an event (for per-device scans).
    pub flagged: &'a [u64],
}

/// Marks the "quota assigned" events this reconcile's own sets caused as listed, so that the
/// next reconcile does not read those devices again (one more listing, after the sets). Other
/// events stay new; a portal assignment on a device set moments ago is left to the audit.
pub(crate) async fn absorb_own_assignments(
    carrier: &dyn Carrier,
    view: &mut QuotaView,
    set_now: &BTreeSet<u64>,
    now: jiff::Timestamp,
) {
    match carrier
        .org_quota_events(listing_window(view.anchor, now))
        .await
    {
        Ok(Some(listing)) => {
            let own: Vec<&simfleet_api::model::DeviceQuotaEvent> = listing
                .events
                .iter()
                .filter(|e| {
                    e.event.kind == QuotaEventKind::Assigned && set_now.contains(&e.device_id)
                })
                .collect();
            // Without an anchor yet, the next window starts at the first of these sets, in the
            // carrier's clock: whatever happened after it is listed again.
            if view.anchor.is_none() {
                view.anchor = own.iter().map(|e| e.event.at).min();
            }
            view.listed.extend(own.iter().map(|e| e.event.id));
        }
        Ok(None) => {}
        Err(err) => tracing::debug!(%err, "listing the organisation's quota events failed"),
    }
}

/// Publishes each carrier quota event not reported yet, once; notes the newest "used up" event
/// on each exhausted device (reported now or earlier); returns the new mark.
pub(crate) async fn report_events(
    context: &Context,
    quota: &DataQuota,
    carrier: &dyn Carrier,
    source: EventSource<'_>,
    previous: &simfleet_api::DataQuotaStatus,
    tally: &mut QuotaTally,
) -> EventMark {
    let mark = EventMark::of(previous);
    let since = mark.since();
    let mut scan = mark.scan();
    let reported = |kind: QuotaEventKind| {
        matches!(
            kind,
            QuotaEventKind::UsedUp | QuotaEventKind::ThresholdReached
        )
    };
    let by_device: Vec<(u64, Vec<QuotaEvent>)> = match source.listing {
        Some(listing) => {
            let mut grouped: BTreeMap<u64, Vec<QuotaEvent>> = BTreeMap::new();
            for e in &listing.events {
                if source.targets.contains_key(&e.device_id) && reported(e.event.kind) {
                    grouped
                        .entry(e.device_id)
                        .or_default()
                        .push(e.event.clone());
                }
            }
            grouped.into_iter().collect()
        }
        None => {
            let mut scanned = Vec::new();
            for &device in source.flagged {
                match carrier.quota_events(device, since).await {
                    Ok(events) => scanned.push((device, events)),
                    Err(err) => tracing::debug!(device, %err, "reading quota events failed"),
                }
            }
            scanned
        }
    };
    for (device, events) in by_device {
        // Oldest first, so that events are published in the order they happened.
        for event in events.iter().rev() {
            if !scan.take(event.id, event.at) {
                continue;
            }
            let (reason, type_) = match event.kind {
                QuotaEventKind::UsedUp => ("QuotaUsedUp", EventType::Warning),
                _ => ("QuotaThresholdReached", EventType::Normal),
            };
            let note = format!(
                "device {device}: {} at {} (carrier event {})",
                event.description, event.at, event.id
            );
            publish(context, quota, type_, reason, note).await;
        }
        // The reading may predate an event this scan lists, or follow one reported earlier.
        if let Some(used_up) = events
            .iter()
            .filter(|e| e.kind == QuotaEventKind::UsedUp)
            .max_by_key(|e| (e.at, e.id))
        {
            tally.annotate(
                device,
                "Exhausted",
                &format!("carrier event {}", used_up.id),
            );
        }
    }
    scan.finish()
}
