//! Member tokens: short-lived signed tokens for one member.
//!
//! A retailer's back-end (an API key with the role `issuer`, or an admin) obtains one with
//! `POST /v1/tokens` and hands it to the member's app, which presents it as
//! `Authorization: Bearer <token>`. The token is a JWT signed with HS256; its `kid` header names
//! the key that signed it, so keys rotate: the current key signs, every configured key verifies
//! (`[[tokens.keys]]`, see [`crate::settings::TokenSettings`]).
//!
//! Claims: `sub` (the member), `aud` and `iss` (configured, checked), `iat`, `nbf`, `exp` (checked
//! against the server's clock with a small leeway, not the wall clock: tests move it) and `azp`
//! (the name of the key that obtained the token, recorded in the actor of what it does).
use std::fmt;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use loyalty_core::MemberId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::settings::TokenSettings;

/// The only algorithm tokens are signed and accepted with.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// `POST /v1/tokens`: a member token for one member.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The member the token acts for.
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The token's lifetime in seconds: 1 to `tokens.max_ttl_secs` (900 by default), which is
    /// also the lifetime when it is absent. Longer is 422.
    #[serde(default, deserialize_with = "crate::dto::present_whole")]
    #[schema(minimum = 1, nullable = false)]
    pub ttl_secs: Option<u64>,
}

/// A member token and what it is good for.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Present it as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token stops being accepted (RFC 3339).
    pub expires_at: DateTime<Utc>,
    /// The member it acts for.
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The id of the key that signed it (its `kid` header).
    pub key_id: String,
}

/// The claims of a member token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iss: String,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    exp: i64,
    azp: String,
}

/// Why a token was not issued or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("ttl_secs = {asked} is not between 1 and {max}")]
    Ttl { asked: u64, max: u64 },
    #[error("it is not a well-formed HS256 token with a key id")]
    Malformed,
    #[error("it was signed by an unknown key {0:?}")]
    UnknownKey(String),
    #[error("its signature does not match")]
    BadSignature,
    #[error("it is meant for another audience")]
    WrongAudience,
    #[error("it was issued by someone else")]
    WrongIssuer,
    #[error("it expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("it is not valid before {0}")]
    NotYetValid(DateTime<Utc>),
    #[error("its subject is not a member id")]
    BadSubject,
    #[error("it could not be signed: {0}")]
    Signing(String),
}

/// A token just signed.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub key_id: String,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub member: MemberId,
    /// The name of the key that obtained the token.
    pub issued_by: String,
    pub key_id: String,
    pub expires_at: DateTime<Utc>,
}

