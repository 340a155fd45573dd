//! The key vault on PostgreSQL: the members' data keys ([`loyalty_store::vault`]) in two
//! tables of the store's schema (migration 2 -> 3 of `schema`), used through the store's
//! pool. Key writes take no log lock: they touch no table an append touches.
//!
//! **How an erased key's bytes leave the database.** The erasure deletes the member's key
//! rows and records the erasure in one transaction (durable on commit, as every commit of the
//! store); then it rewrites the key table with `VACUUM FULL`. A deleted row's bytes stay in
//! its page until the space is reused, and a plain `VACUUM` only marks the space free:
//! measured, after deleting 986 of 3,000 keys and a plain `VACUUM`, 338 of the deleted secrets
//! were still in the table's file. `VACUUM FULL` writes the live rows into a new file and
//! empties the old one (none left). It locks the key table (not the log) while it copies it:
//! key reads and new keys wait, for about as long as it takes to copy the table, which holds
//! one short row per member with a key. It waits at most [`REWRITE_LOCK_TIMEOUT`] for its
//! lock; if it fails, the keys are destroyed all the same (no query can read them), the
//! failure is logged, and the bytes go at the next rewrite (the next erasure, or an
//! operator's `VACUUM FULL`). It runs on a connection of its own, which is closed after, so
//! its session settings never reach the pool.
//!
//! What stays: PostgreSQL's write-ahead log keeps the key (the insert, and full-page images)
//! until its segments are recycled, and WAL archives, base backups and replicas' files keep
//! it until they are rotated; so do row versions an older transaction still open at the
//! erasure can see (a long report, a standby with `hot_standby_feedback`), which `VACUUM FULL`
//! must copy.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};

use loyalty_store::StoreError;
use loyalty_store::vault::{self, Erasure, KeyVault, MemberKey};

use crate::Names;
use crate::error::SqlResult;

/// How long the rewrite of the key table waits for its lock.
const REWRITE_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Attempts of `key_for` to make a key or read the one a concurrent caller made: only an
/// erasure between the two (twice) uses more than one.
const KEY_FOR_ATTEMPTS: u32 = 3;

/// The vault of a [`crate::PostgresStore`]: it answers [`StoreError::Closed`] once the store
/// is closed (the pool is).
#[derive(Debug)]
pub(crate) struct PostgresKeyVault {
    pool: Pool,
    names: Arc<Names>,
}

impl PostgresKeyVault {
    pub(crate) fn new(pool: Pool, names: Arc<Names>) -> Self {
        Self { pool, names }
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.sql()
    }

    /// `VACUUM FULL` of the key table, on a connection taken out of the pool (and closed
    /// after). Failures are logged: the keys are destroyed whether or not it runs.
    async fn rewrite_keys(&self) {
        let table = format!("{}.member_keys", self.names.quoted_schema());
        let rewrite = async {
            let client = Object::take(self.client().await?);
            client
                .batch_execute(&format!(
                    "SET lock_timeout = {}",
                    REWRITE_LOCK_TIMEOUT.as_millis()
                ))
                .await
                .sql()?;
            // Its own statement: VACUUM cannot run inside a transaction block, which a
            // query string of several statements is.
            client
                .batch_execute(&format!("VACUUM (FULL) {table}"))
                .await
                .sql()
        };
        if let Err(e) = rewrite.await {
            tracing::warn!(
                error = %e,
                table,
                "rewriting the key table after an erasure failed: the destroyed keys are \
                 unreadable, but their bytes may stay in the table's file until its next \
                 rewrite (the next erasure, or VACUUM FULL)"
            );
        }
    }
}

fn to_key(key_id: String, member_id: String, secret: &[u8]) -> Result<MemberKey, StoreError> {
    let secret = vault::secret_from_bytes(&key_id, secret)?;
    Ok(MemberKey {
        key_id,
        member_id,
        secret,
    })
}

