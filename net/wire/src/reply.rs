//! Replies, typed: what the sequencer answers ([`Reply`]), encoded into a frame only by the
//! transport ([`Reply::encode`]), and the client's decoders of each reply body.

use bursar_engine::{
    quote_expires_at, transfer_flags as tf, Account, AccountBalance, AccountPolicy, Balances, ChannelPolicy, HoldOf, HoldStatus, Ledger,
    LedgerTotals, Lineage, Order, Quote, QuoteUsage, Record, ResultCode, RuleUsage, RunEntry, Transfer, VelocityRule, ORDER_STATE_SIZE,
    RECORD_SIZE, RUN_ENTRY_SIZE,
};

use crate::metrics::Metrics;
use crate::protocol::{self, LimitsRecord, Operation, Outcome, ProtocolError, Status};

/// The answer to one request, before it is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// One result code per submitted command.
    Submit(Vec<ResultCode>),
    /// Accounts by id, a zeroed record where not found.
    Accounts(Vec<Account>),
    /// Transfers by id, a zeroed record where not found.
    Transfers(Vec<Transfer>),
    /// Transfers of one account that match a filter.
    AccountTransfers(Vec<Transfer>),
    /// The pending holds that expire soonest, in order of expiry.
    ExpiringHolds(Vec<Transfer>),
    /// Balance history entries of one account.
    Balances(Vec<AccountBalance>),
    /// Per ledger asked, its totals (None: unknown).
    LedgerTotals(Vec<Option<LedgerTotals>>),
    /// Where the server stands.
    Status(Status),
    /// The server's counters and sync latencies.
    Metrics(Box<Metrics>),
    /// What became of each transfer id asked about.
    Outcomes(Vec<Outcome>),
    /// The limits in force on each account asked about (`None`: not found).
    Limits(Vec<Option<LimitsRecord>>),
    /// Where a transfer came from and what became of it (`None`: no transfer stored with the id).
    Lineage(Box<Option<Lineage>>),
    /// An account's channel policy and velocity rules (`None`: no such account).
    Policy(Box<Option<AccountPolicy>>),
    /// Orders by id, with their run histories (`None`: not found).
    Orders(Vec<Option<Order>>),
    /// The live orders of one account, without their histories.
    AccountOrders(Vec<Order>),
    /// Quotes by id, with their usage (`None`: not found).
    Quotes(Vec<Option<(Quote, QuoteUsage)>>),
    /// The request failed as a whole (`shutting_down` after a log failure, say).
    Error(ProtocolError),
}

impl Reply {
    /// Appends the reply frame for request `request_id` of `operation` (the operation byte an
    /// error frame carries; the other replies name their own).
    pub fn encode(&self, request_id: u64, operation: u8, out: &mut Vec<u8>) {
        match self {
            Reply::Submit(results) => protocol::encode_submit_reply(request_id, results, out),
            Reply::Accounts(found) => protocol::encode_records_reply(request_id, Operation::LookupAccounts, found, out),
            Reply::Transfers(found) => protocol::encode_records_reply(request_id, Operation::LookupTransfers, found, out),
            Reply::AccountTransfers(found) => protocol::encode_records_reply(request_id, Operation::GetAccountTransfers, found, out),
            Reply::ExpiringHolds(found) => protocol::encode_records_reply(request_id, Operation::ExpiringHolds, found, out),
            Reply::Balances(found) => protocol::encode_balances_reply(request_id, found, out),
            Reply::LedgerTotals(found) => protocol::encode_ledger_totals_reply(request_id, found, out),
            Reply::Status(status) => protocol::encode_status_reply(request_id, status, out),
            Reply::Metrics(metrics) => protocol::encode_metrics_reply(request_id, metrics, out),
            Reply::Outcomes(outcomes) => {
                let body: Vec<u8> = outcomes.iter().flat_map(|o| o.to_bytes()).collect();
                let count = outcomes.len() as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupOutcomes as u8, request_id, count, &body, out)
            }
            Reply::Limits(found) => {
                let body: Vec<u8> = found.iter().flat_map(|l| l.map_or([0; RECORD_SIZE], |l| l.to_bytes())).collect();
                let count = found.len() as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupLimits as u8, request_id, count, &body, out)
            }
            Reply::Lineage(lineage) => {
                let body = encode_lineage(lineage);
                let count = (body.len() / RECORD_SIZE) as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupLineage as u8, request_id, count, &body, out)
            }
            Reply::Policy(policy) => {
                let body = encode_policy(policy);
                let count = (body.len() / RECORD_SIZE) as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupPolicy as u8, request_id, count, &body, out)
            }
            Reply::Orders(orders) => {
                let mut body = Vec::new();
                for order in orders {
                    match order {
                        Some(order) => encode_order(order, true, &mut body),
                        None => body.extend_from_slice(&[0; RECORD_SIZE]),
                    }
                }
                let count = (body.len() / RECORD_SIZE) as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupOrders as u8, request_id, count, &body, out)
            }
            Reply::AccountOrders(orders) => {
                let mut body = Vec::new();
                orders.iter().for_each(|order| encode_order(order, false, &mut body));
                let count = (body.len() / RECORD_SIZE) as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupAccountOrders as u8, request_id, count, &body, out)
            }
            Reply::Quotes(quotes) => {
                let mut body = Vec::with_capacity(2 * RECORD_SIZE * quotes.len());
                for found in quotes {
                    match found {
                        Some((quote, usage)) => {
                            body.extend_from_slice(&quote.to_bytes());
                            body.extend_from_slice(&usage_record(quote, usage));
                        }
                        None => body.extend_from_slice(&[0; 2 * RECORD_SIZE]),
                    }
                }
                let count = (body.len() / RECORD_SIZE) as u32;
                protocol::encode_frame(protocol::FrameType::Reply, Operation::LookupQuotes as u8, request_id, count, &body, out)
            }
            Reply::Error(error) => protocol::encode_error(request_id, operation, *error, out),
        }
    }
}

