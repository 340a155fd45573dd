//! The retention analytics read the read model's per-member days: given a small history
//! whose answers are worked out by hand, the reports say exactly that.

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use loyalty_analytics::PeriodKind;
use rust_decimal::Decimal;

use crate::common::*;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Five members enrol and buy on 10 January; three of them (a, b, c) buy again on 5
/// February, when f enrols and buys; a customer bought in the last 30 days.
async fn january_and_february() -> Harness {
    let mut program = program().as_ref().clone();
    program.analytics.active_days = 30;
    let h = Harness::with(Arc::new(program), options()).await;
    for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let m = h.enroll(id).await;
        h.run(purchase(&m, &format!("J{i}"), 10 * (i as i64 + 1), h.now()))
            .await;
    }
    h.clock
        .set(Utc.with_ymd_and_hms(2026, 2, 5, 10, 0, 0).unwrap());
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        h.run(purchase(&member(id), &format!("F{i}"), 20, h.now()))
            .await;
    }
    let f = h.enroll("f").await;
    h.run(purchase(&f, "F9", 100, h.now())).await;
    // A refund lowers f's net spend, dated by its own day.
    h.run(refund(&f, "R1", "F9", 40, h.now())).await;
    h.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0).unwrap());
    h.settle().await;
    h
}

#[tokio::test]
async fn february_keeps_three_of_januarys_five_customers_and_gains_one() {
    let h = january_and_february().await;
    let report = h
        .engine
        .retention_report(PeriodKind::Month, day("2026-02-01"), day("2026-02-01"))
        .await
        .unwrap();
    let feb = &report.periods[0];
    // Customers on 1 February: bought in the 30 days before it (all five, on 10 January).
    assert_eq!(feb.customers_at_start, 5);
    // On 1 March: a, b, c (5 February) and f; d and e last bought 50 days before.
    assert_eq!(feb.customers_at_end, 4);
    assert_eq!(feb.new_customers, 1);
    assert_eq!(feb.churned, 2);
    assert_eq!(feb.retention_rate, Some(Decimal::new(6, 1)));
    assert_eq!(feb.churn_rate, Some(Decimal::new(4, 1)));
    // March is not over on 3 March: it is not reported.
    let report = h
        .engine
        .retention_report(PeriodKind::Month, day("2026-02-01"), day("2026-03-03"))
        .await
        .unwrap();
    assert_eq!(report.periods.len(), 1);
}

#[tokio::test]
async fn cohorts_concentration_and_rfm_come_from_the_read_model() {
    let h = january_and_february().await;
    let cohorts = h
        .engine
        .cohort_report(PeriodKind::Month, day("2026-01-01"), day("2026-02-28"))
        .await
        .unwrap();
    assert_eq!(cohorts.cohorts.len(), 2);
    assert_eq!(cohorts.cohorts[0].members, 5);
    assert_eq!(cohorts.cohorts[0].active, vec![5, 3]);
    assert_eq!(
        cohorts.cohorts[0].rates,
        vec![Decimal::ONE, Decimal::new(6, 1)]
    );
    assert_eq!(cohorts.cohorts[1].active, vec![1]);

    // Net spends: a 30, b 40, c 50, d 40, e 50, f 60 (100 - 40): 270 in all.
    let concentration = h.engine.concentration_report().await.unwrap();
    assert_eq!(concentration.members, 6);
    assert_eq!(concentration.net_spend, Decimal::from(270));
    let top = concentration.top_20.unwrap();
    // The top 20% of 6 members, rounded up, is two: f's 60 and one of the 50s.
    assert_eq!(top.members, 2);
    assert_eq!(top.spend, Decimal::from(110));

    let page = h.engine.rfm_page(None, 4).await.unwrap();
    assert_eq!(page.scored, 6);
    let ids: Vec<&str> = page.members.iter().map(|s| s.member_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(page.next_after.as_deref(), Some("d"));
    // a bought on two days, the last 26 days before 3 March.
    assert_eq!(
        (page.members[0].frequency, page.members[0].recency_days),
        (2, 26)
    );
    let rest = h.engine.rfm_page(page.next_after, 4).await.unwrap();
    assert_eq!(rest.members.len(), 2);
    assert_eq!(rest.next_after, None);
}

#[tokio::test]
async fn a_report_over_too_many_periods_is_refused() {
    let h = Harness::new().await;
    let err = h
        .engine
        .retention_report(PeriodKind::Month, day("2000-01-01"), day("2026-01-01"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        loyalty_engine::EngineError::LimitExceeded {
            what: "periods",
            ..
        }
    ));
}

// ------------------------------------------------------------------------------ win-back

fn with_win_back(
    below_p_alive: Option<Decimal>,
    inactive_days: Option<u32>,
) -> Arc<loyalty_core::Program> {
    let mut program = program().as_ref().clone();
    program.win_back = Some(loyalty_core::program::WinBack {
        below_p_alive,
        inactive_days,
        min_purchase_days: 2,
        points: loyalty_core::Points::new(300),
        once_every_days: 365,
    });
    Arc::new(program)
}

#[tokio::test]
async fn a_member_silent_past_the_rules_days_is_won_back_once_and_the_event_says_why() {
    let h = Harness::with(with_win_back(None, Some(60)), options()).await;
    let m = h.enroll("m").await;
    let newcomer = h.enroll("n").await;
    h.run(purchase(&m, "T1", 20, h.now())).await;
    h.run(purchase(&newcomer, "N1", 20, h.now())).await;
    h.clock.advance(days(1));
    h.run(purchase(&m, "T2", 20, h.now())).await;
    h.clock.advance(days(59));
    h.settle().await;
    let report = h.engine.run_scheduled(h.now()).await.unwrap();
    // 59 days after m's last purchase day: not yet.
    assert_eq!(report.win_backs, 0);

    h.clock.advance(days(1));
    h.settle().await;
    let report = h.engine.run_scheduled(h.now()).await.unwrap();
    // n bought on one day only: a new member, not one drifting away.
    assert_eq!(report.win_backs, 1, "{report:?}");
    let events = read_member(h.store.as_ref(), &m).await;
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "WinBackAwarded");
    let data: serde_json::Value = serde_json::from_slice(&last.data).unwrap();
    assert_eq!(data["inactive_days"], 60);
    assert_eq!(data["purchase_days"], 2);
    assert_eq!(data["p_alive"], serde_json::Value::Null);
    assert_eq!(data["credit"]["points"], 300);

    // Later that day, the next day, and months later: still within the rule's year.
    h.engine.run_scheduled(h.now()).await.unwrap();
    for step in [1, 100] {
        h.clock.advance(days(step));
        h.settle().await;
        let report = h.engine.run_scheduled(h.now()).await.unwrap();
        assert_eq!(report.win_backs, 0);
    }
    assert_eq!(
        count_events(h.store.as_ref(), &m, "WinBackAwarded").await,
        1
    );
}

