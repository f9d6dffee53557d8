//! Result codes: one per command, `#[repr(u32)]`, explicit values that are never renumbered.
//!
//! Codes are declared in precedence order: the engine runs its checks in that order (within
//! the checks that apply to a command's kind), so the first failing check decides and the same
//! bad command always gets the same code. Values are never renumbered: a new code takes the next
//! free value and its place in the order, so value order and precedence differ where codes were
//! added later (`id_already_failed`). `docs/result-codes.md` lists every code with one line of
//! meaning, in precedence order.

macro_rules! result_codes {
    ($( $(#[doc = $doc:literal])* $name:ident = $value:literal, )*) => {
        /// The outcome of one command. `Ok` and `Exists` are successes; everything else
        /// means the command changed nothing.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ResultCode {
            $( $(#[doc = $doc])* $name = $value, )*
        }

        impl ResultCode {
            /// Every code, in precedence order.
            pub const ALL: &'static [ResultCode] = &[$(ResultCode::$name,)*];

            /// Position in precedence order (0 first): compare codes by this, not by value.
            pub fn precedence(self) -> usize {
                let mut position = 0;
                $(
                    if matches!(self, ResultCode::$name) {
                        return position;
                    }
                    position += 1;
                )*
                unreachable!("every code is declared: {position}")
            }

            /// The code for a wire value, if it names one.
            pub fn from_u32(value: u32) -> Option<ResultCode> {
                match value {
                    $( $value => Some(ResultCode::$name), )*
                    _ => None,
                }
            }

            /// The snake_case name used in docs, logs and `--json` output.
            pub fn name(self) -> &'static str {
                match self {
                    $( ResultCode::$name => to_snake!($name), )*
                }
            }

            /// One line saying what the code means.
            pub fn meaning(self) -> &'static str {
                match self {
                    $( ResultCode::$name => concat!($($doc),*).trim_ascii(), )*
                }
            }
        }
    };
}

/// Stringifies a CamelCase identifier; the snake_case form is computed by `snake_name`.
macro_rules! to_snake {
    ($name:ident) => {
        crate::result::snake_name(stringify!($name))
    };
}

/// Interned snake_case names (computed once; codes are few and static).
pub(crate) fn snake_name(camel: &'static str) -> &'static str {
    use std::collections::BTreeMap;
    use std::sync::OnceLock;
    static NAMES: OnceLock<std::sync::Mutex<BTreeMap<&'static str, &'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    names.entry(camel).or_insert_with(|| {
        let mut out = String::with_capacity(camel.len() + 8);
        for (i, ch) in camel.char_indices() {
            let boundary =
                i > 0 && (ch.is_ascii_uppercase() || (ch.is_ascii_digit() && !camel[..i].ends_with(|c: char| c.is_ascii_digit())));
            if boundary {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        }
        Box::leak(out.into_boxed_str())
    })
}

result_codes! {
    /// The command was applied.
    Ok = 0,
    /// Another command in the same linked chain failed, so this one was not applied.
    LinkedEventFailed = 1,
    /// The batch ended inside a linked chain (the last command has the linked flag).
    LinkedEventChainOpen = 2,
    /// `timestamp` must be zero: the engine assigns it.
    TimestampMustBeZero = 3,
    /// A reserved field or reserved byte is not zero (for accounts this includes `state`).
    ReservedField = 4,
    /// A flag bit that is not defined for this command is set.
    ReservedFlag = 5,
    /// `id` must not be zero.
    IdMustNotBeZero = 6,
    /// `id` must not be the maximum value of its type.
    IdMustNotBeIntMax = 7,
    /// A transfer id whose top 32 bits are all ones: that range is reserved for the ids the engine derives for standing-order runs and trigger firings.
    IdReserved = 102,
    /// An object with this id exists with different `flags`.
    ExistsWithDifferentFlags = 8,
    /// A transfer with this id exists with a different `pending_id`.
    ExistsWithDifferentPendingId = 9,
    /// A transfer with this id exists with a different `timeout`.
    ExistsWithDifferentTimeout = 10,
    /// A transfer with this id exists with a different `debit_account_id`.
    ExistsWithDifferentDebitAccountId = 11,
    /// A transfer with this id exists with a different `credit_account_id`.
    ExistsWithDifferentCreditAccountId = 12,
    /// A transfer with this id exists with a different `amount`.
    ExistsWithDifferentAmount = 13,
    /// An object with this id exists with a different `user_data_128`.
    ExistsWithDifferentUserData128 = 14,
    /// An object with this id exists with a different `user_data_64`.
    ExistsWithDifferentUserData64 = 15,
    /// An object with this id exists with a different `user_data_32`.
    ExistsWithDifferentUserData32 = 16,
    /// An object with this id exists with a different `ledger`.
    ExistsWithDifferentLedger = 17,
    /// An object with this id exists with a different `code`.
    ExistsWithDifferentCode = 18,
    /// A ledger with this id exists with a different currency.
    ExistsWithDifferentCurrency = 19,
    /// A ledger with this id exists with a different scale.
    ExistsWithDifferentScale = 20,
    /// A ledger with this id exists with a different settlement account id or code.
    ExistsWithDifferentSettlementAccount = 21,
    /// An identical object with this id exists: the command was applied before. Clients treat this as success.
    Exists = 22,
    /// A transfer with this id failed before with a code that depends on the state (see "Decided once" in `docs/result-codes.md`): an id's outcome is decided once, so it cannot succeed now. Send a new id.
    IdAlreadyFailed = 85,
    /// An order with this id (a standing order or a trigger) exists with different fields.
    OrderExistsWithDifferentFields = 103,
    /// A quote with this id exists with different fields.
    QuoteExistsWithDifferentFields = 118,
    /// An exchange's leg id is in use by a transfer that is not this exchange's leg (or the
    /// exchange exists with different fields).
    ExchangeExistsWithDifferentFields = 119,
    /// Flags that exclude each other are both set.
    FlagsAreMutuallyExclusive = 23,
    /// A new account's `debits_pending` must be zero.
    DebitsPendingMustBeZero = 24,
    /// A new account's `debits_posted` must be zero.
    DebitsPostedMustBeZero = 25,
    /// A new account's `credits_pending` must be zero.
    CreditsPendingMustBeZero = 26,
    /// A new account's `credits_posted` must be zero.
    CreditsPostedMustBeZero = 27,
    /// The ledger's currency is not three ASCII capital letters.
    CurrencyInvalid = 28,
    /// The ledger's scale is larger than `SCALE_MAX` (18).
    ScaleTooLarge = 29,
    /// The account id (a ledger's settlement account, or the account of a freeze/thaw/close/set_limits) must not be zero.
    AccountIdMustNotBeZero = 30,
    /// The account id (a ledger's settlement account, or the account of a freeze/thaw/close/set_limits) must not be `u128::MAX`.
    AccountIdMustNotBeIntMax = 31,
    /// A freeze, thaw or limit change must name the debit side, the credit side, or both; a velocity rule exactly one of them.
    ChangeMustNameASide = 32,
    /// A velocity rule's `slot` is not below 8.
    VelocitySlotInvalid = 99,
    /// A velocity rule's window is unknown, or a rolling window's length is zero or over 400 days, or a calendar window has a length.
    VelocityWindowInvalid = 100,
    /// A velocity rule bounds neither the count nor the amount.
    VelocityRuleMustSetAMaximum = 101,
    /// A single-sided `debit`/`credit` must leave the counterparty id zero: the engine uses the ledger's settlement account.
    CounterpartyMustBeZero = 33,
    /// `debit_account_id` must not be zero.
    DebitAccountIdMustNotBeZero = 34,
    /// `debit_account_id` must not be `u128::MAX`.
    DebitAccountIdMustNotBeIntMax = 35,
    /// `credit_account_id` must not be zero.
    CreditAccountIdMustNotBeZero = 36,
    /// `credit_account_id` must not be `u128::MAX`.
    CreditAccountIdMustNotBeIntMax = 37,
    /// Debit and credit account must differ.
    AccountsMustBeDifferent = 38,
    /// `pending_id` must be zero unless the transfer captures or releases a hold.
    PendingIdMustBeZero = 39,
    /// A capture or release must name its hold in `pending_id`.
    PendingIdMustNotBeZero = 40,
    /// `pending_id` must not be `u128::MAX`.
    PendingIdMustNotBeIntMax = 41,
    /// `pending_id` must differ from the transfer's own id.
    PendingIdMustBeDifferent = 42,
    /// `timeout` is only allowed on a hold.
    TimeoutReservedForPendingTransfer = 43,
    /// `ledger` must not be zero.
    LedgerMustNotBeZero = 44,
    /// `code` must not be zero.
    CodeMustNotBeZero = 45,
    /// No order or trigger has this id.
    OrderNotFound = 114,
    /// The order was cancelled or has run its last period: it cannot change.
    OrderEnded = 115,
    /// A standing order's unit is unknown, its period zero, or longer than ten years.
    OrderPeriodInvalid = 104,
    /// A monthly standing order's day is not 1 to 31, or another unit's day is not zero.
    OrderDayInvalid = 105,
    /// A standing order's `first_due_at` lies before the moment it is made (zero means "now").
    OrderFirstDueInPast = 106,
    /// A standing order's `end_at` lies before its first due time.
    OrderEndInvalid = 107,
    /// A standing order's `catch_up` is not 0 (all), 1 (latest) or 2 (none).
    OrderCatchUpInvalid = 108,
    /// Retries over 8, attempts without spacing or spacing without attempts, or retries that last as long as the shortest period.
    OrderRetryInvalid = 109,
    /// A trigger's kind is not 1 (threshold) or 2 (debt).
    TriggerKindInvalid = 110,
    /// A debt trigger's cap (`threshold`) is zero or it sets `target` or `top_up`; a top-up's `target` is not above its `threshold`; a fixed threshold trigger sets `target`.
    TriggerThresholdInvalid = 111,
    /// A standing order's or fixed trigger's amount is zero, a top-up or debt trigger sets one, or an amendment names no amount or an order without a fixed one.
    OrderAmountInvalid = 112,
    /// A trigger's cap bounds nothing while naming a window, or bounds something without a calendar window (minute to month).
    TriggerCapInvalid = 113,
    /// A quote's rate is zero, or its scale above 18.
    QuoteRateInvalid = 120,
    /// A quote's validity is zero or above 7 days, or its grace above 7 days.
    QuoteValidityInvalid = 121,
    /// A quote's two ledgers are the same.
    QuoteLedgersMustBeDifferent = 122,
    /// An exchange's two leg ids are the same, or an order's second id is not zero.
    ExchangeIdsMustBeDifferent = 123,
    /// An exchange's or order's amount is zero.
    ExchangeAmountMustNotBeZero = 124,
    /// No quote has this id.
    QuoteNotFound = 125,
    /// The ledger named by the command is not registered.
    LedgerNotFound = 46,
    /// An account with the new ledger's settlement account id exists already.
    SettlementAccountExists = 47,
    /// A single-sided `debit`/`credit` names the ledger's settlement account itself.
    AccountIsSettlementAccount = 48,
    /// The debit account does not exist.
    DebitAccountNotFound = 49,
    /// The credit account does not exist.
    CreditAccountNotFound = 50,
    /// The account does not exist.
    AccountNotFound = 51,
    /// Debit and credit account are on different ledgers.
    AccountsMustHaveTheSameLedger = 52,
    /// The transfer's ledger differs from its accounts' ledger.
    TransferMustHaveTheSameLedgerAsAccounts = 53,
    /// The hold named by `pending_id` does not exist.
    PendingTransferNotFound = 54,
    /// The transfer named by `pending_id` is not a hold.
    PendingTransferNotPending = 55,
    /// `debit_account_id` is given and differs from the hold's.
    PendingTransferHasDifferentDebitAccountId = 56,
    /// `credit_account_id` is given and differs from the hold's.
    PendingTransferHasDifferentCreditAccountId = 57,
    /// `ledger` is given and differs from the hold's.
    PendingTransferHasDifferentLedger = 58,
    /// `code` is given and differs from the hold's.
    PendingTransferHasDifferentCode = 59,
    /// A capture's amount exceeds the hold's amount.
    ExceedsPendingTransferAmount = 60,
    /// A release's amount is given and differs from the hold's amount.
    PendingTransferHasDifferentAmount = 61,
    /// The hold was captured already.
    PendingTransferAlreadyPosted = 62,
    /// The hold was released already.
    PendingTransferAlreadyVoided = 63,
    /// The hold's expiry has passed: it is (or is about to be) released automatically and can no longer be captured or released.
    PendingTransferExpired = 64,
    /// A reversal's `pending_id` names no stored transfer.
    ReversedTransferNotFound = 86,
    /// A reversal names a hold: release a pending hold, or reverse its capture.
    ReversedTransferIsAHold = 87,
    /// A reversal names a release or a reversal, which cannot be reversed: send a new transfer instead.
    ReversedTransferNotReversible = 88,
    /// A reversal's `debit_account_id` is neither zero nor the reversed transfer's credit account.
    ReversalHasDifferentDebitAccountId = 89,
    /// A reversal's `credit_account_id` is neither zero nor the reversed transfer's debit account.
    ReversalHasDifferentCreditAccountId = 90,
    /// A reversal's `ledger` is neither zero nor the reversed transfer's.
    ReversalHasDifferentLedger = 91,
    /// A reversal's amount exceeds what is left of the original after its earlier reversals (or nothing is left).
    ExceedsReversibleAmount = 92,
    /// A quote's liquidity account does not exist or is not in the quote's ledger on its side.
    QuoteLiquidityAccountInvalid = 126,
    /// A quote's customer account does not exist or is not in the quote's `to_ledger`.
    QuoteCustomerInvalid = 127,
    /// The customer's accounts are not in the quote's ledgers (`from_account` in `from_ledger`, `to_account` in `to_ledger`).
    ExchangeLedgerMismatch = 128,
    /// The quote was issued to another customer account.
    QuoteIssuedToAnotherCustomer = 129,
    /// `pending_id` names no pending order of this quote for this customer account.
    ExchangeOrderNotFound = 130,
    /// `booked_at` is set without `order`, lies in the future, or before the quote was made.
    ExchangeBookedAtInvalid = 131,
    /// The quote's validity had ended at the exchange (for an order: when the bank booked the money).
    QuoteExpired = 132,
    /// A single-use quote was used already.
    QuoteUsedUp = 133,
    /// At the quote's rate the amount converts to zero.
    ExchangeAmountTooSmall = 134,
    /// The converted amount does not fit 128 bits.
    ExchangeOverflow = 135,
    /// The exchange would take the quote past its `amount_max`.
    QuoteAmountExceeded = 136,
    /// The exchange buys more than the order reserved.
    ExchangeExceedsOrder = 137,
    /// The debit account is closed.
    DebitAccountClosed = 65,
    /// The credit account is closed.
    CreditAccountClosed = 66,
    /// The account is closed.
    AccountClosed = 67,
    /// The debit account's debits are frozen.
    DebitAccountFrozen = 68,
    /// The credit account's credits are frozen.
    CreditAccountFrozen = 69,
    /// The debit account's channel policy does not let this transfer's `code` debit it.
    DebitCodeNotAllowed = 93,
    /// The credit account's channel policy does not let this transfer's `code` credit it.
    CreditCodeNotAllowed = 94,
    /// The account still has pending holds; capture or release them first.
    AccountHasPendingBalance = 70,
    /// The account's posted debits and credits differ; settle it to zero first.
    AccountHasBalance = 71,
    /// `debits_pending` would overflow.
    OverflowsDebitsPending = 72,
    /// `credits_pending` would overflow.
    OverflowsCreditsPending = 73,
    /// `debits_posted` would overflow.
    OverflowsDebitsPosted = 74,
    /// `credits_posted` would overflow.
    OverflowsCreditsPosted = 75,
    /// `debits_pending + debits_posted` would overflow.
    OverflowsDebits = 76,
    /// `credits_pending + credits_posted` would overflow.
    OverflowsCredits = 77,
    /// The hold's expiry time would overflow.
    OverflowsTimeout = 78,
    /// The ledger-wide sum of posted or pending amounts would overflow a u128.
    OverflowsLedgerTotals = 79,
    /// The debit account's debits (holds count) would exceed its credits by more than its debit limit (`debits_must_not_exceed_credits`: 0; or the limit `set_limits` set).
    ExceedsCredits = 80,
    /// The credit account's credits (holds count) would exceed its debits by more than its credit limit (`credits_must_not_exceed_debits`: 0; or the limit `set_limits` set).
    ExceedsDebits = 81,
    /// The desk's liquidity account in the bought ledger cannot pay (its debits would exceed its credits or limit).
    ExchangeExceedsLiquidity = 138,
    /// A velocity rule of the debit account allows no more movements in its window.
    ExceedsDebitVelocityCount = 95,
    /// A velocity rule of the debit account allows no more amount in its window.
    ExceedsDebitVelocityAmount = 96,
    /// A velocity rule of the credit account allows no more movements in its window.
    ExceedsCreditVelocityCount = 97,
    /// A velocity rule of the credit account allows no more amount in its window.
    ExceedsCreditVelocityAmount = 98,
    /// The engine holds `ledgers_max` ledgers already.
    LedgersLimitReached = 82,
    /// One of the accounts takes part in 1 024 live orders already, or the watched one has 4 triggers.
    OrdersPerAccountLimitReached = 116,
    /// The engine holds as many standing orders and triggers as `accounts_max` already (ended ones count: their runs' ids name them).
    OrdersLimitReached = 117,
    /// The engine holds as many quotes as `transfers_max` already.
    QuotesLimitReached = 139,
    /// The engine holds `accounts_max` accounts already.
    AccountsLimitReached = 83,
    /// The engine holds `transfers_max` transfer ids already (stored transfers and decided failures).
    TransfersLimitReached = 84,
}

impl ResultCode {
    /// Whether the command took effect now or before (`Ok` or `Exists`).
    pub fn is_success(self) -> bool {
        matches!(self, ResultCode::Ok | ResultCode::Exists)
    }

    /// Whether a transfer that fails with this code has its id remembered, so that every later
    /// command with the id answers `id_already_failed`: the codes whose answer depends on the
    /// state at the time (an account or ledger missing, frozen or closed, a hold missing, a
    /// balance limit), so that the same command could succeed later. TigerBeetle's list
    /// (`CreateTransferStatus.transient`), plus the states Bursar has and it does not (a frozen
    /// side, a single-sided command's missing ledger). Codes about the command itself, overflow,
    /// a hold's final state and the engine's capacity are not remembered.
    pub fn is_decided_once(self) -> bool {
        use ResultCode as R;
        matches!(
            self,
            R::LedgerNotFound
                | R::DebitAccountNotFound
                | R::CreditAccountNotFound
                | R::PendingTransferNotFound
                | R::ReversedTransferNotFound
                | R::DebitAccountClosed
                | R::CreditAccountClosed
                | R::DebitAccountFrozen
                | R::CreditAccountFrozen
                | R::ExceedsCredits
                | R::ExceedsDebits
                | R::DebitCodeNotAllowed
                | R::CreditCodeNotAllowed
                | R::ExceedsDebitVelocityCount
                | R::ExceedsDebitVelocityAmount
                | R::ExceedsCreditVelocityCount
                | R::ExceedsCreditVelocityAmount
        )
    }
}

impl core::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_named_and_in_precedence_order() {
        let mut values: Vec<u32> = ResultCode::ALL.iter().map(|code| *code as u32).collect();
        for (i, code) in ResultCode::ALL.iter().enumerate() {
            assert_eq!(code.precedence(), i);
            assert_eq!(ResultCode::from_u32(*code as u32), Some(*code));
            assert!(!code.meaning().is_empty());
        }
        values.sort_unstable();
        assert!(values.iter().enumerate().all(|(i, v)| *v == i as u32), "values 0..n, each once");
        assert_eq!(ResultCode::from_u32(ResultCode::ALL.len() as u32), None);
        assert!(ResultCode::Exists.precedence() < ResultCode::IdAlreadyFailed.precedence());
        assert!(ResultCode::IdAlreadyFailed.precedence() < ResultCode::FlagsAreMutuallyExclusive.precedence());
        assert_eq!(ResultCode::ExistsWithDifferentUserData128.name(), "exists_with_different_user_data_128");
        assert_eq!(ResultCode::LinkedEventChainOpen.name(), "linked_event_chain_open");
    }

    #[test]
    fn result_codes_doc_lists_every_code_in_precedence_order() {
        let doc = include_str!("../../docs/result-codes.md");
        let mut at = 0;
        for code in ResultCode::ALL {
            let row = format!("| {} | `{}` |", *code as u32, code.name());
            let Some(found) = doc[at..].find(&row) else {
                panic!("docs/result-codes.md lacks the row {row}, or has it out of precedence order");
            };
            at += found + row.len();
        }
    }
}
