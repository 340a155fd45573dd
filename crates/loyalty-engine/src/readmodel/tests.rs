//! The compact rows must read exactly like the core's `MemberState`: random histories are
//! decided and evolved by the core, folded into a row, and both are read at several instants.

use super::*;
use chrono::TimeZone;
use loyalty_core::Points;
use loyalty_core::{
    Adjust, AdjustmentId, CancelRedemption, CategoryId, Command, Currency, Enroll, Expire,
    Goodwill, MemberState, NotifyExpiry, OperatorId, PurchaseLine, ReasonCode, RecordPurchase,
    Redeem, RedeemTarget, RedemptionId, Refund, RefundId, RefundScope, ReviewTier, ServerTime, Sku,
    StoreId, TerminalId, TransactionId, decide, evolve,
};
use proptest::prelude::*;
use rust_decimal::Decimal;

const DEMO: &str = include_str!("../../../../config/program.toml");

fn programs() -> Vec<Program> {
    let demo = Program::from_toml_str(DEMO).unwrap();
    let mut inactivity = demo.clone();
    inactivity.expiry = loyalty_core::program::ExpiryPolicy::Inactivity { months: 2 };
    let mut clamp = demo.clone();
    clamp.clawback.policy = loyalty_core::program::ClawbackPolicy::Clamp;
    clamp.pending.days = 0;
    vec![demo, inactivity, clamp]
}

#[derive(Debug, Clone)]
enum Op {
    Purchase { amount: i64, beans: bool },
    Redeem(i64),
    RedeemReward(usize),
    Refund { purchase: usize, amount: i64 },
    Cancel(usize),
    Adjust(i64),
    Goodwill(i64),
    Advance(i64),
    Expire,
    NotifyExpiry,
    Review,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..400, any::<bool>()).prop_map(|(amount, beans)| Op::Purchase { amount, beans }),
        4 => (1i64..120).prop_map(Op::Redeem),
        2 => (0usize..4).prop_map(Op::RedeemReward),
        2 => (0usize..16, 1i64..200).prop_map(|(purchase, amount)| Op::Refund { purchase, amount }),
        2 => (0usize..16).prop_map(Op::Cancel),
        1 => (-150i64..150).prop_map(Op::Adjust),
        1 => (1i64..100).prop_map(Op::Goodwill),
        3 => (0i64..90).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => Just(Op::NotifyExpiry),
        1 => Just(Op::Review),
    ]
}

