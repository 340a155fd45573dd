//! The fingerprint of a command's content, stored in its events so that a retry with the same id
//! can be told apart from a different request reusing the id, from the event log alone.

use rust_decimal::Decimal;

/// FNV-1a, 64 bits: stable across releases and platforms (unlike `std`'s hasher), which matters
/// because fingerprints are stored in events. It guards against accidental id reuse, not against
/// an adversary, so a cryptographic hash is not needed.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Builds the canonical text of a command field by field, then digests it.
#[derive(Debug, Default)]
pub(crate) struct Fingerprint {
    text: String,
}

impl Fingerprint {
    pub(crate) fn new(kind: &str) -> Self {
        let mut f = Fingerprint::default();
        f.text.push_str(kind);
        f
    }

    pub(crate) fn field(mut self, value: impl AsRef<str>) -> Self {
        // Length-prefixed so that ("ab","c") and ("a","bc") differ.
        let value = value.as_ref();
        self.text.push('|');
        self.text.push_str(&value.len().to_string());
        self.text.push(':');
        self.text.push_str(value);
        self
    }

    pub(crate) fn amount(self, value: Decimal) -> Self {
        self.field(crate::money::canonical(value))
    }

    pub(crate) fn finish(self) -> String {
        format!("{:016x}", fnv1a64(self.text.as_bytes()))
    }
}
