//! Ledger integrity whatever the caller sends: the server's clock decides what is pending,
//! spendable and expired; business times outside the window are refused; clawbacks are exact;
//! sales are scoped by store. One case per bug found by trying the engine as users would.

use crate::support;

use loyalty_core::*;
use support::*;

const BOUGHT: &str = "2026-01-10T10:00:00Z";

fn window_error(occurred_at: &str, now: &str) -> DomainError {
    let (earliest, latest) = ServerTime::at(t(now)).accepted();
    DomainError::OccurredAtOutsideWindow {
        occurred_at: t(occurred_at),
        earliest,
        latest,
    }
}

fn has_expiry(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::PointsExpired(_)))
}

// ---- a caller's clock never expires anything ----

#[test]
fn a_purchase_dated_a_year_ahead_is_refused_and_expires_nothing() {
    let now = "2026-02-01T10:00:00Z";
    given([enroll(), purchase("T1", BOUGHT, "40")])
        .when(server_at(now, purchase("T2", "2027-02-01T10:00:00Z", "5")))
        .then_err(window_error("2027-02-01T10:00:00Z", now));
}

#[test]
fn an_activity_refund_or_redemption_dated_a_year_ahead_is_refused() {
    let now = "2026-02-01T10:00:00Z";
    let ahead = "2027-02-01T10:00:00Z";
    for command in [
        activity("A1", "checkin", ahead),
        refund_amount("F1", "T1", ahead, "10"),
        redeem("R1", ahead, 10),
    ] {
        given([enroll(), purchase("T1", BOUGHT, "40")])
            .when(server_at(now, command))
            .then_err(window_error(ahead, now));
    }
}

/// The welcome lot expires at the end of January 2027 (23:00 UTC, midnight in Paris). A till a
/// few minutes ahead, inside the accepted skew, must not expire it before the server gets there.
#[test]
fn a_command_dated_just_past_an_expiry_expires_nothing_before_the_server_reaches_it() {
    let expiry = t("2027-01-31T23:00:00Z");
    let history = || given([enroll(), purchase("T1", "2027-01-30T10:00:00Z", "40")]);
    assert_eq!(
        history().state().lot(&lot("welcome:M1")).unwrap().expiry,
        LotExpiry::At(expiry)
    );
    let (server, till) = ("2027-01-31T22:58:00Z", "2027-01-31T23:02:00Z");
    for command in [
        activity("A1", "checkin", till),
        purchase("T2", till, "10"),
        refund_amount("F1", "T1", till, "10"),
    ] {
        let (decision, state) = history().when(server_at(server, command)).then_ok();
        assert!(!has_expiry(&decision.events), "{:?}", decision.events);
        assert_eq!(state.lot(&lot("welcome:M1")).unwrap().remaining, p(50));
    }
    // Once the server's clock passes the expiry, the same kind of command records it.
    let (decision, _) = history()
        .when(server_at(
            "2027-01-31T23:01:00Z",
            activity("A1", "checkin", "2027-01-31T23:01:00Z"),
        ))
        .then_ok();
    let expired = only!(decision.events, PointsExpired);
    assert_eq!(expired.lot_id, lot("welcome:M1"));
    assert_eq!(expired.expired_at, expiry);
    assert_eq!(expired.occurred_at, t("2027-01-31T23:01:00Z"));
}

#[test]
fn scheduled_expiry_cannot_run_ahead_of_the_server() {
    let now = "2027-01-31T22:00:00Z";
    given([enroll()])
        .when(server_at(now, expire("2028-01-01T00:00:00Z")))
        .then_err(DomainError::OccurredAtOutsideWindow {
            occurred_at: t("2028-01-01T00:00:00Z"),
            earliest: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            latest: t(now),
        });
}

// ---- a caller's clock never spends pending points ----

/// 200 points earned on 10 January are pending until the return window closes on 24 January
/// at 10:00 UTC; only the 50 welcome points are spendable before.
#[test]
fn a_redemption_dated_past_the_return_window_cannot_spend_pending_points() {
    let history = || given([enroll(), purchase("T1", BOUGHT, "200")]);
    history()
        .when(server_at(
            "2026-01-11T10:00:00Z",
            redeem("R1", "2026-01-25T10:00:00Z", 100),
        ))
        .then_err(window_error("2026-01-25T10:00:00Z", "2026-01-11T10:00:00Z"));
    // Inside the skew, dated just after the window closes: still pending by the server.
    history()
        .when(server_at(
            "2026-01-24T09:57:00Z",
            redeem("R1", "2026-01-24T10:01:00Z", 100),
        ))
        .then_err(DomainError::InsufficientPoints {
            available: p(50),
            requested: p(100),
        });
    // Once the server's clock is there, they are spendable.
    history()
        .when(server_at(
            "2026-01-24T10:00:00Z",
            redeem("R1", "2026-01-24T10:00:00Z", 100),
        ))
        .then_ok();
}

