//! Reads: lists with selectors and paging, tables, watches that resume, and a kube::Client
//! listing, watching and patching status.

use super::*;

/// Lists: label selectors, field selectors, limit and continue.
#[tokio::test]
async fn lists_filter_and_page() {
    let sandbox = sandbox().await;
    for name in ["a", "b", "c"] {
        create(&sandbox, name).await;
    }
    call(
        &sandbox,
        Method::PATCH,
        &format!("{GROUPS}/b"),
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
    let (_, list, _) = call(
        &sandbox,
        Method::GET,
        &format!("{GROUPS}?labelSelector=team%3Diot"),
        None,
    )
    .await;
    assert_eq!(names(&list), ["a", "c"]);
    let (_, list, _) = call(
        &sandbox,
        Method::GET,
        &format!("{GROUPS}?fieldSelector=metadata.name%3Db"),
        None,
    )
    .await;
    assert_eq!(names(&list), ["b"]);
    let (_, page, _) = call(&sandbox, Method::GET, &format!("{GROUPS}?limit=2"), None).await;
    assert_eq!(names(&page), ["a", "b"]);
    let token = page["metadata"]["continue"].as_str().unwrap();
    let (_, rest, _) = call(
        &sandbox,
        Method::GET,
        &format!("{GROUPS}?limit=2&continue={token}"),
        None,
    )
    .await;
    assert_eq!(names(&rest), ["c"]);
    assert!(rest["metadata"].get("continue").is_none());
}

/// Tables: `as=Table` renders the CRD's printer columns.
#[tokio::test]
async fn tables_render_printer_columns() {
    let sandbox = sandbox().await;
    create(&sandbox, "g").await;
    let response = reqwest::Client::new()
        .get(format!("{}{GROUPS}", sandbox.url()))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let table: Value = response.json().await.unwrap();
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

/// Watch: resuming from a resourceVersion replays later changes; one older than the server
/// keeps gives a 410 Gone (Expired) ERROR event.
#[tokio::test]
async fn watches_resume_from_a_version_and_too_old_ones_are_gone() {
    let sandbox = Sandbox::start(SandboxConfig {
        watch_log: 5,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let first = create(&sandbox, "a").await;
    create(&sandbox, "b").await;
    let response = reqwest::Client::new()
        .get(format!(
            "{}{GROUPS}?watch=1&resourceVersion={}&timeoutSeconds=1",
            sandbox.url(),
            rv(&first)
        ))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");
    for i in 0..6 {
        create(&sandbox, &format!("x{i}")).await;
    }
    let response = reqwest::Client::new()
        .get(format!(
            "{}{GROUPS}?watch=1&resourceVersion={}",
            sandbox.url(),
            rv(&first)
        ))
        .send()
        .await
        .unwrap();
    let event: Value =
        serde_json::from_str(response.text().await.unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
}

/// A kube::Client works unchanged: typed list, watcher, status patch (merge and apply).
#[tokio::test]
async fn a_kube_client_lists_watches_and_patches_status() {
    let sandbox = sandbox().await;
    let api: Api<SimGroup> = Api::namespaced(sandbox.client(), "default");
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
