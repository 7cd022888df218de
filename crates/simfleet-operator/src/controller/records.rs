//! Records that outgrow status (a whole fleet's earlier SIM states, every device a DataQuota
//! set) kept in ConfigMaps owned by their resource: `<name>-<kind>-<n>`, labelled with the
//! owner's name, garbage-collected with it. Each chunk is bounded in bytes by its record.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::{Error, MANAGER};

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
        api.delete(&name_of(index), &DeleteParams::default())
            .await?;
    }
    Ok(chunks)
}

/// Deletes every chunk of `owner`'s record.
pub(crate) async fn remove<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    kind: &RecordKind,
    owner: &K,
) -> Result<(), Error> {
    let api: Api<ConfigMap> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let params = ListParams::default().labels(&format!("{}={}", kind.label, owner.name_any()));
    for map in api.list(&params).await?.items {
        api.delete(&map.name_any(), &DeleteParams::default())
            .await?;
    }
    Ok(())
}