/// A quote's usage record: paid u128 @0, uses u32 @16, 4 zero bytes, expires_at u64 @24, 96 zero bytes.
fn usage_record(quote: &Quote, usage: &QuoteUsage) -> [u8; RECORD_SIZE] {
    let mut out = [0u8; RECORD_SIZE];
    out[..16].copy_from_slice(&usage.paid.to_le_bytes());
    out[16..20].copy_from_slice(&usage.uses.to_le_bytes());
    out[24..32].copy_from_slice(&quote_expires_at(quote).to_le_bytes());
    out
}

/// A lookup-quotes reply: per id asked, the quote and its usage (`None` where both records are
/// all zero).
pub fn decode_quotes(body: &[u8], asked: usize) -> Result<Vec<Option<(Quote, QuoteUsage)>>, ProtocolError> {
    if body.len() != 2 * RECORD_SIZE * asked {
        return Err(ProtocolError::LengthMismatch);
    }
    let pairs = body.chunks_exact(2 * RECORD_SIZE);
    pairs
        .map(|pair| {
            let (record, usage) = pair.split_at(RECORD_SIZE);
            if pair.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let quote = Quote::decode(record.try_into().expect("a record"));
            let zero = usage[20..24].iter().chain(&usage[32..]).all(|b| *b == 0);
            if !zero || quote.id == 0 {
                return Err(ProtocolError::ReservedNotZero);
            }
            let paid = u128::from_le_bytes(usage[..16].try_into().expect("16 bytes"));
            let uses = u32::from_le_bytes(usage[16..20].try_into().expect("4 bytes"));
            Ok(Some((quote, QuoteUsage { uses, paid })))
        })
        .collect()
}

/// An order's records: its record as made, its state (the history count zero without the
/// history), then, with the history, one record per entry (the entry's 48 bytes, zero-padded).
fn encode_order(order: &Order, history: bool, body: &mut Vec<u8>) {
    body.extend_from_slice(&order.spec.to_bytes());
    let mut state = order.state_bytes();
    if !history {
        state[112..116].fill(0);
    }
    body.extend_from_slice(&state);
    body.resize(body.len() + RECORD_SIZE - ORDER_STATE_SIZE, 0);
    if history {
        for entry in &order.history {
            let mut record = [0u8; RECORD_SIZE];
            record[..RUN_ENTRY_SIZE].copy_from_slice(&entry.to_bytes(0));
            body.extend_from_slice(&record);
        }
    }
}

