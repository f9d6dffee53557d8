//! The records of the exchange desk: a quote (a rate between two ledgers, for a limited time) and
//! an exchange (both legs of a currency exchange, or an order reserving the desk's money), with
//! their flags (layouts byte by byte in `docs/protocol.md`, semantics in `docs/exchange.md`).

use super::{Reader, Record, Writer, FLAG_LINKED, RECORD_SIZE};

/// Flags of a quote.
pub mod quote_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// The quote may be used by many exchanges and orders (else by one).
    pub const MULTI_USE: u16 = 1 << 1;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | MULTI_USE;
}

/// Flags of an exchange or an order.
pub mod exchange_flags {
    /// Linked to the next command in the batch.
    pub const LINKED: u16 = super::FLAG_LINKED;
    /// `amount` is what the customer buys (in the quote's `to_ledger`); else what they sell.
    pub const BUY_FIXED: u16 = 1 << 1;
    /// An exchange that settles the order `pending_id` at the money the bank booked at
    /// `booked_at`: its second leg captures the order's reservation.
    pub const ORDER: u16 = 1 << 2;
    /// Every flag defined so far; any other bit is reserved.
    pub const ALL: u16 = LINKED | BUY_FIXED | ORDER;
}

/// A quote (command `create_quote`): the desk sells `to_ledger` money for `from_ledger` money at
/// `rate / 10^rate_scale` minor units of `to_ledger` per minor unit of `from_ledger`, for
/// `validity_s` seconds from its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Quote {
    /// The quote's id (its own id space).
    pub id: u128,
    /// The desk's account in `from_ledger`: the customer's money goes there.
    pub from_liquidity_id: u128,
    /// The desk's account in `to_ledger`: the customer is paid from there.
    pub to_liquidity_id: u128,
    /// The only customer account (in `to_ledger`) the quote may pay; 0: any.
    pub customer_account_id: u128,
    /// Most the quote pays out over all its uses, in `to_ledger` minor units; 0: no bound.
    pub amount_max: u128,
    /// The rate's digits: `rate / 10^rate_scale` to-units per from-unit; not zero.
    pub rate: u64,
    /// Opaque client data.
    pub user_data_64: u64,
    /// Seconds the rate is guaranteed, from the quote's timestamp (1 to `QUOTE_VALIDITY_MAX_S`).
    pub validity_s: u32,
    /// Seconds an order's reservation outlasts the validity (money booked in time, imported late).
    pub grace_s: u32,
    /// The ledger (currency) the customer sells.
    pub from_ledger: u32,
    /// The ledger (currency) the customer buys.
    pub to_ledger: u32,
    /// The transfer code both legs of every exchange carry.
    pub code: u16,
    /// `quote_flags`.
    pub flags: u16,
    /// Decimal places of `rate` (0 to `RATE_SCALE_MAX`).
    pub rate_scale: u8,
    /// Must be zero.
    pub reserved: [u8; 3],
    /// Must be zero (in a lookup: when the quote was made).
    pub timestamp: u64,
}

/// An exchange (command `exchange`) or an order (command `place_order`) on a quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Exchange {
    /// The first leg's transfer id (customer to desk, in `from_ledger`); for an order, the id of
    /// the hold that reserves the desk's money.
    pub id: u128,
    /// The second leg's transfer id (desk to customer, in `to_ledger`); zero for an order.
    pub to_id: u128,
    /// The quote.
    pub quote_id: u128,
    /// The customer's account in `from_ledger` (debited); zero for an order.
    pub from_account_id: u128,
    /// The customer's account in `to_ledger` (credited).
    pub to_account_id: u128,
    /// What the customer sells (minor units of `from_ledger`), or buys with `BUY_FIXED`.
    pub amount: u128,
    /// With `ORDER`: the order (its hold's id) the exchange settles; otherwise zero.
    pub pending_id: u128,
    /// With `ORDER`: when the bank booked the customer's money (ns since the epoch); 0: now.
    pub booked_at: u64,
    /// Opaque client data, carried by both legs.
    pub user_data_32: u32,
    /// `exchange_flags`.
    pub flags: u16,
    /// Must be zero.
    pub reserved: u16,
}

const _: () = assert!(core::mem::size_of::<Quote>() == RECORD_SIZE);
const _: () = assert!(core::mem::size_of::<Exchange>() == RECORD_SIZE);
const _: () = assert!(FLAG_LINKED == quote_flags::LINKED && FLAG_LINKED == exchange_flags::LINKED);

