//! Activity bonuses within their limits, manual adjustments, goodwill and win-back bonuses.

use crate::support;

use loyalty_core::*;
use support::*;

#[test]
fn an_activity_within_its_limit_earns_its_bonus() {
    let (decision, state) = given([enroll()])
        .when(activity("A1", "survey", "2026-01-10T10:00:00Z"))
        .then_ok();
    let rewarded = only!(decision.events, ActivityRewarded);
    assert_eq!(rewarded.credit.points, p(25));
    assert_eq!(rewarded.credit.lot_id, lot("activity:A1"));
    assert_eq!(rewarded.period_key, "month:2026-01");
    assert_eq!(state.lifetime().earned, p(75));
}

#[test]
fn an_activity_past_its_limit_is_a_recorded_refusal() {
    let (decision, state) = given([enroll(), activity("A1", "survey", "2026-01-10T10:00:00Z")])
        .when(activity("A2", "survey", "2026-01-31T10:00:00Z"))
        .then_ok();
    let refused = only!(decision.events, ActivityRefused);
    assert_eq!((refused.limit, refused.period.as_str()), (1, "month"));
    assert_eq!(
        decision.outcome,
        Outcome::ActivityRefused {
            activity_id: ActivityId::parse("A2").unwrap(),
            kind: ActivityKind::parse("survey").unwrap(),
            limit: 1,
            period: "month".into(),
        }
    );
    assert_eq!(state.lifetime().earned, p(75));
}

#[test]
fn a_refused_activity_sent_again_gets_the_same_refusal() {
    let history = [
        enroll(),
        activity("A1", "survey", "2026-01-10T10:00:00Z"),
        activity("A2", "survey", "2026-01-31T10:00:00Z"),
    ];
    let outcome = given(history)
        .when(activity("A2", "survey", "2026-01-31T10:00:00Z"))
        .then_replayed();
    assert!(matches!(outcome, Outcome::ActivityRefused { .. }));
}

#[test]
fn a_monthly_limit_starts_again_with_the_local_month() {
    // 23:30 UTC on 31 January is already 1 February in Paris.
    let events = given([enroll(), activity("A1", "survey", "2026-01-10T10:00:00Z")])
        .when(activity("A2", "survey", "2026-01-31T23:30:00Z"))
        .then_events();
    assert_eq!(only!(events, ActivityRewarded).period_key, "month:2026-02");
}

#[test]
fn a_daily_limit_follows_the_local_day() {
    let history = [enroll(), activity("A1", "checkin", "2026-01-10T10:00:00Z")];
    // 22:59 UTC is 23:59 on the same day in Paris (CET): refused.
    let same_day = given(history.clone())
        .when(activity("A2", "checkin", "2026-01-10T22:59:00Z"))
        .then_events();
    assert!(matches!(same_day[..], [Event::ActivityRefused(_)]));
    // 23:30 UTC is already 11 January in Paris: rewarded.
    let next_day = given(history)
        .when(activity("A2", "checkin", "2026-01-10T23:30:00Z"))
        .then_events();
    assert_eq!(
        only!(next_day, ActivityRewarded).period_key,
        "day:2026-01-11"
    );
}

#[test]
fn a_weekly_limit_allows_its_count_per_iso_week() {
    let history = [
        enroll(),
        activity("A1", "review", "2026-01-12T10:00:00Z"), // Monday, week 3
        activity("A2", "review", "2026-01-14T10:00:00Z"),
    ];
    let refused = given(history.clone())
        .when(activity("A3", "review", "2026-01-18T10:00:00Z")) // Sunday, week 3
        .then_events();
    assert!(matches!(refused[0], Event::ActivityRefused(_)));
    let next_week = given(history)
        .when(activity("A3", "review", "2026-01-19T10:00:00Z"))
        .then_events();
    assert_eq!(
        only!(next_week, ActivityRewarded).period_key,
        "week:2026-W04"
    );
}

