//! Server-side apply: field ownership and conflicts.

use super::*;

pub async fn server_side_apply_conflicts_on_fields_another_manager_owns_unless_forced(
    server: &Server,
) {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(server.client.clone(), &server.namespace);
    let lease = |holder: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"}, "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}});
    leases
        .patch(
            "leader",
            &PatchParams::apply("a"),
            &Patch::Apply(lease("a")),
        )
        .await
        .unwrap();
    // The same value from another manager is no conflict; a different one is.
    leases
        .patch(
            "leader",
            &PatchParams::apply("b"),
            &Patch::Apply(lease("a")),
        )
        .await
        .unwrap();
    let err = leases
        .patch(
            "leader",
            &PatchParams::apply("b"),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .contains("conflict with \"a\": .spec.holderIdentity"),
        "{}",
        status.message
    );
    assert_eq!(
        leases
            .get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a"),
        "a conflicting apply changes nothing"
    );
    // Forced, it takes the field over.
    leases
        .patch(
            "leader",
            &PatchParams::apply("b").force(),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap();
    // A field removed by an update has no owner left: a third manager may set it.
    leases
        .patch(
            "leader",
            &PatchParams {
                field_manager: Some("b".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"holderIdentity": null}})),
        )
        .await
        .unwrap();
    leases
        .patch(
            "leader",
            &PatchParams::apply("c"),
            &Patch::Apply(lease("c")),
        )
        .await
        .unwrap();
}
