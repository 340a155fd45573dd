//! What-if: recorded decisions turned back into their commands and decided again under another
//! program, member by member, and the two outcomes compared.

use crate::support;

use chrono::{DateTime, Utc};
use loyalty_core::what_if::{
    Basis, MemberDifference, MemberFigures, MemberOutcome, MemberWhatIf, Next, Period, Reading,
    RecordedDecision, Replay, Tally, WhatIfTotals, basis, command_of,
};
use loyalty_core::*;
use support::*;

/// Before the period.
const EARLY: &str = "2026-01-20T10:00:00Z";
const FROM: &str = "2026-02-01T00:00:00Z";
const TO: &str = "2026-04-01T00:00:00Z";
/// After the period.
const LATE: &str = "2026-04-10T10:00:00Z";

/// One decision as the engine stores it: its events, with the command's name and both times in
/// their metadata.
struct Stored {
    events: Vec<Event>,
    command: &'static str,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    imported: bool,
}

impl Stored {
    fn decision(&self) -> RecordedDecision<'_> {
        RecordedDecision {
            events: &self.events,
            command: Some(self.command),
            occurred_at: Some(self.occurred_at),
            recorded_at: self.recorded_at,
            imported: self.imported,
        }
    }
}

/// Records a history under `program` as the engine would (each command decided at its server
/// time; every one must be accepted).
fn record(program: &Program, steps: Vec<Step>) -> Vec<Stored> {
    let mut state = MemberState::default();
    let mut log = Vec::new();
    for Step { command, now } in steps {
        let decision = decide(&state, &command, program, ServerTime::at(now))
            .unwrap_or_else(|e| panic!("{command:?} refused while recording: {e}"));
        for e in &decision.events {
            evolve(&mut state, e);
        }
        if !decision.events.is_empty() {
            log.push(Stored {
                events: decision.events,
                command: command.name(),
                occurred_at: command.occurred_at(),
                recorded_at: now,
                imported: false,
            });
        }
    }
    log
}

fn period() -> Period {
    Period::new(t(FROM), t(TO)).expect("from is before to")
}

/// Feeds a recorded history to the what-if under `program`; returns the outcome and how many
/// decisions it read before it said it was done.
fn try_program(program: &Program, log: &[Stored]) -> (MemberOutcome, usize) {
    let mut run = MemberWhatIf::new(member(), program, period());
    let mut read = 0;
    for stored in log {
        read += 1;
        if run.apply(&stored.decision()) == Next::Done {
            break;
        }
    }
    (run.finish().expect("the member is enrolled"), read)
}

/// The test program, beans earning four times the base instead of twice.
fn beans_doubled() -> Program {
    program_with(
        "category = \"beans\"\nmultiplier = \"2\"",
        "category = \"beans\"\nmultiplier = \"4\"",
    )
}

/// Half a point per euro instead of one.
fn half_rate() -> Program {
    program_with("points_per_unit = \"1\"", "points_per_unit = \"0.5\"")
}

/// A history touching most kinds of command, before, during and after the period.
fn busy_history() -> Vec<Step> {
    vec![
        enroll().into(),
        purchase_lines("T0", EARLY, vec![line("BEANS", "beans", "10.00")]).into(),
        purchase_lines(
            "T1",
            "2026-02-10T10:00:00Z",
            vec![line("BEANS", "beans", "12.00")],
        )
        .into(),
        purchase("T2", "2026-02-15T10:00:00Z", "30.00").into(),
        purchase_lines(
            "T3",
            "2026-03-01T10:00:00Z",
            vec![
                line("BEANS", "beans", "5.00"),
                line("LATTE", "drinks", "7.00"),
            ],
        )
        .into(),
        refund_amount("F1", "T1", "2026-03-05T10:00:00Z", "6.00").into(),
        redeem("R1", "2026-03-06T10:00:00Z", 40).into(),
        cancel("R1", "2026-03-07T10:00:00Z").into(),
        redeem_reward("R2", "2026-03-08T10:00:00Z", "coffee").into(),
        activity("A1", "survey", "2026-03-09T10:00:00Z").into(),
        adjust("ADJ1", "2026-03-10T10:00:00Z", -15).into(),
        goodwill("C1", "2026-03-11T10:00:00Z", 30).into(),
        suspend("2026-03-12T10:00:00Z").into(),
        reinstate("2026-03-13T10:00:00Z").into(),
        purchase_lines("T4", LATE, vec![line("BEANS", "beans", "50.00")]).into(),
    ]
}

