//! Redemptions, cancellations and expiry.

use crate::support;

use loyalty_core::*;
use support::*;

const BOUGHT: &str = "2026-01-10T10:00:00Z";
const SPENT: &str = "2026-02-01T10:00:00Z";
/// Both the welcome lot and T1 expire at the end of January 2027 in Paris.
const EXPIRY: &str = "2027-01-31T23:00:00Z";

/// Welcome 50 + T1 100, both spendable by February.
fn earned() -> Vec<Command> {
    vec![enroll(), purchase("T1", BOUGHT, "100")]
}

fn with(mut history: Vec<Command>, more: Vec<Command>) -> Vec<Command> {
    history.extend(more);
    history
}

#[test]
fn redeeming_more_than_the_available_points_is_refused_with_the_balance() {
    given(earned())
        .when(redeem("R1", SPENT, 200))
        .then_err(DomainError::InsufficientPoints {
            available: p(150),
            requested: p(200),
        });
}

#[test]
fn pending_points_cannot_be_spent() {
    // Two days after the purchase its 100 points are pending; only the welcome 50 are spendable.
    given(earned())
        .when(redeem("R1", "2026-01-12T10:00:00Z", 60))
        .then_err(DomainError::InsufficientPoints {
            available: p(50),
            requested: p(60),
        });
}

#[test]
fn a_redemption_consumes_the_soonest_expiring_lots_first_then_the_oldest() {
    let history = with(earned(), vec![purchase("T2", "2026-02-20T10:00:00Z", "50")]);
    let (decision, state) = given(history)
        .when(redeem("R1", "2026-04-01T10:00:00Z", 170))
        .then_ok();
    let redeemed = only!(decision.events, PointsRedeemed);
    // Welcome and T1 expire together (end of January 2027): the older goes first.
    assert_eq!(
        redeemed.draws,
        vec![
            draw("welcome:M1", 50),
            draw("purchase:S1:T1", 100),
            draw("purchase:S1:T2", 20)
        ]
    );
    assert_eq!(
        decision.outcome,
        Outcome::Redeemed {
            redemption_id: RedemptionId::parse("R1").unwrap(),
            reward_id: None,
            points: p(170),
            lots: redeemed.draws.clone(),
        }
    );
    let b = state.balance(t("2026-04-01T10:00:00Z"));
    assert_eq!((b.available, b.lifetime.redeemed), (p(30), p(170)));
}

#[test]
fn a_reward_costs_its_catalog_points() {
    let events = given(earned())
        .when(redeem_reward("R1", SPENT, "coffee"))
        .then_events();
    let redeemed = only!(events, PointsRedeemed);
    assert_eq!(redeemed.points, p(100));
    assert_eq!(redeemed.reward_id, Some(RewardId::parse("coffee").unwrap()));
}

#[test]
fn an_unknown_reward_is_refused() {
    given(earned())
        .when(redeem_reward("R1", SPENT, "caviar"))
        .then_err(DomainError::UnknownReward {
            reward_id: "caviar".into(),
        });
}

#[test]
fn a_reward_above_the_members_tier_is_refused() {
    given(earned())
        .when(redeem_reward("R1", SPENT, "class"))
        .then_err(DomainError::TierTooLow {
            required: "Gold".into(),
            current: "Bronze".into(),
        });
}

#[test]
fn a_gold_member_can_redeem_a_gold_reward() {
    let history = vec![enroll(), purchase("T1", BOUGHT, "600")];
    given(history)
        .when(redeem_reward("R1", SPENT, "class"))
        .then_ok();
}

#[test]
fn a_reward_stops_at_its_per_member_limit_and_a_cancellation_frees_it() {
    let history = with(earned(), vec![redeem_reward("R1", SPENT, "mug")]);
    given(history.clone())
        .when(redeem_reward("R2", SPENT, "mug"))
        .then_err(DomainError::RewardLimitReached {
            reward_id: "mug".into(),
            limit: 1,
        });
    given(with(history, vec![cancel("R1", SPENT)]))
        .when(redeem_reward("R2", SPENT, "mug"))
        .then_ok();
}

#[test]
fn a_reward_is_available_only_within_its_local_dates() {
    // Until 30 June in Paris: 23:59 local is 21:59 UTC; 22:00 UTC is already 1 July.
    given(earned())
        .when(redeem_reward("R1", "2026-06-30T21:59:00Z", "mug"))
        .then_ok();
    given(earned())
        .when(redeem_reward("R1", "2026-06-30T22:00:00Z", "mug"))
        .then_err(DomainError::RewardNotAvailable {
            reward_id: "mug".into(),
        });
}

