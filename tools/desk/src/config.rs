//! The desk's configuration (TOML): its currencies, and for each the desk's bank account, the
//! Bursar accounts that mirror it (shadow), hold the desk's own money (liquidity) and park what
//! matches no order (suspense); the payment reference's prefix, the quotes' validity and grace,
//! and the CSV column mapping. `docs/desk.md` has an example.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rust_decimal::Decimal;
use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    /// The desk's name: the debtor of its payout files.
    pub name: String,
    /// The high 32 bits of every id the desk derives; two desks on one server need two.
    #[serde(default = "default_namespace")]
    pub namespace: u32,
    /// What payment references start with (letters and digits).
    #[serde(default = "default_prefix")]
    pub reference_prefix: String,
    /// How long a quoted rate holds ("15m").
    #[serde(default = "default_validity", with = "duration")]
    pub validity: Duration,
    /// How long an order's reservation outlasts the validity, for statements that arrive late.
    #[serde(default = "default_grace", with = "duration")]
    pub grace: Duration,
    /// One per currency.
    #[serde(rename = "currency")]
    pub currencies: Vec<Currency>,
    /// The column mapping of CSV statements.
    pub csv: Option<CsvMapping>,
}

/// A currency the desk trades, and its bank account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Currency {
    /// ISO 4217 code ("EUR").
    pub code: String,
    /// The Bursar ledger of this currency.
    pub ledger: u32,
    /// Minor-unit exponent (2 for cents).
    pub scale: u8,
    /// The ledger's settlement account (created with the ledger).
    pub settlement_account: u128,
    /// The desk's account at its bank (IBAN), as statements name it.
    pub iban: String,
    /// The bank's BIC, for payout files (optional in SEPA).
    pub bic: Option<String>,
    /// The Bursar account mirroring the bank account: its debits minus credits are the bank balance.
    pub shadow_account: u128,
    /// The desk's own money in this currency: exchanges pay from and into it; no overdraft.
    pub liquidity_account: u128,
    /// Where lines that match no order go, for the cashier.
    pub suspense_account: u128,
    /// The bank account's balance when the desk starts using it, booked to liquidity at setup.
    #[serde(default)]
    pub opening_balance: Decimal,
    /// An underpayment up to this much is exchanged as paid (partially); more waits for the cashier.
    #[serde(default)]
    pub underpayment_tolerance: Decimal,
}

/// Which CSV columns (by header) hold what.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvMapping {
    /// The field separator.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Amounts written `1.234,56`.
    #[serde(default)]
    pub decimal_comma: bool,
    /// The booking date (`YYYY-MM-DD`) or time (RFC 3339).
    pub date: String,
    /// The amount, signed: negative is money out.
    pub amount: String,
    /// The transfer title.
    pub title: String,
    /// The bank account (IBAN) column, or `account_fixed` for files of one account.
    pub account: Option<String>,
    /// The bank account of every line when the file has no such column.
    pub account_fixed: Option<String>,
    /// The currency column, or `currency_fixed`.
    pub currency: Option<String>,
    /// The currency of every line when the file has no such column.
    pub currency_fixed: Option<String>,
    /// The bank's reference of the line.
    pub reference: Option<String>,
    /// The other side's account.
    pub counterparty_account: Option<String>,
    /// The other side's name.
    pub counterparty_name: Option<String>,
    /// The balance after the line (the last one is the closing balance).
    pub balance_after: Option<String>,
}

fn default_namespace() -> u32 {
    u32::from_be_bytes(*b"DESK")
}
fn default_prefix() -> String {
    "KX".into()
}
fn default_validity() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_grace() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_delimiter() -> char {
    ','
}

mod duration {
    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl DeskConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<DeskConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses and checks a configuration.
    pub fn parse(text: &str) -> Result<DeskConfig> {
        let config: DeskConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.reference_prefix.is_empty()
            || !self.reference_prefix.bytes().all(|b| b.is_ascii_alphanumeric())
            || self.reference_prefix.len() > 8
        {
            bail!("reference_prefix {:?}: 1 to 8 letters or digits", self.reference_prefix);
        }
        if self.currencies.is_empty() {
            bail!("no [[currency]]");
        }
        for (i, c) in self.currencies.iter().enumerate() {
            let ids = [c.shadow_account, c.liquidity_account, c.suspense_account, c.settlement_account];
            if ids.contains(&0) || ids.iter().enumerate().any(|(j, a)| ids[..j].contains(a)) {
                bail!("currency {}: the four accounts must be distinct and non-zero", c.code);
            }
            if c.code.len() != 3 || !c.code.bytes().all(|b| b.is_ascii_uppercase()) {
                bail!("currency {:?}: an ISO 4217 code is three capital letters", c.code);
            }
            if self.currencies[..i].iter().any(|o| o.code == c.code || o.ledger == c.ledger || o.iban == c.iban) {
                bail!("currency {}: its code, ledger or IBAN appears twice", c.code);
            }
            if c.opening_balance.is_sign_negative() || c.underpayment_tolerance.is_sign_negative() {
                bail!("currency {}: opening_balance and underpayment_tolerance are not negative", c.code);
            }
        }
        if self.validity.as_secs() == 0 || self.validity.as_secs() > 7 * 86_400 || self.grace.as_secs() > 7 * 86_400 {
            bail!("validity is 1 s to 7 days, grace at most 7 days");
        }
        Ok(())
    }

    /// The currency with ISO code `code`.
    pub fn currency(&self, code: &str) -> Result<&Currency> {
        let found = self.currencies.iter().find(|c| c.code.eq_ignore_ascii_case(code));
        found.with_context(|| format!("the desk does not trade {code}"))
    }

    /// The currency of ledger `ledger`.
    pub fn by_ledger(&self, ledger: u32) -> Option<&Currency> {
        self.currencies.iter().find(|c| c.ledger == ledger)
    }

    /// The currency whose bank account is `iban`.
    pub fn by_account(&self, iban: &str) -> Option<&Currency> {
        self.currencies.iter().find(|c| c.iban.replace(' ', "").eq_ignore_ascii_case(iban))
    }
}

impl Currency {
    /// `amount` in minor units, exactly: more decimals than the scale, or a negative, is an error.
    pub fn minor(&self, amount: Decimal) -> Result<u128> {
        let scaled = amount * Decimal::from(10u64.pow(u32::from(self.scale)));
        if scaled.fract() != Decimal::ZERO || scaled.is_sign_negative() {
            bail!("{amount} {}: not a whole number of minor units (scale {}) or negative", self.code, self.scale);
        }
        u128::try_from(scaled.mantissa() / 10i128.pow(scaled.scale())).context("an amount")
    }

    /// Minor units as a decimal in major units.
    pub fn major(&self, minor: u128) -> Decimal {
        Decimal::from_i128_with_scale(minor as i128, u32::from(self.scale))
    }
}
