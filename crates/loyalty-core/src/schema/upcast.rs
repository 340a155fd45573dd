//! Upcasting: the steps that turn a stored document of an older schema version into the
//! document of the next one, over `serde_json::Value`, so that only the newest DTO of each type
//! has to decode. A document is upcast step by step (v1 -> v2 -> v3...), each step written
//! once, when its version is introduced, and never changed afterwards: history written by any
//! release stays readable by every later one.
//!
//! Two types are at version 2 (`PointsAdjusted` and `GoodwillGranted`, whose note became an
//! object when notes began to be sealed); every other is at version 1: fields added since v1
//! was first written (`activity_deadline`, a reinstatement's `reason_code`) are optional fields
//! with `#[serde(default)]`, which need no new version. `schema/mod.rs` says how a version is
//! added.

use serde_json::{Map, Value};

/// One step: turns a document of `event_type` at version `from` into one at `from + 1`. It gets
/// the document's top-level object and fails with a reason when the document cannot be
/// upcast (a field it needs is missing, say).
#[derive(Clone, Copy)]
pub struct Step {
    pub event_type: &'static str,
    pub from: u32,
    pub apply: fn(&mut Map<String, Value>) -> Result<(), String>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Step({} v{} -> v{})",
            self.event_type,
            self.from,
            self.from + 1
        )
    }
}

/// Every step this build knows, for every type. A type's versions run from 1 to 1 + the number
/// of its steps, without gaps (checked by the tests).
pub const STEPS: &[Step] = &[
    Step {
        event_type: "PointsAdjusted",
        from: 1,
        apply: note_becomes_an_object,
    },
    Step {
        event_type: "GoodwillGranted",
        from: 1,
        apply: note_becomes_an_object,
    },
];

/// v1 -> v2 of the two types with a support note: the note, a string in v1, is an object in
/// v2 (`{"plain": text}` or `{"sealed": {...}}`), because notes are sealed since v2. A v1 note
/// was written in the clear, so it becomes `{"plain": text}`.
fn note_becomes_an_object(doc: &mut Map<String, Value>) -> Result<(), String> {
    match doc.remove("note") {
        Some(Value::String(text)) => {
            let mut note = Map::new();
            note.insert("plain".to_owned(), Value::String(text));
            doc.insert("note".to_owned(), Value::Object(note));
            Ok(())
        }
        Some(other) => Err(format!("a v1 note is a string, not {other}")),
        None => Err("a v1 document has a note".to_owned()),
    }
}

/// The newest version of `event_type` under `steps` (1 when it has none).
pub(super) fn newest_in(steps: &[Step], event_type: &str) -> u32 {
    let count = steps.iter().filter(|s| s.event_type == event_type).count();
    1 + u32::try_from(count).unwrap_or(u32::MAX - 1)
}

/// Upcasts `doc` of `event_type` from version `from` to the newest version under `steps`.
/// A document already at the newest version comes back untouched.
pub(super) fn upcast_in(
    steps: &[Step],
    event_type: &str,
    from: u32,
    mut doc: Value,
) -> Result<Value, String> {
    let newest = newest_in(steps, event_type);
    if from == 0 || from > newest {
        return Err(format!(
            "{event_type} has no schema version {from} (this build knows 1 to {newest})"
        ));
    }
    for version in from..newest {
        let step = steps
            .iter()
            .find(|s| s.event_type == event_type && s.from == version)
            .ok_or_else(|| format!("no upcast of {event_type} from version {version}"))?;
        let object = doc
            .as_object_mut()
            .ok_or_else(|| format!("a {event_type} v{version} document is not a JSON object"))?;
        (step.apply)(object).map_err(|why| {
            format!(
                "upcasting {event_type} from v{version} to v{}: {why}",
                version + 1
            )
        })?;
    }
    Ok(doc)
}

/// A step's building block: the field `from` is now called `to`. A document without `from` is
/// left as it is (the field was optional); one that already has `to` is refused, since the
/// rename would lose one of the two values.
pub fn rename_field(doc: &mut Map<String, Value>, from: &str, to: &str) -> Result<(), String> {
    if doc.contains_key(to) {
        return Err(format!("both {from:?} and {to:?} are present"));
    }
    if let Some(value) = doc.remove(from) {
        doc.insert(to.to_owned(), value);
    }
    Ok(())
}

