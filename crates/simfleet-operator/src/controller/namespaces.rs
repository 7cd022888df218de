//! Whether a namespace is being deleted. Kubernetes deletes a namespace's SimGroups and
//! DataQuotas one by one, in no set order: a group whose conflicting peer went first would
//! otherwise, for a moment, be the only claimant of a SIM and change it. So in a namespace
//! being deleted nothing is sent but restores and quota removals.

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;

/// Whether `namespace` is being deleted (or already gone). Without permission to read it (a
/// chart from before this rule), it is taken as not being deleted, and the operator says so
/// in its log.
pub(crate) async fn is_terminating(client: &Client, namespace: &str) -> bool {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(namespace).await {
        Ok(found) => found.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        Err(err) => {
            tracing::warn!(%namespace, %err, "cannot read the namespace (the chart grants get on namespaces); taking it as not being deleted");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{Api, DeleteParams, PostParams};
    use serde_json::json;

    use super::is_terminating;
    use simfleet_sandbox::{Sandbox, SandboxConfig};

    #[tokio::test]
    async fn a_namespace_being_deleted_or_gone_is_terminating_a_live_one_is_not() {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let client = sandbox.client();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let closing: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "closing"}})).unwrap();
        namespaces
            .create(&PostParams::default(), &closing)
            .await
            .unwrap();
        // Another controller's finalizer holds the namespace in its deletion.
        let held: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .unwrap();
        Api::<ConfigMap>::namespaced(client.clone(), "closing")
            .create(&PostParams::default(), &held)
            .await
            .unwrap();
        assert!(!is_terminating(&client, "closing").await);
        namespaces
            .delete("closing", &DeleteParams::default())
            .await
            .unwrap();
        assert!(is_terminating(&client, "closing").await);
        assert!(!is_terminating(&client, "default").await);
        assert!(is_terminating(&client, "never-created").await);
        sandbox.stop().await;
    }
}