#[test]
fn goodwill_from_an_app_a_minute_ahead_is_spendable_at_once() {
    let (decision, state) = given([enroll()])
        .when(server_at(
            "2026-02-01T10:00:00Z",
            goodwill("C1", "2026-02-01T10:01:00Z", 30),
        ))
        .then_ok();
    let granted = only!(decision.events, GoodwillGranted);
    assert_eq!(granted.credit.spendable_from, t("2026-02-01T10:00:00Z"));
    assert_eq!(state.available(t("2026-02-01T10:00:00Z")), p(80));
}

// ---- backdating ----

#[test]
fn a_backdated_activity_before_the_enrollment_is_refused() {
    given([enroll()])
        .when(server_at(
            "2026-01-06T09:00:00Z",
            activity("A1", "survey", "2026-01-04T09:00:00Z"),
        ))
        .then_err(DomainError::BeforeEnrollment {
            enrolled_at: t(ENROLLED),
        });
}

#[test]
fn a_backdated_purchase_before_the_enrollment_is_refused() {
    given([enroll()])
        .when(server_at(
            "2026-01-06T09:00:00Z",
            purchase("T1", "2026-01-05T08:59:59Z", "10"),
        ))
        .then_err(DomainError::BeforeEnrollment {
            enrolled_at: t(ENROLLED),
        });
}

/// Backdating inside the window reaches the previous period, whose own limit still holds.
#[test]
fn a_backdated_activity_counts_against_the_limit_of_its_own_period() {
    let february = activity("A1", "survey", "2026-02-02T10:00:00Z");
    let (decision, _) = given([enroll(), february.clone()])
        .when(server_at(
            "2026-02-03T10:00:00Z",
            activity("A2", "survey", "2026-01-31T10:00:00Z"),
        ))
        .then_ok();
    assert_eq!(
        only!(decision.events, ActivityRewarded).period_key,
        "month:2026-01"
    );
    let (decision, _) = given([
        Step::from(enroll()),
        february.into(),
        server_at(
            "2026-02-03T10:00:00Z",
            activity("A2", "survey", "2026-01-31T10:00:00Z"),
        ),
    ])
    .when(server_at(
        "2026-02-03T11:00:00Z",
        activity("A3", "survey", "2026-01-30T10:00:00Z"),
    ))
    .then_ok();
    only!(decision.events, ActivityRefused);
}

#[test]
fn a_refund_dated_before_its_purchase_is_refused() {
    given([enroll(), purchase("T1", BOUGHT, "40")])
        .when(server_at(
            "2026-01-11T10:00:00Z",
            refund_amount("F1", "T1", "2026-01-10T09:00:00Z", "10"),
        ))
        .then_err(DomainError::RefundBeforePurchase {
            purchased_at: t(BOUGHT),
        });
}

// ---- the representable range ----

#[test]
fn the_end_of_time_and_the_last_century_are_outside_the_window() {
    for far in ["9999-12-31T23:59:59Z", "1900-01-01T00:00:00Z"] {
        given([enroll()])
            .when(server_at("2026-01-06T09:00:00Z", purchase("T1", far, "10")))
            .then_err(window_error(far, "2026-01-06T09:00:00Z"));
    }
}

/// A server whose own clock is in the year 9999: the welcome lot would expire in 10000, which
/// RFC 3339 cannot write. Refused rather than recorded unreadable.
#[test]
fn an_expiry_past_the_year_9999_is_refused() {
    given_nothing()
        .when(enroll_at("9999-06-01T00:00:00Z"))
        .then_err(DomainError::TimeOutOfRange);
}

// ---- exact clawbacks ----

/// In store S2 in May, 20 of eligible spend earns a 50-point bonus: 30 of coffee earn 30 + 50;
/// the 50 gift card earns nothing.
fn coffee_and_gift_card() -> Command {
    purchase_in(
        "S2",
        "T1",
        "2026-05-10T10:00:00Z",
        vec![
            line("LATTE", "drinks", "30"),
            line("GIFT", "gift-card", "50"),
        ],
    )
}

fn refund_in_s2(id: &str, lines: &[(u32, &str)]) -> Command {
    refund_at(
        id,
        "S2",
        "S2",
        "T1",
        "2026-05-11T10:00:00Z",
        lines_scope(lines),
    )
}

#[test]
fn refunding_only_the_gift_card_takes_nothing_back() {
    let (decision, _) = given([enroll(), coffee_and_gift_card()])
        .when(refund_in_s2("F1", &[(1, "50")]))
        .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.transaction_points, p(0));
    assert_eq!(refund.points, p(0));
    assert!(refund.debit.draws.is_empty());
}

