//! Given / when / then for the member aggregate.
//!
//! `given([...commands])` builds a history by deciding each command (each must be accepted),
//! `.when(command)` decides one more, and `then_*` checks the result. Every step also checks the
//! ledger identity, so each test exercises it too.
//!
//! The server's clock is the command's own business time unless a step says otherwise:
//! `server_at("2026-02-01T00:00:00Z", purchase(...))` decides the purchase with the server's
//! clock at that instant (and the default window around it).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use loyalty_core::*;
use rust_decimal::Decimal;

/// A small program with round numbers, so expected points can be worked out by hand.
pub const TEST_PROGRAM: &str = r#"
[program]
name = "Test bakery"
currency = "EUR"
timezone = "Europe/Paris"
rounding = "floor"
rules_version = "test-1"

[earning]
points_per_unit = "1"
excluded_categories = ["gift-card"]
max_points_per_transaction = 1000

[[earning.multipliers]]
category = "beans"
multiplier = "2"

[[earning.multipliers]]
sku = "MUG"
multiplier = "3"

[[earning.campaigns]]
id = "pastry-x2"
name = "Double points on pastries"
starts_on = "2026-03-27"
ends_on = "2026-03-29"
categories = ["pastry"]
multiplier = "2"
per_member_limit = 2

[[earning.campaigns]]
id = "store-bonus"
name = "Fifty points in store S2"
starts_on = "2026-05-01"
ends_on = "2026-05-31"
stores = ["S2"]
bonus_points = 50
min_spend = "20"
per_member_limit = 1

[pending]
days = 14

[expiry]
policy = "lot_months"
months = 12
end_of_month = true

[tiers]
metric = "qualifying_spend"
window = { kind = "rolling", months = 12 }
review = { kind = "anniversary" }
max_levels_down_per_review = 1

[[tiers.levels]]
name = "Bronze"
threshold = "0"
multiplier = "1"

[[tiers.levels]]
name = "Silver"
threshold = "200"
multiplier = "1.5"

[[tiers.levels]]
name = "Gold"
threshold = "500"
multiplier = "2"

[[rewards]]
id = "coffee"
name = "A coffee"
cost = 100

[[rewards]]
id = "class"
name = "Barista class"
cost = 300
min_tier = "Gold"

[[rewards]]
id = "mug"
name = "A mug"
cost = 40
per_member_limit = 1
available_from = "2026-01-01"
available_until = "2026-06-30"

[bonuses]
welcome_points = 50

[[bonuses.activities]]
kind = "survey"
points = 25
limit = 1
period = "month"

[[bonuses.activities]]
kind = "review"
points = 10
limit = 2
period = "week"

[[bonuses.activities]]
kind = "app"
points = 100
period = "once"

[[bonuses.activities]]
kind = "checkin"
points = 5
period = "day"

[referral]
referrer_points = 200
newcomer_points = 100
min_first_purchase = "15"

[notices]
points_expiring_days = 14

[win_back]
below_p_alive = "0.3"
inactive_days = 120
points = 250
once_every_days = 365

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"

[limits]
max_lines_per_purchase = 5
max_amount_per_line = "1000"
max_points_per_adjustment = 5000
max_text_length = 40
"#;

pub fn program() -> Program {
    Program::from_toml_str(TEST_PROGRAM).expect("test program is valid")
}

/// The test program with one piece of text replaced (which must be present).
pub fn program_with(from: &str, to: &str) -> Program {
    assert!(TEST_PROGRAM.contains(from), "test program lacks {from:?}");
    Program::from_toml_str(&TEST_PROGRAM.replacen(from, to, 1)).expect("variant is valid")
}

// ---- values ----

pub fn t(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("test instant")
        .with_timezone(&Utc)
}

pub fn d(text: &str) -> Decimal {
    text.parse().expect("test decimal")
}

pub fn p(points: i64) -> Points {
    Points::new(points)
}

pub const MEMBER: &str = "M1";

pub fn member() -> MemberId {
    MemberId::parse(MEMBER).unwrap()
}

pub fn lot(id: &str) -> LotId {
    LotId::parse(id).unwrap()
}

pub fn draw(lot_id: &str, points: i64) -> LotDraw {
    LotDraw {
        lot_id: lot(lot_id),
        points: p(points),
    }
}

