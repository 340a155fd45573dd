//! The `loyalty` command as a library, so tests can start the real server in process.
//!
//! - [`runtime`]: open the configured store, start the engine, start the HTTP server
//!   ([`runtime::start_server`] returns a handle with the bound address, for tests on port 0);
//! - [`offline`]: `replay`, `verify`, `statement` against the store directly;
//! - [`liability`]: `loyalty liability`, the liability report as a table, CSV or JSON;
//! - [`analytics`]: `loyalty analytics ...`, the retention reports as tables;
//! - [`import`]: `loyalty import FILE`, a legacy program's history;
//! - [`audit`]: `loyalty audit keygen`, `loyalty anchor`, `loyalty verify --chain|--anchor`;
//! - [`program`]: `loyalty program history|show`, the program versions recorded in the log;
//! - [`what_if`]: `loyalty what-if`, the period decided again under another program;
//! - [`privacy`]: `loyalty member export|erase`, a member's data exported or erased;
//! - [`demo`]: a realistic stream of traffic against a running server over HTTP.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod audit;
pub mod cli;
pub mod demo;
pub mod import;
pub mod liability;
pub mod offline;
pub mod privacy;
pub mod program;
pub mod runtime;
pub mod settings;
pub mod telemetry;
pub mod what_if;

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
        Commands::Verify(args) => {
            let clean = if args.chain || args.anchor.is_some() {
                audit::verify(&settings()?, args).await?
            } else {
                offline::verify(&settings()?).await?
            };
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Commands::Anchor(args) => {
            audit::anchor(&settings()?, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Audit(args) => {
            audit::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Statement { member, as_of } => {
            offline::statement(&settings()?, member, *as_of).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Liability(args) => {
            liability::run(&settings()?, args).await?;
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
        Commands::Program(args) => {
            let found = program::run(&settings()?, args).await?;
            Ok(if found {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Commands::WhatIf(args) => {
            what_if::run(&settings()?, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Member(args) => {
            privacy::run(&settings()?, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Demo(args) => {
            demo::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
