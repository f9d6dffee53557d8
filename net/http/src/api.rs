//! `/api/`: the figures finance staff and scripts read, as JSON, behind a bearer token (the
//! `panel.token` file `bursar start` writes on first start): every ledger's totals (also per
//! account code, which is how accounts are typed: bank, clearing, payout, suspense...), chosen
//! accounts' balances, and the server's status. Amounts are decimal strings in the ledger's
//! currency, converted exactly from minor units; read-only, like everything here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bursar_engine::{Account, Balances, LedgerTotals};
use bursar_wire::protocol::Request;
use bursar_wire::reply::Reply;
use serde_json::{json, Value};

use std::time::Duration;

use crate::{ask, movements, HttpState, Phase};

/// Most account ids one `/api/accounts` request may name.
pub const API_ACCOUNTS_MAX: usize = 1024;

/// The minor units `amount` as a decimal in major units with `scale` decimals ("1234.56").
pub fn decimal(amount: u128, scale: u8) -> String {
    let digits = format!("{amount:0>width$}", width = scale as usize + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale as usize);
    if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    }
}

/// A signed difference of minor units as a decimal.
fn signed(plus: u128, minus: u128, scale: u8) -> String {
    if plus >= minus {
        decimal(plus - minus, scale)
    } else {
        format!("-{}", decimal(minus - plus, scale))
    }
}

fn balances(b: &Balances, scale: u8) -> Value {
    json!({
        "debits_posted": decimal(b.debits_posted, scale), "credits_posted": decimal(b.credits_posted, scale),
        "debits_pending": decimal(b.debits_pending, scale), "credits_pending": decimal(b.credits_pending, scale),
    })
}

fn ledger(t: &LedgerTotals) -> Value {
    let scale = t.ledger.scale;
    let codes: Vec<Value> =
        t.by_code.iter().map(|c| json!({ "code": c.code, "accounts": c.accounts, "totals": balances(&c.totals, scale) })).collect();
    json!({
        "id": t.ledger.id, "currency": String::from_utf8_lossy(&t.ledger.currency), "scale": scale, "accounts": t.accounts,
        "totals": balances(&t.totals, scale), "balanced": t.is_balanced(), "by_code": codes,
    })
}

fn account(a: &Account, scale: u8) -> Value {
    json!({
        "id": a.id.to_string(), "ledger": a.ledger, "code": a.code, "flags": a.flags, "state": a.state,
        "debits_posted": decimal(a.debits_posted, scale), "credits_posted": decimal(a.credits_posted, scale),
        "debits_pending": decimal(a.debits_pending, scale), "credits_pending": decimal(a.credits_pending, scale),
        // Credit-normal: what the account holds, and what it may still spend.
        "balance": signed(a.credits_posted, a.debits_posted, scale),
        "available": signed(a.credits_posted, a.debits_posted.saturating_add(a.debits_pending), scale),
    })
}

/// Whether `headers` carry the token (`Authorization: Bearer <token>`), compared in constant time.
fn authorized(state: &HttpState, headers: &HeaderMap) -> bool {
    let Some(token) = state.token() else { return false };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// The refusal for a request that may not be answered now, if any.
fn refusal(state: &HttpState, headers: &HeaderMap) -> Option<Response> {
    if state.phase() != Phase::Ready {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "not serving\n").into_response());
    }
    if !authorized(state, headers) {
        let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
        return Some((StatusCode::UNAUTHORIZED, challenge, "a bearer token is required: the server's panel.token\n").into_response());
    }
    None
}

fn json_response(value: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "the sequencer did not answer\n").into_response()
}

/// Every ledger's totals, by id.
async fn ledgers(state: &HttpState) -> Option<Vec<LedgerTotals>> {
    let Reply::LedgerTotals(found) = ask(&state.sequencer()?, Request::LedgerTotals(Vec::new())).await? else { return None };
    Some(found.into_iter().flatten().collect())
}

/// `GET /api/ledgers`.
pub async fn get_ledgers(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    match ledgers(&state).await {
        Some(found) => json_response(Value::Array(found.iter().map(ledger).collect())),
        None => unavailable(),
    }
}

