//! API keys and roles.
//!
//! Keys are configured as SHA-256 hashes. A presented key is hashed and compared with every
//! configured hash in constant time (`subtle`), without stopping at the first match, so the
//! time taken says nothing about how close a guess was or which key matched.
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::settings::ApiKeySettings;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A till: purchases, refunds and activities for the stores it is bound to.
    Terminal,
    /// A member app: enrolment, profile, history, rewards, redemptions.
    App,
    /// Customer support: adjustments and goodwill, and reading members.
    Support,
    /// Read-only access to the log, statements and liability.
    Auditor,
    /// Read-only access to the retention analytics (aggregates and per-member scores).
    Analyst,
    /// Everything, plus operations (scheduler on demand).
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Terminal => "terminal",
            Role::App => "app",
            Role::Support => "support",
            Role::Auditor => "auditor",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        })
    }
}

/// SHA-256 of `key`, lowercase hex: the form keys are configured in.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[derive(Debug, Clone)]
struct KeyEntry {
    name: String,
    role: Role,
    hash: [u8; 32],
    stores: BTreeSet<String>,
}

/// The configured keys, ready to check presented keys against.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Arc<Vec<KeyEntry>>,
}

impl KeyRing {
    /// Builds the ring; the hashes were validated with the settings, a bad one is skipped.
    pub fn new(keys: &[ApiKeySettings]) -> KeyRing {
        let keys = keys
            .iter()
            .filter_map(|k| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&k.sha256, &mut hash).ok()?;
                Some(KeyEntry {
                    name: k.name.clone(),
                    role: k.role,
                    hash,
                    stores: k.stores.iter().cloned().collect(),
                })
            })
            .collect();
        KeyRing {
            keys: Arc::new(keys),
        }
    }

    /// The caller a presented key identifies, if any.
    pub fn identify(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&KeyEntry> = None;
        for entry in self.keys.iter() {
            // Every entry is compared, whether or not an earlier one matched.
            if bool::from(entry.hash.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found.map(|e| Caller {
            name: e.name.clone(),
            role: e.role,
            stores: e.stores.clone(),
        })
    }
}

/// Who is calling, established from the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    stores: BTreeSet<String>,
}

impl Caller {
    /// Passes when the caller's role is one of `allowed` or admin; 403 otherwise.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the key {:?} has the role {}, which may not do this",
                self.name, self.role
            )))
        }
    }

    /// Passes when the caller may act for `store`: terminals only for the stores they are
    /// bound to; the other roles allowed to post are not bound.
    pub fn require_store(&self, store: &str) -> Result<(), ApiError> {
        if self.role != Role::Terminal || self.stores.contains(store) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the terminal key {:?} is not bound to the store {store:?}",
                self.name
            )))
        }
    }

    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.name)
    }
}

/// What the server state must give the extractor.
pub trait HasKeyRing {
    fn key_ring(&self) -> &KeyRing;
}

/// The presented key: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, key) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| key.trim());
    }
    parts.headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

impl<S> FromRequestParts<S> for Caller
where
    S: HasKeyRing + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts).ok_or_else(|| {
            ApiError::unauthorized("an API key is required (Authorization: Bearer <key>)")
        })?;
        state
            .key_ring()
            .identify(key)
            .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))
    }
}

/// The roles an operation is open to (admin always passes).
pub trait Roles: Send + Sync + 'static {
    const ALLOWED: &'static [Role];
}

macro_rules! roles {
    ($($(#[$doc:meta])* $name:ident => [$($role:ident),*];)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Roles for $name {
                const ALLOWED: &'static [Role] = &[$(Role::$role),*];
            }
        )*
    };
}

roles! {
    /// Tills.
    Terminals => [Terminal];
    /// Tills and member apps (activities).
    TerminalsAndApps => [Terminal, App];
    /// Member apps.
    Apps => [App];
    /// Member apps and customer support.
    AppsAndSupport => [App, Support];
    /// Whoever reads a member: apps, support, auditors.
    MemberReaders => [App, Support, Auditor];
    /// Customer support.
    Support => [Support];
    /// Auditors.
    Auditors => [Auditor];
    /// Auditors and customer support.
    AuditorsAndSupport => [Auditor, Support];
    /// Analysts (the retention analytics).
    Analysts => [Analyst];
    /// Operators only.
    Admins => [];
}

/// The caller, checked against the operation's roles `R` from the request's head alone.
///
/// Handlers take it before their body: axum runs extractors in order and the body last, so a
/// caller without a key gets 401 and one without the role 403 before the body is parsed. A 422
/// that describes the request's shape is only ever shown to someone allowed to send it.
#[derive(Debug, Clone)]
pub struct Allowed<R: Roles> {
    pub caller: Caller,
    roles: PhantomData<R>,
}

impl<S, R> FromRequestParts<S> for Allowed<R>
where
    S: HasKeyRing + Send + Sync,
    R: Roles,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ALLOWED)?;
        Ok(Allowed {
            caller,
            roles: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(&[
            ApiKeySettings {
                name: "till-1".into(),
                role: Role::Terminal,
                sha256: sha256_hex("t-key"),
                stores: vec!["store-1".into()],
            },
            ApiKeySettings {
                name: "ops".into(),
                role: Role::Admin,
                sha256: sha256_hex("a-key"),
                stores: vec![],
            },
        ])
    }

    #[test]
    fn a_configured_key_identifies_its_holder_and_role() {
        let caller = ring().identify("t-key").expect("known key");
        assert_eq!(caller.name, "till-1");
        assert_eq!(caller.role, Role::Terminal);
    }

    #[test]
    fn an_unknown_key_or_the_hash_itself_identifies_nobody() {
        let ring = ring();
        assert!(ring.identify("t-ke").is_none());
        assert!(ring.identify(&sha256_hex("t-key")).is_none());
    }

    #[test]
    fn a_terminal_may_post_only_for_its_own_stores() {
        let caller = ring().identify("t-key").unwrap();
        assert!(caller.require_store("store-1").is_ok());
        assert!(caller.require_store("store-2").is_err());
    }

    #[test]
    fn a_role_outside_the_allowed_list_is_forbidden_but_admin_passes() {
        let terminal = ring().identify("t-key").unwrap();
        assert!(terminal.require(&[Role::App]).is_err());
        assert!(terminal.require(&[Role::Terminal]).is_ok());
        let admin = ring().identify("a-key").unwrap();
        assert!(admin.require(&[Role::App]).is_ok());
    }

    #[test]
    fn the_hash_of_a_known_input_matches_the_sha256_test_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
