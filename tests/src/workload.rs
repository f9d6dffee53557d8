//! Seeded random workloads of every command kind: valid traffic, retries, chains, expiring
//! holds, lifecycle changes, malformed fields and overflow edges.

use bursar_engine::{
    account_flags as af, change_flags as cf, channel_flags as chf, limit_flags as lf, order_flags as of, order_unit as unit,
    transfer_flags as tf, trigger_kind as tk, velocity_flags as vf, velocity_window as vw, Account, AccountChange, AccountLimits,
    ChannelPolicy, Command, Exchange, Ledger, OrderChange, Quote, StandingOrder, Transfer, Trigger, VelocityRule, RUN_ID_PREFIX,
};
use bursar_engine::{exchange_flags as xf, quote_flags as qf};

use crate::rng::Rng;

/// Nanoseconds per second.
pub const S: u64 = 1_000_000_000;
/// Nanoseconds per day.
const DAY: u64 = 86_400 * S;
/// Where simulated time starts: 2028-01-20 (day 21 203), so monthly orders cross a leap February.
const START: u64 = 21_203 * DAY;

/// Generates batches; remembers what it sent so it can retry and reference holds.
#[derive(Debug)]
pub struct Workload {
    rng: Rng,
    ledgers: Vec<u32>,
    accounts: Vec<(u128, u32)>,
    holds: Vec<(u128, u32)>,
    /// Transfers and captures sent (they may have failed): what reversals name.
    posted: Vec<(u128, u128)>,
    sent: Vec<Command>,
    /// Standing orders and triggers sent (they may have failed).
    orders: Vec<u128>,
    /// The desk's liquidity accounts, one per starting ledger (no overdraft, funded in setup).
    liquidity: Vec<(u128, u32)>,
    /// Quotes sent: (id, from ledger, to ledger).
    quotes: Vec<(u128, u32, u32)>,
    /// Orders placed: (hold id, quote id, the customer's account in the bought ledger, when).
    desk_orders: Vec<(u128, u128, u128, u64)>,
    next_id: u128,
    /// The last id given a twin (an id the transfer index hashes alike; see `id`).
    twinned: u128,
    /// Simulated time in ns.
    pub now: u64,
}

impl Workload {
    /// A workload for this seed.
    pub fn new(seed: u64) -> Workload {
        Workload {
            rng: Rng(seed),
            ledgers: Vec::new(),
            accounts: Vec::new(),
            holds: Vec::new(),
            posted: Vec::new(),
            sent: Vec::new(),
            orders: Vec::new(),
            liquidity: Vec::new(),
            quotes: Vec::new(),
            desk_orders: Vec::new(),
            next_id: 1,
            twinned: 0,
            now: START,
        }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        // Spread ids over the whole range now and then, to exercise hashing and the u128 codec.
        if self.rng.chance(10) {
            (self.rng.next_u64() as u128) << 64 | self.next_id
        } else if self.rng.chance(12) {
            // An id the transfer index hashes like a recent one: told apart only by its record,
            // which the prefetch must have read when that one is out of memory.
            // The twinned ids fall behind, out of memory. Now and then a twin comes again: an
            // id already used, perhaps by another kind of command.
            if self.rng.chance(85) {
                self.twinned = (self.twinned + 1 + u128::from(self.rng.below(8))).min(self.next_id - 1);
            }
            bursar_engine::id_index::hash_twin(self.twinned)
        } else {
            self.next_id
        }
    }

    /// Ledgers and accounts to start from (the workload keeps creating more as it goes).
    pub fn setup(&mut self) -> Vec<Command> {
        let mut batch = Vec::new();
        for (id, currency) in [(1u32, *b"EUR"), (2, *b"USD"), (3, *b"PLN")] {
            let settlement = self.id();
            batch.push(Command::CreateLedger(Ledger {
                id,
                currency,
                scale: 2,
                settlement_account_id: settlement,
                settlement_account_code: 1,
                ..Default::default()
            }));
            self.ledgers.push(id);
            self.accounts.push((settlement, id));
        }
        for _ in 0..24 {
            batch.push(self.create_account());
        }
        for ledger in 1..=3u32 {
            let id = self.id();
            let flags = af::DEBITS_MUST_NOT_EXCEED_CREDITS;
            batch.push(Command::CreateAccount(Account { id, ledger, code: 20, flags, ..Default::default() }));
            let funding = Transfer { id: self.id(), credit_account_id: id, amount: 20_000, ledger, code: 1, ..Default::default() };
            batch.push(Command::Credit(funding));
            self.accounts.push((id, ledger));
            self.liquidity.push((id, ledger));
        }
        batch
    }

