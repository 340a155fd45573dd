//! The two clocks of a decision.
//!
//! - **Business time** (`occurred_at`, on every command): when it happened at the till or in the
//!   app. It picks the rules, campaigns, tier, reward dates and activity period, and starts the
//!   return window.
//! - **Server time** ([`ServerTime::now`], the engine's clock, stored as `recorded_at`): what
//!   exists *now*. Pending versus spendable, expired or not, and what a spend may draw from are
//!   judged by it alone, so a caller's clock never spends, expires or unlocks anything.
//!
//! A caller's business time is accepted only within a [`TimeWindow`] around the server's clock
//! (a small skew ahead, a bounded backdating window behind), and every instant the ledger
//! records must be representable as RFC 3339 (years 0001 to 9999).

use chrono::{DateTime, Datelike, TimeDelta, Utc};

use crate::command::Command;
use crate::error::DomainError;

/// How far a caller's `occurred_at` may stray from the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Clocks drift: a till a little ahead of the server is not an error.
    pub max_ahead: TimeDelta,
    /// An offline till syncs its day's sales later; older history goes through an import.
    pub max_behind: TimeDelta,
}

impl TimeWindow {
    /// Five minutes ahead, seven days behind.
    pub const DEFAULT: TimeWindow = TimeWindow {
        max_ahead: TimeDelta::minutes(5),
        max_behind: TimeDelta::days(7),
    };
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow::DEFAULT
    }
}

/// What the server knows of time when it decides: its own clock and the window it accepts
/// business times in. The engine reads its clock once per decision and passes it here; the
/// core never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTime {
    /// The server's clock: decides pending, spendable and expired.
    pub now: DateTime<Utc>,
    pub window: TimeWindow,
}

impl ServerTime {
    /// The server's clock with the default window.
    pub fn at(now: DateTime<Utc>) -> ServerTime {
        ServerTime {
            now,
            window: TimeWindow::DEFAULT,
        }
    }

    pub fn with_window(self, window: TimeWindow) -> ServerTime {
        ServerTime { window, ..self }
    }

    /// The earliest and latest business times a caller may send now.
    pub fn accepted(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let earliest = self
            .now
            .checked_sub_signed(self.window.max_behind)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let latest = self
            .now
            .checked_add_signed(self.window.max_ahead)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        (earliest, latest)
    }
}

/// Whether an instant serialises as RFC 3339 (a four-digit year, 0001 to 9999). chrono writes
/// other years with a sign or five digits, which no RFC 3339 reader accepts.
pub fn representable(at: DateTime<Utc>) -> bool {
    (1..=9999).contains(&at.year())
}

/// Checks an instant the ledger is about to record.
pub(crate) fn check_representable(at: DateTime<Utc>) -> Result<DateTime<Utc>, DomainError> {
    if representable(at) {
        Ok(at)
    } else {
        Err(DomainError::TimeOutOfRange)
    }
}

/// Which business times a command may carry.
enum Accepts {
    /// Sent by a caller: within the window around the server's clock.
    Window,
    /// Scheduled work (expiry and its notices, tier reviews): any past instant, never ahead of
    /// the server.
    NotAhead,
    /// Sent by the engine on behalf of an event already recorded (the referral process
    /// manager): the business time is that event's, however late the process runs.
    Recorded,
}

fn accepts(command: &Command) -> Accepts {
    match command {
        Command::Expire(_)
        | Command::NotifyExpiry(_)
        | Command::ReviewTier(_)
        | Command::WinBack(_) => Accepts::NotAhead,
        Command::CreditReferralBonus(_) | Command::RevokeReferralBonus(_) => Accepts::Recorded,
        Command::Enroll(_)
        | Command::RecordPurchase(_)
        | Command::Refund(_)
        | Command::Redeem(_)
        | Command::CancelRedemption(_)
        | Command::RecordActivity(_)
        | Command::Adjust(_)
        | Command::Goodwill(_)
        | Command::OpenBalance(_)
        | Command::Suspend(_)
        | Command::Reinstate(_)
        | Command::Close(_) => Accepts::Window,
    }
}

/// Whether a caller chose the command's business time and the command acts on an existing
/// account: none may be dated before the enrollment.
pub(crate) fn dated_by_caller(command: &Command) -> bool {
    matches!(accepts(command), Accepts::Window) && !matches!(command, Command::Enroll(_))
}

/// Refuses a command whose business time the server does not accept now.
pub(crate) fn check_occurred_at(command: &Command, time: &ServerTime) -> Result<(), DomainError> {
    let at = command.occurred_at();
    check_representable(at)?;
    let (earliest, latest) = match accepts(command) {
        Accepts::Window => time.accepted(),
        Accepts::NotAhead => (DateTime::<Utc>::MIN_UTC, time.now),
        Accepts::Recorded => return Ok(()),
    };
    if at < earliest || at > latest {
        return Err(DomainError::OccurredAtOutsideWindow {
            occurred_at: at,
            earliest,
            latest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn only_four_digit_years_are_representable() {
        assert!(representable(
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
        ));
        assert!(representable(
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap()
        ));
        assert!(!representable(
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap()
        ));
        assert!(!representable(
            Utc.with_ymd_and_hms(0, 12, 31, 0, 0, 0).unwrap()
        ));
    }

    #[test]
    fn the_window_is_inclusive_at_both_ends() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let (earliest, latest) = ServerTime::at(now).accepted();
        assert_eq!(earliest, now - TimeDelta::days(7));
        assert_eq!(latest, now + TimeDelta::minutes(5));
    }
}
