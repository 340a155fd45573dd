//! The program file: the shipped demo loads, and invalid programs are refused with the field
//! and the reason.

use loyalty_core::program::{ClawbackPolicy, ExpiryPolicy, QualifyingWindow, ReviewSchedule};
use loyalty_core::{Program, ProgramError};

const DEMO: &str = include_str!("../../../../config/program.toml");

fn demo_with(from: &str, to: &str) -> Result<Program, ProgramError> {
    assert!(
        DEMO.contains(from),
        "the demo program no longer contains {from:?}"
    );
    Program::from_toml_str(&DEMO.replacen(from, to, 1))
}

fn invalid_field(result: Result<Program, ProgramError>) -> String {
    match result {
        Err(ProgramError::Invalid { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn the_demo_program_loads_with_every_rule() {
    let p = Program::from_toml_str(DEMO).expect("demo program is valid");
    assert_eq!(p.name(), "Crumb & Bean Rewards");
    assert_eq!(p.currency().as_str(), "EUR");
    assert_eq!(p.timezone(), chrono_tz::Europe::Paris);
    assert_eq!(p.label(), Some("2026.11.2"));
    assert_eq!(p.version().len(), 64);
    assert_eq!(p.point_value().to_string(), "0.01");
    assert_eq!(p.tiers().len(), 4);
    assert!(p.rewards().len() >= 3);
    assert_eq!(p.earning.campaigns.len(), 3);
    assert!(p.earning.campaigns.iter().any(|c| c.bonus_points.is_some()));
    assert!(p.earning.campaigns.iter().any(|c| c.multiplier.is_some()));
    assert!(matches!(
        p.expiry,
        ExpiryPolicy::LotMonths {
            months: 12,
            end_of_month: true
        }
    ));
    assert!(matches!(
        p.tiers.window,
        QualifyingWindow::Rolling { months: 12 }
    ));
    assert_eq!(p.tiers.review, ReviewSchedule::Anniversary);
    assert_eq!(p.clawback_policy(), ClawbackPolicy::Allow);
    assert!(p.referral.is_some());
    assert_eq!(p.bonuses.activities.len(), 5);
    assert_eq!(p.notices.points_expiring_days, Some(14));
}

#[test]
fn without_a_notices_section_no_expiry_notice_is_sent() {
    let start = DEMO.find("[notices]").expect("the demo sets notices");
    let end = start
        + DEMO[start..]
            .find("\n[")
            .expect("a section follows [notices]");
    let p = Program::from_toml_str(&format!("{}{}", &DEMO[..start], &DEMO[end + 1..]))
        .expect("notices are optional");
    assert_eq!(p.notices.points_expiring_days, None);
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-20T12:00:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(p.points_expiring_until(now), None);
}

#[test]
fn the_expiry_notice_comes_calendar_days_ahead_in_the_programs_timezone() {
    let p = Program::from_toml_str(DEMO).unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    // Paris moves to summer time on 29 March 2026: 14 local days after midnight on the 20th
    // is midnight on 3 April, 23 hours short of 14 x 24h.
    assert_eq!(
        p.points_expiring_until(at("2026-03-19T23:00:00Z")),
        Some(at("2026-04-02T22:00:00Z"))
    );
}

#[test]
fn expiry_notice_days_must_be_between_one_and_a_year() {
    for days in ["0", "366"] {
        let field = invalid_field(demo_with(
            "points_expiring_days = 14",
            &format!("points_expiring_days = {days}"),
        ));
        assert_eq!(field, "notices.points_expiring_days");
    }
    for days in ["1", "365"] {
        assert!(
            demo_with(
                "points_expiring_days = 14",
                &format!("points_expiring_days = {days}")
            )
            .is_ok()
        );
    }
    let err = demo_with("[notices]\n", "[notices]\npoints_expired_days = 3\n");
    assert!(err.unwrap_err().to_string().contains("points_expired_days"));
}

#[test]
fn an_unknown_timezone_is_refused() {
    let err = demo_with("\"Europe/Paris\"", "\"Europe/Atlantis\"").unwrap_err();
    assert!(err.to_string().contains("Europe/Atlantis"), "{err}");
}

#[test]
fn a_float_rate_is_refused_because_rates_are_decimal_strings() {
    let err = demo_with("points_per_unit = \"1\"", "points_per_unit = 1.5");
    assert!(matches!(err, Err(ProgramError::Parse(_))), "{err:?}");
}

#[test]
fn an_unknown_field_is_refused() {
    let err = demo_with("[pending]\n", "[pending]\nweeks = 2\n");
    assert!(err.unwrap_err().to_string().contains("weeks"));
}

#[test]
fn tier_thresholds_must_increase() {
    let field = invalid_field(demo_with(
        "threshold = \"750.00\"",
        "threshold = \"200.00\"",
    ));
    assert_eq!(field, "tiers.levels[2].threshold");
}

#[test]
fn the_entry_tier_must_start_at_zero() {
    let field = invalid_field(demo_with("threshold = \"0\"", "threshold = \"10\""));
    assert_eq!(field, "tiers.levels[0].threshold");
}

#[test]
fn a_reward_cannot_require_an_unknown_tier() {
    let field = invalid_field(demo_with("min_tier = \"Gold\"", "min_tier = \"Diamond\""));
    assert_eq!(field, "rewards[3].min_tier");
}

#[test]
fn a_campaign_needs_a_multiplier_or_a_bonus_not_both() {
    let field = invalid_field(demo_with(
        "bonus_points = 50\n",
        "bonus_points = 50\nmultiplier = \"2\"\n",
    ));
    assert_eq!(field, "earning.campaigns[1]");
}

#[test]
fn a_campaign_cannot_end_before_it_starts() {
    let field = invalid_field(demo_with(
        "ends_on = \"2026-03-29\"",
        "ends_on = \"2026-03-01\"",
    ));
    assert_eq!(field, "earning.campaigns[0].ends_on");
}

#[test]
fn expiry_needs_a_positive_number_of_months() {
    let field = invalid_field(demo_with(
        "months = 12                               #",
        "months = 0 #",
    ));
    assert_eq!(field, "expiry.months");
}

#[test]
fn a_fixed_review_date_must_exist_every_year() {
    let field = invalid_field(demo_with(
        "review = { kind = \"anniversary\" }",
        "review = { kind = \"fixed_date\", month = 2, day = 29 }",
    ));
    assert_eq!(field, "tiers.review");
}

#[test]
fn the_point_value_must_be_positive() {
    let field = invalid_field(demo_with("point_value = \"0.01\"", "point_value = \"0\""));
    assert_eq!(field, "valuation.point_value");
}

#[test]
fn duplicate_reward_ids_are_refused() {
    let field = invalid_field(demo_with("id = \"free-latte\"", "id = \"free-espresso\""));
    assert_eq!(field, "rewards");
}

#[test]
fn an_invalid_clawback_policy_is_refused() {
    let err = demo_with("policy = \"allow\"", "policy = \"forgive\"");
    assert!(matches!(err, Err(ProgramError::Parse(_))));
}

#[test]
fn limits_must_be_positive() {
    let field = invalid_field(demo_with(
        "max_lines_per_purchase = 100",
        "max_lines_per_purchase = 0",
    ));
    assert_eq!(field, "limits.max_lines_per_purchase");
}

use crate::support;

#[test]
fn the_demo_program_runs_a_members_year() {
    use loyalty_core::*;
    use support::*;

    let demo = Program::from_toml_str(DEMO).unwrap();
    let opera = |tx: &str, at: &str, lines| purchase_in("paris-opera", tx, at, lines);
    let g = given_with(
        demo,
        [
            enroll(),
            // Pastry fortnight: 2 croissants earn double; the beans earn double all year.
            purchase_lines(
                "T1",
                "2026-03-20T08:00:00Z",
                vec![
                    line("CROISSANT", "pastry", "3.40"),
                    line("BEANS-1KG", "coffee-beans", "24.00"),
                ],
            ),
            // The new Opera store's opening bonus (minimum spend 10).
            opera(
                "T2",
                "2026-10-05T08:00:00Z",
                vec![line("LATTE", "drinks", "12.50")],
            ),
            activity("A1", "birthday", "2026-06-01T08:00:00Z"),
            redeem_reward("R1", "2026-11-01T10:00:00Z", "free-latte"),
        ],
    );
    let points: Vec<i64> = g
        .history()
        .iter()
        .filter_map(|e| match e {
            Event::PurchaseRecorded(p) => Some(p.points.value()),
            _ => None,
        })
        .collect();
    // T1: croissants 3 + 3 (campaign), beans 24 + 24 (multiplier) = 54; T2: 12 + 50 = 62.
    assert_eq!(points, vec![54, 62]);
    let b = g.state().balance(t("2026-11-01T10:00:00Z"));
    // 50 welcome + 54 + 62 + 150 birthday - 120 latte.
    assert_eq!(b.available, Points::new(196));
}