/// Reads one order from `records` (after its record, which the caller found not all zero).
fn decode_order<'a>(
    spec: &[u8; RECORD_SIZE],
    records: &mut impl Iterator<Item = &'a [u8; RECORD_SIZE]>,
    history: bool,
) -> Result<Order, ProtocolError> {
    let state: &[u8; ORDER_STATE_SIZE] =
        records.next().ok_or(ProtocolError::LengthMismatch)?[..ORDER_STATE_SIZE].try_into().expect("a state");
    let count = if history { u32::from_le_bytes(state[112..116].try_into().expect("4 bytes")) as usize } else { 0 };
    let mut entries = std::collections::VecDeque::with_capacity(count.min(16));
    for _ in 0..count {
        let record = records.next().ok_or(ProtocolError::LengthMismatch)?;
        let bytes: &[u8; RUN_ENTRY_SIZE] = record[..RUN_ENTRY_SIZE].try_into().expect("an entry");
        let (_, entry): (u32, RunEntry) = RunEntry::from_bytes(bytes).ok_or(ProtocolError::ReservedNotZero)?;
        entries.push_back(entry);
    }
    Order::from_parts(spec, state, entries).ok_or(ProtocolError::ReservedNotZero)
}

/// A lookup-orders reply for `asked` ids: `None` where not found.
pub fn decode_orders(body: &[u8], asked: usize) -> Result<Vec<Option<Order>>, ProtocolError> {
    let mut out = Vec::with_capacity(asked.min(body.len() / RECORD_SIZE));
    let mut it = records(body);
    while let Some(spec) = it.next() {
        out.push(if spec.iter().all(|b| *b == 0) { None } else { Some(decode_order(spec, &mut it, true)?) });
    }
    // Asked for none: every ledger the reply holds (see `Request::LedgerTotals`).
    if asked != 0 && out.len() != asked {
        return Err(ProtocolError::LengthMismatch);
    }
    Ok(out)
}

/// A lookup-account-orders reply.
pub fn decode_account_orders(body: &[u8]) -> Result<Vec<Order>, ProtocolError> {
    let mut out = Vec::new();
    let mut it = records(body);
    while let Some(spec) = it.next() {
        out.push(decode_order(spec, &mut it, false)?);
    }
    Ok(out)
}

/// The policy reply body: the channel policy record (all zero for an unknown account), then per
/// velocity rule its record and a usage record (count u64 @0, 8 zero bytes, amount u128 @16,
/// window_start u64 @32, window_end u64 @40, 80 zero bytes).
fn encode_policy(policy: &Option<AccountPolicy>) -> Vec<u8> {
    let Some(p) = policy else { return vec![0; RECORD_SIZE] };
    let mut body = p.channels.to_bytes().to_vec();
    for u in &p.rules {
        body.extend_from_slice(&u.rule.to_bytes());
        let mut usage = [0u8; RECORD_SIZE];
        usage[0..8].copy_from_slice(&u.count.to_le_bytes());
        usage[16..32].copy_from_slice(&u.amount.to_le_bytes());
        usage[32..40].copy_from_slice(&u.window_start.to_le_bytes());
        usage[40..48].copy_from_slice(&u.window_end.to_le_bytes());
        body.extend_from_slice(&usage);
    }
    body
}

/// A lookup-policy reply: `None` for an unknown account.
pub fn decode_policy(body: &[u8]) -> Result<Option<AccountPolicy>, ProtocolError> {
    if body.len() < RECORD_SIZE || (body.len() / RECORD_SIZE).is_multiple_of(2) || !body.len().is_multiple_of(RECORD_SIZE) {
        return Err(ProtocolError::LengthMismatch);
    }
    let mut it = records(body);
    let channels = ChannelPolicy::decode(it.next().expect("length checked"));
    if channels.account_id == 0 {
        return Ok(None);
    }
    let mut rules = Vec::new();
    while let (Some(rule), Some(usage)) = (it.next(), it.next()) {
        if usage[8..16].iter().chain(&usage[48..]).any(|b| *b != 0) {
            return Err(ProtocolError::ReservedNotZero);
        }
        let u64_at = |at: usize| u64::from_le_bytes(usage[at..at + 8].try_into().expect("8 bytes"));
        rules.push(RuleUsage {
            rule: VelocityRule::decode(rule),
            count: u64_at(0),
            amount: u128::from_le_bytes(usage[16..32].try_into().expect("16 bytes")),
            window_start: u64_at(32),
            window_end: u64_at(40),
        });
    }
    Ok(Some(AccountPolicy { channels, rules }))
}

