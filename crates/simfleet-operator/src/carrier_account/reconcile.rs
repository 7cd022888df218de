//! CarrierAccount: read its Secret, build (and cache) the carrier client, verify the
//! credentials with one cheap call, and publish Ready or Stalled with the carrier's capabilities.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use secrecy::SecretString;

use crate::carrier_account::credentials_hold;
use crate::carrier_account::verdict::{
    AccountFinding, account_status, budget_status, deletion_waits_status, next_check,
    refusal_backoff, still_verified, verdict,
};
use crate::controller::events::publish;
use crate::controller::namespaces;
use crate::controller::pause::{self, PauseCheck};
use crate::controller::resource_metrics::Shown;
use crate::controller::{
    ACCOUNT_FINALIZER, Context, Error, api_for, with_first_conditions, write_status,
};
use crate::resolve::secret_entry;
use simfleet_api::conditions::{self, READY};
use simfleet_api::{CarrierAccount, CarrierCapabilities, DataQuota, SimGroup};
use simfleet_carrier::CarrierError;

/// Runs the CarrierAccount controller. Secrets are not listed (that would read every Secret in
/// the cluster, Helm releases included): each account reads the one it names, watched by name
/// (`secret_watch`), so a rotation, a fix or a deletion is picked up at once; and again at
/// least every [`SECRET_RECHECK`], should a watch be down.
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    labels: Option<String>,
    stop: simfleet_core::shutdown::Stop,
) {
    let accounts: Api<CarrierAccount> = api_for(&context.client, namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(labels) = labels {
        config = config.labels(&labels);
    }
    let rechecks = context.account_rechecks.take();
    let controller = Controller::new(accounts, config);
    context.metrics.watch(
        "CarrierAccount",
        controller.store(),
        |account: &CarrierAccount| Shown {
            conditions: account.status.as_ref().map_or(&[], |s| &s.conditions[..]),
            oldest_pending: None,
        },
    );
    let controller = controller.reconcile_all_on(rechecks);
    crate::controller::drive(controller, reconcile, context, stop).await;
}

/// How often an account reads its Secret again, whatever else it waits for.
const SECRET_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

async fn reconcile(account: Arc<CarrierAccount>, context: Arc<Context>) -> Result<Action, Error> {
    let namespace = account.namespace().unwrap_or_default();
    let api: Api<CarrierAccount> = Api::namespaced(context.client.clone(), &namespace);
    // A paused account is not verified (no carrier request); its cached client stays, and the
    // resources using it pause with it. Its deletion waits too.
    if let PauseCheck::Paused(action) = pause::check(&context, &api, &*account, None).await? {
        return Ok(action);
    }
    finalizer(&api, ACCOUNT_FINALIZER, account, |event| async {
        match event {
            Finalizer::Apply(account) => apply(&account, &context, &api, &namespace).await,
            Finalizer::Cleanup(account) => release(&account, &context, &api, &namespace).await,
        }
    })
    .await
    .map_err(crate::controller::from_finalizer)
}

async fn apply(
    account: &CarrierAccount,
    context: &Context,
    api: &Api<CarrierAccount>,
    namespace: &str,
) -> Result<Action, Error> {
    let now = context.clock.now();
    context.secret_watches.follow(
        &context.client,
        account,
        &context.account_rechecks.requester(),
    );
    // A Secret this account named before is let go (unless another account names it).
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    let held_before = account
        .status
        .as_ref()
        .and_then(|s| s.secret_held.as_deref());
    if let Some(before) = held_before.filter(|name| *name != account.spec.secret_ref.name) {
        credentials_hold::let_go_unless_named(api, &secrets, &account.name_any(), &[before])
            .await?;
    }
    let (finding, verified_at) = with_first_conditions(
        context,
        api,
        account,
        (
            super::FIRST_CHECK,
            "reading the Secret and trying the credentials at the carrier",
        ),
        check(context, account, namespace, now),
    )
    .await?;
    // Whenever the Secret was read, it is held (`check`). A Secret not read this time (the URL
    // refused first) may still carry the finalizer: it stays recorded, so that it is let go
    // when the account goes or names another one (one named before was let go above).
    let named = &account.spec.secret_ref.name;
    let read = match finding {
        AccountFinding::SecretNotFound => false,
        AccountFinding::UrlNotAllowed { .. } => held_before == Some(named.as_str()),
        _ => true,
    };
    let secret_held = read.then(|| named.clone());
    let checked = Checked {
        verdict: verdict(&account.spec, namespace, finding),
        verified_at,
        secret_held,
    };
    let users = users_of(context, namespace, &account.name_any()).await?;
    report(context, api, account, checked, users.len(), now).await
}

/// What a check of the account found, as its status says it.
struct Checked {
    verdict: Result<(String, CarrierCapabilities), (&'static str, String)>,
    /// When the credentials were last accepted.
    verified_at: Option<jiff::Timestamp>,
    /// The Secret the account holds (`credentials_hold`).
    secret_held: Option<String>,
}

/// The SimGroups and DataQuotas (`Kind name`) that name `account` as their carrierRef.
async fn users_of(context: &Context, namespace: &str, account: &str) -> Result<Vec<String>, Error> {
    let groups: Api<SimGroup> = Api::namespaced(context.client.clone(), namespace);
    let quotas: Api<DataQuota> = Api::namespaced(context.client.clone(), namespace);
    let mut users: Vec<String> = groups
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|g| g.spec.carrier_ref.name == account)
        .map(|g| format!("SimGroup {}", g.name_any()))
        .collect();
    users.extend(
        quotas
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|q| q.spec.carrier_ref.name == account)
            .map(|q| format!("DataQuota {}", q.name_any())),
    );
    Ok(users)
}

