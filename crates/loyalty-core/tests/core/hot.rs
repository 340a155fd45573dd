//! The hot state: what compaction retires is told apart and sent to the full history; what it
//! keeps decides exactly as the full state does; it stays small however long the history.

use crate::support;

use chrono::Duration;
use loyalty_core::*;
use support::*;

fn tiny(program: &Program) -> HotLimits {
    HotLimits {
        max_purchases: 2,
        max_redemptions: 1,
        max_processed: 3,
        ..HotLimits::new(program, TimeWindow::DEFAULT)
    }
}

/// The full state of a history, and the same compacted to tiny limits.
fn full_and_hot<S: Into<Step>, I: IntoIterator<Item = S>>(steps: I) -> (MemberState, MemberState) {
    let full = given(steps).state().clone();
    let mut hot = full.clone();
    hot.compact(&tiny(&program()));
    (full, hot)
}

fn decide_at(state: &MemberState, command: &Command) -> Result<Decision, DomainError> {
    decide(
        state,
        command,
        &program(),
        ServerTime::at(command.occurred_at()),
    )
}

fn four_purchases() -> Vec<Command> {
    vec![
        enroll(),
        purchase("T1", "2026-01-10T10:00:00Z", "40"),
        purchase("T2", "2026-01-11T10:00:00Z", "41"),
        purchase("T3", "2026-01-12T10:00:00Z", "42"),
        purchase("T4", "2026-01-13T10:00:00Z", "43"),
    ]
}

#[test]
fn a_retry_of_a_retired_transaction_id_is_sent_to_the_full_history_which_replays_it() {
    let (full, hot) = full_and_hot(four_purchases());
    let retry = purchase("T1", "2026-01-10T10:00:00Z", "40");
    assert!(hot.needs_history(&retry));
    assert_eq!(decide_at(&hot, &retry), Err(DomainError::HistoryNeeded));
    assert!(decide_at(&full, &retry).unwrap().replayed);
    // The same id with other content: still the full history's call (a conflict).
    let reused = purchase("T1", "2026-01-10T10:00:00Z", "99");
    assert!(hot.needs_history(&reused));
    assert!(matches!(
        decide_at(&full, &reused),
        Err(DomainError::IdempotencyConflict { .. })
    ));
}

#[test]
fn a_refund_of_a_retired_purchase_is_sent_to_the_full_history() {
    let (full, hot) = full_and_hot(four_purchases());
    let refund = refund_amount("F1", "T1", "2026-01-14T10:00:00Z", "10");
    assert!(
        hot.purchase(&PurchaseKey::new(
            store(STORE),
            TransactionId::parse("T1").unwrap()
        ))
        .is_none()
    );
    assert!(hot.needs_history(&refund));
    assert_eq!(
        only!(decide_at(&full, &refund).unwrap().events, RefundRecorded).points,
        p(10)
    );
    // A purchase still kept is refunded on the hot state, exactly as on the full one.
    let recent = refund_amount("F2", "T4", "2026-01-14T10:00:00Z", "10");
    assert!(!hot.needs_history(&recent));
    assert_eq!(decide_at(&hot, &recent), decide_at(&full, &recent));
    // A purchase that never was is unknown to both.
    let unknown = refund_amount("F3", "T9", "2026-01-14T10:00:00Z", "10");
    assert!(!hot.needs_history(&unknown));
    assert_eq!(decide_at(&hot, &unknown), decide_at(&full, &unknown));
}

#[test]
fn a_cancellation_of_a_retired_redemption_is_sent_to_the_full_history() {
    let (full, hot) = full_and_hot([
        enroll(),
        redeem("R1", "2026-01-06T10:00:00Z", 10),
        redeem("R2", "2026-01-07T10:00:00Z", 10),
    ]);
    let old = cancel("R1", "2026-01-08T10:00:00Z");
    assert!(hot.needs_history(&old));
    assert!(decide_at(&full, &old).is_ok());
    let recent = cancel("R2", "2026-01-08T10:00:00Z");
    assert!(!hot.needs_history(&recent));
    assert_eq!(decide_at(&hot, &recent), decide_at(&full, &recent));
}

/// Activity-limit periods leave the hot state only once no accepted activity can reach them:
/// a check-in backdated inside the window into a day already used is still refused.
#[test]
fn a_backdated_activity_into_a_used_period_is_refused_by_the_hot_state_too() {
    let mut steps: Vec<Step> = vec![
        enroll().into(),
        activity("A1", "checkin", "2026-02-01T10:00:00Z").into(),
    ];
    // Later business: the newest business time moves six days on.
    for (i, day) in (2..=7).enumerate() {
        steps.push(purchase(&format!("T{i}"), &format!("2026-02-0{day}T10:00:00Z"), "5").into());
    }
    let (full, hot) = full_and_hot(steps);
    let backdated = server_at(
        "2026-02-07T11:00:00Z",
        activity("A2", "checkin", "2026-02-01T18:00:00Z"),
    );
    assert!(!hot.needs_history(&backdated.command));
    let on = |state: &MemberState| {
        decide(
            state,
            &backdated.command,
            &program(),
            ServerTime::at(backdated.now),
        )
    };
    assert_eq!(on(&hot), on(&full));
    only!(on(&hot).unwrap().events, ActivityRefused);
}

#[test]
fn a_review_dated_long_ago_is_sent_to_the_full_history() {
    let (_, hot) = full_and_hot([enroll(), purchase("T1", "2027-03-01T10:00:00Z", "300")]);
    assert!(hot.needs_history(&review("2026-06-01T00:00:00Z")));
    assert!(!hot.needs_history(&review("2027-03-01T10:00:00Z")));
}

#[test]
fn the_hot_state_of_a_long_history_stays_small_while_the_full_one_grows() {
    let limits = HotLimits::new(&program(), TimeWindow::DEFAULT);
    let mut hot = given([enroll()]).state().clone();
    let mut full = hot.clone();
    let start = t("2026-01-06T10:00:00Z");
    let (mut hot_at_two_years, mut full_at_two_years) = (0, 0);
    for i in 0..3_000 {
        if i == 2_000 {
            (hot_at_two_years, full_at_two_years) = (hot.approx_bytes(), full.approx_bytes());
        }
        // Three years of business, a purchase or a redemption every nine hours.
        let at = start + Duration::hours(9 * i);
        let at = at.to_rfc3339();
        let c = if i % 3 == 2 {
            redeem(&format!("R{i}"), &at, 6)
        } else {
            purchase(&format!("T{i}"), &at, "3")
        };
        let server = ServerTime::at(c.occurred_at());
        let Ok(decision) = decide(&hot, &c, &program(), server) else {
            continue;
        };
        for e in &decision.events {
            evolve(&mut hot, e);
            evolve(&mut full, e);
        }
        hot.compact(&limits);
    }
    assert!(full.purchases().count() >= 1_900);
    assert!(hot.purchases().count() <= limits.max_purchases);
    assert!(hot.redemptions().count() <= limits.max_redemptions);
    // Past the horizons (a year of unspent lots, two of tier-metric entries), the hot state
    // stops growing; the full one grows with every event.
    assert!(
        hot.approx_bytes() <= hot_at_two_years * 11 / 10,
        "{} after three years, {} after two",
        hot.approx_bytes(),
        hot_at_two_years
    );
    assert!(full.approx_bytes() > full_at_two_years * 4 / 3);
    // What the member sees is the same.
    let now = start + Duration::hours(9 * 3_000);
    assert_eq!(hot.balance(now), full.balance(now));
}
