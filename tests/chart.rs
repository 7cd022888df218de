//! The Helm chart, linted and rendered with Helm's own engine (PyPI helm-python-sdk, through
//! scripts/chart.py): strict lint with default and other values, the watchNamespace and
//! ServiceMonitor variants, the Deployment's security settings, and the values schema.

mod common;

use serde_json::{Value, json};

fn kinds(documents: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(documents)))
}

#[test]
fn the_chart_lints_strictly_with_default_and_other_values() {
    for values in [
        json!({}),
        json!({"watchNamespace": "fleet", "replicaCount": 3, "serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}, "podDisruptionBudget": {"enabled": false}, "leaderElection": {"enabled": false}, "logFormat": "text", "image": {"repository": "registry.example/simfleet", "tag": "1.2.3", "pullPolicy": "Always"}, "grafanaDashboard": {"enabled": true, "namespace": "grafana", "labels": {"team": "fleet"}}, "prometheusRule": {"enabled": true, "labels": {"release": "prom"}, "stalledFor": "30m"}}),
    ] {
        let report = common::chart("lint", &values, None).unwrap();
        assert_eq!(report["errors"], json!([]), "{values}: {report}");
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_u64() >= Some(2))
            .collect();
        assert!(problems.is_empty(), "{values}: {problems:?}");
    }
}

#[test]
fn the_default_render_runs_two_locked_down_replicas_with_leader_election() {
    let documents = common::rendered(&json!({}), Some("simfleet-system"));
    assert_eq!(
        kinds(&documents),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = find(&documents, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for flag in ["run", "--leader-election", "--metrics-addr=0.0.0.0:9090"] {
        assert!(args.contains(&flag), "{flag} in {args:?}");
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    // The args parse as `simfleet` flags.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .args(
            args.iter()
                .map(|a| a.replace("$(POD_NAMESPACE)", "simfleet-system")),
        )
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lease_role = find(&documents, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], "simfleet-system");
    assert_eq!(lease_role["rules"][0]["resources"], json!(["leases"]));
    let binding = find(&documents, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["namespace"], "simfleet-system");
}

#[test]
fn watch_namespace_mode_grants_a_role_there_and_the_service_monitor_is_optional() {
    let documents = common::rendered(
        &json!({"watchNamespace": "fleet", "serviceMonitor": {"enabled": true}}),
        Some("simfleet-system"),
    );
    let kinds = kinds(&documents);
    // The one ClusterRole reads the watched namespace's own object, nothing else.
    let cluster_roles: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .collect();
    assert_eq!(cluster_roles.len(), 1, "{kinds:?}");
    assert_eq!(
        cluster_roles[0]["rules"],
        json!([{"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["fleet"], "verbs": ["get"]}])
    );
    assert!(kinds.contains(&"ServiceMonitor".to_owned()), "{kinds:?}");
    let roles: Vec<&Value> = documents.iter().filter(|d| d["kind"] == "Role").collect();
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "fleet"));
    let container = &find(&documents, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--namespace=fleet"))
    );
    let monitor = find(&documents, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let without = common::rendered(&json!({"serviceMonitor": {"enabled": false}}), None);
    assert!(!without.iter().any(|d| d["kind"] == "ServiceMonitor"));
}

#[test]
fn the_allowed_carrier_urls_become_the_operator_s_allow_list() {
    let documents = common::rendered(
        &json!({"allowedCarrierUrls": ["https://cdn.emnify.net/api", "https://proxy.internal/hologram"]}),
        None,
    );
    let container = &find(&documents, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].as_array().unwrap();
    for url in [
        "https://cdn.emnify.net/api",
        "https://proxy.internal/hologram",
    ] {
        assert!(
            args.contains(&json!(format!("--allowed-carrier-url={url}"))),
            "{args:?}"
        );
    }
    let default = common::rendered(&json!({}), None);
    let args =
        find(&default, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        !args
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("--allowed-carrier-url")),
        "by default the operator's own defaults apply: {args}"
    );
}

#[test]
fn the_quota_audit_period_becomes_the_operator_s_flag() {
    let args = |values: serde_json::Value| {
        find(&common::rendered(&values, None), "Deployment")["spec"]["template"]["spec"]
            ["containers"][0]["args"]
            .clone()
    };
    let set = args(json!({"quotaAuditPeriod": "6h"}));
    assert!(
        set.as_array()
            .unwrap()
            .contains(&json!("--quota-audit-period=6h")),
        "{set}"
    );
    let default = args(json!({}));
    assert!(
        !default.to_string().contains("--quota-audit-period"),
        "by default the operator's 24h applies: {default}"
    );
}

#[test]
fn values_that_do_not_fit_the_schema_are_refused_with_the_key() {
    for (values, key) in [
        (json!({"replicaCount": 0}), "replicaCount"),
        (json!({"logFormat": "xml"}), "logFormat"),
        (json!({"metrics": {"port": "http"}}), "port"),
        (json!({"typo": true}), "typo"),
        (
            json!({"allowedCarrierUrls": ["https://user:key@carrier.example"]}),
            "allowedCarrierUrls",
        ),
        (json!({"quotaAuditPeriod": "1 day"}), "quotaAuditPeriod"),
        (
            json!({"prometheusRule": {"stalledFor": "a while"}}),
            "stalledFor",
        ),
        (
            json!({"prometheusRule": {"pendingActionMaxAgeSeconds": 1}}),
            "pendingActionMaxAgeSeconds",
        ),
        (json!({"grafanaDashboard": {"enabled": "yes"}}), "enabled"),
    ] {
        let err = common::chart("render", &values, None).unwrap_err();
        assert!(err.contains(key), "{values}: {err}");
    }
}
