//! The pure helpers every backend shares: the concurrency check, the limits, the filter.
use loyalty_store::{
    Bytes, CurrentRevision, EventData, ExpectedRevision, Limits, StoreError, StreamFilter, Uuid,
};

fn event(data_bytes: usize) -> EventData {
    EventData {
        id: Uuid::new_v4(),
        event_type: "E".to_owned(),
        schema_version: 1,
        data: Bytes::from(vec![b'x'; data_bytes]),
        metadata: Bytes::new(),
    }
}

#[test]
fn each_expected_revision_accepts_exactly_the_matching_current_revisions() {
    use CurrentRevision::{Current, NoStream};
    use ExpectedRevision::{Any, Exact, StreamExists};
    let cases = [
        (ExpectedRevision::NoStream, NoStream, true),
        (ExpectedRevision::NoStream, Current(0), false),
        (Exact(3), Current(3), true),
        (Exact(3), Current(4), false),
        (Exact(0), NoStream, false),
        (StreamExists, Current(9), true),
        (StreamExists, NoStream, false),
        (Any, NoStream, true),
        (Any, Current(1), true),
    ];
    for (expected, actual, ok) in cases {
        let result = expected.check("member-1", actual);
        if ok {
            assert_eq!(result, Ok(()), "{expected} against {actual}");
        } else {
            assert_eq!(
                result,
                Err(StoreError::WrongExpectedRevision {
                    stream: "member-1".to_owned(),
                    expected,
                    actual
                }),
                "{expected} against {actual}"
            );
        }
    }
}

#[test]
fn an_append_exactly_at_the_limits_passes_and_one_past_them_fails() {
    let limits = Limits {
        max_append_events: 2,
        max_append_bytes: 10,
        max_page_size: 5,
        max_stream_name_bytes: 4,
    };
    // "E" (1 byte) + 4 bytes of data, twice: exactly 10 bytes in 2 events.
    assert_eq!(limits.check_append("abcd", &[event(4), event(4)]), Ok(()));
    assert_eq!(
        limits.check_append("abcd", &[event(4), event(5)]),
        Err(StoreError::AppendTooLarge {
            bytes: 11,
            limit: 10
        })
    );
    assert_eq!(
        limits.check_append("abcd", &[event(0), event(0), event(0)]),
        Err(StoreError::TooManyEvents { count: 3, limit: 2 })
    );
    assert_eq!(
        limits.check_append("abcde", &[event(0)]),
        Err(StoreError::InvalidStreamName("abcde".to_owned()))
    );
    assert_eq!(limits.check_page(5), Ok(()));
    assert_eq!(
        limits.check_page(6),
        Err(StoreError::PageTooLarge {
            requested: 6,
            limit: 5
        })
    );
}

#[test]
fn a_filter_never_matches_system_streams_and_otherwise_matches_its_prefixes() {
    let all = StreamFilter::all();
    assert!(all.matches("member-1"));
    assert!(!all.matches("$stats"));
    let members = StreamFilter::prefixes(["member-", "audit-"]);
    assert!(members.matches("member-1"));
    assert!(members.matches("audit-7"));
    assert!(!members.matches("tier-1"));
    assert!(!StreamFilter::prefixes(["$"]).matches("$stats"));
}
