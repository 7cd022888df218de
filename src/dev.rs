//! `simfleet dev`: the sandbox API server, the carrier simulator and the examples on one
//! machine, with a kubeconfig for kubectl. For trying simfleet out, not for production.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::api::manifest::{self, Document};
use crate::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use crate::simulator::{ClockMode, DelayModel, SeedConfig, Simulator, SimulatorConfig};

/// `simfleet dev` flags.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = ".simfleet/kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Address of the sandbox API server (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_listen: SocketAddr,
    /// SIMs in the simulated fleet.
    #[arg(long, default_value_t = 1000)]
    pub sims: usize,
    /// Directory of manifests to apply (the resources of simulator accounts are applied).
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// Do not run the operator (only the API server and the simulator).
    #[arg(long)]
    pub no_operator: bool,
    /// Serve the operator's /metrics, /healthz and /readyz on this address (port 0 picks a
    /// free one; the address is printed), e.g. for a local Prometheus and the dashboard.
    #[arg(long, conflicts_with = "no_operator")]
    pub metrics_addr: Option<SocketAddr>,
}

/// The documents of `examples/` that use the simulator, with each simulator account's
/// `baseUrl` set to the running simulator.
pub fn simulator_documents(documents: Vec<Document>, simulator_url: &str) -> Vec<Document> {
    let is = |d: &Document, kind: &str| d.value["kind"] == kind;
    let accounts: HashSet<String> = documents
        .iter()
        .filter(|d| is(d, "CarrierAccount") && d.value["spec"]["provider"] == "simulator")
        .filter_map(|d| d.value["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let secrets: HashSet<String> = documents
        .iter()
        .filter(|d| is(d, "CarrierAccount") && d.value["spec"]["provider"] == "simulator")
        .filter_map(|d| {
            d.value["spec"]["secretRef"]["name"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    documents
        .into_iter()
        .filter_map(|mut d| {
            let name = d.value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let keep = match d.value["kind"].as_str().unwrap_or_default() {
                "Secret" => secrets.contains(&name),
                "CarrierAccount" => accounts.contains(&name),
                "SimGroup" | "DataQuota" => d.value["spec"]["carrierRef"]["name"]
                    .as_str()
                    .is_some_and(|a| accounts.contains(a)),
                _ => false,
            };
            if keep && is(&d, "CarrierAccount") {
                d.value["spec"]["baseUrl"] = Value::String(simulator_url.to_owned());
            }
            keep.then_some(d)
        })
        .collect()
}

/// Creates each document in the sandbox (in the `default` namespace unless it names one).
pub async fn apply(client: &kube::Client, documents: &[Document]) -> Result<(), String> {
    for document in documents {
        let value = &document.value;
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        let kind = value["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let namespace = value["metadata"]["namespace"].as_str().unwrap_or("default");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let object: DynamicObject = serde_json::from_value(value.clone())
            .map_err(|e| format!("{}: {e}", document.location()))?;
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(format!("applying {}: {e}", document.location())),
        }
    }
    Ok(())
}

/// Everything `dev` runs, for tests to drive in-process.
pub struct DevEnvironment {
    /// The sandbox API server.
    pub sandbox: SandboxHandle,
    /// The carrier simulator.
    pub simulator: crate::simulator::SimulatorHandle,
    /// Names of the applied objects, as `Kind/name`.
    pub applied: Vec<String>,
}

/// The simulator `dev` runs: `sims` SIMs seeded as by default, on the real clock.
pub fn simulator_config(sims: usize) -> SimulatorConfig {
    SimulatorConfig {
        seed: SeedConfig {
            sims,
            ..SeedConfig::default()
        },
        clock: ClockMode::Realtime,
        // Every change lands within seconds: the simulator's rare slow SIMs (hours, as
        // carriers warn) would leave someone trying simfleet out waiting on one SIM, or a
        // restore on deletion. `simfleet simulator --slow-share` models them.
        delays: DelayModel {
            slow_share: 0.0,
            ..DelayModel::default()
        },
        ..SimulatorConfig::default()
    }
}

/// Starts the sandbox and the simulator and applies the examples.
pub async fn start(args: &DevArgs) -> Result<DevEnvironment, String> {
    let sandbox = Sandbox::start(SandboxConfig {
        listen: args.api_listen,
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| format!("--api-listen {}: {e}", args.api_listen))?;
    let simulator = Simulator::start(simulator_config(args.sims))
        .await
        .map_err(|e| e.to_string())?;
    let documents = manifest::read_path(&args.examples).map_err(|e| format!("--examples: {e}"))?;
    let documents = simulator_documents(documents, &simulator.base_url());
    apply(&sandbox.client(), &documents).await?;
    let applied = documents
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d.value["kind"].as_str().unwrap_or(""),
                d.value["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    Ok(DevEnvironment {
        sandbox,
        simulator,
        applied,
    })
}

fn write_kubeconfig(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--kubeconfig-out {}: {e}", path.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("--kubeconfig-out {}: {e}", path.display()))
}

/// Runs `simfleet dev` until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> Result<(), String> {
    let environment = start(&args).await?;
    write_kubeconfig(&args.kubeconfig_out, &environment.sandbox.kubeconfig())?;
    // Listening before the addresses are printed: whoever reads them may stop us at once.
    let stop = simfleet_core::shutdown::requested();
    let kubeconfig = args.kubeconfig_out.display();
    println!(
        "simfleet dev: a sandbox API server and a carrier simulator, for trying simfleet out."
    );
    println!("The sandbox is not a production control plane; nothing here reaches a real carrier.");
    println!();
    println!("  API server   {}", environment.sandbox.url());
    println!(
        "  simulator    {}   (admin API: {}/)",
        environment.simulator.base_url(),
        environment.simulator.admin_url()
    );
    println!("  kubeconfig   {kubeconfig}");
    println!(
        "  carrier URLs {} only (simfleet run --allowed-carrier-url)",
        environment.simulator.base_url()
    );
    println!("  applied      {}", environment.applied.join(", "));
    let operator = if args.no_operator {
        println!("  operator     not started (--no-operator)");
        None
    } else {
        println!("  operator     running in this process");
        let client = environment.sandbox.client();
        // Credentials go to this simulator only, whatever an account's provider says.
        let args = crate::controller::RunArgs {
            allowed_carrier_urls: vec![environment.simulator.base_url()],
            metrics_addr: args.metrics_addr,
            ..Default::default()
        };
        Some(tokio::spawn(crate::controller::run_with_client(
            client, args,
        )))
    };
    println!();
    println!("Try:");
    println!("  export KUBECONFIG={kubeconfig}");
    println!("  kubectl get simfleet");
    println!("  kubectl wait --for=condition=Ready sg/returned-trackers --timeout=60s");
    println!(
        "  kubectl describe sg smart-meters   # held by its approval guard (README: Walkthrough)"
    );
    println!();
    println!("Ctrl-C stops everything.");
    stop.await;
    if let Some(operator) = operator {
        // The controllers stop on the same Ctrl-C, after their in-flight reconciles.
        let _ = operator.await;
    }
    environment.sandbox.stop().await;
    environment.simulator.stop().await;
    eprintln!("simfleet dev stopped");
    Ok(())
}