#[test]
fn a_once_only_activity_is_refused_forever_after() {
    let events = given([enroll(), activity("A1", "app", "2026-01-10T10:00:00Z")])
        .when(activity("A2", "app", "2030-01-10T10:00:00Z"))
        .then_events();
    // The old lots expire first (every decision records the expiries due), then the refusal.
    assert!(matches!(events.last(), Some(Event::ActivityRefused(_))));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::ActivityRewarded(_)))
    );
}

#[test]
fn an_unknown_activity_is_refused() {
    given([enroll()])
        .when(activity("A1", "karaoke", "2026-01-10T10:00:00Z"))
        .then_err(DomainError::UnknownActivity {
            kind: "karaoke".into(),
        });
}

#[test]
fn a_positive_adjustment_creates_a_lot_with_its_reason() {
    let (decision, state) = given([enroll()])
        .when(adjust("J1", "2026-01-10T10:00:00Z", 30))
        .then_ok();
    let adjusted = only!(decision.events, PointsAdjusted);
    assert_eq!(adjusted.reason_code.as_str(), "correction");
    assert_eq!(adjusted.operator.as_str(), "alice");
    assert_eq!(adjusted.credit.unwrap().lot_id, lot("adjust:J1"));
    assert_eq!(state.lifetime().adjusted, p(30));
}

#[test]
fn a_negative_adjustment_takes_from_lots_then_leaves_a_debt() {
    let (decision, state) = given([enroll()])
        .when(adjust("J1", "2026-01-10T10:00:00Z", -70))
        .then_ok();
    let debit = only!(decision.events, PointsAdjusted).debit.unwrap();
    assert_eq!(debit.draws, vec![draw("welcome:M1", 50)]);
    assert_eq!(debit.debt_added, p(20));
    assert_eq!(state.lifetime().adjusted, p(-70));
    assert_eq!(
        decision.outcome,
        Outcome::Adjusted {
            adjustment_id: AdjustmentId::parse("J1").unwrap(),
            points: p(-70),
            shortfall: p(0),
        }
    );
}

#[test]
fn an_adjustment_must_be_non_zero_within_the_limit_with_a_short_note() {
    given([enroll()])
        .when(adjust("J1", "2026-01-10T10:00:00Z", 0))
        .then_err(DomainError::PointsZero);
    given([enroll()])
        .when(adjust("J1", "2026-01-10T10:00:00Z", 5001))
        .then_err(DomainError::PointsTooLarge { max: p(5000) });
    given([enroll()])
        .when(adjust("J1", "2026-01-10T10:00:00Z", -5001))
        .then_err(DomainError::PointsTooLarge { max: p(5000) });
    let mut long = adjust("J1", "2026-01-10T10:00:00Z", 10);
    if let Command::Adjust(a) = &mut long {
        a.note = "x".repeat(41);
    }
    given([enroll()])
        .when(long)
        .then_err(DomainError::TextTooLong {
            field: "note",
            max: 40,
        });
}

#[test]
fn goodwill_for_an_upheld_complaint_is_granted_once() {
    let (decision, state) = given([enroll()])
        .when(goodwill("C1", "2026-01-10T10:00:00Z", 100))
        .then_ok();
    let granted = only!(decision.events, GoodwillGranted);
    assert_eq!(granted.reason_code.as_str(), "complaint-upheld");
    assert_eq!(granted.credit.points, p(100));
    assert_eq!(state.lifetime().earned, p(150));

    let history = [enroll(), goodwill("C1", "2026-01-10T10:00:00Z", 100)];
    given(history.clone())
        .when(goodwill("C1", "2026-01-10T10:00:00Z", 100))
        .then_replayed();
    given(history.clone())
        .when(goodwill("C1", "2026-01-10T10:00:00Z", 200))
        .then_err(DomainError::IdempotencyConflict {
            client_id: "goodwill:C1".into(),
        });
    // The note is not part of the fingerprint (it is stored in clear, and must not give an
    // erased note back): a retry with another note is the same grant.
    let mut other_note = goodwill("C1", "2026-01-10T10:00:00Z", 100);
    if let Command::Goodwill(g) = &mut other_note {
        g.note = "typed again".to_owned();
    }
    given(history).when(other_note).then_replayed();
}