    /// The desk's liquidity account on `ledger` (a starting ledger), else any account on it.
    fn liquidity_on(&mut self, ledger: u32) -> u128 {
        match self.liquidity.iter().find(|(_, l)| *l == ledger) {
            Some((id, _)) if !self.rng.chance(8) => *id,
            _ => self.known_account_on(ledger),
        }
    }

    /// Where requests joined into `commands` end, as the sequencer marks them for
    /// `Engine::execute_requests`: often after a linked command (a client's open chain), now and
    /// then after any other.
    pub fn request_ends(&mut self, commands: &[Command]) -> Vec<u32> {
        let last = commands.len().saturating_sub(1);
        (0..last).filter(|&i| self.rng.chance(if commands[i].is_linked() { 30 } else { 5 })).map(|i| i as u32).collect()
    }

    /// The next batch: 0 to `max_len` commands, and the time to run it at.
    pub fn batch(&mut self, max_len: usize) -> (u64, Vec<Command>) {
        self.now += match self.rng.below(100) {
            0..=9 => 0,
            10..=55 => self.rng.below(S),
            // Now and then the server was down: hours to weeks pass (orders come due meanwhile).
            56 => self.rng.below(40 * DAY),
            57..=58 => self.rng.below(DAY),
            _ => self.rng.below(4 * S),
        };
        let len = self.rng.below(max_len as u64 + 1) as usize;
        let mut batch = Vec::with_capacity(len);
        for _ in 0..len {
            if self.rng.chance(25) {
                // A desk order and, linked, the exchange that settles it.
                let mut order = Command::PlaceOrder(self.place_order());
                set_linked(&mut order);
                batch.push(order);
                let &(pending_id, quote_id, to_account_id, _) = self.desk_orders.last().expect("just placed");
                let from_ledger = self.quotes.iter().find(|q| q.0 == quote_id).map_or(1, |q| q.1);
                let amount = 1 + self.rng.below(900) as u128;
                let (id, to_id, from_account_id) = (self.id(), self.id(), self.known_account_on(from_ledger));
                let flags = xf::ORDER;
                batch.push(Command::Exchange(Exchange {
                    id,
                    to_id,
                    quote_id,
                    from_account_id,
                    to_account_id,
                    amount,
                    pending_id,
                    flags,
                    ..Default::default()
                }));
                continue;
            }
            if self.rng.chance(3) {
                // A correction: a reversal and the corrected transfer, linked.
                let mut reversal = Command::Reverse(self.reversal());
                set_linked(&mut reversal);
                batch.push(reversal);
                batch.push(Command::Transfer(self.transfer()));
                continue;
            }
            let mut command = self.command();
            if self.rng.chance(12) {
                set_linked(&mut command);
            }
            batch.push(command);
        }
        self.sent.extend_from_slice(&batch);
        if self.sent.len() > 4096 {
            self.sent.drain(..2048);
        }
        (self.now, batch)
    }

    fn command(&mut self) -> Command {
        match self.rng.below(112) {
            106..=107 => Command::CreateQuote(self.quote()),
            108..=110 => Command::Exchange(self.exchange()),
            111 => Command::PlaceOrder(self.place_order()),
            100..=101 => Command::CreateStandingOrder(self.standing_order()),
            102..=103 => Command::CreateTrigger(self.trigger()),
            104..=105 => self.manage_order(),
            0..=2 => self.create_account(),
            3..=5 if !self.sent.is_empty() => self.retry(),
            6..=7 => self.lifecycle(),
            8 => self.malformed(),
            9 => self.create_ledger(),
            10..=39 => {
                let t = self.transfer();
                self.posted.push((t.id, t.amount));
                Command::Transfer(t)
            }
            40..=49 => {
                let t = self.transfer();
                if self.rng.chance(50) {
                    Command::Debit(Transfer { credit_account_id: 0, ..t })
                } else {
                    Command::Credit(Transfer { debit_account_id: 0, ..t })
                }
            }
            50..=69 => {
                let t = Transfer { timeout: self.rng.below(6) as u32, ..self.transfer() };
                self.holds.push((t.id, t.ledger));
                if self.rng.chance(20) {
                    Command::Transfer(Transfer { flags: t.flags | tf::PENDING, ..t })
                } else {
                    Command::Hold(t)
                }
            }
            70..=84 => {
                let t = self.resolution(true);
                self.posted.push((t.id, t.amount));
                Command::Capture(t)
            }
            85..=93 => Command::Release(self.resolution(false)),
            _ => {
                let t = self.reversal();
                self.posted.push((t.id, 1));
                Command::Reverse(t)
            }
        }
    }

