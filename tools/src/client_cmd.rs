//! `bursar client`: a person's way to talk to a running server. Amounts are typed and printed as
//! decimals in the ledger's currency ("12.50 EUR"), converted exactly to minor units with
//! rust_decimal; a value with more decimals than the ledger's scale is an error, never rounded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bursar_audit::{format_minor, show_time};
use bursar_engine::{
    account_flags, change_flags, channel_flags, filter_flags, limit_flags, velocity_flags, velocity_window, Account, AccountChange,
    AccountFilter, AccountLimits, ChannelPolicy, Command, HoldStatus, Ledger, Transfer, VelocityRule,
};
use bursar_net::client::{Client, LedgerView};
use bursar_net::protocol::{Outcome, OutcomeStatus};
use clap::{Args, Subcommand};
use rust_decimal::Decimal;

use crate::orders_cmd::{ManageOrder, StandingOrderOp, TriggerOp};

/// Where the server is and how to prove who this gateway is: shared by `bursar client` and
/// `bursar desk`.
#[derive(Args, Debug)]
pub struct Connection {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7413")]
    pub addr: SocketAddr,
    /// The server's certificate (DER), as printed by `bursar start`.
    #[arg(long, default_value = "data/server/server.crt")]
    pub cert: PathBuf,
    /// This gateway's certificate (DER), for servers that require mutual TLS.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// This gateway's private key (PKCS#8 DER).
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl Connection {
    /// Connects to the server, with this gateway's certificate and key when given.
    pub async fn connect(&self) -> Result<Client> {
        let cert = bursar_net::tls::read_certificate(&self.cert).map_err(anyhow::Error::msg)?;
        let auth = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(bursar_net::tls::ClientAuth {
                cert: std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?.into(),
                key: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
            }),
            _ => None,
        };
        let addr = self.addr;
        Client::connect_with(addr, cert, "localhost", auth.as_ref()).await.with_context(|| format!("connecting to {addr}"))
    }
}

/// Where the server is and how to print.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The server.
    #[command(flatten)]
    pub server: Connection,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub op: ClientOp,
}

