//! The auditors' proof that the log was not edited: the store's hash chain verified
//! ([`Engine::verify_chain`]), and anchors, signed checkpoints of the chain that an auditor
//! keeps outside the system ([`Engine::anchor`], [`Engine::verify_anchor`]).
//!
//! An anchor says "up to this position the log held this many events and its chain's hash was
//! this root", at a time, signed with the operator's Ed25519 key:
//!
//! ```json
//! { "format": "loyalty-anchor-v1", "position": "1042/1042", "events": 1042,
//!   "root": "<64 hex>", "time": "2026-12-31T23:59:59Z", "public_key": "<64 hex>",
//!   "signature": "<128 hex>" }
//! ```
//!
//! The signature is over [`signed_text`]: the other fields, one per line, in that order, each
//! as `name value` with hashes and keys in lowercase hex and the time in RFC 3339 UTC (so a
//! reformatted JSON file still verifies, and an edited field does not). Verifying an anchor
//! checks the signature (and, when the auditor names it, that the key is the one they trust),
//! then walks the chain up to the anchor's position and compares its hash and length with the
//! anchor's: any event before that position changed, removed or inserted since, or a chain
//! rewritten to match an edit, shows as a different root.
//!
//! On a store that does not keep the chain (EventStoreDB) the chain is derived from `$all` as
//! it is read: an anchor holds there between scavenges (a scavenge removes truncated events
//! from `$all`, which changes the derived chain).
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use loyalty_store::chain::{self, ChainMismatch, ChainReport, GENESIS, Hash, VerifyOptions};
use loyalty_store::{EventStore, Position};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::EngineError;

/// The format of anchors this build writes and reads.
pub const ANCHOR_FORMAT: &str = "loyalty-anchor-v1";

/// loyalty-webhooks' delivery logs (`loyalty_webhooks::LOG_PREFIX`). That crate is built on
/// this one, so the name is repeated here; the CLI's audit tests, which see both, check that
/// they agree.
pub const WEBHOOK_LOG_PREFIX: &str = "webhook-log-";

/// The streams whose early events are truncated on purpose (`truncate_before`), every one of
/// them bookkeeping kept short: read-model and process checkpoints, leases, write probes,
/// member snapshots, webhook delivery logs. Their links stay in the chain when their events
/// go, and a missing event there is not a tampering. In every other stream (members,
/// reservations, programs, webhook endpoints...) nothing is ever truncated, so an event gone
/// from the log is named as a deletion.
pub const TRUNCATED_PREFIXES: &[&str] = &[
    crate::checkpoint::CHECKPOINT_PREFIX,
    crate::lease::LEASE_PREFIX,
    crate::health::HEALTH_PREFIX,
    crate::member_snapshot::SNAPSHOT_PREFIX,
    WEBHOOK_LOG_PREFIX,
];

/// Whether the engine (or a crate built on it) truncates `stream`.
pub fn may_truncate(stream: &str) -> bool {
    TRUNCATED_PREFIXES.iter().any(|p| stream.starts_with(p))
}

/// Walks the store's chain (up to `up_to`, inclusive, or to its end) against the log.
pub async fn verify_store(
    store: &dyn EventStore,
    up_to: Option<Position>,
) -> Result<ChainReport, EngineError> {
    let options = VerifyOptions {
        up_to,
        may_truncate: &may_truncate,
    };
    Ok(chain::verify(store, options).await?)
}

/// A signed checkpoint of the chain (see the module's documentation). `position` is written
/// as `"commit/prepare"`, like every position the engine shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub format: String,
    #[serde(with = "position_string")]
    pub position: Position,
    /// Events chained up to `position`, truncated ones included.
    pub events: u64,
    /// The chain's hash at `position`, lowercase hex (GENESIS, all zeros, for an empty log).
    pub root: String,
    /// When it was signed, by the server's clock.
    pub time: DateTime<Utc>,
    /// The Ed25519 key that signed it, hex.
    pub public_key: String,
    /// Ed25519 over [`signed_text`], hex.
    pub signature: String,
}

/// What is signed: every field of the anchor but the signature, one per line.
pub fn signed_text(
    position: Position,
    events: u64,
    root: &Hash,
    time: DateTime<Utc>,
    public_key: &VerifyingKey,
) -> String {
    format!(
        "{ANCHOR_FORMAT}\nposition {position}\nevents {events}\nroot {}\ntime {}\npublic_key {}\n",
        hex::encode(root),
        time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        hex::encode(public_key.as_bytes()),
    )
}

