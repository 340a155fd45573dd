//! Tier reviews (downgrades at most one level per review), and the account's life.

use crate::support;

use loyalty_core::*;
use support::*;

const BOUGHT: &str = "2026-01-10T10:00:00Z";

fn gold() -> Vec<Command> {
    vec![enroll(), purchase("T1", BOUGHT, "600")]
}

fn with(mut history: Vec<Command>, more: Vec<Command>) -> Vec<Command> {
    history.extend(more);
    history
}

#[test]
fn a_review_before_the_first_anniversary_changes_nothing() {
    let (decision, _) = given(gold()).when(review("2026-12-31T10:00:00Z")).then_ok();
    assert!(decision.events.is_empty());
    assert!(matches!(decision.outcome, Outcome::TierUnchanged { tier } if tier.name == "Gold"));
}

#[test]
fn a_member_still_qualifying_at_the_review_keeps_the_tier() {
    // The anniversary review (5 January 2027) still sees the purchase of 10 January 2026.
    let events = given(gold())
        .when(review("2027-01-06T10:00:00Z"))
        .then_events();
    assert!(events.is_empty());
}

#[test]
fn a_review_downgrades_by_one_level_at_most() {
    // No spend in the year before the 2028 anniversary: Bronze is reached, Silver is given.
    let (decision, state) = given(gold()).when(review("2028-01-10T10:00:00Z")).then_ok();
    let changed = only!(decision.events, TierChanged);
    assert_eq!(
        (changed.from.name.as_str(), changed.to.name.as_str()),
        ("Gold", "Silver")
    );
    assert_eq!(changed.reason, TierChangeReason::Review);
    // The anniversary is midnight in Paris on 5 January: 23:00 UTC the day before.
    assert_eq!(changed.review_at, Some(t("2028-01-04T23:00:00Z")));
    assert_eq!(state.tier().name, "Silver");
}

#[test]
fn a_review_already_done_is_not_repeated() {
    let events = given(with(gold(), vec![review("2028-01-10T10:00:00Z")]))
        .when(review("2028-06-10T10:00:00Z"))
        .then_events();
    assert!(events.is_empty());
}

#[test]
fn the_next_review_takes_the_next_level_down() {
    let events = given(with(gold(), vec![review("2028-01-10T10:00:00Z")]))
        .when(review("2029-01-10T10:00:00Z"))
        .then_events();
    assert_eq!(only!(events, TierChanged).to.name, "Bronze");
}

#[test]
fn a_program_may_allow_several_levels_down_per_review() {
    let two = program_with(
        "max_levels_down_per_review = 1",
        "max_levels_down_per_review = 2",
    );
    let events = given_with(two, gold())
        .when(review("2028-01-10T10:00:00Z"))
        .then_events();
    assert_eq!(only!(events, TierChanged).to.name, "Bronze");
}

#[test]
fn spending_points_never_demotes() {
    let history = with(gold(), vec![redeem("R1", "2026-02-01T10:00:00Z", 650)]);
    let g = given(history);
    assert_eq!(g.state().tier().name, "Gold");
    assert!(
        g.when(review("2027-01-06T10:00:00Z"))
            .then_events()
            .is_empty()
    );
}

#[test]
fn a_calendar_year_window_with_a_fixed_review_date_starts_again_each_january() {
    let calendar = program_with(
        "window = { kind = \"rolling\", months = 12 }\nreview = { kind = \"anniversary\" }",
        "window = { kind = \"calendar_year\" }\nreview = { kind = \"fixed_date\", month = 1, day = 1 }",
    );
    let history = vec![enroll(), purchase("T1", "2026-12-30T10:00:00Z", "250")];
    let g = given_with(calendar, history);
    assert_eq!(g.state().tier().name, "Silver");
    let events = g.when(review("2027-01-01T10:00:00Z")).then_events();
    let changed = only!(events, TierChanged);
    assert_eq!(changed.to.name, "Bronze");
    assert_eq!(changed.qualifying_value, d("0"));
}

#[test]
fn points_earned_can_be_the_qualifying_metric() {
    let points = program_with(
        "metric = \"qualifying_spend\"",
        "metric = \"points_earned\"",
    );
    // 120 of beans earn 240 points: Silver on points, not on spend.
    let events = given_with(points, [enroll()])
        .when(purchase_lines(
            "T1",
            BOUGHT,
            vec![line("BEANS", "beans", "120")],
        ))
        .then_events();
    assert_eq!(only!(events, TierChanged).to.name, "Silver");
}

#[test]
fn a_suspended_member_cannot_earn_or_spend() {
    let history = with(gold(), vec![suspend("2026-02-01T10:00:00Z")]);
    for c in [
        purchase("T2", "2026-02-02T10:00:00Z", "5"),
        redeem("R1", "2026-02-02T10:00:00Z", 10),
        activity("A1", "survey", "2026-02-02T10:00:00Z"),
    ] {
        given(history.clone())
            .when(c)
            .then_err(DomainError::MemberSuspended);
    }
}

#[test]
fn a_suspended_members_refunds_still_claw_back() {
    let history = with(gold(), vec![suspend("2026-02-01T10:00:00Z")]);
    let events = given(history)
        .when(refund_amount("F1", "T1", "2026-02-02T10:00:00Z", "100"))
        .then_events();
    assert_eq!(only!(events, RefundRecorded).points, p(100));
}

