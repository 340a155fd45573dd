//! The auditors' tools on the log itself (see `loyalty_engine::chain`):
//!
//! - `loyalty audit keygen FILE`: a new Ed25519 signing key for anchors, as a PKCS#8 PEM file
//!   (the standard form: `openssl genpkey -algorithm ed25519` writes the same), created with
//!   mode 0600 and never over an existing file; prints the public key (hex) to give auditors;
//! - `loyalty anchor [--out FILE]`: verifies the chain, then signs an anchor with the key of
//!   `[audit] signing_key_file`, and prints it as JSON (or writes it to a new file);
//! - `loyalty verify --chain`: verifies the store's hash chain; exit 1 naming the first event
//!   that does not match (position, stream, revision, reason);
//! - `loyalty verify --anchor FILE [--public-key HEX]`: exit 1 when the anchor's signature
//!   does not verify (by that key, when given) or the log up to it changed.
//!
//! They read the store directly: no read model is rebuilt.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use loyalty_engine::chain::{
    Anchor, AnchorVerdict, anchor_store, describe_mismatch, verify_anchor_store, verify_store,
};
use loyalty_engine::{Clock, SystemClock};
use loyalty_store::chain::ChainReport;
use serde_json::{Value, json};

use crate::runtime::open_store_to_read;
use crate::settings::Settings;

/// Largest key or anchor file read: both are well under a kilobyte.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Write a new Ed25519 key for signing anchors to FILE (PKCS#8 PEM, mode 0600, never over
    /// an existing file) and print its public key (hex).
    Keygen { file: PathBuf },
}

#[derive(Debug, Clone, Args)]
pub struct AnchorArgs {
    /// Write the anchor to this new file instead of printing it (an existing file is kept).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct VerifyArgs {
    /// Verify the log's hash chain instead of the read models; exit 1 naming the first event
    /// that does not match.
    #[arg(long)]
    pub chain: bool,
    /// Verify a signed anchor (from `loyalty anchor`): exit 1 when its signature does not
    /// verify or the log up to it changed.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
    /// The public key (hex) the anchor must be signed by. Default: the key of
    /// `[audit] signing_key_file` when set; without either, `--anchor` is refused (the key an
    /// anchor names proves nothing by itself).
    #[arg(long, value_name = "HEX", requires = "anchor")]
    pub public_key: Option<String>,
}

/// `loyalty audit ...`.
pub fn run(args: &AuditArgs) -> anyhow::Result<()> {
    match &args.command {
        AuditCommand::Keygen { file } => {
            let public = keygen(file)?;
            println!("{}", hex::encode(public.as_bytes()));
            eprintln!(
                "wrote the signing key to {} (keep it secret; give auditors the public key above)",
                file.display()
            );
            Ok(())
        }
    }
}

/// Writes a new signing key to `file`, which must not exist; returns its public key.
pub fn keygen(file: &Path) -> anyhow::Result<VerifyingKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    // The seed alone (PKCS#8 v1, RFC 8410): the form OpenSSL writes and, unlike the v2 form
    // with the public key, reads (3.0 refuses v2 Ed25519 keys).
    let pem = KeypairBytes {
        secret_key: seed,
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|e| anyhow::anyhow!("encoding the key: {e}"))?;
    seed.fill(0);
    write_new(file, pem.as_bytes(), true)
        .with_context(|| format!("writing the signing key to {}", file.display()))?;
    Ok(key.verifying_key())
}

/// Creates `file` (refusing an existing one) with `bytes`, readable by its owner only when
/// `secret`, and makes it durable.
pub(crate) fn write_new(file: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut out = options.open(file)?;
    out.write_all(bytes)?;
    out.sync_all()
}

/// Reads a small file whole, refusing one larger than [`MAX_FILE_BYTES`].
fn read_small(file: &Path, what: &str) -> anyhow::Result<String> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading the {what} {}", file.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        bail!(
            "the {what} {} holds {size} bytes, more than a {what} ever does ({MAX_FILE_BYTES})",
            file.display()
        );
    }
    std::fs::read_to_string(file).with_context(|| format!("reading the {what} {}", file.display()))
}

/// The signing key of `[audit] signing_key_file`, if set.
fn configured_key(settings: &Settings) -> anyhow::Result<Option<SigningKey>> {
    let Some(file) = &settings.audit.signing_key_file else {
        return Ok(None);
    };
    let pem = read_small(file, "signing key")?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "audit.signing_key_file {} is not an Ed25519 key in PKCS#8 PEM: {e}",
            file.display()
        )
    })?;
    Ok(Some(key))
}

