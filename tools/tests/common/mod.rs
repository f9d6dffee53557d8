//! Shared by the tools' integration tests: start the real server binary on loopback.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};

/// Starts `bursar start` on an ephemeral loopback port with `extra` arguments and returns it with
/// its address; its output keeps being drained so the pipe never fills.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn start_server(bin: &str, dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let (child, addr, _) = start_server_saying(bin, dir, extra);
    (child, addr)
}

/// As [`start_server`], with the lines the server printed before it listened (its recovery report).
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn start_server_saying(bin: &str, dir: &Path, extra: &[&str]) -> (Child, SocketAddr, Vec<String>) {
    let mut child = Process::new(bin)
        .args(["start", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        // Test servers hold little: no room reserved from the machine's memory.
        .args(["--reserve-accounts", "0", "--reserve-transfers", "0"])
        .args(extra)
        .arg("--data")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut said = Vec::new();
    let addr = loop {
        let line = lines.next().expect("the server prints its address").expect("read");
        if let Some(rest) = line.strip_prefix("bursar: listening on ") {
            break rest.split_whitespace().next().expect("address").parse().expect("socket address");
        }
        said.push(line);
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr, said)
}

/// A server that is killed when dropped, also when the test panics: an orphaned server would hold
/// the test run's output open.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the server's HTTP endpoints listen, from the lines it printed before listening.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn http_addr(said: &[String]) -> SocketAddr {
    said.iter()
        .find_map(|l| l.strip_prefix("bursar: http on ")?.split(':').take(2).collect::<Vec<_>>().join(":").parse().ok())
        .unwrap_or_else(|| panic!("the server says where HTTP listens: {said:?}"))
}

/// Runs `bursar client ARGS` against the server at `addr` whose data directory is `dir`, and
/// expects it to succeed.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn client(bin: &str, addr: SocketAddr, dir: &Path, args: &[&str]) {
    let out = Process::new(bin)
        .args(["client", "--addr", &addr.to_string(), "--cert"])
        .arg(dir.join("server.crt"))
        .args(args)
        .output()
        .expect("run bursar client");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
