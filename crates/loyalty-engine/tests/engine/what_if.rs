//! What-if: the period's commands decided again under another program, member by member, in
//! memory; nothing appended.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::what_if::Period;
use loyalty_core::{Command, MemberId, Points, Program, PurchaseLine, RecordPurchase};
use loyalty_engine::{EngineOptions, WhatIfReport};
use loyalty_store::EventStore;
use rust_decimal::Decimal;

use crate::common::*;

/// A program like the common one (no pending period, Silver from 100 EUR of spend, a point
/// worth a cent), with `rate` points per euro and extra `[earning]` lines.
fn program_text(rate: &str, earning_extra: &str) -> Arc<Program> {
    let text = format!(
        r#"
[program]
name = "What-if test"
currency = "EUR"
timezone = "Europe/Paris"

[earning]
points_per_unit = "{rate}"
excluded_categories = ["gift-card"]
{earning_extra}

[pending]
days = 0

[expiry]
policy = "lot_months"
months = 12

[tiers]
metric = "qualifying_spend"
window = {{ kind = "rolling", months = 12 }}
review = {{ kind = "anniversary" }}

[[tiers.levels]]
name = "Bronze"
threshold = "0"
multiplier = "1"

[[tiers.levels]]
name = "Silver"
threshold = "100"
multiplier = "1"

[bonuses]
welcome_points = 10

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"
"#
    );
    Arc::new(Program::from_toml_str(&text).expect("test program is valid"))
}

fn recorded_program() -> Arc<Program> {
    program_text("1", "")
}

/// The same, with beans earning twice the base rate.
fn beans_doubled() -> Arc<Program> {
    program_text(
        "1",
        "\n[[earning.multipliers]]\ncategory = \"beans\"\nmultiplier = \"2\"\n",
    )
}

/// The same, earning half a point per euro.
fn half_rate() -> Arc<Program> {
    program_text("0.5", "")
}

/// Pages of two events: a purchase and the tier change it caused straddle two pages.
fn small_pages() -> EngineOptions {
    EngineOptions {
        read_page_size: 2,
        // No lease renewal while the test runs: the head moves only if someone appends.
        lease_ttl: Duration::from_secs(3_600),
        ..options()
    }
}

fn buy(m: &MemberId, transaction: &str, category: &str, euros: i64, h: &Harness) -> Command {
    Command::RecordPurchase(RecordPurchase {
        lines: vec![PurchaseLine {
            sku: loyalty_core::Sku::parse(category.to_uppercase()).unwrap(),
            category: loyalty_core::CategoryId::parse(category).unwrap(),
            quantity: Decimal::ONE,
            amount: Decimal::from(euros),
        }],
        ..match purchase(m, transaction, euros, h.now()) {
            Command::RecordPurchase(p) => p,
            _ => unreachable!("purchase() makes a purchase"),
        }
    })
}

/// Four members enrolled at t0; dan bought beans an hour later, before the period. In the
/// period (from t0 + 1 day): ana bought beans (10 EUR) and bread (20 EUR), ben bread for 120 EUR
/// (which made him Silver), cleo beans for 40 EUR and returned half of them.
async fn known_history(h: &Harness) {
    let (ana, ben, cleo, dan) = (
        h.enroll("ana").await,
        h.enroll("ben").await,
        h.enroll("cleo").await,
        h.enroll("dan").await,
    );
    h.clock.advance(chrono::Duration::hours(1));
    h.run(buy(&dan, "D1", "beans", 8, h)).await;
    h.clock.advance(days(2));
    h.run(buy(&ana, "A1", "beans", 10, h)).await;
    h.run(buy(&ana, "A2", "food", 20, h)).await;
    h.run(buy(&ben, "B1", "food", 120, h)).await;
    h.run(buy(&cleo, "C1", "beans", 40, h)).await;
    h.clock.advance(days(1));
    h.run(refund(&cleo, "CR1", "C1", 20, h.now())).await;
    h.settle().await;
}

fn period() -> Period {
    Period::new(t0() + days(1), t0() + days(30)).expect("from is before to")
}

async fn run(h: &Harness, program: Arc<Program>) -> WhatIfReport {
    h.engine
        .what_if(program, period(), &|_| {})
        .await
        .expect("what-if runs")
}

fn points(report_points: Points) -> i64 {
    report_points.value()
}