#[test]
fn the_same_program_decides_the_period_again_exactly_as_recorded() {
    // Given a busy history recorded under the test program
    let program = program();
    let log = record(&program, busy_history());
    // When the period is decided again under the same program
    let (outcome, _) = try_program(&program, &log);
    // Then both sides are identical and every command of the period was accepted
    assert_eq!(outcome.what_if, outcome.recorded);
    assert_eq!(outcome.difference(), p(0));
    assert_eq!(outcome.tally.refused_total(), 0);
    let in_period = log
        .iter()
        .filter(|s| s.recorded_at >= t(FROM) && s.recorded_at < t(TO))
        .count() as u64;
    assert_eq!(outcome.tally.decided_total(), in_period);
}

#[test]
fn doubling_beans_changes_exactly_what_the_beans_lines_of_the_period_earned() {
    // Given beans bought before (T0), during (T1, T3) and after (T4) the period, a latte (T2)
    // and half of T1 refunded
    let log = record(&program(), busy_history());
    // When beans earn 4 points a euro instead of 2
    let (outcome, _) = try_program(&beans_doubled(), &log);
    // Then T1 earns 48 instead of 24 and T3's beans 20 instead of 10 (T0 was before the period,
    // T4 after it, the latte earns the same): 34 more points issued
    let issued = outcome.what_if.issued.value() - outcome.recorded.issued.value();
    assert_eq!(issued, 34);
    // and the refund of half of T1's beans takes back half of what T1 earned: 24, not 12
    let clawed = outcome.what_if.clawed_back.value() - outcome.recorded.clawed_back.value();
    assert_eq!(clawed, 12);
    // so 22 more points are available at the period's end (every lot is past its 14 days)
    assert_eq!(outcome.difference(), p(22));
    assert_eq!(outcome.what_if.pending, outcome.recorded.pending);
    assert_eq!(outcome.tally.refused_total(), 0);
}

#[test]
fn a_redemption_the_new_program_cannot_afford_is_counted_and_so_is_its_cancellation() {
    // Given a member who earned 50 (welcome) + 60 and redeemed 100 points, then cancelled it
    let log = record(
        &program(),
        vec![
            enroll().into(),
            purchase("T1", "2026-02-01T10:00:00Z", "60.00").into(),
            redeem("R1", "2026-02-20T10:00:00Z", 100).into(),
            cancel("R1", "2026-02-21T10:00:00Z").into(),
        ],
    );
    // When the purchase earns half as much (50 + 30 < 100)
    let (outcome, _) = try_program(&half_rate(), &log);
    // Then the redemption is refused for want of points, and the cancellation of a redemption
    // that never happened with it; both are counted, neither stops the run
    assert_eq!(outcome.tally.refusals("Redeem", "insufficient_points"), 1);
    assert_eq!(
        outcome
            .tally
            .refusals("CancelRedemption", "unknown_redemption"),
        1
    );
    assert_eq!(outcome.tally.refused_total(), 2);
    // and the purchase itself was decided again
    assert_eq!(outcome.tally.decided_total(), 1);
    assert_eq!(outcome.what_if.issued, p(30));
    assert_eq!(outcome.recorded.issued, p(60));
}

#[test]
fn history_before_the_period_is_kept_as_recorded_and_history_after_it_is_not_read() {
    // Given beans bought before the period and after it, nothing during it
    let log = record(
        &program(),
        vec![
            enroll().into(),
            purchase_lines("T0", EARLY, vec![line("BEANS", "beans", "10.00")]).into(),
            purchase_lines("T9", LATE, vec![line("BEANS", "beans", "10.00")]).into(),
        ],
    );
    // When beans earn double
    let (outcome, read) = try_program(&beans_doubled(), &log);
    // Then nothing differs: T0 keeps its recorded 20 points on both sides
    assert_eq!(outcome.what_if, outcome.recorded);
    assert_eq!(outcome.recorded.available, p(50 + 20));
    assert_eq!(outcome.tally.decided_total(), 0);
    // and reading stopped at the first decision after the period
    assert_eq!(read, log.len());
    assert_eq!(log.len(), 3);
}

