//! The reference model of quotes, exchanges and orders, written from `docs/exchange.md` and the
//! precedence in `docs/result-codes.md`: quotes in an ordered map, both legs made through the
//! model's own transfer, a whole clone to take a first leg back.

use bursar_engine::{exchange_flags as xf, quote_flags as qf, transfer_flags as tf, Exchange, Quote, ResultCode as R, Transfer};

use crate::model::{first_failure, Model};

const S: u64 = 1_000_000_000;
const VALIDITY_MAX_S: u32 = 7 * 86_400;

/// A quote in the model with its usage.
#[derive(Clone, Debug)]
pub struct ModelQuote {
    /// As stored (linked flag cleared, timestamp set).
    pub quote: Quote,
    /// Exchanges and orders made on it.
    pub uses: u32,
    /// What they paid out or reserved (saturating).
    pub paid: u128,
}

/// What an id names among the model's transfers.
enum Id {
    New,
    Failed,
    Stored(Transfer),
}

/// `(sold, bought)` at `rate / 10^scale`, rounded for the desk (the document's two formulas).
pub fn model_convert(amount: u128, buy_fixed: bool, rate: u64, scale: u8) -> Result<(u128, u128), R> {
    let pow = 10u128.pow(scale as u32);
    if buy_fixed {
        let scaled = amount.checked_mul(pow).ok_or(R::ExchangeOverflow)?;
        let rate = rate as u128;
        let sold = scaled / rate + u128::from(scaled % rate != 0);
        return Ok((sold, amount));
    }
    let bought = amount.checked_mul(rate as u128).ok_or(R::ExchangeOverflow)? / pow;
    if bought == 0 {
        return Err(R::ExchangeAmountTooSmall);
    }
    Ok((amount, bought))
}

impl Model {
    fn id_of(&self, id: u128) -> Id {
        match self.transfers.get(&id) {
            Some(t) => Id::Stored(*t),
            None if self.failed.contains_key(&id) => Id::Failed,
            None => Id::New,
        }
    }

    fn in_ledger(&self, id: u128, ledger: u32) -> bool {
        self.accounts.get(&id).is_some_and(|a| a.ledger == ledger)
    }

