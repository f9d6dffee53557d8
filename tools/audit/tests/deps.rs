//! Architecture invariant: the audit needs only the engine and the log. Fails if `bursar-audit`
//! comes to depend, directly or through anything, on the network crate, the benchmarks, or an
//! async runtime.

use std::collections::BTreeSet;

#[test]
fn the_audit_needs_only_the_engine_and_the_log() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked", "--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let nodes = metadata["resolve"]["nodes"].as_array().expect("resolve nodes");
    let packages = metadata["packages"].as_array().expect("packages");
    let name_of = |id: &str| packages.iter().find(|p| p["id"] == id).and_then(|p| p["name"].as_str()).expect("a package").to_string();
    let audit = nodes.iter().find(|n| name_of(n["id"].as_str().expect("id")) == "bursar-audit").expect("bursar-audit in the graph");
    // Everything it reaches through normal (not dev or build) dependencies.
    let mut seen = BTreeSet::new();
    let mut todo = vec![audit["id"].as_str().expect("id").to_string()];
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
    let names: BTreeSet<String> = seen.iter().map(|id| name_of(id)).collect();
    let bursar: Vec<&String> = names.iter().filter(|n| n.starts_with("bursar")).collect();
    assert_eq!(bursar, ["bursar-engine", "bursar-wal"], "Bursar crates the audit reaches: {names:?}");
    for forbidden in ["quinn", "tokio", "rustls"] {
        assert!(!names.contains(forbidden), "the audit reaches {forbidden}: {names:?}");
    }
}

/// This machine's target triple, as `rustc -vV` says it.
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("a host line").to_string()
}
