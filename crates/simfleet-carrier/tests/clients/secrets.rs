//! Credentials never appear in Debug output, errors or log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use secrecy::SecretString;
use serde_json::json;
use simfleet_api::model::{Selection, SimTarget};
use simfleet_api::{Provider, StateChange};
use simfleet_carrier::connect;
use simfleet_simulator::SimulatorConfig;
use simfleet_testkit::carrier::*;
use simfleet_testkit::simulator::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const HOLOGRAM_KEY: &str = "hologram-secret-key-31337";
const EMNIFY_TOKEN: &str = "emnify-secret-token-31337";

#[tokio::test]
async fn no_debug_output_error_or_log_line_shows_a_credential() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start(SimulatorConfig {
        hologram_api_keys: vec![HOLOGRAM_KEY.into()],
        emnify_app_tokens: vec![EMNIFY_TOKEN.into()],
        ..SimulatorConfig::for_tests(100, jiff::SignedDuration::from_secs(1))
    })
    .await;
    let hologram = connect(
        &account(Provider::Simulator, sim.base_url()),
        SecretString::from(HOLOGRAM_KEY),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    let emnify = connect(
        &account(Provider::Emnify, sim.emnify_url()),
        SecretString::from(EMNIFY_TOKEN),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    let mut texts = Vec::new();
    // Successful calls, then failing ones (5xx, 429, malformed, refused), with their errors.
    let selection = Selection {
        tags: vec!["vending".into()],
        ..Default::default()
    };
    let _: Vec<_> = hologram.observe(&selection).try_collect().await.unwrap();
    let _: Vec<_> = emnify.observe(&selection).try_collect().await.unwrap();
    set_faults(&sim, json!([{"burst5xx": 2}, {"burst429": 1}, {"route": "/api/v1/endpoint/{id}", "malformedRate": 1.0}])).await;
    let _: Vec<_> = hologram.observe(&selection).try_collect().await.unwrap();
    for result in [
        emnify
            .observe(&Selection {
                device_ids: vec![1001],
                ..Default::default()
            })
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ()),
        hologram
            .submit(
                StateChange::Pause,
                &[SimTarget {
                    device_id: 1001,
                    sim_id: None,
                }],
            )
            .await
            .map(|_| ()),
    ] {
        texts.push(format!("{result:?}"));
        if let Err(e) = result {
            texts.push(e.to_string());
        }
    }
    let wrong = connect(
        &account(Provider::Emnify, sim.emnify_url()),
        SecretString::from(format!("{EMNIFY_TOKEN}-wrong")),
        fast_retries(),
        simfleet_carrier::budget::RequestLedger::unlimited(),
    )
    .unwrap();
    let err = wrong.verify().await.unwrap_err();
    texts.push(format!("{err:?} {err}"));
    texts.push(format!("{:?}", account(Provider::Emnify, sim.emnify_url())));
    texts.push(format!("{:?}", SecretString::from(EMNIFY_TOKEN)));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("carrier_call"), "tracing spans were captured");
    for text in texts.iter().chain([&logs]) {
        assert!(
            !text.contains(HOLOGRAM_KEY) && !text.contains(EMNIFY_TOKEN),
            "a credential leaked: {text}"
        );
    }
}
