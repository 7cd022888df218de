//! End-to-end worlds as a user meets them: an API server (the sandbox, or the real
//! kube-apiserver built by `scripts/control-plane`), the carrier simulator, `simfleet run` as a
//! child process, and the real kubectl. The same scenarios run against either server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kube::api::Api;
use serde_json::Value;
use simfleet::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use simfleet::simulator::{Simulator, SimulatorConfig, SimulatorHandle};

use super::kubectl_binary;
use super::operator::Operator;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The real control plane (`scripts/control-plane up`), stopped when dropped.
pub struct ControlPlane {
    pub dir: tempfile_dir::Dir,
    pub kubeconfig: PathBuf,
    pub version: String,
    /// What `kubectl apply --server-side -f crds/` printed on standard error (warnings).
    pub crd_warnings: String,
}

/// A temporary directory removed when dropped (std only).
pub mod tempfile_dir {
    /// The directory.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "simfleet-{name}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager (building them first if the
    /// cache lacks them), and installs simfleet's CRDs with `kubectl apply --server-side`.
    pub fn start(name: &str) -> Self {
        let dir = tempfile_dir::Dir::new(name);
        let out = Command::new(repo("scripts/control-plane"))
            .arg("up")
            .arg(&dir.0)
            .output()
            .expect("scripts/control-plane runs");
        assert!(
            out.status.success(),
            "scripts/control-plane up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kubeconfig = dir.0.join("kubeconfig");
        let mut plane = Self {
            version: String::new(),
            kubeconfig,
            dir,
            crd_warnings: String::new(),
        };
        let version = plane.kubectl_ok(&["version", "-o", "json"]);
        let version: Value = serde_json::from_str(&version).unwrap();
        plane.version = version["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        eprintln!("real kube-apiserver {}", plane.version);
        plane.kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            repo("crds").to_str().unwrap(),
        ]);
        for crd in [
            "simgroups.simfleet.io",
            "dataquotas.simfleet.io",
            "carrieraccounts.simfleet.io",
        ] {
            plane.kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{crd}"),
            ]);
        }
        plane
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl_binary())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(repo("scripts/control-plane"))
            .arg("down")
            .arg(&self.dir.0)
            .output();
    }
}

/// The API server of a world.
pub enum Server<'a> {
    Sandbox(SandboxHandle),
    Real(&'a ControlPlane),
}

/// One end-to-end world: a namespace on an API server, a simulator, and the kubeconfig.
pub struct E2e<'a> {
    pub server: Server<'a>,
    pub simulator: SimulatorHandle,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    /// The kubeconfig `simfleet run` uses, when not the admin's (e.g. a ServiceAccount's).
    pub operator_kubeconfig: Option<PathBuf>,
    _kubeconfig_dir: Option<tempfile_dir::Dir>,
}

