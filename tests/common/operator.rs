//! The operator as a child process against an in-process sandbox and simulator, and the
//! helpers end-to-end tests share.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The operator as a child process, killed when dropped.
pub struct Operator(pub Child);

impl Operator {
    pub fn start(kubeconfig: &std::path::Path) -> Self {
        Self::start_with(kubeconfig, &[], "operator").0
    }

    /// With extra `run` flags and a pod name (its leader-election identity); with
    /// `--metrics-addr`, also the metrics URL the operator prints when it listens.
    pub fn start_with(
        kubeconfig: &std::path::Path,
        flags: &[&str],
        pod_name: &str,
    ) -> (Self, Option<String>) {
        let metrics = flags.iter().any(|f| f.starts_with("--metrics-addr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .arg("run")
            .args(flags)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", pod_name)
            .env(
                "RUST_LOG",
                std::env::var("SIMFLEET_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(if metrics {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if std::env::var("SIMFLEET_OPERATOR_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let url = child.stdout.take().map(|stdout| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(url) = line.strip_prefix("simfleet: metrics on ") {
                        let _ = tx.send(url.trim().to_owned());
                    }
                }
            });
            rx.recv_timeout(Duration::from_secs(60))
                .expect("the operator prints its metrics address")
        });
        (Self(child), url)
    }
}

impl Operator {
    /// With extra `run` flags, its log (info, the operator's debug lines) appended to `log`, for
    /// a test that shows the log's end when it fails.
    pub fn start_logging_to(
        kubeconfig: &std::path::Path,
        flags: &[&str],
        log: &std::path::Path,
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_simfleet"))
            .arg("run")
            .args(flags)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", "operator")
            .env(
                "RUST_LOG",
                std::env::var("SIMFLEET_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,simfleet_operator=debug".into()),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Sends SIGTERM and waits for the process to end. The wait runs off this thread: the
    /// operator talks to the test's in-process sandbox while it stops.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        super::send_signal(&self.0, "TERM");
        tokio::task::spawn_blocking(move || self.0.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
