//! `CarrierAccount`: which carrier to talk to, where, with which credentials and how fast.
// Each `printcolumn(...)` in `#[kube(...)]` repeats keys like `type_`; clippy reads that as a
// duplicated attribute, but every group is a separate column.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The carrier API a CarrierAccount speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Hologram REST API v1 (bulk state changes of up to 10,000 devices per action).
    Hologram,
    /// emnify REST API v1 (one call per device; data quotas).
    Emnify,
    /// simfleet's built-in carrier simulator (`simfleet simulator`), for trying simfleet out.
    Simulator,
    /// Soracom API v1 (Batch API jobs of up to 10,000 SIMs; no data quotas).
    Soracom,
}

/// Soracom's Global coverage API (the Japan coverage API is the default base URL).
pub const SORACOM_GLOBAL_BASE_URL: &str = "https://g.api.soracom.io";

impl Provider {
    /// Base URL used when `spec.baseUrl` is not set.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Hologram => "https://dashboard.hologram.io/api/1",
            Provider::Emnify => "https://cdn.emnify.net/api",
            Provider::Simulator => "http://127.0.0.1:8080",
            Provider::Soracom => "https://api.soracom.io",
        }
    }

    /// Requests per calendar month (UTC) spent at most when `spec.budget` is not set: emnify's
    /// documented 10 million per organisation; the others publish no monthly limit.
    pub fn default_requests_per_month(self) -> Option<u64> {
        match self {
            Provider::Emnify => Some(10_000_000),
            Provider::Hologram | Provider::Simulator | Provider::Soracom => None,
        }
    }

    /// Secret key read when `spec.secretRef.key` is not set.
    pub fn default_secret_key(self) -> &'static str {
        match self {
            Provider::Hologram | Provider::Simulator => "apiKey",
            Provider::Emnify => "applicationToken",
            Provider::Soracom => "authKey",
        }
    }

    /// Client-side rate limit used when `spec.rateLimit` is not set.
    ///
    /// emnify allows 2,000 requests per IP in any 5 minutes (about 6.7/s); Hologram publishes
    /// no limit, so a conservative rate is used.
    pub fn default_rate_limit(self) -> RateLimit {
        match self {
            Provider::Hologram => RateLimit {
                requests_per_second: 5.0,
                burst: 10,
            },
            Provider::Emnify => RateLimit {
                requests_per_second: 6.0,
                burst: 5,
            },
            Provider::Simulator => RateLimit {
                requests_per_second: 100.0,
                burst: 50,
            },
            // Soracom publishes no numbers (its limits are per minute, per API, and reported
            // in X-Soracom-Ratelimit-* headers, which the client also paces on).
            Provider::Soracom => RateLimit {
                requests_per_second: 10.0,
                burst: 10,
            },
        }
    }
}

/// Where a carrier account is and how to reach it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "simfleet.io",
    version = "v1alpha1",
    kind = "CarrierAccount",
    plural = "carrieraccounts",
    shortname = "carrier",
    category = "simfleet",
    namespaced,
    status = "CarrierAccountStatus",
    doc = "An account at a cellular carrier (Hologram, emnify, Soracom, or the built-in simulator): its API URL, the Secret holding its credentials, and the client-side rate limit simfleet keeps to.",
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.provider",
        description = "Carrier API spoken"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Credentials verified against the carrier"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1,
        description = "Why the account is or is not ready"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".spec.baseUrl",
        priority = 1,
        description = "Carrier API base URL, when not the provider's default"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.orgId) || self.provider != 'emnify'").message("orgId: only Hologram and the simulator scope requests by organisation; remove orgId for provider emnify").field_path(".orgId"))]
#[x_kube(validation = Rule::new("!has(self.suspendSimOnPause) || !self.suspendSimOnPause || self.provider == 'emnify' || self.provider == 'soracom'").message("suspendSimOnPause: only emnify and Soracom have a suspended state apart from the pause; remove it, or set provider: emnify or soracom").field_path(".suspendSimOnPause"))]
pub struct CarrierAccountSpec {
    /// Carrier API to speak: `hologram`, `emnify`, `soracom`, or `simulator` (the built-in
    /// simulator: SIM states through its Hologram protocol, data quotas through its emnify
    /// protocol).
    pub provider: Provider,

    /// Base URL of the carrier API. Defaults: hologram `https://dashboard.hologram.io/api/1`,
    /// emnify `https://cdn.emnify.net/api`, simulator `http://127.0.0.1:8080`, soracom
    /// `https://api.soracom.io` (Japan coverage; `https://g.api.soracom.io` for Global coverage,
    /// which a SIM has from purchase). Soracom's routes start with `/v1`, added by simfleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::BASE_URL_PATTERN), length(max = 2048))]
    pub base_url: Option<String>,

    /// The Secret (in the same namespace) holding the credentials.
    pub secret_ref: SecretKeyRef,

