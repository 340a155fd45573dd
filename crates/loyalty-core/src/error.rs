//! Typed rejections. Each carries what the person at the till or in the app needs to act.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use thiserror::Error;

use crate::Points;

/// Instants in messages as the API writes them.
fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Why a command was rejected. A rejection records nothing: the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DomainError {
    #[error("invalid {kind} {value:?}: expected 1 to 64 characters of A-Z a-z 0-9 . _ : -")]
    InvalidId { kind: &'static str, value: String },
    #[error("invalid currency {value:?}: expected an ISO 4217 code such as EUR")]
    InvalidCurrency { value: String },
    #[error("the member is not enrolled")]
    NotEnrolled,
    #[error("the member is already enrolled")]
    AlreadyEnrolled,
    #[error("the command is for member {got}, this is member {expected}")]
    WrongMember { expected: String, got: String },
    #[error("{client_id} was already used for a different request")]
    IdempotencyConflict { client_id: String },
    #[error("the member is suspended")]
    MemberSuspended,
    #[error("the member's account is closed")]
    MemberClosed,
    #[error("the program works in {expected}, the request is in {got}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("{field} must be positive")]
    AmountNotPositive { field: &'static str },
    #[error("{field} has more than {max_decimals} decimals")]
    AmountTooPrecise {
        field: &'static str,
        max_decimals: u32,
    },
    #[error("{field} exceeds the limit of {max}")]
    AmountTooLarge { field: &'static str, max: Decimal },
    #[error("a purchase needs at least one line")]
    NoLines,
    #[error("too many lines: at most {max}")]
    TooManyLines { max: u32 },
    #[error("unknown transaction {transaction_id} of store {store}")]
    UnknownTransaction {
        store: String,
        transaction_id: String,
    },
    #[error("the purchase has no line {line}")]
    UnknownLine { line: u32 },
    #[error("a line appears twice in the refund: {line}")]
    DuplicateRefundLine { line: u32 },
    #[error("the refund is larger than what is left to refund ({remaining})")]
    RefundExceedsRemaining {
        line: Option<u32>,
        remaining: Decimal,
    },
    #[error("unknown reward {reward_id}")]
    UnknownReward { reward_id: String },
    #[error("reward {reward_id} is not available at this date")]
    RewardNotAvailable { reward_id: String },
    #[error("reward needs tier {required}, the member is {current}")]
    TierTooLow { required: String, current: String },
    #[error("reward {reward_id} can be redeemed at most {limit} times")]
    RewardLimitReached { reward_id: String, limit: u32 },
    #[error("insufficient points: {available} available, {requested} requested")]
    InsufficientPoints {
        available: Points,
        requested: Points,
    },
    #[error("points must be positive")]
    PointsNotPositive,
    #[error("points must not be zero")]
    PointsZero,
    #[error("at most {max} points at once")]
    PointsTooLarge { max: Points },
    #[error("unknown redemption {redemption_id}")]
    UnknownRedemption { redemption_id: String },
    #[error("redemption {redemption_id} was already cancelled")]
    RedemptionAlreadyCancelled { redemption_id: String },
    #[error("unknown activity kind {kind}")]
    UnknownActivity { kind: String },
    #[error("a member cannot refer themselves")]
    SelfReferral,
    #[error("the program has no referral rule")]
    ReferralNotConfigured,
    #[error("the program has no win-back rule")]
    WinBackNotConfigured,
    #[error("the member had a win-back bonus at {last}: the next may come at {next}")]
    WinBackTooSoon {
        last: DateTime<Utc>,
        next: DateTime<Utc>,
    },
    #[error("the member does not meet the win-back rule")]
    WinBackNotDue,
    #[error("an opening balance at {occurred_at} cannot expire at {expires_at}")]
    ExpiryBeforeOpening {
        occurred_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    #[error("{field} is longer than {max} characters")]
    TextTooLong { field: &'static str, max: u32 },
    #[error("the numbers are out of range")]
    ArithmeticOverflow,
    #[error(
        "occurred_at {} is outside the accepted window: between {} and {} by the server's clock \
         (older history goes through an import)",
        rfc3339(occurred_at),
        rfc3339(earliest),
        rfc3339(latest)
    )]
    OccurredAtOutsideWindow {
        occurred_at: DateTime<Utc>,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
    #[error("occurred_at is before the member enrolled ({})", rfc3339(enrolled_at))]
    BeforeEnrollment { enrolled_at: DateTime<Utc> },
    #[error("the refund is dated before the purchase ({})", rfc3339(purchased_at))]
    RefundBeforePurchase { purchased_at: DateTime<Utc> },
    #[error("a time is outside the range the ledger records (years 0001 to 9999)")]
    TimeOutOfRange,
    #[error("the referral of {newcomer} was revoked: no bonus is due for it")]
    ReferralRevoked { newcomer: String },
    /// The state was compacted and the command touches what it retired: decide it on the
    /// member's full history (`MemberState::needs_history` says so beforehand).
    #[error("this command needs the member's full history")]
    HistoryNeeded,
}

impl DomainError {
    /// A stable machine-readable code for APIs and logs (`insufficient_points`...).
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidId { .. } => "invalid_id",
            DomainError::InvalidCurrency { .. } => "invalid_currency",
            DomainError::NotEnrolled => "not_enrolled",
            DomainError::AlreadyEnrolled => "already_enrolled",
            DomainError::WrongMember { .. } => "wrong_member",
            DomainError::IdempotencyConflict { .. } => "idempotency_conflict",
            DomainError::MemberSuspended => "member_suspended",
            DomainError::MemberClosed => "member_closed",
            DomainError::CurrencyMismatch { .. } => "currency_mismatch",
            DomainError::AmountNotPositive { .. } => "amount_not_positive",
            DomainError::AmountTooPrecise { .. } => "amount_too_precise",
            DomainError::AmountTooLarge { .. } => "amount_too_large",
            DomainError::NoLines => "no_lines",
            DomainError::TooManyLines { .. } => "too_many_lines",
            DomainError::UnknownTransaction { .. } => "unknown_transaction",
            DomainError::UnknownLine { .. } => "unknown_line",
            DomainError::DuplicateRefundLine { .. } => "duplicate_refund_line",
            DomainError::RefundExceedsRemaining { .. } => "refund_exceeds_remaining",
            DomainError::UnknownReward { .. } => "unknown_reward",
            DomainError::RewardNotAvailable { .. } => "reward_not_available",
            DomainError::TierTooLow { .. } => "tier_too_low",
            DomainError::RewardLimitReached { .. } => "reward_limit_reached",
            DomainError::InsufficientPoints { .. } => "insufficient_points",
            DomainError::PointsNotPositive => "points_not_positive",
            DomainError::PointsZero => "points_zero",
            DomainError::PointsTooLarge { .. } => "points_too_large",
            DomainError::UnknownRedemption { .. } => "unknown_redemption",
            DomainError::RedemptionAlreadyCancelled { .. } => "redemption_already_cancelled",
            DomainError::UnknownActivity { .. } => "unknown_activity",
            DomainError::SelfReferral => "self_referral",
            DomainError::ReferralNotConfigured => "referral_not_configured",
            DomainError::WinBackNotConfigured => "win_back_not_configured",
            DomainError::WinBackTooSoon { .. } => "win_back_too_soon",
            DomainError::WinBackNotDue => "win_back_not_due",
            DomainError::ExpiryBeforeOpening { .. } => "expiry_before_opening",
            DomainError::TextTooLong { .. } => "text_too_long",
            DomainError::ArithmeticOverflow => "arithmetic_overflow",
            DomainError::OccurredAtOutsideWindow { .. } => "occurred_at_outside_window",
            DomainError::BeforeEnrollment { .. } => "before_enrollment",
            DomainError::RefundBeforePurchase { .. } => "refund_before_purchase",
            DomainError::TimeOutOfRange => "time_out_of_range",
            DomainError::ReferralRevoked { .. } => "referral_revoked",
            DomainError::HistoryNeeded => "history_needed",
        }
    }

    /// True when the request itself is wrong (as opposed to the member's state refusing it):
    /// a client should not retry it unchanged.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            DomainError::InvalidId { .. }
                | DomainError::InvalidCurrency { .. }
                | DomainError::WrongMember { .. }
                | DomainError::AmountNotPositive { .. }
                | DomainError::AmountTooPrecise { .. }
                | DomainError::AmountTooLarge { .. }
                | DomainError::NoLines
                | DomainError::TooManyLines { .. }
                | DomainError::UnknownLine { .. }
                | DomainError::DuplicateRefundLine { .. }
                | DomainError::PointsNotPositive
                | DomainError::PointsZero
                | DomainError::PointsTooLarge { .. }
                | DomainError::TextTooLong { .. }
                | DomainError::SelfReferral
                | DomainError::OccurredAtOutsideWindow { .. }
                | DomainError::BeforeEnrollment { .. }
                | DomainError::RefundBeforePurchase { .. }
                | DomainError::TimeOutOfRange
                | DomainError::ExpiryBeforeOpening { .. }
        )
    }
}

/// Why a program file was rejected: the field (a dotted path) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProgramError {
    #[error("program file is not valid TOML for a program: {0}")]
    Parse(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl ProgramError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ProgramError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why a stored event could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    #[error("unknown event type {event_type:?}")]
    UnknownEventType { event_type: String },
    #[error("event type {event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: u32 },
    #[error("event {event_type} v{version} is malformed: {reason}")]
    Malformed {
        event_type: String,
        version: u32,
        reason: String,
    },
}
