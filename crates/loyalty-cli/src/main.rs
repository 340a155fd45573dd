//! `loyalty`: serve the HTTP API, replay and verify the log, print statements and liability,
//! and drive a demo against a running server.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: under HTTP load the server spent a sixth of its CPU in
/// glibc's allocator (see the README's Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = loyalty_cli::Cli::parse();
    let _log = loyalty_cli::telemetry::init(cli.log_json);
    match loyalty_cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
