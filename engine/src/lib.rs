//! Bursar's pure state machine: ledgers, accounts, transfers, holds and linked chains, applied in one total order.
//!
//! The engine reads no clock, file, socket, thread or random source: the caller passes `now`
//! (nanoseconds) and a batch of commands, and gets one [`ResultCode`] per command. The same
//! inputs always give the same state, which is what makes WAL replay and simulation exact.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod chunked;
pub mod command;
pub mod id_hash;
pub mod id_index;
pub(crate) mod index_table;
pub mod limits;
pub mod query;
pub mod replay;
pub mod result;
pub mod rules;
pub mod snapshot;
pub mod state;
pub mod statement;
pub mod types;

pub use chunked::{Chunked, CHUNK_BITS};
pub use command::{Command, CommandKind};
pub use limits::{Limits, BATCH_COMMANDS_MAX};
pub use query::{filter_flags, AccountBalance, AccountFilter, CodeTotals, LedgerTotals};
pub use result::ResultCode;
pub use rules::Rules;
pub use snapshot::{SnapshotError, SnapshotView};
pub use state::{
    convert, decode_balance_entries, decode_chunk, decode_expired, decode_expired_image, decode_failed, due_of, encode_balance_chunk,
    encode_expired_chunk, encode_expired_image, encode_failed_chunk, expired_image_bytes, expired_image_of, image_bytes, is_reserved_id,
    lineage_bytes, month_length, quote_expires_at, run_id, transfers_digest_sum, AccountPolicy, BalanceEntry, BalanceLimits, Balances,
    BatchError, BatchInfo, ChunkImage, ChunkLineage, Engine, ExpiredHold, FailedTransfer, FeedEvent, FeedEventType, FeedNote, History,
    HistoryUnreadable, Hold, HoldOf, HoldStatus, LimitChange, Lineage, Order, OrderSpec, OrderStatus, QuoteUsage, RecordHistory,
    RecordReader, Resolution, Retry, RuleUsage, RunEntry, RunEvent, StoredIdIndex, BALANCE_ENTRY_SIZE, EXPIRED_SIZE, FAILED_SIZE,
    LINEAGE_REVERSALS_MAX, ORDER_STATE_SIZE, QUOTE_USAGE_SIZE, RUN_ENTRY_SIZE, RUN_ID_PREFIX,
};
pub use types::{
    account_flags, account_state, catch_up, change_flags, channel_flags, exchange_flags, ledger_flags, limit_flags, order_flags,
    order_unit, quote_flags, transfer_flags, trigger_kind, velocity_flags, velocity_window, Account, AccountChange, AccountLimits,
    ChannelPolicy, Exchange, Ledger, OrderChange, Quote, Record, StandingOrder, Transfer, Trigger, VelocityRule, RECORD_SIZE,
};

#[cfg(test)]
mod test_support;
