//! Soracom: the simulator's surface against Soracom's documented facts, and the client against
//! the simulator (calls counted at the simulator).

use std::sync::Arc;

use jiff::SignedDuration;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use simfleet_api::model::{ObservedState, Selection, SimTarget};
use simfleet_api::{Provider, StateChange};
use simfleet_carrier::{Carrier, CarrierError, connect};
use simfleet_simulator::{SimulatorConfig, SimulatorHandle, SoracomOptions};
use simfleet_testkit::carrier::*;
use simfleet_testkit::simulator::*;

const KEY: &str = "keyId-simulator:secret-simulator";

/// A fleet file of `n` SIMs tagged `fleet=VALUE` (VALUE alternating `north` and `south`),
/// and the first two also `site=berlin`.
fn fleet_file(n: usize) -> std::path::PathBuf {
    let mut yaml = String::from("sims:\n");
    for i in 0..n {
        let fleet = if i % 2 == 0 { "north" } else { "south" };
        let extra = if i < 2 { ", site=berlin" } else { "" };
        yaml.push_str(&format!(
            "  - {{iccid: \"{}\", tags: [fleet={fleet}{extra}]}}\n",
            8_944_500_000_000_000_001u64 + i as u64
        ));
    }
    let path = std::env::temp_dir().join(format!(
        "simfleet-soracom-fleet-{n}-{}-{}.yaml",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn config(n: usize, soracom: SoracomOptions) -> SimulatorConfig {
    SimulatorConfig {
        fleet_file: Some(fleet_file(n)),
        soracom,
        ..SimulatorConfig::for_tests(n, SignedDuration::from_secs(10))
    }
}

async fn soracom_sim(n: usize) -> SimulatorHandle {
    start(config(n, SoracomOptions::default())).await
}

/// `(apiKey, token)` from `POST /v1/auth`.
async fn auth(sim: &SimulatorHandle, timeout: Option<i64>) -> (String, String) {
    let mut body = json!({"authKeyId": "keyId-simulator", "authKey": "secret-simulator"});
    if let Some(t) = timeout {
        body["tokenTimeoutSeconds"] = json!(t);
    }
    let answer = client()
        .post(format!("{}/v1/auth", sim.soracom_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(answer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["apiKey"].as_str().unwrap().into(),
        body["token"].as_str().unwrap().into(),
    )
}

async fn call(
    sim: &SimulatorHandle,
    creds: &(String, String),
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", sim.soracom_url()))
        .header("X-Soracom-API-Key", &creds.0)
        .header("X-Soracom-Token", &creds.1);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let headers = answer.headers().clone();
    let (status, body) = status_and_json(answer).await;
    (status, headers, body)
}

#[tokio::test]
async fn auth_issues_a_key_and_token_whose_lifetime_runs_on_the_clock_and_both_headers_are_needed()
{
    let sim = soracom_sim(3).await;
    let refused = client()
        .post(format!("{}/v1/auth", sim.soracom_url()))
        .json(&json!({"authKeyId": "keyId-simulator", "authKey": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let too_short = client()
        .post(format!("{}/v1/auth", sim.soracom_url()))
        .json(&json!({"authKeyId": "keyId-simulator", "authKey": "secret-simulator", "tokenTimeoutSeconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_short.status(), StatusCode::BAD_REQUEST);

    let creds = auth(&sim, Some(180)).await;
    let (status, _, _) = call(&sim, &creds, reqwest::Method::GET, "/v1/sims", None).await;
    assert_eq!(status, StatusCode::OK);
    // One header alone is not enough.
    let only_key = client()
        .get(format!("{}/v1/sims", sim.soracom_url()))
        .header("X-Soracom-API-Key", &creds.0)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(only_key).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AUM0001"))
    );

    sim.advance(SignedDuration::from_secs(181));
    let (status, _, body) = call(&sim, &creds, reqwest::Method::GET, "/v1/sims", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "AUM0001");
    assert!(body["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn an_expired_token_can_be_answered_403_instead() {
    let sim = start(config(
        1,
        SoracomOptions {
            expired_token: simfleet_simulator::ExpiredToken::Forbidden,
            ..SoracomOptions::default()
        },
    ))
    .await;
    let creds = auth(&sim, Some(180)).await;
    sim.advance(SignedDuration::from_secs(200));
    let (status, _, _) = call(&sim, &creds, reqwest::Method::GET, "/v1/sims", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sims_list_with_keyset_paging_and_have_no_top_level_iccid() {
    let sim = soracom_sim(5).await;
    let creds = auth(&sim, None).await;
    let (status, headers, first) =
        call(&sim, &creds, reqwest::Method::GET, "/v1/sims?limit=2", None).await;
    assert_eq!(status, StatusCode::OK);
    let next = headers["x-soracom-next-key"].to_str().unwrap().to_owned();
    assert_eq!(next, first[1]["simId"].as_str().unwrap());
    assert!(headers["link"].to_str().unwrap().contains("rel=\"next\""));
    assert!(first[0].get("iccid").is_none() && first[0].get("imsi").is_none());
    let profiles = first[0]["profiles"].as_object().unwrap();
    assert_eq!(profiles.keys().next().unwrap(), "8944500000000000001");
    assert_eq!(first[0]["tags"]["name"], "");
    assert_eq!(first[0]["tags"]["fleet"], "north");
    // The last page has no next key.
    let (_, headers, last) = call(
        &sim,
        &creds,
        reqwest::Method::GET,
        &format!("/v1/sims?limit=3&last_evaluated_key={next}"),
        None,
    )
    .await;
    assert_eq!(last.as_array().unwrap().len(), 3);
    assert!(headers.get("x-soracom-next-key").is_none());
}

#[tokio::test]
async fn subscribers_filter_by_tag_name_and_value_and_by_status() {
    let sim = soracom_sim(6).await;
    let creds = auth(&sim, None).await;
    let get = |q: &'static str| {
        let (sim, creds) = (&sim, &creds);
        async move { call(sim, creds, reqwest::Method::GET, q, None).await }
    };
    let (_, _, north) = get("/v1/subscribers?tag_name=fleet&tag_value=north").await;
    assert_eq!(north.as_array().unwrap().len(), 3);
    assert!(north[0]["iccid"].is_string() && north[0]["imsi"].is_string());
    let (_, _, prefix) =
        get("/v1/subscribers?tag_name=fleet&tag_value=no&tag_value_match_mode=prefix").await;
    assert_eq!(prefix.as_array().unwrap().len(), 3);
    let (_, _, exact) = get("/v1/subscribers?tag_name=fleet&tag_value=no").await;
    assert_eq!(exact.as_array().unwrap().len(), 0);
    let (status, _, body) = get("/v1/subscribers?tag_name=fleet").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, _) = get("/v1/subscribers?limit=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let sim_id = north[0]["simId"].as_str().unwrap().to_owned();
    let (status, _, changed) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &format!("/v1/sims/{sim_id}/deactivate"),
        None,
    )
    .await;
    // Synchronous: the answer is the SIM after the change.
    assert_eq!(
        (status, changed["status"].as_str()),
        (StatusCode::OK, Some("inactive"))
    );
    let (_, _, inactive) = get("/v1/subscribers?status_filter=inactive|suspended").await;
    assert_eq!(inactive.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn state_routes_follow_the_lifecycle_and_terminated_takes_no_change() {
    let sim = soracom_sim(2).await;
    let creds = auth(&sim, None).await;
    let id = "8942310000000000001";
    for (route, status) in [
        ("suspend", "suspended"),
        ("activate", "active"),
        ("set_to_standby", "standby"),
        ("deactivate", "inactive"),
    ] {
        let (code, _, sim_json) = call(
            &sim,
            &creds,
            reqwest::Method::POST,
            &format!("/v1/sims/{id}/{route}"),
            Some(json!({})),
        )
        .await;
        assert_eq!(
            (code, sim_json["status"].as_str()),
            (StatusCode::OK, Some(status))
        );
    }
    admin_send(
        &sim,
        reqwest::Method::PATCH,
        &format!("/soracom/sims/{id}"),
        &json!({"status": "terminated"}),
    )
    .await;
    let (code, _, body) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &format!("/v1/sims/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
    let (code, _, body) = call(
        &sim,
        &creds,
        reqwest::Method::GET,
        "/v1/sims/8942310000000099999",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_search_lags_writes() {
    let sim = soracom_sim(2).await;
    let creds = auth(&sim, None).await;
    let query = "/v1/query/sims?iccid=8944500000000000001";
    let (_, _, before) = call(&sim, &creds, reqwest::Method::GET, query, None).await;
    assert_eq!(before[0]["status"], "active");
    call(
        &sim,
        &creds,
        reqwest::Method::POST,
        "/v1/sims/8942310000000000001/deactivate",
        None,
    )
    .await;
    let (_, _, lagging) = call(&sim, &creds, reqwest::Method::GET, query, None).await;
    assert_eq!(
        lagging[0]["status"], "active",
        "the index has not caught up"
    );
    sim.advance(SignedDuration::from_secs(15));
    let (_, _, caught_up) = call(&sim, &creds, reqwest::Method::GET, query, None).await;
    assert_eq!(caught_up[0]["status"], "inactive");
}

#[tokio::test]
async fn batch_jobs_run_their_tasks_one_at_a_time_one_job_per_api_with_per_task_results() {
    let sim = start(config(
        4,
        SoracomOptions {
            task_time: SignedDuration::from_secs(1),
            ..SoracomOptions::default()
        },
    ))
    .await;
    let creds = auth(&sim, None).await;
    let (_, _, group) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        "/v1/batch_groups",
        Some(json!({"batchGroupName": "test"})),
    )
    .await;
    let group = group["batchGroupId"].as_str().unwrap().to_owned();
    let task = |id: &str, route: &str| json!({"request": {"path": format!("/v1/sims/{id}/{route}"), "method": "POST"}});
    let jobs = format!("/v1/batch_groups/{group}/jobs");
    let too_many: Vec<Value> = (0..10_001)
        .map(|_| task("8942310000000000001", "deactivate"))
        .collect();
    let (code, _, _) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &jobs,
        Some(json!({"tasks": too_many})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let mixed = vec![
        task("8942310000000000001", "deactivate"),
        task("8942310000000000002", "activate"),
    ];
    let (code, _, _) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &jobs,
        Some(json!({"tasks": mixed})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let tasks = vec![
        task("8942310000000000001", "deactivate"),
        task("8942310099999999999", "deactivate"),
        task("8942310000000000003", "deactivate"),
    ];
    let (code, _, job) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &jobs,
        Some(json!({"tasks": tasks, "jobName": "j1"})),
    )
    .await;
    assert_eq!(
        (code, job["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    let job_path = format!("{jobs}/{}", job["jobId"].as_str().unwrap());
    // One job per API: a second deactivate job waits; an activate job may run beside it.
    let (code, _, busy) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &jobs,
        Some(json!({"tasks": [task("8942310000000000004", "deactivate")]})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        busy["message"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{busy}"
    );
    let (code, _, _) = call(
        &sim,
        &creds,
        reqwest::Method::POST,
        &jobs,
        Some(json!({"tasks": [task("8942310000000000004", "activate")]})),
    )
    .await;
    assert_eq!(code, StatusCode::OK);

    sim.advance(SignedDuration::from_secs(1));
    let (_, _, running) = call(&sim, &creds, reqwest::Method::GET, &job_path, None).await;
    assert_eq!(running["status"], "running");
    assert_eq!(
        running["summary"],
        json!({"pending": 2, "success": 1, "error": 0})
    );
    sim.advance(SignedDuration::from_secs(2));
    let (_, _, failed) = call(&sim, &creds, reqwest::Method::GET, &job_path, None).await;
    assert_eq!(
        failed["status"], "failed",
        "all tasks ran, one failed: {failed}"
    );
    assert_eq!(
        failed["summary"],
        json!({"pending": 0, "success": 2, "error": 1})
    );
    let (_, _, errors) = call(
        &sim,
        &creds,
        reqwest::Method::GET,
        &format!("{job_path}/tasks?status=error"),
        None,
    )
    .await;
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["taskId"], 2);
    assert_eq!(errors[0]["response"]["statusCode"], 404);
    let (_, _, sim3) = call(
        &sim,
        &creds,
        reqwest::Method::GET,
        "/v1/sims/8942310000000000003",
        None,
    )
    .await;
    assert_eq!(sim3["status"], "inactive");
    // Kept 32 days after it finished, then gone.
    sim.advance(SignedDuration::from_hours(32 * 24 + 1));
    let (code, _, _) = call(&sim, &creds, reqwest::Method::GET, &job_path, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "the 24 h token lapsed too");
    let creds = auth(&sim, None).await;
    let (code, _, _) = call(&sim, &creds, reqwest::Method::GET, &job_path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_per_minute_limit_answers_429_with_its_headers() {
    let sim = start(config(
        1,
        SoracomOptions {
            rate_limit_per_minute: 2,
            ..SoracomOptions::default()
        },
    ))
    .await;
    let creds = auth(&sim, None).await;
    let (_, headers, _) = call(&sim, &creds, reqwest::Method::GET, "/v1/sims", None).await;
    assert_eq!(headers["x-soracom-ratelimit-limit"], "2");
    assert_eq!(headers["x-soracom-ratelimit-remaining"], "1");
    call(&sim, &creds, reqwest::Method::GET, "/v1/sims", None).await;
    let (code, headers, body) = call(&sim, &creds, reqwest::Method::GET, "/v1/sims", None).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["x-soracom-ratelimit-remaining"], "0");
    assert!(headers.contains_key("x-soracom-ratelimit-seconds-before-refresh"));
    assert!(body["code"].is_string(), "{body}");
    // Another route has its own minute.
    let (code, _, _) = call(&sim, &creds, reqwest::Method::GET, "/v1/subscribers", None).await;
    assert_eq!(code, StatusCode::OK);
}

fn soracom_client(sim: &SimulatorHandle, suspend: bool) -> Arc<dyn Carrier> {
    let mut spec = account(Provider::Soracom, sim.soracom_url());
    spec.suspend_sim_on_pause = Some(suspend);
    connect(
        &spec,
        SecretString::from(KEY),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap()
}

async fn requests(sim: &SimulatorHandle, method: &str, route: &str) -> u64 {
    count(sim, method, route, 200).await
}

#[tokio::test]
async fn the_client_authenticates_once_observes_by_tag_page_by_page_and_reads_listed_sims() {
    let sim = soracom_sim(250).await;
    let carrier = soracom_client(&sim, false);
    let selection = Selection {
        tags: vec!["fleet=north".into(), "site=berlin".into()],
        ..Selection::default()
    };
    let observed = observe_all(carrier.as_ref(), &selection).await.unwrap();
    // 125 north SIMs, and the second berlin SIM (the first is north too): each SIM once.
    assert_eq!(observed.len(), 126);
    assert!(observed.iter().all(|o| o.state == ObservedState::Active));
    assert_eq!(requests(&sim, "GET", "/v1/subscribers").await, 2 + 1);
    let listed = Selection {
        iccids: vec!["8944500000000000003".into(), "8944500000000099999".into()],
        device_ids: vec![8_942_310_000_000_000_010],
        ..Selection::default()
    };
    let found = observe_all(carrier.as_ref(), &listed).await.unwrap();
    assert_eq!(found.len(), 3);
    assert!(
        found.iter().any(
            |o| matches!(&o.state, ObservedState::Ineligible(m) if m.contains("unknown ICCID"))
        )
    );
    assert_eq!(requests(&sim, "GET", "/v1/query/sims").await, 1);
    carrier.verify().await.unwrap();
    assert_eq!(
        requests(&sim, "POST", "/v1/auth").await,
        1,
        "the token is cached"
    );
    // A tag without a value is refused with the fix.
    let bare = Selection {
        tags: vec!["cold-chain".into()],
        ..Selection::default()
    };
    let problem = carrier.selection_problem(&bare).unwrap();
    assert!(problem.contains("NAME=VALUE"), "{problem}");
}

#[tokio::test]
async fn the_client_changes_sims_through_one_job_whose_status_is_reported_and_failed_tasks_refused()
{
    let sim = start(config(
        30,
        SoracomOptions {
            task_time: SignedDuration::from_millis(100),
            ..SoracomOptions::default()
        },
    ))
    .await;
    let carrier = soracom_client(&sim, true);
    assert!(carrier.capabilities().one_action_at_a_time);
    let mut sims: Vec<SimTarget> = (0..20)
        .map(|i| SimTarget {
            device_id: 8_942_310_000_000_000_001 + i,
            sim_id: None,
        })
        .collect();
    sims.push(SimTarget {
        device_id: 8_942_310_000_000_099_999,
        sim_id: None,
    });
    let submission = carrier.submit(StateChange::Pause, &sims).await.unwrap();
    assert_eq!(submission.accepted, 21);
    let job = submission.action_ids[0].clone();
    let second = carrier
        .submit(StateChange::Pause, &sims[..5])
        .await
        .unwrap_err();
    assert!(
        matches!(
            second,
            CarrierError::Transient {
                request_sent: false,
                ..
            }
        ),
        "{second}"
    );
    sim.advance(SignedDuration::from_secs(1));
    let status = &carrier
        .action_statuses(std::slice::from_ref(&job))
        .await
        .unwrap()[0];
    assert!(!status.finished);
    assert!(
        status.status.starts_with("running: 10 done"),
        "{}",
        status.status
    );
    sim.advance(SignedDuration::from_secs(2));
    let status = &carrier
        .action_statuses(std::slice::from_ref(&job))
        .await
        .unwrap()[0];
    assert!(status.finished, "{}", status.status);
    assert_eq!(status.refused.len(), 1);
    assert_eq!(status.refused[0].device_id, 8_942_310_000_000_099_999);
    // Confirmed by reading the SIMs: suspended, as the account asks.
    let (_, _, sim1) = call(
        &sim,
        &auth(&sim, None).await,
        reqwest::Method::GET,
        "/v1/sims/8942310000000000001",
        None,
    )
    .await;
    assert_eq!(sim1["status"], "suspended");
    // Two SIMs or fewer go through the single-SIM routes: no job, no poll.
    let direct = carrier
        .submit(StateChange::Resume, &sims[..2])
        .await
        .unwrap();
    assert_eq!(direct.accepted, 2);
    assert_eq!(
        requests(&sim, "POST", "/v1/batch_groups/{group_id}/jobs").await,
        1
    );
    assert!(
        carrier
            .action_statuses(&direct.action_ids)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_cut_answer_to_job_creation_is_never_resent_and_the_groups_jobs_are_listed_instead() {
    let sim = soracom_sim(10).await;
    let carrier = soracom_client(&sim, false);
    // The answer to the creation is cut: the client cannot know whether the job exists.
    set_faults(
        &sim,
        json!([{"route": "/v1/batch_groups/{group_id}/jobs", "resetRate": 1.0}]),
    )
    .await;
    let sims: Vec<SimTarget> = (0..5)
        .map(|i| SimTarget {
            device_id: 8_942_310_000_000_000_001 + i,
            sim_id: None,
        })
        .collect();
    let outcome = carrier.submit(StateChange::Pause, &sims).await;
    let jobs = admin_get(&sim, "/soracom/jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().is_empty(), "{jobs}");
    // The creation is not sent again; the group's jobs are listed to look for it (the rule
    // cuts those answers too, so the outcome stays unclear and the next reconcile observes).
    assert!(
        matches!(outcome, Err(CarrierError::Transient { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        requests(&sim, "POST", "/v1/batch_groups/{group_id}/jobs").await,
        1
    );
    assert!(requests(&sim, "GET", "/v1/batch_groups/{group_id}/jobs").await >= 1);
}

#[tokio::test]
async fn data_quotas_are_unsupported_and_say_what_soracom_offers() {
    let sim = soracom_sim(1).await;
    let carrier = soracom_client(&sim, false);
    assert!(!carrier.capabilities().data_quota);
    let error = carrier.read_quota(1).await.unwrap_err().to_string();
    assert!(
        error.contains("no volume cap") && error.contains("Event Handler"),
        "{error}"
    );
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_call_goes_through_whichever_status_it_gets() {
    for expired in [
        simfleet_simulator::ExpiredToken::Unauthorized,
        simfleet_simulator::ExpiredToken::Forbidden,
    ] {
        let sim = start(config(
            2,
            SoracomOptions {
                expired_token: expired,
                ..SoracomOptions::default()
            },
        ))
        .await;
        let carrier = soracom_client(&sim, false);
        carrier.verify().await.unwrap();
        // The token (24 h) lapses on the simulator's clock, which the client does not follow.
        sim.advance(SignedDuration::from_hours(25));
        carrier.verify().await.unwrap();
        assert_eq!(requests(&sim, "POST", "/v1/auth").await, 2, "{expired:?}");
        let refused = count(
            &sim,
            "GET",
            "/v1/sims",
            if expired == simfleet_simulator::ExpiredToken::Unauthorized {
                401
            } else {
                403
            },
        )
        .await;
        assert_eq!(refused, 1, "one refused call, then the renewed token");
    }
}

#[tokio::test]
async fn the_client_paces_on_the_rate_limit_headers_instead_of_running_into_429() {
    // A real-time clock one second before a minute ends, and 3 requests a minute per route.
    let sim = start(SimulatorConfig {
        clock: simfleet_simulator::ClockMode::Realtime,
        start_time: Some("2026-06-01T00:00:59Z".parse().unwrap()),
        ..config(
            2,
            SoracomOptions {
                rate_limit_per_minute: 3,
                ..SoracomOptions::default()
            },
        )
    })
    .await;
    let carrier = soracom_client(&sim, false);
    for _ in 0..4 {
        carrier.verify().await.unwrap();
    }
    assert_eq!(requests(&sim, "GET", "/v1/sims").await, 4);
    assert_eq!(
        count(&sim, "GET", "/v1/sims", 429).await,
        0,
        "the fourth waited for the next minute"
    );
}

#[tokio::test]
async fn without_the_batch_api_sims_change_one_call_each_and_the_account_says_so() {
    let sim = start(config(
        10,
        SoracomOptions {
            batch: simfleet_simulator::BatchAccess::Forbidden,
            ..SoracomOptions::default()
        },
    ))
    .await;
    let carrier = soracom_client(&sim, false);
    let sims: Vec<SimTarget> = (0..5)
        .map(|i| SimTarget {
            device_id: 8_942_310_000_000_000_001 + i,
            sim_id: None,
        })
        .collect();
    let submission = carrier.submit(StateChange::Pause, &sims).await.unwrap();
    assert_eq!(submission.accepted, 5);
    assert_eq!(
        requests(&sim, "POST", "/v1/sims/{sim_id}/{action}").await,
        5
    );
    let capabilities = carrier.capabilities();
    assert!(!capabilities.bulk);
    assert!(capabilities.bulk_unavailable.unwrap().contains("403"));
    // Later changes go one call each without asking the Batch API again.
    carrier.submit(StateChange::Resume, &sims).await.unwrap();
    assert_eq!(
        requests(&sim, "POST", "/v1/sims/{sim_id}/{action}").await,
        10
    );
    // The 403 was asked twice, once after renewing the token (an expired token may get a 403
    // too), and never again.
    assert_eq!(count(&sim, "GET", "/v1/batch_groups", 403).await, 2);
}