#[test]
fn a_points_redemption_must_be_positive_and_within_the_limit() {
    given(earned())
        .when(redeem("R1", SPENT, 0))
        .then_err(DomainError::PointsNotPositive);
    given(earned())
        .when(redeem("R1", SPENT, 20_000_000))
        .then_err(DomainError::PointsTooLarge { max: p(10_000_000) });
}

#[test]
fn the_same_redemption_sent_twice_is_a_replay() {
    let r1 = redeem("R1", SPENT, 120);
    let original = given(earned()).when(r1.clone()).then_outcome();
    assert_eq!(
        given(with(earned(), vec![r1.clone()]))
            .when(r1)
            .then_replayed(),
        original
    );
    given(with(earned(), vec![redeem("R1", SPENT, 120)]))
        .when(redeem("R1", SPENT, 20))
        .then_err(DomainError::IdempotencyConflict {
            client_id: "redeem:R1".into(),
        });
}

#[test]
fn cancelling_a_redemption_restores_exactly_the_lots_it_took() {
    let history = with(earned(), vec![redeem("R1", SPENT, 130)]);
    let (decision, state) = given(history)
        .when(cancel("R1", "2026-02-02T10:00:00Z"))
        .then_ok();
    let cancelled = only!(decision.events, RedemptionCancelled);
    assert_eq!(
        cancelled.restored,
        vec![draw("welcome:M1", 50), draw("purchase:S1:T1", 80)]
    );
    let b = state.balance(t("2026-02-02T10:00:00Z"));
    assert_eq!((b.available, b.lifetime.redeemed), (p(150), p(0)));
    assert!(
        state
            .redemption(&RedemptionId::parse("R1").unwrap())
            .unwrap()
            .cancelled
    );
}

#[test]
fn points_restored_to_an_expired_lot_expire_at_once() {
    let history = with(earned(), vec![redeem("R1", SPENT, 130)]);
    let (decision, state) = given(history)
        .when(cancel("R1", "2027-02-15T10:00:00Z"))
        .then_ok();
    let expired: Vec<(String, i64)> = decision
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PointsExpired(x) => Some((x.lot_id.to_string(), x.points.value())),
            _ => None,
        })
        .collect();
    assert_eq!(
        expired,
        vec![
            ("purchase:S1:T1".into(), 20), // what was left in T1, due before the cancellation
            ("welcome:M1".into(), 50),
            ("purchase:S1:T1".into(), 80),
        ]
    );
    let b = state.balance(t("2027-02-15T10:00:00Z"));
    assert_eq!(
        (b.available, b.lifetime.expired, b.lifetime.redeemed),
        (p(0), p(150), p(0))
    );
}

#[test]
fn an_unknown_redemption_cannot_be_cancelled() {
    given(earned())
        .when(cancel("R9", SPENT))
        .then_err(DomainError::UnknownRedemption {
            redemption_id: "R9".into(),
        });
}

#[test]
fn cancelling_a_redemption_again_later_is_a_replay_of_the_first_cancellation() {
    let history = with(
        earned(),
        vec![redeem("R1", SPENT, 130), cancel("R1", SPENT)],
    );
    let outcome = given(history.clone())
        .when(cancel("R1", SPENT))
        .then_replayed();
    assert!(
        matches!(outcome, Outcome::RedemptionCancelled { points_restored, .. } if points_restored == p(130))
    );
    given(history)
        .when(cancel("R1", "2026-03-01T10:00:00Z"))
        .then_replayed();
}

