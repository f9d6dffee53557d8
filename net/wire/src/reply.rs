//! Replies, typed: what the sequencer answers ([`Reply`]), encoded into a frame only by the
//! transport ([`Reply::encode`]), and the client's decoders of each reply body.

use bursar_engine::{Account, AccountBalance, Balances, Ledger, LedgerTotals, Record, ResultCode, Transfer, RECORD_SIZE};

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
            Reply::Error(error) => protocol::encode_error(request_id, operation, *error, out),
        }
    }
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
    if out.len() != asked {
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

        let (header, body) = frame(&Reply::Error(ProtocolError::ShuttingDown), Operation::Submit as u8);
        assert_eq!((header.frame_type, header.operation), (FrameType::Error, Operation::Submit as u8));
        assert_eq!(body, (ProtocolError::ShuttingDown as u32).to_le_bytes());
    }
}
