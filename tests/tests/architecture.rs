//! The architecture's one-way dependencies, over `cargo metadata`: the audit needs only the
//! engine and the log; the wire format is sans IO; durability and ordering carry no transport;
//! the engine reaches no I/O crate.

use std::collections::BTreeSet;

/// The normal (not dev or build) dependencies `package` reaches, directly or through anything.
fn reached(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |extra: &[&str]| {
        std::process::Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", &host()])
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata")
    };
    // Offline first; a fresh machine's cache lacks the crates of other platforms, which
    // `cargo metadata` reads all of (the build did not need them): then it fetches them.
    let mut output = metadata(&["--offline"]);
    if !output.status.success() {
        output = metadata(&[]);
    }
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let nodes = metadata["resolve"]["nodes"].as_array().expect("resolve nodes");
    let packages = metadata["packages"].as_array().expect("packages");
    let name_of = |id: &str| packages.iter().find(|p| p["id"] == id).and_then(|p| p["name"].as_str()).expect("a package").to_string();
    let start = nodes.iter().find(|n| name_of(n["id"].as_str().expect("id")) == package).expect("the package in the graph");
    let mut seen = BTreeSet::new();
    let mut todo = vec![start["id"].as_str().expect("id").to_string()];
    while let Some(id) = todo.pop() {
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).expect("node");
        for dep in node["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"].as_array().expect("kinds").iter().any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().expect("pkg").to_string();
            if normal && seen.insert(pkg.clone()) {
                todo.push(pkg);
            }
        }
    }
    seen.iter().map(|id| name_of(id)).collect()
}

/// Asserts which of Bursar's crates `package` reaches, and that it reaches none of `forbidden`.
fn assert_reaches(package: &str, bursar: &[&str], forbidden: &[&str]) {
    let names = reached(package);
    let ours: Vec<&str> = names.iter().map(String::as_str).filter(|n| n.starts_with("bursar")).collect();
    assert_eq!(ours, bursar, "Bursar crates {package} reaches: {names:?}");
    for name in forbidden {
        assert!(!names.contains(*name), "{package} reaches {name}: {names:?}");
    }
}

#[test]
fn the_audit_needs_only_the_engine_and_the_log() {
    assert_reaches("bursar-audit", &["bursar-engine", "bursar-wal"], &["quinn", "tokio", "rustls"]);
}

#[test]
fn the_wire_format_is_sans_io_and_the_node_has_no_transport() {
    assert_reaches("bursar-wire", &["bursar-engine"], &["quinn", "tokio", "rustls", "crossbeam-channel"]);
    assert_reaches("bursar-node", &["bursar-engine", "bursar-wal", "bursar-wire"], &["quinn", "rustls"]);
    assert_reaches("bursar-engine", &[], &["quinn", "tokio", "rustls", "crossbeam-channel", "libc"]);
}

/// This machine's target triple, as `rustc -vV` says it.
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("a host line").to_string()
}
