//! `loyalty import FILE`: a legacy program's history (members, purchases, refunds, opening
//! balances) into the configured store, from CSV or NDJSON. Every row is read and decided
//! before anything is appended: a file with a bad row imports nothing, and says which rows and
//! why. Rows are idempotent on their ids: running the same file again imports nothing twice.
//!
//! The columns are those of `loyalty_server::import` (the README lists them too).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::settings::Settings;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use loyalty_engine::{ImportPhase, ImportRow, SystemClock};
use loyalty_server::import::{ImportRowDto, to_command};

use crate::cli::{ImportArgs, ImportFormat};
use crate::runtime::start_engine;

/// Rows with their line numbers, or every line that does not read.
type ReadRows = Result<Vec<(u64, ImportRowDto)>, Vec<String>>;

/// Reads rows with their line numbers; `Err` lists every line that does not read.
fn read_rows(path: &Path, format: ImportFormat) -> anyhow::Result<ReadRows> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.display();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    match format {
        ImportFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(file);
            let headers = reader
                .headers()
                .with_context(|| format!("reading the header of {name}"))?
                .clone();
            for record in reader.records() {
                let parsed = record.and_then(|r| {
                    let line = r.position().map_or(0, |p| p.line());
                    r.deserialize::<ImportRowDto>(Some(&headers))
                        .map(|row| (line, row))
                });
                match parsed {
                    Ok(row) => rows.push(row),
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        errors.push(format!("{name}:{line}: {e}"));
                    }
                }
            }
        }
        ImportFormat::Ndjson => {
            use std::io::BufRead;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let number = i as u64 + 1;
                let line = line.with_context(|| format!("reading {name}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<ImportRowDto>(&line) {
                    Ok(row) => rows.push((number, row)),
                    Err(e) => errors.push(format!("{name}:{number}: {e}")),
                }
            }
        }
    }
    Ok(if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    })
}

/// Runs the import; returns whether every row was imported (or had been).
pub async fn run(settings: &Settings, args: &ImportArgs) -> anyhow::Result<bool> {
    let path = &args.file;
    let format = args
        .format
        .unwrap_or_else(|| match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl") => ImportFormat::Ndjson,
            _ => ImportFormat::Csv,
        });
    let batch_id = args.batch_id.clone().unwrap_or_else(|| {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("import")
            .to_owned()
    });
    let started = Instant::now();
    let raw = match read_rows(path, format)? {
        Ok(rows) => rows,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "import: {} row(s) do not read; nothing imported",
                errors.len()
            );
            return Ok(false);
        }
    };
    let engine = start_engine(settings, Arc::new(SystemClock)).await?;
    let program = engine.program().clone();
    let (tz, currency) = (program.timezone(), program.currency().clone());
    let mut rows = Vec::with_capacity(raw.len());
    let mut errors = Vec::new();
    for (line, row) in &raw {
        match to_command(row, args.points, tz, &currency) {
            Ok((command, award)) => rows.push(ImportRow {
                line: *line,
                command,
                award,
            }),
            Err(e) => errors.push(format!("{}:{line}: {e}", path.display())),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("import: {} row(s) refused; nothing imported", errors.len());
        engine.shutdown().await;
        return Ok(false);
    }
    let total = rows.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:9} {bar:40} {pos}/{len} rows {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let shown = bar.clone();
    let report = engine
        .import(&batch_id, rows, move |phase, n| {
            shown.set_message(match phase {
                ImportPhase::Deciding => "deciding",
                ImportPhase::Appending => "appending",
            });
            shown.set_position(n);
        })
        .await;
    bar.finish_and_clear();
    engine.shutdown().await;
    let report = report.context("importing")?;
    for e in &report.errors {
        eprintln!(
            "{}:{}: member {}: {}",
            path.display(),
            e.line,
            e.member_id,
            e.reason
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    if report.applied() {
        eprintln!(
            "import {batch_id}: {} rows ({} members): {} imported, {} already imported, {} events, in {:.1} s",
            report.rows,
            report.members,
            report.imported,
            report.already_imported,
            report.events_appended,
            seconds
        );
    } else {
        eprintln!(
            "import {batch_id}: {} row(s) refused; nothing imported",
            report.errors_total
        );
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report.applied())
}