    /// A standing order: any unit, short enough to come due in a run, sometimes malformed.
    fn standing_order(&mut self) -> StandingOrder {
        let ledger = *self.rng.pick(&self.ledgers);
        let unit = 1 + self.rng.below(4) as u8;
        let (period, count_max, min_s) = match unit {
            unit::SECONDS => {
                let p = 30 + self.rng.below(600) as u32;
                (p, 1 + self.rng.below(50) as u32, p as u64)
            }
            unit::DAYS => (1 + self.rng.below(3) as u32, self.rng.below(20) as u32, 86_400),
            unit::WEEKS => (1, self.rng.below(10) as u32, 7 * 86_400),
            _ => (1 + self.rng.below(2) as u32, self.rng.below(12) as u32, 28 * 86_400),
        };
        let attempts = if self.rng.chance(3) { 1 + self.rng.below(3) as u8 } else { 0 };
        let spacing = if attempts == 0 { 0 } else { 1 + self.rng.below(min_s / (attempts as u64 + 1)) as u32 };
        let first_due_at = if self.rng.chance(4) { 0 } else { self.now + self.rng.below(2 * DAY) };
        let mut o = StandingOrder {
            id: self.id(),
            debit_account_id: self.account_on(ledger),
            credit_account_id: self.account_on(ledger),
            amount: 1 + self.rng.below(500) as u128,
            first_due_at,
            end_at: if self.rng.chance(6) { first_due_at.max(self.now) + self.rng.below(30 * DAY) } else { 0 },
            count_max,
            period,
            unit,
            day: if unit == unit::MONTHS { *self.rng.pick(&[1, 15, 28, 29, 30, 31]) } else { 0 },
            catch_up: self.rng.below(3) as u8,
            retry_attempts: attempts,
            retry_spacing_s: spacing,
            ledger,
            code: 1 + self.rng.below(3) as u16,
            flags: if self.rng.chance(8) { of::REMIND } else { 0 },
            ..Default::default()
        };
        if self.rng.chance(8) {
            match self.rng.below(9) {
                0 => o.period = 0,
                1 => o.day = [0, 32][self.rng.below(2) as usize],
                2 => o.unit = 9,
                3 => o.catch_up = 3,
                4 => o.first_due_at = 1,
                5 => o.end_at = o.first_due_at.max(self.now).saturating_sub(DAY),
                6 => o.retry_attempts = 9,
                7 => o.amount = 0,
                _ => o.reserved[1] = 1,
            }
        }
        self.orders.push(o.id);
        o
    }

    /// A threshold or debt trigger, capped now and then, sometimes malformed.
    fn trigger(&mut self) -> Trigger {
        let ledger = *self.rng.pick(&self.ledgers);
        let mut t = Trigger {
            id: self.id(),
            debit_account_id: self.account_on(ledger),
            credit_account_id: self.account_on(ledger),
            ledger,
            code: 1 + self.rng.below(3) as u16,
            kind: if self.rng.chance(2) { tk::THRESHOLD } else { tk::DEBT },
            ..Default::default()
        };
        if t.kind == tk::THRESHOLD {
            t.threshold = self.rng.below(1_000) as u128;
            if self.rng.chance(2) {
                t.flags = of::TOP_UP;
                t.target = t.threshold + 1 + self.rng.below(2_000) as u128;
            } else {
                t.amount = 1 + self.rng.below(500) as u128;
            }
        } else {
            t.threshold = 1 + self.rng.below(2_000) as u128;
        }
        if self.rng.chance(3) {
            t.cap_window = 1 + self.rng.below(5) as u8;
            t.cap_count = self.rng.below(3) as u32;
            t.cap_amount = if t.cap_count == 0 || self.rng.chance(2) { 1 + self.rng.below(3_000) as u128 } else { 0 };
        }
        if self.rng.chance(10) {
            t.flags |= of::REMIND;
        }
        if self.rng.chance(8) {
            match self.rng.below(5) {
                0 => t.kind = 3,
                1 => t.target = 1,
                2 => t.amount = 0,
                3 => t.cap_window = 6,
                _ => t.reserved[0] = 1,
            }
        }
        self.orders.push(t.id);
        t
    }

