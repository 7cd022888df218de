//! CarrierAccount: read its Secret, build (and cache) the carrier client, verify the
//! credentials with one cheap call, and publish Ready or Stalled with the carrier's capabilities.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use secrecy::SecretString;

use super::pause::{self, PauseCheck};
use super::resource_metrics::Shown;
use super::{Context, Error, api_for, write_status};
use crate::api::conditions::{self, READY};
use crate::api::{CarrierAccount, CarrierCapabilities};
use crate::carrier::CarrierError;
use crate::plan::carrier_account::{BUDGET_REFRESH, account_status, budget_status};
use crate::resolve::secret_value;

/// Runs the CarrierAccount controller; a Secret change re-verifies the accounts using it.
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    labels: Option<String>,
    stop: crate::shutdown::Stop,
) {
    let accounts: Api<CarrierAccount> = api_for(&context.client, namespace.as_deref());
    let secrets: Api<Secret> = api_for(&context.client, namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(labels) = labels {
        config = config.labels(&labels);
    }
    let rechecks = context.account_rechecks.take();
    let controller = Controller::new(accounts, config);
    let store = controller.store();
    context.metrics.watch(
        "CarrierAccount",
        controller.store(),
        |account: &CarrierAccount| Shown {
            conditions: account.status.as_ref().map_or(&[], |s| &s.conditions[..]),
            oldest_pending: None,
        },
    );
    let controller = controller.reconcile_all_on(rechecks).watches(
        secrets,
        watcher::Config::default(),
        move |secret: Secret| {
            let namespace = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            store
                .state()
                .into_iter()
                .filter(|a| {
                    a.namespace().as_deref() == Some(namespace.as_str())
                        && a.spec.secret_ref.name == name
                })
                .map(|a| ObjectRef::from_obj(&*a))
                .collect::<Vec<_>>()
        },
    );
    super::drive(controller, reconcile, error_policy, context, stop).await;
}

async fn reconcile(account: Arc<CarrierAccount>, context: Arc<Context>) -> Result<Action, Error> {
    let (object, measured_context) = (account.clone(), context.clone());
    super::reconciled(
        &measured_context,
        &*object,
        reconcile_once(account, context),
    )
    .await
}

async fn reconcile_once(
    account: Arc<CarrierAccount>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = account.namespace().unwrap_or_default();
    let api: Api<CarrierAccount> = Api::namespaced(context.client.clone(), &namespace);
    // A paused account is not verified (no carrier request); its cached client stays, and the
    // resources using it pause with it.
    if let PauseCheck::Paused(action) = pause::check(&context, &api, &*account, None).await? {
        return Ok(action);
    }
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let key = account.spec.effective_secret_key().to_owned();
    let secret_name = account.spec.secret_ref.name.clone();
    let now = context.clock.now();
    let previous = account.status.clone().unwrap_or_default();
    let url = account.spec.effective_base_url().to_owned();
    let key_of = format!("{namespace}/{}", account.name_any());
    let mut verified_at = None;
    // The URL is checked before the Secret is read or anything is built: no connection is made.
    // Verified: the message and the capabilities; or why not: the reason and the message.
    let verdict: Result<(String, CarrierCapabilities), (&str, String)> = if !context
        .carrier_urls
        .allows(account.spec.provider, &url)
    {
        Err((
            "UrlNotAllowed",
            format!(
                "baseUrl {url} is not among the carrier URLs this operator may send credentials to ({}); use one of them, or ask the operator's administrator to allow it (simfleet run --allowed-carrier-url, Helm value allowedCarrierUrls)",
                context
                    .carrier_urls
                    .prefixes_for(account.spec.provider)
                    .join(", ")
            ),
        ))
    } else {
        match secrets.get_opt(&secret_name).await? {
            None => Err((
                "SecretNotFound",
                format!(
                    "Secret {secret_name} not found in namespace {namespace}; create it with the key {key}"
                ),
            )),
            Some(secret) => match secret_value(&secret, &key) {
                None => Err((
                    "SecretKeyMissing",
                    format!("Secret {secret_name} has no key {key}; add it or set secretRef.key"),
                )),
                Some(value) => {
                    let fingerprint = format!(
                        "{}:{}",
                        account.metadata.generation.unwrap_or(0),
                        secret.resource_version().unwrap_or_default()
                    );
                    let carrier = context.carriers.get_or_build(
                        &account,
                        fingerprint.clone(),
                        SecretString::from(value),
                        &context.http,
                        &context.clock,
                    )?;
                    if let (Some(ledger), Some(spent)) =
                        (context.carriers.ledger(&key_of), previous.budget.as_ref())
                    {
                        // What the previous process counted this month still counts.
                        ledger.seed(
                            &spent.month,
                            spent.requests_spent,
                            spent.deferred_reads,
                            spent.since.0,
                        );
                    }
                    // Credentials accepted moments ago, for the same account and Secret, are
                    // not checked again (the trigger was this controller's own status write,
                    // or a recheck of capabilities, which the client knows without a call).
                    let recently = context
                        .carriers
                        .verified_at(&key_of, &fingerprint)
                        .filter(|at| now.duration_since(*at) < VERIFY_PERIOD)
                        .filter(|_| {
                            conditions::is_true(&previous.conditions, READY)
                                && previous.observed_generation == account.metadata.generation
                        });
                    let verified = match recently {
                        Some(at) => {
                            verified_at = Some(at);
                            Ok(())
                        }
                        None => {
                            let verdict = carrier.verify().await;
                            let at = verdict.is_ok().then_some(now);
                            context.carriers.set_verified(&key_of, at);
                            verified_at = at;
                            verdict
                        }
                    };
                    match verified {
                        Ok(()) => {
                            let c = carrier.capabilities();
                            let capabilities = CarrierCapabilities {
                                max_sims_per_action: u32::try_from(c.max_sims_per_action)
                                    .unwrap_or(u32::MAX),
                                bulk_state_change: c.bulk,
                                bulk_state_change_unavailable: c.bulk_unavailable,
                                data_quota: c.data_quota,
                            };
                            Ok((
                                format!(
                                    "credentials accepted by {}",
                                    account.spec.effective_base_url()
                                ),
                                capabilities,
                            ))
                        }
                        Err(
                            CarrierError::Unauthorized { message }
                            | CarrierError::Forbidden { message },
                        ) => Err((
                            "InvalidCredentials",
                            format!(
                                "the carrier refused the credentials in Secret {secret_name} (key {key}): {message}"
                            ),
                        )),
                        Err(e) => Err((
                            "Unreachable",
                            format!("{}: {e}", account.spec.effective_base_url()),
                        )),
                    }
                }
            },
        }
    };
    let generation = account.metadata.generation.unwrap_or(0);
    let ready = verdict.is_ok();
    let (reason, message) = match &verdict {
        Ok((message, _)) => ("Verified", message.clone()),
        Err((reason, message)) => (*reason, message.clone()),
    };
    let status = account_status(
        &previous,
        generation,
        verdict,
        budget_status(
            previous.budget.as_ref(),
            context.carriers.ledger(&key_of).map(|l| l.reading()),
            now,
        ),
        now,
    );
    let was = previous
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status == "True", c.reason.clone()));
    write_status(&api, &account, account.status.as_ref(), &status).await?;
    // An event when the verdict changes (not at every resync): what `kubectl describe` lists.
    if was.as_ref().map(|(r, why)| (*r, why.as_str())) != Some((ready, reason)) {
        let type_ = if ready {
            EventType::Normal
        } else {
            EventType::Warning
        };
        context
            .events
            .publish(&account.object_ref(&()), type_, reason, message)
            .await;
    }
    if !ready {
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    // Again when the credentials are due for a check, or the budget figures for a refresh.
    let verify_due = verified_at.unwrap_or(now) + VERIFY_PERIOD;
    let budget_due = status
        .budget
        .as_ref()
        .map_or(verify_due, |b| b.updated_time.0 + BUDGET_REFRESH);
    let wait = verify_due.min(budget_due).duration_since(now);
    Ok(Action::requeue(
        wait.max(jiff::SignedDuration::from_secs(1)).unsigned_abs(),
    ))
}

/// How often an account's credentials are checked against the carrier (one call).
const VERIFY_PERIOD: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

fn error_policy(account: Arc<CarrierAccount>, error: &Error, context: Arc<Context>) -> Action {
    super::retry_policy(&*account, error, &context)
}
