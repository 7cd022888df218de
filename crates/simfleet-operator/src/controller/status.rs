//! The one status writer: a merge patch of the status subresource, skipped when nothing changed;
//! a status that turns Stalled (or changes why) is announced with a Warning event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::events::publish;
use super::{Context, Error};
use simfleet_api::conditions::{STALLED, Verdict};
use simfleet_api::{CarrierAccount, DataQuota, SimGroup};

/// A kind whose status carries kstatus conditions.
pub(crate) trait WithConditions:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug
{
    /// The status type.
    type Status: Serialize + PartialEq + Clone + Default;
    /// The status, if written.
    fn status(&self) -> Option<&Self::Status>;
    /// The status's conditions.
    fn conditions(status: &Self::Status) -> &[Condition];
    /// The status's conditions, to change.
    fn conditions_mut(status: &mut Self::Status) -> &mut Vec<Condition>;
}

macro_rules! with_conditions {
    ($kind:ty, $status:ty) => {
        impl WithConditions for $kind {
            type Status = $status;
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn conditions(status: &$status) -> &[Condition] {
                &status.conditions
            }
            fn conditions_mut(status: &mut $status) -> &mut Vec<Condition> {
                &mut status.conditions
            }
        }
    };
}
with_conditions!(SimGroup, simfleet_api::SimGroupStatus);
with_conditions!(DataQuota, simfleet_api::DataQuotaStatus);
with_conditions!(CarrierAccount, simfleet_api::CarrierAccountStatus);

/// The Stalled condition's reason and message when it is True.
fn stalled(conditions: &[Condition]) -> Option<(&str, &str)> {
    conditions
        .iter()
        .find(|c| c.type_ == STALLED && c.status == "True")
        .map(|c| (c.reason.as_str(), c.message.as_str()))
}

/// Writes a status, unless it is unchanged: the one place status is written. Every turn to
/// Stalled (or to another Stalled reason) gets a Warning event with the reason and message, so
/// that `kubectl get events` shows what needs a human.
pub(crate) async fn write_status<K: WithConditions>(
    context: &Context,
    api: &Api<K>,
    object: &K,
    current: Option<&K::Status>,
    next: &K::Status,
) -> Result<(), Error> {
    if current == Some(next) {
        return Ok(());
    }
    let was = current.and_then(|c| stalled(K::conditions(c)));
    let now = stalled(K::conditions(next));
    if let Some((reason, message)) = now
        && was.map(|(r, _)| r) != Some(reason)
    {
        publish(
            context,
            object,
            EventType::Warning,
            reason,
            message.to_owned(),
        )
        .await;
    }
    // A merge patch removes a field only when it says null: fields the new status leaves out
    // (an emptied list is not serialised), at any depth, are nulled explicitly.
    let mut status = serde_json::to_value(next)?;
    if let Some(old) = current.and_then(|c| serde_json::to_value(c).ok()) {
        null_removed(&old, &mut status);
    }
    let patch = serde_json::json!({"status": status});
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The reason of a resource's first conditions while its account's first check runs.
pub(crate) const WAITING_FOR_ACCOUNT: &str = "CarrierAccountVerifying";

/// A resource whose CarrierAccount this process is still verifying (just created, or the
/// operator just started): a wait of seconds, not a problem. A resource with no conditions yet
/// gets its first ones (Reconciling, reason `CarrierAccountVerifying`); one that has some keeps
/// them, so that a restart never flips a Ready resource or publishes a Warning. Looked at again
/// in 2 s.
pub(crate) async fn wait_for_account<K: WithConditions>(
    context: &Context,
    api: &Api<K>,
    object: &K,
    message: &str,
) -> Result<kube::runtime::controller::Action, Error> {
    if !has_conditions(object) {
        write_first_conditions(context, api, object, WAITING_FOR_ACCOUNT, message).await?;
    }
    Ok(kube::runtime::controller::Action::requeue(
        std::time::Duration::from_secs(2),
    ))
}

/// How long a resource without conditions may work before it gets its first ones.
pub(crate) const FIRST_CONDITIONS_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `work` (reading a large selection, verifying credentials at a slow carrier); should it
/// still run after [`FIRST_CONDITIONS_AFTER`] on a resource that has no conditions yet, its first
/// ones are written meanwhile (Reconciling with `reason` and `message`), so that a new resource
/// is never blank in `kubectl get` for long. Quick work writes nothing more than it did.
pub(crate) async fn with_first_conditions<K: WithConditions, T>(
    context: &Context,
    api: &Api<K>,
    object: &K,
    (reason, message): (&str, &str),
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    if has_conditions(object) {
        return work.await;
    }
    let mut work = std::pin::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = tokio::time::sleep(FIRST_CONDITIONS_AFTER) => {}
    }
    write_first_conditions(context, api, object, reason, message).await?;
    work.await
}

fn has_conditions<K: WithConditions>(object: &K) -> bool {
    object
        .status()
        .is_some_and(|s| says_more_than_waiting(K::conditions(s)))
}

/// Whether `conditions` say more than that the resource waits for its account's first check
/// (its own first conditions are still to come).
pub(crate) fn says_more_than_waiting(conditions: &[Condition]) -> bool {
    !conditions.is_empty()
        && !conditions.iter().any(|c| {
            c.type_ == simfleet_api::conditions::RECONCILING && c.reason == WAITING_FOR_ACCOUNT
        })
}

/// Not Ready, Reconciling for `reason`, nothing for a human; the rest of the status as it is.
async fn write_first_conditions<K: WithConditions>(
    context: &Context,
    api: &Api<K>,
    object: &K,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let current = object.status();
    let mut next = current.cloned().unwrap_or_default();
    simfleet_api::conditions::set_kstatus(
        K::conditions_mut(&mut next),
        [
            Verdict::new(false, "Progressing", message),
            Verdict::new(true, reason, message),
            Verdict::new(false, "Progressing", "nothing needs a human"),
        ],
        object.meta().generation.unwrap_or(0),
        context.clock.now(),
    );
    write_status(context, api, object, current, &next).await
}

/// Sets to null, in `new`, every object member `old` has and `new` lacks (recursively), so that
/// `new` as a merge patch over `old` yields exactly `new`.
fn null_removed(old: &serde_json::Value, new: &mut serde_json::Value) {
    if let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (old, new) {
        for (key, old_value) in old {
            match new.get_mut(key) {
                Some(new_value) => null_removed(old_value, new_value),
                None => {
                    new.insert(key.clone(), serde_json::Value::Null);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_patch_nulls_fields_removed_at_any_depth() {
        let old = serde_json::json!({"a": 1, "progress": {"done": 5, "journal": [1, 2]}, "list": [{"x": 1}]});
        let mut new = serde_json::json!({"progress": {"done": 6}, "list": [{"y": 2}]});
        super::null_removed(&old, &mut new);
        assert_eq!(
            new,
            serde_json::json!({"a": null, "progress": {"done": 6, "journal": null}, "list": [{"y": 2}]})
        );
        let mut merged = old.clone();
        json_patch::merge(&mut merged, &new);
        assert_eq!(
            merged,
            serde_json::json!({"progress": {"done": 6}, "list": [{"y": 2}]})
        );
    }
}