/// `loyalty anchor [--out FILE]`.
pub async fn anchor(settings: &Settings, args: &AnchorArgs) -> anyhow::Result<()> {
    let key = configured_key(settings)?.context(
        "no signing key: set [audit] signing_key_file (write one with `loyalty audit keygen FILE`)",
    )?;
    let store = open_store_to_read(settings).await?;
    let anchor = anchor_store(store.as_ref(), &key, SystemClock.now())
        .await
        .context("signing an anchor")?;
    let text = format!("{}\n", serde_json::to_string_pretty(&anchor)?);
    match &args.out {
        Some(file) => {
            write_new(file, text.as_bytes(), false)
                .with_context(|| format!("writing the anchor to {}", file.display()))?;
            eprintln!(
                "anchor: {} events up to position {}, written to {}",
                anchor.events,
                anchor.position,
                file.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `loyalty verify --chain` and/or `--anchor FILE`: prints what was found as JSON and a line
/// for each check on stderr; returns whether every check passed.
pub async fn verify(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<bool> {
    let trusted = match &args.public_key {
        Some(text) => Some(parse_public_key(text)?),
        None => configured_key(settings)?.map(|k| k.verifying_key()),
    };
    let anchor = match &args.anchor {
        Some(file) => {
            let text = read_small(file, "anchor")?;
            let anchor: Anchor = serde_json::from_str(&text)
                .with_context(|| format!("the anchor {} is not an anchor", file.display()))?;
            Some(anchor)
        }
        None => None,
    };
    let store = open_store_to_read(settings).await?;
    let mut out = serde_json::Map::new();
    let mut passed = true;
    if args.chain {
        let report = verify_store(store.as_ref(), None)
            .await
            .context("verifying the hash chain")?;
        match &report.mismatch {
            None => eprintln!(
                "verify --chain: the chain verifies: {} events linked ({} checked, {} truncated){}",
                report.links,
                report.events_checked,
                report.truncated,
                if report.derived {
                    " (derived from $all: this store keeps no chain)"
                } else {
                    ""
                }
            ),
            Some(mismatch) => {
                passed = false;
                eprintln!(
                    "verify --chain: {} does not match",
                    describe_mismatch(mismatch)
                );
            }
        }
        out.insert("chain".into(), report_json(&report));
    }
    if let Some(anchor) = &anchor {
        // The key an anchor names proves nothing by itself: whoever rewrote the log can sign a
        // new anchor with a key of their own. Only a key the auditor trusts makes it evidence.
        if trusted.is_none() {
            bail!(
                "verify --anchor needs the key the anchor must be signed by: --public-key HEX \
                 (as `loyalty audit keygen` printed it), or [audit] signing_key_file"
            );
        }
        let verdict = verify_anchor_store(store.as_ref(), anchor, trusted)
            .await
            .context("verifying the anchor")?;
        eprintln!("verify --anchor: {verdict}");
        passed &= verdict.holds();
        let report = match &verdict {
            AnchorVerdict::Holds(report) | AnchorVerdict::LogChanged { report, .. } => {
                report_json(report)
            }
            _ => Value::Null,
        };
        out.insert(
            "anchor".into(),
            json!({
                "holds": verdict.holds(),
                "verdict": verdict.to_string(),
                "position": anchor.position.to_string(),
                "events": anchor.events,
                "root": anchor.root,
                "chain": report,
            }),
        );
    }
    println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    Ok(passed)
}

fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--public-key: expected 64 hex digits (an Ed25519 public key)")?;
    VerifyingKey::from_bytes(&bytes).context("--public-key is not an Ed25519 public key")
}

fn report_json(report: &ChainReport) -> Value {
    json!({
        "verified": report.mismatch.is_none(),
        "derived": report.derived,
        "links": report.links,
        "events_checked": report.events_checked,
        "truncated": report.truncated,
        "head": report.head.as_ref().map(|h| json!({
            "position": h.position.to_string(),
            "chain_hash": hex::encode(h.chain_hash),
        })),
        "mismatch": report.mismatch.as_ref().map(|m| json!({
            "position": m.position.to_string(),
            "stream": m.stream,
            "revision": m.revision,
            "reason": m.reason,
        })),
    })
}
