//! The `loyalty` command as a library, so tests can start the real server in process.
//!
//! - [`runtime`]: open the configured store, start the engine, start the HTTP server
//!   ([`runtime::start_server`] returns a handle with the bound address, for tests on port 0);
//! - [`offline`]: `replay`, `verify`, `statement`, `liability` against the store directly;
//! - [`analytics`]: `loyalty analytics ...`, the retention reports as tables;
//! - [`import`]: `loyalty import FILE`, a legacy program's history;
//! - [`demo`]: a realistic stream of traffic against a running server over HTTP.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod cli;
pub mod demo;
pub mod import;
pub mod offline;
pub mod runtime;
pub mod settings;
pub mod telemetry;

pub use cli::{Cli, Commands};
pub use runtime::{RunningServer, start_server};

/// Runs a parsed command line; the exit code is the process's.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let settings = || runtime::load_settings(&cli.config);
    match &cli.command {
        Commands::Serve => {
            runtime::serve(settings()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Replay => {
            offline::replay(&settings()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Verify => {
            let clean = offline::verify(&settings()?).await?;
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Commands::Statement { member, as_of } => {
            offline::statement(&settings()?, member, *as_of).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Liability { as_of } => {
            offline::liability(&settings()?, *as_of).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Analytics(args) => {
            analytics::run(&settings()?, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Import(args) => {
            let imported = import::run(&settings()?, args).await?;
            Ok(if imported {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Commands::Demo(args) => {
            demo::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