/// The day everybody enrolls in these tests (10:00 in Paris).
pub const ENROLLED: &str = "2026-01-05T09:00:00Z";

// ---- commands ----

pub fn enroll() -> Command {
    enroll_at(ENROLLED)
}

pub fn enroll_at(at: &str) -> Command {
    Enroll {
        member_id: member(),
        referrer: None,
        occurred_at: t(at),
    }
    .into()
}

pub fn enroll_referred_by(referrer: &str) -> Command {
    Enroll {
        member_id: member(),
        referrer: Some(MemberId::parse(referrer).unwrap()),
        occurred_at: t(ENROLLED),
    }
    .into()
}

pub fn line(sku: &str, category: &str, amount: &str) -> PurchaseLine {
    PurchaseLine {
        sku: Sku::parse(sku).unwrap(),
        category: CategoryId::parse(category).unwrap(),
        quantity: Decimal::ONE,
        amount: d(amount),
    }
}

/// A purchase in store S1 of one coffee line of `amount`.
pub fn purchase(tx: &str, at: &str, amount: &str) -> Command {
    purchase_lines(tx, at, vec![line("LATTE", "drinks", amount)])
}

pub fn purchase_lines(tx: &str, at: &str, lines: Vec<PurchaseLine>) -> Command {
    purchase_in("S1", tx, at, lines)
}

pub fn purchase_in(store: &str, tx: &str, at: &str, lines: Vec<PurchaseLine>) -> Command {
    RecordPurchase {
        member_id: member(),
        transaction_id: TransactionId::parse(tx).unwrap(),
        store: StoreId::parse(store).unwrap(),
        terminal: TerminalId::parse("till-1").unwrap(),
        occurred_at: t(at),
        currency: Currency::parse("EUR").unwrap(),
        lines,
    }
    .into()
}

/// The store of the test purchases and refunds.
pub const STORE: &str = "S1";

pub fn store(id: &str) -> StoreId {
    StoreId::parse(id).unwrap()
}

pub fn refund_lines(id: &str, tx: &str, at: &str, lines: &[(u32, &str)]) -> Command {
    refund_at(id, STORE, STORE, tx, at, lines_scope(lines))
}

pub fn refund_amount(id: &str, tx: &str, at: &str, amount: &str) -> Command {
    refund_at(id, STORE, STORE, tx, at, RefundScope::Amount(d(amount)))
}

/// A refund taken at `store` of the sale `tx` of `purchase_store`.
pub fn refund_at(
    id: &str,
    store_id: &str,
    purchase_store: &str,
    tx: &str,
    at: &str,
    scope: RefundScope,
) -> Command {
    Refund {
        member_id: member(),
        refund_id: RefundId::parse(id).unwrap(),
        store: store(store_id),
        purchase_store: store(purchase_store),
        transaction_id: TransactionId::parse(tx).unwrap(),
        occurred_at: t(at),
        currency: Currency::parse("EUR").unwrap(),
        scope,
    }
    .into()
}

/// Refunds of given lines, as a scope.
pub fn lines_scope(lines: &[(u32, &str)]) -> RefundScope {
    RefundScope::Lines(
        lines
            .iter()
            .map(|(line, amount)| RefundLine {
                line: *line,
                amount: d(amount),
            })
            .collect(),
    )
}

pub fn redeem(id: &str, at: &str, points: i64) -> Command {
    Redeem {
        member_id: member(),
        redemption_id: RedemptionId::parse(id).unwrap(),
        occurred_at: t(at),
        target: RedeemTarget::Points(p(points)),
    }
    .into()
}

pub fn redeem_reward(id: &str, at: &str, reward: &str) -> Command {
    Redeem {
        member_id: member(),
        redemption_id: RedemptionId::parse(id).unwrap(),
        occurred_at: t(at),
        target: RedeemTarget::Reward(RewardId::parse(reward).unwrap()),
    }
    .into()
}

