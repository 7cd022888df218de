//! Deletion with restore, stopping on SIGTERM, and the carrier URL allow-list.

use super::*;

/// Device ids of the simulator's SIMs in `state`.
async fn devices_in(world: &World, state: &str) -> Vec<u64> {
    let table = simfleet_testkit::simulator::admin_get(
        &world.simulator,
        &format!("/sims?state={state}&limit=1000"),
    )
    .await;
    let mut ids: Vec<u64> = table["sims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deviceId"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn on_delete_restore_returns_sims_to_their_earlier_state_except_where_another_group_wants_them()
 {
    let world = world("restore", 8).await;
    // 1004 to 1006 were paused before the groups existed.
    for id in [1004, 1005, 1006] {
        admin(
            &world,
            reqwest::Method::PATCH,
            &format!("/sims/{id}"),
            json!({"state": "PAUSED-USER"}),
        )
        .await;
    }
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_group(&world, "maintenance", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "onDelete": "Restore", "selector": {"deviceIds": [1001, 1002, 1003, 1004, 1005, 1006]}})).await;
    until(&api, "maintenance", "submitted", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| !s.pending_actions.is_empty())
    })
    .await;
    // The earlier states were recorded before the change was submitted.
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(world.sandbox.client(), "default");
    let record = maps.get("maintenance-restore-0").await.unwrap();
    let data = record.data.unwrap();
    assert_eq!(data["wereActive"], "1001\n1002\n1003\n");
    assert_eq!(data["werePaused"], "");
    world.simulator.advance(SignedDuration::from_secs(10));
    until(&api, "maintenance", "Ready", ready).await;
    // Another group wants 1002 paused: restoring must not undo that.
    create_group(&world, "keep", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"deviceIds": [1002]}})).await;
    until(&api, "keep", "Ready", ready).await;

    api.delete("maintenance", &Default::default())
        .await
        .unwrap();
    until(&api, "maintenance", "restore submitted", |g| {
        condition(g, "Reconciling").is_some_and(|(s, m)| s == "True" && m.contains("earlier state"))
    })
    .await;
    assert!(
        api.get_opt("maintenance").await.unwrap().is_some(),
        "the finalizer holds the group until the carrier confirms"
    );
    wait_gone(&api, "maintenance", &world, Duration::from_secs(60)).await;
    assert_eq!(devices_in(&world, "LIVE").await, [1001, 1003, 1007, 1008]);
    assert_eq!(
        devices_in(&world, "PAUSED-USER").await,
        [1002, 1004, 1005, 1006]
    );
    assert!(
        maps.get_opt("maintenance-restore-0")
            .await
            .unwrap()
            .is_none(),
        "the record goes with the group"
    );
    // 3 paused, then 2 resumed: nothing sent twice.
    assert_each_sim_submitted_once(&world, 5).await;
    let events = Value::from(events(&world).await);
    let events = events.to_string();
    assert!(
        events.contains("2 SIMs back in the state they had"),
        "{events}"
    );
    assert!(
        events.contains("1 left as they are because another SimGroup wants them so"),
        "{events}"
    );
}

#[tokio::test]
async fn simfleet_run_stops_cleanly_on_sigterm_sent_as_soon_as_it_prints() {
    let world = world("sigterm", 10).await;
    let (operator, _) = Operator::start_with(
        &world.kubeconfig,
        &["--metrics-addr=127.0.0.1:0"],
        "operator",
    );
    let exit = operator.terminate().await;
    assert!(exit.success(), "exit: {exit}");
}

#[tokio::test]
async fn a_carrier_url_outside_the_allow_list_is_stalled_and_never_connected_to() {
    let world = world("url-allow-list", 10).await;
    // A listener where the account points: it must see no connection at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/api/1", listener.local_addr().unwrap());
    let account: CarrierAccount = serde_json::from_value(json!({
        "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": "elsewhere"},
        "spec": {"provider": "hologram", "baseUrl": url, "secretRef": {"name": "sim"}}
    }))
    .unwrap();
    let accounts: Api<CarrierAccount> = Api::namespaced(world.sandbox.client(), "default");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let _operator = Operator::start(&world.kubeconfig);
    let stalled = until(
        &accounts,
        "elsewhere",
        "UrlNotAllowed",
        |a: &CarrierAccount| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Stalled" && c.status == "True" && c.reason == "UrlNotAllowed"
                })
            })
        },
    )
    .await;
    let message = &stalled
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("https://dashboard.hologram.io/api/1")
            && message.contains("--allowed-carrier-url"),
        "{message}"
    );
    // The simulator account (loopback, provider simulator) is allowed by default.
    until(
        &accounts,
        "simulator",
        "the simulator account Ready",
        |a: &CarrierAccount| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await;
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the disallowed URL"
    );
}

/// Issue 37, point 7: a deletion held by SIMs the carrier has not confirmed yet names them (a
/// sample, with the count) and the way out, `onDelete: Orphan`; it said "2 SIMs being returned".
#[tokio::test]
async fn a_deletion_held_by_slow_sims_names_them_and_the_escape() {
    let world = world("restore-slow", 10).await;
    let _operator = Operator::start(&world.kubeconfig);
    let api = create_group(&world, "held", json!({"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"deviceIds": [1003, 1004]}, "onDelete": "Restore"})).await;
    until_confirmed(&world, &api, "held", "pause").await;
    api.delete("held", &Default::default()).await.unwrap();
    // The carrier's clock stands still: the restore stays unconfirmed.
    let held = until(&api, "held", "the restore waiting", |g| {
        condition(g, "Reconciling").is_some_and(|(s, m)| {
            s == "True" && m.contains("waiting for the carrier to return 2 SIMs")
        })
    })
    .await;
    let (_, message) = condition(&held, "Reconciling").unwrap();
    assert!(
        message.contains("(device 1003)") && message.contains("(device 1004)"),
        "{message}"
    );
    assert!(message.contains("set spec.onDelete: Orphan"), "{message}");
    world.simulator.advance(SignedDuration::from_secs(10));
    wait_gone(&api, "held", &world, wait_limit()).await;
}
