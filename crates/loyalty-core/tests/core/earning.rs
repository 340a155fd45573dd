//! Enrollment and earning: welcome bonus, points per line and per rule, campaigns, caps, tiers,
//! referrals, and the idempotency of purchases.

use crate::support;

use loyalty_core::*;
use support::*;

fn rules(award: &LineAward) -> Vec<(String, i64)> {
    award
        .rules
        .iter()
        .map(|r| (r.rule.clone(), r.points.value()))
        .collect()
}

fn r(rule: &str, points: i64) -> (String, i64) {
    (rule.to_owned(), points)
}

fn basket() -> Vec<PurchaseLine> {
    vec![
        line("LATTE", "drinks", "4.50"),
        line("BEANS", "beans", "12.00"),
        line("GIFT", "gift-card", "20.00"),
    ]
}

#[test]
fn enrolling_awards_the_welcome_bonus_spendable_at_once() {
    // No return can take a welcome bonus back: the return window's pending period is not for it.
    let (decision, state) = given_nothing().when(enroll()).then_ok();
    let enrolled = only!(decision.events, Enrolled);
    let welcome = enrolled.welcome.expect("welcome credit");
    assert_eq!(welcome.points, p(50));
    assert_eq!(welcome.spendable_from, t(ENROLLED));
    assert_eq!(enrolled.tier.name, "Bronze");
    // The version of the rules that decided: the hash of the program's normalised text.
    assert_eq!(enrolled.rules_version, program().version());
    assert_eq!(enrolled.rules_version.len(), 64);
    assert_eq!(
        decision.outcome,
        Outcome::Enrolled {
            member_id: member(),
            welcome_points: p(50)
        }
    );
    let now = state.balance(t(ENROLLED));
    assert_eq!((now.available, now.pending), (p(50), p(0)));
}

#[test]
fn purchase_points_stay_pending_for_the_return_window() {
    let (decision, state) = given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", basket()))
        .then_ok();
    let recorded = only!(decision.events, PurchaseRecorded);
    let credit = recorded.credit.expect("purchase credit");
    let window_closes = t("2026-01-24T10:00:00Z");
    assert_eq!(credit.spendable_from, window_closes);
    let during = state.balance(t("2026-01-10T10:00:00Z"));
    assert_eq!((during.available, during.pending), (p(50), credit.points));
    let after = state.balance(window_closes);
    assert_eq!(after.available, p(50).saturating_add(credit.points));
}

#[test]
fn enrolling_twice_with_the_same_request_is_a_replay() {
    let outcome = given([enroll()]).when(enroll()).then_replayed();
    assert!(matches!(outcome, Outcome::Enrolled { welcome_points, .. } if welcome_points == p(50)));
}

#[test]
fn enrolling_again_with_a_different_request_is_refused() {
    given([enroll()])
        .when(enroll_at("2026-02-01T00:00:00Z"))
        .then_err(DomainError::AlreadyEnrolled);
}

#[test]
fn a_member_cannot_refer_themselves() {
    given_nothing()
        .when(enroll_referred_by(MEMBER))
        .then_err(DomainError::SelfReferral);
}

#[test]
fn commands_before_enrollment_are_refused() {
    given_nothing()
        .when(purchase("T1", "2026-01-10T10:00:00Z", "5"))
        .then_err(DomainError::NotEnrolled);
}

#[test]
fn a_command_for_another_member_is_refused() {
    let other: Command = Expire {
        member_id: MemberId::parse("M2").unwrap(),
        occurred_at: t("2026-01-10T10:00:00Z"),
    }
    .into();
    given([enroll()])
        .when(other)
        .then_err(DomainError::WrongMember {
            expected: "M1".into(),
            got: "M2".into(),
        });
}

#[test]
fn a_purchase_records_points_per_line_and_per_rule() {
    let events = given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", basket()))
        .then_events();
    let recorded = only!(events, PurchaseRecorded);
    assert_eq!(rules(&recorded.lines[0]), vec![r("base", 4)]);
    assert_eq!(
        rules(&recorded.lines[1]),
        vec![r("base", 12), r("multiplier:category:beans", 12)]
    );
    assert_eq!(recorded.lines[1].points, p(24));
    assert_eq!(recorded.points, p(28));
    assert_eq!(recorded.eligible_amount, d("16.50"));
    assert_eq!(recorded.rules_version, program().version());
}

#[test]
fn excluded_categories_earn_nothing_and_do_not_qualify() {
    let events = given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", basket()))
        .then_events();
    let gift = &only!(events, PurchaseRecorded).lines[2];
    assert_eq!(gift.eligible_amount, d("0"));
    assert_eq!(gift.points, p(0));
}

