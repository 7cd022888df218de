//! Carrier clients as tests use them: an account on the simulator, retries fast enough for
//! fault tests, and a whole selection observed at once.

/// A CarrierAccount spec pointing at the simulator.
pub fn account(
    provider: simfleet_api::Provider,
    base_url: String,
) -> simfleet_api::CarrierAccountSpec {
    simfleet_api::CarrierAccountSpec {
        provider,
        base_url: Some(base_url),
        secret_ref: simfleet_api::SecretKeyRef {
            name: "creds".into(),
            key: None,
        },
        org_id: None,
        rate_limit: Some(simfleet_api::RateLimit {
            requests_per_second: 10_000.0,
            burst: 1_000,
        }),
        concurrency: Some(8),
        budget: None,
        suspend_sim_on_pause: None,
    }
}

/// Fast retries, so fault tests finish quickly.
pub fn fast_retries() -> simfleet_carrier::HttpSettings {
    simfleet_carrier::HttpSettings {
        max_retries: 10,
        min_backoff: std::time::Duration::from_millis(5),
        max_backoff: std::time::Duration::from_millis(50),
        rate_limited_wait: (
            std::time::Duration::from_millis(5),
            std::time::Duration::from_millis(20),
        ),
        ..Default::default()
    }
}

/// Every SIM a selection observes, pages joined.
pub async fn observe_all(
    carrier: &dyn simfleet_carrier::Carrier,
    selection: &simfleet_api::model::Selection,
) -> Result<Vec<simfleet_api::model::SimObservation>, simfleet_carrier::CarrierError> {
    use futures::TryStreamExt;
    let pages: Vec<Vec<_>> = carrier.observe(selection).try_collect().await?;
    Ok(pages.into_iter().flatten().collect())
}
