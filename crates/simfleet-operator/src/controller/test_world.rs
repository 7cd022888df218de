//! An in-process world for reconcile tests: the sandbox API server (on a free loopback port),
//! a context whose carrier account is served by a [`FakeCarrier`], and helpers to create
//! objects and reconcile them one pass at a time.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::fake_carrier::FakeCarrier;
use super::{Context, write_status};
use simfleet_api::conditions::{self, Verdict};
use simfleet_api::{CarrierAccount, CarrierAccountStatus};
use simfleet_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// The account every test object uses.
pub(crate) const ACCOUNT: &str = "fake";

/// The sandbox, the operator's context and the fake carrier behind its account.
pub(crate) struct TestWorld {
    pub(crate) sandbox: SandboxHandle,
    pub(crate) context: Arc<Context>,
    pub(crate) fake: Arc<FakeCarrier>,
    /// The operator's clock, which the test moves.
    pub(crate) time: Arc<TestTime>,
}

/// A clock that stands still until the test moves it.
pub(crate) struct TestTime(std::sync::Mutex<jiff::Timestamp>);

impl simfleet_core::clock::TimeSource for TestTime {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().expect("time lock")
    }
}

fn context_on(client: kube::Client, time: &Arc<TestTime>) -> Arc<Context> {
    Context::with_clock(
        client,
        simfleet_api::CarrierUrlPolicy::default(),
        simfleet_core::clock::Clock::from_source(time.clone()),
    )
}

impl TestWorld {
    /// A world whose carrier is `fake`, with a verified CarrierAccount `fake` in `default`.
    pub(crate) async fn start(fake: Arc<FakeCarrier>) -> Self {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let time = Arc::new(TestTime(std::sync::Mutex::new(jiff::Timestamp::now())));
        let context = context_on(sandbox.client(), &time);
        let accounts: Api<CarrierAccount> = Api::namespaced(sandbox.client(), "default");
        let account: CarrierAccount = serde_json::from_value(json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": "CarrierAccount", "metadata": {"name": ACCOUNT},
            "spec": {"provider": "simulator", "baseUrl": "http://127.0.0.1:9", "secretRef": {"name": "unused"}}
        }))
        .unwrap();
        let account = accounts
            .create(&PostParams::default(), &account)
            .await
            .unwrap();
        let now = context.clock.now();
        let mut status = CarrierAccountStatus {
            observed_generation: account.metadata.generation,
            last_verified_time: Some(Time(now)),
            ..Default::default()
        };
        conditions::set_kstatus(
            &mut status.conditions,
            [
                Verdict::new(true, "Verified", "the fake carrier"),
                Verdict::new(false, "Idle", "verified"),
                Verdict::new(false, "Verified", "nothing needs a human"),
            ],
            account.metadata.generation.unwrap_or(0),
            now,
        );
        write_status(&context, &accounts, &account, None, &status)
            .await
            .unwrap();
        fake.install(&context.carriers, "default", ACCOUNT);
        Self {
            sandbox,
            context,
            fake,
            time,
        }
    }

    /// Moves the operator's clock forward.
    pub(crate) fn advance(&self, by: jiff::SignedDuration) {
        let mut now = self.time.0.lock().expect("time lock");
        *now = now.checked_add(by).expect("a time within range");
    }

    /// A new operator process: a fresh context (nothing remembered), the same cluster and carrier.
    pub(crate) fn restart(&mut self) {
        self.context = context_on(self.sandbox.client(), &self.time);
        self.fake
            .install(&self.context.carriers, "default", ACCOUNT);
    }

    /// The API of a kind in `default`.
    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.sandbox.client(), "default")
    }

    /// Creates an object of kind `K` named `name` with `spec`.
    pub(crate) async fn create<K>(&self, name: &str, spec: Value) -> K
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let object: K = serde_json::from_value(json!({
            "apiVersion": "simfleet.io/v1alpha1", "kind": K::kind(&()), "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        self.api::<K>()
            .create(&PostParams::default(), &object)
            .await
            .unwrap()
    }

    /// Stops the sandbox.
    pub(crate) async fn stop(self) {
        self.sandbox.stop().await;
    }
}
