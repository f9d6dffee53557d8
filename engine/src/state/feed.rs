//! Feed notes: what an engine with notes on (a change feed's follower, never the sequencer's)
//! records while it applies a batch, and the events derived from them afterwards: every command
//! with its result, every transfer stored with both accounts' balances right after it, every
//! hold expiry, every run of a standing order or trigger. Notes made inside a linked chain are
//! undone with it, so a chain that failed leaves only its commands' events.

use super::*;
use crate::types::{Record, RECORD_SIZE};

/// How far from a movement's note its balance notes are looked for.
const NOTED_NEAR: usize = 8;

/// One thing the engine noted while applying a batch (see [`Engine::set_feed_notes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedNote {
    /// Commands `start..end` of the batch were run (as one chain, or one command); what they
    /// changed follows.
    Commands {
        /// The first command's index in the batch.
        start: u32,
        /// One past the last.
        end: u32,
    },
    /// A transfer was stored, by its index.
    Stored(u32),
    /// An account's balances after a change at `timestamp`.
    Balances {
        /// The account's index.
        account: u32,
        /// When.
        timestamp: u64,
        /// Its balances right after.
        balances: Balances,
    },
    /// A pending hold (by its transfer index) expired at `timestamp`.
    Expired {
        /// The hold's transfer index.
        transfer: u32,
        /// When.
        timestamp: u64,
    },
    /// An order's run history gained an entry.
    Run {
        /// The order's index.
        order: u32,
        /// The entry.
        entry: RunEntry,
    },
}

/// What a feed event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FeedEventType {
    /// A command of the batch, as it was sent, with its result.
    Command = 1,
    /// A transfer stored (by a command, an exchange's leg, a run or a trigger) with both
    /// accounts' balances right after it.
    Transfer = 2,
    /// A pending hold expired; both accounts' balances right after.
    Expiry = 3,
    /// A standing order's run or a trigger's firing (paid, failed, retrying, skipped, ...).
    Run = 4,
}

impl FeedEventType {
    /// The type for its byte.
    pub fn from_u8(value: u8) -> Option<FeedEventType> {
        use FeedEventType as T;
        [T::Command, T::Transfer, T::Expiry, T::Run].into_iter().find(|t| *t as u8 == value)
    }

    /// Its name in the CLI and the documents.
    pub fn name(self) -> &'static str {
        ["command", "transfer", "expiry", "run"][self as usize - 1]
    }

    /// Its bit in a subscription's type mask.
    pub fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

/// One event derived from a batch. `index` numbers the batch's events from 0 whatever a
/// subscriber filters, so (log position, index) names an event for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    /// The event's number within its log entry.
    pub index: u32,
    /// What it is.
    pub kind: FeedEventType,
    /// A command's kind byte, or a run's [`RunEvent`] byte; 0 otherwise.
    pub detail: u8,
    /// A command's result, or a run's transfer result; 0 (`ok`) otherwise.
    pub result: ResultCode,
    /// When it happened (engine time, ns); for a command that stored nothing, 0.
    pub timestamp: u64,
    /// The record: the command as sent, the transfer as stored, the hold, or a run (see
    /// `docs/protocol.md`, "Change feed").
    pub record: [u8; RECORD_SIZE],
    /// The ledger it happened on (0 where a command names none).
    pub ledger: u32,
    /// The debit and credit accounts' ids (0 where there is none).
    pub accounts: [u128; 2],
    /// Their balances right after (transfers and expiries; zero otherwise).
    pub balances: [Balances; 2],
}

impl FeedEvent {
    /// A run event's order id and run-history entry (the record [`Engine::feed_events`] wrote:
    /// order id @0, entry @16); `None` for another type or a record that names no entry.
    pub fn run(&self) -> Option<(u128, RunEntry)> {
        if self.kind != FeedEventType::Run {
            return None;
        }
        let order = u128::from_le_bytes(self.record[0..16].try_into().expect("16 bytes"));
        let (_, entry) = RunEntry::from_bytes(self.record[16..16 + RUN_ENTRY_SIZE].try_into().expect("an entry"))?;
        Some((order, entry))
    }
}

impl Engine {
    /// Turns feed notes on or off. Off (the default) they cost the apply path one predictable
    /// branch where a balance is noted for history; on, every batch's notes are kept until
    /// [`Engine::take_feed_notes`].
    pub fn set_feed_notes(&mut self, on: bool) {
        self.feed_on = on;
        self.feed_notes.clear();
    }

    /// The notes of the batches applied since the last call, emptied.
    pub fn take_feed_notes(&mut self, into: &mut Vec<FeedNote>) {
        into.clear();
        core::mem::swap(into, &mut self.feed_notes);
    }

    /// Notes something a chain's rollback must take back.
    #[cold]
    pub(super) fn note(&mut self, note: FeedNote) {
        self.feed_notes.push(note);
        self.record(Undo::FeedNote);
    }

