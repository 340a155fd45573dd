//! Personal text inside an event: the support note staff write about a member.
//!
//! Notes are the one place where the ledger holds personal data (see ARCHITECTURE.md, "Personal
//! data"). The core decides with the text the operator typed ([`Note::Plain`]); the engine seals
//! it with a key of the member's, kept outside the log, before the event is stored
//! ([`Note::Sealed`]), so that destroying the key erases the text while the event, its points
//! and the hash chain stay. The core never sees keys and never needs the text to decide: a
//! note is carried, never read.

/// A support note, as typed or as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The text itself: in a decision not stored yet, or in history written before notes were
    /// sealed (schema version 1 of the two event types that carry one).
    Plain(String),
    /// Ciphertext under the member's key `key_id` (XChaCha20-Poly1305, see the engine's
    /// `privacy` module).
    Sealed(SealedNote),
}

/// The stored form of a sealed note. Opaque to the core: only the engine opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedNote {
    /// The member key's id in the key vault.
    pub key_id: String,
    /// Standard base64.
    pub nonce: String,
    /// Standard base64, with the authentication tag.
    pub ciphertext: String,
}

impl Note {
    /// The text, when it is not sealed.
    pub fn plain(&self) -> Option<&str> {
        match self {
            Note::Plain(text) => Some(text),
            Note::Sealed(_) => None,
        }
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self, Note::Sealed(_))
    }
}

impl From<&str> for Note {
    fn from(text: &str) -> Self {
        Note::Plain(text.to_owned())
    }
}

impl From<String> for Note {
    fn from(text: String) -> Self {
        Note::Plain(text)
    }
}
