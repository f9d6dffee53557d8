//! The panel in a real browser: a server with known traffic, Debian's Chromium (headless) driven
//! through chromedriver's WebDriver protocol (plain HTTP and JSON, written by hand here), the page
//! opened with the token in its fragment; it must show the ledger's totals, show a credit made
//! while it is open without a reload, and its screenshot is saved
//! (`target/tmp/panel-screenshot.png`). `.ci/run` installs `chromium` and `chromium-driver` when missing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One WebDriver call: `method path` with a JSON body; the reply's `value`.
fn webdriver(port: u16, method: &str, path: &str, body: &Value) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    // chromedriver keeps the connection open: read the head, then exactly Content-Length bytes.
    let mut reader = std::io::BufReader::new(stream);
    let (mut head, mut line) = (String::new(), String::new());
    while line != "\r\n" {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).expect("read") > 0, "the reply ended in its head");
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse::<usize>()))
        .expect("a Content-Length")
        .expect("a length");
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).expect("the body");
    let payload = String::from_utf8_lossy(&payload);
    let value: Value = serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{head}\n{payload}: {e}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{method} {path}: {head}\n{value}");
    value["value"].clone()
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("addr").port();
    let child = Process::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver(child, port)
}

/// Polls `script` in the page until it returns `want` (bounded), and returns what it last saw.
fn wait_for(port: u16, session: &str, script: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = webdriver(port, "POST", &format!("/session/{session}/execute/sync"), &json!({ "script": script, "args": [] }));
        let got = got.as_str().unwrap_or("").to_string();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Standard base64 (a WebDriver screenshot) to bytes.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let symbols: Vec<u8> = text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()).map(value).collect();
    symbols
        .chunks(4)
        .flat_map(|q| {
            let n = q.iter().enumerate().fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
            (0..q.len() - 1).map(move |i| (n >> (16 - 8 * i)) as u8)
        })
        .collect()
}

