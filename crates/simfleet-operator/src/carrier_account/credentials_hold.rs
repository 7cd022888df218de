//! The finalizer an account puts on the Secret it names, so that its credentials stay readable
//! until the account is gone. Deleting a namespace deletes its Secret together with its groups
//! and quotas, in any order; an operator that restarts then (or never read the Secret) would
//! have no credentials for the restores and quota removals the namespace's deletion waits for,
//! and the namespace would stay forever. So the Secret is held while an account names it, and
//! let go:
//! - when no account names it any more (the account is gone, or names another Secret);
//! - at once when the Secret itself is deleted while its account and namespace stay (a rotation
//!   by delete and create, which a held Secret would block).

use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use simfleet_api::CarrierAccount;

use crate::controller::Error;

/// The finalizer on a Secret a CarrierAccount names.
pub(crate) const CREDENTIALS_FINALIZER: &str = "simfleet.io/carrier-credentials";

/// Whether `secret` carries the finalizer.
fn is_held(secret: &Secret) -> bool {
    secret
        .finalizers()
        .iter()
        .any(|f| f == CREDENTIALS_FINALIZER)
}

/// Adds the finalizer to `secret` (read moments ago) and returns the Secret as it is now (its
/// resourceVersion changed: the account's client is keyed by it, and must not be rebuilt, nor
/// the credentials tried again, for the finalizer). The patch tests the resourceVersion, so a
/// Secret changed meanwhile is not patched blindly: the watch brings the account back.
/// Kubernetes refuses a new finalizer on an object being deleted; one is never asked for.
pub(crate) async fn hold(api: &Api<Secret>, secret: Secret) -> Result<Secret, Error> {
    if is_held(&secret) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(secret);
    }
    let mut operations = vec![test_version(&secret)];
    if secret.finalizers().is_empty() {
        operations.push(add("/metadata/finalizers", vec![CREDENTIALS_FINALIZER]));
    } else {
        operations.push(add("/metadata/finalizers/-", CREDENTIALS_FINALIZER));
    }
    patch(api, &secret, operations).await
}

/// Removes the finalizer from the Secret `name`, if it is there.
async fn let_go(api: &Api<Secret>, name: &str) -> Result<(), Error> {
    match api.get_opt(name).await? {
        Some(secret) => release(api, &secret).await,
        None => Ok(()),
    }
}

/// Removes the finalizer from `secret` (read moments ago), if it is there.
pub(crate) async fn release(api: &Api<Secret>, secret: &Secret) -> Result<(), Error> {
    let Some(index) = secret
        .finalizers()
        .iter()
        .position(|f| f == CREDENTIALS_FINALIZER)
    else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let operations = vec![
        test_version(secret),
        PatchOperation::Remove(RemoveOperation {
            path: path.parse().expect("a JSON pointer"),
        }),
    ];
    patch(api, secret, operations).await?;
    Ok(())
}

/// Removes the finalizer from each of the Secrets `names` that no other account than `account`
/// in the namespace names (deleting or not: the last to go lets go). One list of the accounts.
pub(crate) async fn let_go_unless_named(
    accounts: &Api<CarrierAccount>,
    secrets: &Api<Secret>,
    account: &str,
    names: &[&str],
) -> Result<(), Error> {
    let others = accounts.list(&ListParams::default()).await?.items;
    for name in names {
        let named = others
            .iter()
            .any(|a| a.name_any() != account && a.spec.secret_ref.name == *name);
        if !named {
            let_go(secrets, name).await?;
        }
    }
    Ok(())
}

fn test_version(secret: &Secret) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: "/metadata/resourceVersion".parse().expect("a JSON pointer"),
        value: secret.resource_version().unwrap_or_default().into(),
    })
}

fn add(path: &str, value: impl serde::Serialize) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path.parse().expect("a JSON pointer"),
        value: serde_json::to_value(value).expect("a finalizer serializes"),
    })
}

async fn patch(
    api: &Api<Secret>,
    secret: &Secret,
    operations: Vec<PatchOperation>,
) -> Result<Secret, Error> {
    let patch: Patch<()> = Patch::Json(json_patch::Patch(operations));
    Ok(api
        .patch(&secret.name_any(), &PatchParams::default(), &patch)
        .await?)
}
