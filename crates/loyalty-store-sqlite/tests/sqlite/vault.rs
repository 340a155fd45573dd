//! The key vault in SQLite beyond the conformance suite: an erased key's bytes are gone from
//! the database file and its write-ahead log, vault writes share the file with appends, and
//! the vault of a closed store neither answers nor keeps the store from closing.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use loyalty_store::conformance::sample_event;
use loyalty_store::vault::{KeyVault, MemberKey};
use loyalty_store::{EventStore, ExpectedRevision, StoreError};
use loyalty_store_sqlite::{SqliteKeyVault, SqliteOptions, SqliteStore};

/// A guard against a test hanging; never a speed assertion.
const LIVENESS: Duration = Duration::from_secs(60);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn log_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push("-wal");
    PathBuf::from(path)
}

/// The bytes of the database file and of its write-ahead log (if there is one), one after
/// the other: everything SQLite keeps of the store on disk.
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).expect("read the database file");
    match std::fs::read(log_path(db)) {
        Ok(log) => bytes.extend(log),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("read the write-ahead log: {e}"),
    }
    bytes
}

fn holds(bytes: &[u8], secret: &[u8]) -> bool {
    bytes.windows(secret.len()).any(|w| w == secret)
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_key_is_gone_from_the_database_file_and_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    store
        .append(
            "member-ana",
            ExpectedRevision::NoStream,
            vec![sample_event(0)],
        )
        .await
        .unwrap();
    let vault = store.key_vault().expect("a vault");
    let ana = vault.key_for("ana").await.unwrap();
    let ben = vault.key_for("ben").await.unwrap();
    // The search finds a secret where it is: else its absence below would prove nothing.
    let before = file_bytes(&path);
    assert!(
        holds(&before, &ana.secret),
        "the new key is not in the files"
    );
    assert!(holds(&before, &ben.secret));

    let erasure = vault.erase("ana", at()).await.unwrap();
    assert_eq!(erasure.keys_destroyed, 1);

    // With the store still open, and appends going on...
    store
        .append(
            "member-ana",
            ExpectedRevision::Exact(0),
            vec![sample_event(1)],
        )
        .await
        .unwrap();
    let open_files = file_bytes(&path);
    assert!(
        !holds(&open_files, &ana.secret),
        "the erased key is still in the database file or its log"
    );
    assert!(holds(&open_files, &ben.secret), "another member's key went");
    // ...and once it is closed.
    drop(vault);
    store.close().await.unwrap();
    let closed_files = file_bytes(&path);
    assert!(!holds(&closed_files, &ana.secret));
    assert!(holds(&closed_files, &ben.secret));
}

/// Among many keys spread over many pages, made before and after erasures of most of them, no
/// copy of any erased key is left anywhere. (Erasures as deletes failed here: SQLite moved
/// rows when it rebalanced the pages, and left a copy behind; see `SqliteKeyVault`.) Every live
/// key is found, so the search works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_copy_of_any_erased_key_is_left_among_many_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    let vault = store.key_vault().expect("a vault");
    let mut keys: Vec<MemberKey> = Vec::new();
    for n in 0..300 {
        keys.push(vault.key_for(&format!("member-{n:04}")).await.unwrap());
    }
    let mut erased = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        if n % 5 != 0 {
            vault.erase(&key.member_id, at()).await.unwrap();
            erased.push(key.clone());
        }
    }
    // New keys after the erasures (the erased members' new ones among them), then more
    // erasures.
    let mut live: Vec<MemberKey> = keys
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 5 == 0)
        .map(|(_, k)| k.clone())
        .collect();
    for key in &erased {
        live.push(vault.key_for(&key.member_id).await.unwrap());
    }
    for n in 300..400 {
        live.push(vault.key_for(&format!("member-{n:04}")).await.unwrap());
    }
    let (mut erased_late, mut kept) = (Vec::new(), Vec::new());
    for (n, key) in live.into_iter().enumerate() {
        if n % 3 == 1 {
            erased_late.push(key);
        } else {
            kept.push(key);
        }
    }
    for key in &erased_late {
        vault.erase(&key.member_id, at()).await.unwrap();
    }
    erased.extend(erased_late);

    let files = file_bytes(&path);
    let left: Vec<&str> = erased
        .iter()
        .filter(|k| holds(&files, &k.secret))
        .map(|k| k.key_id.as_str())
        .collect();
    assert!(left.is_empty(), "erased keys still in the files: {left:?}");
    let missing = kept.iter().filter(|k| !holds(&files, &k.secret)).count();
    assert_eq!(missing, 0, "live keys not found in the files");
    drop(vault);
    store.close().await.unwrap();
}