/// What to ask the server.
#[derive(Subcommand, Debug)]
pub enum ClientOp {
    /// Register a ledger (currency, scale) with its settlement account.
    CreateLedger {
        /// The ledger's id (any number from 1; by convention the ISO 4217 numeric code, 978 for EUR).
        #[arg(long)]
        id: u32,
        /// ISO 4217 code, e.g. EUR.
        #[arg(long)]
        currency: String,
        /// Minor-unit exponent, e.g. 2 for cents.
        #[arg(long)]
        scale: u8,
        /// Id of the settlement account created with the ledger.
        #[arg(long)]
        settlement: u128,
    },
    /// Open an account.
    CreateAccount {
        /// The account's id (chosen by you, unique, from 1).
        #[arg(long)]
        id: u128,
        /// The ledger (currency) it holds.
        #[arg(long)]
        ledger: u32,
        /// Its kind, your numbering (docs/accounts.md uses 10 customer, 20 merchant, 30 internal, 40 clearing, 50 shadow).
        #[arg(long, default_value_t = 10)]
        code: u16,
        /// Refuse debits beyond the credits (no overdraft).
        #[arg(long)]
        no_overdraft: bool,
        /// Keep the balance after every transfer.
        #[arg(long)]
        history: bool,
    },
    /// Move money between two accounts.
    Transfer(Move),
    /// Reserve money (a hold), optionally expiring.
    Hold {
        #[command(flatten)]
        m: Move,
        /// Seconds until the hold is released automatically (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u32,
    },
    /// Money out of an account, against the ledger's settlement account.
    Debit(OneSide),
    /// Money into an account, against the ledger's settlement account.
    Credit(OneSide),
    /// Post a hold, in full or (with --amount) in part; the rest is released.
    Capture {
        /// The capture's own transfer id (unique; a retry sends the same).
        #[arg(long)]
        id: u128,
        /// The hold's transfer id.
        #[arg(long)]
        hold: u128,
        /// How much to capture ("15.25"); the whole hold when omitted.
        #[arg(long, allow_hyphen_values = true)]
        amount: Option<String>,
    },
    /// Release a hold.
    Release {
        /// The release's own transfer id (unique; a retry sends the same).
        #[arg(long)]
        id: u128,
        /// The hold's transfer id.
        #[arg(long)]
        hold: u128,
    },
    /// Block debits and/or credits of an account.
    Freeze(Sides),
    /// Unblock debits and/or credits of an account.
    Thaw(Sides),
    /// Close an account whose balance is zero.
    Close {
        /// The account (its balance must be zero and nothing held).
        #[arg(long)]
        account: u128,
    },
    /// Set or remove an account's debit limit (overdraft line) and/or credit limit, in the
    /// account's currency ("500.00"). Lowering below what is used refuses further movements only.
    SetLimits {
        /// The account.
        #[arg(long)]
        account: u128,
        /// How far debits (holds included) may exceed credits.
        #[arg(long, conflicts_with = "remove_debit_limit")]
        debit_limit: Option<String>,
        /// How far credits (holds included) may exceed debits.
        #[arg(long, conflicts_with = "remove_credit_limit")]
        credit_limit: Option<String>,
        /// Back to the account's flag (no overdraft, or none).
        #[arg(long)]
        remove_debit_limit: bool,
        /// Back to the account's flag for credits.
        #[arg(long)]
        remove_credit_limit: bool,
    },
    /// Move (part of) a posted transfer back between its accounts: a refund, a chargeback or a
    /// correction. At most what is left after earlier reversals.
    Reverse {
        #[arg(long)]
        id: u128,
        /// The transfer (or capture) to reverse.
        #[arg(long)]
        transfer: u128,
        /// How much ("12.50"); all that is left when omitted.
        #[arg(long, allow_hyphen_values = true)]
        amount: Option<String>,
        /// refund, chargeback, correction, or a code number.
        #[arg(long, default_value = "refund")]
        reason: String,
    },
    /// Correct a posted transfer: reverse it in full (reason: correction) and post the corrected
    /// one, both or neither (a linked chain). Accounts default to the original's.
    Correct {
        /// The transfer to correct.
        #[arg(long)]
        transfer: u128,
        /// Id of the reversal.
        #[arg(long)]
        reversal_id: u128,
        /// Id of the corrected transfer.
        #[arg(long)]
        id: u128,
        /// The correct amount ("80.00").
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// The correct debit account (default: the original's).
        #[arg(long)]
        from: Option<u128>,
        /// The correct credit account (default: the original's).
        #[arg(long)]
        to: Option<u128>,
    },
    /// Show where a transfer came from and what became of it: its hold, capture or release,
    /// the original it reverses, its reversals and what is left to reverse.
    Trace { id: u128 },
    /// Set which transfer codes may debit and credit an account (channels: card, ATM, ...) and
    /// which may take it past its debit limit (chargebacks). Replaces the account's channel policy;
    /// with no list given, clears it. Codes are comma-separated: --debit-only 1,4.
    SetChannels {
        #[arg(long)]
        account: u128,
        /// Only these codes may debit the account.
        #[arg(long, value_delimiter = ',', conflicts_with = "debit_deny")]
        debit_only: Option<Vec<u16>>,
        /// These codes may not debit the account.
        #[arg(long, value_delimiter = ',')]
        debit_deny: Option<Vec<u16>>,
        /// Only these codes may credit the account.
        #[arg(long, value_delimiter = ',', conflicts_with = "credit_deny")]
        credit_only: Option<Vec<u16>>,
        /// These codes may not credit the account.
        #[arg(long, value_delimiter = ',')]
        credit_deny: Option<Vec<u16>>,
        /// Debits with these codes may exceed the account's debit limit (chargebacks).
        #[arg(long, value_delimiter = ',')]
        limit_exempt: Option<Vec<u16>>,
    },
    /// Set (or with --remove, remove) a velocity rule of an account: at most --count movements
    /// and/or --amount in sum per --window, of its --debits or --credits.
    SetVelocity {
        #[arg(long)]
        account: u128,
        /// Which of the account's 8 rules (0 to 7).
        #[arg(long, default_value_t = 0)]
        slot: u8,
        /// minute, hour, day, week (from Monday, UTC), month, or a rolling window in seconds ("600s").
        #[arg(long, default_value = "day")]
        window: String,
        /// Count the account's debits.
        #[arg(long, conflicts_with = "credits")]
        debits: bool,
        /// Count the account's credits.
        #[arg(long)]
        credits: bool,
        /// Most movements per window.
        #[arg(long)]
        count: Option<u32>,
        /// Most money per window ("500.00").
        #[arg(long, allow_hyphen_values = true)]
        amount: Option<String>,
        /// Count only these transfer codes (comma-separated; default every code).
        #[arg(long, value_delimiter = ',')]
        codes: Option<Vec<u16>>,
        /// Remove the rule in --slot.
        #[arg(long)]
        remove: bool,
    },
    /// Show an account's channel policy and velocity rules, with what each rule has used now.
    Policy { account: u128 },
    /// Submit many commands in one request: FILE holds one `bursar client` command per line (as
    /// typed after `bursar client`, e.g. `transfer --id 7 --from 1 --to 2 --amount 5 --ledger
    /// 978`; blank lines and `#` comments skipped; `-` reads stdin). With --chain they are one
    /// linked chain: all take effect or none.
    Batch {
        file: PathBuf,
        #[arg(long)]
        chain: bool,
    },
    /// Standing orders: a fixed amount every period, run by the server on its logged clock.
    StandingOrder {
        #[command(subcommand)]
        op: crate::orders_cmd::StandingOrderOp,
    },
    /// Triggers: a payment when an account runs low or shows a debt.
    Trigger {
        #[command(subcommand)]
        op: crate::orders_cmd::TriggerOp,
    },
    /// Show the live standing orders and triggers an account pays, is paid by or is watched by.
    Orders { account: u128 },
    /// Make a quote: a rate between two ledgers, guaranteed for a time, on the desk's accounts.
    CreateQuote(crate::exchange_cmd::NewQuote),
    /// Exchange at a quote: the customer's money to the desk in one currency and the desk's to
    /// the customer in the other, both or neither; with --order, settle an order.
    Exchange(crate::exchange_cmd::NewExchange),
    /// Accept a quote for an amount: reserve the desk's money until the payment arrives.
    PlaceOrder(crate::exchange_cmd::NewOrder),
    /// Show quotes: rate, validity, accounts and what they paid out.
    Quotes { ids: Vec<u128> },
    /// Show the limits in force on accounts.
    Limits { ids: Vec<u128> },
    /// Show accounts.
    Accounts { ids: Vec<u128> },
    /// Show transfers.
    Transfers { ids: Vec<u128> },
    /// Show a ledger's totals by account code and its trial balance; every ledger's without one.
    Totals { ledger: Option<u32> },
    /// Print the change feed's events as they happen (commands with their results, transfers
    /// with both balances after, expiries, runs), from a log position, until interrupted.
    Watch(crate::watch_cmd::Watch),
    /// Show the pending holds that go back soonest (by their timeout), soonest first.
    Expiring {
        /// At most this many (up to 8 189).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show an account's transfers (oldest first, or newest first with --newest).
    History {
        /// The account.
        #[arg(long)]
        account: u128,
        /// At most this many lines.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Newest first.
        #[arg(long)]
        newest: bool,
        /// The balance after each change instead (accounts created with --history).
        #[arg(long)]
        balances: bool,
    },
}

/// A two-sided movement.
#[derive(Args, Debug)]
pub struct Move {
    /// The transfer's id (chosen by you, unique; a retry sends the same and moves nothing twice).
    #[arg(long)]
    id: u128,
    /// The account debited.
    #[arg(long)]
    from: u128,
    /// The account credited.
    #[arg(long)]
    to: u128,
    /// "12.50" or "12.50 EUR".
    #[arg(long, allow_hyphen_values = true)]
    amount: String,
    /// The ledger (currency) of both accounts.
    #[arg(long)]
    ledger: u32,
    /// The transfer's type or channel, your numbering (docs/accounts.md uses 4 card, 5 cash, 6 top-up, 7 bank transfer, 8 fee).
    #[arg(long, default_value_t = 1)]
    code: u16,
    #[command(flatten)]
    user_data: UserData,
}

/// A movement's opaque client data (an order number, a customer reference): stored with the
/// transfer, matched by `history` filters and the statement.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct UserData {
    /// 128 bits of client data.
    #[arg(long, default_value_t = 0)]
    user_data_128: u128,
    /// 64 bits of client data.
    #[arg(long, default_value_t = 0)]
    user_data_64: u64,
    /// 32 bits of client data.
    #[arg(long, default_value_t = 0)]
    user_data_32: u32,
}

impl UserData {
    fn on(self, t: Transfer) -> Transfer {
        Transfer { user_data_128: self.user_data_128, user_data_64: self.user_data_64, user_data_32: self.user_data_32, ..t }
    }
}

