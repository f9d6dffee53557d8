//! Arbitrary bytes decoded as commands of any kind into the engine: it must answer every command
//! with a result code, never panic, and keep every invariant. CI runs a bounded number of cases;
//! a longer run: `PROPTEST_CASES=200000 cargo test --release -p bursar-tests --test engine_fuzz`.

use bursar_engine::{Command, CommandKind, Engine, Limits, RECORD_SIZE};
use bursar_tests::workload::Workload;
use proptest::prelude::*;

/// A record that is mostly zero with a few chosen bytes, so that ids and amounts often collide
/// with existing objects and small values, instead of being uniformly random 128-bit numbers.
fn record() -> impl Strategy<Value = [u8; RECORD_SIZE]> {
    proptest::collection::vec((0usize..RECORD_SIZE, any::<u8>()), 0..12).prop_map(|bytes| {
        let mut out = [0u8; RECORD_SIZE];
        for (at, value) in bytes {
            out[at] = value % 8;
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var_os("PROPTEST_CASES").map_or(512, |_| ProptestConfig::default().cases), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_commands_get_results_and_keep_invariants(
        seed in any::<u64>(),
        batches in proptest::collection::vec(proptest::collection::vec((0usize..CommandKind::ALL.len(), record()), 0..24), 1..6),
        clock_steps in proptest::collection::vec(0u64..5_000_000_000, 6),
    ) {
        // Start from a populated state so that decoded ids hit real ledgers, accounts and holds.
        let mut engine = Engine::new(Limits { accounts_max: 200, transfers_max: 4_000, ..Limits::default() });
        let mut workload = Workload::new(seed);
        let mut results = Vec::new();
        engine.execute(workload.now, &workload.setup(), &mut results).expect("setup");
        let mut now = workload.now;
        for (batch, step) in batches.iter().zip(&clock_steps) {
            let commands: Vec<Command> = batch.iter().map(|(kind, bytes)| Command::decode(CommandKind::ALL[*kind], bytes)).collect();
            now += step;
            results.clear();
            engine.execute(now, &commands, &mut results).expect("within the batch limit");
            prop_assert_eq!(results.len(), commands.len());
            let (_, more) = workload.batch(10);
            engine.execute(now + 1, &more, &mut results).expect("within the batch limit");
            if let Err(broken) = engine.check_invariants() {
                return Err(TestCaseError::fail(broken));
            }
        }
    }
}
