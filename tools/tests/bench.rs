//! `bursar bench` end to end, small and bounded: the embedded server with every command kind in
//! the mix (closed loop, JSON and SVG written, its own checks passed, the data directory
//! removed), a running server targeted with `--addr` in open loop (the server's own counters
//! agree with the run), and bad flags refused before anything starts.

mod common;

use std::path::PathBuf;
use std::process::{Command as Process, Output};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bursar-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn bench(args: &[&str]) -> Output {
    Process::new(env!("CARGO_BIN_EXE_bursar")).arg("bench").arg("--quiet").args(args).output().expect("run bursar bench")
}

fn json_of(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bursar bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let start = stdout.find("\n{").expect("JSON after the summary") + 1;
    serde_json::from_str(&stdout[start..]).expect("valid JSON")
}

#[test]
fn embedded_server_every_command_kind_checked_and_cleaned_up() {
    let dir = temp_dir("embedded");
    let data = dir.join("made-for-the-run").join("server");
    let plot = dir.join("chart.svg");
    let output = bench(&[
        "--accounts",
        "200",
        "--transfers",
        "30000",
        "--batch",
        "700",
        "--clients",
        "3",
        "--choice",
        "zipf:1.1",
        "--mix",
        "transfer:4,hold:2,debit:1,credit:1,chain:2,lookup:1",
        "--data",
        data.to_str().expect("utf-8"),
        "--json",
        "-",
        "--plot",
        plot.to_str().expect("utf-8"),
    ]);
    let json = json_of(&output);
    assert_eq!(json["verified"], true, "{json:#}");
    assert_eq!(json["commands"].as_u64().unwrap() + json["lookups"].as_u64().unwrap(), 30_000);
    assert!(json["lookups"].as_u64().unwrap() > 0, "the mix asked for lookups");
    assert_eq!(json["server"]["commands"], json["commands"], "the server applied what the run sent");
    assert!(json["server"]["syncs"].as_u64().unwrap() >= json["server"]["batches"].as_u64().unwrap());
    assert_eq!(json["rejected"], serde_json::json!({}));
    assert!(json["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(json["checks"].as_array().unwrap().len(), 5);
    let svg = std::fs::read_to_string(&plot).expect("the chart was written");
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("throughput over the run"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    assert!(!data.exists(), "the embedded server's data directory is removed after the run");
    assert!(!dir.join("made-for-the-run").exists(), "and so is the directory created to hold it");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn running_server_in_open_loop_agrees_with_its_own_counters() {
    let dir = temp_dir("addr");
    let (mut server, addr) = common::start_server(env!("CARGO_BIN_EXE_bursar"), &dir.join("server"), &[]);
    let cert = dir.join("server").join("server.crt");
    let addr = addr.to_string();
    // Two runs against the same server: the second must pick fresh ids and still check out.
    for _ in 0..2 {
        let output = bench(&[
            "--addr",
            &addr,
            "--cert",
            cert.to_str().expect("utf-8"),
            "--accounts",
            "50",
            "--transfers",
            "4000",
            "--batch",
            "100",
            "--clients",
            "2",
            "--rate",
            "20000",
            "--choice",
            "hot:5:80",
            "--json",
            "-",
        ]);
        let json = json_of(&output);
        assert_eq!(json["verified"], true, "{json:#}");
        assert_eq!(json["commands"], 4000);
        assert_eq!(json["requests"], 40);
        assert_eq!(json["workload"]["open_loop_commands_per_s"], 20000.0);
        // 4 000 commands at 20 000/s is 0.2 s of schedule; the run cannot end much before it.
        assert!(json["elapsed_s"].as_f64().unwrap() >= 0.15, "{json:#}");
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_are_refused_before_anything_starts() {
    for (args, says) in [
        (&["--batch", "9000"][..], "--batch must be in 1..=8189"),
        (&["--accounts", "1"][..], "--accounts must be at least 2"),
        (&["--mix", "wire:3"][..], "unknown kind `wire`"),
        (&["--choice", "pareto"][..], "expected uniform, hot:N:P or zipf:S"),
        (&["--choice", "hot:20000:50"][..], "hot accounts"),
        (&["--rate", "0"][..], "--rate must be a positive number"),
    ] {
        let output = bench(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// A server that holds books of its own is refused with what the run would have written, and
/// nothing is written; the flag that says so lets the run through. (A server holding only earlier
/// benchmark runs is not refused: the test above runs twice against one.)
#[test]
fn a_server_holding_real_books_is_refused_unless_told() {
    let dir = temp_dir("books");
    let bin = env!("CARGO_BIN_EXE_bursar");
    let (server, addr) = common::start_server(bin, &dir.join("server"), &[]);
    let _server = common::Running(server);
    let cert = dir.join("server").join("server.crt");
    let (addr, cert) = (addr.to_string(), cert.to_str().expect("utf-8").to_string());
    let client = |args: &[&str]| {
        Process::new(bin).args(["client", "--addr", &addr, "--cert", &cert]).args(args).output().expect("run bursar client")
    };
    let made = client(&["create-ledger", "--id", "978", "--currency", "EUR", "--scale", "2", "--settlement", "1"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stdout));
    let run = |extra: &[&str]| {
        let mut args = vec!["--addr", &addr, "--cert", &cert, "--accounts", "10", "--transfers", "100", "--batch", "10"];
        args.extend_from_slice(extra);
        bench(&args)
    };
    let refused = run(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a server with real books was written into");
    assert!(stderr.contains("holds books of its own (1 ledgers, 1 accounts, 0 transfers)"), "{stderr}");
    assert!(stderr.contains("would add ledger 1, 10 accounts and 100 commands"), "{stderr}");
    let ledgers = client(&["totals", "1"]);
    assert!(!ledgers.status.success(), "nothing was written: {}", String::from_utf8_lossy(&ledgers.stdout));
    let allowed = run(&["--write-into-live-books", "--json", "-"]);
    assert_eq!(json_of(&allowed)["verified"], true);
    let _ = std::fs::remove_dir_all(&dir);
}
