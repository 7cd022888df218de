//! Reads: lists with selectors and paging, tables, watches that resume, and a kube::Client
//! listing, watching and patching status.

use super::*;

/// Lists: label selectors, field selectors, limit and continue.
pub async fn lists_filter_and_page(server: &Server) {
    let groups = server.groups();
    for name in ["a", "b", "c"] {
        server.create(name).await;
    }
    server
        .call(
            Method::PATCH,
            &format!("{groups}/b"),
            Some((
                "application/merge-patch+json",
                json!({"metadata": {"labels": {"team": "ops"}}}),
            )),
        )
        .await;
    let names = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, list, _) = server
        .call(
            Method::GET,
            &format!("{groups}?labelSelector=team%3Diot"),
            None,
        )
        .await;
    assert_eq!(names(&list), ["a", "c"]);
    let (_, list, _) = server
        .call(
            Method::GET,
            &format!("{groups}?fieldSelector=metadata.name%3Db"),
            None,
        )
        .await;
    assert_eq!(names(&list), ["b"]);
    let (_, page, _) = server
        .call(Method::GET, &format!("{groups}?limit=2"), None)
        .await;
    assert_eq!(names(&page), ["a", "b"]);
    let token = page["metadata"]["continue"].as_str().unwrap();
    let (_, rest, _) = server
        .call(
            Method::GET,
            &format!("{groups}?limit=2&continue={token}"),
            None,
        )
        .await;
    assert_eq!(names(&rest), ["c"]);
    // The last page: no token (kube-apiserver writes `continue: ""` on a custom resource list;
    // the sandbox leaves it out; clients read both as the end, a listed difference).
    assert_eq!(
        rest["metadata"]["continue"].as_str().unwrap_or_default(),
        "",
        "{}",
        rest["metadata"]
    );
}

/// Tables: `as=Table` renders the CRD's printer columns.
pub async fn tables_render_printer_columns(server: &Server) {
    let groups = server.groups();
    server.create("g").await;
    let (_, text, _) = server
        .raw(
            Method::GET,
            &groups,
            &[(
                "accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )],
            None,
        )
        .await;
    let table: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &columns[..6],
        ["Name", "State", "Selected", "In-State", "Pending", "Ready"]
    );
    assert_eq!(table["rows"][0]["cells"][0], "g");
    assert_eq!(table["rows"][0]["cells"][1], "Paused");
}

/// Watch: resuming from a resourceVersion replays the changes after it, and only those.
pub async fn watches_resume_from_a_version(server: &Server) {
    let groups = server.groups();
    let first = server.create("a").await;
    server.create("b").await;
    let (_, text, _) = server
        .raw(
            Method::GET,
            &format!(
                "{groups}?watch=1&resourceVersion={}&timeoutSeconds=1",
                rv(&first)
            ),
            &[],
            None,
        )
        .await;
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");
}

/// A kube::Client works unchanged: typed list, watcher, status patch (merge and apply).
pub async fn a_kube_client_lists_watches_and_patches_status(server: &Server) {
    let api: Api<SimGroup> = Api::namespaced(server.client.clone(), &server.namespace);
    let group: SimGroup = serde_json::from_value(group("g")).unwrap();
    api.create(&PostParams::default(), &group).await.unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);

    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen_initial = false;
    while let Some(event) = events.try_next().await.unwrap() {
        if let watcher::Event::InitDone = event {
            seen_initial = true;
            break;
        }
    }
    assert!(seen_initial);
    let status = json!({"status": {"observedGeneration": 1, "counts": {"selected": 3, "inDesiredState": 3, "pending": 0, "failed": 0, "ineligible": 0, "pausedBySystem": 0}}});
    api.patch_status("g", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let applied = json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Converged", "message": "3 of 3 SIMs Paused", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(
        "g",
        &PatchParams::apply("simfleet").force(),
        &Patch::Apply(&applied),
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(watcher::Event::Apply(g)) = events.try_next().await.unwrap()
                && g.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
            {
                return g;
            }
        }
    })
    .await
    .expect("the watcher sees the status change");
    let status = event.status.unwrap();
    assert_eq!(status.conditions[0].type_, "Ready");
    assert_eq!(status.counts.unwrap().selected, 3);
}
