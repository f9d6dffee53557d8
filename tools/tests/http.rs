//! `bursar start`'s HTTP endpoints against the real binary: `/healthz` and `/readyz` answer,
//! `/metrics` is Prometheus text whose counters and per-ledger totals follow the traffic, and
//! an unknown path is a 404. Requests are written by hand over TCP (HTTP/1.1), as a scraper sends them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command as Process;

/// `(status code, body)` of `GET path`.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    get_with(addr, path, None)
}

/// `(status code, body)` of `GET path`, with a bearer token if given.
fn get_with(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// A server-sent event stream read by hand: HTTP/1.1 chunked framing, then `data:` lines.
struct Events {
    reader: std::io::BufReader<TcpStream>,
    pending: String,
}

impl Events {
    fn open(addr: SocketAddr, token: &str) -> Events {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        write!(stream, "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n").expect("write");
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            std::io::BufRead::read_line(&mut reader, &mut line).expect("a header line");
            assert!(!line.is_empty(), "the stream ended in its headers");
            if line == "\r\n" {
                break;
            }
        }
        Events { reader, pending: String::new() }
    }

    /// The next `tick` event's data.
    fn next_tick(&mut self) -> serde_json::Value {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).expect("JSON data");
                }
                continue;
            }
            let mut size = String::new();
            std::io::BufRead::read_line(&mut self.reader, &mut size).expect("a chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
            assert!(size > 0, "the event stream ended");
            let mut chunk = vec![0u8; size + 2];
            self.reader.read_exact(&mut chunk).expect("a chunk");
            self.pending.push_str(std::str::from_utf8(&chunk[..size]).expect("UTF-8"));
        }
    }
}

/// The value of the sample line `name` (with its labels) in a scrape.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_and_health_follow_the_server() {
    let dir = std::env::temp_dir().join(format!("bursar-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (child, addr, said) = common::start_server_saying(env!("CARGO_BIN_EXE_bursar"), &dir, &[]);
    let mut server = common::Running(child);
    let http = common::http_addr(&said);
    assert_eq!(get(http, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(http, "/readyz"), (200, "ready\n".into()));
    assert_eq!(get(http, "/nope").0, 404);

    let (status, before) = get(http, "/metrics");
    assert_eq!(status, 200, "{before}");
    assert!(before.ends_with("# EOF\n"), "{before}");
    let commands_before = sample(&before, "bursar_commands_total").expect("a commands counter");

    let client = |args: &[&str]| common::client(env!("CARGO_BIN_EXE_bursar"), addr, &dir, args);
    client(&["create-ledger", "--id", "978", "--currency", "EUR", "--scale", "2", "--settlement", "1"]);
    client(&["create-account", "--id", "10", "--ledger", "978"]);
    client(&["credit", "--id", "100", "--account", "10", "--amount", "250.00", "--ledger", "978"]);
    client(&["hold", "--id", "101", "--from", "10", "--to", "1", "--amount", "20.00", "--ledger", "978", "--timeout", "600"]);
    let listed = Process::new(env!("CARGO_BIN_EXE_bursar"))
        .args(["client", "--addr", &addr.to_string(), "--cert"])
        .arg(dir.join("server.crt"))
        .args(["expiring", "--limit", "5"])
        .output()
        .expect("bursar client expiring");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.starts_with("hold 101: 20.00 EUR from 10 to 1, goes back at "), "{listed}");

    let (_, after) = get(http, "/metrics");
    assert_eq!(sample(&after, "bursar_commands_total"), Some(commands_before + 4), "{after}");
    assert_eq!(sample(&after, "bursar_ledgers"), Some(1));
    assert_eq!(sample(&after, r#"bursar_ledger_accounts{ledger="978",currency="EUR"}"#), Some(2), "the settlement account and 10");
    assert_eq!(sample(&after, r#"bursar_ledger_credits_posted_minor{ledger="978",currency="EUR"}"#), Some(25_000));
    assert_eq!(sample(&after, r#"bursar_ledger_debits_pending_minor{ledger="978",currency="EUR"}"#), Some(2_000));
    assert_eq!(sample(&after, r#"bursar_ledger_trial_balance_ok{ledger="978",currency="EUR"}"#), Some(1));
    assert!(sample(&after, "bursar_sync_seconds_count").unwrap_or(0) >= 4, "{after}");

    // The JSON API: the token the server generated, or 401.
    let token = std::fs::read_to_string(dir.join("panel.token")).expect("the token file");
    assert!(said.iter().any(|l| l.contains(&token)), "printed on first start");
    assert_eq!(get(http, "/api/ledgers").0, 401);
    assert_eq!(get_with(http, "/api/ledgers", Some("0123")).0, 401);
    let (status, body) = get_with(http, "/api/ledgers", Some(&token));
    assert_eq!(status, 200, "{body}");
    let ledgers: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ledgers[0]["currency"], "EUR");
    assert_eq!(ledgers[0]["totals"]["credits_posted"], "250.00");
    assert_eq!(ledgers[0]["totals"]["debits_pending"], "20.00");
    let (status, body) = get_with(http, "/api/accounts?id=10&id=999", Some(&token));
    assert_eq!(status, 200, "{body}");
    let accounts: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((accounts[0]["balance"].as_str(), accounts[0]["available"].as_str()), (Some("250.00"), Some("230.00")));
    assert!(accounts[1].is_null(), "an unknown account is null");
    assert_eq!(get_with(http, "/api/accounts?name=x", Some(&token)).0, 400);
    let (_, body) = get_with(http, "/api/status", Some(&token));
    let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status["ledgers"].as_u64(), status["accounts"].as_u64()), (Some(1), Some(2)));

    // The panel's page, and its live events: a tick a second, the next one after a transfer
    // shows it.
    let (status, page) = get(http, "/panel");
    assert!(status == 200 && page.contains("<title>Bursar</title>") && page.contains("/api/events"), "{status}");
    assert_eq!(get(http, "/api/events").0, 401);
    let mut events = Events::open(http, &token);
    let first = events.next_tick();
    assert_eq!(first["ledgers"][0]["totals"]["credits_posted"], "250.00", "{first}");
    client(&["credit", "--id", "102", "--account", "10", "--amount", "5.00", "--ledger", "978"]);
    let updated = (0..10).map(|_| events.next_tick()).find(|t| t["ledgers"][0]["totals"]["credits_posted"] == "255.00");
    assert!(updated.is_some(), "a tick shows the credit within 10 s");

    // SIGTERM: the endpoints let the sequencer go, and the server stops cleanly, in bounded time.
    let pid = server.0.id().to_string();
    assert!(Process::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the server did not stop within 20 s of SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_taken_http_address_is_named_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let dir = std::env::temp_dir().join(format!("bursar-http-taken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Process::new(env!("CARGO_BIN_EXE_bursar"))
        .args(["start", "--listen", "127.0.0.1:0", "--http", &taken.local_addr().unwrap().to_string(), "--data"])
        .arg(&dir)
        .output()
        .expect("run bursar start");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("HTTP on") && said.contains("--no-http"), "{said}");
    assert!(!dir.exists(), "no data directory is left behind");
}