fn command(
    op: &Op,
    i: usize,
    at: DateTime<Utc>,
    m: &MemberId,
    program: &Program,
) -> Option<Command> {
    let member_id = m.clone();
    let occurred_at = at;
    Some(match op {
        Op::Purchase { amount, beans } => Command::RecordPurchase(RecordPurchase {
            member_id,
            transaction_id: TransactionId::parse(format!("T{i}")).unwrap(),
            store: StoreId::parse("paris-opera").unwrap(),
            terminal: TerminalId::parse("till").unwrap(),
            occurred_at,
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![PurchaseLine {
                sku: Sku::parse("SKU").unwrap(),
                category: CategoryId::parse(if *beans { "coffee-beans" } else { "pastry" })
                    .unwrap(),
                quantity: Decimal::ONE,
                amount: Decimal::from(*amount),
            }],
        }),
        Op::Redeem(points) => Command::Redeem(Redeem {
            member_id,
            redemption_id: RedemptionId::parse(format!("R{i}")).unwrap(),
            occurred_at,
            target: RedeemTarget::Points(Points::new(*points)),
        }),
        Op::RedeemReward(reward) => Command::Redeem(Redeem {
            member_id,
            redemption_id: RedemptionId::parse(format!("R{i}")).unwrap(),
            occurred_at,
            target: RedeemTarget::Reward(program.rewards()[*reward].id.clone()),
        }),
        Op::Refund { purchase, amount } => Command::Refund(Refund {
            member_id,
            refund_id: RefundId::parse(format!("RF{i}")).unwrap(),
            store: StoreId::parse("paris-opera").unwrap(),
            purchase_store: StoreId::parse("paris-opera").unwrap(),
            transaction_id: TransactionId::parse(format!("T{purchase}")).unwrap(),
            occurred_at,
            currency: Currency::parse("EUR").unwrap(),
            scope: RefundScope::Amount(Decimal::from(*amount)),
        }),
        Op::Cancel(redemption) => Command::CancelRedemption(CancelRedemption {
            member_id,
            redemption_id: RedemptionId::parse(format!("R{redemption}")).unwrap(),
            occurred_at,
        }),
        Op::Adjust(points) if *points != 0 => Command::Adjust(Adjust {
            member_id,
            adjustment_id: AdjustmentId::parse(format!("A{i}")).unwrap(),
            points: Points::new(*points),
            reason_code: ReasonCode::parse("correction").unwrap(),
            note: String::new(),
            operator: OperatorId::parse("op").unwrap(),
            occurred_at,
        }),
        Op::Adjust(_) => return None,
        Op::Goodwill(points) => Command::Goodwill(Goodwill {
            member_id,
            complaint_id: loyalty_core::ComplaintId::parse(format!("C{i}")).unwrap(),
            points: Points::new(*points),
            reason_code: ReasonCode::parse("complaint").unwrap(),
            note: String::new(),
            operator: OperatorId::parse("op").unwrap(),
            occurred_at,
        }),
        Op::Advance(_) => return None,
        Op::Expire => Command::Expire(Expire {
            member_id,
            occurred_at,
        }),
        Op::NotifyExpiry => Command::NotifyExpiry(NotifyExpiry {
            member_id,
            occurred_at,
        }),
        Op::Review => Command::ReviewTier(ReviewTier {
            member_id,
            occurred_at,
        }),
    })
}

