//! The simulator's own binary, as the README tells another project to run it: start it on a
//! free port, read the URLs it prints, call its admin API, and stop it with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// `GET path` on `host:port`; the status line and body.
fn get(authority: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(authority).expect("the simulator accepts connections");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_binary_runs_alone_answers_its_admin_api_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simfleet-simulator"))
        .args(["--listen", "127.0.0.1:0", "--sims", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the simulator starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The admin URL line: "  admin API     http://127.0.0.1:PORT/_sim/   (...)".
    let admin = lines
        .by_ref()
        .map(|line| line.unwrap())
        .find_map(|line| {
            let line = line
                .trim_start()
                .strip_prefix("admin API")?
                .trim_start()
                .to_owned();
            Some(line.split_whitespace().next()?.to_owned())
        })
        .expect("the simulator prints its admin URL");
    let authority = admin
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/_sim/"))
        .expect("http://HOST:PORT/_sim/");

    let sims = get(authority, "/_sim/sims");
    assert!(sims.starts_with("HTTP/1.1 200"), "{sims}");
    assert!(
        sims.contains("8944500000000000001"),
        "the seeded fleet: {sims}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop on SIGTERM: {status}");
}