    /// A quote between two ledgers (now and then the same one), on accounts of its ledgers or
    /// not, for seconds to two minutes, sometimes for one customer, bounded, or malformed.
    fn quote(&mut self) -> Quote {
        let from_ledger = if self.rng.chance(8) { *self.rng.pick(&self.ledgers) } else { 1 + self.rng.below(3) as u32 };
        let mut to_ledger = if self.rng.chance(8) { *self.rng.pick(&self.ledgers) } else { 1 + self.rng.below(3) as u32 };
        if to_ledger == from_ledger && !self.rng.chance(10) {
            to_ledger = from_ledger % 3 + 1;
        }
        let multi = self.rng.chance(2);
        let mut q = Quote {
            id: self.id(),
            from_liquidity_id: self.liquidity_on(from_ledger),
            to_liquidity_id: self.liquidity_on(to_ledger),
            customer_account_id: if self.rng.chance(5) { self.account_on(to_ledger) } else { 0 },
            amount_max: if self.rng.chance(4) { 1 + self.rng.below(3_000) as u128 } else { 0 },
            rate: 1 + self.rng.below(30_000),
            rate_scale: if self.rng.chance(10) { self.rng.below(5) as u8 } else { 4 },
            validity_s: 1 + self.rng.below(120) as u32,
            grace_s: self.rng.below(60) as u32,
            from_ledger,
            to_ledger,
            code: 1 + self.rng.below(3) as u16,
            flags: if multi { qf::MULTI_USE } else { 0 },
            ..Default::default()
        };
        if self.rng.chance(10) {
            match self.rng.below(5) {
                0 => q.rate = 0,
                1 => q.rate_scale = 19,
                2 => q.validity_s = 0,
                3 => q.code = 0,
                _ => q.reserved[2] = 1,
            }
        }
        self.quotes.push((q.id, from_ledger, to_ledger));
        q
    }

    /// A quote sent (now and then an unknown one) with its ledgers.
    fn pick_quote(&mut self) -> (u128, u32, u32) {
        if self.quotes.is_empty() || self.rng.chance(15) {
            return (self.rng.below(1 << 20) as u128 + 1, 1, 2);
        }
        // Mostly a recent one: older quotes have expired.
        let recent = &self.quotes[self.quotes.len().saturating_sub(6)..];
        if self.rng.chance(4) {
            *self.rng.pick(&self.quotes)
        } else {
            *self.rng.pick(recent)
        }
    }

    /// An exchange at a quote sent, or settling an order placed (booked in time, late, before
    /// the quote or in the future), selling or buying a fixed amount, sometimes malformed.
    fn exchange(&mut self) -> Exchange {
        let settles = !self.desk_orders.is_empty() && self.rng.chance(3);
        let order = if settles { Some(*self.rng.pick(&self.desk_orders[self.desk_orders.len().saturating_sub(8)..])) } else { None };
        let (mut quote_id, from_ledger, to_ledger) = match order {
            Some((_, quote, _, _)) => self.quotes.iter().copied().find(|q| q.0 == quote).unwrap_or((quote, 1, 2)),
            None => self.pick_quote(),
        };
        let mut e = Exchange {
            id: self.id(),
            to_id: self.id(),
            from_account_id: self.known_account_on(from_ledger),
            to_account_id: self.known_account_on(to_ledger),
            amount: if self.rng.chance(30) { self.amount() } else { 1 + self.rng.below(800) as u128 },
            flags: if self.rng.chance(3) { xf::BUY_FIXED } else { 0 },
            user_data_32: self.rng.below(3) as u32,
            ..Default::default()
        };
        if let Some((order, quote, customer, placed_at)) = order {
            (e.pending_id, quote_id, e.to_account_id) = (order, quote, customer);
            e.flags |= xf::ORDER;
            e.booked_at = match self.rng.below(5) {
                0 => 0,
                1 => self.now + 5 * S,
                2 => placed_at.saturating_sub(self.rng.below(5 * S)),
                _ => (placed_at + self.rng.below(130 * S)).min(self.now),
            };
        }
        e.quote_id = quote_id;
        if self.rng.chance(12) {
            match self.rng.below(5) {
                0 => e.to_id = e.id,
                1 => e.reserved = 1,
                2 => e.flags |= 1 << 5,
                3 => e.booked_at = 7,
                _ => e.pending_id = 3,
            }
        }
        e
    }