/// A single-sided movement.
#[derive(Args, Debug)]
pub struct OneSide {
    /// The transfer's id (chosen by you, unique; a retry sends the same and moves nothing twice).
    #[arg(long)]
    id: u128,
    /// The account; the other side is the ledger's settlement account.
    #[arg(long)]
    account: u128,
    /// "12.50" or "12.50 EUR".
    #[arg(long, allow_hyphen_values = true)]
    amount: String,
    /// The ledger (currency).
    #[arg(long)]
    ledger: u32,
    /// The transfer's type or channel, your numbering (docs/accounts.md uses 4 card, 5 cash, 6 top-up, 7 bank transfer, 8 fee).
    #[arg(long, default_value_t = 1)]
    code: u16,
    #[command(flatten)]
    user_data: UserData,
}

/// Which sides to freeze or thaw (both when neither is given).
#[derive(Args, Debug)]
pub struct Sides {
    /// The account.
    #[arg(long)]
    account: u128,
    /// Debits only.
    #[arg(long)]
    debits: bool,
    /// Credits only.
    #[arg(long)]
    credits: bool,
}

/// Converts "12.50" or "12.50 EUR" to minor units of `ledger`, exactly.
pub fn to_minor(text: &str, ledger: &Ledger) -> Result<u128> {
    let currency = String::from_utf8_lossy(&ledger.currency).to_string();
    let (number, given) = match text.trim().split_once(char::is_whitespace) {
        Some((n, c)) => (n, Some(c.trim())),
        None => (text.trim(), None),
    };
    if let Some(given) = given {
        if !given.eq_ignore_ascii_case(&currency) {
            bail!("{text}: ledger {} is in {currency}", ledger.id);
        }
    }
    let value = Decimal::from_str_exact(number).with_context(|| format!("{text}: not a decimal amount"))?;
    if value.is_sign_negative() {
        bail!("{text}: amounts are never negative; use the other direction");
    }
    if value.scale() > ledger.scale as u32 {
        bail!("{text}: {currency} has {} decimals; refusing to round", ledger.scale);
    }
    let factor = 10u128.pow(ledger.scale as u32 - value.scale());
    u128::try_from(value.mantissa()).ok().and_then(|m| m.checked_mul(factor)).with_context(|| format!("{text}: too large"))
}

/// The ledger record of `id` (its currency and scale, for amounts).
pub(crate) async fn ledger_of(client: &Client, id: u32) -> Result<Ledger> {
    Ok(ledger(client, id).await?.ledger)
}

async fn ledger(client: &Client, id: u32) -> Result<LedgerView> {
    if let Some(view) = client.ledger_totals(vec![id]).await?.pop().flatten() {
        return Ok(view);
    }
    // A ledger an earlier line of the same batch creates: its currency and scale are known.
    let pending = BATCH_LEDGERS.with(|ledgers| ledgers.borrow().iter().find(|l| l.id == id).copied());
    pending
        .map(|ledger| LedgerView { ledger, accounts: 0, totals: Default::default(), by_code: Vec::new() })
        .with_context(|| format!("ledger {id} is not registered"))
}