#[test]
fn a_sku_multiplier_wins_over_its_category_multiplier() {
    let events = given([enroll()])
        .when(purchase_lines(
            "T1",
            "2026-01-10T10:00:00Z",
            vec![line("MUG", "beans", "10.00")],
        ))
        .then_events();
    let recorded = only!(events, PurchaseRecorded);
    assert_eq!(
        rules(&recorded.lines[0]),
        vec![r("base", 10), r("multiplier:sku:MUG", 20)]
    );
}

#[test]
fn money_becomes_points_by_the_programs_rounding_mode() {
    let floor = given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "4.50"))
        .then_events();
    assert_eq!(only!(floor, PurchaseRecorded).points, p(4));
    let half_up = program_with("rounding = \"floor\"", "rounding = \"half_up\"");
    let events = given_with(half_up, [enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "4.50"))
        .then_events();
    assert_eq!(only!(events, PurchaseRecorded).points, p(5));
}

#[test]
fn the_lot_is_pending_for_the_return_window_then_expires_at_the_end_of_the_month() {
    let (decision, state) = given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "100"))
        .then_ok();
    let credit = only!(decision.events, PurchaseRecorded).credit.unwrap();
    assert_eq!(credit.lot_id, lot("purchase:S1:T1"));
    assert_eq!(credit.spendable_from, t("2026-01-24T10:00:00Z"));
    // Spendable 24 January 2026, plus 12 months, rounded up to the end of January 2027 in
    // Paris: midnight local on 1 February is 23:00 UTC on 31 January.
    assert_eq!(credit.expiry, LotExpiry::At(t("2027-01-31T23:00:00Z")));
    // The welcome bonus became spendable on 19 January.
    let before = state.balance(t("2026-01-24T09:59:59Z"));
    assert_eq!((before.available, before.pending), (p(50), p(100)));
    let after = state.balance(t("2026-01-24T10:00:00Z"));
    assert_eq!((after.available, after.pending), (p(150), p(0)));
}

#[test]
fn the_pending_period_counts_calendar_days_across_a_dst_change() {
    // 11:00 in Paris on 20 March (CET); 14 days later is 11:00 on 3 April (CEST) = 09:00 UTC.
    let events = given([enroll()])
        .when(purchase("T1", "2026-03-20T10:00:00Z", "10"))
        .then_events();
    let credit = only!(events, PurchaseRecorded).credit.unwrap();
    assert_eq!(credit.spendable_from, t("2026-04-03T09:00:00Z"));
}

#[test]
fn a_purchase_in_another_currency_is_refused() {
    let mut c = purchase("T1", "2026-01-10T10:00:00Z", "5");
    if let Command::RecordPurchase(x) = &mut c {
        x.currency = Currency::parse("USD").unwrap();
    }
    given([enroll()])
        .when(c)
        .then_err(DomainError::CurrencyMismatch {
            expected: "EUR".into(),
            got: "USD".into(),
        });
}

#[test]
fn a_line_amount_must_be_positive() {
    given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "0"))
        .then_err(DomainError::AmountNotPositive { field: "amount" });
    given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "-3"))
        .then_err(DomainError::AmountNotPositive { field: "amount" });
}

#[test]
fn a_line_amount_cannot_be_finer_than_the_currency() {
    given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "4.505"))
        .then_err(DomainError::AmountTooPrecise {
            field: "amount",
            max_decimals: 2,
        });
}

#[test]
fn a_line_amount_above_the_limit_is_refused() {
    given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "1000.01"))
        .then_err(DomainError::AmountTooLarge {
            field: "amount",
            max: d("1000"),
        });
}

#[test]
fn a_purchase_needs_lines_and_at_most_the_limit() {
    given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", vec![]))
        .then_err(DomainError::NoLines);
    let six = (0..6).map(|_| line("LATTE", "drinks", "1")).collect();
    given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", six))
        .then_err(DomainError::TooManyLines { max: 5 });
}

#[test]
fn the_cap_limits_the_points_of_one_purchase() {
    let events = given([enroll()])
        .when(purchase_lines(
            "T1",
            "2026-01-10T10:00:00Z",
            vec![line("BEANS", "beans", "600")],
        ))
        .then_events();
    let recorded = only!(events, PurchaseRecorded);
    assert_eq!(recorded.points, p(1000));
    assert_eq!(
        rules(&recorded.lines[0]),
        vec![
            r("base", 600),
            r("multiplier:category:beans", 600),
            r("cap", -200)
        ]
    );
}