    /// `create_quote`.
    pub(crate) fn create_quote(&mut self, q: Quote, ts: u64) -> R {
        let head = [
            (q.timestamp != 0, R::TimestampMustBeZero),
            (q.reserved != [0; 3], R::ReservedField),
            (q.flags & !qf::ALL != 0, R::ReservedFlag),
            (q.id == 0, R::IdMustNotBeZero),
            (q.id == u128::MAX, R::IdMustNotBeIntMax),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        let spec = Quote { flags: q.flags & !qf::LINKED, ..q };
        if let Some(e) = self.quotes.get(&q.id) {
            return if (Quote { timestamp: 0, ..e.quote }) == spec { R::Exists } else { R::QuoteExistsWithDifferentFields };
        }
        let checks = [
            (q.from_ledger == 0 || q.to_ledger == 0, R::LedgerMustNotBeZero),
            (q.code == 0, R::CodeMustNotBeZero),
            (q.rate == 0 || q.rate_scale > 18, R::QuoteRateInvalid),
            (q.validity_s == 0 || q.validity_s > VALIDITY_MAX_S || q.grace_s > VALIDITY_MAX_S, R::QuoteValidityInvalid),
            (q.from_ledger == q.to_ledger, R::QuoteLedgersMustBeDifferent),
            (!self.ledgers.contains_key(&q.from_ledger) || !self.ledgers.contains_key(&q.to_ledger), R::LedgerNotFound),
            (
                !self.in_ledger(q.from_liquidity_id, q.from_ledger) || !self.in_ledger(q.to_liquidity_id, q.to_ledger),
                R::QuoteLiquidityAccountInvalid,
            ),
            (q.customer_account_id != 0 && !self.in_ledger(q.customer_account_id, q.to_ledger), R::QuoteCustomerInvalid),
            (self.quotes.len() >= self.limits.transfers_max as usize, R::QuotesLimitReached),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        self.quotes.insert(q.id, ModelQuote { quote: Quote { timestamp: ts, ..spec }, uses: 0, paid: 0 });
        R::Ok
    }

    /// `exchange`.
    pub(crate) fn exchange(&mut self, e: Exchange, ts: u64) -> R {
        let order = e.flags & xf::ORDER != 0;
        let mut head = vec![(e.reserved != 0, R::ReservedField), (e.flags & !xf::ALL != 0, R::ReservedFlag)];
        for id in [e.id, e.to_id] {
            head.extend([(id == 0, R::IdMustNotBeZero), (id == u128::MAX, R::IdMustNotBeIntMax), (id >> 96 == 0xFFFF_FFFF, R::IdReserved)]);
        }
        if let Some(code) = first_failure(&head) {
            return code;
        }
        match (self.id_of(e.id), self.id_of(e.to_id)) {
            (Id::New, Id::New) => {}
            (Id::Failed, _) | (_, Id::Failed) => return R::IdAlreadyFailed,
            (Id::Stored(first), Id::Stored(second)) => return exchange_exists(&e, &first, &second),
            _ => return R::ExchangeExistsWithDifferentFields,
        }
        let checks = [
            (e.id == e.to_id, R::ExchangeIdsMustBeDifferent),
            (e.amount == 0, R::ExchangeAmountMustNotBeZero),
            (!order && e.pending_id != 0, R::PendingIdMustBeZero),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let q = match self.quote_checks(&e, true) {
            Ok(q) => q,
            Err(code) => return code,
        };
        let hold = self
            .transfers
            .get(&e.pending_id)
            .copied()
            .filter(|p| p.flags & tf::PENDING != 0 && p.user_data_128 == e.quote_id && p.credit_account_id == e.to_account_id);
        if order && hold.is_none() {
            return R::ExchangeOrderNotFound;
        }
        if e.booked_at != 0 && (!order || e.booked_at > ts || e.booked_at < q.quote.timestamp) {
            return R::ExchangeBookedAtInvalid;
        }
        let reference = if e.booked_at != 0 { e.booked_at } else { ts };
        let (sold, bought) = match self.priced(&q, &e, reference, order) {
            Ok(amounts) => amounts,
            Err(code) => return code,
        };
        if order && bought > hold.expect("checked").amount {
            return R::ExchangeExceedsOrder;
        }
        let first = Transfer {
            id: e.id,
            debit_account_id: e.from_account_id,
            credit_account_id: q.quote.from_liquidity_id,
            amount: sold,
            user_data_128: e.quote_id,
            user_data_64: e.booked_at,
            user_data_32: e.user_data_32,
            ledger: q.quote.from_ledger,
            code: q.quote.code,
            ..Default::default()
        };
        let second = Transfer {
            id: e.to_id,
            debit_account_id: hold.map_or(q.quote.to_liquidity_id, |h| h.debit_account_id),
            credit_account_id: e.to_account_id,
            amount: bought,
            pending_id: e.pending_id,
            ledger: q.quote.to_ledger,
            ..first
        };
        let saved = self.clone();
        let mut code = self.transfer(first, 0, 0, ts);
        if code == R::Ok {
            self.taken += 1;
            code = self.transfer_leg(second, if order { tf::POST_PENDING } else { 0 }, ts + 1);
        }
        if code != R::Ok {
            let taken = self.taken;
            *self = saved;
            self.taken = taken;
            return code;
        }
        if !order {
            self.use_quote(e.quote_id, bought);
        }
        R::Ok
    }

    /// `place_order`.
    pub(crate) fn place_order(&mut self, e: Exchange, ts: u64) -> R {
        let head = [
            (e.reserved != 0, R::ReservedField),
            (e.flags & !(xf::LINKED | xf::BUY_FIXED) != 0, R::ReservedFlag),
            (e.id == 0, R::IdMustNotBeZero),
            (e.id == u128::MAX, R::IdMustNotBeIntMax),
            (e.id >> 96 == 0xFFFF_FFFF, R::IdReserved),
            (e.from_account_id != 0, R::ReservedField),
        ];
        if let Some(code) = first_failure(&head) {
            return code;
        }
        match self.id_of(e.id) {
            Id::New => {}
            Id::Failed => return R::IdAlreadyFailed,
            Id::Stored(hold) => return self.order_exists(&e, &hold),
        }
        let checks = [
            (e.to_id != 0, R::ExchangeIdsMustBeDifferent),
            (e.amount == 0, R::ExchangeAmountMustNotBeZero),
            (e.pending_id != 0, R::PendingIdMustBeZero),
            (e.booked_at != 0, R::ExchangeBookedAtInvalid),
        ];
        if let Some(code) = first_failure(&checks) {
            return code;
        }
        let q = match self.quote_checks(&e, false) {
            Ok(q) => q,
            Err(code) => return code,
        };
        let (_, bought) = match self.priced(&q, &e, ts, false) {
            Ok(amounts) => amounts,
            Err(code) => return code,
        };
        let hold = Transfer {
            id: e.id,
            debit_account_id: q.quote.to_liquidity_id,
            credit_account_id: e.to_account_id,
            amount: bought,
            user_data_128: e.quote_id,
            user_data_32: e.user_data_32,
            timeout: q.quote.validity_s + q.quote.grace_s,
            ledger: q.quote.to_ledger,
            code: q.quote.code,
            ..Default::default()
        };
        let code = self.transfer_leg(hold, tf::PENDING, ts);
        if code == R::Ok {
            self.use_quote(e.quote_id, bought);
        }
        code
    }

    /// A leg through the model's transfer; the desk's want of money is the exchange's own code.
    fn transfer_leg(&mut self, t: Transfer, kind_flag: u16, ts: u64) -> R {
        match self.transfer(t, 0, kind_flag, ts) {
            R::ExceedsCredits => R::ExchangeExceedsLiquidity,
            code => code,
        }
    }

    /// The quote found, the customer's accounts found and in its ledgers, its customer.
    fn quote_checks(&self, e: &Exchange, from: bool) -> Result<ModelQuote, R> {
        let Some(q) = self.quotes.get(&e.quote_id).cloned() else {
            return Err(R::QuoteNotFound);
        };
        let checks = [
            (from && !self.accounts.contains_key(&e.from_account_id), R::DebitAccountNotFound),
            (!self.accounts.contains_key(&e.to_account_id), R::CreditAccountNotFound),
            (
                (from && !self.in_ledger(e.from_account_id, q.quote.from_ledger)) || !self.in_ledger(e.to_account_id, q.quote.to_ledger),
                R::ExchangeLedgerMismatch,
            ),
            (q.quote.customer_account_id != 0 && q.quote.customer_account_id != e.to_account_id, R::QuoteIssuedToAnotherCustomer),
        ];
        first_failure(&checks).map_or(Ok(q), Err)
    }

    /// Validity at `reference`, single use, conversion and `amount_max` (an order's settling
    /// exchange is no new use).
    fn priced(&self, q: &ModelQuote, e: &Exchange, reference: u64, settles: bool) -> Result<(u128, u128), R> {
        if reference >= q.quote.timestamp + q.quote.validity_s as u64 * S {
            return Err(R::QuoteExpired);
        }
        if !settles && q.quote.flags & qf::MULTI_USE == 0 && q.uses > 0 {
            return Err(R::QuoteUsedUp);
        }
        let (sold, bought) = model_convert(e.amount, e.flags & xf::BUY_FIXED != 0, q.quote.rate, q.quote.rate_scale)?;
        if !settles && q.quote.amount_max != 0 && q.paid.checked_add(bought).is_none_or(|paid| paid > q.quote.amount_max) {
            return Err(R::QuoteAmountExceeded);
        }
        Ok((sold, bought))
    }

    fn use_quote(&mut self, id: u128, bought: u128) {
        let q = self.quotes.get_mut(&id).expect("a quote just checked");
        q.uses = q.uses.saturating_add(1);
        q.paid = q.paid.saturating_add(bought);
    }

    fn order_exists(&self, e: &Exchange, hold: &Transfer) -> R {
        let bought = self
            .quotes
            .get(&e.quote_id)
            .and_then(|q| model_convert(e.amount, e.flags & xf::BUY_FIXED != 0, q.quote.rate, q.quote.rate_scale).ok())
            .map(|(_, bought)| bought);
        let same = hold.flags & tf::PENDING != 0
            && hold.user_data_128 == e.quote_id
            && hold.credit_account_id == e.to_account_id
            && hold.user_data_32 == e.user_data_32
            && bought == Some(hold.amount)
            && e.to_id == 0;
        if same {
            R::Exists
        } else {
            R::ExchangeExistsWithDifferentFields
        }
    }
}

/// Both leg ids stored: `exists` when they are this exchange's legs as sent.
fn exchange_exists(e: &Exchange, first: &Transfer, second: &Transfer) -> R {
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
        R::Exists
    } else {
        R::ExchangeExistsWithDifferentFields
    }
}