thread_local! {
    /// Ledgers created by earlier lines of the batch being built (`bursar client batch`), so a
    /// later line can state amounts in their currency before the batch is sent.
    static BATCH_LEDGERS: std::cell::RefCell<Vec<Ledger>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Set when a lookup printed "not found": the command then exits with status 2 (text output; with
/// `--json` the answer is data, `"found":false`, and the status stays 0).
static NOT_FOUND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn not_found(json: bool) {
    if !json {
        NOT_FOUND.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A lookup's end: status 2 when something asked for was not found.
/// Runs one client command.
pub async fn run(args: ClientArgs) -> Result<()> {
    let client = args.server.connect().await?;
    let result = dispatch(&client, args.op, args.json).await;
    // Told, the server need not hold this connection's replies until they time out.
    client.close().await;
    result?;
    // A lookup that found nothing exits 2 (after printing what it found).
    if NOT_FOUND.load(std::sync::atomic::Ordering::Relaxed) {
        std::process::exit(2);
    }
    Ok(())
}

/// The command itself, on a connected client.
async fn dispatch(client: &Client, op: ClientOp, json: bool) -> Result<()> {
    match op {
        ClientOp::Trace { id } => trace(client, id, json).await,
        ClientOp::Policy { account } => show_policy(client, account, json).await,
        ClientOp::Limits { ids } => show_limits(client, ids, json).await,
        ClientOp::Accounts { ids } => show_accounts(client, ids, json).await,
        ClientOp::Transfers { ids } => show_transfers(client, ids, json).await,
        ClientOp::Totals { ledger: Some(id) } => show_totals(&ledger(client, id).await?, json),
        ClientOp::Totals { ledger: None } => {
            for view in client.ledger_totals(Vec::new()).await?.into_iter().flatten() {
                show_totals(&view, json)?;
            }
            Ok(())
        }
        ClientOp::Expiring { limit } => show_expiring(client, limit, json).await,
        ClientOp::Watch(watch) => crate::watch_cmd::run(client, watch, json).await,
        ClientOp::History { account, limit, newest, balances } => show_history(client, account, limit, newest, balances, json).await,
        ClientOp::Batch { file, chain } => batch(client, &file, chain, json).await,
        ClientOp::Orders { account } => crate::orders_cmd::show(client, None, Some(account), json).await,
        ClientOp::Quotes { ids } => crate::exchange_cmd::show(client, ids, json).await,
        ClientOp::StandingOrder { op: StandingOrderOp::Manage(ManageOrder::Show { ids }) }
        | ClientOp::Trigger { op: TriggerOp::Manage(ManageOrder::Show { ids }) } => {
            crate::orders_cmd::show(client, Some(ids), None, json).await
        }
        op => {
            let commands = build(client, op).await?;
            submit_and_print(client, commands, json).await
        }
    }
}

/// The command(s) a submitting operation sends (`correct` sends a chain of two).
async fn build(client: &Client, op: ClientOp) -> Result<Vec<Command>> {
    let command = match op {
        ClientOp::CreateLedger { id, currency, scale, settlement } => {
            let bytes: [u8; 3] = currency.as_bytes().try_into().ok().with_context(|| format!("{currency}: a currency is three letters"))?;
            Command::CreateLedger(Ledger {
                id,
                currency: bytes,
                scale,
                settlement_account_id: settlement,
                settlement_account_code: 1,
                ..Default::default()
            })
        }
        ClientOp::CreateAccount { id, ledger, code, no_overdraft, history } => {
            let mut flags = 0;
            if no_overdraft {
                flags |= account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS;
            }
            if history {
                flags |= account_flags::HISTORY;
            }
            Command::CreateAccount(Account { id, ledger, code, flags, ..Default::default() })
        }
        ClientOp::Transfer(m) => Command::Transfer(movement(client, &m, 0).await?),
        ClientOp::Hold { m, timeout } => Command::Hold(movement(client, &m, timeout).await?),
        ClientOp::Debit(o) => {
            let l = ledger(client, o.ledger).await?.ledger;
            Command::Debit(o.user_data.on(Transfer {
                id: o.id,
                debit_account_id: o.account,
                amount: to_minor(&o.amount, &l)?,
                ledger: o.ledger,
                code: o.code,
                ..Default::default()
            }))
        }
        ClientOp::Credit(o) => {
            let l = ledger(client, o.ledger).await?.ledger;
            Command::Credit(o.user_data.on(Transfer {
                id: o.id,
                credit_account_id: o.account,
                amount: to_minor(&o.amount, &l)?,
                ledger: o.ledger,
                code: o.code,
                ..Default::default()
            }))
        }
        ClientOp::Capture { id, hold, amount } => {
            let amount = match amount {
                None => u128::MAX,
                Some(text) => {
                    let held =
                        client.lookup_transfers(vec![hold]).await?.pop().flatten().with_context(|| format!("hold {hold} not found"))?;
                    to_minor(&text, &ledger(client, held.ledger).await?.ledger)?
                }
            };
            Command::Capture(Transfer { id, pending_id: hold, amount, ..Default::default() })
        }
        ClientOp::Release { id, hold } => Command::Release(Transfer { id, pending_id: hold, ..Default::default() }),
        ClientOp::Freeze(s) => Command::Freeze(change(&s)),
        ClientOp::Thaw(s) => Command::Thaw(change(&s)),
        ClientOp::Close { account } => Command::Close(AccountChange { account_id: account, ..Default::default() }),
        ClientOp::SetLimits { account, debit_limit, credit_limit, remove_debit_limit, remove_credit_limit } => {
            let found =
                client.lookup_accounts(vec![account]).await?.pop().flatten().with_context(|| format!("account {account} not found"))?;
            let l = ledger(client, found.ledger).await?.ledger;
            let mut change = AccountLimits { account_id: account, ..Default::default() };
            if let Some(text) = debit_limit {
                change.flags |= limit_flags::DEBIT_LIMIT;
                change.debit_limit = to_minor(&text, &l)?;
            }
            if let Some(text) = credit_limit {
                change.flags |= limit_flags::CREDIT_LIMIT;
                change.credit_limit = to_minor(&text, &l)?;
            }
            change.flags |= if remove_debit_limit { limit_flags::REMOVE_DEBIT_LIMIT } else { 0 };
            change.flags |= if remove_credit_limit { limit_flags::REMOVE_CREDIT_LIMIT } else { 0 };
            Command::SetLimits(change)
        }
        ClientOp::Reverse { id, transfer, amount, reason } => {
            let amount = match amount {
                None => u128::MAX,
                Some(text) => {
                    let original = client
                        .lookup_transfers(vec![transfer])
                        .await?
                        .pop()
                        .flatten()
                        .with_context(|| format!("transfer {transfer} not found"))?;
                    to_minor(&text, &ledger(client, original.ledger).await?.ledger)?
                }
            };
            Command::Reverse(Transfer { id, pending_id: transfer, amount, code: reason_code(&reason)?, ..Default::default() })
        }
        ClientOp::Correct { transfer, reversal_id, id, amount, from, to } => {
            let original =
                client.lookup_transfers(vec![transfer]).await?.pop().flatten().with_context(|| format!("transfer {transfer} not found"))?;
            let l = ledger(client, original.ledger).await?.ledger;
            let reversal = Transfer {
                id: reversal_id,
                pending_id: transfer,
                amount: u128::MAX,
                code: 3,
                flags: bursar_engine::transfer_flags::LINKED,
                ..Default::default()
            };
            let corrected = Transfer {
                id,
                debit_account_id: from.unwrap_or(original.debit_account_id),
                credit_account_id: to.unwrap_or(original.credit_account_id),
                amount: to_minor(&amount, &l)?,
                ledger: original.ledger,
                code: original.code,
                ..Default::default()
            };
            return Ok(vec![Command::Reverse(reversal), Command::Transfer(corrected)]);
        }
        ClientOp::SetChannels { account, debit_only, debit_deny, credit_only, credit_deny, limit_exempt } => {
            let mut c = ChannelPolicy { account_id: account, ..Default::default() };
            if debit_only.is_some() {
                c.flags |= channel_flags::DEBITS_ALLOW;
            }
            if credit_only.is_some() {
                c.flags |= channel_flags::CREDITS_ALLOW;
            }
            c.debit_codes = code_list(debit_only.or(debit_deny).unwrap_or_default())?;
            c.credit_codes = code_list(credit_only.or(credit_deny).unwrap_or_default())?;
            c.limit_exempt_codes = code_list(limit_exempt.unwrap_or_default())?;
            Command::SetChannels(c)
        }
        ClientOp::SetVelocity { account, slot, window, debits, credits, count, amount, codes, remove } => {
            if remove {
                Command::SetVelocity(VelocityRule { account_id: account, slot, flags: velocity_flags::REMOVE, ..Default::default() })
            } else {
                let (window, window_seconds) = parse_window(&window)?;
                let mut v = VelocityRule { account_id: account, slot, window, window_seconds, ..Default::default() };
                v.flags |= if debits { velocity_flags::DEBITS } else { 0 } | if credits { velocity_flags::CREDITS } else { 0 };
                if let Some(count) = count {
                    v.flags |= velocity_flags::COUNT;
                    v.count_max = count;
                }
                if let Some(text) = amount {
                    let found = client
                        .lookup_accounts(vec![account])
                        .await?
                        .pop()
                        .flatten()
                        .with_context(|| format!("account {account} not found"))?;
                    v.flags |= velocity_flags::AMOUNT;
                    v.amount_max = to_minor(&text, &ledger(client, found.ledger).await?.ledger)?;
                }
                v.codes = code_list(codes.unwrap_or_default())?;
                Command::SetVelocity(v)
            }
        }
        ClientOp::StandingOrder { op } => crate::orders_cmd::standing_order(client, op).await?.context("show is a lookup")?,
        ClientOp::Trigger { op } => crate::orders_cmd::trigger(client, op).await?.context("show is a lookup")?,
        ClientOp::CreateQuote(n) => crate::exchange_cmd::create_quote(client, n).await?,
        ClientOp::Exchange(n) => crate::exchange_cmd::exchange(client, n).await?,
        ClientOp::PlaceOrder(n) => crate::exchange_cmd::place_order(client, n).await?,
        lookup => bail!("{lookup:?} is a lookup or a batch, not a command to submit"),
    };
    Ok(vec![command])
}

/// One line of a batch file, parsed as `bursar client <line>` would be.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = true)]
struct BatchLine {
    #[command(subcommand)]
    op: ClientOp,
}

/// `bursar client batch`: every line's command(s) in one request, linked into one chain with
/// `chain`.
async fn batch(client: &Client, file: &Path, chain: bool, json: bool) -> Result<()> {
    use clap::Parser as _;
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the batch from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let mut commands = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
        let words = shell_words(line).with_context(|| format!("{}:{n}", file.display()))?;
        let parsed = BatchLine::try_parse_from(words).map_err(|e| anyhow::anyhow!("{}:{n}: {e}", file.display()))?;
        let built = build(client, parsed.op).await.with_context(|| format!("{}:{n}", file.display()))?;
        for command in &built {
            if let Command::CreateLedger(l) = command {
                BATCH_LEDGERS.with(|ledgers| ledgers.borrow_mut().push(*l));
            }
        }
        commands.extend(built);
    }
    if commands.is_empty() {
        bail!("{}: no commands", file.display());
    }
    if commands.len() > bursar_engine::BATCH_COMMANDS_MAX {
        bail!("{}: {} commands; a request carries at most {}", file.display(), commands.len(), bursar_engine::BATCH_COMMANDS_MAX);
    }
    let last = commands.len() - 1;
    for (k, command) in commands.iter_mut().enumerate() {
        if chain && k < last {
            *command.flags_mut() |= bursar_engine::types::FLAG_LINKED;
        }
    }
    submit_and_print(client, commands, json).await
}

/// A line split into words as a shell would (double or single quotes group, no expansion).
fn shell_words(line: &str) -> Result<Vec<String>> {
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for ch in line.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => (quote, started) = (Some(ch), true),
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => (word.push(c), started = true).1,
        }
    }
    if quote.is_some() {
        bail!("an unclosed quote");
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// Submits the commands as one request and prints one result per command; exits with status 2
/// when any failed.
async fn submit_and_print(client: &Client, commands: Vec<Command>, json: bool) -> Result<()> {
    let results = client.submit(commands).await?;
    for result in &results {
        if json {
            println!("{{\"result\":\"{}\",\"code\":{},\"success\":{}}}", result.name(), *result as u32, result.is_success());
        } else {
            println!("{}: {}", result.name(), result.meaning());
        }
    }
    if results.iter().all(|r| r.is_success()) {
        Ok(())
    } else {
        std::process::exit(2)
    }
}

async fn movement(client: &Client, m: &Move, timeout: u32) -> Result<Transfer> {
    let l = ledger(client, m.ledger).await?.ledger;
    Ok(m.user_data.on(Transfer {
        id: m.id,
        debit_account_id: m.from,
        credit_account_id: m.to,
        amount: to_minor(&m.amount, &l)?,
        ledger: m.ledger,
        code: m.code,
        timeout,
        ..Default::default()
    }))
}

fn change(s: &Sides) -> AccountChange {
    let mut flags = 0;
    if s.debits || !s.credits {
        flags |= change_flags::DEBITS;
    }
    if s.credits || !s.debits {
        flags |= change_flags::CREDITS;
    }
    AccountChange { account_id: s.account, flags, ..Default::default() }
}

async fn show_accounts(client: &Client, ids: Vec<u128>, json: bool) -> Result<()> {
    let limits = client.lookup_limits(ids.clone()).await?;
    for ((id, account), limit) in ids.iter().zip(client.lookup_accounts(ids.clone()).await?).zip(limits) {
        let Some(a) = account else {
            println!("{}", if json { format!("{{\"id\":\"{id}\",\"found\":false}}") } else { format!("account {id}: not found") });
            not_found(json);
            continue;
        };
        let l = ledger(client, a.ledger).await?.ledger;
        let debit_limit = limit.and_then(|l| l.limits.debit_limit);
        let (sign, available) =
            signed(a.credits_posted.saturating_add(debit_limit.unwrap_or(0)), a.debits_posted.saturating_add(a.debits_pending));
        let (state, flags) = (state_words(a.state), flag_words(a.flags));
        if json {
            println!(
                "{{\"id\":\"{}\",\"found\":true,\"ledger\":{},\"code\":{},\"flags\":{},\"flag_names\":\"{flags}\",\"state\":{},\"state_name\":\"{state}\",\"debits_pending\":\"{}\",\"debits_posted\":\"{}\",\"credits_pending\":\"{}\",\"credits_posted\":\"{}\",\"available\":\"{sign}{available}\"}}",
                a.id, a.ledger, a.code, a.flags, a.state, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted
            );
            continue;
        }
        let f = |v: u128| format_minor(v, &l);
        let (bsign, balance) = signed(a.credits_posted, a.debits_posted);
        let within = match debit_limit {
            Some(0) | None => String::new(),
            Some(limit) => format!(" with a {} overdraft", f(limit)),
        };
        println!(
            "account {}: ledger {} code {}, {state}{}{flags}; balance {bsign}{}, available {sign}{}{within}; debits posted {} pending {}, credits posted {} pending {}",
            a.id,
            a.ledger,
            a.code,
            if flags.is_empty() { "" } else { ", " },
            f(balance),
            f(available),
            f(a.debits_posted),
            f(a.debits_pending),
            f(a.credits_posted),
            f(a.credits_pending)
        );
    }
    Ok(())
}

/// `plus - minus` as a sign and a magnitude, exact for any u128.
fn signed(plus: u128, minus: u128) -> (&'static str, u128) {
    if plus >= minus {
        ("", plus - minus)
    } else {
        ("-", minus - plus)
    }
}

/// An account's state in words.
fn state_words(state: u8) -> &'static str {
    use bursar_engine::account_state as st;
    if state & st::CLOSED != 0 {
        return "closed";
    }
    match (state & st::FROZEN_DEBITS != 0, state & st::FROZEN_CREDITS != 0) {
        (true, true) => "frozen",
        (true, false) => "debits frozen",
        (false, true) => "credits frozen",
        (false, false) => "open",
    }
}

/// An account's flags in words ("no overdraft, history"), empty when none.
fn flag_words(flags: u16) -> String {
    let names = [
        (account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS, "no overdraft"),
        (account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS, "no overcredit"),
        (account_flags::HISTORY, "history"),
    ];
    names.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, name)| *name).collect::<Vec<_>>().join(", ")
}