#[test]
fn crossing_a_threshold_upgrades_at_once() {
    let events = given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "250"))
        .then_events();
    let changed = only!(events, TierChanged);
    assert_eq!(
        (changed.from.name.as_str(), changed.to.name.as_str()),
        ("Bronze", "Silver")
    );
    assert_eq!(changed.reason, TierChangeReason::ThresholdReached);
    assert_eq!(changed.qualifying_value, d("250"));
}

#[test]
fn an_upgrade_can_skip_a_level() {
    let events = given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "600"))
        .then_events();
    assert_eq!(only!(events, TierChanged).to.name, "Gold");
}

#[test]
fn the_tier_multiplier_applies_from_the_next_purchase() {
    let events = given([enroll(), purchase("T1", "2026-01-10T10:00:00Z", "250")])
        .when(purchase("T2", "2026-01-11T10:00:00Z", "10"))
        .then_events();
    let recorded = only!(events, PurchaseRecorded);
    assert_eq!(
        rules(&recorded.lines[0]),
        vec![r("base", 10), r("tier:Silver", 5)]
    );
}

fn pastry(tx: &str, at: &str) -> Command {
    purchase_lines(tx, at, vec![line("CROISSANT", "pastry", "5")])
}

fn campaign_points(events: &[Event]) -> i64 {
    let recorded = only!(events, PurchaseRecorded);
    recorded.lines[0]
        .rules
        .iter()
        .filter(|r| r.rule == "campaign:pastry-x2")
        .map(|r| r.points.value())
        .sum()
}

#[test]
fn a_campaign_window_is_read_in_the_programs_timezone_across_the_dst_change() {
    // The window is 27 to 29 March in Paris; summer time starts on 29 March.
    let cases = [
        ("2026-03-26T22:30:00Z", 0), // 23:30 on the 26th in Paris (CET)
        ("2026-03-26T23:30:00Z", 5), // 00:30 on the 27th in Paris, still the 26th in UTC
        ("2026-03-29T21:30:00Z", 5), // 23:30 on the 29th in Paris (CEST)
        ("2026-03-29T22:30:00Z", 0), // 00:30 on the 30th in Paris, still the 29th in UTC
    ];
    for (at, expected) in cases {
        let events = given([enroll()]).when(pastry("T1", at)).then_events();
        assert_eq!(campaign_points(&events), expected, "at {at}");
    }
}

#[test]
fn a_campaign_stops_at_its_per_member_limit() {
    let events = given([
        enroll(),
        pastry("T1", "2026-03-27T10:00:00Z"),
        pastry("T2", "2026-03-27T11:00:00Z"),
    ])
    .when(pastry("T3", "2026-03-27T12:00:00Z"))
    .then_events();
    assert_eq!(campaign_points(&events), 0);
    assert!(only!(events, PurchaseRecorded).campaigns_applied.is_empty());
}

#[test]
fn a_fixed_bonus_campaign_needs_its_store_and_minimum_spend() {
    let at = "2026-05-10T10:00:00Z";
    let hit = given([enroll()])
        .when(purchase_in(
            "S2",
            "T1",
            at,
            vec![line("LATTE", "drinks", "25")],
        ))
        .then_events();
    let recorded = only!(hit, PurchaseRecorded);
    assert_eq!(recorded.transaction_rules.len(), 1);
    assert_eq!(recorded.transaction_rules[0].rule, "campaign:store-bonus");
    assert_eq!(recorded.points, p(75));

    let other_store = given([enroll()])
        .when(purchase_in(
            "S1",
            "T1",
            at,
            vec![line("LATTE", "drinks", "25")],
        ))
        .then_events();
    assert_eq!(only!(other_store, PurchaseRecorded).points, p(25));

    let too_small = given([enroll()])
        .when(purchase_in(
            "S2",
            "T1",
            at,
            vec![line("LATTE", "drinks", "19.99")],
        ))
        .then_events();
    assert_eq!(only!(too_small, PurchaseRecorded).points, p(19));
}

#[test]
fn the_same_purchase_sent_twice_is_a_replay_with_the_original_outcome() {
    let c = purchase("T1", "2026-01-10T10:00:00Z", "42");
    let original = given([enroll()]).when(c.clone()).then_outcome();
    let replayed = given([
        enroll(),
        c.clone(),
        redeem("R1", "2026-02-01T10:00:00Z", 10),
    ])
    .when(c)
    .then_replayed();
    assert_eq!(replayed, original);
}

#[test]
fn amounts_written_differently_are_the_same_request() {
    let a = purchase("T1", "2026-01-10T10:00:00Z", "4.5");
    let b = purchase("T1", "2026-01-10T10:00:00Z", "4.50");
    given([enroll(), a]).when(b).then_replayed();
}