    /// An order on a quote sent, sometimes malformed.
    fn place_order(&mut self) -> Exchange {
        let (quote_id, _, to_ledger) = self.pick_quote();
        let mut e = Exchange {
            id: self.id(),
            quote_id,
            to_account_id: self.known_account_on(to_ledger),
            amount: 1 + self.rng.below(800) as u128,
            flags: if self.rng.chance(3) { xf::BUY_FIXED } else { 0 },
            ..Default::default()
        };
        if self.rng.chance(12) {
            match self.rng.below(4) {
                0 => e.to_id = 5,
                1 => e.from_account_id = 5,
                2 => e.flags |= xf::ORDER,
                _ => e.amount = 0,
            }
        }
        self.desk_orders.push((e.id, e.quote_id, e.to_account_id, self.now));
        e
    }

    /// A pause, resume, cancel or amendment of an order sent, now and then of an unknown one.
    fn manage_order(&mut self) -> Command {
        let order_id =
            if self.orders.is_empty() || self.rng.chance(10) { self.rng.below(1 << 20) as u128 + 1 } else { *self.rng.pick(&self.orders) };
        let change = OrderChange { order_id, ..Default::default() };
        match self.rng.below(7) {
            0..=1 => Command::PauseOrder(change),
            2..=3 => Command::ResumeOrder(change),
            4 => Command::CancelOrder(change),
            _ => Command::AmendOrder(OrderChange { amount: self.rng.below(400) as u128, ..change }),
        }
    }

    /// A reversal: mostly of a transfer or capture sent (in part, the rest, or more than is
    /// left), sometimes of a hold, an unknown id, or with sides or ledger given (right or wrong).
    fn reversal(&mut self) -> Transfer {
        let (pending_id, original) = match self.rng.below(10) {
            0 => (self.rng.below(1 << 20) as u128 + 1, 1_000),
            1 if !self.holds.is_empty() => (self.rng.pick(&self.holds).0, 1_000),
            _ if !self.posted.is_empty() => *self.rng.pick(&self.posted),
            _ => (3, 1_000),
        };
        let amount = match self.rng.below(5) {
            0 => u128::MAX,
            1 => original,
            2 => original / 2,
            _ => self.rng.below(original.min(1 << 20) as u64 + 2) as u128,
        };
        let mut t = Transfer { id: self.id(), pending_id, amount, code: 1 + self.rng.below(3) as u16, ..Default::default() };
        match self.rng.below(12) {
            0 => t.debit_account_id = self.account_on(1),
            1 => t.credit_account_id = self.account_on(1),
            2 => t.ledger = 1,
            3 => t.code = 0,
            4 => t.user_data_64 = 9,
            _ => {}
        }
        t
    }

    fn amount(&mut self) -> u128 {
        match self.rng.below(100) {
            0 => 0,
            1 => u128::MAX - self.rng.below(3) as u128,
            2 => u128::MAX / 2,
            3..=10 => 1_000_000 + self.rng.below(1_000_000) as u128,
            _ => 1 + self.rng.below(1000) as u128,
        }
    }

    /// An account made on `ledger`, now and then any id.
    fn known_account_on(&mut self, ledger: u32) -> u128 {
        let candidates: Vec<u128> = self.accounts.iter().filter(|(_, l)| *l == ledger).map(|(id, _)| *id).collect();
        if candidates.is_empty() || self.rng.chance(12) {
            return self.rng.below(1 << 20) as u128 + 1;
        }
        *self.rng.pick(&candidates)
    }

    fn account_on(&mut self, ledger: u32) -> u128 {
        let candidates: Vec<u128> = self.accounts.iter().filter(|(_, l)| *l == ledger).map(|(id, _)| *id).collect();
        if candidates.is_empty() || self.rng.chance(2) {
            return self.rng.below(1 << 20) as u128 + 1;
        }
        *self.rng.pick(&candidates)
    }