#[test]
fn a_member_enrolled_after_the_period_is_left_out() {
    // Given a member who enrolled after the period
    let log = record(&program(), vec![enroll_at(LATE).into()]);
    // When her history is read
    let program = program();
    let mut run = MemberWhatIf::new(member(), &program, period());
    for stored in &log {
        run.apply(&stored.decision());
    }
    // Then she is not part of the comparison
    assert!(run.finish().is_none());
}

#[test]
fn a_recorded_purchase_reads_back_as_the_command_that_made_it() {
    // Given a purchase recorded with its metadata
    let command = purchase_lines(
        "T1",
        "2026-02-10T10:00:00Z",
        vec![
            line("BEANS", "beans", "12.00"),
            line("GIFT", "gift-card", "20.00"),
        ],
    );
    let log = record(&program(), vec![enroll().into(), command.clone().into()]);
    let state = MemberState::from_events(&log[0].events);
    // When it is read back
    let reading = command_of(&member(), &state, &log[1].decision());
    // Then it is the same command, earning by the rules
    assert_eq!(
        reading,
        Reading::Command(Replay {
            command,
            award: ImportedAward::Rules
        })
    );
}

#[test]
fn events_without_metadata_name_their_command_and_followers_go_with_it() {
    // Given a purchase that upgraded the member (the tier change follows it)
    let program = program_with("threshold = \"200\"", "threshold = \"20\"");
    let log = record(
        &program,
        vec![
            enroll().into(),
            purchase("T1", "2026-02-10T10:00:00Z", "30.00").into(),
        ],
    );
    let events = &log[1].events;
    assert!(matches!(events.last(), Some(Event::TierChanged(_))));
    let state = MemberState::from_events(&log[0].events);
    let alone = |event: &Event| {
        command_of(
            &member(),
            &state,
            &RecordedDecision {
                events: std::slice::from_ref(event),
                command: None,
                occurred_at: None,
                recorded_at: event.occurred_at(),
                imported: false,
            },
        )
    };
    // When each event is read alone
    // Then the purchase names its command and the tier change follows it
    assert!(matches!(
        alone(&events[0]),
        Reading::Command(Replay {
            command: Command::RecordPurchase(_),
            ..
        })
    ));
    assert_eq!(alone(&events[1]), Reading::Follows);
}

#[test]
fn an_imported_purchase_keeps_the_legacy_points_whatever_the_new_rules() {
    // Given a purchase imported with the legacy program's 7 points
    let program = program();
    let enrolled = record(&program, vec![enroll().into()]);
    let mut state = MemberState::from_events(&enrolled[0].events);
    let bought = purchase_lines(
        "T1",
        "2026-02-10T10:00:00Z",
        vec![line("BEANS", "beans", "12.00")],
    );
    let decision = decide_imported(
        &state,
        &bought,
        &program,
        ServerTime::at(t("2026-02-10T10:00:00Z")),
        ImportedAward::Explicit(p(7)),
    )
    .unwrap();
    for e in &decision.events {
        evolve(&mut state, e);
    }
    let mut log = enrolled;
    log.push(Stored {
        events: decision.events,
        command: "RecordPurchase",
        occurred_at: t("2026-02-10T10:00:00Z"),
        recorded_at: t("2026-02-10T10:00:00Z"),
        imported: true,
    });
    // When beans earn double
    let (outcome, _) = try_program(&beans_doubled(), &log);
    // Then the import's points stand, stated by the import rather than decided by rules
    assert_eq!(outcome.what_if, outcome.recorded);
    assert_eq!(outcome.what_if.issued, p(7));
    let reading = command_of(&member(), &MemberState::default(), &log[1].decision());
    let Reading::Command(replay) = reading else {
        panic!("an imported purchase reads as a command");
    };
    assert_eq!(replay.award, ImportedAward::Explicit(p(7)));
    assert_eq!(basis(&replay.command, replay.award), Basis::Stated);
}