/// For a hold: where it stands (", pending until …", ", captured by 102 at …"); empty otherwise.
async fn hold_state(client: &Client, t: &Transfer) -> Result<String> {
    if t.flags & bursar_engine::transfer_flags::PENDING == 0 {
        return Ok(String::new());
    }
    let Some(h) = client.lookup_lineage(t.id).await?.and_then(|l| l.hold.map(|h| (h, l.resolution))) else { return Ok(String::new()) };
    let (hold, resolution) = h;
    Ok(match (hold.status, resolution) {
        (HoldStatus::Pending, _) if hold.expires_at == 0 => ", pending".to_string(),
        (HoldStatus::Pending, _) => format!(", pending until {}", show_time(hold.expires_at)),
        (HoldStatus::Posted, Some(r)) => format!(", captured by {} at {}", r.id, show_time(hold.resolved_at)),
        (HoldStatus::Voided, Some(r)) => format!(", released by {} at {}", r.id, show_time(hold.resolved_at)),
        (HoldStatus::Expired, _) => format!(", expired at {}", show_time(hold.resolved_at)),
        (status, None) => format!(", {status:?} at {}", show_time(hold.resolved_at)).to_lowercase(),
    })
}

async fn show_expiring(client: &Client, limit: u32, json: bool) -> Result<()> {
    for t in client.expiring_holds(limit).await? {
        let l = ledger(client, t.ledger).await?.ledger;
        let expires_at = t.timestamp.saturating_add(u64::from(t.timeout) * 1_000_000_000);
        if json {
            let value = serde_json::json!({
                "id": t.id.to_string(), "debit_account_id": t.debit_account_id.to_string(), "credit_account_id": t.credit_account_id.to_string(),
                "amount": format_minor(t.amount, &l), "expires_at": show_time(expires_at),
            });
            println!("{value}");
        } else {
            println!(
                "hold {}: {} from {} to {}, goes back at {}",
                t.id,
                format_minor(t.amount, &l),
                t.debit_account_id,
                t.credit_account_id,
                show_time(expires_at)
            );
        }
    }
    Ok(())
}

