//! The `simfleet` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

/// simfleet keeps fleets of cellular IoT SIMs in the state declared in Git.
#[derive(Debug, Parser)]
#[command(name = "simfleet", version, about, long_about = None)]
pub struct Cli {
    /// Format of log lines on stderr. `RUST_LOG` sets which lines are logged.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster in the kubeconfig (or the in-cluster config).
    Run(crate::controller::RunArgs),
    #[cfg(feature = "dev")]
    /// Run everything on this machine: a sandbox API server, the carrier simulator and the
    /// operator; applies examples/ and writes a kubeconfig for kubectl. For trying out only.
    Dev(crate::dev::DevArgs),
    #[cfg(feature = "dev")]
    /// Run the carrier simulator alone: an HTTP server speaking Hologram's, emnify's and
    /// Soracom's APIs.
    Simulator(Box<crate::simulator::SimulatorArgs>),
    /// Print the CustomResourceDefinitions (what crds/ holds) as multi-document YAML.
    Crd {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long, value_name = "DIR", conflicts_with = "reference_dir")]
        out_dir: Option<PathBuf>,
        /// Write the API reference (one Markdown page per kind, what docs/reference holds)
        /// into this directory instead.
        #[arg(long, value_name = "DIR")]
        reference_dir: Option<PathBuf>,
    },
    /// Preview what a directory of manifests would change at the carrier, without changing it.
    /// Exit codes: 0 planned, 1 refused by --fail-on-change or --max-changes, 2 invalid
    /// manifests or a resource that cannot be planned.
    Plan(crate::preview::PlanArgs),
    /// Print the version.
    Version,
}