#[test]
fn the_same_transaction_id_with_different_content_is_refused() {
    given([enroll(), purchase("T1", "2026-01-10T10:00:00Z", "42")])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "43"))
        .then_err(DomainError::IdempotencyConflict {
            client_id: "purchase:S1/T1".into(),
        });
}

#[test]
fn a_referred_newcomers_first_qualifying_purchase_makes_the_referral_due() {
    let (decision, state) = given([enroll_referred_by("R9")])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "20"))
        .then_ok();
    let referral = only!(decision.events, ReferralQualified);
    assert_eq!(referral.referrer.as_str(), "R9");
    assert_eq!(referral.referrer_points, p(200));
    assert_eq!(referral.newcomer_credit.unwrap().points, p(100));
    assert_eq!(state.balance(t("2026-02-01T00:00:00Z")).available, p(170));
}

#[test]
fn a_purchase_below_the_minimum_makes_no_referral_due() {
    let events = given([enroll_referred_by("R9")])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "14.99"))
        .then_events();
    none!(events, ReferralQualified);
}

#[test]
fn the_referral_qualifies_on_the_first_qualifying_purchase_not_only_the_first_one() {
    let later = given([
        enroll_referred_by("R9"),
        purchase("T1", "2026-01-10T10:00:00Z", "14.99"),
    ])
    .when(purchase("T2", "2026-01-11T10:00:00Z", "50"))
    .then_events();
    let referral = only!(later, ReferralQualified);
    assert_eq!(referral.transaction_id.as_str(), "T2");
    assert_eq!(referral.store, Some(store(STORE)));
    assert_eq!(referral.min_purchase, Some(d("15")));
    // And only once: the next qualifying purchase is just a purchase.
    let next = given([
        enroll_referred_by("R9"),
        purchase("T1", "2026-01-10T10:00:00Z", "14.99"),
        purchase("T2", "2026-01-11T10:00:00Z", "50"),
    ])
    .when(purchase("T3", "2026-01-12T10:00:00Z", "50"))
    .then_events();
    none!(next, ReferralQualified);
}

#[test]
fn a_member_without_a_referrer_makes_no_referral_due() {
    let events = given([enroll()])
        .when(purchase("T1", "2026-01-10T10:00:00Z", "50"))
        .then_events();
    none!(events, ReferralQualified);
}

#[test]
fn the_referrer_is_credited_once_per_newcomer() {
    let (decision, _) = given([enroll()])
        .when(credit_referral("N1", "2026-02-01T10:00:00Z"))
        .then_ok();
    let credited = only!(decision.events, ReferralBonusCredited);
    assert_eq!(credited.credit.points, p(200));
    assert_eq!(credited.credit.lot_id, lot("referral:N1"));
    // The process manager may resend it later: still a replay.
    given([enroll(), credit_referral("N1", "2026-02-01T10:00:00Z")])
        .when(credit_referral("N1", "2026-02-03T10:00:00Z"))
        .then_replayed();
}

#[test]
fn the_referral_bonus_needs_a_referral_rule() {
    let no_referral = program_with(
        "[referral]\nreferrer_points = 200\nnewcomer_points = 100\nmin_first_purchase = \"15\"\n",
        "",
    );
    given_with(no_referral, [enroll()])
        .when(credit_referral("N1", "2026-02-01T10:00:00Z"))
        .then_err(DomainError::ReferralNotConfigured);
    given([enroll()])
        .when(credit_referral(MEMBER, "2026-02-01T10:00:00Z"))
        .then_err(DomainError::SelfReferral);
}

#[test]
fn a_line_quantity_must_be_positive_and_within_the_limit() {
    let mut zero = line("LATTE", "drinks", "4");
    zero.quantity = d("0");
    given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", vec![zero]))
        .then_err(DomainError::AmountNotPositive { field: "quantity" });
    let mut huge = line("LATTE", "drinks", "4");
    huge.quantity = d("10001");
    given([enroll()])
        .when(purchase_lines("T1", "2026-01-10T10:00:00Z", vec![huge]))
        .then_err(DomainError::AmountTooLarge {
            field: "quantity",
            max: d("10000"),
        });
}

#[test]
fn a_currency_code_is_three_capital_letters() {
    assert!(Currency::parse("EUR").is_ok());
    for bad in ["eur", "EURO", "E1R", ""] {
        assert!(
            matches!(
                Currency::parse(bad),
                Err(DomainError::InvalidCurrency { .. })
            ),
            "{bad}"
        );
    }
}
