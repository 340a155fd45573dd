//! API keys, member tokens and roles.
//!
//! Keys are configured as SHA-256 hashes. A presented key is hashed and compared with every
//! configured hash in constant time (`subtle`), without stopping at the first match, so the
//! time taken says nothing about how close a guess was or which key matched.
//!
//! A bearer credential shaped as a JWT (three dot-separated parts) is a member token instead
//! ([`crate::token`]): it is verified against the configured token keys and the server's clock,
//! and yields a caller with the role [`Role::Member`] acting for one member. [`Allowed`] refuses
//! such a caller any route whose `{member_id}` is another member's; routes that take the member
//! from the body call [`Caller::require_member`].
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use loyalty_core::MemberId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ServerError};
use crate::settings::{ApiKeySettings, ApiSettings};
use crate::state::AppState;
use crate::token::TokenKeys;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A till: purchases, refunds and activities for the stores it is bound to.
    Terminal,
    /// A member app: enrolment, profile, history, rewards, redemptions.
    App,
    /// A retailer's back-end: obtains member tokens (`POST /v1/tokens`), nothing else.
    Issuer,
    /// Customer support: adjustments and goodwill, and reading members.
    Support,
    /// Read-only access to the log, statements and liability.
    Auditor,
    /// Read-only access to the retention analytics (aggregates and per-member scores).
    Analyst,
    /// Everything, plus operations (scheduler on demand).
    Admin,
    /// The holder of a member token: that one member's own profile, history, rewards,
    /// redemptions and activities. Never an API key's role.
    Member,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Terminal => "terminal",
            Role::App => "app",
            Role::Issuer => "issuer",
            Role::Support => "support",
            Role::Auditor => "auditor",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::Member => "member",
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
    /// The member tokens' keys; `None` while tokens are off.
    tokens: Option<Arc<TokenKeys>>,
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
            tokens: None,
        }
    }

    /// The API keys and, when `[[tokens.keys]]` lists any, the member tokens' keys.
    pub fn from_settings(settings: &ApiSettings) -> Result<KeyRing, ServerError> {
        let ring = KeyRing::new(&settings.api_keys);
        match TokenKeys::from_settings(&settings.tokens).map_err(ServerError::Config)? {
            Some(tokens) => Ok(ring.with_tokens(tokens)),
            None => Ok(ring),
        }
    }

    /// The same keys, with member tokens signed and verified by `tokens`.
    pub fn with_tokens(mut self, tokens: TokenKeys) -> KeyRing {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// The member tokens' keys, if tokens are on.
    pub fn tokens(&self) -> Option<&TokenKeys> {
        self.tokens.as_deref()
    }

    /// The caller a presented member token identifies, as of `now` (the server's clock).
    pub fn identify_token(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, ApiError> {
        let tokens = self.tokens.as_deref().ok_or_else(|| {
            ApiError::unauthorized("member tokens are not enabled on this server")
        })?;
        let verified = tokens
            .verify(token, now)
            .map_err(|e| ApiError::unauthorized(format!("the member token is not valid: {e}")))?;
        Ok(Caller {
            name: verified.issued_by,
            role: Role::Member,
            stores: BTreeSet::new(),
            member: Some(verified.member),
        })
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
            member: None,
        })
    }
}

/// Who is calling, established from the API key or the member token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name; for a member token, the name of the issuer key that obtained it.
    pub name: String,
    pub role: Role,
    stores: BTreeSet<String>,
    /// The member a member token acts for (role member only).
    member: Option<MemberId>,
}

impl Caller {
    /// Passes when the caller's role is one of `allowed` or admin; 403 otherwise.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || allowed.contains(&self.role) {
            Ok(())
        } else if let Some(member) = &self.member {
            Err(ApiError::forbidden(format!(
                "a member token (for {member}) may not do this: it reads and writes only its \
                 member's own profile, history, rewards, redemptions and activities"
            )))
        } else {
            Err(ApiError::forbidden(format!(
                "the key {:?} has the role {}, which may not do this",
                self.name, self.role
            )))
        }
    }

    /// The member a member token acts for; `None` for API keys.
    pub fn member(&self) -> Option<&MemberId> {
        self.member.as_ref()
    }

    /// Passes when the caller may act for `member`: a member token only for its own member;
    /// API keys are not bound to members (their role decides). 403 otherwise.
    ///
    /// [`Allowed`] calls it for a route's `{member_id}`; a handler that takes the member from
    /// the body and admits member tokens must call it.
    pub fn require_member(&self, member: &MemberId) -> Result<(), ApiError> {
        self.require_member_id(member.as_str())
    }

    fn require_member_id(&self, member: &str) -> Result<(), ApiError> {
        match &self.member {
            Some(own) if own.as_str() != member => Err(ApiError::forbidden(format!(
                "this member token acts for {own}, not for {member:?}"
            ))),
            _ => Ok(()),
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

    /// The actor recorded in event metadata: `role:key`, and for a member token
    /// `member:<member>@<issuer key>`.
    pub fn actor(&self) -> String {
        match &self.member {
            Some(member) => format!("{}:{member}@{}", self.role, self.name),
            None => format!("{}:{}", self.role, self.name),
        }
    }
}

/// What the server state must give the extractor.
pub trait HasKeyRing {
    fn key_ring(&self) -> &KeyRing;
}

/// The server's clock, against which member tokens expire (the engine's: tests move it).
pub trait HasClock {
    fn now(&self) -> DateTime<Utc>;
}

impl HasClock for AppState {
    fn now(&self) -> DateTime<Utc> {
        self.engine.clock().now()
    }
}

/// What the caller presented.
enum Credential<'a> {
    ApiKey(&'a str),
    MemberToken(&'a str),
}

/// Whether a bearer credential is shaped as a JWT (header.payload.signature): API keys never
/// are (they hold no two dots).
fn is_jwt(credential: &str) -> bool {
    let mut parts = credential.split('.');
    parts.by_ref().take(3).filter(|p| !p.is_empty()).count() == 3 && parts.next().is_none()
}

/// The presented credential: `Authorization: Bearer <key or member token>` or
/// `X-Api-Key: <key>`.
fn presented(headers: &HeaderMap) -> Option<Credential<'_>> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, credential) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let credential = credential.trim();
        return Some(if is_jwt(credential) {
            Credential::MemberToken(credential)
        } else {
            Credential::ApiKey(credential)
        });
    }
    headers
        .get("x-api-key")?
        .to_str()
        .ok()
        .map(|key| Credential::ApiKey(key.trim()))
}

