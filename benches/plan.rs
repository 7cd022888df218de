//! `simfleet plan` on a 1,000,000-SIM tag selection: the release binary as a child process
//! against an in-process simulator; its peak RSS (VmHWM) and wall time, with and without the CSV.
//! Run: `cargo bench --bench plan`.

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use simfleet::simulator::fleet::SEED_TAGS;
use simfleet::simulator::{SeedConfig, Simulator, SimulatorConfig};

/// The child's VmHWM (peak resident set) in KiB, while it is alive.
fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    let sims = 1_000_000;
    let sim = Simulator::start(SimulatorConfig {
        seed: SeedConfig {
            sims,
            paused_share: 0.0,
            paused_by_system_share: 0.0,
            deactivated_share: 0.0,
            ..SeedConfig::default()
        },
        ..SimulatorConfig::for_tests(sims, SignedDuration::ZERO)
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("simfleet-plan-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tags = SEED_TAGS.join(", ");
    std::fs::write(
        dir.join("fleet.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sim\nstringData:\n  apiKey: {}\n---\napiVersion: simfleet.io/v1alpha1\nkind: CarrierAccount\nmetadata:\n  name: simulator\nspec:\n  provider: simulator\n  baseUrl: {}\n  secretRef:\n    name: sim\n  rateLimit:\n    requestsPerSecond: 10000\n    burst: 1000\n---\napiVersion: simfleet.io/v1alpha1\nkind: SimGroup\nmetadata:\n  name: everything\nspec:\n  carrierRef:\n    name: simulator\n  state: Paused\n  selector:\n    tags: [{tags}]\n",
            simfleet::simulator::DEFAULT_HOLOGRAM_API_KEY,
            sim.base_url()
        ),
    )
    .unwrap();
    let csv = dir.join("affected.csv");
    for with_csv in [false, true] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_simfleet"));
        command
            .args(["plan", "-f"])
            .arg(&dir)
            .args(["-o", "json"])
            .stdout(std::process::Stdio::piped())
            .env("RUST_LOG", "warn");
        if with_csv {
            command.arg("--csv").arg(&csv);
        }
        let started = Instant::now();
        let mut child = command.spawn().unwrap();
        let pid = child.id();
        let mut peak = 0;
        while child.try_wait().unwrap().is_none() {
            peak = peak.max(peak_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let group = &report["simGroups"][0];
        assert_eq!(group["selected"], sims);
        println!(
            "simfleet plan, 1,000,000-SIM tag selection{}: {} to change in {} actions; {:.1} s wall; peak RSS (VmHWM, last sample before exit) {:.1} MiB",
            if with_csv { " with --csv" } else { "" },
            group["toChange"],
            group["actions"],
            elapsed.as_secs_f64(),
            peak as f64 / 1024.0
        );
        if with_csv {
            let size = std::fs::metadata(&csv).unwrap().len();
            println!("  CSV: {:.1} MiB written", size as f64 / 1024.0 / 1024.0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    sim.stop().await;
}
