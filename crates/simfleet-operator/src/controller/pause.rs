//! The pause annotation in the controllers: a paused resource (or one whose CarrierAccount is
//! paused) gets no carrier request, not even a read; its status keeps its last counts with
//! `Reconciling=False` reason `Paused`, and events `Paused` and `Resumed` mark the change.
//! The check runs before the finalizer, so a paused resource's deletion waits too.

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::events::publish;
use super::status::WithConditions;
use super::{Context, Error, write_status};
use crate::plan::pause::{pause_reason, paused_conditions, was_paused};
use simfleet_api::CarrierAccount;

/// What the pause check found.
pub(crate) enum PauseCheck {
    /// Paused: status and events are written; the reconcile ends with this action.
    Paused(Action),
    /// Not paused, and paused when status was last written: reconcile in full now.
    Resumed,
    /// Not paused.
    Running,
}

/// Checks the pause annotation of `object` and, when given, of the CarrierAccount it uses (read
/// from the API server, never from the carrier). A paused object's status is written once
/// with the reason; it is looked at again when it or its account changes (both are watched).
pub(crate) async fn check<K: WithConditions>(
    context: &Context,
    api: &Api<K>,
    object: &K,
    account: Option<&str>,
) -> Result<PauseCheck, Error> {
    let whose = format!("{} {}", K::kind(&()), object.name_any());
    let mut reason = pause_reason(object.annotations(), &whose);
    if reason.is_none()
        && let Some(account) = account
    {
        let namespace = object.namespace().unwrap_or_default();
        let accounts: Api<CarrierAccount> = Api::namespaced(context.client.clone(), &namespace);
        if let Some(found) = accounts.get_opt(account).await? {
            reason = pause_reason(
                found.annotations(),
                &format!("its CarrierAccount {account}"),
            );
        }
    }
    let previous = object.status().cloned().unwrap_or_default();
    let was = was_paused(K::conditions(&previous));
    let Some(mut message) = reason else {
        if was {
            publish(
                context,
                object,
                EventType::Normal,
                "Resumed",
                format!("{whose} is reconciled again"),
            )
            .await;
            return Ok(PauseCheck::Resumed);
        }
        return Ok(PauseCheck::Running);
    };
    if object.meta().deletion_timestamp.is_some() {
        message.push_str("; the deletion waits until then");
    }
    let mut status = previous.clone();
    let generation = object.meta().generation.unwrap_or(0);
    let conditions = K::conditions_mut(&mut status);
    *conditions = paused_conditions(conditions, &message, generation, context.clock.now());
    write_status(context, api, object, object.status(), &status).await?;
    if !was {
        publish(context, object, EventType::Normal, "Paused", message).await;
    }
    tracing::debug!(object = %whose, "paused; no carrier request");
    Ok(PauseCheck::Paused(Action::await_change()))
}