#[test]
fn the_panel_shows_the_books_and_follows_them_live() {
    let dir = std::env::temp_dir().join(format!("bursar-panel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let marks =
        ["--panel-account", "payout:11", "--panel-account", "bank:404", "--panel-account", "suspense:13", "--panel-large", "978:1000"];
    let (child, addr, said) = common::start_server_saying(env!("CARGO_BIN_EXE_bursar"), &dir, &marks);
    let _server = common::Running(child);
    let http = common::http_addr(&said);
    let client = |args: &[&str]| common::client(env!("CARGO_BIN_EXE_bursar"), addr, &dir, args);
    client(&["create-ledger", "--id", "978", "--currency", "EUR", "--scale", "2", "--settlement", "1"]);
    client(&["create-account", "--id", "10", "--ledger", "978", "--code", "10"]);
    client(&["create-account", "--id", "11", "--ledger", "978", "--code", "50"]);
    client(&["credit", "--id", "100", "--account", "10", "--amount", "250.00", "--ledger", "978"]);
    client(&["hold", "--id", "101", "--from", "10", "--to", "11", "--amount", "20.00", "--ledger", "978", "--timeout", "3600"]);
    client(&["transfer", "--id", "103", "--from", "10", "--to", "11", "--amount", "7.50", "--ledger", "978"]);
    // A movement over the large threshold (`--panel-large 978:1000`), and a standing order from
    // an account that cannot pay: its first run fails at once.
    client(&["create-account", "--id", "12", "--ledger", "978", "--code", "60", "--no-overdraft"]);
    client(&["credit", "--id", "104", "--account", "12", "--amount", "1500.00", "--ledger", "978"]);
    // Money no order explained, booked onto the suspense account (what `bursar desk import` does).
    client(&["create-account", "--id", "13", "--ledger", "978", "--code", "31"]);
    client(&["credit", "--id", "105", "--account", "13", "--amount", "42.00", "--ledger", "978"]);
    client(&[
        "standing-order",
        "create",
        "--id",
        "7",
        "--from",
        "12",
        "--to",
        "10",
        "--amount",
        "2000.00",
        "--ledger",
        "978",
        "--every",
        "1 day",
    ]);
    let token = std::fs::read_to_string(dir.join("panel.token")).expect("the token");

    let driver = start_driver();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,700",
    ];
    // "none": navigation returns at once; the page streams events for ever, the test polls it.
    let options = json!({ "binary": "/usr/bin/chromium", "args": args });
    let capabilities = json!({ "capabilities": { "alwaysMatch": { "pageLoadStrategy": "none", "goog:chromeOptions": options } } });
    let session = webdriver(driver.1, "POST", "/session", &capabilities)["sessionId"].as_str().expect("a session").to_string();
    let url = format!("http://{http}/panel#token={token}");
    webdriver(driver.1, "POST", &format!("/session/{session}/url"), &json!({ "url": url }));

    let cell = |code: u32, column: &str| {
        format!("return document.querySelector('table.ledger tr[data-code=\"{code}\"] td.{column}')?.textContent ?? ''")
    };
    assert_eq!(wait_for(driver.1, &session, &cell(10, "posted"), "242.50"), "242.50", "the customer's posted balance");
    assert_eq!(wait_for(driver.1, &session, &cell(10, "held"), "20.00"), "20.00");
    assert_eq!(wait_for(driver.1, &session, &cell(10, "available"), "222.50"), "222.50");
    assert_eq!(wait_for(driver.1, &session, "return document.getElementById('state').textContent", "live"), "live");

    // The accounts the operator marked, by role: 11 holds the 7.50 posted to it (the 20.00 held
    // for it is not its yet), 404 does not exist.
    let marked = |role: &str, column: &str| {
        format!("return document.querySelector('#marked-accounts tr[data-role=\"{role}\"] td.{column}')?.textContent ?? ''")
    };
    assert_eq!(wait_for(driver.1, &session, &marked("payout", "balance"), "7.50"), "7.50");
    assert_eq!(wait_for(driver.1, &session, &marked("bank", "bad"), "not found"), "not found");

    // The hold that goes back first.
    let expiring = "return document.querySelector('#expiring-holds tr[data-id=\"101\"] td.amount')?.textContent ?? ''";
    assert_eq!(wait_for(driver.1, &session, expiring, "20.00 EUR"), "20.00 EUR");

    // The large movement and the failed run, from the change feed.
    let large = "return document.querySelector('#large-movements tr[data-id=\"104\"] td.amount')?.textContent ?? ''";
    assert_eq!(wait_for(driver.1, &session, large, "1500.00 EUR"), "1500.00 EUR");
    let small = "return String(document.querySelectorAll('#large-movements tr[data-id=\"103\"]').length)";
    assert_eq!(wait_for(driver.1, &session, small, "0"), "0", "7.50 is not large");
    let unmatched = "return document.querySelector('#unmatched-lines tr[data-id=\"105\"] td.amount')?.textContent ?? ''";
    assert_eq!(wait_for(driver.1, &session, unmatched, "42.00 EUR"), "42.00 EUR");
    let failed = "return document.querySelector('#failed-runs tr[data-id=\"7:1\"] td.bad')?.textContent ?? ''";
    assert_eq!(wait_for(driver.1, &session, failed, "failed"), "failed");

    // A credit while the page is open: it shows without a reload.
    client(&["credit", "--id", "102", "--account", "10", "--amount", "5.00", "--ledger", "978"]);
    assert_eq!(wait_for(driver.1, &session, &cell(10, "posted"), "247.50"), "247.50", "the page follows the books live");
    assert_eq!(wait_for(driver.1, &session, &cell(10, "available"), "227.50"), "227.50");

    let png = base64(webdriver(driver.1, "GET", &format!("/session/{session}/screenshot"), &json!({})).as_str().expect("base64"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("panel-screenshot.png");
    std::fs::write(&target, png).expect("save the screenshot");
    webdriver(driver.1, "DELETE", &format!("/session/{session}"), &json!({}));

    // Without the token the page says so, and shows no figures.
    let session = webdriver(driver.1, "POST", "/session", &capabilities)["sessionId"].as_str().expect("a session").to_string();
    webdriver(driver.1, "POST", &format!("/session/{session}/url"), &json!({ "url": format!("http://{http}/panel") }));
    let refused = "the token is missing or wrong: open /panel#token=<the server's panel.token>";
    assert_eq!(wait_for(driver.1, &session, "return document.getElementById('state').textContent", refused), refused);
    let figures = "return String(document.querySelectorAll('table.ledger').length)";
    assert_eq!(wait_for(driver.1, &session, figures, "0"), "0", "no figures without the token");
    webdriver(driver.1, "DELETE", &format!("/session/{session}"), &json!({}));
    let _ = std::fs::remove_dir_all(&dir);
}
