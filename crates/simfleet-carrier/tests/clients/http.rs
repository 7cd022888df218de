//! The HTTP core's share of an account's capacity: writes go before queued reads, and every
//! request is counted in the account's ledger.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use reqwest::Method;
use simfleet_carrier::budget::RequestLedger;
use simfleet_carrier::http::{Auth, Call, HttpCore, HttpSettings, Repeat};

/// A carrier stand-in that records the order in which requests reach it.
async fn recording_server() -> (
    String,
    Arc<Mutex<Vec<&'static str>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let app = Router::new()
        .route(
            "/read",
            get(
                |State(seen): State<Arc<Mutex<Vec<&'static str>>>>| async move {
                    seen.lock().unwrap().push("read");
                    "{}"
                },
            ),
        )
        .route(
            "/write",
            post(
                |State(seen): State<Arc<Mutex<Vec<&'static str>>>>| async move {
                    seen.lock().unwrap().push("write");
                    "{}"
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, server)
}

#[tokio::test]
async fn a_write_overtakes_the_reads_queued_before_it_and_every_request_is_counted() {
    let (url, seen, server) = recording_server().await;
    let ledger = RequestLedger::unlimited();
    let concurrency = 4;
    // 40 reads/s, one at a time from a quiet start: the 60 reads take about 1.5 s.
    let core = Arc::new(
        HttpCore::new(
            "test",
            url,
            40.0,
            1,
            concurrency,
            HttpSettings::default(),
            ledger.clone(),
        )
        .unwrap(),
    );
    let reads: Vec<_> = (0..60)
        .map(|_| {
            let core = core.clone();
            tokio::spawn(async move {
                let call = Call::new(Method::GET, "/read", "/read", Auth::None, Repeat::Safe);
                core.send(&call).await.unwrap();
            })
        })
        .collect();
    // Once the reads are flowing (every one of them queued by now), a write arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reads never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = seen.lock().unwrap().len();
    let call = Call::new(Method::POST, "/write", "/write", Auth::None, Repeat::Unsafe);
    core.send(&call).await.unwrap();
    let position = seen
        .lock()
        .unwrap()
        .iter()
        .position(|r| *r == "write")
        .unwrap();
    for read in reads {
        read.await.unwrap();
    }
    server.abort();
    // Only the reads already holding a permit (at most `concurrency`) go before it; without
    // the priority it would wait behind every read queued before it (about 57).
    assert!(
        position <= before + concurrency,
        "the write was request {position}, {before} had been answered when it was sent"
    );
    assert_eq!(ledger.reading().spent, 61);
    assert_eq!(core.counters().total(), 61);
}