#[test]
fn refunding_every_eligible_line_takes_the_whole_bonus_back() {
    let (decision, _) = given([enroll(), coffee_and_gift_card()])
        .when(refund_in_s2("F1", &[(0, "30")]))
        .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.transaction_points, p(50));
    assert_eq!(refund.points, p(80));
    assert!(
        !refund.completes_purchase,
        "the gift card is still not refunded"
    );
}

#[test]
fn the_bonus_goes_back_in_proportion_to_the_eligible_amount_refunded() {
    let (decision, _) = given([enroll(), coffee_and_gift_card()])
        .when(refund_in_s2("F1", &[(0, "15"), (1, "50")]))
        .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.transaction_points, p(25));
    assert_eq!(refund.points, p(40));
}

// ---- referrals end with their qualifying purchase ----

fn referred_and_bought() -> Given {
    given([enroll_referred_by("R9"), purchase("T1", BOUGHT, "20")])
}

#[test]
fn buy_refer_refund_takes_the_newcomers_bonus_back_and_says_why() {
    let (decision, state) = referred_and_bought()
        .when(refund_amount("F1", "T1", "2026-01-12T10:00:00Z", "20"))
        .then_ok();
    let revoked = only!(decision.events, ReferralRevoked);
    assert_eq!(revoked.referrer.as_str(), "R9");
    assert_eq!(revoked.reason, RevocationReason::PurchaseRefunded);
    assert_eq!(revoked.refund_id.as_str(), "F1");
    assert_eq!(revoked.points, p(100));
    assert_eq!(revoked.debit.draws, vec![draw("referee:S1:T1", 100)]);
    // Only the welcome points are left.
    assert_eq!(state.balance(t("2026-03-01T00:00:00Z")).balance, p(50));
    assert!(state.referral().unwrap().revoked);
}

#[test]
fn a_refund_below_the_qualifying_minimum_revokes_the_referral() {
    let (decision, _) = referred_and_bought()
        .when(refund_amount("F1", "T1", "2026-01-12T10:00:00Z", "6"))
        .then_ok();
    let revoked = only!(decision.events, ReferralRevoked);
    assert_eq!(revoked.reason, RevocationReason::BelowMinimum);
    assert_eq!(revoked.remaining_eligible_amount, d("14"));
}

#[test]
fn a_refund_that_leaves_the_minimum_keeps_the_referral() {
    let events = referred_and_bought()
        .when(refund_amount("F1", "T1", "2026-01-12T10:00:00Z", "5"))
        .then_events();
    none!(events, ReferralRevoked);
}

#[test]
fn a_revoked_referral_does_not_qualify_again() {
    let events = given([
        enroll_referred_by("R9"),
        purchase("T1", BOUGHT, "20"),
        refund_amount("F1", "T1", "2026-01-12T10:00:00Z", "20"),
    ])
    .when(purchase("T2", "2026-01-13T10:00:00Z", "50"))
    .then_events();
    none!(events, ReferralQualified);
}

#[test]
fn the_referrers_bonus_is_taken_back_from_its_own_lot_first() {
    let (decision, _) = given([enroll(), credit_referral("N1", "2026-02-01T10:00:00Z")])
        .when(revoke_referral("N1", "2026-02-03T10:00:00Z"))
        .then_ok();
    let revoked = only!(decision.events, ReferralBonusRevoked);
    assert_eq!(revoked.points, p(200));
    assert_eq!(revoked.debit.draws, vec![draw("referral:N1", 200)]);
    assert_eq!(
        decision.outcome,
        Outcome::ReferralBonusRevoked {
            newcomer: MemberId::parse("N1").unwrap(),
            points_clawed_back: p(200),
            debt_added: p(0),
            shortfall: p(0),
        }
    );
}

#[test]
fn a_spent_referral_bonus_is_taken_back_under_the_negative_balance_policy() {
    let history = [
        enroll(),
        credit_referral("N1", "2026-02-01T10:00:00Z"),
        redeem("R1", "2026-02-20T10:00:00Z", 250),
    ];
    let revoke = revoke_referral("N1", "2026-02-21T10:00:00Z");
    let (allow, state) = given(history.clone()).when(revoke.clone()).then_ok();
    let debit = only!(allow.events, ReferralBonusRevoked).debit;
    assert_eq!(debit.debt_added, p(200));
    assert_eq!(state.debt(), p(200));
    let clamp = program_with("policy = \"allow\"", "policy = \"clamp\"");
    let (clamped, state) = given_with(clamp, history).when(revoke).then_ok();
    let debit = only!(clamped.events, ReferralBonusRevoked).debit;
    assert_eq!((debit.debt_added, debit.shortfall), (p(0), p(200)));
    assert_eq!(state.lifetime().shortfall, p(200));
}

