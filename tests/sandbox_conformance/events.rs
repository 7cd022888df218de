//! One event store served as core/v1 and events.k8s.io/v1, field selectors, and Secrets' stringData.

use super::*;

const CORE_EVENTS: &str = "/api/v1/namespaces/default/events";
const EVENTS_V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// An events.k8s.io/v1 Event about SimGroup `group`, as kube's recorder writes it.
fn event_v1(name: &str, group: &str, reason: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2026-06-01T00:00:00.000000Z",
        "regarding": {"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "name": group, "namespace": "default", "uid": format!("uid-{group}")},
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

#[tokio::test]
async fn one_event_store_is_served_through_core_v1_and_events_k8s_io_with_the_field_mapping() {
    let sandbox = sandbox().await;
    let (status, created, _) = call(
        &sandbox,
        Method::POST,
        EVENTS_V1,
        Some((
            "application/json",
            event_v1("e1", "meters", "ActionSubmitted", "Normal"),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "ActionSubmitted on meters");
    // The same object through core/v1, under core's field names.
    let (status, core, _) = call(&sandbox, Method::GET, &format!("{CORE_EVENTS}/e1"), None).await;
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
    let core_event = json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "DataQuota", "name": "q", "namespace": "default"}, "reason": "QuotaUsedUp", "type": "Warning", "message": "used up", "count": 1});
    let (status, _, _) = call(
        &sandbox,
        Method::POST,
        CORE_EVENTS,
        Some(("application/json", core_event)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, v1, _) = call(&sandbox, Method::GET, &format!("{EVENTS_V1}/e2"), None).await;
    assert_eq!(
        (
            v1["regarding"]["kind"].clone(),
            v1["note"].clone(),
            v1["deprecatedCount"].clone()
        ),
        (json!("DataQuota"), json!("used up"), json!(1))
    );
    // Both lists hold both events.
    let (_, core_list, _) = call(&sandbox, Method::GET, CORE_EVENTS, None).await;
    let (_, v1_list, _) = call(&sandbox, Method::GET, EVENTS_V1, None).await;
    assert_eq!(names(&core_list), ["e1", "e2"]);
    assert_eq!(names(&v1_list), ["e1", "e2"]);
    assert_eq!(v1_list["items"][1]["apiVersion"], "events.k8s.io/v1");
    // A merge patch through the view (kube's recorder updates a series so) changes the one object.
    let (status, patched, _) = call(&sandbox, Method::PATCH, &format!("{EVENTS_V1}/e1"), Some(("application/merge-patch+json", json!({"series": {"count": 2, "lastObservedTime": "2026-06-01T00:05:00.000000Z"}, "note": "again"})))).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (_, core, _) = call(&sandbox, Method::GET, &format!("{CORE_EVENTS}/e1"), None).await;
    assert_eq!(
        (core["series"]["count"].clone(), core["message"].clone()),
        (json!(2), json!("again"))
    );
    // Deleting through one API removes it from both.
    let (status, _, _) = call(&sandbox, Method::DELETE, &format!("{CORE_EVENTS}/e2"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&sandbox, Method::GET, &format!("{EVENTS_V1}/e2"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_watch_on_core_v1_events_sees_events_written_through_events_k8s_io() {
    let sandbox = sandbox().await;
    let (_, list, _) = call(&sandbox, Method::GET, CORE_EVENTS, None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &sandbox,
        Method::POST,
        EVENTS_V1,
        Some((
            "application/json",
            event_v1("w1", "meters", "Converged", "Normal"),
        )),
    )
    .await;
    let text = reqwest::get(format!(
        "{}{CORE_EVENTS}?watch=true&resourceVersion={rv}&timeoutSeconds=1",
        sandbox.url()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["object"]["involvedObject"]["name"], "meters");
    assert_eq!(lines[0]["object"]["apiVersion"], "v1");
}

#[tokio::test]
async fn event_field_selectors_select_by_involved_object_reason_and_type() {
    let sandbox = sandbox().await;
    for (name, group, reason, type_) in [
        ("a", "meters", "ActionSubmitted", "Normal"),
        ("b", "meters", "Conflict", "Warning"),
        ("c", "trackers", "ActionSubmitted", "Normal"),
    ] {
        let (status, body, _) = call(
            &sandbox,
            Method::POST,
            EVENTS_V1,
            Some(("application/json", event_v1(name, group, reason, type_))),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let select = |base: &'static str, selector: &'static str| {
        let sandbox = &sandbox;
        async move {
            let (status, body, _) = call(
                sandbox,
                Method::GET,
                &format!(
                    "{base}?fieldSelector={}",
                    selector.replace(',', "%2C").replace('=', "%3D")
                ),
                None,
            )
            .await;
            (status, body)
        }
    };
    // What `kubectl describe` sends.
    let (status, body) = select(CORE_EVENTS, "involvedObject.name=meters,involvedObject.namespace=default,involvedObject.kind=SimGroup,involvedObject.uid=uid-meters").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["a", "b"]);
    let (_, body) = select(
        CORE_EVENTS,
        "involvedObject.apiVersion=simfleet.io/v1alpha1,reason=ActionSubmitted",
    )
    .await;
    assert_eq!(names(&body), ["a", "c"]);
    let (_, body) = select(CORE_EVENTS, "type=Warning").await;
    assert_eq!(names(&body), ["b"]);
    let (_, body) = select(CORE_EVENTS, "type!=Warning,involvedObject.name==meters").await;
    assert_eq!(names(&body), ["a"]);
    let (_, body) = select(CORE_EVENTS, "reportingComponent=simfleet").await;
    assert_eq!(names(&body).len(), 3);
    // events.k8s.io takes regarding.* and reportingController.
    let (status, body) = select(EVENTS_V1, "regarding.name=trackers,regarding.kind=SimGroup").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["c"]);
    let (_, body) = select(EVENTS_V1, "reportingController=simfleet,reason=Conflict").await;
    assert_eq!(names(&body), ["b"]);
    // A label the resource does not take is refused with the ones it does.
    let (status, body) = select(EVENTS_V1, "involvedObject.name=meters").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("regarding.name"),
        "{body}"
    );
    let (status, _) = select(GROUPS, "reason=x").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "SimGroups take metadata.* only"
    );
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let sandbox = sandbox().await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"kept": "a2VwdA==", "apiKey": "b2xk"}, "stringData": {"apiKey": "new-key", "token": "t"}});
    let (status, created, _) = call(
        &sandbox,
        Method::POST,
        "/api/v1/namespaces/default/secrets",
        Some(("application/json", secret)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("stringData").is_none(), "{created}");
    assert_eq!(
        created["data"],
        json!({"kept": "a2VwdA==", "apiKey": "bmV3LWtleQ==", "token": "dA=="})
    );
    let (status, patched, _) = call(
        &sandbox,
        Method::PATCH,
        "/api/v1/namespaces/default/secrets/s",
        Some((
            "application/merge-patch+json",
            json!({"stringData": {"token": "rotated"}}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched.get("stringData").is_none());
    assert_eq!(patched["data"]["token"], "cm90YXRlZA==");
    let (_, stored, _) = call(
        &sandbox,
        Method::GET,
        "/api/v1/namespaces/default/secrets/s",
        None,
    )
    .await;
    assert_eq!(stored, patched);
    let bad = json!({"metadata": {"name": "t"}, "stringData": {"apiKey": 7}});
    let (status, body, _) = call(
        &sandbox,
        Method::POST,
        "/api/v1/namespaces/default/secrets",
        Some(("application/json", bad)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("stringData.apiKey"),
        "{body}"
    );
}