    /// Notes the run-history entries an order gained in a change (`before`: its newest entry
    /// before the change).
    #[cold]
    pub(super) fn note_runs(&mut self, index: u32, before: Option<RunEntry>) {
        let history = self.orders[index as usize].history.clone();
        let new_from = match before {
            Some(old) => history.iter().rposition(|e| *e == old).map_or(0, |at| at + 1),
            None => 0,
        };
        for entry in history.iter().skip(new_from) {
            self.note(FeedNote::Run { order: index, entry: *entry });
        }
    }

    /// The events of one batch from its notes, `commands` and `results`, in the order they
    /// happened (a chain's commands before what they did).
    pub fn feed_events(&self, notes: &[FeedNote], commands: &[Command], results: &[ResultCode], out: &mut Vec<FeedEvent>) {
        self.feed_events_wanted(notes, commands, results, &|_, _, _| true, out);
    }

    /// As [`Engine::feed_events`], building only the events `wanted` (type, ledger, accounts)
    /// lets through; the others still take their index.
    pub fn feed_events_wanted(
        &self,
        notes: &[FeedNote],
        commands: &[Command],
        results: &[ResultCode],
        wanted: &dyn Fn(FeedEventType, u32, [u128; 2]) -> bool,
        out: &mut Vec<FeedEvent>,
    ) {
        out.clear();
        let mut index = 0u32;
        let mut push = |event: Option<FeedEvent>, index: &mut u32| {
            if let Some(mut event) = event {
                event.index = *index;
                out.push(event);
            }
            *index += 1;
        };
        for (at, note) in notes.iter().enumerate() {
            match *note {
                FeedNote::Commands { start, end } => {
                    for k in start..end {
                        let command = &commands[k as usize];
                        let ledger = command.as_transfer().map_or(0, |t| t.ledger);
                        let event = wanted(FeedEventType::Command, ledger, command.account_ids())
                            .then(|| self.command_event(command, results[k as usize]));
                        push(event, &mut index);
                    }
                }
                FeedNote::Stored(transfer) => {
                    let t = &self.stored(transfer);
                    let event = wanted(FeedEventType::Transfer, t.ledger, [t.debit_account_id, t.credit_account_id]).then(|| {
                        let balances = [
                            self.noted(notes, at, t.debit_account_id, t.timestamp),
                            self.noted(notes, at, t.credit_account_id, t.timestamp),
                        ];
                        transfer_event(FeedEventType::Transfer, t, t.timestamp, balances)
                    });
                    push(event, &mut index);
                }
                FeedNote::Expired { transfer, timestamp } => {
                    let t = &self.stored(transfer);
                    let event = wanted(FeedEventType::Expiry, t.ledger, [t.debit_account_id, t.credit_account_id]).then(|| {
                        let balances =
                            [self.noted(notes, at, t.debit_account_id, timestamp), self.noted(notes, at, t.credit_account_id, timestamp)];
                        transfer_event(FeedEventType::Expiry, t, timestamp, balances)
                    });
                    push(event, &mut index);
                }
                FeedNote::Run { order, entry } => {
                    let o = &self.orders[order as usize];
                    let (debit, credit) = o.spec.accounts();
                    let event =
                        wanted(FeedEventType::Run, o.spec.ledger_and_code().0, [debit, credit]).then(|| self.run_event(order, &entry));
                    push(event, &mut index);
                }
                FeedNote::Balances { .. } => {}
            }
        }
    }

    /// An account's balances noted at `timestamp` next to note `at` (a transfer's follow it, an
    /// expiry's come just before it); its balances now if none is (never, by construction).
    fn noted(&self, notes: &[FeedNote], at: usize, account_id: u128, timestamp: u64) -> Balances {
        let matches = |note: &FeedNote| match *note {
            FeedNote::Balances { account, timestamp: ts, balances }
                if ts == timestamp && self.accounts[account as usize].id == account_id =>
            {
                Some(balances)
            }
            _ => None,
        };
        let after = notes[at + 1..].iter().take(NOTED_NEAR).find_map(matches);
        let found = after.or_else(|| notes[..at].iter().rev().take(NOTED_NEAR).find_map(matches));
        debug_assert!(found.is_some(), "a movement's balances are noted next to it");
        found.unwrap_or_else(|| self.account(account_id).map(Balances::of).unwrap_or_default())
    }

    fn command_event(&self, command: &Command, result: ResultCode) -> FeedEvent {
        let ledger = command.as_transfer().map_or(0, |t| t.ledger);
        let mut record = [0u8; RECORD_SIZE];
        command.encode_record(&mut record);
        FeedEvent {
            index: 0,
            kind: FeedEventType::Command,
            detail: command.kind() as u8,
            result,
            timestamp: 0,
            record,
            ledger,
            accounts: command.account_ids(),
            balances: [Balances::default(); 2],
        }
    }