async fn show_transfers(client: &Client, ids: Vec<u128>, json: bool) -> Result<()> {
    let outcomes = client.lookup_outcomes(ids.clone()).await?;
    for ((id, transfer), outcome) in ids.iter().zip(client.lookup_transfers(ids.clone()).await?).zip(outcomes) {
        let Some(t) = transfer else {
            println!("{}", not_stored(*id, &outcome, json));
            if outcome.status == OutcomeStatus::Unknown {
                not_found(json);
            }
            continue;
        };
        let l = ledger(client, t.ledger).await?.ledger;
        if json {
            println!(
                "{{\"id\":\"{}\",\"found\":true,\"kind\":\"{}\",\"debit_account_id\":\"{}\",\"credit_account_id\":\"{}\",\"amount\":\"{}\",\"ledger\":{},\"code\":{},\"flags\":{},\"pending_id\":\"{}\",\"user_data_128\":\"{}\",\"user_data_64\":{},\"user_data_32\":{},\"timestamp\":{}}}",
                t.id, t.kind_name(), t.debit_account_id, t.credit_account_id, t.amount, t.ledger, t.code, t.flags, t.pending_id, t.user_data_128, t.user_data_64, t.user_data_32, t.timestamp
            );
        } else {
            let of = match t.kind_name() {
                "capture" | "release" => format!(" of hold {}", t.pending_id),
                "reversal" => format!(" of transfer {}", t.pending_id),
                _ => String::new(),
            };
            println!(
                "{} {}{of}: {} from {} to {} (code {}) at {}{}",
                t.kind_name(),
                t.id,
                format_minor(t.amount, &l),
                t.debit_account_id,
                t.credit_account_id,
                t.code,
                show_time(t.timestamp),
                hold_state(client, &t).await?
            );
        }
    }
    Ok(())
}

/// A list of transfer codes into a record's fixed slots.
fn code_list<const N: usize>(codes: Vec<u16>) -> Result<[u16; N]> {
    if codes.len() > N || codes.contains(&0) {
        bail!("at most {N} codes, each from 1 to 65535: {codes:?}");
    }
    let mut out = [0u16; N];
    out[..codes.len()].copy_from_slice(&codes);
    Ok(out)
}

const WINDOWS: [(&str, u8); 5] = [
    ("minute", velocity_window::MINUTE),
    ("hour", velocity_window::HOUR),
    ("day", velocity_window::DAY),
    ("week", velocity_window::WEEK),
    ("month", velocity_window::MONTH),
];

/// "day", or "600s" (a rolling window).
pub(crate) fn parse_window(text: &str) -> Result<(u8, u32)> {
    if let Some((_, window)) = WINDOWS.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)) {
        return Ok((*window, 0));
    }
    match text.strip_suffix('s').and_then(|n| n.parse::<u32>().ok()) {
        Some(seconds) => Ok((velocity_window::ROLLING, seconds)),
        None => bail!("{text}: a window is minute, hour, day, week, month, or seconds such as 600s"),
    }
}

fn window_name(rule: &VelocityRule) -> String {
    WINDOWS.iter().find(|(_, w)| *w == rule.window).map_or(format!("rolling {} s", rule.window_seconds), |(name, _)| name.to_string())
}