#[test]
fn a_manual_adjustment_is_stated_and_keeps_its_points() {
    // Given a goodwill grant and an adjustment in the period
    let log = record(
        &program(),
        vec![
            enroll().into(),
            goodwill("C1", "2026-02-11T10:00:00Z", 30).into(),
            adjust("ADJ1", "2026-02-12T10:00:00Z", 12).into(),
        ],
    );
    // When a program that earns half as much is tried
    let (outcome, _) = try_program(&half_rate(), &log);
    // Then both keep their points: nothing differs
    assert_eq!(outcome.what_if, outcome.recorded);
    assert_eq!(outcome.recorded.issued, p(30));
    for stored in &log[1..] {
        let Reading::Command(replay) =
            command_of(&member(), &MemberState::default(), &stored.decision())
        else {
            panic!("{} reads as a command", stored.command);
        };
        assert_eq!(basis(&replay.command, replay.award), Basis::Stated);
    }
}

fn figures(available: i64) -> MemberFigures {
    MemberFigures {
        enrolled: true,
        closed: false,
        issued: p(0),
        redeemed: p(0),
        expired: p(0),
        clawed_back: p(0),
        available: p(available),
        pending: p(0),
        debt: p(0),
        tier: TierRef {
            index: 0,
            name: "Bronze".into(),
        },
    }
}

fn outcome(id: &str, recorded: i64, what_if: i64) -> MemberOutcome {
    MemberOutcome {
        member_id: MemberId::parse(id).unwrap(),
        recorded: figures(recorded),
        what_if: figures(what_if),
        tally: Tally::default(),
    }
}

#[test]
fn the_largest_differences_are_the_ten_largest_each_way_whatever_the_order_members_came_in() {
    // Given 12 members better off by 1..=12 points, 3 worse off and 2 unchanged, added by two
    // workers in a scrambled order
    let mut a = WhatIfTotals::default();
    let mut b = WhatIfTotals::default();
    for (i, gain) in [5, 12, 1, 9, 3, 11, 7, 2, 10, 4, 8, 6]
        .into_iter()
        .enumerate()
    {
        let totals = if i % 2 == 0 { &mut a } else { &mut b };
        totals.add(outcome(&format!("g{gain:02}"), 100, 100 + gain));
    }
    a.add(outcome("l1", 100, 90));
    b.add(outcome("l2", 100, 70));
    a.add(outcome("l3", 100, 99));
    b.add(outcome("u1", 100, 100));
    a.add(outcome("u2", 0, 0));
    // When their totals are merged
    a.merge(b);
    let summary = a.finish(&program(), &program());
    // Then the ten largest gains are listed, largest first, and every loss, largest first
    let gains: Vec<i64> = summary
        .largest_gains
        .iter()
        .map(|d: &MemberDifference| d.difference.value())
        .collect();
    assert_eq!(gains, (3..=12).rev().collect::<Vec<i64>>());
    let losses: Vec<&str> = summary
        .largest_losses
        .iter()
        .map(|d| d.member_id.as_str())
        .collect();
    assert_eq!(losses, ["l2", "l1", "l3"]);
    assert_eq!(
        (summary.better_off, summary.worse_off, summary.unchanged),
        (12, 3, 2)
    );
    assert_eq!(summary.members, 17);
    // and the sides' sums are every member's
    let recorded: i64 = 16 * 100;
    assert_eq!(summary.recorded.points_available, p(recorded));
    let what_if: i64 = 12 * 100 + (1..=12).sum::<i64>() + 90 + 70 + 99 + 100;
    assert_eq!(summary.what_if.points_available, p(what_if));
}

#[test]
fn a_period_must_start_before_it_ends() {
    assert!(Period::new(t(TO), t(FROM)).is_none());
    assert!(Period::new(t(FROM), t(FROM)).is_none());
    assert!(Period::new(t(FROM), t(TO)).is_some());
}
