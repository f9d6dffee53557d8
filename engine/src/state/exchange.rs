//! Quotes, exchanges and orders (`docs/exchange.md`): a rate between two ledgers guaranteed for a
//! time, both legs of an exchange posted in one command or neither, and orders that reserve the
//! desk's money in the bought ledger until the customer's payment arrives.

use super::{Engine, IdSlot, Sides, Undo};
use crate::limits::{NS_PER_S, QUOTE_GRACE_MAX_S, QUOTE_VALIDITY_MAX_S, RATE_SCALE_MAX};
use crate::result::ResultCode;
use crate::types::{exchange_flags as xf, quote_flags as qf, transfer_flags as tf, Exchange, Quote, Transfer};

/// Bytes of a quote's usage in snapshots and replies.
pub const QUOTE_USAGE_SIZE: usize = 32;

/// What a quote has done: its uses, and what they paid out or reserved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuoteUsage {
    /// Exchanges and orders made on the quote (an order's settling exchange is not another use).
    pub uses: u32,
    /// What they paid out or reserved, in the quote's `to_ledger` minor units (saturating).
    pub paid: u128,
}

impl QuoteUsage {
    /// The usage's 32 bytes: `paid` u128, `uses` u32, 12 zero bytes.
    pub fn to_bytes(&self) -> [u8; QUOTE_USAGE_SIZE] {
        let mut out = [0u8; QUOTE_USAGE_SIZE];
        out[..16].copy_from_slice(&self.paid.to_le_bytes());
        out[16..20].copy_from_slice(&self.uses.to_le_bytes());
        out
    }

    /// The usage from its 32 bytes, if the padding is zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<QuoteUsage> {
        if bytes.len() != QUOTE_USAGE_SIZE || bytes[20..].iter().any(|b| *b != 0) {
            return None;
        }
        let paid = u128::from_le_bytes(bytes[..16].try_into().ok()?);
        let uses = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
        Some(QuoteUsage { uses, paid })
    }
}

/// The two amounts of an exchange at `rate / 10^scale` bought units per sold unit: `(sold,
/// bought)` from the amount sold, or with `buy_fixed` from the amount bought. Rounding favours
/// the desk: `bought = floor(sold × rate / 10^scale)`, `sold = ceil(bought × 10^scale / rate)`.
pub fn convert(amount: u128, buy_fixed: bool, rate: u64, scale: u8) -> Result<(u128, u128), ResultCode> {
    debug_assert!(rate != 0 && scale <= RATE_SCALE_MAX);
    let pow = 10u128.pow(u32::from(scale));
    if buy_fixed {
        let scaled = amount.checked_mul(pow).ok_or(ResultCode::ExchangeOverflow)?;
        return Ok((scaled.div_ceil(u128::from(rate)), amount));
    }
    let product = amount.checked_mul(u128::from(rate)).ok_or(ResultCode::ExchangeOverflow)?;
    match product / pow {
        0 => Err(ResultCode::ExchangeAmountTooSmall),
        bought => Ok((amount, bought)),
    }
}

/// When a quote's validity ends (ns): nothing booked at or after it gets its rate.
pub fn quote_expires_at(q: &Quote) -> u64 {
    q.timestamp.saturating_add(u64::from(q.validity_s) * NS_PER_S)
}

impl Engine {
    /// `create_quote`.
    pub(super) fn create_quote(&mut self, q: &Quote, ts: u64) -> ResultCode {
        use ResultCode as R;
        if q.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if q.reserved != [0; 3] {
            return R::ReservedField;
        }
        if q.flags & !qf::ALL != 0 {
            return R::ReservedFlag;
        }
        if q.id == 0 {
            return R::IdMustNotBeZero;
        }
        if q.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        let spec = Quote { flags: q.flags & !qf::LINKED, ..*q };
        if let Some(&index) = self.quote_index.get(&q.id) {
            let stored = Quote { timestamp: 0, ..self.quotes[index as usize] };
            return if stored == spec { R::Exists } else { R::QuoteExistsWithDifferentFields };
        }
        if let Some(code) = self.check_quote(q) {
            return code;
        }
        if self.quotes.len() >= self.limits.transfers_max as usize {
            return R::QuotesLimitReached;
        }
        let index = self.quotes.len() as u32;
        self.quotes.push(Quote { timestamp: ts, ..spec });
        self.quote_usage.push(QuoteUsage::default());
        self.quote_index.insert(q.id, index);
        self.digest.mark_quote(index);
        self.record(Undo::QuoteInserted);
        R::Ok
    }

