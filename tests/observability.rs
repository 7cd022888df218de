//! The chart's dashboard and alerts against the real thing: Helm's engine renders them,
//! Debian's `promtool` checks the rules and runs their unit tests (tests/fixtures/
//! alerts.test.yaml), and Debian's `prometheus` scrapes the operator in `simfleet dev` and
//! evaluates every query of the dashboard and every alert expression.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A Debian `prometheus` package tool: on PATH, as `scripts/test` installs it.
fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed; ./scripts/test installs Debian's prometheus package (apt-get install prometheus)"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simfleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The chart rendered with the dashboard and the rules on.
fn rendered_observability() -> (Value, Value) {
    let documents = common::rendered(
        &json!({"grafanaDashboard": {"enabled": true, "folder": "Fleet"}, "prometheusRule": {"enabled": true}}),
        Some("monitoring"),
    );
    let dashboard = documents
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("a dashboard ConfigMap")
        .clone();
    let rule = documents
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule")
        .clone();
    (dashboard, rule)
}

/// Runs Debian's `promtool` with `args` on `file`, and asserts it succeeds.
fn promtool(args: &[&str], file: &Path) {
    let run = Command::new(tool("promtool"))
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "promtool {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The rule file a PrometheusRule's spec makes (JSON is YAML to promtool and prometheus).
fn write_rules(rule: &Value, dir: &Path) -> PathBuf {
    let path = dir.join("rules.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&rule["spec"]).unwrap()).unwrap();
    path
}

fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn alert_expressions(rule: &Value) -> Vec<(String, String)> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// An alert's expression without its final threshold (`series > 3` gives `series`): what
/// must return data for the alert to be able to fire.
fn without_threshold(expr: &str) -> String {
    let expr = expr.trim();
    let mut depth = 0i32;
    let mut cut = None;
    for (i, c) in expr.char_indices() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            '>' | '<' | '=' if depth == 0 => {
                cut.get_or_insert(i);
            }
            _ => {}
        }
    }
    let cut = cut.unwrap_or_else(|| panic!("{expr} has no threshold"));
    assert!(
        expr[cut..]
            .trim_start_matches(['>', '<', '='])
            .trim()
            .parse::<f64>()
            .is_ok(),
        "{expr}: the threshold is not a number"
    );
    expr[..cut].trim().to_owned()
}

fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("simfleet_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_chart_renders_the_dashboard_and_rules_and_promtool_passes_them_and_their_unit_tests() {
    let (config_map, rule) = rendered_observability();
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(config_map["metadata"]["namespace"], "monitoring");
    assert_eq!(
        config_map["metadata"]["annotations"]["grafana_folder"],
        "Fleet"
    );
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string("charts/simfleet/dashboards/simfleet.json").unwrap(),
    )
    .unwrap();
    let carried: Value =
        serde_json::from_str(config_map["data"]["simfleet.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        carried, shipped,
        "the ConfigMap holds the dashboard as kept in the chart"
    );
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let alerts: Vec<String> = alert_expressions(&rule)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");

    let dir = temp_dir("promtool");
    let rules = write_rules(&rule, &dir);
    promtool(&["check", "rules"], &rules);
    let tests = std::fs::read_to_string("tests/fixtures/alerts.test.yaml")
        .unwrap()
        .replace("RULES", rules.to_str().unwrap());
    let tests_path = dir.join("alerts.test.yaml");
    std::fs::write(&tests_path, tests).unwrap();
    promtool(&["test", "rules"], &tests_path);
    // Each alert has a unit test.
    let tested = std::fs::read_to_string(&tests_path).unwrap();
    for alert in &alerts {
        assert!(
            tested.contains(&format!("alertname: {alert}")),
            "{alert} has no unit test"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The TCP port a process listens on, found in /proc (prometheus binds port 0 and does not
/// say which port it got).
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(3) == Some(&"0A");
        let ours = fields.get(9).is_some_and(|i| inodes.iter().any(|n| n == i));
        if !(listening && ours) {
            return None;
        }
        let port = fields[1].rsplit(':').next()?;
        u16::from_str_radix(port, 16).ok()
    })
}

/// `simfleet dev` with its metrics on a free port; the metrics URL.
fn start_dev(dir: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["dev", "--api-listen", "127.0.0.1:0", "--sims", "200"])
        .args(["--metrics-addr", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(dir.join("kubeconfig"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("simfleet: metrics on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("simfleet dev prints its metrics address");
    (running, url)
}

async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Vec<Value> {
    let Ok(response) = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
    else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    assert_ne!(body["status"], "error", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn prometheus_scrapes_simfleet_dev_and_every_dashboard_query_and_alert_returns_data() {
    let (config_map, rule) = rendered_observability();
    let dashboard: Value =
        serde_json::from_str(config_map["data"]["simfleet.json"].as_str().unwrap()).unwrap();
    let dir = temp_dir("prometheus");
    let (_dev, metrics_url) = start_dev(&dir);
    // A group that needs a human (a mistyped tag selects nothing), so that the stalled series
    // have data: the examples converge.
    let kubeconfig = kube::config::Kubeconfig::read_from(dir.join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let groups: kube::Api<simfleet::api::SimGroup> =
        kube::Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    groups
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"apiVersion": "simfleet.io/v1alpha1", "kind": "SimGroup", "metadata": {"name": "typo"}, "spec": {"carrierRef": {"name": "simulator"}, "state": "Paused", "selector": {"tags": ["vendnig"]}}})).unwrap(),
        )
        .await
        .unwrap();
    let target = metrics_url.trim_start_matches("http://").to_owned();
    let rules = write_rules(&rule, &dir);
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        serde_json::to_string_pretty(&json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules],
            "scrape_configs": [{"job_name": "simfleet", "static_configs": [{"targets": [target]}]}]
        }))
        .unwrap(),
    )
    .unwrap();
    let prometheus = Running(
        Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .args(["--web.listen-address=127.0.0.1:0", "--log.level=warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let port = loop {
        if let Some(port) = listening_port(prometheus.0.id()) {
            break port;
        }
        assert!(Instant::now() < deadline, "prometheus never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let prometheus_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // Every metric the dashboard or the rules name is served by the running operator.
    let mut queries: Vec<String> = dashboard_queries(&dashboard);
    let alerts = alert_expressions(&rule);
    queries.extend(alerts.iter().map(|(_, expr)| without_threshold(expr)));
    let mut names: Vec<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    names.extend(alerts.iter().flat_map(|(_, e)| metric_names(e)));
    names.sort();
    names.dedup();
    let mut missing = names.clone();
    while !missing.is_empty() {
        let text = client
            .get(format!("{metrics_url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        missing.retain(|name| {
            !text
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        });
        assert!(
            Instant::now() < deadline,
            "the operator does not serve {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each query returns data for the examples (rates once two scrapes are in).
    let mut empty = queries.clone();
    while !empty.is_empty() {
        let mut still = Vec::new();
        for expr in empty {
            if query(&client, &prometheus_url, &expr).await.is_empty() {
                still.push(expr);
            }
        }
        empty = still;
        assert!(
            Instant::now() < deadline,
            "no data for {empty:?} (prometheus {prometheus_url}, target {target})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Prometheus loaded the rules and evaluates them.
    let loaded: Value = client
        .get(format!("{prometheus_url}/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let evaluated = loaded["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(evaluated.len(), alerts.len(), "{loaded}");
    assert!(evaluated.iter().all(|r| r["health"] != "err"), "{loaded}");
    // The mistyped group is Stalled: its series says why.
    let stalled = query(
        &client,
        &prometheus_url,
        r#"simfleet_condition{type="Stalled", status="True"}"#,
    )
    .await;
    assert!(
        stalled
            .iter()
            .any(|s| s["metric"]["name"] == "typo" && s["metric"]["reason"] == "NoSimsSelected"),
        "{stalled:?}"
    );
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_threshold_is_cut_off_at_the_top_level_only() {
    assert_eq!(
        without_threshold(r#"max by (a) (x{type="Stalled"}) == 1"#),
        r#"max by (a) (x{type="Stalled"})"#
    );
    assert_eq!(
        without_threshold("(max(simfleet_leader) or vector(0)) < 1"),
        "(max(simfleet_leader) or vector(0))"
    );
    assert_eq!(
        without_threshold("time() - max(x) > 3600"),
        "time() - max(x)"
    );
}

/// The promtool input series of a scrape held as it is for `minutes` (a fleet at rest): every
/// series keeps its value, except the last-success timestamp, which moves with the clock as
/// the resyncs of a resting fleet keep succeeding.
fn at_rest(scrape: &str, minutes: u32) -> Vec<Value> {
    scrape
        .lines()
        .filter(|l| l.starts_with("simfleet_"))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let values = if series.starts_with("simfleet_reconcile_last_success_timestamp_seconds")
            {
                format!("0+60x{minutes}")
            } else {
                format!("{value}x{minutes}")
            };
            Some(json!({"series": series, "values": values}))
        })
        .collect()
}

/// Issue 37's fleet: 10,000 SIMs of which 2% the carrier paused, in 5 Active groups. Each
/// group is Ready with the carrier's exceptions named, Argo CD calls it Healthy, and the chart's
/// alerts, evaluated by promtool on the operator's own metrics held at rest, fire nothing.
#[tokio::test]
async fn a_fleet_with_sims_the_carrier_paused_is_healthy_and_quiet_at_rest_and_names_them() {
    use common::operator::Operator;
    use simfleet::api::SimGroup;
    use simfleet_testkit::world::{create_group, world_with};
    let config = simfleet::simulator::SimulatorConfig {
        seed: simfleet::simulator::SeedConfig {
            sims: 10_000,
            paused_by_system_share: 0.02,
            ..Default::default()
        },
        ..simfleet::simulator::SimulatorConfig::for_tests(
            10_000,
            jiff::SignedDuration::from_secs(10),
        )
    };
    let world = world_with("at-rest", config).await;
    let (_operator, metrics_url) = Operator::start_with(
        &world.kubeconfig,
        &["--metrics-addr", "127.0.0.1:0"],
        "operator",
    );
    let metrics_url = metrics_url.unwrap();
    let tags = [
        "cold-chain",
        "smart-meter",
        "fleet-tracker",
        "vending",
        "pos-terminal",
    ];
    let mut groups = Vec::new();
    for tag in tags {
        let api = create_group(
            &world,
            tag,
            json!({"carrierRef": {"name": "simulator"}, "state": "Active", "selector": {"tags": [tag]}}),
        )
        .await;
        groups.push((tag, api));
    }
    // The carrier confirms what the groups resume once its clock moves.
    let deadline = Instant::now() + simfleet_testkit::world::wait_limit();
    let mut ready: Vec<SimGroup> = Vec::new();
    while ready.len() < groups.len() {
        ready.clear();
        for (tag, api) in &groups {
            let group = api.get(tag).await.unwrap();
            if simfleet_testkit::world::ready(&group) {
                ready.push(group);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} of 5 groups Ready",
            ready.len()
        );
        world.simulator.advance(jiff::SignedDuration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut objects = Vec::new();
    for (tag, group) in tags.iter().zip(ready) {
        let paused: Vec<String> = simfleet_testkit::simulator::admin_get(
            &world.simulator,
            &format!("/sims?tag={tag}&state=PAUSED-SYS&limit=10000"),
        )
        .await["sims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["iccid"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            paused.len() > 10,
            "{tag}: the fleet has SIMs the carrier paused"
        );
        let status = group.status.clone().unwrap();
        assert_eq!(
            status.counts.as_ref().unwrap().paused_by_system,
            paused.len() as u64
        );
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert!(
            ready.message.contains(&format!(
                "{} paused by the carrier's system and left so",
                paused.len()
            )),
            "{tag}: {}",
            ready.message
        );
        // A person reads which: a sample of them, each a SIM the carrier paused.
        let named: Vec<&str> = status
            .problem_sims
            .iter()
            .filter(|p| p.reason == simfleet::api::ProblemReason::PausedBySystem)
            .map(|p| p.iccid.as_str())
            .collect();
        assert_eq!(named.len(), paused.len().min(20), "{tag}");
        assert!(
            named.iter().all(|iccid| paused.iter().any(|p| p == iccid)),
            "{tag}: {named:?}"
        );
        objects.push(serde_json::to_value(&group).unwrap());
    }
    for (status, message) in common::argocd_health(&objects) {
        assert_eq!(status, "Healthy", "{message}");
    }

    // The alerts on the operator's metrics at rest: none fires, or is even pending.
    let (_, rule) = rendered_observability();
    let dir = temp_dir("at-rest");
    let rules = write_rules(&rule, &dir);
    let scrape = reqwest::get(format!("{metrics_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = at_rest(&scrape, 300);
    assert!(
        series
            .iter()
            .any(|s| s["series"].as_str().unwrap().contains("paused_by_system")),
        "{scrape}"
    );
    let checks: Vec<Value> = alert_expressions(&rule)
        .iter()
        .flat_map(|(alert, _)| {
            ["30m", "4h"].map(|at| json!({"eval_time": at, "alertname": alert, "exp_alerts": []}))
        })
        .collect();
    let tests = json!({
        "rule_files": [rules],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}]
    });
    let tests_path = dir.join("at-rest.test.yaml");
    std::fs::write(&tests_path, serde_json::to_string_pretty(&tests).unwrap()).unwrap();
    promtool(&["test", "rules"], &tests_path);
    let _ = std::fs::remove_dir_all(&dir);
}