/// Lineage head flags: which records follow the transfer itself.
mod lineage_flags {
    pub const FOUND: u16 = 1 << 0;
    pub const HOLD: u16 = 1 << 1;
    pub const RESOLUTION: u16 = 1 << 2;
    pub const REVERSES: u16 = 1 << 3;
    pub const ALL: u16 = FOUND | HOLD | RESOLUTION | REVERSES;
}

/// The lineage reply body: the head record (id u128 @0, reversed u128 @16, reversible u128 @32,
/// hold expires_at u64 @48, hold resolved_at u64 @56, reversals_total u32 @64, reversals listed
/// u32 @68, flags u16 @72, hold status u8 @74, 53 zero bytes), then the transfer, its hold,
/// resolution and original where the flags say, then the reversals listed, oldest first.
fn encode_lineage(lineage: &Option<Lineage>) -> Vec<u8> {
    let mut head = [0u8; RECORD_SIZE];
    let Some(l) = lineage else { return head.to_vec() };
    let mut flags = lineage_flags::FOUND;
    let mut follow = vec![l.transfer];
    if let Some(h) = &l.hold {
        flags |= lineage_flags::HOLD;
        follow.push(h.transfer);
        head[48..56].copy_from_slice(&h.expires_at.to_le_bytes());
        head[56..64].copy_from_slice(&h.resolved_at.to_le_bytes());
        head[74] = h.status as u8;
    }
    for (present, flag) in [(&l.resolution, lineage_flags::RESOLUTION), (&l.reverses, lineage_flags::REVERSES)] {
        if let Some(t) = present {
            flags |= flag;
            follow.push(*t);
        }
    }
    follow.extend_from_slice(&l.reversals);
    head[0..16].copy_from_slice(&l.transfer.id.to_le_bytes());
    head[16..32].copy_from_slice(&l.reversed.to_le_bytes());
    head[32..48].copy_from_slice(&l.reversible.to_le_bytes());
    head[64..68].copy_from_slice(&l.reversals_total.to_le_bytes());
    head[68..72].copy_from_slice(&(l.reversals.len() as u32).to_le_bytes());
    head[72..74].copy_from_slice(&flags.to_le_bytes());
    let mut body = head.to_vec();
    follow.iter().for_each(|t| body.extend_from_slice(&t.to_bytes()));
    body
}

