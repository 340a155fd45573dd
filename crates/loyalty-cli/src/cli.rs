//! The command line.
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};
use loyalty_server::import::PointsMode;

#[derive(Debug, Parser)]
#[command(
    name = "loyalty",
    version,
    about = "A loyalty points engine on event sourcing"
)]
pub struct Cli {
    /// The settings file; `LOYALTY_...` environment variables override it
    /// (e.g. LOYALTY_SERVER__LISTEN=127.0.0.1:0, LOYALTY_STORE__PATH=data/x.sqlite).
    #[arg(long, global = true, default_value = "config/loyalty.toml")]
    pub config: PathBuf,
    /// Logs as JSON lines instead of text (RUST_LOG selects what is logged).
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Serve the HTTP API until Ctrl-C or SIGTERM.
    Serve,
    /// Rebuild every projection from the log and print totals.
    Replay,
    /// Replay into fresh projections and compare with the live ones; exit 1 on any difference.
    /// With --chain and/or --anchor FILE, verify the log itself instead (hash chain, anchor).
    Verify(crate::audit::VerifyArgs),
    /// Verify the hash chain and print a signed anchor of it (JSON) to keep outside the system.
    Anchor(crate::audit::AnchorArgs),
    /// The auditors' keys: `keygen FILE`.
    Audit(crate::audit::AuditArgs),
    /// Print a member's statement (profile and history), or balance and tier as of an instant.
    Statement {
        member: String,
        /// RFC 3339 instant, e.g. 2026-12-31T23:59:59Z.
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
    },
    /// Print the points liability as of an instant: outstanding points by expiry bucket, their
    /// value and the breakage estimate, as a table (or CSV with --csv, JSON with --json).
    Liability(crate::liability::LiabilityArgs),
    /// Enroll members and post purchases, refunds and redemptions to a running server.
    Demo(DemoArgs),
    /// Retention analytics from the read models, as tables (or JSON with --json).
    Analytics(AnalyticsArgs),
    /// Import a legacy program's history (members, purchases, refunds, opening balances) from
    /// CSV or NDJSON: all rows or none; running it again imports nothing twice.
    Import(ImportArgs),
    /// The versions of the program rules recorded in the log: `history`, `show VERSION`.
    Program(crate::program::ProgramArgs),
    /// Decide the commands recorded in a period again under another program, in memory
    /// (nothing is appended), and compare with what was recorded: points issued, redeemed,
    /// expired, liability, tiers, members better or worse off.
    WhatIf(crate::what_if::WhatIfArgs),
    /// A member's data rights: `export ID [--out FILE]`, `erase ID --reason CODE [--operator
    /// NAME]` (on the configured store, without the server).
    Member(crate::privacy::MemberArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file (`.csv`, or `.ndjson`/`.jsonl`).
    pub file: PathBuf,
    /// The file's format (by default from its extension).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// How historical purchases earn: by today's rules, nothing (history for the analytics and
    /// tier qualification; balances come as `balance` rows), or the `points` column.
    /// (rules, none or explicit)
    #[arg(long, value_parser = api_name::<PointsMode>)]
    pub points: PointsMode,
    /// Names the batch in the imported events' metadata (default: the file's name).
    #[arg(long)]
    pub batch_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    Csv,
    Ndjson,
}

#[derive(Debug, Clone, Args)]
pub struct AnalyticsArgs {
    /// Print the report as JSON (the HTTP API's shape) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub report: AnalyticsReport,
}

#[derive(Debug, Clone, Args)]
pub struct PeriodArgs {
    /// month, quarter or year.
    #[arg(long, default_value = "month", value_parser = api_name::<loyalty_analytics::PeriodKind>)]
    pub period: loyalty_analytics::PeriodKind,
    /// A day of the first period (default: a year before --to).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// A day of the last period (default: today in the program's timezone).
    #[arg(long)]
    pub to: Option<NaiveDate>,
}

/// A value of an enum the HTTP API takes too, by the same (serde) name: `month`, `none`...
fn api_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Subcommand)]
pub enum AnalyticsReport {
    /// Retention, churn and revenue at risk per period.
    Retention(PeriodArgs),
    /// Enrollment cohorts and the share of each that bought in every later period.
    Cohorts(PeriodArgs),
    /// The share of net spend from the top 1, 5, 10, 20 and 50% of members.
    Concentration,
    /// RFM quintile scores per member.
    Rfm {
        /// Members shown (by id).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Members after this id.
        #[arg(long)]
        after: Option<String>,
    },
    /// The BG/NBD and Gamma-Gamma models fitted on the purchase history.
    Model {
        /// The last day of history fitted on (default: yesterday).
        #[arg(long)]
        calibration_end: Option<NaiveDate>,
    },
    /// Fit up to a date, predict the purchases after it, compare with what happened.
    Backtest {
        #[arg(long)]
        calibration_end: NaiveDate,
        /// The holdout's last day (default: today).
        #[arg(long)]
        holdout_end: Option<NaiveDate>,
    },
    /// Members probably gone, by value at risk.
    AtRisk {
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// One member's P(alive), expected purchases and lifetime value.
    Member { member: String },
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Members to enroll.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub members: u32,
    /// Purchases to post (spread over the members).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub purchases: u32,
    /// Seed of the pseudo-random stream (the same seed posts the same stream).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The store the demo terminal posts for (its key must be bound to it).
    #[arg(long, default_value = "paris-marais")]
    pub store: String,
    /// Currency of the purchases (the program's).
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// The terminal key (demo-only default).
    #[arg(long, default_value = "demo-terminal-key")]
    pub terminal_key: String,
    /// The app key (demo-only default).
    #[arg(long, default_value = "demo-app-key")]
    pub app_key: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn liability_requires_an_instant_and_statement_takes_an_optional_one() {
        assert!(Cli::try_parse_from(["loyalty", "liability"]).is_err());
        let cli = Cli::try_parse_from([
            "loyalty",
            "statement",
            "alice",
            "--as-of",
            "2026-12-31T23:59:59Z",
        ])
        .expect("a statement with --as-of parses");
        match cli.command {
            Commands::Statement { member, as_of } => {
                assert_eq!(member, "alice");
                assert!(as_of.is_some());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_settings_file_defaults_to_config_loyalty_toml() {
        let cli = Cli::try_parse_from(["loyalty", "verify"]).unwrap();
        assert_eq!(cli.config, PathBuf::from("config/loyalty.toml"));
    }

    #[test]
    fn verify_checks_the_read_models_unless_asked_for_the_chain_or_an_anchor() {
        let plain = Cli::try_parse_from(["loyalty", "verify"]).unwrap();
        assert!(matches!(
            plain.command,
            Commands::Verify(crate::audit::VerifyArgs {
                chain: false,
                anchor: None,
                ..
            })
        ));
        let cli = Cli::try_parse_from([
            "loyalty",
            "verify",
            "--chain",
            "--anchor",
            "a.json",
            "--public-key",
            "ab",
        ]);
        match cli.unwrap().command {
            Commands::Verify(args) => {
                assert!(args.chain);
                assert_eq!(args.anchor, Some(PathBuf::from("a.json")));
                assert_eq!(args.public_key.as_deref(), Some("ab"));
            }
            other => panic!("parsed as {other:?}"),
        }
        // A trusted key means nothing without an anchor to check.
        assert!(Cli::try_parse_from(["loyalty", "verify", "--public-key", "ab"]).is_err());
    }
}