/// A deleted account goes once nothing uses it: until then its client stays cached (a deleted
/// Secret does not stop a restore that is under way), and its Secret held, and status says what
/// the deletion waits for. An operator started after the deletion began has no client: it
/// reads the (held) Secret and verifies the credentials, for the users' `onDelete`.
async fn release(
    account: &CarrierAccount,
    context: &Context,
    api: &Api<CarrierAccount>,
    namespace: &str,
) -> Result<Action, Error> {
    let name = account.name_any();
    let users = users_of(context, namespace, &name).await?;
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    if users.is_empty() {
        let mut held = vec![account.spec.secret_ref.name.as_str()];
        if let Some(before) = account
            .status
            .as_ref()
            .and_then(|s| s.secret_held.as_deref())
            && !held.contains(&before)
        {
            held.push(before);
        }
        credentials_hold::let_go_unless_named(api, &secrets, &name, &held).await?;
        context
            .carriers
            .forget(&crate::controller::memory_key(account));
        context.secret_watches.forget(account);
        return Ok(Action::await_change());
    }
    let now = context.clock.now();
    let generation = account.metadata.generation.unwrap_or(0);
    let mut previous = account.status.clone().unwrap_or_default();
    if context.carriers.verified(namespace, &name).is_none() {
        let (finding, _) = check(context, account, namespace, now).await?;
        let budget = previous.budget.clone();
        let verdict = verdict(&account.spec, namespace, finding);
        previous = account_status(&previous, generation, verdict, budget, now);
    }
    let status = deletion_waits_status(&previous, generation, &users, now);
    if status != previous {
        publish(
            context,
            account,
            EventType::Normal,
            "DeletionWaitsForUsers",
            status
                .conditions
                .iter()
                .find(|c| c.type_ == conditions::RECONCILING)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        )
        .await;
    }
    write_status(context, api, account, account.status.as_ref(), &status).await?;
    Err(Error::InUse(users.len()))
}