    fn transfer(&mut self) -> Transfer {
        let ledger = *self.rng.pick(&self.ledgers);
        let debit = self.account_on(ledger);
        let mut credit = self.account_on(ledger);
        if self.rng.chance(2) {
            let other = *self.rng.pick(&self.ledgers);
            credit = self.account_on(other);
        }
        Transfer {
            id: self.id(),
            debit_account_id: debit,
            credit_account_id: credit,
            amount: self.amount(),
            user_data_128: self.rng.below(3) as u128,
            user_data_64: self.rng.below(3),
            ledger: if self.rng.chance(2) { ledger % 3 + 1 } else { ledger },
            code: 1 + self.rng.below(3) as u16,
            ..Default::default()
        }
    }

    fn resolution(&mut self, capture: bool) -> Transfer {
        let pending_id =
            if self.holds.is_empty() || self.rng.chance(5) { self.rng.below(1 << 20) as u128 + 1 } else { self.rng.pick(&self.holds).0 };
        let amount = if capture {
            match self.rng.below(4) {
                0 => u128::MAX,
                1 => self.rng.below(600) as u128,
                _ => self.amount(),
            }
        } else if self.rng.chance(70) {
            0
        } else {
            self.amount()
        };
        Transfer { id: self.id(), pending_id, amount, user_data_32: self.rng.below(2) as u32, ..Default::default() }
    }

    fn create_account(&mut self) -> Command {
        let ledger = *self.rng.pick(&self.ledgers);
        let flags = match self.rng.below(10) {
            0..=2 => af::DEBITS_MUST_NOT_EXCEED_CREDITS,
            3 => af::CREDITS_MUST_NOT_EXCEED_DEBITS,
            4..=5 => af::HISTORY,
            6 => af::HISTORY | af::DEBITS_MUST_NOT_EXCEED_CREDITS,
            _ => 0,
        };
        let id = self.id();
        self.accounts.push((id, ledger));
        Command::CreateAccount(Account {
            id,
            ledger,
            code: 10 + self.rng.below(3) as u16,
            flags,
            user_data_64: self.rng.below(2),
            ..Default::default()
        })
    }

    fn create_ledger(&mut self) -> Command {
        let id = if self.rng.chance(50) { *self.rng.pick(&self.ledgers) } else { 4 + self.rng.below(4) as u32 };
        let currency = *self.rng.pick(&[*b"EUR", *b"GBP", *b"usd"]);
        let settlement = if self.rng.chance(20) { self.account_on(1) } else { self.id() };
        if !self.ledgers.contains(&id) {
            self.ledgers.push(id);
            self.accounts.push((settlement, id));
        }
        Command::CreateLedger(Ledger {
            id,
            currency,
            scale: self.rng.below(20) as u8,
            settlement_account_id: settlement,
            settlement_account_code: 1,
            ..Default::default()
        })
    }

    fn lifecycle(&mut self) -> Command {
        let ledger = *self.rng.pick(&self.ledgers);
        let account_id = self.account_on(ledger);
        let flags = [cf::DEBITS, cf::CREDITS, cf::DEBITS | cf::CREDITS, 0][self.rng.below(4) as usize];
        let change = AccountChange { account_id, flags, ..Default::default() };
        match self.rng.below(20) {
            0..=3 => Command::Freeze(change),
            4..=7 => Command::Thaw(change),
            8..=9 => Command::Close(AccountChange { flags: 0, ..change }),
            10..=13 => Command::SetLimits(self.limits_change(account_id)),
            14..=15 => Command::SetChannels(self.channels(account_id)),
            _ => Command::SetVelocity(self.velocity_rule(account_id)),
        }
    }

    /// A few codes of 1 to 4 (the workload's transfers use 1 to 3).
    fn codes<const N: usize>(&mut self) -> [u16; N] {
        let mut codes = [0u16; N];
        for slot in codes.iter_mut().take(3) {
            if self.rng.chance(40) {
                *slot = 1 + self.rng.below(4) as u16;
            }
        }
        codes
    }