/// A lookup-lineage reply: `None` when no transfer is stored with the id.
pub fn decode_lineage(body: &[u8]) -> Result<Option<Lineage>, ProtocolError> {
    let mut it = records(body);
    let head = it.next().ok_or(ProtocolError::LengthMismatch)?;
    let u128_at = |at: usize| u128::from_le_bytes(head[at..at + 16].try_into().expect("16 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let flags = u16::from_le_bytes([head[72], head[73]]);
    if flags & !lineage_flags::ALL != 0 || head[75..].iter().any(|b| *b != 0) {
        return Err(ProtocolError::ReservedNotZero);
    }
    if flags & lineage_flags::FOUND == 0 {
        return if body.len() == RECORD_SIZE && head.iter().all(|b| *b == 0) { Ok(None) } else { Err(ProtocolError::ReservedNotZero) };
    }
    let listed = u32_at(68) as usize;
    let has = |flag: u16| usize::from(flags & flag != 0);
    let follow = 1 + has(lineage_flags::HOLD) + has(lineage_flags::RESOLUTION) + has(lineage_flags::REVERSES) + listed;
    if body.len() != RECORD_SIZE * (1 + follow) {
        return Err(ProtocolError::LengthMismatch);
    }
    let mut next = || Transfer::decode(it.next().expect("length checked"));
    let transfer = next();
    let status = HoldStatus::from_u8(head[74]).ok_or(ProtocolError::ReservedNotZero)?;
    let hold =
        (flags & lineage_flags::HOLD != 0).then(|| HoldOf { transfer: next(), status, expires_at: u64_at(48), resolved_at: u64_at(56) });
    let resolution = (flags & lineage_flags::RESOLUTION != 0).then(&mut next);
    let reverses = (flags & lineage_flags::REVERSES != 0).then(&mut next);
    let reversals = (0..listed).map(|_| next()).collect();
    debug_assert!(reverses.is_none_or(|_| transfer.flags & tf::REVERSE != 0));
    Ok(Some(Lineage {
        transfer,
        hold,
        resolution,
        reverses,
        reversals,
        reversals_total: u32_at(64),
        reversed: u128_at(16),
        reversible: u128_at(32),
    }))
}

/// The 128-byte records of a reply body (a trailing partial record is not one).
pub fn records(body: &[u8]) -> impl Iterator<Item = &[u8; RECORD_SIZE]> {
    body.chunks_exact(RECORD_SIZE).map(|c| c.try_into().expect("exact chunks"))
}

/// A lookup-outcomes reply: one outcome per id asked.
pub fn decode_outcomes(body: &[u8], asked: usize) -> Result<Vec<Outcome>, ProtocolError> {
    if body.len() != asked * RECORD_SIZE {
        return Err(ProtocolError::LengthMismatch);
    }
    records(body).map(Outcome::from_bytes).collect()
}

/// A lookup-limits reply: one entry per account asked, `None` where not found.
pub fn decode_limits(body: &[u8], asked: usize) -> Result<Vec<Option<LimitsRecord>>, ProtocolError> {
    if body.len() != asked * RECORD_SIZE {
        return Err(ProtocolError::LengthMismatch);
    }
    records(body).map(LimitsRecord::from_bytes).collect()
}

/// A lookup-accounts reply: `None` where not found.
pub fn decode_accounts(body: &[u8]) -> Vec<Option<Account>> {
    records(body).map(Account::decode).map(|a| (a.id != 0).then_some(a)).collect()
}

/// A lookup-transfers reply: `None` where not found.
pub fn decode_transfers(body: &[u8]) -> Vec<Option<Transfer>> {
    records(body).map(Transfer::decode).map(|t| (t.id != 0).then_some(t)).collect()
}

/// A get-account-transfers reply.
pub fn decode_account_transfers(body: &[u8]) -> Vec<Transfer> {
    records(body).map(Transfer::decode).collect()
}

/// A get-account-balances reply.
pub fn decode_balances(body: &[u8]) -> Vec<AccountBalance> {
    records(body)
        .map(|r| AccountBalance { timestamp: u64::from_le_bytes(r[0..8].try_into().expect("8 bytes")), balances: balances_at(r) })
        .collect()
}

/// A status reply.
pub fn decode_status(body: &[u8]) -> Result<Status, ProtocolError> {
    let record = records(body).next().ok_or(ProtocolError::LengthMismatch)?;
    Status::from_bytes(record)
}

/// A metrics reply.
pub fn decode_metrics(body: &[u8]) -> Result<Metrics, ProtocolError> {
    Metrics::from_bytes(body).ok_or(ProtocolError::LengthMismatch)
}

/// One ledger's live view, as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerView {
    /// The ledger record (currency, scale, settlement account).
    pub ledger: Ledger,
    /// Accounts on the ledger.
    pub accounts: u32,
    /// Sums over all its accounts.
    pub totals: Balances,
    /// The same per account code: (code, accounts, sums).
    pub by_code: Vec<(u16, u32, Balances)>,
}

impl LedgerView {
    /// The trial balance.
    pub fn is_balanced(&self) -> bool {
        self.totals.debits_posted == self.totals.credits_posted && self.totals.debits_pending == self.totals.credits_pending
    }
}

/// A ledger-totals reply for `asked` ledgers: `None` for an unknown ledger.
pub fn decode_ledger_totals(body: &[u8], asked: usize) -> Result<Vec<Option<LedgerView>>, ProtocolError> {
    let mut out = Vec::with_capacity(asked);
    let mut rows = records(body);
    while let Some(record) = rows.next() {
        let ledger = Ledger::decode(record);
        if ledger.id == 0 {
            out.push(None);
            continue;
        }
        let (_, _, accounts, following, totals) = decode_totals_row(rows.next().ok_or(ProtocolError::LengthMismatch)?);
        // Capacity bounded by the rows the body holds, whatever the count claims.
        let mut view =
            LedgerView { ledger, accounts, totals, by_code: Vec::with_capacity((following as usize).min(body.len() / RECORD_SIZE)) };
        for _ in 0..following {
            let (_, code, accounts, _, totals) = decode_totals_row(rows.next().ok_or(ProtocolError::LengthMismatch)?);
            view.by_code.push((code, accounts, totals));
        }
        out.push(Some(view));
    }
    // Asked for none: every ledger the reply holds (see `Request::LedgerTotals`).
    if asked != 0 && out.len() != asked {
        return Err(ProtocolError::LengthMismatch);
    }
    Ok(out)
}

/// The four balances at bytes 16..80 of a row.
fn balances_at(r: &[u8; RECORD_SIZE]) -> Balances {
    let u128_at = |at: usize| u128::from_le_bytes(r[at..at + 16].try_into().expect("16 bytes"));
    Balances { debits_pending: u128_at(16), debits_posted: u128_at(32), credits_pending: u128_at(48), credits_posted: u128_at(64) }
}

/// One totals row: (ledger, code, accounts, rows that follow, sums).
fn decode_totals_row(r: &[u8; RECORD_SIZE]) -> (u32, u16, u32, u32, Balances) {
    (
        u32::from_le_bytes(r[0..4].try_into().expect("4 bytes")),
        u16::from_le_bytes(r[4..6].try_into().expect("2 bytes")),
        u32::from_le_bytes(r[8..12].try_into().expect("4 bytes")),
        u32::from_le_bytes(r[12..16].try_into().expect("4 bytes")),
        balances_at(r),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_frame, decode_submit_reply, FrameType};

    fn frame(reply: &Reply, operation: u8) -> (protocol::Header, Vec<u8>) {
        let mut bytes = Vec::new();
        reply.encode(7, operation, &mut bytes);
        let (header, body) = decode_frame(&bytes).expect("a whole frame");
        assert_eq!(header.request_id, 7);
        (header, body.to_vec())
    }

    #[test]
    fn every_reply_decodes_to_what_was_encoded() {
        let results = vec![ResultCode::Ok, ResultCode::Exists];
        let (header, body) = frame(&Reply::Submit(results.clone()), 0);
        assert_eq!(decode_submit_reply(&header, &body), Ok(results));

        let account = Account { id: 5, ledger: 1, code: 1, ..Default::default() };
        let (_, body) = frame(&Reply::Accounts(vec![account, Account::default()]), 0);
        assert_eq!(decode_accounts(&body), vec![Some(account), None]);

        let transfer = Transfer { id: 9, amount: 3, ..Default::default() };
        let (_, body) = frame(&Reply::Transfers(vec![Transfer::default(), transfer]), 0);
        assert_eq!(decode_transfers(&body), vec![None, Some(transfer)]);
        let (_, body) = frame(&Reply::AccountTransfers(vec![transfer]), 0);
        assert_eq!(decode_account_transfers(&body), vec![transfer]);

        let entry = AccountBalance { timestamp: 11, balances: Balances { debits_posted: 4, credits_pending: 2, ..Default::default() } };
        let (_, body) = frame(&Reply::Balances(vec![entry]), 0);
        assert_eq!(decode_balances(&body), vec![entry]);

        let status = Status { seq: 3, clock: 4, chain_hash: [1; 32], state_digest: [2; 32], ledgers: 1, accounts: 2, transfers: 3 };
        let (_, body) = frame(&Reply::Status(status), 0);
        assert_eq!(decode_status(&body), Ok(status));

        let (_, body) = frame(&Reply::LedgerTotals(vec![None]), 0);
        assert_eq!(decode_ledger_totals(&body, 1), Ok(vec![None]));
        assert_eq!(decode_ledger_totals(&body, 2), Err(ProtocolError::LengthMismatch));

        let mut engine = bursar_engine::Engine::default();
        let ledger =
            Ledger { id: 1, currency: *b"EUR", scale: 2, settlement_account_id: 100, settlement_account_code: 1, ..Default::default() };
        let mut setup = vec![bursar_engine::Command::CreateLedger(ledger)];
        setup.extend((1..=2).map(|id| bursar_engine::Command::CreateAccount(Account { id, ledger: 1, code: 1, ..Default::default() })));
        let order = bursar_engine::StandingOrder {
            id: 9,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 5,
            period: 1,
            unit: 2,
            ledger: 1,
            code: 1,
            ..Default::default()
        };
        setup.push(bursar_engine::Command::CreateStandingOrder(order));
        engine.execute(1, &setup, &mut Vec::new()).expect("setup");
        engine.execute(10 + 86_400_000_000_000, &[], &mut Vec::new()).expect("a day later");
        let made = engine.order(9).cloned().expect("the order");
        assert_eq!(made.history.len(), 2, "two runs remembered");
        let (_, body) = frame(&Reply::Orders(vec![None, Some(made.clone())]), 0);
        let back = decode_orders(&body, 2).expect("decodes");
        assert_eq!(
            (back[0].is_none(), back[1].as_ref().map(|o| (o.spec, o.runs, o.history.clone()))),
            (true, Some((made.spec, made.runs, made.history.clone())))
        );
        let (_, body) = frame(&Reply::AccountOrders(vec![made.clone()]), 0);
        let back = decode_account_orders(&body).expect("decodes");
        assert_eq!((back.len(), back[0].next_due, back[0].history.len()), (1, made.next_due, 0));

        let quote = Quote { id: 7, rate: 43_215, rate_scale: 4, validity_s: 60, timestamp: 5, ..Default::default() };
        let usage = QuoteUsage { uses: 2, paid: 99 };
        let (header, body) = frame(&Reply::Quotes(vec![Some((quote, usage)), None]), 0);
        assert_eq!((header.operation, header.record_count), (Operation::LookupQuotes as u8, 4));
        assert_eq!(&body[RECORD_SIZE + 24..RECORD_SIZE + 32], &(5 + 60 * 1_000_000_000u64).to_le_bytes(), "expires_at at 24");
        assert_eq!(decode_quotes(&body, 2).expect("decodes"), vec![Some((quote, usage)), None]);
        assert_eq!(decode_quotes(&body, 1), Err(ProtocolError::LengthMismatch));

        // The most ids a request may ask for, every one found: the reply still fits one frame.
        let (header, body) = frame(&Reply::Quotes(vec![Some((quote, usage)); protocol::LOOKUP_QUOTES_MAX]), 0);
        assert!(header.record_count as usize <= protocol::FRAME_RECORDS_MAX && body.len() <= protocol::FRAME_BODY_MAX_BYTES);
        let mut full = made.clone();
        full.history = std::iter::repeat_n(made.history[0], bursar_engine::limits::RUN_HISTORY_MAX).collect();
        let (header, body) = frame(&Reply::Orders(vec![Some(full); protocol::LOOKUP_ORDERS_MAX]), 0);
        assert!(header.record_count as usize <= protocol::FRAME_RECORDS_MAX && body.len() <= protocol::FRAME_BODY_MAX_BYTES);
        for (too_many, op) in [(protocol::LOOKUP_QUOTES_MAX + 1, "quotes"), (protocol::LOOKUP_ORDERS_MAX + 1, "orders")] {
            let ids = vec![1u128; too_many];
            let request = if op == "quotes" { protocol::Request::LookupQuotes(ids) } else { protocol::Request::LookupOrders(ids) };
            let mut bytes = Vec::new();
            request.encode(1, &mut bytes);
            let (header, body) = decode_frame(&bytes).expect("a whole frame");
            assert_eq!(protocol::Request::decode(&header, body).map(|_| ()), Err(ProtocolError::TooManyRecords), "lookup {op}");
        }

        let mut bytes = Vec::new();
        protocol::Request::ExpiringHolds(protocol::FRAME_RECORDS_MAX as u32 + 1).encode(1, &mut bytes);
        let (header, body) = decode_frame(&bytes).expect("a whole frame");
        assert_eq!(protocol::Request::decode(&header, body).map(|_| ()), Err(ProtocolError::TooManyRecords));
        let mut bytes = Vec::new();
        protocol::Request::ExpiringHolds(3).encode(1, &mut bytes);
        let (header, body) = decode_frame(&bytes).expect("a whole frame");
        let mut dirty = body.to_vec();
        dirty[9] = 1;
        assert_eq!(protocol::Request::decode(&header, &dirty).map(|_| ()), Err(ProtocolError::ReservedNotZero));

        let (header, body) = frame(&Reply::Error(ProtocolError::ShuttingDown), Operation::Submit as u8);
        assert_eq!((header.frame_type, header.operation), (FrameType::Error, Operation::Submit as u8));
        assert_eq!(body, (ProtocolError::ShuttingDown as u32).to_le_bytes());
    }
}
