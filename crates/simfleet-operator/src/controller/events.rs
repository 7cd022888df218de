//! Kubernetes Events: what `kubectl describe` lists about each resource.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::Context;

/// A read the budget holds back: logged, published as a `ReadDeferred` event on the object,
/// and the requeue for when it fits.
pub(crate) async fn read_deferred<K: Resource<DynamicType = ()>>(
    context: &Context,
    object: &K,
    deferred: simfleet_carrier::budget::Deferred,
    now: jiff::Timestamp,
) -> kube::runtime::controller::Action {
    tracing::info!(
        kind = %K::kind(&()),
        name = object.meta().name.as_deref().unwrap_or_default(),
        until = %deferred.until,
        "read deferred: {}",
        deferred.reason
    );
    publish(
        context,
        object,
        EventType::Normal,
        "ReadDeferred",
        format!(
            "{}; the next read is at {}",
            deferred.reason, deferred.until
        ),
    )
    .await;
    let wait = deferred
        .until
        .duration_since(now)
        .max(jiff::SignedDuration::from_secs(1));
    kube::runtime::controller::Action::requeue(wait.unsigned_abs())
}

/// Publishes a Kubernetes Event about an object (a failure to publish is only logged).
pub(crate) async fn publish<K: Resource<DynamicType = ()>>(
    context: &Context,
    object: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    context
        .events
        .publish(&object.object_ref(&()), type_, reason, note)
        .await;
}

/// The longest Event note the API server accepts (1 KiB).
const NOTE_LIMIT: usize = 1024;

/// A note cut to [`NOTE_LIMIT`] bytes at a character boundary, ending in "…" when cut (the API
/// server refuses a longer one, and the event would be lost).
fn bounded_note(note: String) -> String {
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let ellipsis = "…";
    let mut end = NOTE_LIMIT - ellipsis.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &note[..end])
}

/// Publishes Kubernetes Events through kube's recorder. The recorder folds every event of one
/// reason on one object into a series that keeps the first note, so one recorder per (reason,
/// note) is used: true repeats become a series, different events stay apart.
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    recorders: Mutex<HashMap<(String, String), Recorder>>,
}

/// Distinct (reason, note) pairs remembered before the memory is cleared.
const EVENT_RECORDERS: usize = 1000;

impl EventPublisher {
    pub(crate) fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recorders: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an event about `object` (a failure to publish is only logged: events are
    /// best effort).
    pub async fn publish(
        &self,
        object: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let note = bounded_note(note);
        let recorder = {
            let mut recorders = self.recorders.lock().expect("recorders lock");
            if recorders.len() >= EVENT_RECORDERS {
                recorders.clear();
            }
            recorders
                .entry((reason.to_owned(), note.clone()))
                .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
                .clone()
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, object).await {
            tracing::debug!(%err, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_note_stays_within_the_api_servers_limit() {
        let long = "é".repeat(2000);
        let cut = super::bounded_note(long);
        assert!(
            cut.len() <= super::NOTE_LIMIT && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(super::bounded_note("short".into()), "short");
    }
}