/// A key file of its own: keys survive a reopen, and an erased key is gone from its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_of_its_own_keeps_keys_and_erases_them_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let vault = SqliteKeyVault::open(&path).expect("open key file");
    let ana = vault.key_for("ana").await.unwrap();
    let ben = vault.key_for("ben").await.unwrap();
    drop(vault);

    let vault = SqliteKeyVault::open(&path).expect("reopen key file");
    assert_eq!(vault.key(&ana.key_id).await.unwrap(), Some(ana.clone()));
    assert_eq!(vault.key_for("ben").await.unwrap(), ben);
    assert!(holds(&file_bytes(&path), &ana.secret));
    assert_eq!(vault.erase("ana", at()).await.unwrap().keys_destroyed, 1);
    let files = file_bytes(&path);
    assert!(
        !holds(&files, &ana.secret),
        "the erased key is still in the key file"
    );
    assert!(holds(&files, &ben.secret));
    drop(vault);

    let vault = SqliteKeyVault::open(&path).expect("reopen key file");
    assert_eq!(vault.key(&ana.key_id).await.unwrap(), None);
    assert_eq!(vault.erased_at("ana").await.unwrap(), Some(at()));
    assert!(!holds(&file_bytes(&path), &ana.secret));
}

/// A key file that a newer build wrote is refused, as a store's file is.
#[tokio::test]
async fn a_key_file_of_a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let newer = loyalty_store_sqlite::SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {newer};"))
        .unwrap();
    let err = SqliteKeyVault::open(&path).unwrap_err();
    assert!(
        matches!(err, loyalty_store_sqlite::OpenError::SchemaTooNew { found, .. } if found == newer),
        "{err}"
    );
}

/// Vault writes and appends share the one writer: under concurrent appends, keys are made
/// and erased without a busy error, and every append succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_writes_and_appends_share_the_file_without_busy_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir.path().join("events.db")).await);
    let vault = store.key_vault().expect("a vault");
    let appenders: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let stream = format!("member-{t}");
                for n in 0..50 {
                    store
                        .append(&stream, ExpectedRevision::Any, vec![sample_event(n)])
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    let vault_work = {
        let vault = Arc::clone(&vault);
        tokio::spawn(async move {
            for n in 0..40 {
                let member = format!("m-{n}");
                let key = vault.key_for(&member).await?;
                if n % 2 == 0 {
                    assert_eq!(vault.erase(&member, at()).await?.keys_destroyed, 1);
                    assert_eq!(vault.key(&key.key_id).await?, None);
                } else {
                    assert_eq!(vault.key(&key.key_id).await?, Some(key));
                }
            }
            Ok::<_, StoreError>(())
        })
    };
    tokio::time::timeout(LIVENESS, async {
        for appender in appenders {
            appender.await.expect("appender task").expect("append");
        }
        vault_work.await.expect("vault task").expect("vault write");
    })
    .await
    .expect("the work finishes");
    assert_eq!(store.stats().appends, 400);
}

/// Once the store is closed its vault answers `Closed`; and a vault still held does not keep
/// the store from closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_of_a_closed_store_answers_closed_and_does_not_hold_it_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    let vault = store.key_vault().expect("a vault");
    let key = vault.key_for("ana").await.unwrap();
    tokio::time::timeout(LIVENESS, store.close())
        .await
        .expect("closing does not wait for the vault")
        .unwrap();
    assert_eq!(vault.key_for("ben").await.unwrap_err(), StoreError::Closed);
    assert_eq!(
        vault.key(&key.key_id).await.unwrap_err(),
        StoreError::Closed
    );
    assert_eq!(
        vault.erase("ana", at()).await.unwrap_err(),
        StoreError::Closed
    );
    assert_eq!(
        vault.erased_at("ana").await.unwrap_err(),
        StoreError::Closed
    );

    let store = open(&path).await;
    let vault = store.key_vault().expect("a vault");
    assert_eq!(vault.key(&key.key_id).await.unwrap(), Some(key));
    drop(vault);
    store.close().await.unwrap();
}