struct TokenKey {
    id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The configured token keys, ready to sign and verify.
pub struct TokenKeys {
    keys: Vec<TokenKey>,
    /// Index in `keys` of the key that signs.
    signing: usize,
    audience: String,
    issuer: String,
    max_ttl_secs: u64,
    leeway_secs: i64,
    validation: Validation,
}

/// Keys are never printed.
impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field(
                "keys",
                &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .field("signing", &self.keys[self.signing].id)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("max_ttl_secs", &self.max_ttl_secs)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl TokenKeys {
    /// The keys of validated settings; `None` when no key is listed (tokens off).
    pub fn from_settings(settings: &TokenSettings) -> Result<Option<TokenKeys>, String> {
        if !settings.enabled() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(settings.keys.len());
        for key in &settings.keys {
            let secret = key.secret_bytes()?;
            let invalid = |e: jsonwebtoken::errors::Error| format!("tokens.keys {:?}: {e}", key.id);
            keys.push(TokenKey {
                id: key.id.clone(),
                encoding: EncodingKey::from_secret(&secret).map_err(invalid)?,
                decoding: DecodingKey::from_secret(&secret).map_err(invalid)?,
            });
        }
        let signing = settings
            .keys
            .iter()
            .position(|k| k.current)
            .unwrap_or_default();
        let mut validation = Validation::new(ALGORITHM);
        // Time is checked against the server's clock below, not the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_issuer(&[settings.issuer.as_str()]);
        Ok(Some(TokenKeys {
            keys,
            signing,
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            max_ttl_secs: settings.max_ttl_secs,
            leeway_secs: i64::try_from(settings.leeway_secs).unwrap_or(i64::MAX),
            validation,
        }))
    }

    /// The id of the key that signs new tokens.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[self.signing].id
    }

    /// The longest lifetime a token may be given, in seconds.
    pub fn max_ttl_secs(&self) -> u64 {
        self.max_ttl_secs
    }

    /// Signs a token for `member`, obtained by the key named `issued_by`, valid from `now`
    /// (the server's clock) for `ttl_secs` (the maximum when `None`).
    pub fn issue(
        &self,
        member: &MemberId,
        issued_by: &str,
        ttl_secs: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, TokenError> {
        let ttl = ttl_secs.unwrap_or(self.max_ttl_secs);
        if ttl == 0 || ttl > self.max_ttl_secs {
            return Err(TokenError::Ttl {
                asked: ttl,
                max: self.max_ttl_secs,
            });
        }
        let iat = now.timestamp();
        // ttl <= a day (validated), so this cannot overflow for any instant chrono holds.
        let exp = iat.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let key = &self.keys[self.signing];
        let claims = Claims {
            sub: member.as_str().to_owned(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            iat,
            nbf: Some(iat),
            exp,
            azp: issued_by.to_owned(),
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_at: at(exp),
            key_id: key.id.clone(),
        })
    }

    /// Verifies a presented token as of `now` (the server's clock): a known `kid`, its
    /// signature, the audience, the issuer, `exp` and `nbf` (with the leeway), a member id.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            })?
            .claims;
        let now = now.timestamp();
        if now >= claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired(at(claims.exp)));
        }
        if let Some(nbf) = claims.nbf
            && now.saturating_add(self.leeway_secs) < nbf
        {
            return Err(TokenError::NotYetValid(at(nbf)));
        }
        let member = MemberId::parse(claims.sub).map_err(|_| TokenError::BadSubject)?;
        Ok(VerifiedToken {
            member,
            issued_by: claims.azp,
            key_id: kid,
            expires_at: at(claims.exp),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;
    use crate::auth::Role;
    use crate::settings::{ApiKeySettings, ApiSettings, TokenKeySettings};

    const SECRET_1: &str = "0123456789abcdef0123456789abcdef-one";
    const SECRET_2: &str = "0123456789abcdef0123456789abcdef-two";

    fn key(id: &str, secret: &str) -> TokenKeySettings {
        TokenKeySettings {
            id: id.into(),
            secret: Some(secret.into()),
            secret_env: None,
            current: false,
        }
    }

    fn settings(keys: Vec<TokenKeySettings>) -> TokenSettings {
        TokenSettings {
            keys,
            ..TokenSettings::default()
        }
    }

    fn keys(keys: Vec<TokenKeySettings>) -> TokenKeys {
        TokenKeys::from_settings(&settings(keys))
            .unwrap()
            .expect("tokens are on")
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).single().unwrap()
    }

    fn m(id: &str) -> MemberId {
        MemberId::parse(id).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_and_names_its_member_issuer_and_key() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let issued = keys.issue(&m("m-1"), "shop", Some(60), noon()).unwrap();
        assert_eq!(issued.key_id, "k1");
        assert_eq!(issued.expires_at, noon() + chrono::TimeDelta::seconds(60));
        let verified = keys.verify(&issued.token, noon()).unwrap();
        assert_eq!(verified.member, m("m-1"));
        assert_eq!(verified.issued_by, "shop");
        assert_eq!(verified.key_id, "k1");
    }

    #[test]
    fn a_token_is_accepted_until_its_expiry_plus_the_leeway_and_not_a_second_longer() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let issued = keys.issue(&m("m-1"), "shop", Some(60), noon()).unwrap();
        let leeway = TokenSettings::default().leeway_secs as i64;
        let last = noon() + chrono::TimeDelta::seconds(60 + leeway - 1);
        assert!(keys.verify(&issued.token, last).is_ok());
        let past = last + chrono::TimeDelta::seconds(1);
        assert!(matches!(
            keys.verify(&issued.token, past),
            Err(TokenError::Expired(_))
        ));
    }

