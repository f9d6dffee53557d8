//! Applying the log: one entry's body into an engine, as recovery, the audit replay and the
//! statement builder all do (a batch decoded and executed at its logged `now` with its request
//! ends; a checkpoint checked against the replayed state; a change of limits enforced).

use crate::batch::{self, Body, Checkpoint};
use crate::{Command, Engine, ResultCode, BATCH_COMMANDS_MAX};

/// Reusable buffers for applying entries one after another.
#[derive(Debug, Default)]
pub struct Replayer {
    commands: Vec<Command>,
    results: Vec<ResultCode>,
    request_ends: Vec<u32>,
}

impl Replayer {
    /// Buffers sized for a full batch.
    pub fn new() -> Replayer {
        Replayer {
            commands: Vec::with_capacity(BATCH_COMMANDS_MAX),
            results: Vec::with_capacity(BATCH_COMMANDS_MAX),
            request_ends: Vec::new(),
        }
    }

    /// Applies the body of log entry `seq` to `engine`; the message names the entry. After a
    /// batch, [`Replayer::commands`] and [`Replayer::results`] hold what it ran; after a
    /// checkpoint or a change of limits they are empty.
    pub fn apply(&mut self, engine: &mut Engine, seq: u64, body: &[u8]) -> Result<Body, String> {
        self.commands.clear();
        self.request_ends.clear();
        self.results.clear();
        let body = batch::decode_body(body, &mut self.commands, &mut self.request_ends).map_err(|e| format!("entry {seq}: {e}"))?;
        match &body {
            Body::Batch { now, rules } => {
                // An engine restored from a slim snapshot reads what the batch names back first.
                engine.prefetch_cold(&self.commands).map_err(|e| format!("entry {seq}: history: {e}"))?;
                engine
                    .execute_under(*rules, *now, &self.commands, &self.request_ends, &mut self.results)
                    .map_err(|e| format!("entry {seq}: {e}"))?;
            }
            Body::Checkpoint(checkpoint) => check_checkpoint(engine, seq, checkpoint)?,
            Body::Limits(limits) => engine.change_limits(*limits),
        }
        Ok(body)
    }

    /// The commands of the last batch applied.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// Their results.
    pub fn results(&self) -> &[ResultCode] {
        &self.results
    }
}

/// Checks a logged checkpoint against the replayed state: its clock and its state digest.
pub fn check_checkpoint(engine: &mut Engine, seq: u64, checkpoint: &Checkpoint) -> Result<(), String> {
    if engine.timestamp() != checkpoint.clock {
        return Err(format!("entry {seq}: checkpoint clock {} differs from the replayed clock {}", checkpoint.clock, engine.timestamp()));
    }
    let digest = engine.state_digest();
    if digest != checkpoint.digest {
        return Err(format!(
            "entry {seq}: state digest differs from the one logged (logged {}, replayed {})",
            hex(&checkpoint.digest),
            hex(&digest)
        ));
    }
    Ok(())
}

/// Lower-case hex of bytes (digests and chain hashes in messages and reports).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
