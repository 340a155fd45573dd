//! The answer to a quote (`POST /v1/purchases/quote`): what a purchase would earn now, per
//! line and per rule, and the member's balance and tier progress after it. Nothing is recorded.
use chrono::{DateTime, Utc};
use loyalty_core::{LineAward, RuleAward};
use loyalty_engine::Quote;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::members::{MemberBalance, MemberTier};
use super::outcome::CommandOutcome;

/// What a purchase would do if it were recorded now, decided by the same rules, checks and
/// clock as `POST /v1/purchases`; nothing is recorded, and the transaction id is not checked
/// for a retry (the basket is quoted as a new sale).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PurchaseQuote {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The server's clock: when the purchase was decided and the balances are evaluated.
    pub as_of: DateTime<Utc>,
    /// Revision of the member's stream the quote was decided on.
    pub stream_revision: u64,
    /// The outcome the purchase would have (always `purchase_recorded`): its points, the debt
    /// they would repay, the lot they would go into.
    pub outcome: CommandOutcome,
    /// The basket's lines, in the request's order, with the points each rule gives them.
    pub lines: Vec<QuotedLine>,
    /// Rules that would award the purchase as a whole (fixed campaign bonuses, a cap on them).
    pub transaction_rules: Vec<QuotedRule>,
    /// What would count as qualifying spend (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("21.90"))]
    pub eligible_amount: Decimal,
    /// The campaigns that would apply.
    #[schema(value_type = Vec<crate::schema::Id>)]
    pub campaigns_applied: Vec<String>,
    /// The member's balance now, as the profile shows it.
    pub balance_before: MemberBalance,
    /// The balance the profile would show once the purchase is recorded.
    pub balance_after: MemberBalance,
    /// The tier and progress the profile would show once the purchase is recorded (the new
    /// tier when the purchase would cross a threshold).
    pub tier_after: MemberTier,
}

impl From<&Quote> for PurchaseQuote {
    fn from(q: &Quote) -> Self {
        Self {
            member_id: q.member_id.to_string(),
            as_of: q.as_of,
            stream_revision: q.stream_revision,
            outcome: CommandOutcome::from(&q.outcome),
            lines: q.lines.iter().map(QuotedLine::from).collect(),
            transaction_rules: q.transaction_rules.iter().map(QuotedRule::from).collect(),
            eligible_amount: q.eligible_amount,
            campaigns_applied: q
                .campaigns_applied
                .iter()
                .map(ToString::to_string)
                .collect(),
            balance_before: MemberBalance::from(&q.balance_before),
            balance_after: MemberBalance::from(&q.balance_after),
            tier_after: MemberTier::from(&q.tier_after),
        }
    }
}

impl From<Quote> for PurchaseQuote {
    fn from(q: Quote) -> Self {
        Self::from(&q)
    }
}

/// One line of the basket and the points it would earn.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotedLine {
    #[schema(value_type = crate::schema::Id)]
    pub sku: String,
    #[schema(value_type = crate::schema::Id)]
    pub category: String,
    /// A decimal string.
    #[schema(value_type = crate::schema::Amount, examples("2"))]
    pub quantity: Decimal,
    /// The amount paid for the line (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("9.00"))]
    pub amount: Decimal,
    /// The part of `amount` that earns and qualifies: zero for excluded categories (a decimal
    /// string).
    #[schema(value_type = crate::schema::Amount, examples("9.00"))]
    pub eligible_amount: Decimal,
    /// The points of every rule that applied to the line (`base`, a multiplier, a campaign,
    /// the rounding share...).
    pub rules: Vec<QuotedRule>,
    /// The line's points: the sum of `rules`, never negative.
    pub points: i64,
}

impl From<&LineAward> for QuotedLine {
    fn from(l: &LineAward) -> Self {
        Self {
            sku: l.sku.to_string(),
            category: l.category.to_string(),
            quantity: l.quantity,
            amount: l.amount,
            eligible_amount: l.eligible_amount,
            rules: l.rules.iter().map(QuotedRule::from).collect(),
            points: l.points.value(),
        }
    }
}

/// The points one rule gives.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotedRule {
    pub rule: String,
    pub points: i64,
}

impl From<&RuleAward> for QuotedRule {
    fn from(r: &RuleAward) -> Self {
        Self {
            rule: r.rule.clone(),
            points: r.points.value(),
        }
    }
}