    #[test]
    fn a_token_from_the_future_beyond_the_leeway_is_not_yet_valid() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let issued = keys.issue(&m("m-1"), "shop", None, noon()).unwrap();
        let early = noon() - chrono::TimeDelta::minutes(5);
        assert!(matches!(
            keys.verify(&issued.token, early),
            Err(TokenError::NotYetValid(_))
        ));
    }

    #[test]
    fn a_ttl_of_zero_or_above_the_maximum_is_refused() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let max = keys.max_ttl_secs();
        assert!(keys.issue(&m("m-1"), "shop", Some(max), noon()).is_ok());
        assert_eq!(
            keys.issue(&m("m-1"), "shop", Some(max + 1), noon())
                .unwrap_err(),
            TokenError::Ttl {
                asked: max + 1,
                max
            }
        );
        assert!(keys.issue(&m("m-1"), "shop", Some(0), noon()).is_err());
    }

    #[test]
    fn a_tampered_payload_fails_the_signature_check() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let issued = keys.issue(&m("m-1"), "shop", None, noon()).unwrap();
        let other = keys.issue(&m("m-2"), "shop", None, noon()).unwrap();
        let mine: Vec<&str> = issued.token.split('.').collect();
        let theirs: Vec<&str> = other.token.split('.').collect();
        let forged = format!("{}.{}.{}", mine[0], theirs[1], mine[2]);
        assert_eq!(
            keys.verify(&forged, noon()).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn an_unsigned_token_or_one_without_a_key_id_is_malformed() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let issued = keys.issue(&m("m-1"), "shop", None, noon()).unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        // {"alg":"none","kid":"k1"}
        let none = format!("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.{payload}.");
        assert_eq!(
            keys.verify(&none, noon()).unwrap_err(),
            TokenError::Malformed
        );
        let no_kid = jsonwebtoken::encode(
            &Header::new(ALGORITHM),
            &serde_json::json!({"sub": "m-1"}),
            &EncodingKey::from_secret(SECRET_1.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&no_kid, noon()).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn the_key_marked_current_signs_and_every_listed_key_verifies() {
        let old = keys(vec![key("k1", SECRET_1)]);
        let old_token = old.issue(&m("m-1"), "shop", None, noon()).unwrap();
        let mut k2 = key("k2", SECRET_2);
        k2.current = true;
        let rotated = keys(vec![key("k1", SECRET_1), k2]);
        assert_eq!(rotated.signing_key_id(), "k2");
        assert!(rotated.verify(&old_token.token, noon()).is_ok());
        let new_token = rotated.issue(&m("m-1"), "shop", None, noon()).unwrap();
        assert_eq!(new_token.key_id, "k2");
        assert_eq!(
            old.verify(&new_token.token, noon()).unwrap_err(),
            TokenError::UnknownKey("k2".into())
        );
    }

    #[test]
    fn keys_are_not_printed_in_debug_output() {
        let keys = keys(vec![key("k1", SECRET_1)]);
        let printed = format!("{keys:?} {:?}", key("k1", SECRET_1));
        assert!(!printed.contains(SECRET_1), "{printed}");
        assert!(printed.contains("k1"));
    }

    // ------------------------------------------------------------ the [tokens] settings

    /// The HTTP sections of the shipped configuration file (the binary reads the rest).
    fn shipped() -> ApiSettings {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/loyalty.toml");
        let settings: ApiSettings = Figment::new()
            .merge(Toml::file(&file))
            .extract()
            .expect("the shipped configuration reads");
        settings.validate().expect("and is valid");
        settings
    }

    fn refused(settings: &ApiSettings) -> String {
        settings
            .validate()
            .expect_err("the settings are refused")
            .to_string()
    }

    #[test]
    fn the_shipped_configuration_has_a_demo_signing_key_and_an_issuer_key() {
        let settings = shipped();
        assert!(settings.tokens.enabled());
        assert!(settings.api_keys.iter().any(|k| k.role == Role::Issuer));
        assert!(
            TokenKeys::from_settings(&settings.tokens)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_issuer_key_without_token_keys_is_refused_at_load() {
        let mut settings = shipped();
        settings.tokens.keys.clear();
        assert!(refused(&settings).contains("[[tokens.keys]]"));
    }

    #[test]
    fn an_empty_or_short_secret_is_refused_at_load() {
        let mut settings = shipped();
        settings.tokens.keys = vec![key("k1", "")];
        assert!(refused(&settings).contains("empty"));
        settings.tokens.keys = vec![key("k1", "short")];
        assert!(refused(&settings).contains("32"));
    }

    #[test]
    fn a_key_id_used_twice_or_two_current_keys_are_refused_at_load() {
        let mut settings = shipped();
        settings.tokens.keys = vec![key("k1", SECRET_1), key("k1", SECRET_2)];
        assert!(refused(&settings).contains("twice"));
        let (mut a, mut b) = (key("k1", SECRET_1), key("k2", SECRET_2));
        a.current = true;
        b.current = true;
        settings.tokens.keys = vec![a, b];
        assert!(refused(&settings).contains("current"));
    }

    #[test]
    fn a_secret_must_be_given_exactly_once_and_its_variable_must_be_set() {
        let mut settings = shipped();
        let mut both = key("k1", SECRET_1);
        both.secret_env = Some("PATH".into());
        settings.tokens.keys = vec![both];
        assert!(refused(&settings).contains("exactly one"));
        let mut missing = key("k1", SECRET_1);
        missing.secret = None;
        missing.secret_env = Some("LOYALTY_TOKEN_TEST_SURELY_UNSET_VARIABLE_42".into());
        settings.tokens.keys = vec![missing.clone()];
        assert!(refused(&settings).contains("LOYALTY_"));
        missing.secret_env = Some("TOKEN_TEST_SURELY_UNSET_VARIABLE_42".into());
        settings.tokens.keys = vec![missing];
        assert!(refused(&settings).contains("not set"));
    }

    #[test]
    fn an_api_key_with_the_member_role_is_refused_at_load() {
        let mut settings = shipped();
        settings.api_keys.push(ApiKeySettings {
            name: "someone".into(),
            role: Role::Member,
            sha256: crate::auth::sha256_hex("someone's key"),
            stores: vec![],
        });
        assert!(refused(&settings).contains("member"));
    }

    #[test]
    fn a_ttl_above_a_day_or_an_empty_audience_is_refused_at_load() {
        let mut settings = shipped();
        settings.tokens.max_ttl_secs = 2 * 24 * 3600;
        assert!(refused(&settings).contains("max_ttl_secs"));
        let mut settings = shipped();
        settings.tokens.audience = String::new();
        assert!(refused(&settings).contains("audience"));
    }
}
