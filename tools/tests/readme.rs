//! The README's examples are real sessions: the client session and the audit blocks run, line by
//! line as written, against a real server in a fresh directory (only the server's address
//! differs: tests listen on an ephemeral port). A line whose comment starts with a result code
//! must print that code; every other line must succeed. The benchmark block is left to the bench
//! tests (it loads millions of transfers).

mod common;

use std::path::Path;
use std::process::{Command as Process, Output};

use bursar_engine::ResultCode;

/// The lines of the README's `sh` block whose first line defines the shell function `name`.
fn block(readme: &str, name: &str, nth: usize) -> Vec<String> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().expect("a block")),
            (Some(lines), l) => lines.push(l.to_string()),
            _ => {}
        }
    }
    let define = format!("{name}() {{");
    let found: Vec<Vec<String>> = blocks.into_iter().filter(|b| b.first().is_some_and(|l| l.starts_with(&define))).collect();
    found.get(nth).unwrap_or_else(|| panic!("README block {nth} defining {name}()")).iter().skip(1).cloned().collect()
}

/// A line's words as a shell would split them (double quotes group), and its comment.
fn words(line: &str) -> (Vec<String>, String) {
    let (command, comment) = line.split_once(" #").map_or((line, ""), |(c, m)| (c, m.trim()));
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for ch in command.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    (words, comment.to_string())
}

fn run(dir: &Path, args: &[String]) -> Output {
    Process::new(env!("CARGO_BIN_EXE_bursar")).args(args).current_dir(dir).output().expect("run bursar")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs the lines of a block with `function` standing for `bursar <prefix>`; `README`'s address
/// becomes the test server's.
fn run_block(dir: &Path, lines: &[String], prefix: &[&str], addr: &str) {
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let (words, comment) = words(line);
        let mut args: Vec<String> = prefix.iter().map(|p| p.to_string()).collect();
        args.extend(words[1..].iter().map(|w| w.replace("127.0.0.1:7413", addr)));
        let output = run(dir, &args);
        let said = text(&output);
        let expected = ResultCode::ALL.iter().find(|c| comment.split([':', ' ']).next() == Some(c.name()));
        match expected {
            Some(code) => assert!(said.starts_with(&format!("{}:", code.name())), "{line}\nexpected {code}, got: {said}"),
            None => assert!(output.status.success(), "{line}\nfailed: {said}"),
        }
    }
}

#[test]
fn the_readme_session_and_audit_run_as_written() {
    let readme = include_str!("../../README.md");
    let dir = std::env::temp_dir().join(format!("bursar-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = env!("CARGO_BIN_EXE_bursar");
    let (mut server, addr) = common::start_server(bin, &dir.join("data/server"), &[]);
    let addr = addr.to_string();
    let outcome = std::panic::catch_unwind(|| {
        run_block(&dir, &block(readme, "b", 0), &["client", "--addr", &addr], &addr);
        run_block(&dir, &block(readme, "a", 0), &[], &addr);
    });
    // Ctrl-C: the server finishes, takes a snapshot and exits 0.
    let interrupted = Process::new("kill").args(["-INT", &server.id().to_string()]).status().expect("kill -INT");
    assert!(interrupted.success());
    let status = server.wait().expect("the server exits");
    let after = std::panic::catch_unwind(|| {
        assert!(status.success(), "the server stopped with {status}");
        run_block(&dir, &block(readme, "a", 1), &[], &addr);
    });
    let _ = std::fs::remove_dir_all(&dir);
    for result in [outcome, after] {
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}