fn assert_same(
    row: &MemberRow,
    state: &MemberState,
    program: &Program,
    m: &MemberId,
    at: DateTime<Utc>,
) {
    let core = state.balance(at);
    let view = row.balance_view(m, at);
    assert_eq!(view.available, core.available, "available at {at}");
    assert_eq!(view.pending, core.pending, "pending at {at}");
    assert_eq!(view.debt, core.debt, "debt at {at}");
    assert_eq!(view.balance, core.balance, "balance at {at}");
    assert_eq!(view.lifetime_earned, core.lifetime.earned, "earned at {at}");
    assert_eq!(view.redeemed, core.lifetime.redeemed, "redeemed at {at}");
    assert_eq!(view.expired, core.lifetime.expired, "expired at {at}");
    assert_eq!(
        view.clawed_back, core.lifetime.clawed_back,
        "clawed back at {at}"
    );
    assert_eq!(view.adjusted, core.lifetime.adjusted, "adjusted at {at}");
    assert_eq!(view.forfeited, core.lifetime.forfeited, "forfeited at {at}");
    assert_eq!(view.shortfall, core.lifetime.shortfall, "shortfall at {at}");
    assert_eq!(
        view.next_expiry.map(|n| (n.points, n.at)),
        core.next_expiry.map(|n| (n.points, n.at)),
        "next expiry at {at}"
    );
    let tier = row.tier_view(m, program, at);
    assert_eq!(
        tier.current.index,
        loyalty_core::tiers::position(program, state.tier()),
        "tier at {at}"
    );
    assert_eq!(
        tier.qualifying_value,
        state.qualifying_value(program, at),
        "qualifying at {at}"
    );
    assert_eq!(row.status(), state.status());
    for reward in program.rewards() {
        assert_eq!(row.reward_count(&reward.id), state.reward_count(&reward.id));
    }
    // The scheduler sends an expiry notice exactly when the core has one to record.
    let selected = program
        .points_expiring_until(at)
        .is_some_and(|until| row.notice_due(at, until));
    let notify = Command::NotifyExpiry(NotifyExpiry {
        member_id: m.clone(),
        occurred_at: at,
    });
    let notices = decide(state, &notify, program, ServerTime::at(at)).is_ok_and(|d| {
        d.events
            .iter()
            .any(|e| matches!(e, loyalty_core::Event::ExpiryNotified(_)))
    });
    assert_eq!(selected, notices, "expiry notice due at {at}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_row_reads_like_the_cores_state_after_any_history(
        ops in proptest::collection::vec(op(), 1..40),
        which in 0usize..3,
    ) {
        let program = &programs()[which];
        let m = MemberId::parse("m").unwrap();
        let mut at = Utc.with_ymd_and_hms(2026, 3, 20, 9, 30, 0).unwrap();
        let mut state = MemberState::default();
        let mut row = MemberRow::default();
        let enroll = Command::Enroll(Enroll { member_id: m.clone(), referrer: None, occurred_at: at });
        for event in decide(&state, &enroll, program, ServerTime::at(at)).unwrap().events {
            evolve(&mut state, &event);
            row.apply(&event, chrono_tz::UTC);
        }
        for (i, op) in ops.iter().enumerate() {
            if let Op::Advance(days) = op {
                at += chrono::Duration::days(*days);
                continue;
            }
            let Some(command) = command(op, i, at, &m, program) else { continue };
            if let Ok(decision) = decide(&state, &command, program, ServerTime::at(at)) {
                for event in &decision.events {
                    evolve(&mut state, event);
                    row.apply(event, chrono_tz::UTC);
                }
            }
            assert_same(&row, &state, program, &m, at);
        }
        for later in [0, 1, 15, 45, 100, 400, 800] {
            assert_same(&row, &state, program, &m, at + chrono::Duration::days(later));
        }
        let next_due = state
            .lots()
            .iter()
            .filter(|l| l.remaining.is_positive())
            .filter_map(|l| state.lot_expires_at(l))
            .min();
        prop_assert_eq!(row.next_due(), next_due);
        // The scheduler's expiry notices over the following year, a run a week: after each,
        // the row and the core agree (also that nothing is left to announce).
        for week in 0..60 {
            let when = at + chrono::Duration::weeks(week);
            let notify = Command::NotifyExpiry(NotifyExpiry { member_id: m.clone(), occurred_at: when });
            if let Ok(decision) = decide(&state, &notify, program, ServerTime::at(when)) {
                for event in &decision.events {
                    evolve(&mut state, event);
                    row.apply(event, chrono_tz::UTC);
                }
            }
            assert_same(&row, &state, program, &m, when);
        }
    }
}

/// A program that inserts a tier below the member's shows the member where decisions place
/// them: by the tier's name, not by the index it had when recorded.
#[test]
fn a_program_that_reorders_its_tiers_shows_the_tier_it_decides_with() {
    let demo = Program::from_toml_str(DEMO).unwrap();
    let m = MemberId::parse("m").unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 20, 9, 30, 0).unwrap();
    let mut state = MemberState::default();
    let mut row = MemberRow::default();
    let enroll = Command::Enroll(Enroll {
        member_id: m.clone(),
        referrer: None,
        occurred_at: at,
    });
    let buy = command(
        &Op::Purchase {
            amount: 300,
            beans: false,
        },
        1,
        at,
        &m,
        &demo,
    )
    .unwrap();
    for c in [enroll, buy] {
        for event in decide(&state, &c, &demo, ServerTime::at(at))
            .unwrap()
            .events
        {
            evolve(&mut state, &event);
            row.apply(&event, chrono_tz::UTC);
        }
    }
    assert_eq!(state.tier().name, "Silver");
    let copper = Program::from_toml_str(&DEMO.replacen(
        "[[tiers.levels]]\nname = \"Silver\"",
        "[[tiers.levels]]\nname = \"Copper\"\nthreshold = \"100.00\"\nmultiplier = \"1.1\"\n\n[[tiers.levels]]\nname = \"Silver\"",
        1,
    ))
    .unwrap();
    let view = row.tier_view(&m, &copper, at);
    assert_eq!(view.current.name, "Silver");
    assert_eq!(view.current.index, 2);
    assert_eq!(
        view.current.index,
        loyalty_core::tiers::position(&copper, state.tier())
    );
    assert_eq!(view.next.map(|n| n.name), Some("Gold".to_owned()));
}