    /// Adds a quote from a snapshot, checked as `create_quote` checks a new one.
    pub(crate) fn insert_quote(&mut self, quote: Quote, usage: QuoteUsage) -> Result<(), ResultCode> {
        if let Some(code) = self.check_quote(&quote) {
            return Err(code);
        }
        let index = self.quotes.len() as u32;
        self.quotes.push(quote);
        self.quote_usage.push(usage);
        self.quote_index.insert(quote.id, index);
        self.digest.mark_quote(index);
        Ok(())
    }

    /// A new quote's checks after its id, in precedence order.
    fn check_quote(&self, q: &Quote) -> Option<ResultCode> {
        use ResultCode as R;
        let code = if q.from_ledger == 0 || q.to_ledger == 0 {
            R::LedgerMustNotBeZero
        } else if q.code == 0 {
            R::CodeMustNotBeZero
        } else if q.rate == 0 || q.rate_scale > RATE_SCALE_MAX {
            R::QuoteRateInvalid
        } else if q.validity_s == 0 || q.validity_s > QUOTE_VALIDITY_MAX_S || q.grace_s > QUOTE_GRACE_MAX_S {
            R::QuoteValidityInvalid
        } else if q.from_ledger == q.to_ledger {
            R::QuoteLedgersMustBeDifferent
        } else if !self.ledger_index.contains_key(&q.from_ledger) || !self.ledger_index.contains_key(&q.to_ledger) {
            R::LedgerNotFound
        } else if !self.account_in(q.from_liquidity_id, q.from_ledger) || !self.account_in(q.to_liquidity_id, q.to_ledger) {
            R::QuoteLiquidityAccountInvalid
        } else if q.customer_account_id != 0 && !self.account_in(q.customer_account_id, q.to_ledger) {
            R::QuoteCustomerInvalid
        } else {
            return None;
        };
        Some(code)
    }

    /// Whether account `id` exists and is in `ledger`.
    fn account_in(&self, id: u128, ledger: u32) -> bool {
        self.account_index.get(&id).is_some_and(|&i| self.accounts[i as usize].ledger == ledger)
    }

    /// `exchange`: both legs, or neither.
    pub(super) fn exchange(&mut self, e: &Exchange, ts: u64) -> ResultCode {
        use ResultCode as R;
        let order = e.flags & xf::ORDER != 0;
        if let Some(code) = check_exchange_record(e, xf::ALL, &[e.id, e.to_id]) {
            return code;
        }
        match (self.find_transfer_id(e.id), self.find_transfer_id(e.to_id)) {
            (None, None) => {}
            (Some(IdSlot::Failed(_)), _) | (_, Some(IdSlot::Failed(_))) => return R::IdAlreadyFailed,
            (Some(IdSlot::Transfer(a)), Some(IdSlot::Transfer(b))) => return self.exchange_exists(e, a, b),
            _ => return R::ExchangeExistsWithDifferentFields,
        }
        if e.id == e.to_id {
            return R::ExchangeIdsMustBeDifferent;
        }
        if e.amount == 0 {
            return R::ExchangeAmountMustNotBeZero;
        }
        if !order && e.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        let (qi, q) = match self.quote_for(e, true) {
            Ok(found) => found,
            Err(code) => return code,
        };
        let hold = if order {
            match self.order_of(e) {
                Some(hold) => Some(hold),
                None => return R::ExchangeOrderNotFound,
            }
        } else {
            None
        };
        let reference = match e.booked_at {
            0 => ts,
            at if !order || at > ts || at < q.timestamp => return R::ExchangeBookedAtInvalid,
            at => at,
        };
        let (sold, bought) = match self.price(qi, &q, e, reference, order) {
            Ok(amounts) => amounts,
            Err(code) => return code,
        };
        if hold.is_some_and(|h| bought > h.amount) {
            return R::ExchangeExceedsOrder;
        }
        let legs = exchange_legs(e, &q, sold, bought, hold.as_ref());
        let code = self.post_legs(legs, ts);
        if code == R::Ok && !order {
            self.use_quote(qi, bought);
        }
        code
    }

