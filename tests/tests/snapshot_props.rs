//! Property tests of engine snapshots: snapshot → restore gives the same digest and the same
//! future behaviour, and damaged or arbitrary bytes are refused with an error, never a panic.

use bursar_engine::Engine;
use bursar_tests::workload::Workload;
use proptest::prelude::*;

/// An engine after `batches` random batches of the workload for `seed`, and the workload to continue it.
fn engine_after(seed: u64, batches: usize) -> (Engine, Workload) {
    let mut engine = Engine::default();
    let mut workload = Workload::new(seed);
    let mut results = Vec::new();
    engine.execute(workload.now, &workload.setup(), &mut results).expect("setup");
    for _ in 0..batches {
        let (now, batch) = workload.batch(30);
        engine.execute(now, &batch, &mut results).expect("batch");
    }
    (engine, workload)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var_os("PROPTEST_CASES").map_or(64, |_| ProptestConfig::default().cases), ..ProptestConfig::default() })]

    #[test]
    fn snapshot_restore_keeps_the_digest_and_the_behaviour(seed in any::<u64>(), batches in 0usize..60) {
        let (mut engine, mut workload) = engine_after(seed, batches);
        let bytes = engine.snapshot_bytes();
        prop_assert_eq!(bytes.len(), engine.snapshot_len());
        // The copy a server encodes on another thread gives the same stream, also after the
        // engine has moved on.
        let view = engine.snapshot_view();
        prop_assert_eq!(&view.bytes(), &bytes);
        // Streamed in pieces, as the snapshot writer thread takes it: the same bytes.
        let mut streamed = Vec::new();
        let mut pieces = 0;
        view.write_chunks::<()>(&mut |piece| {
            pieces += 1;
            streamed.extend_from_slice(piece);
            Ok(())
        })
        .expect("no sink error");
        prop_assert_eq!(view.len(), bytes.len());
        prop_assert_eq!(&streamed, &bytes);
        prop_assert!(pieces >= 1 && pieces <= 1 + bytes.len() / bursar_engine::snapshot::SNAPSHOT_CHUNK_BYTES);
        let mut restored = Engine::restore(&bytes).expect("a snapshot restores");
        prop_assert_eq!(restored.digest(), engine.digest());
        prop_assert_eq!(restored.state_digest(), engine.state_digest());
        prop_assert_eq!(&restored.snapshot_bytes(), &bytes);
        for _ in 0..5 {
            let (now, batch) = workload.batch(30);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            engine.execute(now, &batch, &mut a).expect("batch");
            restored.execute(now, &batch, &mut b).expect("batch");
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(&view.bytes(), &bytes);
        // A later copy into the earlier copy's memory is the later state's stream.
        let mut reused = view.clone();
        engine.snapshot_view_into(&mut reused);
        prop_assert_eq!(reused.bytes(), engine.snapshot_bytes());
        prop_assert_eq!(restored.digest(), engine.digest());
        prop_assert_eq!(restored.state_digest(), engine.state_digest());
    }

    #[test]
    fn damaged_snapshots_are_refused_or_consistent_never_a_panic(seed in any::<u64>(), at in any::<usize>(), bit in 0u8..8, cut in any::<bool>()) {
        let (engine, _) = engine_after(seed, 20);
        let mut bytes = engine.snapshot_bytes();
        let at = at % bytes.len();
        if cut {
            bytes.truncate(at);
        } else {
            bytes[at] ^= 1 << bit;
        }
        if let Ok(restored) = Engine::restore(&bytes) {
            // Some bytes (user data, for one) may change without breaking any invariant; the digest shows it.
            prop_assert!(restored.check_invariants().is_ok());
            prop_assert_ne!(restored.digest(), engine.digest());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Engine::restore(&bytes);
        let mut with_magic = b"BURSNAP\0\x01\0\0\0\0\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = Engine::restore(&with_magic);
    }
}
