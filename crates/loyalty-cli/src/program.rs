//! `loyalty program history` and `loyalty program show VERSION`: the versions of the program
//! rules recorded in the log (stream `program`), read from the configured store directly. No
//! engine is started, so these commands record nothing, not even the configured program.
use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use loyalty_engine::{ProgramHistory, ProgramLog, ProgramLookup};

use crate::offline::print_json;
use crate::runtime::open_store_to_read;
use crate::settings::Settings;

#[derive(Debug, Clone, Args)]
pub struct ProgramArgs {
    #[command(subcommand)]
    pub command: ProgramCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProgramCommand {
    /// The recorded versions: version, label, when a server first started with it.
    History {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the normalised text of a recorded version (exit 1 when none matches).
    Show {
        /// A version (64 hex digits), a unique prefix of at least 8 of them, or a label
        /// (the latest program recorded with it).
        version: String,
    },
}

/// Runs `loyalty program ...`; returns whether it found what it was asked for.
pub async fn run(settings: &Settings, args: &ProgramArgs) -> anyhow::Result<bool> {
    let store = open_store_to_read(settings).await?;
    let log = ProgramLog::new(store.as_ref());
    match &args.command {
        ProgramCommand::History { json } => {
            let history = log
                .history()
                .await
                .context("reading the recorded programs")?;
            if *json {
                print_json(&history)?;
            } else {
                print!("{}", history_table(&history));
            }
            Ok(true)
        }
        ProgramCommand::Show { version } => {
            match log
                .resolve(version)
                .await
                .context("reading the recorded programs")?
            {
                ProgramLookup::Found(program) => {
                    eprintln!(
                        "program {} ({}), recorded {}",
                        program.info.version,
                        program.info.label.as_deref().unwrap_or("no label"),
                        instant(program.info.recorded_at)
                    );
                    print!("{}", program.text);
                    Ok(true)
                }
                ProgramLookup::Unknown => {
                    eprintln!("no recorded program matches {version:?}");
                    Ok(false)
                }
                ProgramLookup::Ambiguous(versions) => {
                    eprintln!(
                        "{version:?} begins {} recorded versions: give more of it",
                        versions.len()
                    );
                    for v in versions {
                        eprintln!("  {v}");
                    }
                    Ok(false)
                }
            }
        }
    }
}

/// An instant as the table shows it: RFC 3339 to the second, in UTC.
fn instant(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The history as a table, oldest first, with a note when older versions were left out.
pub fn history_table(history: &ProgramHistory) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["version", "label", "recorded at"]);
    for v in &history.versions {
        table.add_row(vec![
            v.version.clone(),
            v.label.clone().unwrap_or_default(),
            instant(v.recorded_at),
        ]);
    }
    let mut out = format!("{table}\n");
    if history.versions.is_empty() {
        out.push_str("no program recorded yet: a server records its program when it starts\n");
    }
    if history.more {
        out.push_str(&format!(
            "older versions not listed: only the newest {} are read\n",
            loyalty_engine::MAX_PROGRAM_VERSIONS
        ));
    }
    out
}