    /// `place_order`: a hold on the desk's money in the bought ledger.
    pub(super) fn place_order(&mut self, e: &Exchange, ts: u64) -> ResultCode {
        use ResultCode as R;
        if let Some(code) = check_exchange_record(e, xf::LINKED | xf::BUY_FIXED, &[e.id]) {
            return code;
        }
        if e.from_account_id != 0 {
            return R::ReservedField;
        }
        match self.find_transfer_id(e.id) {
            None => {}
            Some(IdSlot::Failed(_)) => return R::IdAlreadyFailed,
            Some(IdSlot::Transfer(a)) => return self.order_exists(e, a),
        }
        if e.to_id != 0 {
            return R::ExchangeIdsMustBeDifferent;
        }
        if e.amount == 0 {
            return R::ExchangeAmountMustNotBeZero;
        }
        if e.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        if e.booked_at != 0 {
            return R::ExchangeBookedAtInvalid;
        }
        let (qi, q) = match self.quote_for(e, false) {
            Ok(found) => found,
            Err(code) => return code,
        };
        let (_, bought) = match self.price(qi, &q, e, ts, false) {
            Ok(amounts) => amounts,
            Err(code) => return code,
        };
        let hold = order_hold(e, &q, bought);
        let code = match self.create_transfer(&hold, Sides::Both, tf::PENDING, ts) {
            R::ExceedsCredits => R::ExchangeExceedsLiquidity,
            code => code,
        };
        if code == R::Ok {
            self.use_quote(qi, bought);
        }
        code
    }

    /// The quote and the customer accounts' checks, in precedence order; `from` whether the
    /// command names a `from_account`.
    fn quote_for(&self, e: &Exchange, from: bool) -> Result<(u32, Quote), ResultCode> {
        use ResultCode as R;
        let Some(&qi) = self.quote_index.get(&e.quote_id) else {
            return Err(R::QuoteNotFound);
        };
        let q = self.quotes[qi as usize];
        if from && !self.account_index.contains_key(&e.from_account_id) {
            return Err(R::DebitAccountNotFound);
        }
        if !self.account_index.contains_key(&e.to_account_id) {
            return Err(R::CreditAccountNotFound);
        }
        if (from && !self.account_in(e.from_account_id, q.from_ledger)) || !self.account_in(e.to_account_id, q.to_ledger) {
            return Err(R::ExchangeLedgerMismatch);
        }
        if q.customer_account_id != 0 && q.customer_account_id != e.to_account_id {
            return Err(R::QuoteIssuedToAnotherCustomer);
        }
        Ok((qi, q))
    }

    /// The quote's time, use and amount checks at `reference`, and the two amounts. An order's
    /// settling exchange (`settles`) is no new use of the quote.
    fn price(&self, qi: u32, q: &Quote, e: &Exchange, reference: u64, settles: bool) -> Result<(u128, u128), ResultCode> {
        use ResultCode as R;
        if reference >= quote_expires_at(q) {
            return Err(R::QuoteExpired);
        }
        let usage = self.quote_usage[qi as usize];
        if !settles && q.flags & qf::MULTI_USE == 0 && usage.uses > 0 {
            return Err(R::QuoteUsedUp);
        }
        let (sold, bought) = convert(e.amount, e.flags & xf::BUY_FIXED != 0, q.rate, q.rate_scale)?;
        if !settles && q.amount_max != 0 && usage.paid.checked_add(bought).is_none_or(|paid| paid > q.amount_max) {
            return Err(R::QuoteAmountExceeded);
        }
        Ok((sold, bought))
    }

    /// The order an `order` exchange settles: a hold of its quote for its customer account.
    fn order_of(&self, e: &Exchange) -> Option<Transfer> {
        let Some(IdSlot::Transfer(pi)) = self.find_transfer_id(e.pending_id) else {
            return None;
        };
        let p = self.stored(pi);
        let ours = p.flags & tf::PENDING != 0 && p.user_data_128 == e.quote_id && p.credit_account_id == e.to_account_id;
        ours.then_some(p)
    }

