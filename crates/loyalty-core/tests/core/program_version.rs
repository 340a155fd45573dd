//! The program's version: the hash of its normalised text, so the same rules written with
//! other comments, spacing or key order are the same version, and any changed value is another.

use loyalty_core::program::version::{is_version, normalize, version_of};
use loyalty_core::{Program, ProgramError};

const DEMO: &str = include_str!("../../../../config/program.toml");

fn demo() -> Program {
    Program::from_toml_str(DEMO).expect("the demo program is valid")
}

/// The demo without its comments: a `#` after an even number of quotes on its line starts
/// one (the demo has no `#` inside a string, nor escaped quotes).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let comment = line
                .char_indices()
                .find(|&(at, c)| c == '#' && line[..at].matches('"').count() % 2 == 0);
            match comment {
                Some((at, _)) => line[..at].trim_end(),
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_version_is_the_sha256_of_the_normalised_text() {
    let p = demo();
    assert!(is_version(p.version()), "{}", p.version());
    assert_eq!(p.version(), version_of(p.normalized_text()));
    assert_eq!(p.rules_version(), p.version());
}

#[test]
fn the_same_program_with_other_comments_and_spacing_has_the_same_version() {
    // Given the demo program without its comments, with blank lines, other spacing around `=`
    // and `[program]`'s keys in reverse order
    let bare = without_comments(DEMO);
    assert_ne!(bare, DEMO);
    let spaced = bare.replace(" = ", "   =\t").replace("\n[", "\n\n\n[");
    let start = spaced.find("[program]\n").unwrap() + "[program]\n".len();
    let end = start + spaced[start..].find("\n\n").unwrap();
    let mut keys: Vec<&str> = spaced[start..end].lines().collect();
    keys.reverse();
    let reordered = format!("{}{}{}", &spaced[..start], keys.join("\n"), &spaced[end..]);
    // When it is loaded, then the version is the demo's
    let p = Program::from_toml_str(&reordered).expect("still valid");
    assert_eq!(p.version(), demo().version());
    assert_eq!(p.normalized_text(), demo().normalized_text());
}

#[test]
fn a_changed_value_or_label_is_another_version() {
    let base = demo();
    for (from, to) in [
        ("points_per_unit = \"1\"", "points_per_unit = \"1.5\""),
        ("label = \"2026.11.2\"", "label = \"2026.11.3\""),
    ] {
        assert!(DEMO.contains(from), "{from}");
        let changed = Program::from_toml_str(&DEMO.replacen(from, to, 1)).unwrap();
        assert_ne!(changed.version(), base.version(), "{from} -> {to}");
    }
}

#[test]
fn the_normalised_text_loads_as_the_same_program_and_normalises_to_itself() {
    let p = demo();
    let again = Program::from_toml_str(p.normalized_text()).expect("the normalised text loads");
    assert_eq!(again, p);
    assert_eq!(normalize(p.normalized_text()).unwrap(), p.normalized_text());
    assert!(!p.normalized_text().contains('#'), "comments are dropped");
}

#[test]
fn a_program_file_written_before_versions_were_hashes_loads_with_its_label() {
    // Given a program that names its label `rules_version`, as files did before
    let old = DEMO.replacen("label = ", "rules_version = ", 1);
    let p = Program::from_toml_str(&old).expect("an older program file still loads");
    // Then the old value is the label, and the version is a hash
    assert_eq!(p.label(), Some("2026.11.2"));
    assert!(is_version(p.version()));
    // A program with no label at all loads too
    let start = DEMO.find("label = ").unwrap();
    let end = start + DEMO[start..].find('\n').unwrap();
    let unlabelled = format!("{}{}", &DEMO[..start], &DEMO[end..]);
    assert_eq!(Program::from_toml_str(&unlabelled).unwrap().label(), None);
    // Both names at once are refused
    let both = DEMO.replacen("label = ", "rules_version = \"x\"\nlabel = ", 1);
    assert!(matches!(
        Program::from_toml_str(&both),
        Err(ProgramError::Parse(_))
    ));
}

#[test]
fn a_label_longer_than_64_characters_is_refused() {
    let long = DEMO.replacen(
        "label = \"2026.11.2\"",
        &format!("label = \"{}\"", "x".repeat(65)),
        1,
    );
    match Program::from_toml_str(&long) {
        Err(ProgramError::Invalid { field, .. }) => assert_eq!(field, "program.label"),
        other => panic!("{other:?}"),
    }
}
