//! Expiry notices: the scheduler's `NotifyExpiry` records one `ExpiryNotified` naming the
//! dated lots that expire within the program's notice period (14 local days in the test
//! program), each lot once ever; the notice moves no point.

use crate::support;

use loyalty_core::*;
use support::*;

const BOUGHT: &str = "2026-01-10T10:00:00Z";
/// The welcome lot and T1 expire at the end of January 2027 in Paris (midnight CET).
const EXPIRY: &str = "2027-01-31T23:00:00Z";
/// Fourteen local days before it: midnight on 18 January in Paris.
const NOTICE: &str = "2027-01-17T23:00:00Z";
/// T2, bought in February, expires at the end of February 2027.
const FEB_EXPIRY: &str = "2027-02-28T23:00:00Z";
const FEB_NOTICE: &str = "2027-02-14T23:00:00Z";

/// Welcome 50 and T1 100 expiring in January 2027, T2 30 in February 2027.
fn earned() -> Vec<Command> {
    vec![
        enroll(),
        purchase("T1", BOUGHT, "100"),
        purchase("T2", "2026-02-10T10:00:00Z", "30"),
    ]
}

fn with(mut history: Vec<Command>, more: Vec<Command>) -> Vec<Command> {
    history.extend(more);
    history
}

fn notified(lot_id: &str, points: i64, expires_at: &str) -> NotifiedLot {
    NotifiedLot {
        lot_id: lot(lot_id),
        points: p(points),
        expires_at: t(expires_at),
    }
}

fn nothing_to_notify() -> Outcome {
    Outcome::ExpiryNotified {
        points: p(0),
        lots: Vec::new(),
    }
}

fn is_notified(state: &MemberState, lot_id: &str) -> bool {
    state.lot(&lot(lot_id)).expect("the lot exists").notified
}

#[test]
fn given_lots_expiring_in_fourteen_days_when_the_scheduler_notifies_then_one_notice_names_them() {
    let (decision, state) = given(earned()).when(notify_expiry(NOTICE)).then_ok();
    let lots = vec![
        notified("welcome:M1", 50, EXPIRY),
        notified("purchase:S1:T1", 100, EXPIRY),
    ];
    assert_eq!(
        decision.events,
        vec![Event::ExpiryNotified(ExpiryNotified {
            occurred_at: t(NOTICE),
            lots: lots.clone(),
        })]
    );
    assert_eq!(
        decision.outcome,
        Outcome::ExpiryNotified {
            points: p(150),
            lots
        }
    );
    assert!(is_notified(&state, "welcome:M1"));
    assert!(is_notified(&state, "purchase:S1:T1"));
    // T2 expires a month later: beyond the notice period, not yet.
    assert!(!is_notified(&state, "purchase:S1:T2"));
}

#[test]
fn given_lots_expiring_in_a_second_more_than_fourteen_days_when_notified_then_nothing_yet() {
    let (decision, _) = given(earned())
        .when(notify_expiry("2027-01-17T22:59:59Z"))
        .then_ok();
    assert!(decision.events.is_empty(), "{:?}", decision.events);
    assert_eq!(decision.outcome, nothing_to_notify());
}

#[test]
fn given_a_notice_when_the_balance_is_read_then_no_point_moved() {
    let then = given(earned()).when(notify_expiry(NOTICE));
    let (before, after) = (then.before.clone(), then.after.clone());
    then.then_ok();
    for at in [t(NOTICE), t(EXPIRY), t(FEB_EXPIRY)] {
        assert_eq!(before.balance(at), after.balance(at));
        assert_ledger_identity(&after, at);
    }
    assert_eq!(before.lifetime(), after.lifetime());
    assert_eq!(before.debt(), after.debt());
}

#[test]
fn given_lots_already_notified_when_the_scheduler_runs_again_then_nothing_is_recorded() {
    let history = with(earned(), vec![notify_expiry(NOTICE)]);
    let (decision, _) = given(history)
        .when(notify_expiry("2027-01-25T00:00:00Z"))
        .then_ok();
    assert!(decision.events.is_empty(), "{:?}", decision.events);
    assert_eq!(decision.outcome, nothing_to_notify());
}

