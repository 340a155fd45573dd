//! Properties over random command sequences, under both clawback policies and the inactivity
//! policy. The server's clock moves forward on its own; every command's business time is drawn
//! around it, backwards and forwards, mostly inside the accepted window and sometimes far
//! outside it. At every step:
//! - nothing pending or expired by the server's clock is ever spent, and expired points are
//!   never drawn by anything;
//! - no `PointsExpired` is recorded before the lot's expiry by the server's clock;
//! - an expiry notice names only dated lots holding points that expire after the server's
//!   clock, each lot once ever;
//! - a caller's command is accepted only with a business time inside the window;
//! - the ledger identity holds, and no lot ever goes negative;
//! - under `clamp` there is never a debt and the balance never goes below zero;
//! - replaying the events rebuilds the same state, also through the stored schema;
//! - sending any command a second time changes nothing;
//! - a hot state compacted to tiny limits decides every command it does not send to the full
//!   history exactly as the full state does, and equals the full state compacted, also when
//!   it was read back from a snapshot (MessagePack, as the engine stores them);
//! - the clawbacks of a purchase never exceed its award, and equal it once fully refunded.

use crate::support;

use chrono::{DateTime, Duration, Utc};
use loyalty_core::schema;
use loyalty_core::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use support::*;

#[derive(Debug, Clone)]
enum Op {
    Purchase {
        tx: u8,
        lines: Vec<(u8, i64)>,
    },
    RefundLine {
        id: u8,
        tx: u8,
        line: u32,
        cents: i64,
    },
    RefundAmount {
        id: u8,
        tx: u8,
        cents: i64,
    },
    Redeem {
        id: u8,
        points: i64,
    },
    RedeemReward {
        id: u8,
        reward: u8,
    },
    Cancel {
        id: u8,
    },
    Expire,
    NotifyExpiry,
    Activity {
        id: u8,
        kind: u8,
    },
    Adjust {
        id: u8,
        points: i64,
    },
    Goodwill {
        id: u8,
        points: i64,
    },
    Referral {
        newcomer: u8,
    },
    RevokeReferral {
        newcomer: u8,
    },
    Review,
    Suspend,
    Reinstate,
    Close,
    /// Sends an earlier command again, unchanged.
    Retry {
        index: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, prop::collection::vec((0u8..5, 1i64..20_000), 1..4))
            .prop_map(|(tx, lines)| Op::Purchase { tx, lines }),
        3 => (0u8..6, 0u8..6, 0u32..3, 1i64..12_000)
            .prop_map(|(id, tx, line, cents)| Op::RefundLine { id, tx, line, cents }),
        2 => (0u8..6, 0u8..6, 1i64..30_000)
            .prop_map(|(id, tx, cents)| Op::RefundAmount { id, tx, cents }),
        3 => (0u8..6, 1i64..400).prop_map(|(id, points)| Op::Redeem { id, points }),
        1 => (0u8..6, 0u8..3).prop_map(|(id, reward)| Op::RedeemReward { id, reward }),
        2 => (0u8..6).prop_map(|id| Op::Cancel { id }),
        2 => Just(Op::Expire),
        2 => Just(Op::NotifyExpiry),
        2 => (0u8..6, 0u8..4).prop_map(|(id, kind)| Op::Activity { id, kind }),
        2 => (0u8..4, -400i64..400).prop_map(|(id, points)| Op::Adjust { id, points }),
        1 => (0u8..3, 1i64..200).prop_map(|(id, points)| Op::Goodwill { id, points }),
        1 => (0u8..3).prop_map(|newcomer| Op::Referral { newcomer }),
        1 => (0u8..3).prop_map(|newcomer| Op::RevokeReferral { newcomer }),
        1 => Just(Op::Review),
        1 => Just(Op::Suspend),
        1 => Just(Op::Reinstate),
        1 => (0u8..20).prop_map(|n| if n == 0 { Op::Close } else { Op::Expire }),
        2 => (0usize..64).prop_map(|index| Op::Retry { index }),
    ]
}

/// One step: a command, how far the server's clock moves first (0 to ~80 days), and the
/// command's business time relative to the server's clock, in minutes.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    advance_hours: i64,
    offset_minutes: i64,
}

const DAY_MINUTES: i64 = 24 * 60;
const WEEK_MINUTES: i64 = 7 * DAY_MINUTES;
const YEAR_MINUTES: i64 = 366 * 24 * 60;