async fn live_key(client: &Object, member: &str) -> Result<Option<MemberKey>, StoreError> {
    let statement = client
        .prepare_cached("SELECT key_id, secret FROM member_keys WHERE member_id = $1")
        .await
        .sql()?;
    match client.query_opt(&statement, &[&member]).await.sql()? {
        Some(row) => {
            let secret: &[u8] = row.try_get(1).sql()?;
            to_key(row.try_get(0).sql()?, member.to_owned(), secret).map(Some)
        }
        None => Ok(None),
    }
}

/// PostgreSQL keeps microseconds: the time as it will be read back.
fn to_micros(at: DateTime<Utc>) -> Result<(i64, DateTime<Utc>), StoreError> {
    let micros = at.timestamp_micros();
    let kept = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Backend(format!("time {at} out of range")))?;
    Ok((micros, kept))
}

#[async_trait]
impl KeyVault for PostgresKeyVault {
    async fn key_for(&self, member_id: &str) -> Result<MemberKey, StoreError> {
        let client = self.client().await?;
        for _ in 0..KEY_FOR_ATTEMPTS {
            if let Some(key) = live_key(&client, member_id).await? {
                return Ok(key);
            }
            let key = vault::new_key(member_id);
            // A concurrent caller's insert makes this one wait for its commit and then do
            // nothing; the next read finds that caller's key.
            let insert = client
                .prepare_cached(
                    "INSERT INTO member_keys (key_id, member_id, secret) VALUES ($1, $2, $3)
                     ON CONFLICT (member_id) DO NOTHING",
                )
                .await
                .sql()?;
            let secret: &[u8] = &key.secret;
            let inserted = client
                .execute(&insert, &[&key.key_id, &key.member_id, &secret])
                .await
                .sql()?;
            if inserted == 1 {
                return Ok(key);
            }
        }
        Err(StoreError::Unavailable(format!(
            "member {member_id}'s key was erased while it was being made, {KEY_FOR_ATTEMPTS} \
             times: try again"
        )))
    }

    async fn key(&self, key_id: &str) -> Result<Option<MemberKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT member_id, secret FROM member_keys WHERE key_id = $1")
            .await
            .sql()?;
        match client.query_opt(&statement, &[&key_id]).await.sql()? {
            Some(row) => {
                let secret: &[u8] = row.try_get(1).sql()?;
                to_key(key_id.to_owned(), row.try_get(0).sql()?, secret).map(Some)
            }
            None => Ok(None),
        }
    }

    async fn erase(&self, member_id: &str, at: DateTime<Utc>) -> Result<Erasure, StoreError> {
        let (micros, erased_at) = to_micros(at)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.sql()?;
        let keys_destroyed = tx
            .execute(
                "DELETE FROM member_keys WHERE member_id = $1",
                &[&member_id],
            )
            .await
            .sql()?;
        tx.execute(
            "INSERT INTO member_erasures (member_id, erased_at)
             VALUES ($1, TIMESTAMPTZ 'epoch' + $2::BIGINT * INTERVAL '1 microsecond')
             ON CONFLICT (member_id) DO UPDATE
             SET erased_at = GREATEST(member_erasures.erased_at, EXCLUDED.erased_at)",
            &[&member_id, &micros],
        )
        .await
        .sql()?;
        tx.commit().await.sql()?;
        drop(client);
        // Also when nothing was destroyed now: erasing again retries a rewrite that failed.
        self.rewrite_keys().await;
        Ok(Erasure {
            member_id: member_id.to_owned(),
            keys_destroyed,
            erased_at,
        })
    }

    async fn erased_at(&self, member_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT round(EXTRACT(EPOCH FROM erased_at) * 1000000)::BIGINT
                 FROM member_erasures WHERE member_id = $1",
            )
            .await
            .sql()?;
        match client.query_opt(&statement, &[&member_id]).await.sql()? {
            Some(row) => {
                let micros: i64 = row.try_get(0).sql()?;
                DateTime::from_timestamp_micros(micros)
                    .map(Some)
                    .ok_or_else(|| StoreError::Corrupt(format!("erasure time {micros} µs")))
            }
            None => Ok(None),
        }
    }
}
