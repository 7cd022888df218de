//! One event store behind two APIs, as kube-apiserver keeps it: events are stored as core/v1
//! Events, and `events.k8s.io/v1` is a view of the same objects with its own field names
//! (`regarding` for `involvedObject`, `note` for `message`, ...), converted on the way in and
//! out. So an event the operator writes through `events.k8s.io` is what `kubectl describe` and
//! `kubectl get events` read through `core/v1`.

use serde_json::{Map, Value};

/// `events.k8s.io/v1` field names and the core/v1 names they are stored under (the fields of
/// the same name in both, such as `reason`, `type`, `eventTime`, `series`, are copied as they are).
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// A view of stored objects under another API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// `events.k8s.io/v1` Events over core/v1 Events.
    EventsV1,
}

impl View {
    /// An object written through the view, as it is stored.
    pub(crate) fn to_stored(self, object: Value) -> Value {
        match self {
            View::EventsV1 => rename(object, "v1", |field| {
                RENAMED.iter().find(|(v, _)| *v == field).map(|(_, c)| *c)
            }),
        }
    }

    /// A stored object, as the view shows it.
    pub(crate) fn to_view(self, object: Value) -> Value {
        match self {
            View::EventsV1 => rename(object, "events.k8s.io/v1", |field| {
                RENAMED.iter().find(|(_, c)| *c == field).map(|(v, _)| *v)
            }),
        }
    }
}

/// The core fields an update through `events.k8s.io/v1` may not change (kube-apiserver's
/// `ValidateEventUpdate`): only `series` and metadata may.
const IMMUTABLE_THROUGH_EVENTS_V1: [&str; 13] = [
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
];

impl View {
    /// The immutable fields (stored names) an update through the view would change, with the
    /// new value as JSON text.
    pub(crate) fn immutable_changes(
        self,
        stored: &Value,
        updated: &Value,
    ) -> Vec<(String, String)> {
        match self {
            View::EventsV1 => IMMUTABLE_THROUGH_EVENTS_V1
                .iter()
                .filter(|field| stored.get(**field) != updated.get(**field))
                .map(|field| {
                    let value = updated.get(*field).cloned().unwrap_or(Value::Null);
                    ((*field).to_owned(), value.to_string())
                })
                .collect(),
        }
    }
}

/// Renames the top-level fields `renamed` maps and sets `apiVersion`. A field whose name the
/// other version uses for something else (`message` in a view object) is dropped, as the API
/// server's conversion drops what the target version has no place for.
fn rename(
    object: Value,
    api_version: &str,
    renamed: impl Fn(&str) -> Option<&'static str>,
) -> Value {
    let Value::Object(fields) = object else {
        return object;
    };
    let targets: Vec<&str> = RENAMED.iter().flat_map(|(v, c)| [*v, *c]).collect();
    let mut out = Map::new();
    for (key, value) in fields {
        match renamed(&key) {
            Some(to) => {
                out.insert(to.to_owned(), value);
            }
            None if targets.contains(&key.as_str()) => {}
            None => {
                out.insert(key, value);
            }
        }
    }
    out.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// Which field selectors a resource takes, as kube-apiserver registers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum FieldLabels {
    /// `metadata.name` and `metadata.namespace` only.
    #[default]
    Metadata,
    /// core/v1 Events: also `involvedObject.*`, `reason`, `type`, `source`, `reportingComponent`.
    CoreEvents,
    /// `events.k8s.io/v1` Events: also `regarding.*`, `reason`, `type`, `reportingController`,
    /// `deprecatedSource`.
    EventsV1,
}

/// The object reference fields an event's subject can be selected by.
const REFERENCE_FIELDS: [&str; 7] = [
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
];

impl FieldLabels {
    /// The path (dot-separated, in the stored object) a field selector label reads, or `None`
    /// when the resource does not take that label.
    pub fn path(self, label: &str) -> Option<String> {
        if matches!(label, "metadata.name" | "metadata.namespace") {
            return Some(label.to_owned());
        }
        let reference = |prefix: &str| {
            label
                .strip_prefix(prefix)
                .filter(|f| REFERENCE_FIELDS.contains(f))
                .map(|f| format!("involvedObject.{f}"))
        };
        match self {
            FieldLabels::Metadata => None,
            FieldLabels::CoreEvents => reference("involvedObject.").or_else(|| match label {
                "reason" | "type" | "reportingComponent" => Some(label.to_owned()),
                "source" => Some("source.component".into()),
                _ => None,
            }),
            FieldLabels::EventsV1 => reference("regarding.").or_else(|| match label {
                "reason" | "type" => Some(label.to_owned()),
                "reportingController" => Some("reportingComponent".into()),
                "deprecatedSource" => Some("source.component".into()),
                _ => None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_events_v1_event_is_stored_as_a_core_event_and_shown_back_the_same() {
        let view = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "regarding": {"kind": "SimGroup", "name": "g", "namespace": "default"},
            "note": "submitted", "reason": "ActionSubmitted", "type": "Normal",
            "action": "Reconcile", "reportingController": "simfleet", "reportingInstance": "pod-1",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "deprecatedCount": 3,
        });
        let stored = View::EventsV1.to_stored(view.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "g");
        assert_eq!(stored["message"], "submitted");
        assert_eq!(stored["reportingComponent"], "simfleet");
        assert_eq!(stored["count"], 3);
        assert_eq!(stored["series"]["count"], 2);
        assert!(stored.get("regarding").is_none() && stored.get("note").is_none());
        assert_eq!(View::EventsV1.to_view(stored), view);
    }

    #[test]
    fn event_field_selectors_map_to_the_stored_fields() {
        assert_eq!(
            FieldLabels::CoreEvents
                .path("involvedObject.uid")
                .as_deref(),
            Some("involvedObject.uid")
        );
        assert_eq!(
            FieldLabels::EventsV1.path("regarding.name").as_deref(),
            Some("involvedObject.name")
        );
        assert_eq!(
            FieldLabels::EventsV1.path("reportingController").as_deref(),
            Some("reportingComponent")
        );
        assert_eq!(
            FieldLabels::CoreEvents.path("source").as_deref(),
            Some("source.component")
        );
        assert_eq!(FieldLabels::EventsV1.path("involvedObject.name"), None);
        assert_eq!(FieldLabels::CoreEvents.path("regarding.name"), None);
        assert_eq!(FieldLabels::Metadata.path("reason"), None);
        assert_eq!(
            FieldLabels::Metadata.path("metadata.name").as_deref(),
            Some("metadata.name")
        );
    }
}