impl<'a> E2e<'a> {
    /// A world on a fresh sandbox (namespace `default`).
    pub async fn sandbox(name: &str, config: SimulatorConfig) -> E2e<'static> {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let dir = tempfile_dir::Dir::new(name);
        let kubeconfig = dir.0.join("kubeconfig");
        std::fs::write(&kubeconfig, sandbox.kubeconfig()).unwrap();
        E2e {
            client: sandbox.client(),
            server: Server::Sandbox(sandbox),
            simulator: Simulator::start(config).await.unwrap(),
            kubeconfig,
            namespace: "default".into(),
            operator_kubeconfig: None,
            _kubeconfig_dir: Some(dir),
        }
    }

    /// A world in a new namespace `name` of the real control plane.
    pub async fn real(plane: &'a ControlPlane, name: &str, config: SimulatorConfig) -> E2e<'a> {
        plane.kubectl_ok(&["create", "namespace", name]);
        Self::real_existing(plane, name, config).await
    }

    /// A world in the existing namespace `name` of the real control plane.
    pub async fn real_existing(
        plane: &'a ControlPlane,
        name: &str,
        config: SimulatorConfig,
    ) -> E2e<'a> {
        E2e {
            client: plane.client().await,
            server: Server::Real(plane),
            simulator: Simulator::start(config).await.unwrap(),
            kubeconfig: plane.kubeconfig.clone(),
            namespace: name.into(),
            operator_kubeconfig: None,
            _kubeconfig_dir: None,
        }
    }

    /// Which server this is, for messages.
    pub fn server_name(&self) -> &'static str {
        match self.server {
            Server::Sandbox(_) => "sandbox",
            Server::Real(_) => "kube-apiserver",
        }
    }

    /// `simfleet run` for this world's namespace, allowed to reach the simulator.
    pub fn operator(&self) -> Operator {
        self.operator_with(&[])
    }

    /// `simfleet run` with extra flags.
    pub fn operator_with(&self, flags: &[&str]) -> Operator {
        let allowed = format!("--allowed-carrier-url={}", self.simulator.base_url());
        let namespace = format!("--namespace={}", self.namespace);
        let mut all = vec![allowed.as_str(), namespace.as_str()];
        all.extend_from_slice(flags);
        let kubeconfig = self
            .operator_kubeconfig
            .as_ref()
            .unwrap_or(&self.kubeconfig);
        Operator::start_with(kubeconfig, &all, "operator").0
    }

    /// Runs kubectl in this world's namespace (off the async runtime), with `stdin` piped in.
    pub async fn kubectl_with(&self, args: &[&str], stdin: Option<String>) -> Output {
        let mut command = Command::new(kubectl_binary());
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().unwrap();
            if let Some(input) = stdin {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    /// kubectl that must succeed; its standard output.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_with(args, None).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} on the {}: {}",
            self.server_name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of YAML documents.
    pub async fn apply(&self, yaml: &str) -> String {
        let out = self
            .kubectl_with(&["apply", "-f", "-"], Some(yaml.to_owned()))
            .await;
        assert!(
            out.status.success(),
            "kubectl apply on the {}: {}\n{yaml}",
            self.server_name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The Secrets and CarrierAccounts `hologram`, `emnify` and `simulator` on this world's
    /// simulator, applied with kubectl.
    pub fn accounts_yaml(&self) -> String {
        let url = self.simulator.base_url();
        let hologram = self.simulator.hologram_url();
        let emnify = self.simulator.emnify_url();
        let (key, token) = (
            simfleet_testkit::simulator::API_KEY,
            simfleet_testkit::simulator::APP_TOKEN,
        );
        format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: hologram-key}}
stringData: {{apiKey: {key}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: emnify-token}}
stringData: {{applicationToken: {token}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: simulator-key}}
stringData: {{apiKey: {key}}}
---
apiVersion: simfleet.io/v1alpha1
kind: CarrierAccount
metadata: {{name: hologram}}
spec: {{provider: hologram, baseUrl: "{hologram}", secretRef: {{name: hologram-key}}, rateLimit: {{requestsPerSecond: 1000, burst: 1000}}}}
---
apiVersion: simfleet.io/v1alpha1
kind: CarrierAccount
metadata: {{name: emnify}}
spec: {{provider: emnify, baseUrl: "{emnify}", secretRef: {{name: emnify-token}}, rateLimit: {{requestsPerSecond: 1000, burst: 1000}}}}
---
apiVersion: simfleet.io/v1alpha1
kind: CarrierAccount
metadata: {{name: simulator}}
spec: {{provider: simulator, baseUrl: "{url}", secretRef: {{name: simulator-key}}, rateLimit: {{requestsPerSecond: 1000, burst: 1000}}}}
"#
        )
    }

    /// The API of a kind in this world's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Polls `name` until `check` holds (moving the simulator's clock on by `tick` each round,
    /// when given), or fails with the last object seen.
    pub async fn until<K>(
        &self,
        name: &str,
        what: &str,
        tick: Option<jiff::SignedDuration>,
        check: impl Fn(&K) -> bool,
    ) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let object = self.api::<K>().get(name).await.unwrap();
            if check(&object) {
                return object;
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {name}: {what}; last seen: {object:?}",
                self.server_name()
            );
            if let Some(tick) = tick {
                self.simulator.advance(tick);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The events about `name` (kind `kind`), as `kubectl events --for` lists them: one JSON
    /// object each.
    pub async fn events_for(&self, kind: &str, name: &str) -> Vec<Value> {
        let out = self
            .kubectl(&["events", "--for", &format!("{kind}/{name}"), "-o", "json"])
            .await;
        let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until an event of `reason` about `name` is listed; its note.
    pub async fn until_event(&self, kind: &str, name: &str, reason: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.events_for(kind, name).await;
            if let Some(event) = events.iter().find(|e| e["reason"] == reason) {
                return event["note"]
                    .as_str()
                    .or(event["message"].as_str())
                    .unwrap_or_default()
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {reason} event for {kind}/{name}; events: {events:?}",
                self.server_name()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A SIM's state at the simulator (`LIVE`, `PAUSED-USER`, ...).
    pub async fn sim_state(&self, device: u64) -> String {
        let sims = simfleet_testkit::simulator::admin_get(
            &self.simulator,
            &format!("/sims?deviceId={device}"),
        )
        .await;
        sims["sims"][0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