    /// Hologram organisation id that scopes every request (optional; Hologram and simulator only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub org_id: Option<u64>,

    /// Client-side rate limit for calls to this account. Defaults per provider: hologram 5/s
    /// burst 10, emnify 6/s burst 5 (emnify allows 2,000 requests per 5 minutes per IP),
    /// soracom 10/s burst 10 (besides pacing on Soracom's own rate-limit headers), simulator
    /// 100/s burst 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,

    /// Most carrier requests in flight at once for this account (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<u32>,

    /// Requests the operator may spend at this carrier in a calendar month (UTC). Default: 10
    /// million for emnify (its documented limit per organisation), none for the others.
    /// Changes and polls of pending actions go first; re-reads of resources at rest are paced
    /// to fit, and wait when the month is spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,

    /// emnify: when pausing, also suspend the SIM (stops SIM billing) besides disabling the
    /// endpoint (stops data); costs a second API call per device against the rate limit.
    /// soracom: pause to `suspended` (the basic fee stops; resuming costs a re-activation fee
    /// and devices may need a reboot) instead of `inactive` (free to toggle, the basic fee
    /// continues). Never `standby`, which any connection attempt resumes. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_sim_on_pause: Option<bool>,
}

/// Names a Secret and the key in it that holds the credential.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the CarrierAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key in the Secret's data. Defaults to `apiKey` for hologram and simulator (the API key),
    /// `applicationToken` for emnify (an application token), and `authKey` for soracom (the
    /// auth key id and the auth key, as `AUTH_KEY_ID:AUTH_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// A monthly request budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Carrier requests per calendar month (UTC), retries included. It must cover at least
    /// one observation of each group and quota using the account, or they stall with the cost.
    #[schemars(range(min = 1))]
    pub requests_per_month: u64,
}

/// A token-bucket rate limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per second (may be fractional, e.g. 6.5).
    #[schemars(range(min = 0.0, max = 10000.0), extend("exclusiveMinimum" = true))]
    pub requests_per_second: f64,

    /// Requests that may be sent at once after a quiet period.
    #[schemars(range(min = 1, max = 10000))]
    pub burst: u32,
}

impl CarrierAccountSpec {
    /// The base URL to use: `baseUrl`, or the provider's default.
    pub fn effective_base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or_else(|| self.provider.default_base_url())
    }

    /// The Secret key to read: `secretRef.key`, or the provider's default.
    pub fn effective_secret_key(&self) -> &str {
        self.secret_ref
            .key
            .as_deref()
            .unwrap_or_else(|| self.provider.default_secret_key())
    }

    /// The rate limit to keep: `rateLimit`, or the provider's default.
    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit
            .clone()
            .unwrap_or_else(|| self.provider.default_rate_limit())
    }

    /// Requests per month the operator may spend: `budget.requestsPerMonth`, or the provider's
    /// default; `None`: no budget.
    pub fn effective_requests_per_month(&self) -> Option<u64> {
        self.budget
            .as_ref()
            .map(|b| b.requests_per_month)
            .or_else(|| self.provider.default_requests_per_month())
    }

    /// The concurrency to use: `concurrency`, or 8.
    pub fn effective_concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(8)
    }

    /// Which carrier (and organisation) this account reaches: device 1010 at one carrier is
    /// not device 1010 at another, so claims are compared only between accounts on one carrier.
    pub fn carrier(&self) -> CarrierIdentity {
        CarrierIdentity {
            provider: self.provider,
            base_url: self
                .effective_base_url()
                .trim_end_matches('/')
                .to_ascii_lowercase(),
            org_id: self.org_id,
        }
    }
}

/// Which carrier base URLs the operator may send credentials to (`simfleet run
/// --allowed-carrier-url PREFIX`, repeatable). Without any, each provider's official base URL,
/// and loopback addresses for `provider: simulator`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CarrierUrlPolicy {
    /// The allowed prefixes; empty: the defaults.
    pub prefixes: Vec<String>,
}

impl CarrierUrlPolicy {
    /// The prefixes allowed for a provider.
    pub fn prefixes_for(&self, provider: Provider) -> Vec<String> {
        if !self.prefixes.is_empty() {
            return self.prefixes.clone();
        }
        match provider {
            Provider::Simulator => ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .map(String::from)
                .to_vec(),
            Provider::Soracom => vec![
                provider.default_base_url().to_owned(),
                SORACOM_GLOBAL_BASE_URL.to_owned(),
            ],
            _ => vec![provider.default_base_url().to_owned()],
        }
    }

    /// True when `url` starts with an allowed prefix at a boundary (`https://host` allows
    /// `https://host/api` and `https://host:8443`, never `https://host.example.org`).
    pub fn allows(&self, provider: Provider, url: &str) -> bool {
        let url = url.trim_end_matches('/');
        self.prefixes_for(provider).iter().any(|prefix| {
            let prefix = prefix.trim_end_matches('/');
            url.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('/') || rest.starts_with(':')
            })
        })
    }
}