pub fn cancel(id: &str, at: &str) -> Command {
    CancelRedemption {
        member_id: member(),
        redemption_id: RedemptionId::parse(id).unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn expire(at: &str) -> Command {
    Expire {
        member_id: member(),
        occurred_at: t(at),
    }
    .into()
}

/// The scheduler's expiry notice, sent as of `at` (the server's clock, unless a step says
/// otherwise).
pub fn notify_expiry(at: &str) -> Command {
    NotifyExpiry {
        member_id: member(),
        occurred_at: t(at),
    }
    .into()
}

pub fn activity(id: &str, kind: &str, at: &str) -> Command {
    RecordActivity {
        member_id: member(),
        activity_id: ActivityId::parse(id).unwrap(),
        kind: ActivityKind::parse(kind).unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn adjust(id: &str, at: &str, points: i64) -> Command {
    Adjust {
        member_id: member(),
        adjustment_id: AdjustmentId::parse(id).unwrap(),
        points: p(points),
        reason_code: ReasonCode::parse("correction").unwrap(),
        note: "till error".to_owned(),
        operator: OperatorId::parse("alice").unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn goodwill(complaint: &str, at: &str, points: i64) -> Command {
    Goodwill {
        member_id: member(),
        complaint_id: ComplaintId::parse(complaint).unwrap(),
        points: p(points),
        reason_code: ReasonCode::parse("complaint-upheld").unwrap(),
        note: "cold croissant".to_owned(),
        operator: OperatorId::parse("bob").unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn review(at: &str) -> Command {
    ReviewTier {
        member_id: member(),
        occurred_at: t(at),
    }
    .into()
}

pub fn suspend(at: &str) -> Command {
    Suspend {
        member_id: member(),
        reason_code: ReasonCode::parse("fraud-check").unwrap(),
        operator: OperatorId::parse("alice").unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn reinstate(at: &str) -> Command {
    Reinstate {
        member_id: member(),
        reason_code: ReasonCode::parse("appeal-upheld").unwrap(),
        operator: OperatorId::parse("alice").unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn close(at: &str) -> Command {
    Close {
        member_id: member(),
        reason_code: ReasonCode::parse("member-request").unwrap(),
        operator: OperatorId::parse("alice").unwrap(),
        occurred_at: t(at),
    }
    .into()
}

pub fn revoke_referral(newcomer: &str, at: &str) -> Command {
    RevokeReferralBonus {
        member_id: member(),
        newcomer: MemberId::parse(newcomer).unwrap(),
        reason: RevocationReason::PurchaseRefunded,
        occurred_at: t(at),
    }
    .into()
}

/// The scheduler's win-back, with what it measured: `p_alive` (from a model `m1`) and the days
/// since the last purchase; the member bought on 3 days.
pub fn win_back(at: &str, p_alive: Option<&str>, inactive_days: u32) -> Command {
    WinBack {
        member_id: member(),
        occurred_at: t(at),
        p_alive: p_alive.map(d),
        inactive_days,
        purchase_days: 3,
        model_version: p_alive.map(|_| "m1".to_owned()),
    }
    .into()
}

/// An opening balance of `points` carried over on 2027-06-01, expiring at `expires_at`.
pub fn open_balance(id: &str, points: i64, expires_at: Option<&str>) -> Command {
    OpenBalance {
        member_id: member(),
        balance_id: AdjustmentId::parse(id).unwrap(),
        points: p(points),
        expires_at: expires_at.map(t),
        occurred_at: t("2027-06-01T07:00:00Z"),
    }
    .into()
}

pub fn credit_referral(newcomer: &str, at: &str) -> Command {
    CreditReferralBonus {
        member_id: member(),
        newcomer: MemberId::parse(newcomer).unwrap(),
        occurred_at: t(at),
    }
    .into()
}

// ---- the harness ----

/// The ledger identity, as of `at`:
/// earned - redeemed - expired - clawed back - forfeited + adjusted = available + pending - debt.
pub fn assert_ledger_identity(state: &MemberState, at: DateTime<Utc>) {
    let b = state.balance(at);
    let l = &b.lifetime;
    let left = l.earned.value()
        - l.redeemed.value()
        - l.expired.value()
        - l.clawed_back.value()
        - l.forfeited.value()
        + l.adjusted.value();
    let right = b.available.value() + b.pending.value() - b.debt.value();
    assert_eq!(left, right, "ledger identity broken as of {at}: {b:?}");
    assert_eq!(right, b.balance.value());
}

/// A command with the server's clock it is decided at.
#[derive(Debug, Clone)]
pub struct Step {
    pub command: Command,
    pub now: DateTime<Utc>,
}

impl From<Command> for Step {
    /// The server's clock agrees with the caller's.
    fn from(command: Command) -> Step {
        let now = command.occurred_at();
        Step { command, now }
    }
}

/// `command`, decided with the server's clock at `now` (its business time stays its own).
pub fn server_at(now: &str, command: Command) -> Step {
    Step {
        command,
        now: t(now),
    }
}

pub struct Given {
    program: Program,
    state: MemberState,
    history: Vec<Event>,
}

/// No history: the member does not exist yet.
pub fn given_nothing() -> Given {
    given(Vec::<Step>::new())
}

pub fn given<S: Into<Step>, I: IntoIterator<Item = S>>(steps: I) -> Given {
    given_with(program(), steps)
}

pub fn given_with<S: Into<Step>, I: IntoIterator<Item = S>>(program: Program, steps: I) -> Given {
    let mut g = Given {
        program,
        state: MemberState::default(),
        history: Vec::new(),
    };
    for step in steps {
        let Step { command: c, now } = step.into();
        let decision = decide(&g.state, &c, &g.program, ServerTime::at(now))
            .unwrap_or_else(|e| panic!("given {c:?} was rejected: {e}"));
        for e in &decision.events {
            evolve(&mut g.state, e);
            g.history.push(e.clone());
        }
        assert_ledger_identity(&g.state, now);
    }
    g
}

impl Given {
    pub fn state(&self) -> &MemberState {
        &self.state
    }

    pub fn history(&self) -> &[Event] {
        &self.history
    }

    pub fn when(self, step: impl Into<Step>) -> Then {
        let Step { command, now } = step.into();
        let result = decide(&self.state, &command, &self.program, ServerTime::at(now));
        let mut after = self.state.clone();
        if let Ok(decision) = &result {
            for e in &decision.events {
                evolve(&mut after, e);
            }
            assert_ledger_identity(&after, now);
            // Replaying the whole history rebuilds the same state.
            let mut all = self.history.clone();
            all.extend(decision.events.iter().cloned());
            assert_eq!(MemberState::from_events(&all), after, "replay differs");
        }
        Then {
            before: self.state,
            after,
            result,
            program: self.program,
            command,
            now,
        }
    }
}

pub struct Then {
    pub before: MemberState,
    pub after: MemberState,
    pub result: Result<Decision, DomainError>,
    pub program: Program,
    pub command: Command,
    /// The server's clock the command was decided at.
    pub now: DateTime<Utc>,
}

impl Then {
    /// The command was rejected with exactly this error, and nothing changed.
    pub fn then_err(self, expected: DomainError) {
        match self.result {
            Err(e) => assert_eq!(e, expected),
            Ok(d) => panic!("expected {expected:?}, got {d:?}"),
        }
    }

    /// The command was accepted (not as a replay); returns the decision and the new state.
    pub fn then_ok(self) -> (Decision, MemberState) {
        match self.result {
            Ok(d) => {
                assert!(!d.replayed, "unexpected replay: {d:?}");
                (d, self.after)
            }
            Err(e) => panic!("expected success, got {e:?}"),
        }
    }

    /// The command was a replay: no events, and the outcome of the original.
    pub fn then_replayed(self) -> Outcome {
        match self.result {
            Ok(d) => {
                assert!(d.replayed, "expected a replay: {d:?}");
                assert!(d.events.is_empty(), "a replay appends nothing");
                d.outcome
            }
            Err(e) => panic!("expected a replay, got {e:?}"),
        }
    }

    pub fn then_events(self) -> Vec<Event> {
        self.then_ok().0.events
    }

    pub fn then_outcome(self) -> Outcome {
        self.then_ok().0.outcome
    }
}

/// The only event of a given kind in a list.
/// No event of a given kind in a list.
#[macro_export]
macro_rules! none {
    ($events:expr, $variant:ident) => {{
        let found = $events
            .iter()
            .filter(|e| matches!(e, loyalty_core::Event::$variant(_)))
            .count();
        assert_eq!(
            found,
            0,
            "unexpected {} in {:?}",
            stringify!($variant),
            $events
        );
    }};
}

#[macro_export]
macro_rules! only {
    ($events:expr, $variant:ident) => {{
        let found: Vec<_> = $events
            .iter()
            .filter_map(|e| match e {
                loyalty_core::Event::$variant(x) => Some(x.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {} in {:?}",
            stringify!($variant),
            $events
        );
        found.into_iter().next().unwrap()
    }};
}
