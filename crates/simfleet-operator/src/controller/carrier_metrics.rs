//! The carrier figures in the metrics, read from the cached clients and ledgers at scrape time
//! (the clients count; the metrics only show): requests by route and status, 429s, retries,
//! and each account's month against its budget.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::CarrierCache;
use simfleet_api::model::BudgetReading;

/// Labels of one carrier account.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    provider: String,
    account: String,
}

/// Labels of carrier calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CarrierLabels {
    provider: String,
    account: String,
    route: String,
    status: String,
}

/// Carrier call counters, read from the cached clients at scrape time (the clients count; the
/// metrics only show).
#[derive(Debug)]
pub(crate) struct CarrierCollector {
    pub(crate) carriers: Arc<CarrierCache>,
}

impl Collector for CarrierCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let clients = self.carriers.snapshot();
        let requests = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "simfleet_carrier_requests",
            "Carrier HTTP requests by provider, account, route and status (or timeout/connect/network)",
            None,
            requests.metric_type(),
        )?;
        for (account, provider, counters) in &clients {
            for (route, status, count) in counters.by_route() {
                let labels = CarrierLabels {
                    provider: provider.clone(),
                    account: account.clone(),
                    route: route.to_owned(),
                    status,
                };
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, read) in [
            (
                "simfleet_carrier_rate_limited",
                "429 answers from the carrier",
                (|c: &simfleet_carrier::CallCounters| c.rate_limited()) as fn(&_) -> u64,
            ),
            (
                "simfleet_carrier_retries",
                "Carrier requests repeated after a failure",
                |c: &simfleet_carrier::CallCounters| c.retries(),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, requests.metric_type())?;
            for (account, provider, counters) in &clients {
                let labels = AccountLabels {
                    provider: provider.clone(),
                    account: account.clone(),
                };
                ConstCounter::new(read(counters)).encode(family.encode_family(&labels)?)?;
            }
        }
        encode_budgets(&self.carriers.budgets(), &mut encoder)
    }
}

/// The month's figures of each account's request ledger.
fn encode_budgets(
    budgets: &[(String, String, BudgetReading)],
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(0i64);
    for (name, help, read) in [
        (
            "simfleet_carrier_budget_spent_requests",
            "Carrier requests spent this calendar month (UTC), retries included",
            (|b: &BudgetReading| Some(b.spent)) as fn(&BudgetReading) -> Option<u64>,
        ),
        (
            "simfleet_carrier_budget_projected_requests",
            "Carrier requests the month will cost at the steady rate; in the operator's first hour (a start-up burst, not a rate) the requests spent so far",
            |b: &BudgetReading| Some(b.projected.unwrap_or(b.spent)),
        ),
        (
            "simfleet_carrier_budget_limit_requests",
            "The account's monthly request budget (spec.budget, or the provider's default)",
            |b: &BudgetReading| b.limit,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
        for (account, provider, reading) in budgets {
            if let Some(value) = read(reading) {
                let labels = AccountLabels {
                    provider: provider.clone(),
                    account: account.clone(),
                };
                let value = i64::try_from(value).unwrap_or(i64::MAX);
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    let counter = ConstCounter::new(0u64);
    let mut family = encoder.encode_descriptor(
        "simfleet_carrier_budget_deferred_reads",
        "Reads the budget held back this month (they run later)",
        None,
        counter.metric_type(),
    )?;
    for (account, provider, reading) in budgets {
        let labels = AccountLabels {
            provider: provider.clone(),
            account: account.clone(),
        };
        ConstCounter::new(reading.deferred_reads).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