#[test]
fn given_a_later_lot_when_its_own_notice_period_begins_then_only_it_is_announced() {
    let history = with(earned(), vec![notify_expiry(NOTICE)]);
    let events = given(history).when(notify_expiry(FEB_NOTICE)).then_events();
    // January's lots have expired meanwhile: they are expired (as every decision does first),
    // not announced again.
    let expired: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::PointsExpired(x) => Some(x.lot_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(expired, ["welcome:M1", "purchase:S1:T1"]);
    let notice = only!(events, ExpiryNotified);
    assert_eq!(
        notice.lots,
        vec![notified("purchase:S1:T2", 30, FEB_EXPIRY)]
    );
}

#[test]
fn given_lots_past_their_expiry_when_notified_then_they_expire_and_get_no_notice() {
    let events = given(earned())
        .when(notify_expiry("2027-02-01T00:00:00Z"))
        .then_events();
    assert_eq!(events.len(), 2, "{events:?}");
    none!(events, ExpiryNotified);
}

#[test]
fn given_a_spent_out_lot_when_notified_then_only_lots_holding_points_are_named_with_what_is_left() {
    // 80 points: the welcome lot's 50 (older, same expiry), then 30 of T1's 100.
    let history = with(earned(), vec![redeem("R1", "2026-03-01T10:00:00Z", 80)]);
    let events = given(history).when(notify_expiry(NOTICE)).then_events();
    let notice = only!(events, ExpiryNotified);
    assert_eq!(notice.lots, vec![notified("purchase:S1:T1", 70, EXPIRY)]);
}

#[test]
fn given_a_notified_lot_refilled_by_a_cancellation_when_notified_again_then_it_is_not_announced_twice()
 {
    let history = with(
        earned(),
        vec![
            notify_expiry(NOTICE),
            redeem("R1", "2027-01-20T10:00:00Z", 150),
            cancel("R1", "2027-01-21T10:00:00Z"),
        ],
    );
    let g = given(history);
    assert_eq!(
        g.state().lot(&lot("purchase:S1:T1")).unwrap().remaining,
        p(100)
    );
    let (decision, _) = g.when(notify_expiry("2027-01-22T10:00:00Z")).then_ok();
    assert!(decision.events.is_empty(), "{:?}", decision.events);
}

#[test]
fn given_the_inactivity_policy_when_the_deadline_nears_then_no_notice_is_recorded() {
    let inactivity = program_with(
        "policy = \"lot_months\"\nmonths = 12\nend_of_month = true",
        "policy = \"inactivity\"\nmonths = 6",
    );
    // Every point expires on 1 September 2026 at 09:00 UTC unless something happens.
    let history = vec![enroll(), purchase("T1", "2026-03-01T10:00:00Z", "100")];
    let g = given_with(inactivity, history);
    assert_eq!(
        g.state().inactivity_deadline(),
        Some(t("2026-09-01T09:00:00Z"))
    );
    let (decision, _) = g.when(notify_expiry("2026-08-31T09:00:00Z")).then_ok();
    assert!(decision.events.is_empty(), "{:?}", decision.events);
    assert_eq!(decision.outcome, nothing_to_notify());
}

#[test]
fn given_points_that_never_expire_when_notified_then_nothing_is_recorded() {
    let never = program_with(
        "policy = \"lot_months\"\nmonths = 12\nend_of_month = true",
        "policy = \"never\"",
    );
    let (decision, _) = given_with(never, earned())
        .when(notify_expiry(NOTICE))
        .then_ok();
    assert!(decision.events.is_empty(), "{:?}", decision.events);
}

#[test]
fn given_a_program_without_notices_when_notified_then_nothing_is_recorded() {
    let silent = program_with("[notices]\npoints_expiring_days = 14\n", "");
    let (decision, _) = given_with(silent, earned())
        .when(notify_expiry(NOTICE))
        .then_ok();
    assert!(decision.events.is_empty(), "{:?}", decision.events);
    assert_eq!(decision.outcome, nothing_to_notify());
}

#[test]
fn given_a_longer_notice_period_when_notified_then_lots_further_ahead_are_named() {
    let month = program_with("points_expiring_days = 14", "points_expiring_days = 45");
    let events = given_with(month, earned())
        .when(notify_expiry(NOTICE))
        .then_events();
    let notice = only!(events, ExpiryNotified);
    let ids: Vec<String> = notice.lots.iter().map(|l| l.lot_id.to_string()).collect();
    // Soonest expiry first.
    assert_eq!(ids, ["welcome:M1", "purchase:S1:T1", "purchase:S1:T2"]);
}

#[test]
fn given_the_servers_clock_when_the_notice_is_dated_otherwise_then_the_clock_decides() {
    // Dated a week before the notice period, run when the server's clock is in it: the clock
    // decides, and the notice is dated by it.
    let events = given(earned())
        .when(server_at(NOTICE, notify_expiry("2027-01-10T23:00:00Z")))
        .then_events();
    assert_eq!(only!(events, ExpiryNotified).occurred_at, t(NOTICE));
    // Scheduled work may not be dated ahead of the server's clock.
    let ahead = given(earned())
        .when(server_at("2027-01-10T23:00:00Z", notify_expiry(NOTICE)))
        .result;
    assert!(
        matches!(ahead, Err(DomainError::OccurredAtOutsideWindow { .. })),
        "{ahead:?}"
    );
}

#[test]
fn given_a_suspended_member_when_notified_then_the_notice_is_recorded_all_the_same() {
    // Suspension stops spending, not the clock: the points still expire.
    let history = with(earned(), vec![suspend("2026-12-01T10:00:00Z")]);
    let events = given(history).when(notify_expiry(NOTICE)).then_events();
    assert_eq!(only!(events, ExpiryNotified).lots.len(), 2);
}

#[test]
fn given_a_closed_account_when_notified_then_it_is_refused_as_everything_else_is() {
    let history = with(earned(), vec![close("2026-12-01T10:00:00Z")]);
    given(history)
        .when(notify_expiry(NOTICE))
        .then_err(DomainError::MemberClosed);
}

#[test]
fn given_a_compacted_state_when_notified_then_it_decides_as_the_full_state_and_keeps_the_flags() {
    let history = with(
        earned(),
        vec![
            purchase("T3", "2026-03-10T10:00:00Z", "10"),
            purchase("T4", "2026-03-11T10:00:00Z", "10"),
            redeem("R1", "2026-04-01T10:00:00Z", 50),
            notify_expiry(NOTICE),
        ],
    );
    let full = given(history).state().clone();
    let mut hot = full.clone();
    let program = program();
    hot.compact(&HotLimits {
        max_purchases: 1,
        max_redemptions: 0,
        max_processed: 1,
        ..HotLimits::new(&program, TimeWindow::DEFAULT)
    });
    assert!(is_notified(&hot, "purchase:S1:T1"));
    for at in [NOTICE, "2027-01-20T00:00:00Z", FEB_NOTICE] {
        let command = notify_expiry(at);
        assert!(!hot.needs_history(&command));
        let server = ServerTime::at(t(at));
        assert_eq!(
            decide(&hot, &command, &program, server),
            decide(&full, &command, &program, server)
        );
    }
}

/// A lot as member snapshots stored it before notices existed.
#[derive(serde::Serialize)]
struct LotBeforeNotices {
    id: LotId,
    points: Points,
    remaining: Points,
    earned_at: chrono::DateTime<chrono::Utc>,
    spendable_from: chrono::DateTime<chrono::Utc>,
    expiry: LotExpiry,
    expired: bool,
}

#[test]
fn given_a_lot_snapshotted_before_notices_existed_when_read_back_then_it_is_not_notified() {
    let old = LotBeforeNotices {
        id: lot("purchase:S1:T1"),
        points: p(100),
        remaining: p(100),
        earned_at: t(BOUGHT),
        spendable_from: t("2026-01-24T10:00:00Z"),
        expiry: LotExpiry::At(t(EXPIRY)),
        expired: false,
    };
    // MessagePack with field names, as the engine's member snapshots are written.
    let bytes = rmp_serde::to_vec_named(&old).unwrap();
    let back: Lot = rmp_serde::from_slice(&bytes).expect("an old lot still reads");
    assert!(!back.notified);
    assert_eq!(back.remaining, p(100));
}