async fn show_policy(client: &Client, account: u128, json: bool) -> Result<()> {
    let Some(policy) = client.lookup_policy(account).await? else {
        println!("{}", if json { format!("{{\"id\":\"{account}\",\"found\":false}}") } else { format!("account {account}: not found") });
        not_found(json);
        return Ok(());
    };
    let list = |codes: &[u16]| codes.iter().filter(|c| **c != 0).map(u16::to_string).collect::<Vec<_>>().join(",");
    let c = &policy.channels;
    let side = |codes: &[u16], allow: bool| match (allow, list(codes).as_str()) {
        (true, l) => format!("only codes [{l}]"),
        (false, "") => "any code".to_string(),
        (false, l) => format!("any code but [{l}]"),
    };
    let debits = side(&c.debit_codes, c.flags & channel_flags::DEBITS_ALLOW != 0);
    let credits = side(&c.credit_codes, c.flags & channel_flags::CREDITS_ALLOW != 0);
    if json {
        let rules: Vec<String> = policy
            .rules
            .iter()
            .map(|u| format!("{{\"slot\":{},\"window\":\"{}\",\"flags\":{},\"count_max\":{},\"amount_max\":\"{}\",\"codes\":[{}],\"count\":{},\"amount\":\"{}\",\"window_start\":{},\"window_end\":{}}}",
                u.rule.slot, window_name(&u.rule), u.rule.flags, u.rule.count_max, u.rule.amount_max, list(&u.rule.codes), u.count, u.amount, u.window_start, u.window_end))
            .collect();
        println!(
            "{{\"id\":\"{account}\",\"found\":true,\"debits\":\"{debits}\",\"credits\":\"{credits}\",\"limit_exempt_codes\":[{}],\"rules\":[{}]}}",
            list(&c.limit_exempt_codes),
            rules.join(",")
        );
        return Ok(());
    }
    let found = client.lookup_accounts(vec![account]).await?.pop().flatten().with_context(|| format!("account {account} not found"))?;
    let l = ledger(client, found.ledger).await?.ledger;
    println!("account {account}: debits by {debits}; credits by {credits}");
    if c.limit_exempt_codes.iter().any(|code| *code != 0) {
        println!("  codes [{}] may debit past the debit limit", list(&c.limit_exempt_codes));
    }
    for u in &policy.rules {
        let r = &u.rule;
        let what = if r.flags & velocity_flags::DEBITS != 0 { "debits" } else { "credits" };
        let codes = if r.codes == [0; 8] { String::new() } else { format!(" with codes [{}]", list(&r.codes)) };
        let mut bounds = Vec::new();
        if r.flags & velocity_flags::COUNT != 0 {
            bounds.push(format!("{} of at most {}", u.count, r.count_max));
        }
        if r.flags & velocity_flags::AMOUNT != 0 {
            bounds.push(format!("{} of at most {}", format_minor(u.amount, &l), format_minor(r.amount_max, &l)));
        }
        println!("  rule {}: {what}{codes} per {}: used {}", r.slot, window_name(r), bounds.join(", "));
    }
    Ok(())
}

/// The reason codes `bursar client reverse` names (`docs/result-codes.md`, "Reversals").
const REASONS: [(&str, u16); 3] = [("refund", 1), ("chargeback", 2), ("correction", 3)];

fn reason_code(text: &str) -> Result<u16> {
    if let Some((_, code)) = REASONS.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)) {
        return Ok(*code);
    }
    match text.parse::<u16>() {
        Ok(code) if code != 0 => Ok(code),
        _ => bail!("{text}: a reason is refund, chargeback, correction or a code from 1 to 65535"),
    }
}

fn reason_name(code: u16) -> String {
    REASONS.iter().find(|(_, c)| *c == code).map_or(format!("code {code}"), |(name, _)| name.to_string())
}

/// `bursar client trace`: the lineage of a transfer, and of its hold's capture.
async fn trace(client: &Client, id: u128, json: bool) -> Result<()> {
    let Some(lineage) = client.lookup_lineage(id).await? else {
        let outcome = client.lookup_outcomes(vec![id]).await?.pop().context("one outcome per id")?;
        println!("{}", not_stored(id, &outcome, json));
        if outcome.status == OutcomeStatus::Unknown {
            not_found(json);
        }
        return Ok(());
    };
    let l = ledger(client, lineage.transfer.ledger).await?.ledger;
    if json {
        println!("{}", lineage_json(&lineage));
        return Ok(());
    }
    let money = |v: u128| format_minor(v, &l);
    let line = |t: &Transfer| {
        format!(
            "{} from {} to {} (code {}) at {}",
            money(t.amount),
            t.debit_account_id,
            t.credit_account_id,
            t.code,
            show_time(t.timestamp)
        )
    };
    let t = &lineage.transfer;
    println!("transfer {}: {}", t.id, line(t));
    if let Some(o) = &lineage.reverses {
        println!("  reverses transfer {} ({}) as a {}", o.id, line(o), reason_name(t.code));
    }
    if let Some(h) = &lineage.hold {
        let status = format!("{:?}", h.status).to_lowercase();
        let resolved = if h.resolved_at != 0 { format!(" at {}", show_time(h.resolved_at)) } else { String::new() };
        let own = if h.transfer.id == t.id { "hold".to_string() } else { format!("resolves hold {}", h.transfer.id) };
        println!("  {own}: {} held, {status}{resolved}", money(h.transfer.amount));
    }
    if let Some(r) = &lineage.resolution {
        let what = if r.flags & bursar_engine::transfer_flags::POST_PENDING != 0 { "captured" } else { "released" };
        println!("  {what} by transfer {}: {}", r.id, line(r));
    }
    for r in &lineage.reversals {
        println!("  reversal {} ({}): {}", r.id, reason_name(r.code), line(r));
    }
    if lineage.reversals_total as usize > lineage.reversals.len() {
        println!("  ... {} reversals in all", lineage.reversals_total);
    }
    if lineage.reversed != 0 || lineage.reversible != 0 {
        println!("  reversed {}, left to reverse {}", money(lineage.reversed), money(lineage.reversible));
    }
    if let Some(r) = lineage.resolution.filter(|r| r.flags & bursar_engine::transfer_flags::POST_PENDING != 0) {
        Box::pin(trace(client, r.id, json)).await?;
    }
    Ok(())
}

fn lineage_json(l: &bursar_engine::Lineage) -> String {
    let id = |t: &Option<Transfer>| t.map_or("null".to_string(), |t| format!("\"{}\"", t.id));
    let reversals: Vec<String> =
        l.reversals.iter().map(|r| format!("{{\"id\":\"{}\",\"amount\":\"{}\",\"code\":{}}}", r.id, r.amount, r.code)).collect();
    format!(
        "{{\"id\":\"{}\",\"found\":true,\"hold\":{},\"hold_status\":{},\"resolution\":{},\"reverses\":{},\"reversals\":[{}],\"reversals_total\":{},\"reversed\":\"{}\",\"reversible\":\"{}\"}}",
        l.transfer.id,
        id(&l.hold.map(|h| h.transfer)),
        l.hold.map_or("null".to_string(), |h| format!("\"{:?}\"", h.status).to_lowercase()),
        id(&l.resolution),
        id(&l.reverses),
        reversals.join(","),
        l.reversals_total,
        l.reversed,
        l.reversible
    )
}

async fn show_limits(client: &Client, ids: Vec<u128>, json: bool) -> Result<()> {
    for (id, found) in ids.iter().zip(client.lookup_limits(ids.clone()).await?) {
        let Some(record) = found else {
            println!("{}", if json { format!("{{\"id\":\"{id}\",\"found\":false}}") } else { format!("account {id}: not found") });
            not_found(json);
            continue;
        };
        let l = record.limits;
        if json {
            let show = |v: Option<u128>| v.map_or("null".to_string(), |v| format!("\"{v}\""));
            println!(
                "{{\"id\":\"{id}\",\"found\":true,\"debit_limit\":{},\"credit_limit\":{},\"changed_at\":{}}}",
                show(l.debit_limit),
                show(l.credit_limit),
                l.changed_at
            );
            continue;
        }
        let account = client.lookup_accounts(vec![*id]).await?.pop().flatten().with_context(|| format!("account {id} not found"))?;
        let currency = ledger(client, account.ledger).await?.ledger;
        let show = |v: Option<u128>| v.map_or("none".to_string(), |v| format_minor(v, &currency));
        let changed = if l.changed_at == 0 {
            "never changed: the account's flags".to_string()
        } else {
            format!("changed at {}", show_time(l.changed_at))
        };
        println!("account {id}: debit limit {}  credit limit {}  ({changed})", show(l.debit_limit), show(l.credit_limit));
    }
    Ok(())
}

