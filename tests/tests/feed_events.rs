//! The change feed's events against the engine itself, over the seeded workload of every kind:
//! an engine with feed notes on reaches exactly the state and results of one without; every
//! command has one event with its result, in order; the transfer events are exactly the transfers
//! the batch stored, in storage order; the expiry events are the batch's expiries; and the
//! balances the events carry, taken last per account, are every account's balances after the
//! batch (so each movement is attributed the balances right after it, not after the batch).
//!
//! More seeds: `FEED_SEEDS=200 cargo test --release -p bursar-tests --test feed_events`.

use std::collections::HashMap;

use bursar_engine::{Balances, Engine, FeedEvent, FeedEventType, Limits, Record, Transfer};
use bursar_tests::workload::Workload;

fn balances(engine: &Engine, id: u128) -> Balances {
    let a = engine.account(id).expect("an account an event names");
    Balances {
        debits_pending: a.debits_pending,
        debits_posted: a.debits_posted,
        credits_pending: a.credits_pending,
        credits_posted: a.credits_posted,
    }
}

fn check_batch(
    engine: &Engine,
    stored_before: usize,
    commands: usize,
    results: &[bursar_engine::ResultCode],
    expired: u32,
    events: &[FeedEvent],
) -> Result<(), String> {
    let command_results: Vec<_> = events.iter().filter(|e| e.kind == FeedEventType::Command).map(|e| e.result).collect();
    if command_results.len() != commands || command_results != results {
        return Err(format!("command events {command_results:?}, results {results:?}"));
    }
    let transfer_ids: Vec<u128> =
        events.iter().filter(|e| e.kind == FeedEventType::Transfer).map(|e| Transfer::decode(&e.record).id).collect();
    let stored: Vec<u128> = engine.transfers().iter_from(stored_before).map(|t| t.id).collect();
    if transfer_ids != stored {
        return Err(format!("transfer events {transfer_ids:?}, stored {stored:?}"));
    }
    let expiries = events.iter().filter(|e| e.kind == FeedEventType::Expiry).count();
    if expiries != expired as usize {
        return Err(format!("{expiries} expiry events, {expired} expired"));
    }
    if events.iter().enumerate().any(|(i, e)| e.index != i as u32) {
        return Err("event indexes are not 0, 1, 2, ...".into());
    }
    let mut last: HashMap<u128, Balances> = HashMap::new();
    for e in events.iter().filter(|e| matches!(e.kind, FeedEventType::Transfer | FeedEventType::Expiry)) {
        last.insert(e.accounts[0], e.balances[0]);
        last.insert(e.accounts[1], e.balances[1]);
    }
    for (id, b) in last {
        if balances(engine, id) != b {
            return Err(format!("account {id}: last event says {b:?}, the engine holds {:?}", balances(engine, id)));
        }
    }
    Ok(())
}

fn run_seed(seed: u64, batches: u64) -> Result<(), String> {
    let mut plain = Engine::new(Limits::default());
    let mut fed = Engine::new(Limits::default());
    fed.set_feed_notes(true);
    let mut workload = Workload::new(seed);
    let (mut results, mut fed_results) = (Vec::new(), Vec::new());
    let (mut notes, mut events) = (Vec::new(), Vec::new());
    let setup = workload.setup();
    plain.execute(workload.now, &setup, &mut results).map_err(|e| e.to_string())?;
    fed.execute(workload.now, &setup, &mut fed_results).map_err(|e| e.to_string())?;
    fed.take_feed_notes(&mut notes);
    for b in 0..batches {
        let (now, batch) = workload.batch(40);
        let request_ends = if b % 2 == 1 { workload.request_ends(&batch) } else { Vec::new() };
        results.clear();
        fed_results.clear();
        let stored_before = fed.transfers().len();
        plain.execute_requests(now, &batch, &request_ends, &mut results).map_err(|e| e.to_string())?;
        let info = fed.execute_requests(now, &batch, &request_ends, &mut fed_results).map_err(|e| e.to_string())?;
        if results != fed_results || plain.state_digest() != fed.state_digest() {
            return Err(format!("batch {b}: feed notes changed the outcome"));
        }
        fed.take_feed_notes(&mut notes);
        fed.feed_events(&notes, &batch, &fed_results, &mut events);
        check_batch(&fed, stored_before, batch.len(), &fed_results, info.expired, &events).map_err(|e| format!("batch {b}: {e}"))?;
    }
    Ok(())
}

#[test]
fn feed_events_agree_with_the_engine_over_the_workload() {
    let seeds = std::env::var("FEED_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(16u64);
    for seed in 0..seeds {
        if let Err(why) = run_seed(seed, 200) {
            panic!("seed {seed}: {why}");
        }
    }
}
