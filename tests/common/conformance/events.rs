//! One event store served as core/v1 and events.k8s.io/v1, field selectors, and Secrets' stringData.

use super::*;

const CORE_EVENTS: &str = "/api/v1/namespaces/{ns}/events";
const EVENTS_V1: &str = "/apis/events.k8s.io/v1/namespaces/{ns}/events";

/// An events.k8s.io/v1 Event about SimGroup `group`, as kube's recorder writes it.
fn event_v1(server: &Server, name: &str, group: &str, reason: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2026-06-01T00:00:00.000000Z",
        "regarding": {"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "name": group, "namespace": server.namespace, "uid": format!("uid-{group}")},
        "reason": reason, "type": type_, "note": format!("{reason} on {group}"),
        "action": "Reconcile", "reportingController": "simfleet", "reportingInstance": "pod-1",
    })
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn one_event_store_is_served_through_core_v1_and_events_k8s_io_with_the_field_mapping(
    server: &Server,
) {
    let core_events = server.path(CORE_EVENTS);
    let events_v1 = server.path(EVENTS_V1);
    let (status, created, _) = server
        .call(
            Method::POST,
            &events_v1,
            Some((
                "application/json",
                event_v1(server, "e1", "meters", "ActionSubmitted", "Normal"),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "ActionSubmitted on meters");
    // The same object through core/v1, under core's field names.
    let (status, core, _) = server
        .call(Method::GET, &format!("{core_events}/e1"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "meters");
    assert_eq!(core["message"], "ActionSubmitted on meters");
    assert_eq!(core["reportingComponent"], "simfleet");
    assert_eq!(
        core["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert!(core.get("regarding").is_none() && core.get("note").is_none());
    // A core/v1 write is seen through events.k8s.io.
    let core_event = json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "DataQuota", "name": "q", "namespace": server.namespace}, "reason": "QuotaUsedUp", "type": "Warning", "message": "used up", "count": 1});
    let (status, _, _) = server
        .call(
            Method::POST,
            &core_events,
            Some(("application/json", core_event)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, v1, _) = server
        .call(Method::GET, &format!("{events_v1}/e2"), None)
        .await;
    assert_eq!(
        (
            v1["regarding"]["kind"].clone(),
            v1["note"].clone(),
            v1["deprecatedCount"].clone()
        ),
        (json!("DataQuota"), json!("used up"), json!(1))
    );
    // Both lists hold both events.
    let (_, core_list, _) = server.call(Method::GET, &core_events, None).await;
    let (_, v1_list, _) = server.call(Method::GET, &events_v1, None).await;
    assert_eq!(names(&core_list), ["e1", "e2"]);
    assert_eq!(names(&v1_list), ["e1", "e2"]);
    assert_eq!(v1_list["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v1_list["items"][1]["note"], "used up");
    // Built-in kinds' list items leave apiVersion and kind to the list.
    assert!(v1_list["items"][1].get("apiVersion").is_none(), "{v1_list}");
    // A merge patch of the series through the view (kube's recorder counts repeats so)
    // changes the one object; the note, like the other fields but the series, is immutable there.
    let e1 = format!("{events_v1}/e1");
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-06-01T00:05:00.000000Z"}});
    let (status, patched, _) = server
        .call(
            Method::PATCH,
            &e1,
            Some(("application/merge-patch+json", series)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (_, core, _) = server
        .call(Method::GET, &format!("{core_events}/e1"), None)
        .await;
    assert_eq!(core["series"]["count"], 2);
    let (status, refused, _) = server
        .call(
            Method::PATCH,
            &e1,
            Some(("application/merge-patch+json", json!({"note": "again"}))),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["message"],
        "Event \"e1\" is invalid: message: Invalid value: \"again\": field is immutable"
    );
    // Deleting through one API removes it from both.
    let (status, _, _) = server
        .call(Method::DELETE, &format!("{core_events}/e2"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .call(Method::GET, &format!("{events_v1}/e2"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

pub async fn a_watch_on_core_v1_events_sees_events_written_through_events_k8s_io(server: &Server) {
    let core_events = server.path(CORE_EVENTS);
    let events_v1 = server.path(EVENTS_V1);
    let (_, list, _) = server.call(Method::GET, &core_events, None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .call(
            Method::POST,
            &events_v1,
            Some((
                "application/json",
                event_v1(server, "w1", "meters", "Converged", "Normal"),
            )),
        )
        .await;
    let (_, text, _) = server
        .raw(
            Method::GET,
            &format!("{core_events}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
            &[],
            None,
        )
        .await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["object"]["involvedObject"]["name"], "meters");
    assert_eq!(lines[0]["object"]["apiVersion"], "v1");
}

pub async fn event_field_selectors_select_by_involved_object_reason_and_type(server: &Server) {
    let groups = server.groups();
    let core_events = server.path(CORE_EVENTS);
    let events_v1 = server.path(EVENTS_V1);
    for (name, group, reason, type_) in [
        ("a", "meters", "ActionSubmitted", "Normal"),
        ("b", "meters", "Conflict", "Warning"),
        ("c", "trackers", "ActionSubmitted", "Normal"),
    ] {
        let (status, body, _) = server
            .call(
                Method::POST,
                &events_v1,
                Some((
                    "application/json",
                    event_v1(server, name, group, reason, type_),
                )),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let select = |base: &str, selector: &str| {
        let path = format!(
            "{base}?fieldSelector={}",
            server
                .path(selector)
                .replace(',', "%2C")
                .replace('=', "%3D")
        );
        async move {
            let (status, body, _) = server.call(Method::GET, &path, None).await;
            (status, body)
        }
    };
    // What `kubectl describe` sends.
    let (status, body) = select(&core_events, "involvedObject.name=meters,involvedObject.namespace={ns},involvedObject.kind=SimGroup,involvedObject.uid=uid-meters").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["a", "b"]);
    let (_, body) = select(
        &core_events,
        "involvedObject.apiVersion=simfleet.io/v1alpha1,reason=ActionSubmitted",
    )
    .await;
    assert_eq!(names(&body), ["a", "c"]);
    let (_, body) = select(&core_events, "type=Warning").await;
    assert_eq!(names(&body), ["b"]);
    let (_, body) = select(&core_events, "type!=Warning,involvedObject.name==meters").await;
    assert_eq!(names(&body), ["a"]);
    let (_, body) = select(&core_events, "reportingComponent=simfleet").await;
    assert_eq!(names(&body).len(), 3);
    // events.k8s.io takes regarding.* and reportingController.
    let (status, body) = select(
        &events_v1,
        "regarding.name=trackers,regarding.kind=SimGroup",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["c"]);
    let (_, body) = select(&events_v1, "reportingController=simfleet,reason=Conflict").await;
    assert_eq!(names(&body), ["b"]);
    // A label the resource does not take is refused.
    let (status, body) = select(&events_v1, "involvedObject.name=meters").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"], "field label not supported: involvedObject.name",
        "{body}"
    );
    let (status, _) = select(&groups, "reason=x").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "SimGroups take metadata.* only"
    );
}

pub async fn secret_string_data_is_folded_into_data(server: &Server) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"kept": "a2VwdA==", "apiKey": "b2xk"}, "stringData": {"apiKey": "new-key", "token": "t"}});
    let (status, created, _) = server
        .call(
            Method::POST,
            &server.path("/api/v1/namespaces/{ns}/secrets"),
            Some(("application/json", secret)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("stringData").is_none(), "{created}");
    assert_eq!(
        created["data"],
        json!({"kept": "a2VwdA==", "apiKey": "bmV3LWtleQ==", "token": "dA=="})
    );
    let (status, patched, _) = server
        .call(
            Method::PATCH,
            &server.path("/api/v1/namespaces/{ns}/secrets/s"),
            Some((
                "application/merge-patch+json",
                json!({"stringData": {"token": "rotated"}}),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched.get("stringData").is_none());
    assert_eq!(patched["data"]["token"], "cm90YXRlZA==");
    let (_, stored, _) = server
        .call(
            Method::GET,
            &server.path("/api/v1/namespaces/{ns}/secrets/s"),
            None,
        )
        .await;
    assert_eq!(stored, patched);
    let bad = json!({"metadata": {"name": "t"}, "stringData": {"apiKey": 7}});
    let (status, body, _) = server
        .call(
            Method::POST,
            &server.path("/api/v1/namespaces/{ns}/secrets"),
            Some(("application/json", bad)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal number into Go struct field Secret.stringData of type string",
        "{body}"
    );
}
