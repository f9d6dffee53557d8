//! Damaged statement files never panic the parsers: every sample, with random bytes changed,
//! cut or inserted, parses or is refused with an error. A bounded run in CI; a longer one with
//! `PROPTEST_CASES=100000 cargo test --release -p bursar-desk --test fuzz_statements`.

use bursar_desk::config::CsvMapping;
use proptest::prelude::*;

fn samples() -> Vec<Vec<u8>> {
    ["camt053_v08.xml", "camt053_v02.xml", "mt940.sta", "statement.csv"]
        .iter()
        .map(|name| std::fs::read(format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample"))
        .collect()
}

fn mapping() -> CsvMapping {
    toml::from_str("date = \"Booking date\"\namount = \"Amount\"\ntitle = \"Title\"\naccount = \"Account\"\ncurrency = \"Currency\"\nreference = \"Bank reference\"")
        .expect("a mapping")
}

/// One damage: overwrite, cut or insert at a position (a fraction of the file's length).
#[derive(Clone, Debug)]
enum Damage {
    Set(f64, u8),
    Cut(f64),
    Insert(f64, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64, any::<u8>()).prop_map(|(at, b)| Damage::Set(at, b)),
        (0.0..1.0f64).prop_map(Damage::Cut),
        (
            0.0..1.0f64,
            proptest::collection::vec(prop_oneof![Just(b'<'), Just(b'>'), Just(b':'), Just(b','), Just(b'\n'), any::<u8>()], 1..8)
        )
            .prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn damaged_statements_never_panic(which in 0..4usize, damages in proptest::collection::vec(damage(), 1..6)) {
        let mut bytes = samples().swap_remove(which);
        for d in damages {
            let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
            match d {
                Damage::Set(f, b) => { let i = at(f, bytes.len().saturating_sub(1)); if let Some(x) = bytes.get_mut(i) { *x = b; } }
                Damage::Cut(f) => { let i = at(f, bytes.len()); bytes.truncate(i); }
                Damage::Insert(f, more) => { let i = at(f, bytes.len()); bytes.splice(i..i, more); }
            }
        }
        let _ = bursar_desk::statement::parse(&bytes, Some(&mapping()));
    }
}
