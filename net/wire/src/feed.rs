//! The change feed's wire forms (`docs/protocol.md`, "Change feed"): a subscription (where to
//! start and what to send) and an event (three 128-byte records: head, record, balances).

use bursar_engine::{Balances, FeedEvent, FeedEventType, ResultCode, RECORD_SIZE};

use crate::protocol::ProtocolError;

/// Ledgers a subscription can name at most (they fit its record).
pub const SUBSCRIBE_LEDGERS_MAX: usize = 24;
/// Accounts a subscription can name at most.
pub const SUBSCRIBE_ACCOUNTS_MAX: usize = 1024;
/// Bytes of one event on the wire: three records.
pub const EVENT_BYTES: usize = 3 * RECORD_SIZE;
/// Events in one reply frame at most (three records each).
pub const EVENTS_PER_FRAME_MAX: usize = crate::protocol::FRAME_RECORDS_MAX / 3;

/// Bit of the type mask that asks for progress events.
pub const PROGRESS_BIT: u32 = 1 << PROGRESS_TYPE;
/// The event type byte of a progress event: every event of the entries up to its position was
/// sent (those the filter let through); nothing else is in it.
pub const PROGRESS_TYPE: u8 = 5;

/// What a subscriber asks for: where to start, and which events.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Subscription {
    /// The log position (entry sequence number) to start at; 0: the next entry to become durable.
    pub from_seq: u64,
    /// Events of entry `from_seq` numbered below this are skipped (resuming inside an entry).
    pub from_index: u32,
    /// Event types wanted, one bit per type byte (`1 << type`); 0: every type.
    pub types: u32,
    /// Ledgers wanted (at most [`SUBSCRIBE_LEDGERS_MAX`]); empty: every ledger.
    pub ledgers: Vec<u32>,
    /// Accounts wanted, on either side (at most [`SUBSCRIBE_ACCOUNTS_MAX`]); empty: every account.
    pub accounts: Vec<u128>,
}

impl Subscription {
    /// Whether the filter lets `event` through (progress events are decided by the type mask alone).
    pub fn wants(&self, event: &FeedEvent) -> bool {
        self.wants_parts(event.kind, event.ledger, event.accounts)
    }

    /// [`Subscription::wants`] from an event's type, ledger and accounts.
    pub fn wants_parts(&self, kind: FeedEventType, ledger: u32, accounts: [u128; 2]) -> bool {
        (self.types == 0 || self.types & kind.bit() != 0)
            && (self.ledgers.is_empty() || self.ledgers.contains(&ledger))
            && (self.accounts.is_empty() || accounts.iter().any(|a| *a != 0 && self.accounts.binary_search(a).is_ok()))
    }

    /// Whether progress events are wanted.
    pub fn wants_progress(&self) -> bool {
        self.types == 0 || self.types & PROGRESS_BIT != 0
    }

    /// The request body: the subscription record, then 16 bytes per account; and its record count.
    pub fn encode(&self, body: &mut Vec<u8>) -> u32 {
        let mut record = [0u8; RECORD_SIZE];
        record[0..8].copy_from_slice(&self.from_seq.to_le_bytes());
        record[8..12].copy_from_slice(&self.from_index.to_le_bytes());
        record[12..16].copy_from_slice(&self.types.to_le_bytes());
        for (k, ledger) in self.ledgers.iter().take(SUBSCRIBE_LEDGERS_MAX).enumerate() {
            record[16 + 4 * k..20 + 4 * k].copy_from_slice(&ledger.to_le_bytes());
        }
        body.extend_from_slice(&record);
        self.accounts.iter().for_each(|a| body.extend_from_slice(&a.to_le_bytes()));
        1 + self.accounts.len() as u32
    }

    /// Reads a request body of `n` records; accounts come back sorted, without duplicates.
    pub fn decode(n: usize, body: &[u8]) -> Result<Subscription, ProtocolError> {
        if n == 0 || n - 1 > SUBSCRIBE_ACCOUNTS_MAX {
            return Err(if n == 0 { ProtocolError::LengthMismatch } else { ProtocolError::TooManyRecords });
        }
        if body.len() != RECORD_SIZE + 16 * (n - 1) {
            return Err(ProtocolError::LengthMismatch);
        }
        let (record, ids) = body.split_at(RECORD_SIZE);
        if record[112..].iter().any(|b| *b != 0) {
            return Err(ProtocolError::ReservedNotZero);
        }
        let u32_at = |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().expect("4 bytes"));
        let ledgers = (0..SUBSCRIBE_LEDGERS_MAX).map(|k| u32_at(16 + 4 * k)).filter(|l| *l != 0).collect();
        let mut accounts: Vec<u128> = ids.chunks_exact(16).map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes"))).collect();
        accounts.sort_unstable();
        accounts.dedup();
        Ok(Subscription {
            from_seq: u64::from_le_bytes(record[0..8].try_into().expect("8 bytes")),
            from_index: u32_at(8),
            types: u32_at(12),
            ledgers,
            accounts,
        })
    }
}

/// An event as a subscriber receives it: its log position and what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The log entry it comes from.
    pub seq: u64,
    /// What it says (for a progress event only `index` 0 and `kind` are meaningful, see
    /// [`Event::is_progress`]).
    pub event: FeedEvent,
    /// Whether this is a progress event: every event through entry `seq` was sent.
    pub progress: bool,
}

impl Event {
    /// Whether this is a progress event.
    pub fn is_progress(&self) -> bool {
        self.progress
    }
}