/// `GET /api/accounts?id=1&id=2`: those accounts' balances (`null` where not found).
pub async fn get_accounts(State(state): State<Arc<HttpState>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let mut ids = Vec::new();
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("id=").and_then(|v| v.parse::<u128>().ok()) {
            Some(id) => ids.push(id),
            None => return (StatusCode::BAD_REQUEST, format!("{pair:?}: only id=<account id> is understood\n")).into_response(),
        }
    }
    if ids.is_empty() || ids.len() > API_ACCOUNTS_MAX {
        return (StatusCode::BAD_REQUEST, format!("name 1 to {API_ACCOUNTS_MAX} accounts: ?id=1&id=2\n")).into_response();
    }
    let (Some(sequencer), Some(found)) = (state.sequencer(), ledgers(&state).await) else { return unavailable() };
    let scales: HashMap<u32, u8> = found.iter().map(|t| (t.ledger.id, t.ledger.scale)).collect();
    let Some(Reply::Accounts(accounts)) = ask(&sequencer, Request::LookupAccounts(ids)).await else { return unavailable() };
    let values = accounts.iter().map(|a| if a.id == 0 { Value::Null } else { account(a, scales.get(&a.ledger).copied().unwrap_or(0)) });
    json_response(Value::Array(values.collect()))
}

/// Accounts the operator may mark for the panel.
pub const MARKED_MAX: usize = 64;

/// Holds a panel's tick lists, soonest to expire first.
pub const EXPIRING_LISTED: u32 = 10;

/// Panels' event streams open at once; more are refused (503) rather than queried for.
pub const EVENT_STREAMS_MAX: usize = 16;