/// Mostly inside the window (up to 7 days back, 5 minutes ahead; most often within the last
/// day) with its edges well covered, sometimes anywhere within a year either way (a till with
/// the wrong year).
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => -DAY_MINUTES..=5i64,
        3 => -WEEK_MINUTES..=5i64,
        1 => prop::sample::select(vec![-WEEK_MINUTES - 1, -WEEK_MINUTES, 0, 5, 6]),
        1 => -YEAR_MINUTES..=YEAR_MINUTES,
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (op(), 0i64..2000, offset()).prop_map(|(op, advance_hours, offset_minutes)| Step {
            op,
            advance_hours,
            offset_minutes,
        }),
        1..40,
    )
}

const CATEGORIES: [(&str, &str); 5] = [
    ("LATTE", "drinks"),
    ("BEANS", "beans"),
    ("CAKE", "pastry"),
    ("GIFT", "gift-card"),
    ("MUG", "beans"),
];
const REWARDS: [&str; 3] = ["coffee", "class", "mug"];
const KINDS: [&str; 4] = ["survey", "review", "app", "checkin"];

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

fn money(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

fn command(op: &Op, at: DateTime<Utc>, sent: &[Command]) -> Command {
    let at_s = iso(at);
    let at = at_s.as_str();
    match op {
        Op::Purchase { tx, lines } => purchase_lines(
            &format!("T{tx}"),
            at,
            lines
                .iter()
                .map(|(c, cents)| {
                    let (sku, category) = CATEGORIES[*c as usize % CATEGORIES.len()];
                    line(sku, category, &money(*cents))
                })
                .collect(),
        ),
        Op::RefundLine {
            id,
            tx,
            line,
            cents,
        } => refund_lines(
            &format!("F{id}"),
            &format!("T{tx}"),
            at,
            &[(*line, money(*cents).as_str())],
        ),
        Op::RefundAmount { id, tx, cents } => {
            refund_amount(&format!("F{id}"), &format!("T{tx}"), at, &money(*cents))
        }
        Op::Redeem { id, points } => redeem(&format!("R{id}"), at, *points),
        Op::RedeemReward { id, reward } => {
            redeem_reward(&format!("R{id}"), at, REWARDS[*reward as usize % 3])
        }
        Op::Cancel { id } => cancel(&format!("R{id}"), at),
        Op::Expire => expire(at),
        Op::NotifyExpiry => notify_expiry(at),
        Op::Activity { id, kind } => activity(&format!("A{id}"), KINDS[*kind as usize % 4], at),
        Op::Adjust { id, points } => adjust(&format!("J{id}"), at, *points),
        Op::Goodwill { id, points } => goodwill(&format!("C{id}"), at, *points),
        Op::Referral { newcomer } => credit_referral(&format!("N{newcomer}"), at),
        Op::RevokeReferral { newcomer } => revoke_referral(&format!("N{newcomer}"), at),
        Op::Review => review(at),
        Op::Suspend => suspend(at),
        Op::Reinstate => reinstate(at),
        Op::Close => close(at),
        Op::Retry { index } => {
            if sent.is_empty() {
                expire(at)
            } else {
                sent[index % sent.len()].clone()
            }
        }
    }
}

fn check_identity(state: &MemberState, at: DateTime<Utc>) -> Result<(), TestCaseError> {
    let b = state.balance(at);
    let l = &b.lifetime;
    let left = l.earned.value()
        - l.redeemed.value()
        - l.expired.value()
        - l.clawed_back.value()
        - l.forfeited.value()
        + l.adjusted.value();
    prop_assert_eq!(
        left,
        b.available.value() + b.pending.value() - b.debt.value()
    );
    prop_assert!(b.available.value() >= 0 && b.pending.value() >= 0 && b.debt.value() >= 0);
    for lot in state.lots() {
        prop_assert!(lot.remaining.value() >= 0, "lot {} below zero", lot.id);
        prop_assert!(
            lot.remaining <= lot.points,
            "lot {} above its award",
            lot.id
        );
    }
    Ok(())
}

/// Every lot draw an event makes, and whether it spends (only spends need spendable points;
/// a clawback may take pending points back, never expired ones).
fn draws(event: &Event) -> Vec<(&LotDraw, bool)> {
    fn debit(d: &Debit) -> Vec<(&LotDraw, bool)> {
        d.draws.iter().map(|x| (x, false)).collect()
    }
    match event {
        Event::PointsRedeemed(e) => e.draws.iter().map(|d| (d, true)).collect(),
        Event::RefundRecorded(e) => debit(&e.debit),
        Event::ReferralRevoked(e) => debit(&e.debit),
        Event::ReferralBonusRevoked(e) => debit(&e.debit),
        Event::PointsAdjusted(e) => e.debit.as_ref().map(debit).unwrap_or_default(),
        Event::AccountClosed(e) => e.forfeited.iter().map(|d| (d, false)).collect(),
        _ => Vec::new(),
    }
}

/// Whether the caller chose the command's business time (then it must lie in the window).
fn dated_by_caller(c: &Command) -> bool {
    !matches!(
        c,
        Command::Expire(_)
            | Command::NotifyExpiry(_)
            | Command::ReviewTier(_)
            | Command::CreditReferralBonus(_)
            | Command::RevokeReferralBonus(_)
    )
}

/// The window the server accepts business times in: the default, or one wide enough that
/// every generated business time is accepted. The invariants hold whatever the window: it is
/// policy, while what is spendable or expired is the server's clock's call alone.
fn run(program: &Program, window: TimeWindow, steps: &[Step]) -> Result<(), TestCaseError> {
    let clamp = program.clawback_policy() == program::ClawbackPolicy::Clamp;
    // The server's clock: it only moves forward.
    let mut now = t(ENROLLED);
    let mut state = MemberState::default();
    let mut history: Vec<Event> = Vec::new();
    let mut sent: Vec<Command> = vec![enroll_referred_by("R9")];
    // A hot state kept beside the full one, compacted after every step to limits small enough
    // that retirement happens all the time.
    let limits = HotLimits {
        max_purchases: 2,
        max_redemptions: 2,
        max_processed: 4,
        ..HotLimits::new(program, window)
    };
    let first = decide(
        &state,
        &sent[0],
        program,
        ServerTime::at(now).with_window(window),
    )
    .expect("enrollment");
    for e in &first.events {
        evolve(&mut state, e);
        history.push(e.clone());
    }
    let mut hot = state.clone();
    hot.compact(&limits);

    for step in steps {
        now += Duration::hours(step.advance_hours);
        let server = ServerTime::at(now).with_window(window);
        let at = now + Duration::minutes(step.offset_minutes);
        let c = match step.op {
            // Scheduled work runs as of the server's clock.
            Op::Expire | Op::NotifyExpiry | Op::Review => command(&step.op, now, &sent),
            _ => command(&step.op, at, &sent),
        };
        let full = decide(&state, &c, program, server);
        let cold = hot.needs_history(&c);
        if !cold {
            prop_assert_eq!(
                &decide(&hot, &c, program, server),
                &full,
                "the hot state decided {:?} otherwise",
                c
            );
        }
        let Ok(decision) = full else {
            continue;
        };
        if !decision.replayed && dated_by_caller(&c) {
            let (earliest, latest) = server.accepted();
            prop_assert!(
                c.occurred_at() >= earliest && c.occurred_at() <= latest,
                "accepted {c:?} dated outside the window around {now}"
            );
        }
        // Pending and expired points are never spent, and expired points never drawn, by the
        // server's clock, whatever the command's date and whether or not expiry has run.
        for e in &decision.events {
            for (d, spends) in draws(e) {
                let lot = state.lot(&d.lot_id).expect("drawn lot exists");
                prop_assert!(
                    !state.is_due(lot, now),
                    "expired lot {} drawn by {e:?}",
                    lot.id
                );
                if spends {
                    prop_assert!(lot.spendable_from <= now, "pending lot {} spent", lot.id);
                }
            }
            // Nothing expires before its time by the server's clock.
            if let Event::PointsExpired(x) = e {
                let lot = state.lot(&x.lot_id).expect("expired lot exists");
                let due = state.lot_expires_at(lot);
                prop_assert!(
                    x.expired_at <= now,
                    "expired at {} after {now}",
                    x.expired_at
                );
                prop_assert!(due.is_some_and(|d| d <= now), "lot {} not due yet", lot.id);
            }
            // A notice names dated lots holding what it says, not expired by the server's
            // clock, never announced before.
            if let Event::ExpiryNotified(x) = e {
                prop_assert!(!x.lots.is_empty(), "an empty notice");
                for n in &x.lots {
                    let lot = state.lot(&n.lot_id).expect("notified lot exists");
                    prop_assert!(!lot.notified, "lot {} notified twice", lot.id);
                    prop_assert_eq!(lot.expiry, LotExpiry::At(n.expires_at));
                    prop_assert!(
                        n.expires_at > now,
                        "lot {} announced after its expiry",
                        lot.id
                    );
                    prop_assert!(n.points.is_positive() && n.points == lot.remaining);
                }
            }
        }
        let mut compacted = state.clone();
        for e in &decision.events {
            evolve(&mut compacted, e);
        }
        compacted.compact(&limits);
        if cold {
            // Decided on the full history: the hot state is rebuilt from it (as the engine
            // does), since the events may touch what the hot state retired.
            hot = compacted.clone();
        } else {
            for e in &decision.events {
                prop_assert!(hot.applies_cleanly(e), "{e:?} decided on the hot state");
                evolve(&mut hot, e);
            }
            hot.compact(&limits);
            prop_assert_eq!(&hot, &compacted, "compaction step by step differs");
        }
        // The engine snapshots hot states and decides on what it reads back: from here on, the
        // hot state is the one read back from its snapshot.
        let bytes = rmp_serde::to_vec_named(&hot).expect("a state serialises");
        let mut back = rmp_serde::from_slice::<MemberState>(&bytes)
            .expect("a snapshot reads back")
            .restored();
        back.compact(&limits);
        prop_assert_eq!(&back, &hot, "a snapshot read back differs");
        hot = back;
        for e in &decision.events {
            evolve(&mut state, e);
            history.push(e.clone());
            // The stored form decodes to the same event.
            let s = schema::encode(e);
            let back = schema::decode(s.event_type, s.schema_version, &s.data);
            prop_assert_eq!(back.as_ref(), Ok(e));
        }
        sent.push(c.clone());
        check_identity(&state, now)?;
        check_identity(&state, now + Duration::days(400))?;
        if clamp {
            prop_assert!(state.debt().is_zero());
            prop_assert!(state.balance(now).balance.value() >= 0);
        }

        // Sending it again changes nothing, and a retry reports the original outcome.
        if let Ok(again) = decide(&state, &c, program, server) {
            prop_assert!(
                again.events.is_empty(),
                "second {c:?} decided {:?}",
                again.events
            );
            if again.replayed {
                prop_assert_eq!(&again.outcome, &decision.outcome);
            }
        }

        // The clawbacks of each purchase stay within its award.
        for purchase in state.purchases() {
            prop_assert!(purchase.clawed() <= purchase.points);
            if purchase.refunded_amount() == purchase.total_amount() {
                prop_assert_eq!(purchase.clawed(), purchase.points);
            }
        }
    }

    // Replaying the whole history rebuilds the same state.
    prop_assert_eq!(&MemberState::from_events(&history), &state);
    // And the events alone say the same about clawbacks.
    for e in &history {
        if let Event::PurchaseRecorded(p) = e {
            let clawed: i64 = history
                .iter()
                .filter_map(|x| match x {
                    Event::RefundRecorded(r) if r.transaction_id == p.transaction_id => {
                        Some(r.points.value())
                    }
                    _ => None,
                })
                .sum();
            prop_assert!(clawed <= p.points.value());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_holds_under_allow(steps in steps()) {
        run(&program(), TimeWindow::DEFAULT, &steps)?;
    }

    #[test]
    fn the_ledger_holds_under_clamp(steps in steps()) {
        run(&program_with("policy = \"allow\"", "policy = \"clamp\""), TimeWindow::DEFAULT, &steps)?;
    }

    #[test]
    fn the_servers_clock_decides_even_when_every_business_time_is_accepted(steps in steps()) {
        let wide = TimeWindow {
            max_ahead: Duration::days(400),
            max_behind: Duration::days(400),
        };
        run(&program(), wide, &steps)?;
    }

    #[test]
    fn the_ledger_holds_under_the_inactivity_policy(steps in steps()) {
        let inactivity = program_with(
            "policy = \"lot_months\"\nmonths = 12\nend_of_month = true",
            "policy = \"inactivity\"\nmonths = 3",
        );
        run(&inactivity, TimeWindow::DEFAULT, &steps)?;
    }
}