#[test]
fn expire_records_one_event_per_lot_due() {
    let (decision, state) = given(earned()).when(expire(EXPIRY)).then_ok();
    let lots: Vec<_> = decision
        .events
        .iter()
        .map(|e| match e {
            Event::PointsExpired(x) => (x.lot_id.to_string(), x.points.value(), x.expired_at),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        lots,
        vec![
            ("welcome:M1".into(), 50, t(EXPIRY)),
            ("purchase:S1:T1".into(), 100, t(EXPIRY))
        ]
    );
    assert!(matches!(decision.outcome, Outcome::Expired { points, .. } if points == p(150)));
    assert_eq!(state.balance(t(EXPIRY)).lifetime.expired, p(150));
}

#[test]
fn nothing_expires_a_second_before_the_end_of_the_month_in_paris() {
    let events = given(earned())
        .when(expire("2027-01-31T22:59:59Z"))
        .then_events();
    assert!(events.is_empty());
}

#[test]
fn expired_points_are_not_spendable_even_before_expire_runs() {
    let g = given(earned());
    let b = g.state().balance(t(EXPIRY));
    assert_eq!(
        (b.available, b.lifetime.expired, b.balance),
        (p(0), p(150), p(0))
    );
    g.when(redeem("R1", EXPIRY, 10))
        .then_err(DomainError::InsufficientPoints {
            available: p(0),
            requested: p(10),
        });
}

#[test]
fn expiry_never_takes_points_already_spent() {
    let events = given(with(earned(), vec![redeem("R1", SPENT, 120)]))
        .when(expire(EXPIRY))
        .then_events();
    let expired = only!(events, PointsExpired);
    assert_eq!(
        (expired.lot_id, expired.points),
        (lot("purchase:S1:T1"), p(30))
    );
}

#[test]
fn expiring_twice_changes_nothing_the_second_time() {
    let events = given(with(earned(), vec![expire(EXPIRY)]))
        .when(expire("2027-03-01T00:00:00Z"))
        .then_events();
    assert!(events.is_empty());
}

#[test]
fn the_balance_shows_the_next_expiry() {
    let g = given(earned());
    let next = g.state().balance(t(SPENT)).next_expiry.unwrap();
    assert_eq!((next.points, next.at), (p(150), t(EXPIRY)));
}

fn inactivity() -> Program {
    program_with(
        "policy = \"lot_months\"\nmonths = 12\nend_of_month = true",
        "policy = \"inactivity\"\nmonths = 6",
    )
}

#[test]
fn under_the_inactivity_policy_all_points_expire_after_months_without_activity() {
    // Last activity: 1 March, 11:00 in Paris; six months later is 1 September, 11:00 CEST.
    let history = vec![enroll(), purchase("T1", "2026-03-01T10:00:00Z", "100")];
    let g = given_with(inactivity(), history);
    assert_eq!(
        g.state().balance(t("2026-09-01T08:59:59Z")).available,
        p(150)
    );
    assert_eq!(g.state().balance(t("2026-09-01T09:00:00Z")).available, p(0));
    let events = g.when(expire("2026-09-02T00:00:00Z")).then_events();
    assert_eq!(events.len(), 2);
}

#[test]
fn under_the_inactivity_policy_a_redemption_moves_the_deadline() {
    let history = vec![
        enroll(),
        purchase("T1", "2026-03-01T10:00:00Z", "100"),
        redeem("R1", "2026-08-01T10:00:00Z", 10),
    ];
    let g = given_with(inactivity(), history);
    assert_eq!(
        g.state().balance(t("2026-12-01T00:00:00Z")).available,
        p(140)
    );
    assert_eq!(
        g.state().balance(t("2027-02-01T10:59:59Z")).available,
        p(140)
    );
    // 1 August 12:00 CEST + 6 months = 1 February 12:00 CET = 11:00 UTC.
    assert_eq!(g.state().balance(t("2027-02-01T11:00:00Z")).available, p(0));
}

#[test]
fn an_activity_after_the_deadline_does_not_revive_expired_points() {
    let history = vec![enroll(), purchase("T1", "2026-03-01T10:00:00Z", "100")];
    let (decision, state) = given_with(inactivity(), history)
        .when(purchase("T2", "2026-10-01T10:00:00Z", "10"))
        .then_ok();
    assert!(matches!(decision.events[0], Event::PointsExpired(_)));
    let b = state.balance(t("2026-10-20T10:00:00Z"));
    assert_eq!((b.available, b.lifetime.expired), (p(10), p(150)));
}

#[test]
fn under_the_never_policy_points_never_expire() {
    let never = program_with(
        "policy = \"lot_months\"\nmonths = 12\nend_of_month = true",
        "policy = \"never\"",
    );
    let g = given_with(never, earned());
    assert_eq!(
        g.state().balance(t("2036-01-01T00:00:00Z")).available,
        p(150)
    );
    assert!(
        g.when(expire("2036-01-01T00:00:00Z"))
            .then_events()
            .is_empty()
    );
}
