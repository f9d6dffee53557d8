//! The command set: what a batch carries, one 128-byte record per command plus its kind.

use crate::types::{Account, AccountChange, Ledger, Record, Transfer, RECORD_SIZE};

/// What a command does. The values are the wire and log encoding and are never renumbered;
/// new kinds are appended.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandKind {
    /// Register a ledger (currency, scale) and create its settlement account.
    CreateLedger = 1,
    /// Open an account.
    CreateAccount = 2,
    /// A two-sided transfer; TigerBeetle's flags (pending, post, void) are honoured.
    Transfer = 3,
    /// Money out of an account, against the ledger's settlement account.
    Debit = 4,
    /// Money into an account, against the ledger's settlement account.
    Credit = 5,
    /// Reserve an amount (a pending transfer), optionally with a timeout.
    Hold = 6,
    /// Post a hold in full or in part; the rest is released.
    Capture = 7,
    /// Release (void) a hold.
    Release = 8,
    /// Block debits and/or credits of an account.
    Freeze = 9,
    /// Unblock debits and/or credits of an account.
    Thaw = 10,
    /// Close an account with zero balances for good.
    Close = 11,
}

impl CommandKind {
    /// Every kind, in wire order.
    pub const ALL: [CommandKind; 11] = [
        CommandKind::CreateLedger,
        CommandKind::CreateAccount,
        CommandKind::Transfer,
        CommandKind::Debit,
        CommandKind::Credit,
        CommandKind::Hold,
        CommandKind::Capture,
        CommandKind::Release,
        CommandKind::Freeze,
        CommandKind::Thaw,
        CommandKind::Close,
    ];

    /// The kind for a wire value, if it names one.
    pub fn from_u8(value: u8) -> Option<CommandKind> {
        CommandKind::ALL.iter().copied().find(|k| *k as u8 == value)
    }
}

/// One command of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// See [`CommandKind::CreateLedger`].
    CreateLedger(Ledger),
    /// See [`CommandKind::CreateAccount`].
    CreateAccount(Account),
    /// See [`CommandKind::Transfer`].
    Transfer(Transfer),
    /// See [`CommandKind::Debit`]; `credit_account_id` must be zero.
    Debit(Transfer),
    /// See [`CommandKind::Credit`]; `debit_account_id` must be zero.
    Credit(Transfer),
    /// See [`CommandKind::Hold`].
    Hold(Transfer),
    /// See [`CommandKind::Capture`]; `amount == u128::MAX` captures the full hold.
    Capture(Transfer),
    /// See [`CommandKind::Release`].
    Release(Transfer),
    /// See [`CommandKind::Freeze`].
    Freeze(AccountChange),
    /// See [`CommandKind::Thaw`].
    Thaw(AccountChange),
    /// See [`CommandKind::Close`].
    Close(AccountChange),
}

impl Command {
    /// The command's kind.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::CreateLedger(_) => CommandKind::CreateLedger,
            Command::CreateAccount(_) => CommandKind::CreateAccount,
            Command::Transfer(_) => CommandKind::Transfer,
            Command::Debit(_) => CommandKind::Debit,
            Command::Credit(_) => CommandKind::Credit,
            Command::Hold(_) => CommandKind::Hold,
            Command::Capture(_) => CommandKind::Capture,
            Command::Release(_) => CommandKind::Release,
            Command::Freeze(_) => CommandKind::Freeze,
            Command::Thaw(_) => CommandKind::Thaw,
            Command::Close(_) => CommandKind::Close,
        }
    }

    /// The raw flags of the command's record.
    pub fn flags(&self) -> u16 {
        match self {
            Command::CreateLedger(l) => l.flags,
            Command::CreateAccount(a) => a.flags,
            Command::Transfer(t)
            | Command::Debit(t)
            | Command::Credit(t)
            | Command::Hold(t)
            | Command::Capture(t)
            | Command::Release(t) => t.flags,
            Command::Freeze(c) | Command::Thaw(c) | Command::Close(c) => c.flags,
        }
    }

    /// Whether the command is linked to the next one.
    pub fn is_linked(&self) -> bool {
        self.flags() & crate::types::FLAG_LINKED != 0
    }

    /// Writes the command's record into `out`.
    pub fn encode_record(&self, out: &mut [u8; RECORD_SIZE]) {
        match self {
            Command::CreateLedger(l) => l.encode(out),
            Command::CreateAccount(a) => a.encode(out),
            Command::Transfer(t)
            | Command::Debit(t)
            | Command::Credit(t)
            | Command::Hold(t)
            | Command::Capture(t)
            | Command::Release(t) => t.encode(out),
            Command::Freeze(c) | Command::Thaw(c) | Command::Close(c) => c.encode(out),
        }
    }

    /// Builds a command from its kind and record bytes. Every byte pattern decodes;
    /// whether the command is valid is for the engine to say with a result code.
    pub fn decode(kind: CommandKind, bytes: &[u8; RECORD_SIZE]) -> Command {
        match kind {
            CommandKind::CreateLedger => Command::CreateLedger(Ledger::decode(bytes)),
            CommandKind::CreateAccount => Command::CreateAccount(Account::decode(bytes)),
            CommandKind::Transfer => Command::Transfer(Transfer::decode(bytes)),
            CommandKind::Debit => Command::Debit(Transfer::decode(bytes)),
            CommandKind::Credit => Command::Credit(Transfer::decode(bytes)),
            CommandKind::Hold => Command::Hold(Transfer::decode(bytes)),
            CommandKind::Capture => Command::Capture(Transfer::decode(bytes)),
            CommandKind::Release => Command::Release(Transfer::decode(bytes)),
            CommandKind::Freeze => Command::Freeze(AccountChange::decode(bytes)),
            CommandKind::Thaw => Command::Thaw(AccountChange::decode(bytes)),
            CommandKind::Close => Command::Close(AccountChange::decode(bytes)),
        }
    }
}