    fn run_event(&self, order: u32, entry: &RunEntry) -> FeedEvent {
        let o = &self.orders[order as usize];
        let (debit, credit) = o.spec.accounts();
        let (ledger, _) = o.spec.ledger_and_code();
        let mut record = [0u8; RECORD_SIZE];
        record[0..16].copy_from_slice(&o.spec.id().to_le_bytes());
        record[16..16 + RUN_ENTRY_SIZE].copy_from_slice(&entry.to_bytes(o.number));
        FeedEvent {
            index: 0,
            kind: FeedEventType::Run,
            detail: entry.event as u8,
            result: entry.code,
            timestamp: entry.at,
            record,
            ledger,
            accounts: [debit, credit],
            balances: [Balances::default(); 2],
        }
    }
}

fn transfer_event(kind: FeedEventType, t: &Transfer, timestamp: u64, balances: [Balances; 2]) -> FeedEvent {
    FeedEvent {
        index: 0,
        kind,
        detail: 0,
        result: ResultCode::Ok,
        timestamp,
        record: t.to_bytes(),
        ledger: t.ledger,
        accounts: [t.debit_account_id, t.credit_account_id],
        balances,
    }
}

#[cfg(test)]
mod tests {
    use super::{FeedEvent, FeedEventType, FeedNote};
    use crate::test_support::{accounts, engine, eur_ledger, execute_ok, transfer};
    use crate::{transfer_flags, Balances, Command, Engine, ResultCode, Transfer};

    fn events(engine: &mut Engine, now: u64, commands: &[Command]) -> (Vec<ResultCode>, Vec<FeedEvent>) {
        let mut results = Vec::new();
        engine.execute(now, commands, &mut results).expect("batch");
        let (mut notes, mut out) = (Vec::<FeedNote>::new(), Vec::new());
        engine.take_feed_notes(&mut notes);
        engine.feed_events(&notes, commands, &results, &mut out);
        (results, out)
    }

    fn linked(mut c: Command) -> Command {
        *c.flags_mut() |= transfer_flags::LINKED;
        c
    }

    /// Every command gets an event with its result; a stored transfer carries both balances
    /// right after it (not after the batch); a failed chain leaves only its commands' events.
    #[test]
    fn a_batch_gives_command_and_transfer_events_in_order() {
        let mut engine = engine();
        engine.set_feed_notes(true);
        let mut setup = vec![eur_ledger()];
        setup.extend(accounts(1..=3));
        execute_ok(&mut engine, 1, &setup);
        engine.take_feed_notes(&mut Vec::new());
        let commands = [
            transfer(10, 1, 2, 5),
            linked(transfer(11, 1, 3, 7)),
            transfer(12, 1, 99, 1), // the chain breaks: unknown account
            transfer(13, 1, 2, 4),
        ];
        let (results, events) = events(&mut engine, 2, &commands);
        assert_eq!(results, [ResultCode::Ok, ResultCode::LinkedEventFailed, ResultCode::CreditAccountNotFound, ResultCode::Ok]);
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.result)).collect();
        use FeedEventType as T;
        assert_eq!(
            kinds,
            [
                (T::Command, ResultCode::Ok),
                (T::Transfer, ResultCode::Ok),
                (T::Command, ResultCode::LinkedEventFailed),
                (T::Command, ResultCode::CreditAccountNotFound),
                (T::Command, ResultCode::Ok),
                (T::Transfer, ResultCode::Ok),
            ]
        );
        assert!(events.iter().enumerate().all(|(i, e)| e.index == i as u32));
        let first = events[1];
        assert_eq!(first.accounts, [1, 2]);
        assert_eq!(first.balances[0], Balances { debits_posted: 5, ..Default::default() }, "after transfer 10, not after the batch");
        assert_eq!(events[5].balances[1], Balances { credits_posted: 9, ..Default::default() });
        assert_eq!(<Transfer as crate::Record>::decode(&events[5].record).id, 13);
    }

    /// An expired hold is an event of the next batch, with the balances it left.
    #[test]
    fn an_expiry_is_an_event_with_its_balances() {
        let mut engine = engine();
        engine.set_feed_notes(true);
        let mut setup = vec![eur_ledger()];
        setup.extend(accounts(1..=2));
        let hold = Transfer {
            id: 20,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 8,
            ledger: 1,
            code: 1,
            timeout: 1,
            flags: transfer_flags::PENDING,
            ..Default::default()
        };
        setup.push(Command::Hold(hold));
        execute_ok(&mut engine, 1, &setup);
        engine.take_feed_notes(&mut Vec::new());
        let (_, events) = events(&mut engine, 5_000_000_000, &[]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, FeedEventType::Expiry);
        assert_eq!(events[0].balances, [Balances::default(); 2]);
        assert_eq!(<Transfer as crate::Record>::decode(&events[0].record).id, 20);
    }
}