/// Signs the chain as it stands: verifies it first, and refuses (with
/// [`EngineError::Corrupt`] naming the first event that does not match) to sign a log that
/// does not verify.
pub async fn anchor_store(
    store: &dyn EventStore,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<Anchor, EngineError> {
    let report = verify_store(store, None).await?;
    if let Some(mismatch) = &report.mismatch {
        return Err(EngineError::Corrupt(format!(
            "the log does not verify, so no anchor was signed: {}",
            describe_mismatch(mismatch)
        )));
    }
    let (position, root) = report
        .head
        .as_ref()
        .map_or((Position::START, GENESIS), |h| (h.position, h.chain_hash));
    let public_key = key.verifying_key();
    let text = signed_text(position, report.links, &root, now, &public_key);
    let signature = key.sign(text.as_bytes());
    Ok(Anchor {
        format: ANCHOR_FORMAT.to_owned(),
        position,
        events: report.links,
        root: hex::encode(root),
        time: now,
        public_key: hex::encode(public_key.as_bytes()),
        signature: hex::encode(signature.to_bytes()),
    })
}

/// What checking an anchor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorVerdict {
    /// The signature verifies, and the log up to the anchor's position is what was signed.
    Holds(ChainReport),
    /// The anchor cannot be read: another format, or a key, hash or signature that is not one.
    Malformed(String),
    /// The signature is by another key than the trusted one.
    UntrustedKey { signed_by: String, trusted: String },
    /// The signature does not verify over the anchor's fields: the anchor was edited.
    BadSignature,
    /// The log up to the anchor's position is not what was signed.
    LogChanged { reason: String, report: ChainReport },
}

impl AnchorVerdict {
    pub fn holds(&self) -> bool {
        matches!(self, Self::Holds(_))
    }
}

impl fmt::Display for AnchorVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Holds(report) => write!(
                f,
                "the anchor holds: the log up to it is unchanged ({} events checked)",
                report.events_checked
            ),
            Self::Malformed(why) => write!(f, "the anchor cannot be read: {why}"),
            Self::UntrustedKey { signed_by, trusted } => write!(
                f,
                "the anchor is signed by the key {signed_by}, not by the trusted key {trusted}"
            ),
            Self::BadSignature => f.write_str(
                "the anchor's signature does not verify: the anchor was changed after signing",
            ),
            Self::LogChanged { reason, .. } => {
                write!(f, "the log up to the anchor has changed: {reason}")
            }
        }
    }
}

/// `position 12/12 (stream member-ana, revision 3): reason`.
pub fn describe_mismatch(m: &ChainMismatch) -> String {
    format!(
        "event at position {} (stream {}, revision {}): {}",
        m.position, m.stream, m.revision, m.reason
    )
}

fn hex_array<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(text).map_err(|e| format!("{what} is not hex: {e}"))?;
    let length = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{what} holds {length} bytes, not {N}"))
}

/// Checks `anchor`'s signature (by `trusted` when given), then that the log up to its position
/// has its root and length.
pub async fn verify_anchor_store(
    store: &dyn EventStore,
    anchor: &Anchor,
    trusted: Option<VerifyingKey>,
) -> Result<AnchorVerdict, EngineError> {
    if anchor.format != ANCHOR_FORMAT {
        return Ok(AnchorVerdict::Malformed(format!(
            "format {:?}, where this build reads {ANCHOR_FORMAT:?}",
            anchor.format
        )));
    }
    let parsed = (|| {
        let key = VerifyingKey::from_bytes(&hex_array(&anchor.public_key, "public_key")?)
            .map_err(|_| "public_key is not an Ed25519 public key".to_owned())?;
        let signature = Signature::from_bytes(&hex_array(&anchor.signature, "signature")?);
        let root: Hash = hex_array(&anchor.root, "root")?;
        Ok::<_, String>((key, signature, root))
    })();
    let (key, signature, root) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return Ok(AnchorVerdict::Malformed(why)),
    };
    if let Some(trusted) = trusted
        && trusted != key
    {
        return Ok(AnchorVerdict::UntrustedKey {
            signed_by: hex::encode(key.as_bytes()),
            trusted: hex::encode(trusted.as_bytes()),
        });
    }
    let text = signed_text(anchor.position, anchor.events, &root, anchor.time, &key);
    if key.verify_strict(text.as_bytes(), &signature).is_err() {
        return Ok(AnchorVerdict::BadSignature);
    }
    let report = verify_store(store, Some(anchor.position)).await?;
    let (position, hash) = report
        .head
        .as_ref()
        .map_or((Position::START, GENESIS), |h| (h.position, h.chain_hash));
    let reason = if let Some(mismatch) = &report.mismatch {
        Some(describe_mismatch(mismatch))
    } else if position != anchor.position {
        Some(format!(
            "the chain up to position {} ends at position {position}",
            anchor.position
        ))
    } else if hash != root || report.links != anchor.events {
        Some(format!(
            "at position {position} the chain's hash is {} over {} events, the anchor signed {} \
             over {} events: events before it were changed, removed or inserted",
            hex::encode(hash),
            report.links,
            anchor.root,
            anchor.events
        ))
    } else {
        None
    };
    Ok(match reason {
        Some(reason) => AnchorVerdict::LogChanged { reason, report },
        None => AnchorVerdict::Holds(report),
    })
}