    /// Posts both legs at `ts` and `ts + 1`, or neither: a failed second leg takes the first back.
    fn post_legs(&mut self, [first, second]: [(Transfer, u16); 2], ts: u64) -> ResultCode {
        use ResultCode as R;
        let own = !self.recording;
        self.recording = true;
        let mark = self.undo.len();
        let mut code = self.create_transfer(&first.0, Sides::Both, first.1, ts);
        if code == R::Ok {
            self.ts_taken += 1;
            code = match self.create_transfer(&second.0, Sides::Both, second.1, ts + 1) {
                R::ExceedsCredits => R::ExchangeExceedsLiquidity,
                code => code,
            };
        }
        if code != R::Ok {
            self.rollback_to(mark);
        }
        debug_assert_eq!(
            [first.0.id, second.0.id].map(|id| self.find_transfer_id(id).is_some()),
            [code == R::Ok; 2],
            "both legs stored or neither"
        );
        if own {
            self.recording = false;
            self.undo.clear();
        }
        code
    }

    /// Counts one use of quote `index` paying `bought`.
    fn use_quote(&mut self, index: u32, bought: u128) {
        let usage = &mut self.quote_usage[index as usize];
        let old = *usage;
        usage.uses = usage.uses.saturating_add(1);
        usage.paid = usage.paid.saturating_add(bought);
        self.digest.mark_quote(index);
        self.record(Undo::QuoteUsed { index, old });
    }

    /// An exchange whose two leg ids are stored transfers: `exists` if they are its legs as sent.
    fn exchange_exists(&self, e: &Exchange, a: u32, b: u32) -> ResultCode {
        let (first, second) = (&self.stored(a), &self.stored(b));
        let order = e.flags & xf::ORDER != 0;
        let amount = if e.flags & xf::BUY_FIXED != 0 { second.amount } else { first.amount };
        let same = second.timestamp == first.timestamp + 1
            && first.user_data_128 == e.quote_id
            && second.user_data_128 == e.quote_id
            && first.debit_account_id == e.from_account_id
            && second.credit_account_id == e.to_account_id
            && first.user_data_32 == e.user_data_32
            && amount == e.amount
            && (second.flags & tf::POST_PENDING != 0) == order
            && second.pending_id == e.pending_id;
        if same {
            ResultCode::Exists
        } else {
            ResultCode::ExchangeExistsWithDifferentFields
        }
    }

    /// An order whose id is a stored transfer: `exists` if it is the order as sent.
    fn order_exists(&self, e: &Exchange, a: u32) -> ResultCode {
        let hold = &self.stored(a);
        let bought = match self.quote_index.get(&e.quote_id) {
            Some(&qi) => {
                let q = &self.quotes[qi as usize];
                convert(e.amount, e.flags & xf::BUY_FIXED != 0, q.rate, q.rate_scale).map(|(_, bought)| bought).ok()
            }
            None => None,
        };
        let same = hold.flags & tf::PENDING != 0
            && hold.user_data_128 == e.quote_id
            && hold.credit_account_id == e.to_account_id
            && hold.user_data_32 == e.user_data_32
            && bought == Some(hold.amount)
            && e.to_id == 0;
        if same {
            ResultCode::Exists
        } else {
            ResultCode::ExchangeExistsWithDifferentFields
        }
    }
}

impl Engine {
    /// The quote with id `id` as stored, with its usage.
    pub fn quote(&self, id: u128) -> Option<(Quote, QuoteUsage)> {
        self.quote_index.get(&id).map(|&i| (self.quotes[i as usize], self.quote_usage[i as usize]))
    }

    /// Every quote, in the order they were made.
    pub fn quotes(&self) -> &[Quote] {
        &self.quotes
    }
}

