//! The desk's reads and writes through the Bursar client, in requests of at most
//! `BATCH_COMMANDS_MAX` records: lookups of many ids, an account's whole transfer list (paged),
//! and submitting commands with their result codes.

use anyhow::{Context, Result};
use bursar_engine::{filter_flags, AccountFilter, Command, ResultCode, Transfer, BATCH_COMMANDS_MAX};
use bursar_net::client::Client;

/// Requests in flight at once for one lookup: the server works on one while the client sends
/// the next and decodes the last.
const LOOKUPS_IN_FLIGHT: usize = 4;

/// `ask` for every chunk of `ids` (at most `chunk` each), a few requests in flight at once; the
/// answers in the order of `ids`.
async fn chunked<T, F, Fut>(client: &Client, ids: &[u128], chunk: usize, ask: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Client, Vec<u128>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, bursar_net::client::ClientError>> + Send + 'static,
{
    let mut chunks = ids.chunks(chunk).map(<[u128]>::to_vec).enumerate();
    let mut answers: Vec<Option<Vec<T>>> = (0..ids.len().div_ceil(chunk.max(1))).map(|_| None).collect();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < LOOKUPS_IN_FLIGHT {
            let Some((i, part)) = chunks.next() else { break };
            let asked = ask(client.clone(), part);
            running.spawn(async move { (i, asked.await) });
        }
        let Some(done) = running.join_next().await else { break };
        let (i, answer) = done.context("a lookup task")?;
        answers[i] = Some(answer?);
    }
    Ok(answers.into_iter().flatten().flatten().collect())
}

/// Transfers by id, `None` where absent, over as many requests as needed.
pub async fn transfers(client: &Client, ids: &[u128]) -> Result<Vec<Option<Transfer>>> {
    chunked(client, ids, BATCH_COMMANDS_MAX, |c, part| async move { c.lookup_transfers(part).await }).await.context("looking up transfers")
}

/// Accounts by id, `None` where absent.
pub async fn accounts(client: &Client, ids: &[u128]) -> Result<Vec<Option<bursar_engine::Account>>> {
    chunked(client, ids, BATCH_COMMANDS_MAX, |c, part| async move { c.lookup_accounts(part).await }).await.context("looking up accounts")
}

/// Quotes by id, `None` where absent.
pub async fn quotes(client: &Client, ids: &[u128]) -> Result<Vec<Option<bursar_engine::Quote>>> {
    let found = chunked(client, ids, bursar_net::protocol::LOOKUP_QUOTES_MAX, |c, part| async move { c.lookup_quotes(&part).await }).await;
    Ok(found.context("looking up quotes")?.into_iter().map(|q| q.map(|(q, _)| q)).collect())
}

/// Every transfer of `account` on the sides `flags` asks for (`filter_flags`), with `code` (0:
/// any), oldest first, over as many pages as needed.
pub async fn all_transfers(client: &Client, account: u128, code: u16, flags: u32) -> Result<Vec<Transfer>> {
    transfers_since(client, account, code, flags, 0).await
}

/// As [`all_transfers`], only those the server stored at or after `since` (ns).
pub async fn transfers_since(client: &Client, account: u128, code: u16, flags: u32, since: u64) -> Result<Vec<Transfer>> {
    let mut out: Vec<Transfer> = Vec::new();
    loop {
        let filter = AccountFilter {
            account_id: account,
            code,
            timestamp_min: out.last().map_or(since, |t| t.timestamp + 1),
            limit: BATCH_COMMANDS_MAX as u32,
            flags: flags & (filter_flags::DEBITS | filter_flags::CREDITS),
            ..AccountFilter::default()
        };
        let page = client.get_account_transfers(filter).await.with_context(|| format!("the transfers of account {account}"))?;
        let full = page.len() == BATCH_COMMANDS_MAX;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Submits `commands` in requests of at most `BATCH_COMMANDS_MAX`, never splitting a linked
/// chain; one result code per command.
pub async fn submit(client: &Client, commands: &[Command]) -> Result<Vec<ResultCode>> {
    let mut codes = Vec::with_capacity(commands.len());
    let mut start = 0;
    while start < commands.len() {
        let mut end = (start + BATCH_COMMANDS_MAX).min(commands.len());
        if end < commands.len() {
            // Back off to the end of a chain: the command before `end` must not be linked.
            while end > start + 1 && commands[end - 1].is_linked() {
                end -= 1;
            }
        }
        codes.extend(client.submit_slice(&commands[start..end]).await.context("submitting to the server")?);
        start = end;
    }
    Ok(codes)
}

/// Ok, or already done by an earlier run: the desk's commands are idempotent by their ids.
pub fn done(code: ResultCode) -> bool {
    matches!(code, ResultCode::Ok | ResultCode::Exists)
}
