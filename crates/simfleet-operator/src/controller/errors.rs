//! Why a reconcile failed, and how long to wait before the next try.

use std::collections::HashMap;
use std::sync::Mutex;

use simfleet_carrier::CarrierError;

/// Why a reconcile failed (variant names become metric labels).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {}", describe_kube(.0))]
    Kube(#[from] kube::Error),
    /// The carrier failed.
    #[error("carrier: {0}")]
    Carrier(#[from] CarrierError),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A status could not be encoded (a bug).
    #[error("encoding status: {0}")]
    Encode(#[from] serde_json::Error),
    /// A deleted group's SIMs are being restored (not a failure: the finalizer waits).
    #[error("restoring the SIMs' earlier states: {0} SIMs awaiting the carrier")]
    Restoring(u64),
    /// A deleted group cannot restore its SIMs: its account is missing or not ready (status
    /// says `RestoreBlocked`; retried with the error backoff).
    #[error("the restore waits for a usable carrier account")]
    RestoreBlocked,
    /// A deleted resource's clean-up waits for its CarrierAccount to be verified by this process
    /// (the operator just started): not a failure, looked at again in 2 s.
    #[error("the clean-up waits for its carrier account to be verified")]
    AccountVerifying,
    /// A deleted CarrierAccount waits for the resources that use it (not a failure: the
    /// finalizer waits).
    #[error("deletion waits for {0} resources that use this account")]
    InUse(usize),
    /// A write based on a stale read was refused (the finalizer list changed meanwhile): tried
    /// again at once, not a failure.
    #[error("stale read, retrying: {0}")]
    StaleRead(String),
    /// A stored restore record could not be read.
    #[error("{0}")]
    RestoreRecord(String),
    /// The reconcile panicked (a bug): caught, so that one object never stops the controller
    /// for every other, and retried with the object's backoff.
    #[error("reconcile panicked (a bug; please report it): {0}")]
    Panicked(String),
}

/// A finalizer helper's error as ours: our own errors keep their kind (error_policy tells a
/// restore in progress apart).
pub(crate) fn from_finalizer(error: kube::runtime::finalizer::Error<Error>) -> Error {
    use kube::runtime::finalizer::Error as Finalizer;
    match error {
        Finalizer::ApplyFailed(e) | Finalizer::CleanupFailed(e) => e,
        // The finalizer patch tests the list it read (a JSON patch `test`): when the watch
        // cache was a write behind, the server refuses it (409, or 422 "value did not match").
        // A benign race, tried again at once.
        Finalizer::AddFinalizer(kube::Error::Api(status))
        | Finalizer::RemoveFinalizer(kube::Error::Api(status))
            if status.code == 409 || status.code == 422 =>
        {
            Error::StaleRead(status.message)
        }
        Finalizer::AddFinalizer(e) => {
            Error::Finalizer(format!("adding the finalizer: {}", describe_kube(&e)))
        }
        Finalizer::RemoveFinalizer(e) => {
            Error::Finalizer(format!("removing the finalizer: {}", describe_kube(&e)))
        }
        other => Error::Finalizer(other.to_string()),
    }
}

/// A Kubernetes API error said once: kube's own text repeats an API answer's message three
/// times (its Display, then the whole Status again as Debug), about 10 KB a line for a long
/// validation error.
pub(crate) fn describe_kube(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => other.to_string(),
    }
}

impl Error {
    /// The `result` label of the reconcile metric.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_error",
            Error::Carrier(_) => "carrier_error",
            Error::Finalizer(_) => "finalizer_error",
            Error::Encode(_) => "encode_error",
            Error::Restoring(_) => "restoring",
            Error::InUse(_) => "in_use",
            Error::StaleRead(_) => "stale_read",
            Error::RestoreBlocked => "restore_blocked",
            Error::AccountVerifying => "account_verifying",
            Error::RestoreRecord(_) => "restore_record_error",
            Error::Panicked(_) => "panicked",
        }
    }
}

/// Consecutive failed reconciles by object: the wait starts at 5 s and doubles, up to 5 minutes
/// (a `backon` exponential backoff per object, restarted after a success).
#[derive(Default)]
pub struct ErrorBackoff {
    failures: Mutex<HashMap<String, backon::ExponentialBackoff>>,
}

impl ErrorBackoff {
    /// Counts a failure and returns how long to wait before retrying.
    pub fn failed(&self, key: &str) -> std::time::Duration {
        use backon::BackoffBuilder;
        let mut failures = self.failures.lock().expect("failures lock");
        failures
            .entry(key.to_owned())
            .or_insert_with(|| {
                backon::ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_secs(5))
                    .with_max_delay(std::time::Duration::from_secs(300))
                    .with_factor(2.0)
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(std::time::Duration::from_secs(300))
    }

    /// Forgets an object's failures after a successful reconcile.
    pub(crate) fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ErrorBackoff;

    #[test]
    fn the_error_backoff_doubles_up_to_five_minutes_and_resets_on_success() {
        let backoff = ErrorBackoff::default();
        let waits: Vec<Duration> = (0..9).map(|_| backoff.failed("SimGroup/ns/g")).collect();
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(
            backoff.failed("SimGroup/ns/other").as_secs(),
            5,
            "per object"
        );
        backoff.succeeded("SimGroup/ns/g");
        assert_eq!(backoff.failed("SimGroup/ns/g").as_secs(), 5);
    }

    #[test]
    fn an_api_error_is_said_once() {
        let message = "SimGroup.simfleet.io \"g\" is invalid: spec.rollout.batchSize: Invalid value: 0: must be at least 1";
        let error = super::Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            status: None,
            code: 422,
            message: message.into(),
            metadata: None,
            reason: "Invalid".into(),
            details: None,
        })));
        let text = error.to_string();
        assert_eq!(text, format!("Kubernetes API: 422 Invalid: {message}"));
        assert_eq!(text.matches("must be at least 1").count(), 1);
    }

    #[test]
    fn a_refused_finalizer_patch_is_a_quiet_retry_and_other_failures_are_not() {
        use kube::runtime::finalizer::Error as Finalizer;
        let refused = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                status: None,
                code,
                message: "the server rejected our request: value did not match".into(),
                metadata: None,
                reason: "Invalid".into(),
                details: None,
            }))
        };
        for code in [409, 422] {
            let error = super::from_finalizer(Finalizer::AddFinalizer(refused(code)));
            assert!(matches!(error, super::Error::StaleRead(_)));
        }
        let error = super::from_finalizer(Finalizer::RemoveFinalizer(refused(403)));
        assert!(
            matches!(error, super::Error::Finalizer(_)),
            "a forbidden patch needs a person: {error}"
        );
    }
}