#[test]
fn a_bonus_for_a_referral_already_revoked_is_refused() {
    given([enroll(), revoke_referral("N1", "2026-02-01T10:00:00Z")])
        .when(credit_referral("N1", "2026-02-01T10:00:00Z"))
        .then_err(DomainError::ReferralRevoked {
            newcomer: "N1".into(),
        });
}

// ---- sales are scoped by store ----

fn one_latte(amount: &str) -> Vec<PurchaseLine> {
    vec![line("LATTE", "drinks", amount)]
}

#[test]
fn the_same_transaction_id_at_two_stores_is_two_sales() {
    let (decision, state) = given([enroll(), purchase_in("S1", "1001", BOUGHT, one_latte("10"))])
        .when(purchase_in(
            "S2",
            "1001",
            "2026-01-10T11:00:00Z",
            one_latte("20"),
        ))
        .then_ok();
    let recorded = only!(decision.events, PurchaseRecorded);
    assert_eq!(recorded.credit.unwrap().lot_id, lot("purchase:S2:1001"));
    assert_eq!(state.lot(&lot("purchase:S1:1001")).unwrap().points, p(10));
    assert_eq!(state.lot(&lot("purchase:S2:1001")).unwrap().points, p(20));
}

#[test]
fn a_refund_names_the_sale_by_its_store_and_records_the_store_that_took_it() {
    let (decision, _) = given([
        enroll(),
        purchase_in("S1", "1001", BOUGHT, one_latte("10")),
        purchase_in("S2", "1001", BOUGHT, one_latte("20")),
    ])
    .when(refund_at(
        "F1",
        "S1",
        "S2",
        "1001",
        "2026-01-11T10:00:00Z",
        RefundScope::Amount(d("20")),
    ))
    .then_ok();
    let refund = only!(decision.events, RefundRecorded);
    assert_eq!(refund.store, Some(store("S1")));
    assert_eq!(refund.purchase_store, Some(store("S2")));
    assert_eq!(refund.debit.draws, vec![draw("purchase:S2:1001", 20)]);
}

#[test]
fn a_refund_id_retried_from_another_store_is_an_idempotency_conflict() {
    let refund = |taken_at: &str| {
        refund_at(
            "F1",
            taken_at,
            "S1",
            "1001",
            "2026-01-11T10:00:00Z",
            RefundScope::Amount(d("5")),
        )
    };
    let history = || {
        given([
            enroll(),
            purchase_in("S1", "1001", BOUGHT, one_latte("10")),
            refund("S1"),
        ])
    };
    history().when(refund("S1")).then_replayed();
    history()
        .when(refund("S2"))
        .then_err(DomainError::IdempotencyConflict {
            client_id: "refund:F1".into(),
        });
}

// ---- rounding ----

fn five_lines_at_1_99() -> Command {
    purchase_lines("T1", BOUGHT, vec![line("LATTE", "drinks", "1.99"); 5])
}

#[test]
fn five_lines_at_1_99_earn_what_9_95_earns_when_rounding_per_transaction() {
    let (decision, _) = given([enroll()]).when(five_lines_at_1_99()).then_ok();
    let recorded = only!(decision.events, PurchaseRecorded);
    assert_eq!(recorded.points, p(9));
    let lines: Vec<i64> = recorded.lines.iter().map(|l| l.points.value()).collect();
    assert_eq!(lines, vec![2, 2, 2, 2, 1]);
    // Each line's rules add up to its points; the share it got is its `rounding` rule.
    for l in &recorded.lines {
        let sum: i64 = l.rules.iter().map(|r| r.points.value()).sum();
        assert_eq!(sum, l.points.value());
    }
    assert_eq!(recorded.lines[0].rules[1].rule, "rounding");
}

#[test]
fn five_lines_at_1_99_earn_five_points_when_the_program_rounds_per_line() {
    let per_line = program_with(
        "rounding = \"floor\"",
        "rounding = \"floor\"\nrounding_scope = \"line\"",
    );
    let (decision, _) = given_with(per_line, [enroll()])
        .when(five_lines_at_1_99())
        .then_ok();
    assert_eq!(only!(decision.events, PurchaseRecorded).points, p(5));
}

#[test]
fn a_refund_of_one_line_takes_back_the_share_that_line_was_given() {
    let (decision, _) = given([enroll(), five_lines_at_1_99()])
        .when(refund_lines(
            "F1",
            "T1",
            "2026-01-11T10:00:00Z",
            &[(4, "1.99")],
        ))
        .then_ok();
    assert_eq!(only!(decision.events, RefundRecorded).points, p(1));
}
