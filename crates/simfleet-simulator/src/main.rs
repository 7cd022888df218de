//! `simfleet-simulator`: the carrier simulator alone, with the flags of `simfleet simulator`.

use std::process::ExitCode;

use clap::Parser;
use simfleet_simulator::SimulatorArgs;

/// A carrier simulator: one HTTP server speaking Hologram's, emnify's and Soracom's REST APIs
/// over an in-memory fleet, with an admin API for tests.
#[derive(Debug, Parser)]
#[command(name = "simfleet-simulator", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    args: SimulatorArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(simfleet_simulator::run(cli.args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