/// A snapshot taken while the projection ran may hold events past its recorded position: after
/// a restore, the projection sees them again and must not apply them twice.
#[test]
fn an_event_a_restored_row_already_holds_is_not_applied_twice() {
    let demo = Program::from_toml_str(DEMO).unwrap();
    let m = MemberId::parse("m").unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 20, 9, 30, 0).unwrap();
    let mut state = MemberState::default();
    let enroll = Command::Enroll(Enroll {
        member_id: m.clone(),
        referrer: None,
        occurred_at: at,
    });
    let events = decide(&state, &enroll, &demo, ServerTime::at(at))
        .unwrap()
        .events;
    let recorded: Vec<RecordedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            evolve(&mut state, e);
            let stored = loyalty_core::schema::encode(e);
            RecordedEvent {
                stream: "member-m".into(),
                revision: i as u64,
                position: Position::new(i as u64 + 1, i as u64 + 1),
                id: uuid::Uuid::new_v4(),
                event_type: stored.event_type.into(),
                schema_version: stored.schema_version,
                data: stored.data.into(),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            }
        })
        .collect();
    let model = ReadModel::new(chrono_tz::UTC);
    for r in &recorded {
        model.apply_recorded(r);
    }
    let once = model.get("m").unwrap();
    for r in &recorded {
        model.apply_recorded(r);
    }
    assert_eq!(model.get("m").unwrap(), once);
    assert_eq!(once.totals.earned, state.lifetime().earned);
}

/// Decides and applies `ops` (at the given instants) to a fresh row, the demo program's
/// timezone (Paris) dating the days.
fn row_after(ops: &[(Op, DateTime<Utc>)]) -> MemberRow {
    let program = &programs()[0];
    let tz = program.timezone();
    let m = MemberId::parse("m").unwrap();
    let start = ops[0].1;
    let mut state = MemberState::default();
    let mut row = MemberRow::default();
    let enroll = Command::Enroll(Enroll {
        member_id: m.clone(),
        referrer: None,
        occurred_at: start,
    });
    let mut commands = vec![(enroll, start)];
    for (i, (op, at)) in ops.iter().enumerate() {
        commands.extend(command(op, i, *at, &m, program).map(|c| (c, *at)));
    }
    for (command, at) in commands {
        for event in decide(&state, &command, program, ServerTime::at(at))
            .unwrap()
            .events
        {
            evolve(&mut state, &event);
            row.apply(&event, tz);
        }
    }
    row
}

#[test]
fn the_analytics_count_a_local_day_once_and_date_refunds_by_their_own_day() {
    let paris = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap();
    let row = row_after(&[
        // 23:00 UTC on the 20th is already the 21st in Paris (UTC+1 in March).
        (
            Op::Purchase {
                amount: 10,
                beans: false,
            },
            paris(20, 23),
        ),
        (
            Op::Purchase {
                amount: 5,
                beans: true,
            },
            paris(21, 10),
        ),
        (
            Op::Purchase {
                amount: 7,
                beans: false,
            },
            paris(24, 10),
        ),
        (
            Op::Refund {
                purchase: 0,
                amount: 4,
            },
            paris(25, 10),
        ),
    ]);
    let summary = row.summary("m", chrono_tz::Europe::Paris).unwrap();
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    assert_eq!(summary.enrolled_on, day(21));
    assert_eq!(summary.purchase_days, vec![day(21), day(24)]);
    assert_eq!(
        summary.daily_spend,
        vec![
            (day(21), Decimal::from(15)),
            (day(24), Decimal::from(7)),
            (day(25), Decimal::from(-4)),
        ]
    );
    assert_eq!(summary.net_spend, Decimal::from(18));
    // The days go into read-model snapshots and come back unchanged.
    let (_, back) = MemberRow::from_stored(row.to_stored("m")).unwrap();
    assert_eq!(back, row);
}

