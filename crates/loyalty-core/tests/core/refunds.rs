//! Refunds: proportional clawback per lot, exact remainder on completion, debt or shortfall,
//! qualifying spend, and every rejection.

use crate::support;

use loyalty_core::*;
use support::*;

const BOUGHT: &str = "2026-01-10T10:00:00Z";
const LATER: &str = "2026-01-12T10:00:00Z";

fn basket() -> Command {
    // 4 + 24 + 0 = 28 points.
    purchase_lines(
        "T1",
        BOUGHT,
        vec![
            line("LATTE", "drinks", "4.50"),
            line("BEANS", "beans", "12.00"),
            line("GIFT", "gift-card", "20.00"),
        ],
    )
}

#[test]
fn a_partial_refund_claws_back_in_proportion_from_the_purchases_own_lot() {
    let (decision, state) = given([enroll(), basket()])
        .when(refund_lines("F1", "T1", LATER, &[(1, "3.00")]))
        .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.points, p(6)); // 24 x 3 / 12
    assert_eq!(refund.debit.draws, vec![draw("purchase:S1:T1", 6)]);
    assert_eq!(refund.eligible_amount, d("3.00"));
    assert!(!refund.completes_purchase);
    assert_eq!(
        decision.outcome,
        Outcome::RefundRecorded {
            refund_id: RefundId::parse("F1").unwrap(),
            transaction_id: TransactionId::parse("T1").unwrap(),
            points_clawed_back: p(6),
            debt_added: p(0),
            shortfall: p(0),
        }
    );
    assert_eq!(state.lot(&lot("purchase:S1:T1")).unwrap().remaining, p(22));
}

#[test]
fn a_full_refund_takes_back_the_whole_award() {
    let events = given([enroll(), basket()])
        .when(refund_amount("F1", "T1", LATER, "36.50"))
        .then_events();
    let refund = only!(events, RefundRecorded);
    assert_eq!(refund.points, p(28));
    assert!(refund.completes_purchase);
}

#[test]
fn the_refund_that_completes_a_purchase_takes_exactly_the_remainder() {
    // 3.50 of beans earn 3 (floored base) + 4 (multiplier) = 7 points.
    let beans = purchase_lines("T1", BOUGHT, vec![line("BEANS", "beans", "3.50")]);
    let given_refunds = given([
        enroll(),
        beans,
        refund_lines("F1", "T1", LATER, &[(0, "1.00")]),
        refund_lines("F2", "T1", LATER, &[(0, "1.00")]),
    ]);
    let clawed: i64 = given_refunds
        .history()
        .iter()
        .filter_map(|e| match e {
            Event::RefundRecorded(r) => Some(r.points.value()),
            _ => None,
        })
        .sum();
    assert_eq!(clawed, 4); // floor(7 x 1/3.5) = 2, then floor(7 x 2/3.5) - 2 = 2
    let events = given_refunds
        .when(refund_lines("F3", "T1", LATER, &[(0, "1.50")]))
        .then_events();
    let last = only!(events, RefundRecorded);
    assert_eq!(last.points, p(3));
    assert!(last.completes_purchase);
}

#[test]
fn a_refund_by_amount_spreads_over_the_lines_in_proportion() {
    // Two lines of 10 and 30: a refund of 20 takes 5 and 15.
    let two = purchase_lines(
        "T1",
        BOUGHT,
        vec![line("LATTE", "drinks", "10"), line("CAKE", "pastry", "30")],
    );
    let events = given([enroll(), two])
        .when(refund_amount("F1", "T1", LATER, "20"))
        .then_events();
    let refund = only!(events, RefundRecorded);
    let spread: Vec<_> = refund.lines.iter().map(|l| (l.line, l.amount)).collect();
    assert_eq!(spread, vec![(0, d("5")), (1, d("15"))]);
    assert_eq!(refund.points, p(20));
}

#[test]
fn refunding_an_excluded_line_takes_no_points_and_no_qualifying_spend() {
    let events = given([enroll(), basket()])
        .when(refund_lines("F1", "T1", LATER, &[(2, "20.00")]))
        .then_events();
    let refund = only!(events, RefundRecorded);
    assert_eq!(refund.points, p(0));
    assert_eq!(refund.eligible_amount, d("0"));
}

#[test]
fn a_refund_larger_than_what_is_left_of_a_line_is_refused() {
    given([
        enroll(),
        basket(),
        refund_lines("F1", "T1", LATER, &[(1, "3.00")]),
    ])
    .when(refund_lines("F2", "T1", LATER, &[(1, "10.00")]))
    .then_err(DomainError::RefundExceedsRemaining {
        line: Some(1),
        remaining: d("9.00"),
    });
}

#[test]
fn a_refund_larger_than_what_is_left_of_the_purchase_is_refused() {
    given([enroll(), basket()])
        .when(refund_amount("F1", "T1", LATER, "36.51"))
        .then_err(DomainError::RefundExceedsRemaining {
            line: None,
            remaining: d("36.50"),
        });
}

#[test]
fn a_fully_refunded_purchase_cannot_be_refunded_again() {
    given([
        enroll(),
        basket(),
        refund_amount("F1", "T1", LATER, "36.50"),
    ])
    .when(refund_amount("F2", "T1", LATER, "1"))
    .then_err(DomainError::RefundExceedsRemaining {
        line: None,
        remaining: d("0.00"),
    });
}