    /// A channel policy: allow or deny lists of a few codes, sometimes a code exempt from the
    /// debit limit, sometimes none at all (clearing it), now and then malformed.
    fn channels(&mut self, account_id: u128) -> ChannelPolicy {
        let flags = [0, chf::DEBITS_ALLOW, chf::CREDITS_ALLOW, chf::DEBITS_ALLOW | chf::CREDITS_ALLOW][self.rng.below(4) as usize];
        let mut c = ChannelPolicy { account_id, flags, debit_codes: self.codes(), credit_codes: self.codes(), ..Default::default() };
        if self.rng.chance(30) {
            c.limit_exempt_codes[0] = 2;
        }
        match self.rng.below(20) {
            0 => c.reserved[3] = 1,
            1 => c.flags |= 1 << 9,
            2 => c.timestamp = 5,
            _ => {}
        }
        c
    }

    /// A velocity rule: calendar or rolling windows short enough to roll over during a run,
    /// counts and amounts around what the workload moves, sometimes per code; a removal now and
    /// then, and malformed ones (slot, window, no bound, both sides).
    fn velocity_rule(&mut self, account_id: u128) -> VelocityRule {
        let slot = self.rng.below(3) as u8;
        if self.rng.chance(15) {
            return VelocityRule { account_id, slot, flags: vf::REMOVE, ..Default::default() };
        }
        let (window, window_seconds) = match self.rng.below(8) {
            0..=2 => (vw::MINUTE, 0),
            3 => (vw::HOUR, 0),
            4 => ([vw::DAY, vw::WEEK, vw::MONTH][self.rng.below(3) as usize], 0),
            _ => (vw::ROLLING, 1 + self.rng.below(40) as u32),
        };
        let mut flags = if self.rng.chance(50) { vf::DEBITS } else { vf::CREDITS };
        let (mut count_max, mut amount_max) = (0, 0);
        if self.rng.chance(60) {
            flags |= vf::COUNT;
            count_max = 1 + self.rng.below(6) as u32;
        }
        if !self.rng.chance(60) || flags & vf::COUNT == 0 {
            flags |= vf::AMOUNT;
            amount_max = 100 + self.rng.below(5_000) as u128;
        }
        let codes = if self.rng.chance(30) { self.codes() } else { [0; 8] };
        let mut v = VelocityRule { account_id, slot, window, window_seconds, flags, count_max, amount_max, codes, ..Default::default() };
        match self.rng.below(25) {
            0 => v.slot = 8,
            1 => v.window = 7,
            2 => (v.window, v.window_seconds) = (vw::ROLLING, 0),
            3 => (v.flags, v.count_max, v.amount_max) = (v.flags & !(vf::COUNT | vf::AMOUNT), 0, 0),
            4 => v.flags |= vf::DEBITS | vf::CREDITS,
            5 => v.flags |= vf::REMOVE,
            6 => v.window_seconds += 1,
            _ => {}
        }
        v
    }

    /// A limit change: mostly valid (set or remove either side, limits around typical amounts,
    /// sometimes below what is used), sometimes malformed (set and remove on one side, an
    /// amount for a side not set, no side).
    fn limits_change(&mut self, account_id: u128) -> AccountLimits {
        let flags = [
            lf::DEBIT_LIMIT,
            lf::CREDIT_LIMIT,
            lf::DEBIT_LIMIT | lf::CREDIT_LIMIT,
            lf::REMOVE_DEBIT_LIMIT,
            lf::REMOVE_CREDIT_LIMIT | lf::DEBIT_LIMIT,
            lf::DEBIT_LIMIT | lf::REMOVE_DEBIT_LIMIT,
            0,
        ][self.rng.below(7) as usize];
        let mut change = AccountLimits { account_id, flags, ..Default::default() };
        if flags & lf::DEBIT_LIMIT != 0 || self.rng.chance(5) {
            change.debit_limit = self.rng.below(3_000) as u128;
        }
        if flags & lf::CREDIT_LIMIT != 0 {
            change.credit_limit = self.rng.below(3_000) as u128;
        }
        change
    }