impl Record for Quote {
    const NAME: &'static str = "quote";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.from_liquidity_id, self.to_liquidity_id]
    }
    fn describe(&self) -> String {
        format!(
            "id={} from_ledger={} to_ledger={} rate={}e-{} validity={}s grace={}s from_liquidity={} to_liquidity={} customer={} amount_max={} code={} flags={:#x}",
            self.id,
            self.from_ledger,
            self.to_ledger,
            self.rate,
            self.rate_scale,
            self.validity_s,
            self.grace_s,
            self.from_liquidity_id,
            self.to_liquidity_id,
            self.customer_account_id,
            self.amount_max,
            self.code,
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        for v in [self.id, self.from_liquidity_id, self.to_liquidity_id, self.customer_account_id, self.amount_max] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.rate.to_le_bytes());
        w.put(&self.user_data_64.to_le_bytes());
        for v in [self.validity_s, self.grace_s, self.from_ledger, self.to_ledger] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.code.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&[self.rate_scale]);
        w.put(&self.reserved);
        w.put(&self.timestamp.to_le_bytes());
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        Quote {
            id: r.u128(),
            from_liquidity_id: r.u128(),
            to_liquidity_id: r.u128(),
            customer_account_id: r.u128(),
            amount_max: r.u128(),
            rate: r.u64(),
            user_data_64: r.u64(),
            validity_s: r.u32(),
            grace_s: r.u32(),
            from_ledger: r.u32(),
            to_ledger: r.u32(),
            code: r.u16(),
            flags: r.u16(),
            rate_scale: r.u8(),
            reserved: r.take(),
            timestamp: r.u64(),
        }
    }
}

impl Record for Exchange {
    const NAME: &'static str = "exchange";
    fn flags(&self) -> u16 {
        self.flags
    }
    fn flags_mut(&mut self) -> &mut u16 {
        &mut self.flags
    }
    fn account_ids(&self) -> [u128; 2] {
        [self.from_account_id, self.to_account_id]
    }
    fn transfer_ids(&self) -> [u128; 3] {
        [self.id, self.to_id, self.pending_id]
    }
    fn describe(&self) -> String {
        format!(
            "id={} to_id={} quote={} from_account={} to_account={} amount={} pending_id={} booked_at={} user_data_32={} flags={:#x}",
            self.id,
            self.to_id,
            self.quote_id,
            self.from_account_id,
            self.to_account_id,
            self.amount,
            self.pending_id,
            self.booked_at,
            self.user_data_32,
            self.flags
        )
    }
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut w = Writer { out, at: 0 };
        for v in [self.id, self.to_id, self.quote_id, self.from_account_id, self.to_account_id, self.amount, self.pending_id] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.booked_at.to_le_bytes());
        w.put(&self.user_data_32.to_le_bytes());
        w.put(&self.flags.to_le_bytes());
        w.put(&self.reserved.to_le_bytes());
        debug_assert_eq!(w.at, RECORD_SIZE);
    }
    fn decode(bytes: &[u8; RECORD_SIZE]) -> Self {
        let mut r = Reader { bytes, at: 0 };
        Exchange {
            id: r.u128(),
            to_id: r.u128(),
            quote_id: r.u128(),
            from_account_id: r.u128(),
            to_account_id: r.u128(),
            amount: r.u128(),
            pending_id: r.u128(),
            booked_at: r.u64(),
            user_data_32: r.u32(),
            flags: r.u16(),
            reserved: r.u16(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_records_round_trip_at_their_documented_offsets() {
        let q = Quote {
            id: 1,
            amount_max: 5,
            rate: 7,
            validity_s: 9,
            to_ledger: 3,
            rate_scale: 4,
            code: 2,
            timestamp: 6,
            ..Default::default()
        };
        let bytes = q.to_bytes();
        assert_eq!(Quote::decode(&bytes), q);
        assert_eq!((bytes[64], bytes[80], bytes[96]), (5, 7, 9), "amount_max at 64, rate at 80, validity at 96");
        assert_eq!((bytes[108], bytes[112], bytes[116], bytes[120]), (3, 2, 4, 6), "to_ledger 108, code 112, scale 116, timestamp 120");
        let e = Exchange { id: 1, amount: 5, pending_id: 6, booked_at: 7, user_data_32: 8, flags: 4, ..Default::default() };
        let bytes = e.to_bytes();
        assert_eq!(Exchange::decode(&bytes), e);
        assert_eq!((bytes[80], bytes[96], bytes[112], bytes[120], bytes[124]), (5, 6, 7, 8, 4), "amount 80, pending 96, booked 112");
    }
}
