//! What identifies a program: its normalised text and the version derived from it.
//!
//! The normalised text is the program file parsed as a TOML table and written out again with
//! every table's keys in sorted order, so comments, blank lines, spacing, quoting styles,
//! inline versus dotted tables and the order of keys do not change it; anything that changes a
//! value does. The version is the lowercase hex SHA-256 of that text (64 characters): what
//! every decision records as its `rules_version`, and what the engine stores the text under
//! (stream `program`), so an auditor can read the rules that decided any event.
//!
//! The keys are sorted here rather than left to `toml::Table`'s own order: that order is sorted
//! only while no crate in the build turns on toml's `preserve_order` feature, and a version
//! that changed with a dependency's features would not be a version.
//!
//! The version is the hash of the text as written, and a recorded text is checked against its
//! version as stored, never normalised again: a later `toml` release that spelled some value
//! differently would give the same rules a new version (recorded anew when a server starts
//! with it), and would leave every recorded version readable and verifiable.

use sha2::{Digest, Sha256};

use crate::error::ProgramError;

/// Longest normalised program text, in bytes. The text is stored whole in one event, and the
/// smallest store limit on one append is EventStoreDB's 1 MiB: this leaves room for the JSON
/// escaping of quotes and newlines (at most twice the bytes) and the event's other fields.
pub const MAX_PROGRAM_TEXT_BYTES: usize = 384 * 1024;

/// Length of a version: hex SHA-256.
pub const VERSION_LEN: usize = 64;

/// A program's normalised text and its version, kept beside the parsed rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramSource {
    text: String,
    version: String,
}

impl ProgramSource {
    /// Normalises `text` (a program file) and derives its version. Fails on text that is not
    /// TOML, or whose normalised form is longer than [`MAX_PROGRAM_TEXT_BYTES`].
    pub fn from_toml_str(text: &str) -> Result<ProgramSource, ProgramError> {
        let text = normalize(text)?;
        if text.len() > MAX_PROGRAM_TEXT_BYTES {
            return Err(ProgramError::invalid(
                "program",
                format!(
                    "the normalised program is {} bytes, more than the {MAX_PROGRAM_TEXT_BYTES} \
                     bytes one stored event may hold",
                    text.len()
                ),
            ));
        }
        let version = version_of(&text);
        Ok(ProgramSource { text, version })
    }

    /// The normalised text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Lowercase hex SHA-256 of the normalised text.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The normalised text of a program file: its TOML table with every table's keys sorted,
/// written back by the `toml` crate (no comments, one canonical spelling of each value).
pub fn normalize(text: &str) -> Result<String, ProgramError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ProgramError::Parse(e.to_string()))?;
    toml::to_string(&sorted_table(table))
        .map_err(|e| ProgramError::Parse(format!("the program cannot be written back: {e}")))
}

/// Lowercase hex SHA-256 of a normalised text.
pub fn version_of(normalized: &str) -> String {
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// Whether `text` has the shape of a version (64 lowercase hex digits).
pub fn is_version(text: &str) -> bool {
    text.len() == VERSION_LEN && is_lower_hex(text)
}

/// Whether `text` is made of lowercase hex digits only (and is not empty).
pub fn is_lower_hex(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn sorted_table(table: toml::Table) -> toml::Table {
    let mut entries: Vec<(String, toml::Value)> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
        .into_iter()
        .map(|(key, value)| (key, sorted_value(value)))
        .collect()
}

fn sorted_value(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(table) => toml::Value::Table(sorted_table(table)),
        toml::Value::Array(items) => {
            // Array order is meaningful (tier levels go upwards): only the tables inside are
            // sorted.
            toml::Value::Array(items.into_iter().map(sorted_value).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_written_with_keys_in_another_order_normalises_to_the_same_text() {
        // Given the same values, keys in two orders, one nested table inline
        let a = "b = 1\na = \"x\"\n[t]\nz = [1, 2]\ny = { q = 1, p = 2 }\n";
        let b = "a = 'x' # a comment\nb = 1\n\n[t]\ny.p = 2\ny.q = 1\nz = [ 1,2 ]\n";
        // When normalised, then the texts are equal, and so are the versions
        assert_eq!(normalize(a).unwrap(), normalize(b).unwrap());
        assert_eq!(
            version_of(&normalize(a).unwrap()),
            version_of(&normalize(b).unwrap())
        );
    }

    #[test]
    fn the_order_of_an_array_is_kept() {
        // Given two arrays with the same items in another order
        let a = normalize("x = [1, 2]").unwrap();
        let b = normalize("x = [2, 1]").unwrap();
        // Then they are different programs
        assert_ne!(a, b);
    }

    #[test]
    fn a_version_is_64_lowercase_hex_digits() {
        let version = version_of("x = 1\n");
        assert!(is_version(&version), "{version}");
        assert!(!is_version(&version.to_uppercase()));
        assert!(!is_version(&version[..63]));
    }

    #[test]
    fn text_that_is_not_toml_is_refused() {
        assert!(matches!(
            ProgramSource::from_toml_str("this is = = not toml"),
            Err(ProgramError::Parse(_))
        ));
    }

    #[test]
    fn a_program_too_large_for_one_event_is_refused() {
        // Given a text whose one string is longer than an event may hold
        let text = format!("x = \"{}\"\n", "a".repeat(MAX_PROGRAM_TEXT_BYTES));
        // Then it is refused, naming the limit
        match ProgramSource::from_toml_str(&text) {
            Err(ProgramError::Invalid { reason, .. }) => {
                assert!(
                    reason.contains(&MAX_PROGRAM_TEXT_BYTES.to_string()),
                    "{reason}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
