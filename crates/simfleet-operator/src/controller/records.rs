//! Records that outgrow status (a whole fleet's earlier SIM states, every device a DataQuota
//! set) kept in ConfigMaps owned by their resource: `<name>-<kind>-<n>`, labelled with the
//! owner's name. Each chunk is bounded in bytes by its record.
//!
//! Each chunk carries the finalizer [`RECORD_FINALIZER`]: a deleted namespace deletes its
//! ConfigMaps in any order with its SimGroups and DataQuotas, and a record must outlive that
//! until the operator has used it (a restore confirmed, the quotas removed). The operator
//! releases the finalizer when it removes the record, at the end of every owner's cleanup.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::{Error, MANAGER};

/// The finalizer on every record chunk: only the operator's cleanup of the owner releases it.
pub(crate) const RECORD_FINALIZER: &str = "simfleet.io/record";

/// One kind of record: its label, the chunks' name suffix and what a person reading it is told.
pub(crate) struct RecordKind {
    /// The label whose value is the owner's name.
    pub label: &'static str,
    /// Chunks are named `<owner>-<suffix>-<n>`.
    pub suffix: &'static str,
    /// The annotation `simfleet.io/description` on each chunk.
    pub description: &'static str,
}

/// The stored chunks of `owner`'s record, in order (none when nothing was written).
pub(crate) async fn load<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    kind: &RecordKind,
    owner: &K,
) -> Result<Vec<BTreeMap<String, String>>, Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let params = ListParams::default().labels(&format!("{}={}", kind.label, owner.name_any()));
    let mut maps = api.list(&params).await?.items;
    // `-10` after `-9`: by the chunk's index, not its name.
    maps.sort_by_key(|m| {
        m.name_any()
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
    });
    Ok(maps
        .into_iter()
        .map(|m| m.data.unwrap_or_default())
        .collect())
}

/// Writes the chunks that differ from `stored` (what was loaded or last saved), and removes
/// chunks past the new end. Returns the chunks now stored.
pub(crate) async fn save<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    kind: &RecordKind,
    owner: &K,
    stored: &[BTreeMap<String, String>],
    chunks: Vec<BTreeMap<String, String>>,
) -> Result<Vec<BTreeMap<String, String>>, Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let owner_ref = owner.controller_owner_ref(&());
    let name_of = |index: usize| format!("{}-{}-{index}", owner.name_any(), kind.suffix);
    for (index, data) in chunks.iter().enumerate() {
        if stored.get(index) == Some(data) {
            continue;
        }
        let name = name_of(index);
        let map = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(kind.label.to_owned(), owner.name_any())])),
                owner_references: owner_ref.clone().map(|o| vec![o]),
                finalizers: Some(vec![RECORD_FINALIZER.to_owned()]),
                annotations: Some(BTreeMap::from([(
                    "simfleet.io/description".to_owned(),
                    kind.description.to_owned(),
                )])),
                ..Default::default()
            },
            data: Some(data.clone()),
            ..Default::default()
        };
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&map),
        )
        .await?;
    }
    for index in chunks.len()..stored.len() {
        release(&api, &name_of(index)).await?;
    }
    Ok(chunks)
}

/// Deletes one chunk: its finalizer released, then the ConfigMap (already gone: nothing to do).
async fn release(api: &Api<ConfigMap>, name: &str) -> Result<(), Error> {
    let unfinalized = serde_json::json!({"metadata": {"finalizers": null}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&unfinalized))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(err) => return Err(err.into()),
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Deletes every chunk of `owner`'s record, releasing their finalizers (also those of chunks
/// already marked for deletion by a namespace's deletion).
pub(crate) async fn remove<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    kind: &RecordKind,
    owner: &K,
) -> Result<(), Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let params = ListParams::default().labels(&format!("{}={}", kind.label, owner.name_any()));
    for map in api.list(&params).await?.items {
        release(&api, &map.name_any()).await?;
    }
    Ok(())
}
