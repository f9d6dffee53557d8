//! The Python client (`net/python`, written from `docs/protocol.md`) against a real server: its
//! unit tests (records at the documented offsets, result codes and kinds equal to the documents'),
//! then a session (a ledger, accounts, transfers in exact decimals, a retry answering `exists`, a
//! declined id staying declined, a hold captured in part, lookups, concurrent requests on one
//! connection, and a pause past the server's idle timeout). The test makes its own virtual
//! environment under the target directory and installs `net/python/requirements.txt` into it
//! (from PyPI, once).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository").to_path_buf()
}

/// The virtual environment's python, made and filled if it is not there yet.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bursar-python-client");
    let python = venv.join("bin").join("python");
    let requirements = repo().join("net/python/requirements.txt");
    let stamp = venv.join("installed.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let made = Process::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 is needed for the Python client's test");
    assert!(made.success(), "python3 -m venv failed");
    let installed = Process::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .output()
        .expect("run pip");
    assert!(installed.status.success(), "pip install failed: {}", String::from_utf8_lossy(&installed.stderr));
    std::fs::write(&stamp, wanted).expect("stamp");
    python
}

#[test]
fn the_python_client_speaks_to_a_real_server() {
    let python = python();
    let dir = std::env::temp_dir().join(format!("bursar-python-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (server, addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir, &[]);
    let _server = common::Running(server);
    let output = Process::new(&python)
        .arg(repo().join("net/python/tests/test_client.py"))
        .env("BURSAR_ADDR", addr.to_string())
        .env("BURSAR_CERT", dir.join("server.crt"))
        .output()
        .expect("run the Python client's tests");
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(said.contains("Ran 5 tests") && said.contains("OK") && !said.contains("skipped"), "{said}");
}
