//! The durable state machine the sequencer thread owns: the engine behind the write-ahead log.
//!
//! `submit` appends the batch (its exact engine input) to the log, waits for the sync, and only
//! then applies it and returns the results: no reply before the batch is on disk, and replay of
//! the log applies exactly the batches that were acknowledged (plus possibly ones whose sync
//! finished just before a crash, which no client saw, whose retries then report `exists`).
//! Recovery is the newest valid snapshot, then every later batch replayed.

use std::cell::RefCell;

use bursar_engine::{batch, Command, Engine, Limits, ResultCode, BATCH_COMMANDS_MAX};
use bursar_wal::{RecoveryReport, Storage, Wal, WalConfig, WalError};

/// Why the node cannot go on or could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// More than `BATCH_COMMANDS_MAX` commands; nothing was logged or applied.
    BatchTooLarge {
        /// Commands in the batch.
        len: usize,
    },
    /// The log failed; nothing more is accepted until a restart recovers.
    Log(WalError),
    /// Recovery refused the log or a snapshot.
    Open(bursar_wal::OpenError),
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NodeError::BatchTooLarge { len } => write!(f, "batch of {len} commands exceeds {BATCH_COMMANDS_MAX}"),
            NodeError::Log(e) => write!(f, "{e}"),
            NodeError::Open(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<WalError> for NodeError {
    fn from(e: WalError) -> Self {
        NodeError::Log(e)
    }
}

/// Engine + log. Single-threaded by design: the sequencer thread owns it.
#[derive(Debug)]
pub struct Node<S: Storage> {
    engine: Engine,
    wal: Wal<S>,
}

impl<S: Storage> Node<S> {
    /// Recovers (or creates) the node on `storage`: newest valid snapshot, then every later
    /// batch replayed through the engine.
    pub fn open(storage: S, config: WalConfig, limits: Limits) -> Result<(Node<S>, RecoveryReport), NodeError> {
        // The snapshot handler runs first (at most once), then the entry handler for each batch.
        let engine = RefCell::new(Engine::new(limits));
        let mut commands = Vec::with_capacity(BATCH_COMMANDS_MAX);
        let mut results = Vec::with_capacity(BATCH_COMMANDS_MAX);
        let (wal, report) = bursar_wal::open(
            storage,
            config,
            &mut |_, payload| {
                *engine.borrow_mut() = Engine::restore(payload).map_err(|e| format!("snapshot: {e}"))?;
                Ok(())
            },
            &mut |entry| {
                commands.clear();
                let now = batch::decode(entry.body, &mut commands).map_err(|e| format!("entry {}: {e}", entry.seq))?;
                results.clear();
                engine.borrow_mut().execute(now, &commands, &mut results).map_err(|e| format!("entry {}: {e}", entry.seq))?;
                Ok(())
            },
        )
        .map_err(NodeError::Open)?;
        Ok((Node { engine: engine.into_inner(), wal }, report))
    }

    /// Logs the batch, waits until it is durable, applies it, and returns one result per
    /// command. After a log failure every later call fails too (restart to recover).
    pub fn submit(&mut self, now: u64, commands: &[Command], results: &mut Vec<ResultCode>) -> Result<u64, NodeError> {
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(NodeError::BatchTooLarge { len: commands.len() });
        }
        let seq = self.wal.append_with(now, |buffer| batch::encode(now, commands, buffer))?;
        self.wal.sync()?;
        self.engine.execute(now, commands, results).expect("the batch limit was checked before logging");
        Ok(seq)
    }

    /// Writes a snapshot of the current state, which covers every durable batch. Returns its sequence number.
    pub fn snapshot(&mut self) -> Result<u64, NodeError> {
        let seq = self.wal.synced_seq();
        if seq == 0 {
            return Ok(0);
        }
        let hash = self.wal.last_hash();
        debug_assert_eq!(self.wal.next_seq(), seq + 1, "submit syncs every batch it logs");
        self.wal.write_snapshot(seq, hash, &self.engine.snapshot_bytes())?;
        Ok(seq)
    }

    /// The engine, for queries.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The log.
    pub fn wal(&self) -> &Wal<S> {
        &self.wal
    }
}
