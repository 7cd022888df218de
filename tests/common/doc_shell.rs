//! Runs the shell blocks of the docs as a reader would paste them: the commands of the blocks
//! a marker comment names, each run by bash with the real kubectl (and the simfleet this build
//! made) on the PATH, until what the text claims holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::kubectl_binary;

/// The repository's path of a file.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The commands of the ```sh blocks of `doc` that follow a comment containing `marker`: one per
/// line, a here-document joined to its command, `export` lines left out (the runner sets the
/// environment), each as written (comments included).
pub fn commands(doc: &str, marker: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo(doc)).unwrap();
    let mut commands = Vec::new();
    let mut lines = text.lines();
    let mut armed = false;
    while let Some(line) = lines.next() {
        if line.starts_with("<!--") {
            armed = line.contains(marker);
            continue;
        }
        if !(armed && line.trim() == "```sh") {
            continue;
        }
        armed = false;
        while let Some(line) = lines.next() {
            if line.trim() == "```" {
                break;
            }
            if line.trim().is_empty() || line.starts_with("export ") || line.starts_with('#') {
                continue;
            }
            let mut command = line.to_owned();
            if let Some(tag) = line.split("<<'").nth(1).and_then(|r| r.split('\'').next()) {
                for body in lines.by_ref() {
                    command.push('\n');
                    command.push_str(body);
                    if body == tag {
                        break;
                    }
                }
            }
            commands.push(command);
        }
    }
    assert!(
        !commands.is_empty(),
        "{doc} has sh blocks marked {marker:?}"
    );
    commands
}

/// A command without its trailing comment (what a check is keyed on).
pub fn without_comment(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    let bare = first
        .split("   #")
        .next()
        .unwrap()
        .split("  #")
        .next()
        .unwrap()
        .trim();
    match command.split_once('\n') {
        Some((_, rest)) => format!("{bare}\n{rest}"),
        None => bare.to_owned(),
    }
}

/// Asserts that a page's commands (their first lines, without comments) are the ones a test
/// holds claims for, in the same order, so that neither can change without the other.
pub fn assert_same_commands(page: &str, commands: &[String], checked: &[&str]) {
    let keys: Vec<String> = commands
        .iter()
        .map(|c| {
            without_comment(c)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, checked, "{page} and its test list the same commands");
}

/// A shell as the docs' reader has it: `KUBECONFIG` set, kubectl and simfleet on the PATH, and
/// `cargo run --release --` standing for the simfleet this build made.
pub struct DocShell {
    pub kubeconfig: PathBuf,
    pub cwd: PathBuf,
    path: String,
}

impl DocShell {
    pub fn new(kubeconfig: &Path, cwd: &Path) -> Self {
        let kubectl_dir = Path::new(&kubectl_binary()).parent().unwrap().to_owned();
        Self {
            kubeconfig: kubeconfig.to_owned(),
            cwd: cwd.to_owned(),
            path: format!(
                "{}:{}",
                kubectl_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        }
    }

    /// The same shell with `dir` first on its PATH (e.g. where helm is).
    pub fn with_path(mut self, dir: &Path) -> Self {
        self.path = format!("{}:{}", dir.display(), self.path);
        self
    }

    /// bash running `line` in this shell's directory and environment, with `cargo run
    /// --release --` standing for the simfleet this build made.
    fn bash(&self, line: &str) -> Command {
        let line = line.replace(
            "cargo run --release --",
            &shell_quote(env!("CARGO_BIN_EXE_simfleet")),
        );
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(line)
            .current_dir(&self.cwd)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", &self.path);
        command
    }

    /// Runs a line as a shell runs it (comments, quotes and here-documents included).
    pub fn run(&self, line: &str) -> (bool, String) {
        let out = self.bash(line).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Starts a line that runs until it is stopped (the operator), as the shell would, in a
    /// process group of its own: dropping the handle stops the whole line.
    pub fn spawn(&self, line: &str) -> Running {
        use std::os::unix::process::CommandExt;
        let child = self
            .bash(line)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Running(child)
    }

    /// Runs a line until it succeeds and its claim holds ("seconds later" claims), or fails
    /// with the last output.
    pub fn until(&self, line: &str, claim: &dyn Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (ok, text) = self.run(line);
            if ok && claim(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{line}\nprinted:\n{text}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A line started by [`DocShell::spawn`]; its process group is stopped (SIGTERM, then killed)
/// when dropped.
pub struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
