//! `docs/accounts.md` is a real session: every `$ bursar client ...` line of its console blocks
//! runs, in order, against a real server started on an empty data directory, and its output must
//! be the lines the guide shows under it (`*` in a shown line stands for any text, a time).

mod common;

use std::path::Path;
use std::process::Command as Process;

use bursar_engine::ResultCode;

/// One command of the guide and the output it shows.
struct Step {
    args: Vec<String>,
    shown: Vec<String>,
}

/// The `$ bursar client` lines of every console block, each with the lines shown under it.
fn steps(guide: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for line in guide.lines() {
        match (in_block, line.trim_end()) {
            (false, "```console") => in_block = true,
            (true, "```") => in_block = false,
            (true, l) if l.starts_with("$ ") => {
                let words: Vec<String> = l[2..].split_whitespace().map(str::to_string).collect();
                assert_eq!(&words[..2], ["bursar", "client"], "the guide runs client commands only: {l}");
                steps.push(Step { args: words[2..].to_vec(), shown: Vec::new() });
            }
            (true, l) => steps.last_mut().expect("output after a command").shown.push(l.to_string()),
            _ => {}
        }
    }
    steps
}

/// Whether `line` is what `shown` shows, `*` standing for any text.
fn matches(shown: &str, line: &str) -> bool {
    let pieces: Vec<&str> = shown.split('*').collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return shown == line;
    }
    if !line.starts_with(first) || !line.ends_with(last) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_modelling_guide_runs_as_written() {
    let guide = include_str!("../../docs/accounts.md");
    let steps = steps(guide);
    assert!(steps.len() > 40, "the guide's sessions were found: {}", steps.len());
    let dir = std::env::temp_dir().join(format!("bursar-guide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = env!("CARGO_BIN_EXE_bursar");
    let (mut server, addr) = common::start_server(bin, &dir, &[]);
    let outcome = std::panic::catch_unwind(|| run_steps(bin, &steps, &addr.to_string(), &dir.join("server.crt")));
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn run_steps(bin: &str, steps: &[Step], addr: &str, cert: &Path) {
    for step in steps {
        let output = Process::new(bin)
            .arg("client")
            .args(["--addr", addr])
            .arg("--cert")
            .arg(cert)
            .args(&step.args)
            .output()
            .expect("run bursar client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let command = step.args.join(" ");
        assert_eq!(
            lines.len(),
            step.shown.len(),
            "bursar client {command}: printed {lines:?}, the guide shows {:?}; stderr: {}",
            step.shown,
            String::from_utf8_lossy(&output.stderr)
        );
        for (line, shown) in lines.iter().zip(&step.shown) {
            assert!(matches(shown, line), "bursar client {command}:\n printed  {line}\n the guide {shown}");
        }
        // A submit prints one `code: meaning` line per command and fails (status 2) unless all succeeded.
        let codes: Vec<ResultCode> = step
            .shown
            .iter()
            .filter_map(|l| l.split_once(": ").and_then(|(name, _)| ResultCode::ALL.iter().find(|c| c.name() == name).copied()))
            .collect();
        if !codes.is_empty() {
            let success = codes.iter().all(|c| c.is_success());
            assert_eq!(output.status.success(), success, "bursar client {command}: exit status {}", output.status);
        }
    }
}

#[test]
fn a_star_stands_for_any_text() {
    assert!(matches("at * and *", "at 12:00 and then"));
    assert!(matches("exact", "exact"));
    assert!(!matches("exact", "exactly"));
    assert!(!matches("at *Z", "at 12:00"));
}

/// The errors a person meets first say what to do: an account not found exits 2 (with `--json`
/// it is data and exits 0), a certificate file that is not one is named, and a second server on a
/// port in use is refused before it creates anything.
#[test]
fn first_errors_are_plain_and_exit_as_scripts_expect() {
    let dir = std::env::temp_dir().join(format!("bursar-first-errors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = env!("CARGO_BIN_EXE_bursar");
    let (server, addr) = common::start_server(bin, &dir.join("server"), &[]);
    let _server = common::Running(server);
    let (addr, cert) = (addr.to_string(), dir.join("server").join("server.crt"));
    let client = |cert: &Path, args: &[&str]| {
        Process::new(bin).args(["client", "--addr", &addr, "--cert"]).arg(cert).args(args).output().expect("run bursar client")
    };
    let missing = client(&cert, &["accounts", "999"]);
    assert_eq!(missing.status.code(), Some(2), "{}", String::from_utf8_lossy(&missing.stdout));
    assert_eq!(String::from_utf8_lossy(&missing.stdout).trim(), "account 999: not found");
    let as_data = client(&cert, &["--json", "accounts", "999"]);
    assert!(as_data.status.success());
    assert!(String::from_utf8_lossy(&as_data.stdout).contains("\"found\":false"));
    let pem = dir.join("server.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").expect("write");
    let refused = client(&pem, &["accounts", "1"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("is a PEM file") && !said.contains("stack backtrace"), "{said}");
    let second = Process::new(bin)
        .args(["start", "--listen", &addr, "--data"])
        .arg(dir.join("second"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run a second server");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && said.contains(&format!("{addr} is in use")) && !said.contains("backtrace"), "{said}");
    assert!(!dir.join("second").exists(), "nothing created for a server that cannot listen");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bursar demo` runs at any size it accepts (few accounts, many transfers: account 1 may end the
/// payments with nothing, and the holds still run), prints amounts in the currency, and refuses a
/// size it cannot run before it starts.
#[test]
fn the_demo_runs_at_a_small_size_and_refuses_what_it_cannot_run() {
    let dir = std::env::temp_dir().join(format!("bursar-demo-{}", std::process::id()));
    let bin = env!("CARGO_BIN_EXE_bursar");
    let demo = |args: &[&str]| Process::new(bin).arg("demo").arg("--data").arg(&dir).args(args).output().expect("run bursar demo");
    let ran = demo(&["--accounts", "3", "--transfers", "30000"]);
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "{said}{}", String::from_utf8_lossy(&ran.stderr));
    assert!(said.contains("holds           captured 19.99 of 25.00 EUR"), "{said}");
    assert!(said.contains("a month         3 salaries of 2 500.00 EUR on the 25th and 3 rents of 800.00"), "{said}");
    let refused = demo(&["--accounts", "1"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--accounts must be from 2"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bursar client batch` sends a file's commands in one request, as one linked chain with
/// `--chain` (all or nothing), and movements carry user data.
#[test]
fn a_batch_file_is_one_request_and_a_chain_takes_effect_whole_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("bursar-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = env!("CARGO_BIN_EXE_bursar");
    let (server, addr) = common::start_server(bin, &dir.join("server"), &[]);
    let _server = common::Running(server);
    let (addr, cert) = (addr.to_string(), dir.join("server").join("server.crt"));
    let client = |args: &[&str]| {
        Process::new(bin).args(["client", "--addr", &addr, "--cert"]).arg(&cert).args(args).output().expect("run bursar client")
    };
    let file = dir.join("setup.txt");
    std::fs::write(
        &file,
        "# a ledger and two accounts\ncreate-ledger --id 978 --currency EUR --scale 2 --settlement 1\n\
         create-account --id 10 --ledger 978\ncreate-account --id 11 --ledger 978 --code 20\n\
         credit --id 100 --account 10 --amount \"50.00 EUR\" --ledger 978 --user-data-64 77\n",
    )
    .expect("write");
    let setup = client(&["batch", file.to_str().expect("utf-8")]);
    assert!(setup.status.success(), "{}{}", String::from_utf8_lossy(&setup.stdout), String::from_utf8_lossy(&setup.stderr));
    assert_eq!(String::from_utf8_lossy(&setup.stdout).lines().filter(|l| l.starts_with("ok:")).count(), 4);
    let chain = dir.join("chain.txt");
    std::fs::write(
        &chain,
        "transfer --id 101 --from 10 --to 11 --amount 5 --ledger 978\ntransfer --id 102 --from 10 --to 99 --amount 5 --ledger 978\n",
    )
    .expect("write");
    let failed = client(&["batch", "--chain", chain.to_str().expect("utf-8")]);
    let said = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(2), "{said}");
    assert!(said.starts_with("linked_event_failed:") && said.contains("\ncredit_account_not_found:"), "{said}");
    let moved = client(&["--json", "transfers", "101", "100"]);
    let said = String::from_utf8_lossy(&moved.stdout);
    assert!(said.contains("\"found\":false") && said.contains("\"user_data_64\":77"), "the chain moved nothing; user data kept: {said}");
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "accounts 10\n").expect("write");
    let refused = client(&["batch", bad.to_str().expect("utf-8")]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("bad.txt:1"));
    let _ = std::fs::remove_dir_all(&dir);
}
