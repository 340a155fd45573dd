//! What the tests of the one-shot commands share: the real binary, run on an embedded store in
//! a temporary directory with the demo settings and program.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn loyalty(dir: &Path, args: &[&str]) -> Output {
    loyalty_with(dir, args, &[])
}

/// [`loyalty`] with more settings from the environment (`("LOYALTY_PRIVACY__KEY_FILE", ...)`).
pub fn loyalty_with(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loyalty"))
        .arg("--config")
        .arg(repo_root().join("config/loyalty.toml"))
        .args(args)
        .current_dir(dir)
        .env("LOYALTY_PROGRAM", repo_root().join("config/program.toml"))
        .env("LOYALTY_STORE__PATH", dir.join("store.sqlite"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the loyalty binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