/// How often an event stream sends the figures.
pub const EVENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Ticks a second at most while money moves (each waits for the change feed's next entry).
pub const EVENT_RATE_MAX_PER_S: u64 = 4;

fn status_json(scrape: &crate::Scrape) -> Value {
    let (s, m) = (&scrape.status, &scrape.metrics);
    json!({
        "seq": s.seq, "clock_ns": s.clock, "ledgers": s.ledgers, "accounts": s.accounts, "transfers": s.transfers,
        "commands": m.commands, "entries": m.entries, "syncs": m.syncs, "sync_ns_total": m.sync_ns_total, "sync_ns_max": m.sync_ns_max,
        "snapshots": m.snapshots, "queue_jobs": scrape.queue_jobs,
    })
}

/// The holds that expire soonest: who holds what for whom, and when it goes back (ns).
async fn expiring_json(sequencer: &bursar_node::sequencer::SequencerHandle, ledgers: &[LedgerTotals]) -> Option<Value> {
    let Reply::ExpiringHolds(holds) = ask(sequencer, Request::ExpiringHolds(EXPIRING_LISTED)).await? else { return None };
    let rows = holds.iter().map(|t| {
        let found = ledgers.iter().find(|l| l.ledger.id == t.ledger);
        let (currency, scale) =
            found.map_or((String::new(), 0), |l| (String::from_utf8_lossy(&l.ledger.currency).into_owned(), l.ledger.scale));
        json!({
            "id": t.id.to_string(), "debit_account": t.debit_account_id.to_string(), "credit_account": t.credit_account_id.to_string(),
            "amount": decimal(t.amount, scale), "currency": currency,
            "expires_at_ns": t.timestamp.saturating_add(u64::from(t.timeout) * 1_000_000_000),
        })
    });
    Some(Value::Array(rows.collect()))
}

/// The marked accounts with their roles and balances (`account` null where not found).
async fn marked_json(state: &HttpState, sequencer: &bursar_node::sequencer::SequencerHandle, ledgers: &[LedgerTotals]) -> Option<Value> {
    let marked = state.marked();
    if marked.is_empty() {
        return Some(Value::Array(Vec::new()));
    }
    let ids = marked.iter().map(|(_, id)| *id).collect();
    let Reply::Accounts(accounts) = ask(sequencer, Request::LookupAccounts(ids)).await? else { return None };
    let scales: HashMap<u32, u8> = ledgers.iter().map(|t| (t.ledger.id, t.ledger.scale)).collect();
    let rows = marked.iter().zip(accounts).map(|((role, id), a)| {
        let currency = ledgers.iter().find(|t| t.ledger.id == a.ledger).map(|t| String::from_utf8_lossy(&t.ledger.currency).into_owned());
        let account = if a.id == 0 { Value::Null } else { account(&a, scales.get(&a.ledger).copied().unwrap_or(0)) };
        json!({ "role": role, "id": id.to_string(), "currency": currency, "account": account })
    });
    Some(Value::Array(rows.collect()))
}

/// The large movements and failed runs the panel's follower saw (empty without a feed).
fn movements_json(seen: &movements::Seen, ledgers: &[LedgerTotals]) -> Value {
    let scale_of = |id: u32| {
        ledgers
            .iter()
            .find(|l| l.ledger.id == id)
            .map_or((String::new(), 0), |l| (String::from_utf8_lossy(&l.ledger.currency).into_owned(), l.ledger.scale))
    };
    let movement = |m: &movements::Movement| {
        let (currency, scale) = scale_of(m.transfer.ledger);
        let t = &m.transfer;
        json!({
            "id": t.id.to_string(), "debit_account": t.debit_account_id.to_string(), "credit_account": t.credit_account_id.to_string(),
            "amount": decimal(t.amount, scale), "currency": currency, "code": t.code, "timestamp_ns": t.timestamp, "seq": m.seq,
        })
    };
    let large = seen.large.iter().map(movement);
    let unmatched = seen.unmatched.iter().map(movement);
    let failed = seen.failed_runs.iter().map(|r| {
        let (currency, scale) = scale_of(r.ledger);
        json!({
            "order": r.order.to_string(), "run": r.entry.run, "event": r.entry.event.name(), "result": r.entry.code.name(),
            "amount": decimal(r.entry.amount, scale), "currency": currency, "at_ns": r.entry.at,
            "debit_account": r.accounts[0].to_string(), "credit_account": r.accounts[1].to_string(),
        })
    });
    json!({
        "large": large.collect::<Vec<_>>(), "failed_runs": failed.collect::<Vec<_>>(), "unmatched": unmatched.collect::<Vec<_>>(),
        "feed_seq": seen.seq,
    })
}

/// What one tick of `/api/events` carries.
async fn tick_json(state: &HttpState) -> Option<Value> {
    let sequencer = state.sequencer().filter(|_| state.phase() == Phase::Ready)?;
    let scrape = crate::scrape(&sequencer).await?;
    let marked = marked_json(state, &sequencer, &scrape.ledgers).await?;
    let expiring = expiring_json(&sequencer, &scrape.ledgers).await?;
    let ledgers: Vec<Value> = scrape.ledgers.iter().map(ledger).collect();
    let seen = state.feed().map(|feed| feed.seen()).unwrap_or_default();
    let movements = movements_json(&seen, &scrape.ledgers);
    Some(json!({ "status": status_json(&scrape), "ledgers": ledgers, "marked": marked, "expiring": expiring, "movements": movements }))
}

/// `GET /api/events`: server-sent events: a `tick` with the status, every ledger's totals, the
/// marked accounts, the holds expiring soonest, the latest large movements and failed runs (what
/// the panel draws), sent as soon as the change feed reads a new entry (at most
/// [`EVENT_RATE_MAX_PER_S`] a second) and at least once a second, until the server stops.
pub async fn get_events(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let Ok(permit) = Arc::clone(&state.event_streams).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{EVENT_STREAMS_MAX} event streams are open already\n")).into_response();
    };
    let watching = match (state.feed(), state.sequencer()) {
        (Some(feed), Some(sequencer)) => Some((feed.watch(sequencer.durable()), feed.changes())),
        _ => None,
    };
    let ticks = futures_util::stream::unfold((state, permit, watching, true), |(state, permit, mut watching, first)| async move {
        if !first {
            let spacing = tokio::time::sleep(Duration::from_millis(1000 / EVENT_RATE_MAX_PER_S));
            spacing.await;
            let changed = async {
                match watching.as_mut() {
                    Some((_, changes)) => drop(changes.changed().await),
                    None => std::future::pending().await,
                }
            };
            let _ = tokio::time::timeout(EVENT_INTERVAL, changed).await;
        }
        let data = tick_json(&state).await?;
        let event = axum::response::sse::Event::default().event("tick").data(data.to_string());
        Some((Ok::<_, std::convert::Infallible>(event), (state, permit, watching, false)))
    });
    axum::response::Sse::new(ticks).into_response()
}

/// `GET /api/status`: the log's head, table sizes, the node's counters and the queue.
pub async fn get_status(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let Some(sequencer) = state.sequencer() else { return unavailable() };
    let Some(scrape) = crate::scrape(&sequencer).await else { return unavailable() };
    json_response(status_json(&scrape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(123_456, 2), "1234.56");
        assert_eq!(decimal(7, 0), "7");
        assert_eq!(decimal(u128::MAX, 2), "3402823669209384634633746074317682114.55");
        assert_eq!(signed(100, 250, 2), "-1.50");
    }
}
