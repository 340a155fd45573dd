//! Imports from a legacy program: history dated far back (the import's window), purchases
//! that earn by the rules, nothing or the legacy points, and opening balances.

use crate::support;

use chrono::TimeDelta;
use loyalty_core::*;
use support::*;

/// The server's clock on import day, a window reaching back as far as the history.
fn import_time() -> ServerTime {
    ServerTime::at(t("2027-06-01T08:00:00Z")).with_window(TimeWindow {
        max_ahead: TimeDelta::minutes(5),
        max_behind: TimeDelta::days(365 * 50),
    })
}

/// Decides and applies `commands` as an import with `award`; returns the state and events.
fn import(commands: &[Command], award: ImportedAward) -> (MemberState, Vec<Event>) {
    let program = program();
    let mut state = MemberState::default();
    let mut events = Vec::new();
    for c in commands {
        let decision = decide_imported(&state, c, &program, import_time(), award)
            .unwrap_or_else(|e| panic!("{c:?}: {e}"));
        for e in decision.events {
            evolve(&mut state, &e);
            events.push(e);
        }
    }
    assert_ledger_identity(&state, import_time().now);
    (state, events)
}

fn purchases(events: &[Event]) -> Vec<&PurchaseRecorded> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PurchaseRecorded(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_purchase_a_year_old_is_refused_live_and_accepted_by_an_import() {
    let old = purchase("T1", "2026-03-01T10:00:00Z", "20");
    let live = decide(
        &given([enroll()]).state().clone(),
        &old,
        &program(),
        ServerTime::at(t("2027-06-01T08:00:00Z")),
    );
    assert!(matches!(
        live,
        Err(DomainError::OccurredAtOutsideWindow { .. })
    ));
    let (state, events) = import(&[enroll(), old], ImportedAward::Rules);
    assert_eq!(purchases(&events)[0].points, p(20));
    // By the rules, the welcome bonus too; both lots expired by import day (12 months).
    assert_eq!(state.lifetime().earned, p(70));
}

#[test]
fn history_only_purchases_earn_nothing_and_still_qualify_for_tiers() {
    let (state, events) = import(
        &[enroll(), purchase("T1", "2027-05-01T10:00:00Z", "80")],
        ImportedAward::Nothing,
    );
    let bought = purchases(&events)[0];
    assert_eq!(bought.points, p(0));
    assert_eq!(bought.credit, None);
    assert_eq!(bought.eligible_amount, d("80"));
    // No welcome bonus either: the legacy balance comes as an opening balance.
    assert_eq!(state.lifetime().earned, p(0));
    assert_eq!(
        state.qualifying_value(&program(), import_time().now),
        d("80")
    );
}

#[test]
fn explicit_points_are_recorded_as_the_imported_rule_and_a_refund_claws_them_back() {
    let (state, events) = import(
        &[
            enroll(),
            purchase("T1", "2027-05-01T10:00:00Z", "80"),
            refund_amount("F1", "T1", "2027-05-02T10:00:00Z", "80"),
        ],
        ImportedAward::Explicit(p(120)),
    );
    let bought = purchases(&events)[0];
    assert_eq!(bought.points, p(120));
    assert_eq!(bought.transaction_rules.len(), 1);
    assert_eq!(bought.transaction_rules[0].rule, "imported");
    assert!(bought.lines.iter().all(|l| l.points == p(0)));
    // The whole purchase refunded: every imported point taken back.
    assert_eq!(state.lifetime().clawed_back, p(120));
}

#[test]
fn an_import_run_twice_records_nothing_the_second_time() {
    let commands = [
        enroll(),
        purchase("T1", "2027-05-01T10:00:00Z", "80"),
        open_balance("B1", 900, Some("2027-12-31T23:00:00Z")),
    ];
    let (state, _) = import(&commands, ImportedAward::Nothing);
    for c in &commands {
        let again = decide_imported(&state, c, &program(), import_time(), ImportedAward::Nothing);
        assert!(again.unwrap().replayed, "{c:?}");
    }
}

#[test]
fn an_opening_balance_keeps_the_legacy_expiry() {
    let (state, events) = import(
        &[
            enroll(),
            open_balance("B1", 900, Some("2027-12-31T23:00:00Z")),
        ],
        ImportedAward::Nothing,
    );
    let Some(Event::BalanceOpened(opened)) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(
        opened.credit.expiry,
        LotExpiry::At(t("2027-12-31T23:00:00Z"))
    );
    assert_eq!(state.available(import_time().now), p(900));
    assert_eq!(state.available(t("2028-01-01T00:00:00Z")), p(0));
}

#[test]
fn an_opening_balance_cannot_expire_before_it_opens_nor_be_empty() {
    let (state, _) = import(&[enroll()], ImportedAward::Nothing);
    let past = open_balance("B1", 900, Some("2020-01-01T00:00:00Z"));
    assert!(matches!(
        decide_imported(
            &state,
            &past,
            &program(),
            import_time(),
            ImportedAward::Nothing
        ),
        Err(DomainError::ExpiryBeforeOpening { .. })
    ));
    let empty = open_balance("B2", 0, None);
    assert_eq!(
        decide_imported(
            &state,
            &empty,
            &program(),
            import_time(),
            ImportedAward::Nothing
        ),
        Err(DomainError::PointsNotPositive)
    );
}
