//! Validated identifiers. Every id a client sends is 1..=64 characters of `[A-Za-z0-9._:-]`,
//! so ids can be embedded in stream names, lot ids and log lines without escaping.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The longest id a client may send.
pub const MAX_ID_LEN: usize = 64;

fn valid_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What this id names, used in error messages.
            pub const KIND: &'static str = $kind;

            /// Validates an id (1..=64 characters of `[A-Za-z0-9._:-]`).
            pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
                let value = value.into();
                if valid_id(&value) {
                    Ok(Self(value))
                } else {
                    Err(DomainError::InvalidId { kind: $kind, value: truncate(&value) })
                }
            }

            /// Same as [`Self::parse`].
            pub fn new(value: impl Into<String>) -> Result<Self, DomainError> {
                Self::parse(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Keeps an invalid value short in an error message (it may be huge or hostile).
fn truncate(value: &str) -> String {
    value.chars().take(MAX_ID_LEN + 1).collect()
}

id_type!(
    /// A member (one event stream per member).
    MemberId, "member id"
);
id_type!(
    /// A purchase, as numbered by the point of sale.
    TransactionId, "transaction id"
);
id_type!(
    /// A refund of (part of) a purchase.
    RefundId, "refund id"
);
id_type!(
    /// A redemption, as numbered by the client that asks for it.
    RedemptionId, "redemption id"
);
id_type!(
    /// A non-purchase activity (a survey answered, a review written...).
    ActivityId, "activity id"
);
id_type!(
    /// A manual adjustment by an operator.
    AdjustmentId, "adjustment id"
);
id_type!(
    /// An upheld complaint: goodwill is granted at most once per complaint.
    ComplaintId, "complaint id"
);
id_type!(
    /// A reward of the catalog.
    RewardId, "reward id"
);
id_type!(
    /// A store of the retailer.
    StoreId, "store id"
);
id_type!(
    /// A till or app that sent the purchase.
    TerminalId, "terminal id"
);
id_type!(
    /// A product.
    Sku, "sku"
);
id_type!(
    /// A product category.
    CategoryId, "category"
);
id_type!(
    /// A lot of points (one per award), derived deterministically from what created it.
    LotId, "lot id"
);
id_type!(
    /// A campaign of the program.
    CampaignId, "campaign id"
);
id_type!(
    /// A kind of non-purchase activity configured in the program (`survey_answered`...).
    ActivityKind, "activity kind"
);
id_type!(
    /// Why an operator changed a balance (`complaint`, `correction`...), read by auditors.
    ReasonCode, "reason code"
);
id_type!(
    /// The operator (staff member or system) who made a manual change.
    OperatorId, "operator id"
);

/// A sale, as the point of sale numbers it: transaction ids are unique per store, so two stores
/// may both have a sale "1001". Written `store/transaction` (`/` is outside the id alphabet, so
/// the text is unambiguous).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PurchaseKey {
    pub store: StoreId,
    pub transaction_id: TransactionId,
}

impl PurchaseKey {
    pub fn new(store: StoreId, transaction_id: TransactionId) -> PurchaseKey {
        PurchaseKey {
            store,
            transaction_id,
        }
    }
}

impl fmt::Display for PurchaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store, self.transaction_id)
    }
}

impl LotId {
    /// Lot ids embed the id of what created them; the prefix keeps the sources apart. Ids are
    /// at most 64 characters, so the lot id may exceed the limit: it is then shortened with a
    /// stable digest of the full text so it stays unique and deterministic.
    pub(crate) fn derived(prefix: &str, source: &str) -> LotId {
        let full = format!("{prefix}:{source}");
        if valid_id(&full) {
            return LotId(full);
        }
        let digest = crate::fingerprint::fnv1a64(full.as_bytes());
        let keep: String = source
            .chars()
            .take(MAX_ID_LEN - prefix.len() - 18)
            .collect();
        LotId(format!("{prefix}:{keep}.{digest:016x}"))
    }

    /// A lot id from two ids: `prefix:first:second` when that text names one pair only, else
    /// (ids may hold `:` themselves) shortened with a digest of the unambiguous pair.
    pub(crate) fn derived_pair(prefix: &str, first: &str, second: &str) -> LotId {
        if !first.contains(':') && !second.contains(':') {
            return LotId::derived(prefix, &format!("{first}:{second}"));
        }
        let digest = crate::fingerprint::fnv1a64(format!("{first}/{second}").as_bytes());
        let keep: String = format!("{first}:{second}")
            .chars()
            .take(MAX_ID_LEN - prefix.len() - 18)
            .collect();
        LotId(format!("{prefix}:{keep}.{digest:016x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_and_length() {
        assert!(MemberId::parse("M-1_a.b:c").is_ok());
        assert!(MemberId::parse("x".repeat(64)).is_ok());
        assert!(MemberId::parse("x".repeat(65)).is_err());
        assert!(MemberId::parse("").is_err());
        assert!(MemberId::parse("a b").is_err());
        assert!(MemberId::parse("caf\u{e9}").is_err());
    }

    #[test]
    fn a_lot_id_derived_from_a_long_id_stays_valid_unique_and_stable() {
        let a = "a".repeat(64);
        let b = format!("{}b", "a".repeat(63));
        let la = LotId::derived("purchase", &a);
        let lb = LotId::derived("purchase", &b);
        assert!(LotId::parse(la.as_str()).is_ok(), "{la}");
        assert_ne!(la, lb);
        assert_eq!(la, LotId::derived("purchase", &a));
        assert_eq!(LotId::derived("purchase", "T1").as_str(), "purchase:T1");
    }

    #[test]
    fn a_lot_id_from_two_ids_keeps_pairs_that_share_a_text_apart() {
        let plain = LotId::derived_pair("purchase", "S1", "1001");
        assert_eq!(plain.as_str(), "purchase:S1:1001");
        let a = LotId::derived_pair("purchase", "a:b", "c");
        let b = LotId::derived_pair("purchase", "a", "b:c");
        assert_ne!(a, b);
        assert!(LotId::parse(a.as_str()).is_ok(), "{a}");
        let long = LotId::derived_pair("purchase", &"s".repeat(64), &"t".repeat(64));
        assert!(LotId::parse(long.as_str()).is_ok(), "{long}");
    }
}
