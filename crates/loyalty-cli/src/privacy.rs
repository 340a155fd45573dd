//! `loyalty member export ID [--out FILE]` and `loyalty member erase ID --reason CODE
//! [--operator NAME]`: a member's data rights, on the configured store directly, answered in
//! the same JSON as `GET /v1/members/{member_id}/export` and
//! `POST /v1/members/{member_id}/erasure`.
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use loyalty_core::{MemberId, OperatorId, ReasonCode};
use loyalty_engine::{CommandContext, SystemClock};
use loyalty_server::wire::privacy::{ErasureReport, MemberExport};

use crate::offline::print_json;
use crate::runtime::{start_engine, start_read_only_engine};
use crate::settings::Settings;

/// The operator recorded when `--operator` is not given.
pub const DEFAULT_OPERATOR: &str = "cli";

#[derive(Debug, Clone, Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum MemberCommand {
    /// Everything held about a member (profile, every event with its support note opened, the
    /// erasures), as pretty JSON on stdout or in --out FILE.
    Export {
        member: String,
        /// Write the JSON to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase a member's personal data: destroys their data keys, so their support notes can
    /// never be read again, and records the erasure in the log. Points and balances stay.
    /// Prints what was done (JSON).
    Erase {
        member: String,
        /// Why, recorded in the log (an id, such as `member-request`).
        #[arg(long)]
        reason: String,
        /// Who, recorded in the log (an id).
        #[arg(long, default_value = DEFAULT_OPERATOR)]
        operator: String,
    },
}

/// Runs `loyalty member ...`.
pub async fn run(settings: &Settings, args: &MemberArgs) -> anyhow::Result<()> {
    match &args.command {
        MemberCommand::Export { member, out } => export(settings, member, out.as_ref()).await,
        MemberCommand::Erase {
            member,
            reason,
            operator,
        } => erase(settings, member, reason, operator).await,
    }
}

async fn export(settings: &Settings, member: &str, out: Option<&PathBuf>) -> anyhow::Result<()> {
    let member = MemberId::parse(member).context("member id")?;
    // The export reads the log (the member's stream, their erasures, their balance replayed
    // from it), not the read models: no catching up, and nothing written.
    let engine = start_read_only_engine(settings, Arc::new(SystemClock)).await?;
    let export = engine.export_member(&member).await;
    engine.shutdown().await;
    let export = export.with_context(|| format!("exporting member {member}"))?;
    let wire = MemberExport::from(&export);
    match out {
        Some(path) => {
            let mut text = serde_json::to_string_pretty(&wire)?;
            text.push('\n');
            // Personal data in clear: readable by its owner only, and never over another file.
            crate::audit::write_new(path, text.as_bytes(), true)
                .with_context(|| format!("writing {} (a new file)", path.display()))?;
            eprintln!(
                "member {member}: {} events exported to {}",
                wire.events.len(),
                path.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", serde_json::to_string_pretty(&wire)?)?;
        }
    }
    Ok(())
}

async fn erase(
    settings: &Settings,
    member: &str,
    reason: &str,
    operator: &str,
) -> anyhow::Result<()> {
    let member = MemberId::parse(member).context("member id")?;
    let reason = ReasonCode::parse(reason).context("--reason")?;
    let operator = OperatorId::parse(operator).context("--operator")?;
    // The erasure reads the member's stream and the key vault, not the read models; it
    // writes (the keys' destruction, its record in the log).
    let engine = start_engine(settings, Arc::new(SystemClock)).await?;
    let context = CommandContext::new().with_actor(format!("cli:{operator}"));
    let report = engine
        .erase_member(&member, reason, operator, &context)
        .await;
    engine.shutdown().await;
    let report = report.with_context(|| format!("erasing member {member}'s personal data"))?;
    print_json(&ErasureReport::from(&report))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Commands};

    #[test]
    fn an_erasure_needs_a_reason_and_is_recorded_as_the_clis_unless_an_operator_is_named() {
        assert!(Cli::try_parse_from(["loyalty", "member", "erase", "m1"]).is_err());
        let cli = Cli::try_parse_from(["loyalty", "member", "erase", "m1", "--reason", "r"])
            .expect("an erasure with a reason parses");
        match cli.command {
            Commands::Member(MemberArgs {
                command:
                    MemberCommand::Erase {
                        member,
                        reason,
                        operator,
                    },
            }) => {
                assert_eq!((member.as_str(), reason.as_str()), ("m1", "r"));
                assert_eq!(operator, DEFAULT_OPERATOR);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["loyalty", "member", "export", "m1", "--out", "x.json"])
            .expect("an export to a file parses");
        assert!(matches!(
            cli.command,
            Commands::Member(MemberArgs {
                command: MemberCommand::Export { out: Some(_), .. }
            })
        ));
    }
}
