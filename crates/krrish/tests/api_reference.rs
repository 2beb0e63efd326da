//! docs/API.md against the code: every route the daemon serves is listed,
//! and every CLI command the reference names exists.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `"/v1/…"` string literals in the API's sources: its routes.
fn routes() -> Vec<String> {
    let dir = root().join("crates/krrish/src/daemon/api");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the API sources") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            for piece in text.split('"').skip(1).step_by(2) {
                if piece.starts_with("/v1/") {
                    out.push(piece.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_route_is_in_the_reference() {
    let doc = std::fs::read_to_string(root().join("docs/API.md")).expect("docs/API.md");
    let routes = routes();
    assert!(routes.len() >= 30, "found only {routes:?}");
    let missing: Vec<&String> = routes
        .iter()
        .filter(|r| !doc.contains(&format!("`{r}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/API.md: {missing:?}"
    );
}

#[test]
fn every_cli_command_in_the_reference_exists() {
    let doc = std::fs::read_to_string(root().join("docs/API.md")).expect("docs/API.md");
    let mut commands: Vec<&str> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|c| c.strip_prefix("krrish "))
        .filter(|c| !c.contains('<'))
        .collect();
    commands.sort();
    commands.dedup();
    assert!(commands.len() >= 30, "found only {commands:?}");
    for c in commands {
        let words: Vec<&str> = c.split_whitespace().collect();
        let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
            .args(&words)
            .arg("--help")
            .output()
            .expect("the binary runs");
        assert!(
            o.status.success(),
            "`krrish {c}` named in docs/API.md does not exist: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
