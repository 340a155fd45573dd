//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! Every request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: `v1,<base64 of HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one per
//! secret that signs, separated by spaces. During a secret rotation both the new and the previous
//! secret sign, so a receiver that still knows only one of them keeps verifying.
//!
//! Secrets travel as `whsec_` and standard base64, as the specification (and its libraries, which
//! the tests verify our signatures with) have them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::WebhookError;

/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest secret accepted, in bytes: the specification asks for 24 to 64.
pub const MIN_SECRET_BYTES: usize = 24;
/// The longest secret accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64;
/// The size of the secrets the server generates.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The signature scheme's version tag.
const VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// A signing secret (`whsec_` and base64 on the wire). Its Debug form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads `whsec_<standard base64>` of 24 to 64 bytes. The error never repeats the text (it
    /// may be a real secret with a typo).
    pub fn parse(text: &str) -> Result<Secret, WebhookError> {
        let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
            return Err(WebhookError::InvalidSecret(format!(
                "a secret starts with {SECRET_PREFIX}"
            )));
        };
        // Bounded before decoding: a huge text is refused without allocating its decoded form.
        if encoded.len() > MAX_SECRET_BYTES.div_ceil(3) * 4 {
            return Err(WebhookError::InvalidSecret(format!(
                "a secret is at most {MAX_SECRET_BYTES} bytes"
            )));
        }
        let bytes = STANDARD.decode(encoded).map_err(|_| {
            WebhookError::InvalidSecret(format!(
                "after {SECRET_PREFIX}, a secret is standard base64 (with padding)"
            ))
        })?;
        Secret::from_bytes(bytes)
    }

    /// A secret from its raw bytes (24 to 64 of them).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Secret, WebhookError> {
        if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            Ok(Secret(bytes))
        } else {
            Err(WebhookError::InvalidSecret(format!(
                "a secret is {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, this one is {}",
                bytes.len()
            )))
        }
    }

    /// 32 random bytes from the operating system's generator (through `rand`'s thread RNG,
    /// a CSPRNG seeded from it).
    pub fn generate() -> Secret {
        let bytes: [u8; GENERATED_SECRET_BYTES] = rand::random();
        Secret(bytes.to_vec())
    }

    /// The text form, `whsec_<base64>`: what the admin is shown once, and what is stored.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; ours are 24..=64 bytes.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

fn mac_over(secret: &Secret, msg_id: &str, timestamp: i64, payload: &[u8]) -> HmacSha256 {
    let mut mac = secret.mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// `v1,<base64 of HMAC-SHA256(secret, "{msg_id}.{timestamp}.{payload}")>`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    let tag = mac_over(secret, msg_id, timestamp, payload)
        .finalize()
        .into_bytes();
    format!("{VERSION},{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header: one `v1,...` per secret, space-separated.
pub fn signature_header(
    secrets: &[&Secret],
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, payload))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether one of the header's `v1` signatures was made by `secret` over this message
/// (compared in constant time). What a receiver does, minus the timestamp tolerance, which is
/// the receiver's policy: for tests and for tools that check a stored delivery.
pub fn verify(secret: &Secret, header: &str, msg_id: &str, timestamp: i64, payload: &[u8]) -> bool {
    header
        .split(' ')
        .filter_map(|part| part.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .any(|tag| {
            mac_over(secret, msg_id, timestamp, payload)
                .verify_slice(&tag)
                .is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_reads_back_from_its_text_form() {
        let secret = Secret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(Secret::parse(&text).unwrap(), secret);
    }

    #[test]
    fn two_generated_secrets_differ() {
        assert_ne!(Secret::generate(), Secret::generate());
    }

    #[test]
    fn a_secret_without_its_prefix_too_short_too_long_or_not_base64_is_refused() {
        let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        let bare = STANDARD.encode([7u8; 32]);
        for text in [
            short,
            long,
            bare,
            "whsec_***".to_owned(),
            "whsec_".to_owned(),
        ] {
            assert!(
                matches!(Secret::parse(&text), Err(WebhookError::InvalidSecret(_))),
                "{text} was accepted"
            );
        }
        let min = format!("whsec_{}", STANDARD.encode([7u8; 24]));
        let max = format!("whsec_{}", STANDARD.encode([7u8; 64]));
        assert!(Secret::parse(&min).is_ok());
        assert!(Secret::parse(&max).is_ok());
    }

    #[test]
    fn the_debug_form_does_not_show_the_secret() {
        let secret = Secret::generate();
        let encoded = secret.expose();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&encoded["whsec_".len()..]));
    }

    #[test]
    fn verify_accepts_our_signature_and_refuses_another_secrets() {
        let (a, b) = (Secret::generate(), Secret::generate());
        let header = signature_header(&[&a], "msg_1", 1_700_000_000, b"{}");
        assert!(verify(&a, &header, "msg_1", 1_700_000_000, b"{}"));
        assert!(!verify(&b, &header, "msg_1", 1_700_000_000, b"{}"));
        assert!(!verify(&a, &header, "msg_1", 1_700_000_001, b"{}"));
    }
}
