//! `simfleet plan`'s inputs: the manifests of DIR (and `--carrier-account`, `--secret`),
//! validated as the API server would; accounts, Secrets and live objects read from a cluster
//! when DIR does not hold them; and the carrier clients built from them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use secrecy::SecretString;

use super::{AccountSource, ManifestProblem, PlanArgs, PlanReport};
use crate::resolve::secret_value;
use simfleet_api::manifest::{Document, is_manifest_file, kustomization_in, read_path};
use simfleet_api::validation::{ManifestValidator, SimfleetObject, ValidationError};
use simfleet_api::{CarrierAccount, DataQuota, SimGroup};
use simfleet_carrier::{Carrier, HttpSettings, connect};

/// Validated inputs: the simfleet objects of DIR and the Secrets given.
#[derive(Default)]
pub(super) struct Inputs {
    pub(super) accounts: Vec<CarrierAccount>,
    pub(super) groups: Vec<SimGroup>,
    pub(super) quotas: Vec<DataQuota>,
    pub(super) secrets: Vec<Secret>,
}

pub(super) fn namespace_of<K: ResourceExt>(object: &K) -> String {
    object.namespace().unwrap_or_else(|| "default".into())
}

/// Reads and validates every manifest; all problems are returned, not only the first.
pub(super) fn read_inputs(args: &PlanArgs, report: &mut PlanReport) -> Inputs {
    let validator = match ManifestValidator::new() {
        Ok(v) => v,
        Err(err) => {
            report.errors.push(ManifestProblem {
                file: String::new(),
                document: None,
                object: None,
                field: None,
                message: format!("compiling the CRD schemas (a bug): {err}"),
            });
            return Inputs::default();
        }
    };
    let mut inputs = Inputs::default();
    let mut documents = Vec::new();
    for path in [
        Some(&args.dir),
        args.carrier_account.as_ref(),
        args.secret.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        documents.extend(read_documents(path, report));
    }
    for document in documents {
        let file = document.source.display().to_string();
        let kind = document.value["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = document.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if document.value["apiVersion"] == "v1" && kind == "Secret" {
            match serde_json::from_value::<Secret>(document.value.clone()) {
                Ok(secret) => inputs.secrets.push(secret),
                Err(err) => report.errors.push(ManifestProblem {
                    file,
                    document: Some(document.index),
                    object: Some(format!("Secret/{name}")),
                    field: None,
                    message: format!("not a valid Secret: {err}"),
                }),
            }
            continue;
        }
        if !validator.knows(&document.value) {
            report.skipped_documents.push(format!(
                "{} ({}/{kind} {name})",
                document.location(),
                document.value["apiVersion"].as_str().unwrap_or_default()
            ));
            continue;
        }
        match validator.parse(&document.value) {
            Ok(SimfleetObject::CarrierAccount(a)) => inputs.accounts.push(*a),
            Ok(SimfleetObject::SimGroup(g)) => inputs.groups.push(*g),
            Ok(SimfleetObject::DataQuota(q)) => inputs.quotas.push(*q),
            Err(ValidationError::Invalid { kind, name, errors }) => {
                for error in errors {
                    report.errors.push(ManifestProblem {
                        file: file.clone(),
                        document: Some(document.index),
                        object: Some(format!("{kind}/{name}")),
                        field: Some(error.field.clone()),
                        message: error.to_string(),
                    });
                }
            }
            Err(err @ ValidationError::NotSimfleet { .. }) => report.errors.push(ManifestProblem {
                file,
                document: Some(document.index),
                object: None,
                field: None,
                message: err.to_string(),
            }),
        }
    }
    inputs
}

/// The documents of a path; a directory without a kustomization is read file by file, so that
/// one broken file does not hide the others' problems.
pub(super) fn read_documents(path: &Path, report: &mut PlanReport) -> Vec<Document> {
    let mut files = vec![path.to_owned()];
    if path.is_dir() && kustomization_in(path).is_none() {
        files = match std::fs::read_dir(path) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() || is_manifest_file(p))
                .collect(),
            Err(err) => {
                report
                    .errors
                    .push(problem(path, format!("cannot read: {err}")));
                return Vec::new();
            }
        };
        files.sort();
    }
    let mut documents = Vec::new();
    for file in files {
        match read_path(&file) {
            Ok(docs) => documents.extend(docs),
            Err(err) => report.errors.push(problem(&file, err.to_string())),
        }
    }
    documents
}

pub(super) fn problem(path: &Path, message: String) -> ManifestProblem {
    ManifestProblem {
        file: path.display().to_string(),
        document: None,
        object: None,
        field: None,
        message,
    }
}

