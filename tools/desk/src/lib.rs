//! `bursar desk`: the currency-exchange desk's cashier tool, a gateway over the Bursar client
//! with no database of its own. Orders are engine quotes and holds; every id is derived
//! (`ids`), so what the desk knows is read back from the server (`orders`). Bank statements in
//! camt.053, MT940 or CSV map onto one model (`statement`), are matched to orders and booked
//! (`import`), and payouts leave as pain.001 or CSV files (`payouts`). `docs/desk.md` has the
//! workflow, the rules and the id layout.

pub mod camt;
pub mod config;
pub mod csvfile;
pub mod ids;
pub mod import;
pub mod ledger;
pub mod ops;
pub mod orders;
pub mod payouts;
pub mod statement;
pub mod suspense;
pub mod swift;

/// The transfer codes the desk books with, and the account codes of its accounts.
pub mod codes {
    /// The opening balance of a bank account (shadow to liquidity).
    pub const OPENING: u16 = 701;
    /// A statement line paying an order (shadow to the order's account).
    pub const LINE_IN: u16 = 702;
    /// Money in that matches no order (shadow to suspense).
    pub const SUSPENSE_IN: u16 = 703;
    /// Money out that matches no payout (suspense to shadow).
    pub const SUSPENSE_OUT: u16 = 704;
    /// An order's hold and both legs of its exchange (the quotes' code).
    pub const ORDER: u16 = 705;
    /// A cancellation: the release of an order's hold, or its marker once expired.
    pub const CANCEL: u16 = 706;
    /// A payout hold (the order's bought money to the bank account).
    pub const PAYOUT: u16 = 707;
    /// A refund hold (the order's sold money back).
    pub const REFUND: u16 = 708;
    /// Account code of a bank account's shadow.
    pub const ACCOUNT_SHADOW: u16 = 50;
    /// Account code of the desk's liquidity accounts.
    pub const ACCOUNT_LIQUIDITY: u16 = 30;
    /// Account code of the suspense accounts.
    pub const ACCOUNT_SUSPENSE: u16 = 31;
    /// Account code of an order's accounts.
    pub const ACCOUNT_ORDER: u16 = 10;
}