/// What `transfers` prints for an id with no stored transfer: declined for good (with the code
/// and time that decided it), or unknown.
fn not_stored(id: u128, outcome: &Outcome, json: bool) -> String {
    let failed = outcome.status == OutcomeStatus::Failed;
    match (json, failed) {
        (true, true) => format!(
            "{{\"id\":\"{id}\",\"found\":false,\"failed\":{{\"result\":\"{}\",\"code\":{},\"timestamp\":{}}}}}",
            outcome.code.name(),
            outcome.code as u32,
            outcome.timestamp
        ),
        (true, false) => format!("{{\"id\":\"{id}\",\"found\":false}}"),
        (false, true) => format!(
            "transfer {id}: declined with {} at {}; the id is decided: a command with it answers id_already_failed",
            outcome.code.name(),
            outcome.timestamp
        ),
        (false, false) => format!("transfer {id}: not found"),
    }
}

async fn show_history(client: &Client, account: u128, limit: u32, newest: bool, balances: bool, json: bool) -> Result<()> {
    let found = client.lookup_accounts(vec![account]).await?.pop().flatten().with_context(|| format!("account {account} not found"))?;
    let l = ledger(client, found.ledger).await?.ledger;
    let mut flags = filter_flags::DEBITS | filter_flags::CREDITS;
    if newest {
        flags |= filter_flags::REVERSED;
    }
    let filter = AccountFilter { account_id: account, limit, flags, ..Default::default() };
    if balances {
        for b in client.get_account_balances(filter).await? {
            let (sign, magnitude) = signed(b.balances.credits_posted, b.balances.debits_posted);
            if json {
                println!("{{\"timestamp\":{},\"debits_posted\":\"{}\",\"credits_posted\":\"{}\",\"debits_pending\":\"{}\",\"credits_pending\":\"{}\"}}", b.timestamp, b.balances.debits_posted, b.balances.credits_posted, b.balances.debits_pending, b.balances.credits_pending);
            } else {
                println!(
                    "at {}: posted balance {sign}{}  held {}",
                    show_time(b.timestamp),
                    format_minor(magnitude, &l),
                    format_minor(b.balances.debits_pending, &l)
                );
            }
        }
        return Ok(());
    }
    for t in client.get_account_transfers(filter).await? {
        let (direction, other) = if t.debit_account_id == account { ("out", t.credit_account_id) } else { ("in ", t.debit_account_id) };
        if json {
            println!("{{\"id\":\"{}\",\"direction\":\"{}\",\"counterparty\":\"{other}\",\"amount\":\"{}\",\"code\":{},\"flags\":{},\"timestamp\":{}}}", t.id, direction.trim(), t.amount, t.code, t.flags, t.timestamp);
        } else {
            println!(
                "{} {direction} {:>20}  counterparty {other}  {} {} (code {})",
                show_time(t.timestamp),
                format_minor(t.amount, &l),
                t.kind_name(),
                t.id,
                t.code
            );
        }
    }
    Ok(())
}

fn show_totals(view: &LedgerView, json: bool) -> Result<()> {
    let l = &view.ledger;
    let f = |v: u128| format_minor(v, l);
    if json {
        let rows: Vec<String> = view
            .by_code
            .iter()
            .map(|(code, accounts, t)| format!("{{\"code\":{code},\"accounts\":{accounts},\"debits_posted\":\"{}\",\"credits_posted\":\"{}\",\"debits_pending\":\"{}\",\"credits_pending\":\"{}\"}}", t.debits_posted, t.credits_posted, t.debits_pending, t.credits_pending))
            .collect();
        println!(
            "{{\"ledger\":{},\"accounts\":{},\"debits_posted\":\"{}\",\"credits_posted\":\"{}\",\"debits_pending\":\"{}\",\"credits_pending\":\"{}\",\"balanced\":{},\"by_code\":[{}]}}",
            l.id,
            view.accounts,
            view.totals.debits_posted,
            view.totals.credits_posted,
            view.totals.debits_pending,
            view.totals.credits_pending,
            view.is_balanced(),
            rows.join(",")
        );
        return Ok(());
    }
    println!("ledger {} ({}, scale {}): {} accounts", l.id, String::from_utf8_lossy(&l.currency), l.scale, view.accounts);
    println!("  posted   debits {}  credits {}", f(view.totals.debits_posted), f(view.totals.credits_posted));
    println!("  held     debits {}  credits {}", f(view.totals.debits_pending), f(view.totals.credits_pending));
    for (code, accounts, t) in &view.by_code {
        println!(
            "  code {code:>5}: {accounts} accounts, credits posted {}, debits posted {}, held {}",
            f(t.credits_posted),
            f(t.debits_posted),
            f(t.debits_pending)
        );
    }
    println!("  trial balance: {}", if view.is_balanced() { "balanced" } else { "NOT BALANCED" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly_or_are_refused() {
        let eur = Ledger { id: 978, currency: *b"EUR", scale: 2, ..Default::default() };
        assert_eq!(to_minor("12.50", &eur).expect("ok"), 1250);
        assert_eq!(to_minor("12.5 EUR", &eur).expect("ok"), 1250);
        assert_eq!(to_minor("0.01 eur", &eur).expect("ok"), 1);
        assert!(to_minor("12.505", &eur).is_err(), "never rounds");
        assert!(to_minor("-1", &eur).is_err());
        assert!(to_minor("12.50 USD", &eur).is_err());
        assert!(to_minor("twelve", &eur).is_err());
        assert_eq!(format_minor(1250, &eur), "12.50 EUR");
        assert_eq!(format_minor(7, &eur), "0.07 EUR");
        assert_eq!(format_minor(u128::MAX, &eur), "3402823669209384634633746074317682114.55 EUR");
        let jpy = Ledger { id: 392, currency: *b"JPY", scale: 0, ..Default::default() };
        assert_eq!(format_minor(500, &jpy), "500 JPY");
        assert_eq!(to_minor("500", &jpy).expect("ok"), 500);
    }
}