impl Engine {
    /// Verifies the store's hash chain against the log, up to `up_to` (inclusive) or to its
    /// end, stopping at the first event that does not match (`mismatch`).
    pub async fn verify_chain(&self, up_to: Option<Position>) -> Result<ChainReport, EngineError> {
        verify_store(self.inner.store.as_ref(), up_to).await
    }

    /// Signs an anchor of the chain as it stands, timed by the engine's clock; refuses a log
    /// that does not verify.
    pub async fn anchor(&self, key: &SigningKey) -> Result<Anchor, EngineError> {
        anchor_store(self.inner.store.as_ref(), key, self.inner.clock.now()).await
    }

    /// Checks an anchor against this log (see [`verify_anchor_store`]).
    pub async fn verify_anchor(
        &self,
        anchor: &Anchor,
        trusted: Option<VerifyingKey>,
    ) -> Result<AnchorVerdict, EngineError> {
        verify_anchor_store(self.inner.store.as_ref(), anchor, trusted).await
    }
}

/// Positions as `"commit/prepare"` both ways.
mod position_string {
    use loyalty_store::Position;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(position: &Position, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(position)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Position, D::Error> {
        let text = String::deserialize(d)?;
        crate::views::parse_position(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a position (commit/prepare)"))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use loyalty_core::{Command, Enroll, MemberId, Program};
    use loyalty_store::{Bytes, EventData, ExpectedRevision, InMemoryStore, Uuid};

    use super::*;
    use crate::{EngineOptions, ManualClock, RandomIds};

    const DEMO: &str = include_str!("../../../config/program.toml");

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap()
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    async fn engine(store: Arc<InMemoryStore>) -> Engine {
        let program = Program::from_toml_str(DEMO).expect("the demo program");
        Engine::start(
            store,
            Arc::new(program),
            Arc::new(ManualClock::new(t0())),
            Arc::new(RandomIds),
            EngineOptions::default(),
        )
        .await
        .expect("the engine starts")
    }

    /// An engine over a store where `members` enrolled.
    async fn with_members(members: &[&str]) -> (Engine, Arc<InMemoryStore>) {
        let store = Arc::new(InMemoryStore::new());
        let engine = engine(store.clone()).await;
        for id in members {
            engine
                .execute(Command::Enroll(Enroll {
                    member_id: MemberId::parse(*id).unwrap(),
                    referrer: None,
                    occurred_at: t0(),
                }))
                .await
                .expect("enrolled");
        }
        (engine, store)
    }

    fn bookkeeping_event(n: u64) -> EventData {
        EventData {
            id: Uuid::new_v4(),
            event_type: "CheckpointStored".to_owned(),
            schema_version: 1,
            data: Bytes::from(format!(r#"{{"n":{n}}}"#)),
            metadata: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn only_the_engines_bookkeeping_streams_may_be_truncated() {
        for stream in [
            "checkpoint-referrals",
            "lease-scheduler",
            "health-0b0e",
            "snapshot-ana",
            "webhook-log-ep_1",
        ] {
            assert!(may_truncate(stream), "{stream}");
        }
        for stream in [
            "member-ana",
            "txn-paris/T1",
            "webhooks",
            "program",
            "leases",
        ] {
            assert!(!may_truncate(stream), "{stream}");
        }
    }

    #[tokio::test]
    async fn a_log_written_by_the_engine_verifies_to_its_head() {
        // Given three members enrolled
        let (engine, store) = with_members(&["ana", "ben", "cy"]).await;
        let head = store.head_position().await.unwrap();
        // When the chain is verified
        let report = engine.verify_chain(None).await.unwrap();
        // Then every event is linked and checked, up to the head of the log
        assert_eq!(report.mismatch, None);
        assert!(!report.derived);
        assert!(report.links >= 3, "{report:?}");
        assert_eq!(report.events_checked, report.links);
        assert_eq!(report.head.map(|h| h.position), Some(head));
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn truncated_bookkeeping_passes_and_a_truncated_member_stream_is_named() {
        // Given a log with members and a checkpoint stream truncated as the engine does
        let (engine, store) = with_members(&["ana", "ben"]).await;
        for n in 0..3 {
            store
                .append(
                    "checkpoint-test",
                    ExpectedRevision::Any,
                    vec![bookkeeping_event(n)],
                )
                .await
                .unwrap();
        }
        store.truncate_before("checkpoint-test", 2).await.unwrap();
        // Then the chain verifies, counting the two events gone
        let report = engine.verify_chain(None).await.unwrap();
        assert_eq!(report.mismatch, None, "{report:?}");
        assert_eq!(report.truncated, 2);
        // When ana's first event is removed from the log
        store.truncate_before("member-ana", 1).await.unwrap();
        // Then verify names it, and no anchor is signed
        let report = engine.verify_chain(None).await.unwrap();
        let mismatch = report.mismatch.expect("the deletion is found");
        assert_eq!(
            (mismatch.stream.as_str(), mismatch.revision),
            ("member-ana", 0)
        );
        let refused = engine.anchor(&key(1)).await.unwrap_err();
        assert!(refused.to_string().contains("member-ana"), "{refused}");
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn an_anchor_holds_while_the_log_grows_and_survives_a_json_round_trip() {
        // Given an anchor signed on a log of two members
        let (engine, _store) = with_members(&["ana", "ben"]).await;
        let anchor = engine.anchor(&key(1)).await.unwrap();
        assert_eq!(anchor.format, ANCHOR_FORMAT);
        assert_eq!(anchor.time, t0());
        assert_eq!(
            anchor.public_key,
            hex::encode(key(1).verifying_key().as_bytes())
        );
        // When it is written as JSON and read back, and the log grows
        let json = serde_json::to_value(&anchor).unwrap();
        assert_eq!(json["position"], anchor.position.to_string());
        let read: Anchor = serde_json::from_value(json).unwrap();
        assert_eq!(read, anchor);
        engine
            .execute(Command::Enroll(Enroll {
                member_id: MemberId::parse("cy").unwrap(),
                referrer: None,
                occurred_at: t0(),
            }))
            .await
            .unwrap();
        // Then it still holds, by the signer's key
        let verdict = engine
            .verify_anchor(&read, Some(key(1).verifying_key()))
            .await
            .unwrap();
        assert!(verdict.holds(), "{verdict}");
        // And a new anchor covers more events
        let later = engine.anchor(&key(1)).await.unwrap();
        assert!(later.events > anchor.events);
        assert!(later.position > anchor.position);
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn an_edited_anchor_or_another_key_does_not_verify() {
        let (engine, _store) = with_members(&["ana"]).await;
        let anchor = engine.anchor(&key(1)).await.unwrap();
        // An anchor claiming one event less, or signed at another time: the signature fails
        let fewer = Anchor {
            events: anchor.events - 1,
            ..anchor.clone()
        };
        let later = Anchor {
            time: anchor.time + chrono::TimeDelta::seconds(1),
            ..anchor.clone()
        };
        for edited in [fewer, later] {
            let verdict = engine.verify_anchor(&edited, None).await.unwrap();
            assert_eq!(verdict, AnchorVerdict::BadSignature);
        }
        // Another key than the trusted one
        let verdict = engine
            .verify_anchor(&anchor, Some(key(2).verifying_key()))
            .await
            .unwrap();
        assert!(
            matches!(verdict, AnchorVerdict::UntrustedKey { .. }),
            "{verdict}"
        );
        // Another format, or a signature that is not hex
        let other_format = Anchor {
            format: "loyalty-anchor-v0".to_owned(),
            ..anchor.clone()
        };
        let garbled = Anchor {
            signature: "zz".to_owned(),
            ..anchor.clone()
        };
        for malformed in [other_format, garbled] {
            let verdict = engine.verify_anchor(&malformed, None).await.unwrap();
            assert!(matches!(verdict, AnchorVerdict::Malformed(_)), "{verdict}");
        }
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn an_anchor_of_another_history_of_the_same_length_does_not_hold() {
        // Given an anchor of a log where ana and ben enrolled
        let (first, _) = with_members(&["ana", "ben"]).await;
        let anchor = first.anchor(&key(1)).await.unwrap();
        first.shutdown().await;
        // When it is checked against a log where ana and bea enrolled (as long, one name off)
        let (second, _) = with_members(&["ana", "bea"]).await;
        let verdict = second
            .verify_anchor(&anchor, Some(key(1).verifying_key()))
            .await
            .unwrap();
        // Then the signature verifies but the log is not the one signed
        match &verdict {
            AnchorVerdict::LogChanged { reason, report } => {
                assert!(reason.contains("changed, removed or inserted"), "{reason}");
                assert_eq!(report.links, anchor.events);
            }
            other => panic!("expected LogChanged, got {other}"),
        }
        second.shutdown().await;
    }
}