#[test]
fn a_reinstated_member_can_earn_again() {
    let history = with(
        gold(),
        vec![
            suspend("2026-02-01T10:00:00Z"),
            reinstate("2026-02-02T10:00:00Z"),
        ],
    );
    given(history)
        .when(purchase("T2", "2026-02-03T10:00:00Z", "5"))
        .then_ok();
}

#[test]
fn suspending_twice_or_reinstating_an_active_member_changes_nothing() {
    let (decision, _) = given(with(gold(), vec![suspend("2026-02-01T10:00:00Z")]))
        .when(suspend("2026-02-02T10:00:00Z"))
        .then_ok();
    assert!(decision.events.is_empty());
    assert_eq!(decision.outcome, Outcome::Unchanged);
    let (decision, _) = given(gold())
        .when(reinstate("2026-02-02T10:00:00Z"))
        .then_ok();
    assert!(decision.events.is_empty());
}

#[test]
fn closing_the_account_forfeits_the_balance() {
    let (decision, state) = given(gold()).when(close("2026-02-01T10:00:00Z")).then_ok();
    let closed = only!(decision.events, AccountClosed);
    assert_eq!(
        closed.forfeited,
        vec![draw("welcome:M1", 50), draw("purchase:S1:T1", 600)]
    );
    assert_eq!(decision.outcome, Outcome::Closed { forfeited: p(650) });
    let b = state.balance(t("2026-02-01T10:00:00Z"));
    assert_eq!((b.balance, b.lifetime.forfeited), (p(0), p(650)));
    assert_eq!(state.status(), MemberStatus::Closed);
}

#[test]
fn a_closed_account_refuses_commands() {
    let history = with(gold(), vec![close("2026-02-01T10:00:00Z")]);
    given(history.clone())
        .when(purchase("T2", "2026-02-02T10:00:00Z", "5"))
        .then_err(DomainError::MemberClosed);
    given(history.clone())
        .when(close("2026-02-02T10:00:00Z"))
        .then_err(DomainError::MemberClosed);
    given(history.clone())
        .when(enroll_at("2026-02-03T10:00:00Z"))
        .then_err(DomainError::AlreadyEnrolled);
    // A retry of something done before closing still gets its original answer.
    given(history)
        .when(purchase("T1", BOUGHT, "600"))
        .then_replayed();
}

#[test]
fn a_tier_earned_after_the_review_date_is_not_taken_away_by_that_review() {
    // Silver on 10 January 2026; nothing in 2026-2027; Gold on 6 January 2028, the day after
    // the 2028 anniversary. The review run on 10 January must not demote the new Gold.
    let history = vec![
        enroll(),
        purchase("T1", BOUGHT, "250"),
        purchase("T2", "2028-01-06T10:00:00Z", "600"),
    ];
    let g = given(history);
    assert_eq!(g.state().tier().name, "Gold");
    assert!(
        g.when(review("2028-01-10T10:00:00Z"))
            .then_events()
            .is_empty()
    );
}

#[test]
fn the_next_review_is_the_coming_anniversary_at_local_midnight() {
    let program = program();
    let enrolled = t(ENROLLED);
    assert_eq!(
        tiers::next_review_at(&program, enrolled, enrolled),
        Some(t("2027-01-04T23:00:00Z"))
    );
    assert_eq!(
        tiers::next_review_at(&program, enrolled, t("2027-01-04T23:00:00Z")),
        Some(t("2028-01-04T23:00:00Z"))
    );
}

#[test]
fn rejections_carry_stable_codes() {
    let e = DomainError::InsufficientPoints {
        available: p(150),
        requested: p(200),
    };
    assert_eq!(e.code(), "insufficient_points");
    assert!(!e.is_invalid_input());
    assert!(DomainError::PointsZero.is_invalid_input());
    assert_eq!(program().points_value(p(150)).unwrap(), d("1.50"));
}

#[test]
fn a_tier_recorded_under_an_older_program_is_found_by_name_after_tiers_are_inserted() {
    // Silver was index 1 when recorded; the new program inserts Copper before it.
    let g = given(vec![enroll(), purchase("T1", BOUGHT, "250")]);
    assert_eq!(g.state().tier().index, 1);
    let copper = program_with(
        "[[tiers.levels]]\nname = \"Silver\"",
        "[[tiers.levels]]\nname = \"Copper\"\nthreshold = \"100\"\nmultiplier = \"1.2\"\n\n[[tiers.levels]]\nname = \"Silver\"",
    );
    let decision = decide(
        g.state(),
        &purchase("T2", "2026-01-11T10:00:00Z", "10"),
        &copper,
        ServerTime::at(t("2026-01-11T10:00:00Z")),
    )
    .unwrap();
    let recorded = only!(decision.events, PurchaseRecorded);
    assert_eq!(recorded.lines[0].rules[1].rule, "tier:Silver");
    // And no "upgrade" to Silver is recorded for a member already Silver.
    assert!(
        !decision
            .events
            .iter()
            .any(|e| matches!(e, Event::TierChanged(_)))
    );
}
