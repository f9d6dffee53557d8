//! The command set, declared once: each kind's wire value, name, record type and meaning in the
//! table at [`commands!`]'s call below, from which the kind enum, the command enum, their
//! conversions and every per-kind match follow. Adding a kind: ARCHITECTURE.md, "Adding a
//! command kind".

use crate::types::{
    Account, AccountChange, AccountLimits, ChannelPolicy, Exchange, Ledger, OrderChange, Quote, Record, StandingOrder, Transfer, Trigger,
    VelocityRule, RECORD_SIZE,
};

/// Declares the command kinds: `Kind = wire value, "wire name", RecordType;` each with its doc.
/// The values are the wire and log encoding and are never renumbered; new kinds are appended.
macro_rules! commands {
    ($( $(#[doc = $doc:literal])* $kind:ident = $value:literal, $name:literal, $record:ident; )*) => {
        /// What a command does (see the table in `command.rs`).
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CommandKind {
            $( $(#[doc = $doc])* $kind = $value, )*
        }

        impl CommandKind {
            /// Every kind, in wire order.
            pub const ALL: &'static [CommandKind] = &[$( CommandKind::$kind, )*];

            /// The kind for a wire value, if it names one.
            pub fn from_u8(value: u8) -> Option<CommandKind> {
                match value {
                    $( $value => Some(CommandKind::$kind), )*
                    _ => None,
                }
            }

            /// The kind's name in the protocol document, the CLI and `log dump` (`create_ledger`).
            pub fn name(self) -> &'static str {
                match self {
                    $( CommandKind::$kind => $name, )*
                }
            }

            /// The kind named `name` (see [`CommandKind::name`]).
            pub fn from_name(name: &str) -> Option<CommandKind> {
                match name {
                    $( $name => Some(CommandKind::$kind), )*
                    _ => None,
                }
            }

            /// The name of the kind's record type (`transfer`, `account change`).
            pub fn record_name(self) -> &'static str {
                match self {
                    $( CommandKind::$kind => <$record as Record>::NAME, )*
                }
            }
        }

        /// One command of a batch: its kind and its record.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Command {
            $( #[doc = concat!("See [`CommandKind::", stringify!($kind), "`].")] $kind($record), )*
        }

        impl Command {
            /// The command's kind.
            pub fn kind(&self) -> CommandKind {
                match self {
                    $( Command::$kind(_) => CommandKind::$kind, )*
                }
            }

            /// The raw flags of the command's record.
            #[inline]
            pub fn flags(&self) -> u16 {
                match self {
                    $( Command::$kind(r) => Record::flags(r), )*
                }
            }

            /// Writes the command's record into `out`.
            #[inline]
            pub fn encode_record(&self, out: &mut [u8; RECORD_SIZE]) {
                match self {
                    $( Command::$kind(r) => Record::encode(r, out), )*
                }
            }

            /// The accounts the command names (zero where it names fewer than two): a
            /// transfer's two sides, an account's id, a ledger's settlement account, a changed
            /// account.
            #[inline]
            pub fn account_ids(&self) -> [u128; 2] {
                match self {
                    $( Command::$kind(r) => Record::account_ids(r), )*
                }
            }

            /// The stored transfers the command can name by id (zero where fewer).
            #[inline]
            pub fn transfer_ids(&self) -> [u128; 3] {
                match self {
                    $( Command::$kind(r) => Record::transfer_ids(r), )*
                }
            }

            /// The transfer record of a command of the transfer family (transfer, debit,
            /// credit, hold, capture, release).
            #[inline]
            pub fn as_transfer(&self) -> Option<&Transfer> {
                match self {
                    $( Command::$kind(r) => Record::as_transfer(r), )*
                }
            }

            /// The command in one line: its name and its record's fields (`log dump`).
            pub fn describe(&self) -> String {
                match self {
                    $( Command::$kind(r) => format!("{} {}", $name, Record::describe(r)), )*
                }
            }

            /// The raw flags of the command's record, to change.
            pub fn flags_mut(&mut self) -> &mut u16 {
                match self {
                    $( Command::$kind(r) => Record::flags_mut(r), )*
                }
            }

            /// The transfer record of a command of the transfer family (transfer, debit, credit,
            /// hold, capture, release), to change.
            pub fn as_transfer_mut(&mut self) -> Option<&mut Transfer> {
                match self {
                    $( Command::$kind(r) => Record::as_transfer_mut(r), )*
                }
            }

            /// Builds a command from its kind and record bytes. Every byte pattern decodes;
            /// whether the command is valid is for the engine to say with a result code.
            pub fn decode(kind: CommandKind, bytes: &[u8; RECORD_SIZE]) -> Command {
                match kind {
                    $( CommandKind::$kind => Command::$kind(<$record as Record>::decode(bytes)), )*
                }
            }
        }
    };
}

commands! {
    /// Register a ledger (currency, scale) and create its settlement account.
    CreateLedger = 1, "create_ledger", Ledger;
    /// Open an account.
    CreateAccount = 2, "create_account", Account;
    /// A two-sided transfer; TigerBeetle's flags (pending, post, void) are honoured.
    Transfer = 3, "transfer", Transfer;
    /// Money out of an account, against the ledger's settlement account; `credit_account_id`
    /// must be zero.
    Debit = 4, "debit", Transfer;
    /// Money into an account, against the ledger's settlement account; `debit_account_id` must
    /// be zero.
    Credit = 5, "credit", Transfer;
    /// Reserve an amount (a pending transfer), optionally with a timeout.
    Hold = 6, "hold", Transfer;
    /// Post a hold in full or in part; the rest is released. `amount == u128::MAX` captures the
    /// full hold.
    Capture = 7, "capture", Transfer;
    /// Release (void) a hold.
    Release = 8, "release", Transfer;
    /// Block debits and/or credits of an account.
    Freeze = 9, "freeze", AccountChange;
    /// Unblock debits and/or credits of an account.
    Thaw = 10, "thaw", AccountChange;
    /// Close an account with zero balances for good.
    Close = 11, "close", AccountChange;
    /// Set or remove an account's debit limit (overdraft line) and/or credit limit.
    SetLimits = 12, "set_limits", AccountLimits;
    /// Move (part of) a posted transfer back between the same accounts: a refund, chargeback or
    /// correction; `pending_id` names the original, `code` the reason.
    Reverse = 13, "reverse", Transfer;
    /// Set which transfer codes may debit and credit an account, and which may take it past its
    /// debit limit (a chargeback): replaces the account's channel policy.
    SetChannels = 14, "set_channels", ChannelPolicy;
    /// Set or remove one velocity rule of an account (a count and/or amount bound per window).
    SetVelocity = 15, "set_velocity", VelocityRule;
    /// Make a standing order: a fixed amount every period, run by the engine on its clock.
    CreateStandingOrder = 16, "create_standing_order", StandingOrder;
    /// Make a trigger: a payment when an account's balance falls below a threshold or shows a debt.
    CreateTrigger = 17, "create_trigger", Trigger;
    /// Pause a standing order or trigger.
    PauseOrder = 18, "pause_order", OrderChange;
    /// Resume a paused standing order or trigger (periods missed while paused are skipped).
    ResumeOrder = 19, "resume_order", OrderChange;
    /// Cancel a standing order or trigger for good.
    CancelOrder = 20, "cancel_order", OrderChange;
    /// Change the amount of a standing order or fixed trigger, from its next run.
    AmendOrder = 21, "amend_order", OrderChange;
    /// Make a quote: a rate between two ledgers, guaranteed for a time, on the desk's accounts.
    CreateQuote = 22, "create_quote", Quote;
    /// Exchange at a quote: both legs posted atomically (customer to desk in one ledger, desk
    /// to customer in the other); with `order`, settle an order at the money the bank booked.
    Exchange = 23, "exchange", Exchange;
    /// Accept a quote for an amount: a hold on the desk's money in the bought ledger, for the
    /// quote's validity and grace, captured by the exchange that settles it.
    PlaceOrder = 24, "place_order", Exchange;
}

impl Command {
    /// Whether the command is linked to the next one.
    #[inline]
    pub fn is_linked(&self) -> bool {
        self.flags() & crate::types::FLAG_LINKED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_its_value_and_name() {
        for (i, kind) in CommandKind::ALL.iter().enumerate() {
            assert_eq!(*kind as u8, i as u8 + 1, "values are dense from 1");
            assert_eq!(CommandKind::from_u8(*kind as u8), Some(*kind));
            assert_eq!(CommandKind::from_name(kind.name()), Some(*kind));
            let command = Command::decode(*kind, &[0u8; RECORD_SIZE]);
            assert_eq!(command.kind(), *kind);
        }
        assert_eq!(CommandKind::from_u8(0), None);
        assert_eq!(CommandKind::from_u8(CommandKind::ALL.len() as u8 + 1), None);
    }

    #[test]
    fn the_protocol_document_lists_every_kind_and_no_other() {
        let doc = include_str!("../../docs/protocol.md");
        let table: Vec<&str> =
            doc.lines().skip_while(|l| !l.starts_with("| kind byte |")).skip(2).take_while(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), CommandKind::ALL.len(), "docs/protocol.md's kind table has one row per kind: {table:?}");
        for (kind, row) in CommandKind::ALL.iter().zip(&table) {
            let expected = format!("| {} | {} | {}", *kind as u8, kind.name(), kind.record_name());
            assert!(row.starts_with(&expected), "docs/protocol.md: {row:?} should start with {expected:?}");
        }
    }
}