/// Checks the account: its URL, then its Secret, then (building or reusing its client) the
/// credentials at the carrier, unless they were accepted moments ago. Returns what it found
/// and when the credentials were last accepted.
async fn check(
    context: &Context,
    account: &CarrierAccount,
    namespace: &str,
    now: jiff::Timestamp,
) -> Result<(AccountFinding, Option<jiff::Timestamp>), Error> {
    let spec = &account.spec;
    // The URL is checked before the Secret is read or anything is built: no connection is made.
    if !context
        .carrier_urls
        .allows(spec.provider, spec.effective_base_url())
    {
        let allowed = context.carrier_urls.prefixes_for(spec.provider);
        return Ok((AccountFinding::UrlNotAllowed { allowed }, None));
    }
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&spec.secret_ref.name).await? else {
        return Ok((AccountFinding::SecretNotFound, None));
    };
    // Deleted alone (the account and its namespace stay): a rotation by delete and create,
    // which holding it would block. Deleted with its namespace: held, and used, until the
    // account is gone.
    if secret.metadata.deletion_timestamp.is_some()
        && account.metadata.deletion_timestamp.is_none()
        && !namespaces::is_terminating(&context.client, namespace).await
    {
        credentials_hold::release(&secrets, &secret).await?;
        return Ok((AccountFinding::SecretNotFound, None));
    }
    let secret = credentials_hold::hold(&secrets, secret).await?;
    let value = match secret_entry(&secret, spec.effective_secret_key()) {
        None => return Ok((AccountFinding::SecretKeyMissing, None)),
        Some(value) if value.is_empty() => return Ok((AccountFinding::SecretKeyEmpty, None)),
        Some(value) => value,
    };
    let generation = account.metadata.generation.unwrap_or(0);
    let fingerprint = format!(
        "{generation}:{}",
        secret.resource_version().unwrap_or_default()
    );
    let carrier = match context.carriers.get_or_build(
        account,
        fingerprint.clone(),
        SecretString::from(value),
        &context.http,
        &context.clock,
    ) {
        Ok(carrier) => carrier,
        // A value the client cannot take apart (Soracom's AUTH_KEY_ID:AUTH_KEY without its
        // colon): nothing was sent; the Secret must change.
        Err(CarrierError::Unauthorized { message } | CarrierError::Forbidden { message }) => {
            return Ok((AccountFinding::SecretValueInvalid(message), None));
        }
        Err(other) => return Err(other.into()),
    };
    let key = crate::controller::memory_key(account);
    let previous = account.status.clone().unwrap_or_default();
    if let (Some(ledger), Some(spent)) = (context.carriers.ledger(&key), previous.budget.as_ref()) {
        // What the previous process counted this month still counts.
        ledger.seed(
            &spent.month,
            spent.requests_spent,
            spent.deferred_reads,
            spent.since.0,
        );
    }
    let recently = context.carriers.verified_at(&key, &fingerprint);
    if let Some(at) = still_verified(recently, &previous, generation, now) {
        return Ok((
            AccountFinding::Accepted(carrier.capabilities().published()),
            Some(at),
        ));
    }
    // Refused credentials are tried again after a growing wait (each try is a failed
    // authentication, which carriers count towards a lock); a changed Secret at once.
    if let Some(refusal) = context.carriers.last_refusal(&key, &fingerprint)
        && let until = refusal.at + refusal_backoff(refusal.in_a_row)
        && now < until
    {
        let message = refusal.message;
        let when = until.strftime("%H:%M:%S UTC");
        return Ok((
            AccountFinding::Refused(format!(
                "{message} (tried again at {when}, or at once when the Secret changes)"
            )),
            None,
        ));
    }
    let verified = carrier.verify().await;
    let at = verified.is_ok().then_some(now);
    context.carriers.set_verified(&key, at);
    let finding = match verified {
        Ok(()) => AccountFinding::Accepted(carrier.capabilities().published()),
        Err(CarrierError::Unauthorized { message } | CarrierError::Forbidden { message }) => {
            context.carriers.set_refused(&key, now, message.clone());
            AccountFinding::Refused(message)
        }
        Err(CarrierError::AuthenticationDeferred { message }) => AccountFinding::Deferred(message),
        Err(error) => AccountFinding::Unreachable(error.to_string()),
    };
    Ok((finding, at))
}

/// Writes the account's status (with the month's figures), publishes an event when the
/// verdict changes (not at every resync: what `kubectl describe` lists), and says when to look
/// again.
async fn report(
    context: &Context,
    api: &Api<CarrierAccount>,
    account: &CarrierAccount,
    checked: Checked,
    users: usize,
    now: jiff::Timestamp,
) -> Result<Action, Error> {
    let Checked {
        verdict,
        verified_at,
        secret_held,
    } = checked;
    let previous = account.status.clone().unwrap_or_default();
    let generation = account.metadata.generation.unwrap_or(0);
    let key = crate::controller::memory_key(account);
    let ready = verdict.is_ok();
    let (reason, message) = match &verdict {
        Ok((message, _)) => ("Verified", message.clone()),
        Err((reason, message)) => (*reason, message.clone()),
    };
    let budget = budget_status(
        previous.budget.as_ref(),
        context.carriers.ledger(&key).map(|l| l.reading()),
        now,
    );
    let mut status = account_status(&previous, generation, verdict, budget, now);
    status.used_by = Some(u32::try_from(users).unwrap_or(u32::MAX));
    status.secret_held = secret_held;
    let was = previous
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status == "True", c.reason.clone()));
    write_status(context, api, account, account.status.as_ref(), &status).await?;
    // A turn to Stalled has its Warning from the status writer already.
    if was.as_ref().map(|(r, why)| (*r, why.as_str())) != Some((ready, reason))
        && (ready || !conditions::is_true(&status.conditions, conditions::STALLED))
    {
        let type_ = if ready {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(context, account, type_, reason, message).await;
    }
    Ok(Action::requeue(
        next_check(&status, verified_at, now).min(SECRET_RECHECK),
    ))
}