/// The caller the request's headers identify: a key hashed and compared, or a token verified.
fn identify_headers<S: HasKeyRing + HasClock>(
    headers: &HeaderMap,
    state: &S,
) -> Result<Caller, ApiError> {
    match presented(headers) {
        None => Err(ApiError::unauthorized(
            "an API key or a member token is required (Authorization: Bearer <key>)",
        )),
        Some(Credential::MemberToken(token)) => state.key_ring().identify_token(token, state.now()),
        Some(Credential::ApiKey(key)) => state
            .key_ring()
            .identify(key)
            .ok_or_else(|| ApiError::unauthorized("the API key is not valid")),
    }
}

/// Who a request's credential identifies, found once per request by [`identify`] and read from
/// the request's extensions by the rate limiter and by the [`Caller`] extractor: a key is hashed,
/// and a token's signature checked, once.
#[derive(Debug, Clone)]
pub struct Identified(pub Result<Caller, ApiError>);

/// Middleware in front of the rate limiter and the handlers: identifies the caller once.
pub async fn identify(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let caller = identify_headers(request.headers(), &state);
    request.extensions_mut().insert(Identified(caller));
    next.run(request).await
}

impl<S> FromRequestParts<S> for Caller
where
    S: HasKeyRing + HasClock + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identified>() {
            Some(Identified(caller)) => caller.clone(),
            // A router without the `identify` layer (a handler tested on its own).
            None => identify_headers(&parts.headers, state),
        }
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

// `Member` (a member token) is admitted only by the sets that say so: [`Allowed`] then holds it
// to the route's `{member_id}`, and the handler to a `member_id` in the body.
roles! {
    /// Tills.
    Terminals => [Terminal];
    /// Tills and member apps (activities), and member tokens (their own member's activities).
    TerminalsAndApps => [Terminal, App, Member];
    /// Member apps (enrolment: not member tokens).
    Apps => [App];
    /// Member apps and member tokens (their own member: redemptions).
    AppsAndMembers => [App, Member];
    /// Member apps, member tokens (their own member) and customer support.
    AppsAndSupport => [App, Support, Member];
    /// Whoever reads a member: apps, support, auditors, and member tokens (their own member).
    MemberReaders => [App, Support, Auditor, Member];
    /// Retailers' back-ends that obtain member tokens.
    Issuers => [Issuer];
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
    S: HasKeyRing + HasClock + Send + Sync,
    R: Roles,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ALLOWED)?;
        if caller.member.is_some() {
            // A member token acts only for its member: a route's `{member_id}` must be it.
            // Routes without path parameters have none to check (their body's is the
            // handler's to check); parameters that are not UTF-8 cannot name the member.
            match RawPathParams::from_request_parts(parts, state).await {
                Ok(params) => {
                    for (name, value) in &params {
                        if name == "member_id" {
                            caller.require_member_id(value)?;
                        }
                    }
                }
                Err(axum::extract::rejection::RawPathParamsRejection::MissingPathParams(_)) => {}
                Err(_) => {
                    return Err(ApiError::forbidden(
                        "a member token acts only for its own member",
                    ));
                }
            }
        }
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
    fn a_bearer_credential_of_three_non_empty_dot_separated_parts_is_a_member_token() {
        assert!(is_jwt("aaa.bbb.ccc"));
        assert!(!is_jwt("demo-app-key"));
        assert!(!is_jwt("a.b"));
        assert!(!is_jwt("a.b.c.d"));
        assert!(!is_jwt("a..c"));
        assert!(!is_jwt("a.b."));
    }

    #[test]
    fn a_member_caller_may_act_only_for_its_own_member_and_a_key_for_any() {
        let member = Caller {
            name: "shop".into(),
            role: Role::Member,
            stores: BTreeSet::new(),
            member: Some(MemberId::parse("m-1").unwrap()),
        };
        assert!(
            member
                .require_member(&MemberId::parse("m-1").unwrap())
                .is_ok()
        );
        let other = member
            .require_member(&MemberId::parse("m-2").unwrap())
            .unwrap_err();
        assert_eq!(other.slug, "forbidden");
        assert_eq!(member.actor(), "member:m-1@shop");
        assert!(member.require(&[Role::App]).is_err());
        assert!(member.require(&[Role::App, Role::Member]).is_ok());
        let admin = ring().identify("a-key").unwrap();
        assert!(
            admin
                .require_member(&MemberId::parse("m-2").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn the_hash_of_a_known_input_matches_the_sha256_test_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
