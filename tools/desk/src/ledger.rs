//! The desk's reads and writes through the Bursar client, in requests of at most
//! `BATCH_COMMANDS_MAX` records: lookups of many ids, an account's whole transfer list (paged),
//! and submitting commands with their result codes.

use anyhow::{Context, Result};
use bursar_engine::{filter_flags, AccountFilter, Command, ResultCode, Transfer, BATCH_COMMANDS_MAX};
use bursar_net::client::Client;

/// Transfers by id, `None` where absent, over as many requests as needed.
pub async fn transfers(client: &Client, ids: &[u128]) -> Result<Vec<Option<Transfer>>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH_COMMANDS_MAX) {
        out.extend(client.lookup_transfers(chunk.to_vec()).await.context("looking up transfers")?);
    }
    Ok(out)
}

/// Accounts by id, `None` where absent.
pub async fn accounts(client: &Client, ids: &[u128]) -> Result<Vec<Option<bursar_engine::Account>>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH_COMMANDS_MAX) {
        out.extend(client.lookup_accounts(chunk.to_vec()).await.context("looking up accounts")?);
    }
    Ok(out)
}

/// Quotes by id, `None` where absent.
pub async fn quotes(client: &Client, ids: &[u128]) -> Result<Vec<Option<bursar_engine::Quote>>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH_COMMANDS_MAX) {
        out.extend(client.lookup_quotes(chunk).await.context("looking up quotes")?.into_iter().map(|q| q.map(|(q, _)| q)));
    }
    Ok(out)
}

/// Every transfer of `account` on the sides `flags` asks for (`filter_flags`), with `code` (0:
/// any), oldest first, over as many pages as needed.
pub async fn all_transfers(client: &Client, account: u128, code: u16, flags: u32) -> Result<Vec<Transfer>> {
    let mut out: Vec<Transfer> = Vec::new();
    loop {
        let filter = AccountFilter {
            account_id: account,
            code,
            timestamp_min: out.last().map_or(0, |t| t.timestamp + 1),
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
