//! Deterministic, realistic traffic of a coffee and bakery chain: members, purchases of several
//! lines, refunds, redemptions. Seeded, so two runs measure the same work.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use loyalty_core::{
    CategoryId, Command, Currency, Enroll, MemberId, Points, PurchaseLine, RecordPurchase, Redeem,
    RedeemTarget, RedemptionId, Refund, RefundId, RefundScope, Sku, StoreId, TerminalId,
    TransactionId,
};
use rust_decimal::Decimal;

/// What a line can be: (sku, category, unit price in cents).
const CATALOG: &[(&str, &str, i64)] = &[
    ("ESPRESSO", "coffee", 220),
    ("LATTE", "coffee", 380),
    ("CAPPUCCINO", "coffee", 360),
    ("CROISSANT", "pastry", 140),
    ("PAIN-CHOCO", "pastry", 160),
    ("BAGUETTE", "bread", 120),
    ("BEANS-ETHIOPIA-250", "coffee-beans", 1190),
    ("BEANS-HOUSE-1KG", "coffee-beans", 2890),
    ("MUG-REUSABLE", "merchandise", 1500),
    ("GIFT-CARD-25", "gift-card", 2500),
];

/// The stores the demo terminal key is bound to.
const STORES: &[&str] = &["paris-opera", "paris-marais", "lyon-bellecour"];

/// The first business day of the traffic; every member enrolls on or after it.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .expect("a valid instant")
}

/// The server's clock while the bench drives an engine or a server: a fixed day (so every run
/// decides the same), the last day of the live traffic's two months.
pub fn clock() -> std::sync::Arc<loyalty_engine::ManualClock> {
    std::sync::Arc::new(loyalty_engine::ManualClock::new(
        epoch() + ChronoDuration::days(60),
    ))
}

/// How far back from [`clock`] the bench's business times reach: its traffic spans two months
/// of business days on one fixed clock, so it accepts them (live servers keep seven days).
pub fn time_window() -> loyalty_core::TimeWindow {
    loyalty_core::TimeWindow {
        max_ahead: ChronoDuration::minutes(5),
        max_behind: ChronoDuration::days(90),
    }
}

pub fn member_id(n: u64) -> MemberId {
    MemberId::parse(format!("m{n:08}")).expect("valid member id")
}

pub fn enroll(member: u64, at: DateTime<Utc>) -> Command {
    Command::Enroll(Enroll {
        member_id: member_id(member),
        referrer: None,
        occurred_at: at,
    })
}

/// A purchase of one to four lines, chosen by the generator.
pub fn purchase(rng: &mut fastrand::Rng, member: u64, txn: &str, at: DateTime<Utc>) -> Command {
    let lines = (0..rng.usize(1..=4))
        .map(|_| {
            let (sku, category, cents) = CATALOG[rng.usize(..CATALOG.len())];
            let quantity = rng.i64(1..=3);
            PurchaseLine {
                sku: Sku::parse(sku).expect("valid sku"),
                category: CategoryId::parse(category).expect("valid category"),
                quantity: Decimal::from(quantity),
                amount: Decimal::new(cents * quantity, 2),
            }
        })
        .collect();
    let store = STORES[rng.usize(..STORES.len())];
    Command::RecordPurchase(RecordPurchase {
        member_id: member_id(member),
        transaction_id: TransactionId::parse(txn).expect("valid transaction id"),
        store: StoreId::parse(store).expect("valid store"),
        terminal: TerminalId::parse(format!("{store}-t{}", rng.u8(1..=4))).expect("valid terminal"),
        occurred_at: at,
        currency: Currency::parse("EUR").expect("valid currency"),
        lines,
    })
}

/// Refunds an amount of an earlier purchase (a partial return).
pub fn refund(
    member: u64,
    refund_id: &str,
    store: &StoreId,
    txn: &str,
    cents: i64,
    at: DateTime<Utc>,
) -> Command {
    Command::Refund(Refund {
        member_id: member_id(member),
        refund_id: RefundId::parse(refund_id).expect("valid refund id"),
        store: store.clone(),
        purchase_store: store.clone(),
        transaction_id: TransactionId::parse(txn).expect("valid transaction id"),
        occurred_at: at,
        currency: Currency::parse("EUR").expect("valid currency"),
        scope: RefundScope::Amount(Decimal::new(cents, 2)),
    })
}

pub fn redeem_points(member: u64, redemption: &str, points: i64, at: DateTime<Utc>) -> Command {
    Command::Redeem(Redeem {
        member_id: member_id(member),
        redemption_id: RedemptionId::parse(redemption).expect("valid redemption id"),
        occurred_at: at,
        target: RedeemTarget::Points(Points::new(points)),
    })
}

/// One member's history: enrollment, one to five purchases over a few weeks, now and then a
/// partial refund and a redemption once the points are spendable.
pub fn member_history(rng: &mut fastrand::Rng, member: u64) -> Vec<Command> {
    let start = epoch() + ChronoDuration::minutes(i64::try_from(member % 500_000).unwrap_or(0));
    let mut commands = vec![enroll(member, start)];
    let purchases = rng.usize(1..=5);
    let mut at = start;
    for p in 0..purchases {
        at += ChronoDuration::hours(rng.i64(2..=240));
        let txn = format!("t{member}-{p}");
        let bought = purchase(rng, member, &txn, at);
        let store = match &bought {
            Command::RecordPurchase(p) => p.store.clone(),
            _ => unreachable!("purchase makes a purchase"),
        };
        commands.push(bought);
        if p == 0 && rng.u8(..10) == 0 {
            commands.push(refund(
                member,
                &format!("r{member}"),
                &store,
                &txn,
                100,
                at + ChronoDuration::hours(1),
            ));
        }
    }
    if rng.u8(..10) < 2 {
        // After the 14-day pending period, spend a little.
        at += ChronoDuration::days(20);
        commands.push(redeem_points(member, &format!("d{member}"), 10, at));
    }
    commands
}
