//! Mistakes in using the attribute are compile errors that say what is wrong, at the user's own
//! tokens. The expected messages are the `.stderr` files beside each case. And what is not a
//! mistake builds clean: `pass/` holds the shapes that must build with every lint denied.

use std::path::Path;
use std::process::Command;

#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("*.rs");
}

/// What the attribute, guards and `#[guardian_cleanup]` generate warns of nothing: every shape
/// builds and runs in a crate of edition 2021 that denies every lint of rustc.
#[test]
fn builds_clean() {
    trybuild::TestCases::new().pass("pass/*.rs");
}

/// The same shapes in a crate of edition 2024, where a closure that only calls `exit` returns
/// `!` rather than `()`, through clippy with its pedantic lints. A crate of its own, made under
/// the target directory: the workspace cannot hold it, as the Rust of our MSRV cannot read an
/// edition 2024 manifest. It starts from the workspace's `Cargo.lock`, so that it builds with
/// the versions already downloaded.
#[test]
fn builds_clean_in_edition_2024() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("the workspace's root");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edition-2024");
    std::fs::create_dir_all(&dir).expect("a directory for the crate");
    let manifest = format!(
        r#"[package]
name = "builds-clean-2024"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
finally-cleanup = {{ path = {root:?} }}
tokio = {{ version = "1", features = ["rt"] }}

[[bin]]
name = "builds-clean"
path = {shapes:?}
"#,
        root = root.display().to_string(),
        shapes = root
            .join("tests/ui/pass/builds-clean.rs")
            .display()
            .to_string(),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("the crate's manifest");
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("the lock file");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["clippy", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.join("target"))
        .args(["--", "--deny", "warnings"])
        .output()
        .expect("cargo clippy runs");
    assert!(
        output.status.success(),
        "the shapes do not build clean in edition 2024:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
