//! The rules a batch is applied under. Every log entry records the version it was written
//! with, so a replay applies each entry exactly as the server did, across an upgrade that
//! changed what a command does: old entries keep their old meaning, and the state (and every
//! logged digest) comes out the same.

/// A version of the engine's semantics. Its number is the batch body's format version
/// (`engine/src/batch.rs`); the body layout is the same in both.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rules {
    /// The first rules: a failed id could be sent again; `exists` never failed a chain, so a
    /// chain mixing existing and new members committed the new ones; a chain open at a request's
    /// end ran nothing; a release's amount over the hold's was `pending_transfer_has_different_amount`;
    /// a capture re-sent with `amount = u128::MAX` matched any earlier capture of the hold, and
    /// a re-sent capture or release with zero user data matched any.
    Original = 1,
    /// TigerBeetle's rules where they are safer: a transfer id's outcome is decided once
    /// (`id_already_failed`), a chain is either all new or all existing, an open chain's members
    /// run and keep their own codes, and re-sent captures and releases compare as TigerBeetle's do.
    DecidedOnce = 2,
    /// Recurring payments: transfer ids whose top 32 bits are all ones are reserved for the runs
    /// the engine makes (`id_reserved`), at most `DUE_RUNS_PER_BATCH_MAX` (1 024) queued runs
    /// run before a batch's commands, and triggers fire after the command or chain that moved
    /// their account, each firing taking the next timestamp.
    Scheduled = 3,
}

impl Rules {
    /// The rules this build applies to new batches.
    pub const CURRENT: Rules = Rules::Scheduled;

    /// The rules of a batch body's format version, if this build knows them.
    pub fn from_version(version: u16) -> Option<Rules> {
        match version {
            1 => Some(Rules::Original),
            2 => Some(Rules::DecidedOnce),
            3 => Some(Rules::Scheduled),
            _ => None,
        }
    }

    /// The batch body format version that records these rules.
    pub const fn version(self) -> u16 {
        self as u16
    }
}