/// Appends one event's three records.
pub fn encode_event(seq: u64, e: &FeedEvent, out: &mut Vec<u8>) {
    let mut head = [0u8; RECORD_SIZE];
    head[0..8].copy_from_slice(&seq.to_le_bytes());
    head[8..12].copy_from_slice(&e.index.to_le_bytes());
    head[12] = e.kind as u8;
    head[13] = e.detail;
    head[16..20].copy_from_slice(&(e.result as u32).to_le_bytes());
    head[20..24].copy_from_slice(&e.ledger.to_le_bytes());
    head[24..32].copy_from_slice(&e.timestamp.to_le_bytes());
    head[32..48].copy_from_slice(&e.accounts[0].to_le_bytes());
    head[48..64].copy_from_slice(&e.accounts[1].to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&e.record);
    let mut balances = [0u8; RECORD_SIZE];
    for (side, b) in e.balances.iter().enumerate() {
        let at = 64 * side;
        for (k, v) in [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted].iter().enumerate() {
            balances[at + 16 * k..at + 16 * k + 16].copy_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&balances);
}

/// Appends a progress event for entry `seq`.
pub fn encode_progress(seq: u64, out: &mut Vec<u8>) {
    let mut head = [0u8; RECORD_SIZE];
    head[0..8].copy_from_slice(&seq.to_le_bytes());
    head[12] = PROGRESS_TYPE;
    out.extend_from_slice(&head);
    out.extend_from_slice(&[0u8; 2 * RECORD_SIZE]);
}

/// Reads one event's three records.
pub fn decode_event(bytes: &[u8; EVENT_BYTES]) -> Result<Event, ProtocolError> {
    let head = &bytes[..RECORD_SIZE];
    if head[14..16].iter().chain(&head[64..]).any(|b| *b != 0) {
        return Err(ProtocolError::ReservedNotZero);
    }
    let u128_at = |b: &[u8], at: usize| u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"));
    let seq = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
    let progress = head[12] == PROGRESS_TYPE;
    let kind = if progress { FeedEventType::Command } else { FeedEventType::from_u8(head[12]).ok_or(ProtocolError::ReservedNotZero)? };
    let code = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
    let result = ResultCode::from_u32(code).ok_or(ProtocolError::UnknownResultCode)?;
    let tail = &bytes[2 * RECORD_SIZE..];
    let side = |at: usize| Balances {
        debits_pending: u128_at(tail, at),
        debits_posted: u128_at(tail, at + 16),
        credits_pending: u128_at(tail, at + 32),
        credits_posted: u128_at(tail, at + 48),
    };
    let event = FeedEvent {
        index: u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")),
        kind,
        detail: head[13],
        result,
        timestamp: u64::from_le_bytes(head[24..32].try_into().expect("8 bytes")),
        record: bytes[RECORD_SIZE..2 * RECORD_SIZE].try_into().expect("a record"),
        ledger: u32::from_le_bytes(head[20..24].try_into().expect("4 bytes")),
        accounts: [u128_at(head, 32), u128_at(head, 48)],
        balances: [side(0), side(64)],
    };
    Ok(Event { seq, event, progress })
}

/// Reads a reply frame's body of events.
pub fn decode_events(record_count: usize, body: &[u8], out: &mut Vec<Event>) -> Result<(), ProtocolError> {
    if !record_count.is_multiple_of(3) || body.len() != record_count * RECORD_SIZE {
        return Err(ProtocolError::LengthMismatch);
    }
    for chunk in body.chunks_exact(EVENT_BYTES) {
        out.push(decode_event(chunk.try_into().expect("an event"))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscription and an event come back as they went; bad bodies are typed errors.
    #[test]
    fn subscriptions_and_events_round_trip() {
        let sub = Subscription { from_seq: 7, from_index: 3, types: 0b110, ledgers: vec![1, 2], accounts: vec![9, 4] };
        let mut body = Vec::new();
        let n = sub.encode(&mut body);
        let back = Subscription::decode(n as usize, &body).unwrap();
        assert_eq!(back, Subscription { accounts: vec![4, 9], ..sub.clone() });
        assert_eq!(Subscription::decode(n as usize, &body[..body.len() - 1]), Err(ProtocolError::LengthMismatch));
        assert_eq!(Subscription::decode(0, &[]), Err(ProtocolError::LengthMismatch));
        assert_eq!(Subscription::decode(SUBSCRIBE_ACCOUNTS_MAX + 2, &[]), Err(ProtocolError::TooManyRecords));
        let mut reserved = body.clone();
        reserved[120] = 1;
        assert_eq!(Subscription::decode(n as usize, &reserved), Err(ProtocolError::ReservedNotZero));

        let event = FeedEvent {
            index: 5,
            kind: FeedEventType::Transfer,
            detail: 0,
            result: ResultCode::Ok,
            timestamp: 99,
            record: [7; RECORD_SIZE],
            ledger: 1,
            accounts: [4, 9],
            balances: [Balances { debits_posted: 3, ..Default::default() }, Balances { credits_posted: 3, ..Default::default() }],
        };
        assert!(back.wants(&event));
        assert!(!Subscription { ledgers: vec![2], ..Default::default() }.wants(&event));
        assert!(!Subscription { types: FeedEventType::Command.bit(), ..Default::default() }.wants(&event));
        let mut bytes = Vec::new();
        encode_event(12, &event, &mut bytes);
        encode_progress(13, &mut bytes);
        let mut events = Vec::new();
        decode_events(6, &bytes, &mut events).unwrap();
        assert_eq!(events[0], Event { seq: 12, event, progress: false });
        assert!(events[1].is_progress() && events[1].seq == 13);
        assert_eq!(decode_events(4, &bytes[..4 * RECORD_SIZE], &mut events), Err(ProtocolError::LengthMismatch));
    }
}