/// Carrier clients by account, built on first use from DIR, the flags or the cluster.
pub(super) struct Accounts<'a> {
    pub(super) inputs: &'a Inputs,
    pub(super) cluster: Option<Client>,
    /// Which to prefer when DIR and the cluster both hold an account.
    pub(super) source: AccountSource,
    pub(super) clients: HashMap<(String, String), Result<Arc<dyn Carrier>, String>>,
    /// Each account used, where it came from and its URL, for the report.
    pub(super) used: Vec<String>,
}

impl Accounts<'_> {
    pub(super) async fn client(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<dyn Carrier>, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(found) = self.clients.get(&key) {
            return found.clone();
        }
        let built = self.build(namespace, name).await;
        self.clients.insert(key, built.clone());
        built
    }

    async fn build(&mut self, namespace: &str, name: &str) -> Result<Arc<dyn Carrier>, String> {
        let listed = self
            .inputs
            .accounts
            .iter()
            .find(|a| a.name_any() == name && namespace_of(*a) == namespace)
            .cloned();
        let from_cluster = match (&self.cluster, self.source, &listed) {
            (Some(client), AccountSource::Cluster, _) | (Some(client), _, None) => {
                Api::<CarrierAccount>::namespaced(client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map_err(|e| format!("reading CarrierAccount {namespace}/{name}: {e}"))?
            }
            _ => None,
        };
        let (account, origin) = match (from_cluster, listed) {
            (Some(account), _) => (account, Origin::Cluster),
            (None, Some(account)) => (account, Origin::Dir),
            (None, None) if self.cluster.is_some() => {
                return Err(format!(
                    "CarrierAccount {namespace}/{name} is neither in DIR, --carrier-account nor the cluster"
                ));
            }
            (None, None) => {
                return Err(format!(
                    "CarrierAccount {namespace}/{name} is not in DIR; pass --carrier-account FILE or --kubeconfig"
                ));
            }
        };
        let secret_name = &account.spec.secret_ref.name;
        let key = account.spec.effective_secret_key().to_owned();
        let listed = self
            .inputs
            .secrets
            .iter()
            .find(|s| s.name_any() == *secret_name && namespace_of(*s) == namespace)
            .cloned();
        // The Secret comes from where the account came from, then from the other place.
        let from_cluster = match (&self.cluster, origin, &listed) {
            (Some(client), Origin::Cluster, _) | (Some(client), _, None) => {
                Api::<Secret>::namespaced(client.clone(), namespace)
                    .get_opt(secret_name)
                    .await
                    .map_err(|e| format!("reading Secret {namespace}/{secret_name}: {e}"))?
            }
            _ => None,
        };
        let secret = match (from_cluster, listed) {
            (Some(secret), _) | (None, Some(secret)) => secret,
            (None, None) if self.cluster.is_some() => {
                return Err(format!("Secret {namespace}/{secret_name} not found"));
            }
            (None, None) => {
                return Err(format!(
                    "Secret {namespace}/{secret_name} (for CarrierAccount {name}) is not in DIR; pass --secret FILE or --kubeconfig"
                ));
            }
        };
        let value = secret_value(&secret, &key)
            .ok_or_else(|| format!("Secret {namespace}/{secret_name} has no key {key}"))?;
        self.used.push(format!(
            "CarrierAccount {namespace}/{name}: {} ({})",
            match origin {
                Origin::Cluster => "from the cluster",
                Origin::Dir => "from DIR",
            },
            account.spec.effective_base_url()
        ));
        connect(
            &account.spec,
            SecretString::from(value),
            HttpSettings::default(),
            simfleet_carrier::budget::RequestLedger::unlimited(),
        )
        .map_err(|e| format!("CarrierAccount {namespace}/{name}: {e}"))
    }
}

/// Where an account was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Cluster,
    Dir,
}

/// The live object of the same name, when planning against a cluster.
pub(super) async fn live<K>(cluster: Option<&Client>, object: &K) -> Option<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let client = cluster?;
    Api::<K>::namespaced(client.clone(), &namespace_of(object))
        .get_opt(&object.name_any())
        .await
        .ok()
        .flatten()
}

/// The generation the manifest would have once applied: the live one if the spec is
/// unchanged, the next one if it changed, 1 for a new object.
pub(super) fn generation_after_apply<K: kube::Resource>(live: Option<&K>, same_spec: bool) -> i64 {
    match live.and_then(|l| l.meta().generation) {
        Some(g) if same_spec => g,
        Some(g) => g + 1,
        None => 1,
    }
}
