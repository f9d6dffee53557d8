//! `docs/desk.md`'s configuration example is a configuration the desk accepts, with the values
//! the document says.

use bursar_desk::config::DeskConfig;

#[test]
fn the_documented_configuration_parses() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/desk.md")).expect("docs/desk.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &doc[start..start + doc[start..].find("```").expect("the block's end")];
    let config = DeskConfig::parse(block).expect("the example parses");
    assert_eq!((config.validity.as_secs(), config.grace.as_secs()), (900, 7200));
    assert_eq!(config.namespace, u32::from_be_bytes(*b"DESK"), "the default namespace is the one the comment gives");
    assert_eq!(config.namespace, 1_145_393_995);
    assert_eq!(config.currency("pln").expect("PLN").liquidity_account, 9852);
    assert!(config.csv.is_some());
}

#[test]
fn bad_configurations_are_refused_with_the_reason() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/desk.md")).expect("docs/desk.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &doc[start..start + doc[start..].find("```").expect("the block's end")];
    for (from, to, reason) in [
        ("liquidity_account = 9852", "liquidity_account = 9851", "distinct"),
        ("validity = \"15m\"", "validity = \"0s\"", "validity"),
        ("reference_prefix = \"KX\"", "reference_prefix = \"K-X\"", "reference_prefix"),
        ("code = \"PLN\"", "code = \"EUR\"", "twice"),
        ("scale = 2\nsettlement_account = 9850", "scale = 2\nsettlement = 9850", "unknown field"),
    ] {
        let bad = block.replacen(from, to, 1);
        assert_ne!(bad, block, "{from} is in the example");
        let error = format!("{:#}", DeskConfig::parse(&bad).expect_err("refused"));
        assert!(error.contains(reason), "{error} does not say {reason}");
    }
}