// ------------------------------------------------------------------------------ the models

/// A small xorshift: the population is the same on every run, without a dependency.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// 240 members enrol on 10 January and buy every few days or weeks; the first 120 stop
/// after two or three months, the others keep buying all year. The clock then
/// stands on 10 January 2027.
async fn a_year_of_buyers(h: &Harness) {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let mut plan: Vec<(String, Vec<i64>)> = Vec::new();
    for i in 0..240 {
        let id = format!("m{i:03}");
        let stop_after = if i < 120 {
            60 + dice.roll(40) as i64
        } else {
            365
        };
        // Rates differ between members (the model's gamma mixing): each has a mean gap of 4
        // to 40 days, and gaps vary around it.
        let mean_gap = 4 + dice.roll(37);
        let mut day = dice.roll(10) as i64;
        let mut days = Vec::new();
        while day < stop_after {
            days.push(day);
            day += 1 + (mean_gap / 2 + dice.roll(mean_gap + 1)) as i64;
        }
        h.enroll(&id).await;
        plan.push((id, days));
    }
    let start = h.now();
    for day in 0..365 {
        h.clock.set(start + days(day));
        for (id, member_days) in &plan {
            if member_days.contains(&day) {
                h.run(purchase(
                    &member(id),
                    &format!("{id}-{day}"),
                    5 + day % 7,
                    h.now(),
                ))
                .await;
            }
        }
    }
    h.clock.set(start + days(365));
    h.settle().await;
}

#[tokio::test]
async fn the_models_tell_lapsed_members_from_loyal_ones_and_the_rule_wins_back_the_lapsed() {
    let h = Harness::with(with_win_back(Some(Decimal::new(3, 1)), None), options()).await;
    a_year_of_buyers(&h).await;

    let model = h.engine.model_report(None).await.unwrap();
    assert_eq!(model.bg_nbd.members, 240);
    assert!(model.gamma_gamma.is_some());

    let lapsed = h
        .engine
        .member_value(&member("m000"))
        .await
        .unwrap()
        .unwrap();
    let loyal = h
        .engine
        .member_value(&member("m200"))
        .await
        .unwrap()
        .unwrap();
    assert!(lapsed.p_alive < Decimal::new(3, 1), "{lapsed:?}");
    assert!(loyal.p_alive > Decimal::new(9, 1), "{loyal:?}");
    assert!(loyal.lifetime_value.unwrap() > lapsed.lifetime_value.unwrap());

    let at_risk = h.engine.at_risk_report(1000).await.unwrap();
    assert!(at_risk.members.len() >= 100, "{}", at_risk.members.len());
    assert!(
        at_risk
            .members
            .iter()
            .all(|m| m.member_id.as_str() < "m120")
    );

    let backtest = h
        .engine
        .backtest_report(day("2026-07-01"), None)
        .await
        .unwrap();
    assert_eq!(backtest.members, 240);
    assert!(backtest.actual_total > 0);

    let report = h.engine.run_scheduled(h.now()).await.unwrap();
    assert!(report.win_backs >= 100, "{report:?}");
    assert_eq!(
        count_events(h.store.as_ref(), &member("m200"), "WinBackAwarded").await,
        0
    );
    let events = read_member(h.store.as_ref(), &member("m000")).await;
    let data: serde_json::Value = serde_json::from_slice(&events.last().unwrap().data).unwrap();
    assert_eq!(data["model_version"], serde_json::json!(model.version));
    assert!(
        data["p_alive"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()
            < Decimal::new(3, 1)
    );
}