#[test]
fn goodwill_must_be_positive() {
    given([enroll()])
        .when(goodwill("C1", "2026-01-10T10:00:00Z", -5))
        .then_err(DomainError::PointsNotPositive);
}

// ---- win-back ----

const WIN_BACK_RULE: &str = r#"[win_back]
below_p_alive = "0.3"
inactive_days = 120
points = 250
once_every_days = 365
"#;

#[test]
fn a_member_the_model_gives_up_on_gets_the_win_back_bonus_with_the_measurements_recorded() {
    let (decision, state) = given([enroll()])
        .when(win_back("2026-06-01T03:00:00Z", Some("0.2"), 30))
        .then_ok();
    let awarded = only!(decision.events, WinBackAwarded);
    assert_eq!(awarded.credit.points, p(250));
    assert_eq!(awarded.p_alive, Some(d("0.2")));
    assert_eq!(awarded.inactive_days, 30);
    assert_eq!(awarded.model_version.as_deref(), Some("m1"));
    assert_eq!(awarded.rules_version, program().rules_version());
    assert_eq!(state.lifetime().earned, p(300));
}

#[test]
fn a_long_inactive_member_is_won_back_without_a_model() {
    given([enroll()])
        .when(win_back("2026-06-01T03:00:00Z", None, 120))
        .then_ok();
}

#[test]
fn a_member_still_buying_is_not_won_back() {
    given([enroll()])
        .when(win_back("2026-06-01T03:00:00Z", Some("0.3"), 119))
        .then_err(DomainError::WinBackNotDue);
    given([enroll()])
        .when(win_back("2026-06-01T03:00:00Z", None, 30))
        .then_err(DomainError::WinBackNotDue);
}

#[test]
fn a_new_member_with_a_single_purchase_day_is_not_won_back() {
    let mut command = win_back("2026-06-01T03:00:00Z", Some("0.01"), 200);
    if let Command::WinBack(c) = &mut command {
        c.purchase_days = 1;
    }
    given([enroll()])
        .when(command)
        .then_err(DomainError::WinBackNotDue);
}

#[test]
fn the_win_back_bonus_comes_at_most_once_per_period() {
    let first = win_back("2026-06-01T03:00:00Z", Some("0.2"), 30);
    given([enroll(), first.clone()])
        .when(win_back("2027-05-31T03:00:00Z", Some("0.1"), 400))
        .then_err(DomainError::WinBackTooSoon {
            last: t("2026-06-01T03:00:00Z"),
            next: t("2027-06-01T03:00:00Z"),
        });
    given([enroll(), first])
        .when(win_back("2027-06-01T03:00:00Z", Some("0.1"), 400))
        .then_ok();
}

#[test]
fn a_second_run_on_the_same_day_replays_the_first_outcome() {
    given([enroll(), win_back("2026-06-01T03:00:00Z", Some("0.2"), 30)])
        .when(win_back("2026-06-01T09:00:00Z", Some("0.19"), 30))
        .then_replayed();
}

#[test]
fn without_a_win_back_rule_nobody_is_won_back() {
    given_with(program_with(WIN_BACK_RULE, ""), [enroll()])
        .when(win_back("2026-06-01T03:00:00Z", Some("0.2"), 300))
        .then_err(DomainError::WinBackNotConfigured);
}

#[test]
fn a_suspended_member_is_not_won_back() {
    given([enroll(), suspend("2026-05-01T10:00:00Z")])
        .when(win_back("2026-06-01T03:00:00Z", Some("0.2"), 300))
        .then_err(DomainError::MemberSuspended);
}

#[test]
fn a_win_back_rule_needs_a_trigger() {
    let text =
        support::TEST_PROGRAM.replacen("below_p_alive = \"0.3\"\ninactive_days = 120\n", "", 1);
    let err = Program::from_toml_str(&text).unwrap_err();
    assert!(err.to_string().contains("win_back"), "{err}");
}