/// Live pages mix events the engine handed over with others (another writer's, or evicted from
/// the handoff): the first are taken as they are, the others decoded, all applied in order.
#[test]
fn a_page_applies_handed_over_events_as_they_are_and_decodes_the_others() {
    let demo = Program::from_toml_str(DEMO).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 20, 9, 30, 0).unwrap();
    let model = ReadModel::new(chrono_tz::UTC);
    let mut page = Vec::new();
    let mut handed_over = 0u64;
    let mut expected = Vec::new();
    for i in 0..600u64 {
        let m = MemberId::parse(format!("m{i}")).unwrap();
        let enroll = Command::Enroll(Enroll {
            member_id: m.clone(),
            referrer: None,
            occurred_at: at,
        });
        let events = decide(&MemberState::default(), &enroll, &demo, ServerTime::at(at))
            .unwrap()
            .events;
        let mut state = MemberState::default();
        let first_position = page.len() as u64 + 1;
        let mut positions = Vec::new();
        for (revision, event) in events.iter().enumerate() {
            evolve(&mut state, event);
            let stored = loyalty_core::schema::encode(event);
            // Events of other streams in between: the projection only moves past them.
            if revision == 0 && i % 3 == 0 {
                let p = page.len() as u64 + 1;
                page.push(RecordedEvent {
                    stream: format!("txn-{i}"),
                    revision: 0,
                    position: Position::new(p, p),
                    id: uuid::Uuid::new_v4(),
                    event_type: "TransactionReserved".into(),
                    schema_version: 1,
                    data: loyalty_store::Bytes::from_static(b"{}"),
                    metadata: loyalty_store::Bytes::from_static(b"{}"),
                });
            }
            let p = page.len() as u64 + 1;
            positions.push(p);
            // A handed-over event's stored copy does not decode: the page must not decode it.
            let data = if i % 2 == 0 {
                loyalty_store::Bytes::from_static(b"not json")
            } else {
                stored.data.into()
            };
            page.push(RecordedEvent {
                stream: format!("member-m{i}"),
                revision: revision as u64,
                position: Position::new(p, p),
                id: uuid::Uuid::new_v4(),
                event_type: stored.event_type.into(),
                schema_version: stored.schema_version,
                data,
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            });
        }
        assert!(first_position <= positions[0]);
        if i % 2 == 0 {
            let last = *positions.last().unwrap();
            model.handoff.put(
                &format!("member-m{i}"),
                0,
                Position::new(last, last),
                events.iter().cloned().map(|event| {
                    let decoded = crate::decoded::Decoded {
                        event,
                        recorded_at: at,
                    };
                    (decoded, 100)
                }),
            );
            handed_over += events.len() as u64;
        }
        expected.push((format!("m{i}"), state.lifetime().earned));
    }
    // Enough left to decode for the decoding to run on every core.
    let members = page
        .iter()
        .filter(|r| r.stream.starts_with("member-"))
        .count();
    assert!(handed_over > 0 && members - handed_over as usize > crate::decoded::PARALLEL_FROM);
    model.apply_page(&page);
    let state = model.apply_state();
    assert_eq!(state.unreadable, 0, "{:?}", state.errors.first());
    assert_eq!(model.handoff.taken(), handed_over);
    assert_eq!(model.events_applied(), page.len() as u64);
    for (member, earned) in expected {
        let row = model.get(&member).unwrap();
        assert_eq!(row.totals.earned, earned, "{member}");
        assert!(row.totals.earned > Points::ZERO);
    }
}