    fn retry(&mut self) -> Command {
        let mut command = *self.rng.pick(&self.sent);
        if self.rng.chance(30) {
            let below = self.rng.below(10);
            if let Some(t) = command.as_transfer_mut() {
                match below {
                    0 => t.amount = t.amount.wrapping_add(1),
                    1 => t.user_data_32 ^= 1,
                    2 => t.code = t.code.wrapping_add(1),
                    3 => t.timeout ^= 1,
                    4 => t.pending_id ^= 1,
                    5 => t.debit_account_id ^= 2,
                    6 => t.credit_account_id ^= 2,
                    7 => t.user_data_128 ^= 4,
                    8 => t.user_data_64 ^= 4,
                    _ => t.ledger ^= 3,
                }
            } else {
                match &mut command {
                    Command::CreateAccount(a) => a.flags ^= af::HISTORY,
                    Command::CreateLedger(l) => l.scale ^= 1,
                    Command::Freeze(c) | Command::Thaw(c) | Command::Close(c) => c.flags ^= cf::CREDITS,
                    Command::SetLimits(c) => c.debit_limit = c.debit_limit.wrapping_add(1),
                    Command::SetChannels(c) => c.flags ^= chf::DEBITS_ALLOW,
                    Command::SetVelocity(v) => v.count_max = v.count_max.wrapping_add(1),
                    Command::CreateStandingOrder(o) => o.amount = o.amount.wrapping_add(1),
                    Command::CreateTrigger(t) => t.code ^= 1,
                    _ => {} // a kind with no field to vary is retried as it was sent
                }
            }
        }
        command
    }

    fn malformed(&mut self) -> Command {
        let mut t = self.transfer();
        let kind = self.rng.below(21);
        match kind {
            20 => t.id = RUN_ID_PREFIX | self.rng.below(1 << 20) as u128,
            0 => t.id = 0,
            1 => t.id = u128::MAX,
            2 => t.timestamp = 1,
            3 => t.flags |= 1 << (4 + self.rng.below(12)),
            4 => t.pending_id = 7,
            5 => t.flags |= tf::PENDING | tf::VOID_PENDING,
            6 => t.debit_account_id = 0,
            7 => t.debit_account_id = u128::MAX,
            8 => t.credit_account_id = 0,
            9 => t.credit_account_id = u128::MAX,
            10 => t.ledger = 0,
            11 => t.code = 0,
            12 => return Command::Debit(t),
            13 => return Command::Capture(Transfer { pending_id: [0, u128::MAX, t.id][self.rng.below(3) as usize], ..t }),
            14 => t.timeout = u32::MAX,
            15 => {
                let (pending_id, _) = if self.holds.is_empty() { (1, 1) } else { *self.rng.pick(&self.holds) };
                return Command::Capture(Transfer { pending_id, amount: u128::MAX, ledger: self.rng.below(2) as u32 + 1, ..t });
            }
            16 => {
                let mut a = Account { id: self.id(), ledger: 1, code: 1, ..Default::default() };
                match self.rng.below(6) {
                    0 => a.debits_pending = 1,
                    1 => a.debits_posted = 1,
                    2 => a.credits_pending = 1,
                    3 => a.credits_posted = 1,
                    4 => a.reserved[1] = 1,
                    _ => a.code = 0,
                }
                return Command::CreateAccount(a);
            }
            17 => {
                let account_id = [0, u128::MAX][self.rng.below(2) as usize];
                return Command::Freeze(AccountChange { account_id, flags: cf::DEBITS, ..Default::default() });
            }
            18 => {
                let mut c = AccountChange { account_id: self.account_on(1), flags: cf::CREDITS, ..Default::default() };
                c.reserved[self.rng.below(74) as usize] = 1;
                return Command::Thaw(c);
            }
            _ => {
                // A capture of something that is not a hold.
                let target = self.sent.iter().rev().find_map(|c| if let Command::Transfer(x) = c { Some(x.id) } else { None });
                return Command::Capture(Transfer { pending_id: target.unwrap_or(3), ..t });
            }
        }
        if kind == 14 {
            return Command::Hold(t);
        }
        Command::Transfer(t)
    }
}

fn set_linked(command: &mut Command) {
    *command.flags_mut() |= bursar_engine::types::FLAG_LINKED;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bursar_engine::CommandKind;

    /// A kind the workload never sends is a kind the simulation never checks against the model:
    /// adding a kind without teaching the workload fails here.
    #[test]
    fn the_workload_sends_every_command_kind() {
        let mut workload = Workload::new(1);
        let mut seen: std::collections::BTreeSet<CommandKind> = workload.setup().iter().map(Command::kind).collect();
        for _ in 0..200 {
            seen.extend(workload.batch(64).1.iter().map(Command::kind));
        }
        let missing: Vec<_> = CommandKind::ALL.iter().filter(|k| !seen.contains(k)).collect();
        assert!(missing.is_empty(), "never generated: {missing:?}");
    }
}