/// The record checks of an exchange or order before any lookup: reserved bits, flags outside
/// `allowed`, and the transfer ids it makes.
fn check_exchange_record(e: &Exchange, allowed: u16, ids: &[u128]) -> Option<ResultCode> {
    use ResultCode as R;
    if e.reserved != 0 {
        return Some(R::ReservedField);
    }
    if e.flags & !allowed != 0 {
        return Some(R::ReservedFlag);
    }
    for &id in ids {
        if id == 0 {
            return Some(R::IdMustNotBeZero);
        }
        if id == u128::MAX {
            return Some(R::IdMustNotBeIntMax);
        }
        if super::orders::is_reserved_id(id) {
            return Some(R::IdReserved);
        }
    }
    None
}

/// An exchange's two legs with the flag each is made under: the customer pays the desk `sold`
/// in `from_ledger`; the desk pays the customer `bought` in `to_ledger`, from its liquidity or
/// by capturing the order's `hold`.
fn exchange_legs(e: &Exchange, q: &Quote, sold: u128, bought: u128, hold: Option<&Transfer>) -> [(Transfer, u16); 2] {
    let first = Transfer {
        id: e.id,
        debit_account_id: e.from_account_id,
        credit_account_id: q.from_liquidity_id,
        amount: sold,
        user_data_128: e.quote_id,
        user_data_64: e.booked_at,
        user_data_32: e.user_data_32,
        ledger: q.from_ledger,
        code: q.code,
        ..Transfer::default()
    };
    let (debit, flag) = match hold {
        Some(h) => (h.debit_account_id, tf::POST_PENDING),
        None => (q.to_liquidity_id, 0),
    };
    let second = Transfer {
        id: e.to_id,
        debit_account_id: debit,
        credit_account_id: e.to_account_id,
        amount: bought,
        pending_id: e.pending_id,
        user_data_128: e.quote_id,
        user_data_64: e.booked_at,
        user_data_32: e.user_data_32,
        ledger: q.to_ledger,
        code: q.code,
        ..Transfer::default()
    };
    [(first, 0), (second, flag)]
}

/// An order's hold: `bought` from the desk's liquidity to the customer, pending for the quote's
/// validity and grace from now.
fn order_hold(e: &Exchange, q: &Quote, bought: u128) -> Transfer {
    Transfer {
        id: e.id,
        debit_account_id: q.to_liquidity_id,
        credit_account_id: e.to_account_id,
        amount: bought,
        user_data_128: e.quote_id,
        user_data_32: e.user_data_32,
        timeout: q.validity_s + q.grace_s,
        ledger: q.to_ledger,
        code: q.code,
        ..Transfer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rounds_in_the_desks_favour_both_ways() {
        // 4.3215 PLN per EUR, both with two decimals: 1 cent buys 4.3215 grosze.
        assert_eq!(convert(100, false, 43_215, 4), Ok((100, 432)), "1 EUR buys 4.32 PLN, not 4.3215");
        assert_eq!(convert(432, true, 43_215, 4), Ok((100, 432)), "4.32 PLN costs 0.999... EUR: one cent, rounded up");
        assert_eq!(convert(433, true, 43_215, 4), Ok((101, 433)));
        assert_eq!(convert(1, false, 43_215, 4), Ok((1, 4)));
        assert_eq!(convert(1, false, 2, 1), Err(ResultCode::ExchangeAmountTooSmall), "0.2 of a unit rounds to nothing");
        assert_eq!(convert(u128::MAX, false, 2, 0), Err(ResultCode::ExchangeOverflow));
        assert_eq!(convert(u128::MAX / 5, true, 1, 1), Err(ResultCode::ExchangeOverflow));
        for sold in 1..2_000u128 {
            let (_, bought) = convert(sold, false, 43_215, 4).unwrap();
            let (cost, _) = convert(bought, true, 43_215, 4).unwrap();
            assert!(cost <= sold, "buying what {sold} bought never costs more than {sold}");
        }
    }

    #[test]
    fn usage_round_trips_its_bytes() {
        let usage = QuoteUsage { uses: 3, paid: 1 << 100 };
        assert_eq!(QuoteUsage::from_bytes(&usage.to_bytes()), Some(usage));
        let mut bytes = usage.to_bytes();
        bytes[31] = 1;
        assert_eq!(QuoteUsage::from_bytes(&bytes), None);
    }
}
