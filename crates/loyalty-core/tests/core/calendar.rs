//! Calendar arithmetic in the program's timezone, across DST changes and month ends.

use crate::support;

use chrono_tz::Europe::Paris;
use loyalty_core::calendar;
use loyalty_core::program::Period;
use loyalty_core::*;
use support::*;

#[test]
fn the_end_of_a_month_is_local_midnight_whatever_the_offset() {
    // Winter (CET, +1): midnight on 1 February is 23:00 UTC.
    assert_eq!(
        calendar::end_of_month(t("2027-01-15T12:00:00Z"), Paris),
        Some(t("2027-01-31T23:00:00Z"))
    );
    // March contains the switch to summer time: midnight on 1 April is 22:00 UTC (CEST, +2).
    assert_eq!(
        calendar::end_of_month(t("2027-03-01T12:00:00Z"), Paris),
        Some(t("2027-03-31T22:00:00Z"))
    );
    // 23:30 UTC on 31 October is already November in Paris: its month ends on 30 November.
    assert_eq!(
        calendar::end_of_month(t("2026-10-31T23:30:00Z"), Paris),
        Some(t("2026-11-30T23:00:00Z"))
    );
}

#[test]
fn adding_months_keeps_the_local_time_and_clamps_to_the_month_end() {
    // 31 January + 1 month = 28 February, same local time (10:00 CET).
    assert_eq!(
        calendar::add_months(t("2026-01-31T09:00:00Z"), 1, Paris),
        Some(t("2026-02-28T09:00:00Z"))
    );
    // Across the DST change the UTC hour moves, the local hour does not.
    assert_eq!(
        calendar::add_months(t("2026-03-01T09:00:00Z"), 1, Paris),
        Some(t("2026-04-01T08:00:00Z"))
    );
}

#[test]
fn a_local_time_inside_the_dst_gap_resolves_to_the_first_valid_instant() {
    // 29 March 2026, 02:30 does not exist in Paris (02:00 jumps to 03:00).
    let gap = chrono::NaiveDate::from_ymd_opt(2026, 3, 29)
        .unwrap()
        .and_hms_opt(2, 30, 0)
        .unwrap();
    assert_eq!(
        calendar::resolve(gap, Paris),
        Some(t("2026-03-29T01:00:00Z"))
    );
    // 25 October 2026, 02:30 happens twice: the earlier one is taken.
    let overlap = chrono::NaiveDate::from_ymd_opt(2026, 10, 25)
        .unwrap()
        .and_hms_opt(2, 30, 0)
        .unwrap();
    assert_eq!(
        calendar::resolve(overlap, Paris),
        Some(t("2026-10-25T00:30:00Z"))
    );
}

#[test]
fn limit_periods_are_local_days_weeks_months_and_years() {
    let new_year_in_paris = t("2026-12-31T23:30:00Z");
    assert_eq!(
        calendar::period_key(new_year_in_paris, Period::Day, Paris),
        "day:2027-01-01"
    );
    assert_eq!(
        calendar::period_key(new_year_in_paris, Period::Week, Paris),
        "week:2026-W53"
    );
    assert_eq!(
        calendar::period_key(new_year_in_paris, Period::Month, Paris),
        "month:2027-01"
    );
    assert_eq!(
        calendar::period_key(new_year_in_paris, Period::Year, Paris),
        "year:2027"
    );
    assert_eq!(
        calendar::period_key(new_year_in_paris, Period::Once, Paris),
        "once"
    );
}

#[test]
fn a_lot_spendable_in_march_expires_at_the_end_of_march_in_summer_time() {
    // Bought 20 February, spendable 6 March 2026, +12 months = 6 March 2027, rounded up to
    // the end of March 2027: midnight on 1 April in Paris, after the DST change = 22:00 UTC.
    let events = given([enroll()])
        .when(purchase("T1", "2026-02-20T10:00:00Z", "10"))
        .then_events();
    let credit = only!(events, PurchaseRecorded).credit.unwrap();
    assert_eq!(credit.expiry, LotExpiry::At(t("2027-03-31T22:00:00Z")));
    let g = given([enroll(), purchase("T1", "2026-02-20T10:00:00Z", "10")]);
    let before = g.state().balance(t("2027-03-31T21:59:59Z"));
    let after = g.state().balance(t("2027-03-31T22:00:00Z"));
    assert_eq!(before.available, p(10)); // welcome expired at the end of January
    assert_eq!(after.available, p(0));
}

#[test]
fn without_end_of_month_rounding_a_lot_expires_on_the_same_local_day() {
    let exact = program_with("end_of_month = true", "end_of_month = false");
    let events = given_with(exact, [enroll()])
        .when(purchase("T1", "2026-02-20T10:00:00Z", "10"))
        .then_events();
    let credit = only!(events, PurchaseRecorded).credit.unwrap();
    // Spendable 6 March 2026 11:00 CET; a year later 6 March 2027 11:00 CET.
    assert_eq!(credit.expiry, LotExpiry::At(t("2027-03-06T10:00:00Z")));
}