#[tokio::test]
async fn doubling_beans_shows_exactly_the_beans_difference_and_only_beans_buyers_gain() {
    // Given a known history recorded under the program in force
    let h = Harness::with(recorded_program(), small_pages()).await;
    known_history(&h).await;
    let head = h.store.head_position().await.unwrap();
    // When the period is decided again with beans earning double
    let report = run(&h, beans_doubled()).await;
    let (recorded, what_if) = (&report.summary.recorded, &report.summary.what_if);
    // Then 50 more points were issued: ana's 10 EUR of beans and cleo's 40 (dan's beans were
    // bought before the period, ben bought bread)
    assert_eq!(
        points(what_if.points_issued) - points(recorded.points_issued),
        50
    );
    // cleo's return of half her beans takes back half of what they earned: 20 more
    assert_eq!(
        points(what_if.points_clawed_back) - points(recorded.points_clawed_back),
        20
    );
    // so 30 more points are owed, 0.30 EUR more liability at a cent a point
    assert_eq!(
        points(what_if.points_outstanding) - points(recorded.points_outstanding),
        30
    );
    assert_eq!(what_if.liability - recorded.liability, Decimal::new(30, 2));
    // the members better off are exactly those who bought beans in the period, most first
    let gains: Vec<(&str, i64)> = report
        .summary
        .largest_gains
        .iter()
        .map(|d| (d.member_id.as_str(), d.difference.value()))
        .collect();
    assert_eq!(gains, [("cleo", 20), ("ana", 10)]);
    assert_eq!(report.summary.better_off, 2);
    assert_eq!(report.summary.worse_off, 0);
    assert_eq!(report.summary.unchanged, 2);
    assert!(report.summary.largest_losses.is_empty());
    // tiers are the same on both sides: ben is Silver (spend, not points, qualifies)
    assert_eq!(recorded.tiers, what_if.tiers);
    let silver = what_if.tiers.iter().find(|t| t.tier == "Silver");
    assert_eq!(silver.map(|t| t.members), Some(1));
    assert_eq!(report.summary.commands_refused, 0);
    assert_eq!(report.summary.members, 4);
    // and nothing was appended: the log's head did not move
    assert_eq!(h.store.head_position().await.unwrap(), head);
    h.engine.shutdown().await;
}

#[tokio::test]
async fn the_program_in_force_shows_no_difference() {
    // Given the known history
    let h = Harness::with(recorded_program(), small_pages()).await;
    known_history(&h).await;
    let head = h.store.head_position().await.unwrap();
    // When the period is decided again under the same program
    let report = run(&h, recorded_program()).await;
    // Then both sides are equal, every member unchanged, every command accepted
    assert_eq!(report.summary.recorded, report.summary.what_if);
    assert_eq!(report.summary.unchanged, 4);
    assert_eq!(
        (report.summary.better_off, report.summary.worse_off),
        (0, 0)
    );
    // (four purchases and a refund were recorded in the period; dan's came before it)
    assert_eq!(report.summary.commands_decided, 5);
    assert_eq!(report.summary.commands_refused, 0);
    // (ben's purchase and the upgrade it caused were read on two pages as one decision)
    assert!(report.summary.carried_over.is_empty());
    assert_eq!(h.store.head_position().await.unwrap(), head);
    h.engine.shutdown().await;
}

#[tokio::test]
async fn a_redemption_the_new_program_cannot_afford_is_counted_not_fatal() {
    // Given eve, who earned 10 (welcome) + 50 and redeemed 55 points in the period
    let h = Harness::with(recorded_program(), small_pages()).await;
    let eve = h.enroll("eve").await;
    let fred = h.enroll("fred").await;
    h.clock.advance(days(2));
    h.run(buy(&eve, "E1", "food", 50, &h)).await;
    h.run(redeem(&eve, "ER1", 55, h.now())).await;
    h.run(buy(&fred, "F1", "food", 30, &h)).await;
    h.settle().await;
    // When a program earning half a point per euro is tried (10 + 25 < 55)
    let report = run(&h, half_rate()).await;
    // Then the redemption is refused and counted; the run goes on with every member
    let refused: Vec<(&str, &str, u64)> = report
        .summary
        .refusals
        .iter()
        .map(|r| (r.command, r.reason, r.count))
        .collect();
    assert_eq!(refused, [("Redeem", "insufficient_points", 1)]);
    assert_eq!(report.summary.commands_refused, 1);
    assert_eq!(report.summary.members, 2);
    // eve keeps the 35 points she could not spend (5 left as recorded); fred earns 15, not 30
    let eve_diff = report
        .summary
        .largest_gains
        .iter()
        .find(|d| d.member_id == eve)
        .map(|d| (d.recorded_available.value(), d.what_if_available.value()));
    assert_eq!(eve_diff, Some((5, 35)));
    let fred_diff = report
        .summary
        .largest_losses
        .iter()
        .find(|d| d.member_id == fred)
        .map(|d| d.difference.value());
    assert_eq!(fred_diff, Some(-15));
    h.engine.shutdown().await;
}

#[tokio::test]
async fn an_event_that_does_not_decode_is_skipped_and_counted_not_fatal() {
    // Given the known history, and a damaged event in ana's stream
    let h = Harness::with(recorded_program(), small_pages()).await;
    known_history(&h).await;
    h.store
        .append(
            "member-ana",
            loyalty_store::ExpectedRevision::Any,
            vec![loyalty_store::EventData {
                id: loyalty_store::Uuid::new_v4(),
                event_type: "PointsAdjusted".into(),
                schema_version: 1,
                data: loyalty_store::Bytes::from_static(b"{not json"),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    h.settle().await;
    // When the period is decided again under the same program
    let report = run(&h, recorded_program()).await;
    // Then the run goes on past it, says so, and the rest is as recorded
    assert_eq!(report.unreadable_events, 1);
    assert_eq!(report.summary.recorded, report.summary.what_if);
    assert_eq!(report.summary.commands_decided, 5);
    h.engine.shutdown().await;
}