/// A carrier organisation as an account reaches it: provider, base URL and organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierIdentity {
    /// The API spoken.
    pub provider: Provider,
    /// The base URL, without a trailing slash, lowercased.
    pub base_url: String,
    /// The organisation, when the account names one (a Hologram API key without `orgId`
    /// reaches every organisation of its user).
    pub org_id: Option<u64>,
}

impl CarrierIdentity {
    /// True when both may reach the same SIMs: same provider and base URL, and the same
    /// organisation (or one of them not scoped to any).
    pub fn same_carrier(&self, other: &CarrierIdentity) -> bool {
        self.provider == other.provider
            && self.base_url == other.base_url
            && (self.org_id == other.org_id || self.org_id.is_none() || other.org_id.is_none())
    }
}

/// What the operator last observed of a CarrierAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CarrierAccountStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions in the kstatus style: `Ready` (credentials verified), `Reconciling`,
    /// `Stalled` (e.g. reason `InvalidCredentials`, `SecretNotFound`, `Unreachable`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// What this carrier can do, as the operator uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CarrierCapabilities>,

    /// When the credentials were last verified against the carrier (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// Carrier requests spent this month and the month's projection (refreshed every few
    /// minutes; the metrics `simfleet_carrier_budget_*` are live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,

    /// How many SimGroups and DataQuotas (same namespace) use this account. A deleted account
    /// waits, with its finalizer, until they are gone, so that their `onDelete` (restore,
    /// quota removal) still has the carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<u32>,

    /// The Secret this account holds with the finalizer `simfleet.io/carrier-credentials`: its
    /// credentials stay readable through a namespace's deletion until the restores and quota
    /// removals are done. Let go when the account is gone or names another Secret, and at once
    /// when the Secret alone is deleted (a rotation by delete and create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_held: Option<String>,
}

/// What an account spent this month, as the operator counted it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// The calendar month (UTC), `YYYY-MM`.
    pub month: String,
    /// The month's budget (`spec.budget`, or the provider's default); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_month: Option<u64>,
    /// Carrier requests made this month (retries included).
    pub requests_spent: u64,
    /// Requests the month will cost at the steady rate: the rate measured after the operator's
    /// first hour (its start-up reads are a burst, not a rate). Absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_requests: Option<u64>,
    /// Reads the budget held back this month (they ran later).
    #[serde(default)]
    pub deferred_reads: u64,
    /// When counting began this month.
    pub since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// When these figures were taken.
    pub updated_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// A carrier's abilities, published in the CarrierAccount's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CarrierCapabilities {
    /// Most SIMs one carrier action may change (10,000 for Hologram, 2,000 for emnify's bulk
    /// route, 1,000 when emnify is written one device at a time).
    pub max_sims_per_action: u32,
    /// True when the carrier changes many SIMs in one request; false for one call per device.
    pub bulk_state_change: bool,
    /// Why this account writes one device at a time although the carrier offers a bulk route
    /// (e.g. emnify's bulk route answered 403 for these credentials), and when the bulk route
    /// is tried again (after a day, or at once when the Secret changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_state_change_unavailable: Option<String>,
    /// True when the carrier supports per-device data quotas (DataQuota).
    pub data_quota: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_urls_are_allowed_by_prefix_at_a_boundary_with_per_provider_defaults() {
        let defaults = CarrierUrlPolicy::default();
        assert!(defaults.allows(Provider::Hologram, "https://dashboard.hologram.io/api/1"));
        assert!(defaults.allows(Provider::Hologram, "https://dashboard.hologram.io/api/1/"));
        assert!(defaults.allows(Provider::Emnify, "https://cdn.emnify.net/api"));
        assert!(!defaults.allows(Provider::Emnify, "https://dashboard.hologram.io/api/1"));
        assert!(!defaults.allows(
            Provider::Hologram,
            "https://dashboard.hologram.io.evil.example/api/1"
        ));
        assert!(!defaults.allows(Provider::Hologram, "http://10.0.0.5/api/1"));
        assert!(defaults.allows(Provider::Simulator, "http://127.0.0.1:8080"));
        assert!(defaults.allows(Provider::Simulator, "http://localhost:9000/x"));
        assert!(!defaults.allows(Provider::Simulator, "http://127.0.0.1.evil.example"));
        assert!(!defaults.allows(Provider::Simulator, "http://169.254.169.254"));
        assert!(
            !defaults.allows(Provider::Emnify, "http://127.0.0.1:8080/api"),
            "loopback is for the simulator"
        );
        let listed = CarrierUrlPolicy {
            prefixes: vec!["https://carrier-proxy.internal/".into()],
        };
        assert!(listed.allows(
            Provider::Emnify,
            "https://carrier-proxy.internal/emnify/api"
        ));
        assert!(
            !listed.allows(Provider::Emnify, "https://cdn.emnify.net/api"),
            "a list replaces the defaults"
        );
    }
}
