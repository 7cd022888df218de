use std::process::ExitCode;

use clap::Parser;
use simfleet::api;
use simfleet::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    simfleet::telemetry::init(cli.log_format);
    match cli.command {
        Command::Crd {
            reference_dir: Some(dir),
            ..
        } => match write_reference(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        Command::Crd { out_dir: None, .. } => match api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&format!("rendering the CRDs failed: {err}")),
        },
        Command::Crd {
            out_dir: Some(dir), ..
        } => match write_crds(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        Command::Version => {
            println!("simfleet {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => match run_async(simfleet::controller::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        #[cfg(feature = "dev")]
        Command::Dev(args) => match run_async(simfleet::dev::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        #[cfg(feature = "dev")]
        Command::Simulator(args) => match run_async(simfleet::simulator::run(*args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err),
        },
        Command::Plan(args) => {
            let code = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(simfleet::preview::run(args)))
                .unwrap_or_else(|e| {
                    eprintln!("error: starting the async runtime: {e}");
                    simfleet::preview::EXIT_INVALID
                });
            ExitCode::from(code as u8)
        }
    }
}

/// Runs an async command on a multi-threaded runtime.
fn run_async<F: std::future::Future<Output = Result<(), String>>>(future: F) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?
        .block_on(future)
}

/// Writes each CRD to `DIR/<crd name>.yaml`.
fn write_crds(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for crd in api::crds() {
        let path = dir.join(api::crd_file_name(&crd));
        let yaml = api::crd_yaml(&crd).map_err(|e| format!("rendering the CRDs failed: {e}"))?;
        std::fs::write(&path, format!("---\n{yaml}"))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn write_reference(dir: &std::path::Path) -> Result<(), String> {
    use api::reference;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (name, text) in reference::reference_pages(&api::crds()) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