/// A step's building block: a field that the new version requires, with the value that stands
/// for "not recorded" in documents written before it existed. A value already present is kept.
pub fn add_field(doc: &mut Map<String, Value>, field: &str, value: Value) {
    doc.entry(field.to_owned()).or_insert(value);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rename_note(doc: &mut Map<String, Value>) -> Result<(), String> {
        rename_field(doc, "note", "support_note")
    }

    fn add_key_id(doc: &mut Map<String, Value>) -> Result<(), String> {
        add_field(doc, "key_id", Value::Null);
        Ok(())
    }

    /// Two versions after v1 for one type: a rename, then an added field.
    const TABLE: &[Step] = &[
        Step {
            event_type: "GoodwillGranted",
            from: 2,
            apply: add_key_id,
        },
        Step {
            event_type: "GoodwillGranted",
            from: 1,
            apply: rename_note,
        },
    ];

    #[test]
    fn a_type_without_steps_is_at_version_one_and_its_documents_pass_unchanged() {
        let doc = json!({"points": 5, "note": "kept as is"});
        assert_eq!(newest_in(TABLE, "PointsAdjusted"), 1);
        assert_eq!(upcast_in(TABLE, "PointsAdjusted", 1, doc.clone()), Ok(doc));
    }

    #[test]
    fn an_old_document_goes_through_every_step_in_version_order() {
        // Given a v1 goodwill document, and steps listed out of order
        let v1 = json!({"complaint_id": "C1", "note": "late delivery"});
        // When it is upcast
        let upcast = upcast_in(TABLE, "GoodwillGranted", 1, v1).unwrap();
        // Then it was renamed (v2), then given the new field (v3)
        assert_eq!(newest_in(TABLE, "GoodwillGranted"), 3);
        assert_eq!(
            upcast,
            json!({"complaint_id": "C1", "support_note": "late delivery", "key_id": null})
        );
    }

    #[test]
    fn a_document_between_versions_goes_through_the_remaining_steps_only() {
        let v2 = json!({"complaint_id": "C1", "support_note": "x", "key_id": "k-7"});
        let upcast = upcast_in(TABLE, "GoodwillGranted", 2, v2.clone()).unwrap();
        // The present value of the added field is kept.
        assert_eq!(upcast, v2);
        assert_eq!(upcast_in(TABLE, "GoodwillGranted", 3, v2.clone()), Ok(v2));
    }

    #[test]
    fn a_version_outside_the_known_ones_or_a_broken_document_is_refused_with_a_reason() {
        let doc = json!({"note": "x"});
        let newer = upcast_in(TABLE, "GoodwillGranted", 4, doc.clone()).unwrap_err();
        assert!(newer.contains("no schema version 4"), "{newer}");
        assert!(upcast_in(TABLE, "GoodwillGranted", 0, doc).is_err());
        let clash = json!({"note": "a", "support_note": "b"});
        let why = upcast_in(TABLE, "GoodwillGranted", 1, clash).unwrap_err();
        assert!(why.contains("v1 to v2") && why.contains("both"), "{why}");
        let not_an_object = upcast_in(TABLE, "GoodwillGranted", 1, json!([1])).unwrap_err();
        assert!(
            not_an_object.contains("not a JSON object"),
            "{not_an_object}"
        );
    }

    #[test]
    fn a_gap_in_a_types_steps_is_refused() {
        const GAP: &[Step] = &[
            Step {
                event_type: "GoodwillGranted",
                from: 1,
                apply: rename_note,
            },
            Step {
                event_type: "GoodwillGranted",
                from: 3,
                apply: add_key_id,
            },
        ];
        let why = upcast_in(GAP, "GoodwillGranted", 1, json!({})).unwrap_err();
        assert!(
            why.contains("no upcast of GoodwillGranted from version 2"),
            "{why}"
        );
    }

    #[test]
    fn the_real_table_has_one_step_per_version_of_every_type_and_names_only_known_types() {
        let types = super::super::EVENT_TYPES;
        for step in STEPS {
            assert!(
                types.contains(&step.event_type),
                "{step:?} names an unknown type"
            );
        }
        let mut newest_of_all = 0;
        for event_type in types {
            let newest = newest_in(STEPS, event_type);
            for from in 1..newest {
                let steps = STEPS
                    .iter()
                    .filter(|s| s.event_type == *event_type && s.from == from)
                    .count();
                assert_eq!(steps, 1, "{event_type} needs exactly one step from v{from}");
            }
            newest_of_all = newest_of_all.max(newest);
        }
        // What readers compare with to tell a newer writer's events (the webhooks do).
        assert_eq!(newest_of_all, super::super::CURRENT_SCHEMA_VERSION);
    }

    #[test]
    fn a_v1_note_in_the_clear_becomes_a_plain_note_object_in_v2() {
        let v1 = json!({"adjustment_id": "A1", "note": "called twice"});
        let v2 = upcast_in(STEPS, "PointsAdjusted", 1, v1).unwrap();
        assert_eq!(
            v2,
            json!({"adjustment_id": "A1", "note": {"plain": "called twice"}})
        );
        let missing = upcast_in(STEPS, "GoodwillGranted", 1, json!({})).unwrap_err();
        assert!(missing.contains("has a note"), "{missing}");
        let odd = upcast_in(STEPS, "GoodwillGranted", 1, json!({"note": 3})).unwrap_err();
        assert!(odd.contains("is a string"), "{odd}");
    }
}