#[test]
fn a_refund_must_name_a_known_purchase_and_line() {
    given([enroll(), basket()])
        .when(refund_amount("F1", "T9", LATER, "1"))
        .then_err(DomainError::UnknownTransaction {
            store: STORE.into(),
            transaction_id: "T9".into(),
        });
    given([enroll(), basket()])
        .when(refund_lines("F1", "T1", LATER, &[(7, "1")]))
        .then_err(DomainError::UnknownLine { line: 7 });
    given([enroll(), basket()])
        .when(refund_lines("F1", "T1", LATER, &[(0, "1"), (0, "1")]))
        .then_err(DomainError::DuplicateRefundLine { line: 0 });
}

#[test]
fn a_refund_amount_must_be_positive_and_in_the_purchases_currency() {
    given([enroll(), basket()])
        .when(refund_amount("F1", "T1", LATER, "0"))
        .then_err(DomainError::AmountNotPositive { field: "amount" });
    let mut usd = refund_amount("F1", "T1", LATER, "1");
    if let Command::Refund(r) = &mut usd {
        r.currency = Currency::parse("USD").unwrap();
    }
    given([enroll(), basket()])
        .when(usd)
        .then_err(DomainError::CurrencyMismatch {
            expected: "EUR".into(),
            got: "USD".into(),
        });
}

/// Welcome 50 + T1 100, then 130 spent (welcome first, it is older): T1 keeps 20.
fn spent_most() -> Vec<Command> {
    vec![
        enroll(),
        purchase("T1", BOUGHT, "100"),
        redeem("R1", "2026-02-01T10:00:00Z", 130),
    ]
}

#[test]
fn a_clawback_larger_than_the_balance_leaves_a_debt_under_allow() {
    let (decision, state) = given(spent_most())
        .when(refund_amount("F1", "T1", "2026-02-02T10:00:00Z", "100"))
        .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.debit.draws, vec![draw("purchase:S1:T1", 20)]);
    assert_eq!(refund.debit.debt_added, p(80));
    let b = state.balance(t("2026-02-02T10:00:00Z"));
    assert_eq!((b.available, b.debt, b.balance), (p(0), p(80), p(-80)));
}

#[test]
fn later_earnings_repay_the_debt_first() {
    let mut history = spent_most();
    history.push(refund_amount("F1", "T1", "2026-02-02T10:00:00Z", "100"));
    let (decision, state) = given(history)
        .when(purchase("T2", "2026-02-03T10:00:00Z", "50"))
        .then_ok();
    let credit = only!(decision.events, PurchaseRecorded).credit.unwrap();
    assert_eq!((credit.points, credit.debt_repaid), (p(50), p(50)));
    assert_eq!(state.debt(), p(30));
    assert!(
        matches!(decision.outcome, Outcome::PurchaseRecorded { debt_repaid, .. } if debt_repaid == p(50))
    );
}

#[test]
fn a_debt_must_be_repaid_before_points_can_be_spent() {
    let mut history = spent_most();
    history.push(refund_amount("F1", "T1", "2026-02-02T10:00:00Z", "100"));
    history.push(goodwill("C1", "2026-02-02T11:00:00Z", 100));
    // Goodwill of 100 repays the debt of 80 first: 20 points are left to spend.
    given(history)
        .when(redeem("R2", "2026-03-01T10:00:00Z", 30))
        .then_err(DomainError::InsufficientPoints {
            available: p(20),
            requested: p(30),
        });
}

#[test]
fn under_clamp_the_shortfall_is_recorded_and_the_balance_stays_at_zero() {
    let clamp = program_with("policy = \"allow\"", "policy = \"clamp\"");
    let (decision, state) = given_with(clamp, spent_most())
        .when(refund_amount("F1", "T1", "2026-02-02T10:00:00Z", "100"))
        .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.debit.debt_added, p(0));
    assert_eq!(refund.debit.shortfall, p(80));
    let b = state.balance(t("2026-02-02T10:00:00Z"));
    assert_eq!(
        (b.balance, b.debt, b.lifetime.shortfall),
        (p(0), p(0), p(80))
    );
}

#[test]
fn a_clawback_takes_other_lots_soonest_expiring_first_once_its_own_lot_is_empty() {
    let history = vec![
        enroll(),
        purchase("T1", BOUGHT, "100"),
        purchase("T2", "2026-03-10T10:00:00Z", "60"),
        redeem("R1", "2026-04-01T10:00:00Z", 150), // welcome 50, T1 100
    ];
    let events = given(history)
        .when(refund_amount("F1", "T1", "2026-04-02T10:00:00Z", "50"))
        .then_events();
    let refund = only!(events, RefundRecorded);
    assert_eq!(refund.debit.draws, vec![draw("purchase:S1:T2", 50)]);
}

#[test]
fn a_refund_lowers_qualifying_spend_but_does_not_demote_before_a_review() {
    let (_, state) = given([enroll(), purchase("T1", BOUGHT, "250")])
        .when(refund_amount("F1", "T1", LATER, "100"))
        .then_ok();
    assert_eq!(state.qualifying_value(&program(), t(LATER)), d("150"));
    assert_eq!(state.tier().name, "Silver");
}

#[test]
fn the_same_refund_sent_twice_is_a_replay_and_a_changed_one_is_refused() {
    let f1 = refund_lines("F1", "T1", LATER, &[(1, "3.00")]);
    let original = given([enroll(), basket()]).when(f1.clone()).then_outcome();
    let replay = given([enroll(), basket(), f1.clone()])
        .when(f1)
        .then_replayed();
    assert_eq!(replay, original);
    given([
        enroll(),
        basket(),
        refund_lines("F1", "T1", LATER, &[(1, "3.00")]),
    ])
    .when(refund_lines("F1", "T1", LATER, &[(1, "4.00")]))
    .then_err(DomainError::IdempotencyConflict {
        client_id: "refund:F1".into(),
    });
}
