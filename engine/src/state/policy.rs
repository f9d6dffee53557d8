//! Account policies: channel controls (which transfer codes may debit or credit an account, and
//! which may take it past its debit limit) and velocity rules (at most so many movements, or so
//! much money, per window), checked in the total order on the batch clock so replay is exact.
//!
//! An account without a policy pays one comparison per side of a movement (`policy == NONE` in
//! its bookkeeping, which the movement reads anyway); one with a channel policy and a calendar
//! rule, two adjacent cache lines (see [`Policy`]). A velocity rule counts a new transfer or
//! hold (and a reversal) on its side when it is made; a capture never counts again; a release or
//! an expiry gives the hold's amount and count back, and a capture of part of a hold the rest of
//! its amount, while the hold's window (or sub-bucket) is still the one it was counted in.

use super::*;
use crate::limits::{ROLLING_BUCKETS, ROLLING_WINDOW_SECONDS_MAX, VELOCITY_RULES_MAX};
use crate::types::{channel_flags as chf, velocity_flags as vf, velocity_window as vw, ChannelPolicy, VelocityRule};

/// Nanoseconds per day.
const NS_PER_DAY: u64 = 86_400 * NS_PER_S;

/// The usage of one window period (calendar) or sub-bucket (rolling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Bucket {
    /// Calendar: the window's start (ns); rolling: the sub-bucket's number (time / width).
    pub(crate) period: u64,
    /// Movements counted.
    pub(crate) count: u64,
    /// Their sum (saturating; exact whenever the rule bounds the amount).
    pub(crate) amount: u128,
}

/// A velocity rule and its buckets. `rule.timestamp` is when it started counting. The first
/// rule of a policy keeps its bucket 0 in the policy's hot line instead (see [`Policy`]): its
/// `buckets` start at bucket 1 (none for a calendar window, so it allocates nothing).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RuleState {
    pub(crate) rule: VelocityRule,
    /// One bucket (calendar) or [`ROLLING_BUCKETS`] (rolling), by period modulo their number.
    buckets: Vec<Bucket>,
}

/// A policy's second cache line: its channel flags, and its first rule's bounds and bucket 0,
/// all a movement reads besides the channel lists when the account has one calendar rule.
/// `packed(2)`: 64 bytes exactly (fields are read by value).
#[repr(C, packed(2))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct HotLine {
    channel_flags: u16,
    /// How many rules the policy has.
    rules: u8,
    /// The first rule's window, flags, whether it counts every code, and bounds.
    window: u8,
    flags: u16,
    any_code: u8,
    /// Listed in `digest.dirty_policies` since the digest was last settled (here because a
    /// movement that counts marks it).
    digest_dirty: u8,
    count_max: u32,
    window_seconds: u32,
    amount_max: u128,
    /// The first rule's bucket 0 (the only copy).
    bucket: Bucket,
}

const _: () = assert!(core::mem::size_of::<HotLine>() == 64);

/// An account's policy: its channel lists and its velocity rules, sorted by slot.
///
/// Laid out for the movement's checks, aligned to a cache line: line 0 holds the two channel
/// lists, line 1 the [`HotLine`]; an account with a channel policy and one calendar rule costs a
/// movement those two adjacent lines and nothing else. The lists and the hot line's bounds are
/// copies of `channels` and of the first rule, refreshed whenever those change
/// ([`Policy::refresh`]); the first rule's bucket 0 lives only in the hot line.
#[repr(C, align(64))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Policy {
    lists: [[u16; 16]; 2],
    hot: HotLine,
    /// `timestamp`: when it was last set (0: never; no channel restriction).
    pub(crate) channels: ChannelPolicy,
    rules: Vec<RuleState>,
    pub(crate) account: u32,
}

impl Policy {
    /// An empty policy of the account at `account` with id `id`.
    pub(crate) fn new(account: u32, id: u128) -> Policy {
        let channels = ChannelPolicy { account_id: id, ..Default::default() };
        let mut policy = Policy { lists: [[0; 16]; 2], hot: HotLine::default(), channels, rules: Vec::new(), account };
        policy.refresh();
        policy
    }

    /// Copies the channel lists and flags and the first rule's bounds into the hot lines.
    fn refresh(&mut self) {
        self.lists = [self.channels.debit_codes, self.channels.credit_codes];
        let (bucket, digest_dirty) = (self.hot.bucket, self.hot.digest_dirty);
        self.hot =
            HotLine { channel_flags: self.channels.flags, rules: self.rules.len() as u8, bucket, digest_dirty, ..HotLine::default() };
        if let Some(first) = self.rules.first() {
            let r = &first.rule;
            self.hot.window = r.window;
            self.hot.flags = r.flags;
            self.hot.any_code = u8::from(r.codes == [0; 8]);
            self.hot.count_max = r.count_max;
            self.hot.window_seconds = r.window_seconds;
            self.hot.amount_max = r.amount_max;
        }
    }

    /// Sets the channel policy record.
    pub(crate) fn set_channels(&mut self, channels: ChannelPolicy) {
        self.channels = channels;
        self.refresh();
    }

    /// How many velocity rules the policy has (from the hot line).
    pub(crate) fn rule_count(&self) -> usize {
        usize::from(self.hot.rules)
    }

    /// Whether the policy is listed in the digest's dirty list.
    pub(crate) fn digest_dirty(&self) -> bool {
        self.hot.digest_dirty != 0
    }

    /// Marks whether the policy is listed in the digest's dirty list.
    pub(crate) fn set_digest_dirty(&mut self, dirty: bool) {
        self.hot.digest_dirty = u8::from(dirty);
    }

    /// Rule `k` (in slot order).
    pub(crate) fn rule(&self, k: usize) -> &VelocityRule {
        &self.rules[k].rule
    }

    /// The rules, in slot order.
    pub(crate) fn rules(&self) -> impl Iterator<Item = &VelocityRule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// How many buckets rule `k` keeps.
    pub(crate) fn bucket_count(&self, k: usize) -> usize {
        self.rules[k].buckets.len() + usize::from(k == 0)
    }

    /// Bucket `b` of rule `k`.
    pub(crate) fn bucket(&self, k: usize, b: usize) -> Bucket {
        match (k, b) {
            (0, 0) => self.hot.bucket,
            (0, b) => self.rules[0].buckets[b - 1],
            (k, b) => self.rules[k].buckets[b],
        }
    }

    /// Sets bucket `b` of rule `k`.
    pub(crate) fn set_bucket(&mut self, k: usize, b: usize, bucket: Bucket) {
        match (k, b) {
            (0, 0) => self.hot.bucket = bucket,
            (0, b) => self.rules[0].buckets[b - 1] = bucket,
            (k, b) => self.rules[k].buckets[b] = bucket,
        }
    }

    /// Changes the rules as a vector (rare: a rule set or removed, a snapshot restored), keeping
    /// each rule's buckets with it and the hot line in step.
    pub(crate) fn edit_rules<T>(&mut self, change: impl FnOnce(&mut Vec<RuleState>) -> T) -> T {
        if let Some(first) = self.rules.first_mut() {
            first.buckets.insert(0, self.hot.bucket);
        }
        let result = change(&mut self.rules);
        self.hot.bucket = self.rules.first_mut().map_or(Bucket::default(), |first| {
            let bucket = first.buckets.remove(0);
            first.buckets.shrink_to_fit();
            bucket
        });
        self.refresh();
        result
    }

    /// Whether the copies in the hot lines match what they copy, and the first rule keeps all
    /// its buckets but bucket 0.
    fn hot_in_step(&self) -> bool {
        let mut copy = self.clone();
        copy.refresh();
        let hot_bucket = self.hot.bucket;
        copy == *self
            && self.rules.first().is_none_or(|first| first.buckets.len() + 1 == buckets_of(&first.rule))
            && (!self.rules.is_empty() || hot_bucket == Bucket::default())
    }
}

impl RuleState {
    /// A rule that has counted nothing yet.
    pub(crate) fn new(rule: VelocityRule) -> RuleState {
        RuleState { rule, buckets: vec![Bucket::default(); buckets_of(&rule)] }
    }
}

/// A velocity rule of an account and how much of it is used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleUsage {
    /// The rule (`timestamp`: when it started counting).
    pub rule: VelocityRule,
    /// Movements in the window that holds the engine's clock.
    pub count: u64,
    /// Their sum.
    pub amount: u128,
    /// The window's start (ns; for a rolling window, the oldest sub-bucket's).
    pub window_start: u64,
    /// The window's end (ns, exclusive).
    pub window_end: u64,
}

/// An account's channel policy and velocity rules, as a lookup returns them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AccountPolicy {
    /// The channel lists (`timestamp`: when set; all zero: none).
    pub channels: ChannelPolicy,
    /// The velocity rules, by slot, with their usage now.
    pub rules: Vec<RuleUsage>,
}

/// Which side of a movement an account is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Debit,
    Credit,
}

impl Engine {
    pub(super) fn set_channels(&mut self, c: &ChannelPolicy, ts: u64) -> ResultCode {
        use ResultCode as R;
        let checks = [
            (c.timestamp != 0, R::TimestampMustBeZero),
            (c.reserved != [0; 10], R::ReservedField),
            (c.flags & !chf::ALL != 0, R::ReservedFlag),
            (c.account_id == 0, R::AccountIdMustNotBeZero),
            (c.account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
        ];
        if let Some(&(_, code)) = checks.iter().find(|(failed, _)| *failed) {
            return code;
        }
        let index = match self.open_account(c.account_id) {
            Ok(index) => index,
            Err(code) => return code,
        };
        let p = self.policy_of(index);
        self.save_policy(p);
        self.policies[p as usize].set_channels(ChannelPolicy { timestamp: ts, flags: c.flags & !chf::LINKED, ..*c });
        R::Ok
    }

    pub(super) fn set_velocity(&mut self, v: &VelocityRule, ts: u64) -> ResultCode {
        if let Some(code) = check_velocity_record(v) {
            return code;
        }
        let index = match self.open_account(v.account_id) {
            Ok(index) => index,
            Err(code) => return code,
        };
        let p = self.policy_of(index);
        self.save_policy(p);
        let rule = VelocityRule { flags: v.flags & !vf::LINKED, timestamp: ts, ..*v };
        self.policies[p as usize].edit_rules(|rules| {
            let at = rules.binary_search_by_key(&v.slot, |r| r.rule.slot);
            match at {
                Ok(at) if v.flags & vf::REMOVE != 0 => drop(rules.remove(at)),
                Err(_) if v.flags & vf::REMOVE != 0 => {}
                // The same thing counted: the usage so far stays, under the new maxima.
                Ok(at) if counts_alike(&rules[at].rule, &rule) => {
                    rules[at].rule = VelocityRule { timestamp: rules[at].rule.timestamp, ..rule }
                }
                Ok(at) => rules[at] = RuleState::new(rule),
                Err(at) => rules.insert(at, RuleState::new(rule)),
            }
        });
        ResultCode::Ok
    }

    /// The index of an open account, or why a policy cannot be set on it.
    fn open_account(&self, id: u128) -> Result<u32, ResultCode> {
        let Some(&index) = self.account_index.get(&id) else {
            return Err(ResultCode::AccountNotFound);
        };
        if self.accounts[index as usize].state & account_state::CLOSED != 0 {
            return Err(ResultCode::AccountClosed);
        }
        Ok(index)
    }

    /// The account's policy, made (empty) if it has none.
    fn policy_of(&mut self, account: u32) -> u32 {
        let existing = self.account_meta[account as usize].policy;
        if existing != NONE {
            return existing;
        }
        let p = self.policies.len() as u32;
        self.policies.push(Policy::new(account, self.accounts[account as usize].id));
        self.account_meta[account as usize].policy = p;
        self.record(Undo::PolicyInserted);
        self.touch_policy(p);
        p
    }

    /// Keeps the policy as it is for a chain's undo, and marks it changed for the digest.
    fn save_policy(&mut self, p: u32) {
        if self.recording {
            self.undo.push(Undo::PolicyReplaced { policy: p, old: Box::new(self.policies[p as usize].clone()) });
        }
        self.touch_policy(p);
    }

    fn touch_policy(&mut self, p: u32) {
        let policy = &mut self.policies[p as usize];
        if !policy.digest_dirty() {
            policy.set_digest_dirty(true);
            self.digest.dirty_policies.push(p);
        }
    }

    /// Touches what a movement reads of a policy for the gather pass, so its misses overlap
    /// with the other commands' instead of stalling the apply pass: the hot lines, and the
    /// rules' records and buckets when there is more than one rule or a rolling window.
    pub(super) fn warm_policy(&self, p: u32) -> u64 {
        let policy = &self.policies[p as usize];
        let hot = policy.hot;
        let mut touched = u64::from(policy.lists[0][0]) ^ u64::from(hot.channel_flags) ^ hot.bucket.count;
        if hot.rules > 1 || hot.window == vw::ROLLING {
            for r in &policy.rules {
                touched ^= r.rule.amount_max as u64 ^ r.buckets.last().map_or(0, |b| b.count);
            }
        }
        touched
    }

    /// Channel checks of a new movement between accounts `dr` and `cr`, in precedence order.
    pub(super) fn check_channels(&self, dr: u32, cr: u32, code: u16) -> Option<ResultCode> {
        let allows = |account: u32, side: Side| {
            let p = self.account_meta[account as usize].policy;
            p == NONE || channel_allows(&self.policies[p as usize], side, code)
        };
        if !allows(dr, Side::Debit) {
            return Some(ResultCode::DebitCodeNotAllowed);
        }
        if !allows(cr, Side::Credit) {
            return Some(ResultCode::CreditCodeNotAllowed);
        }
        None
    }

    /// Whether the account's policy lets debits with this code exceed its debit limit.
    #[cold]
    pub(super) fn limit_exempt(&self, account: u32, code: u16) -> bool {
        let p = self.account_meta[account as usize].policy;
        p != NONE && self.policies[p as usize].channels.limit_exempt_codes.contains(&code)
    }

    /// Velocity checks of a new movement of `amount` with `code` at `ts`, in precedence order:
    /// the debit account's count bounds, its amount bounds, then the credit account's.
    pub(super) fn check_velocity(&self, dr: u32, cr: u32, code: u16, amount: u128, ts: u64) -> Option<ResultCode> {
        use ResultCode as R;
        for (account, side, codes) in [
            (dr, Side::Debit, [R::ExceedsDebitVelocityCount, R::ExceedsDebitVelocityAmount]),
            (cr, Side::Credit, [R::ExceedsCreditVelocityCount, R::ExceedsCreditVelocityAmount]),
        ] {
            let p = self.account_meta[account as usize].policy;
            if p == NONE {
                continue;
            }
            let (count_over, amount_over) = over_bounds(&self.policies[p as usize], side, code, amount, ts);
            if count_over {
                return Some(codes[0]);
            }
            if amount_over {
                return Some(codes[1]);
            }
        }
        None
    }

    /// Counts a new movement in the velocity rules of both sides.
    pub(super) fn count_velocity(&mut self, dr: u32, cr: u32, code: u16, amount: u128, ts: u64) {
        for (account, side) in [(dr, Side::Debit), (cr, Side::Credit)] {
            let p = self.account_meta[account as usize].policy;
            if p == NONE {
                continue;
            }
            for k in 0..self.policies[p as usize].rule_count() {
                let policy = &self.policies[p as usize];
                if counts(policy, k, side, code) {
                    // One calendar rule: its window from the hot line, no record read.
                    let hot = policy.hot;
                    let (period, slot) = if k == 0 && hot.window != vw::ROLLING {
                        (calendar_start(hot.window, ts), 0)
                    } else {
                        period_of(policy.rule(k), ts)
                    };
                    self.change_bucket(p, k, slot, |b| {
                        if b.period != period {
                            *b = Bucket { period, count: 0, amount: 0 };
                        }
                        b.count = b.count.saturating_add(1);
                        b.amount = b.amount.saturating_add(amount);
                    });
                }
            }
        }
    }

    /// Gives back to both sides' velocity rules `amount` (and one movement when `count`) of the
    /// hold `t`, where the hold was counted and its period's bucket still holds it.
    #[cold]
    pub(super) fn give_back_velocity(&mut self, t: &Transfer, amount: u128, count: bool) {
        let dr = self.account_index[&t.debit_account_id];
        let cr = self.account_index[&t.credit_account_id];
        for (account, side) in [(dr, Side::Debit), (cr, Side::Credit)] {
            let p = self.account_meta[account as usize].policy;
            if p == NONE {
                continue;
            }
            for k in 0..self.policies[p as usize].rule_count() {
                let policy = &self.policies[p as usize];
                if !counts(policy, k, side, t.code) || t.timestamp < policy.rule(k).timestamp {
                    continue;
                }
                let (period, slot) = period_of(policy.rule(k), t.timestamp);
                if policy.bucket(k, slot).period == period {
                    self.change_bucket(p, k, slot, |b| {
                        b.count = b.count.saturating_sub(u64::from(count));
                        b.amount = b.amount.saturating_sub(amount);
                    });
                }
            }
        }
    }

    fn change_bucket(&mut self, p: u32, rule: usize, slot: usize, change: impl FnOnce(&mut Bucket)) {
        let policy = &mut self.policies[p as usize];
        let old = policy.bucket(rule, slot);
        let mut new = old;
        change(&mut new);
        policy.set_bucket(rule, slot, new);
        if self.recording {
            self.undo.push(Undo::Bucket { policy: p, rule: rule as u8, slot: slot as u8, old });
        }
        self.touch_policy(p);
    }

    /// The policy of an account, with each rule's usage at the engine's clock, if it has one.
    pub fn account_policy(&self, id: u128) -> Option<AccountPolicy> {
        let &index = self.account_index.get(&id)?;
        let p = self.account_meta[index as usize].policy;
        if p == NONE {
            return Some(AccountPolicy { channels: ChannelPolicy { account_id: id, ..Default::default() }, rules: Vec::new() });
        }
        let policy = &self.policies[p as usize];
        let rules = (0..policy.rule_count())
            .map(|k| {
                let rule = *policy.rule(k);
                let (count, amount) = usage_at(policy, k, self.timestamp);
                let (window_start, window_end) = window_bounds(&rule, self.timestamp);
                RuleUsage { rule, count, amount, window_start, window_end }
            })
            .collect();
        Some(AccountPolicy { channels: policy.channels, rules })
    }

    /// Each policy belongs to its account, which points back; its rules are valid, sorted by
    /// slot, each with the buckets its window has and none from a later period than the clock.
    pub(crate) fn check_policies(&self) -> Result<(), String> {
        let with_policy = self.account_meta.iter().filter(|m| m.policy != NONE).count();
        if with_policy != self.policies.len() {
            return Err(format!("{with_policy} accounts name a policy, {} policies exist", self.policies.len()));
        }
        for (p, policy) in self.policies.iter().enumerate() {
            let id = self.accounts[policy.account as usize].id;
            if self.account_meta[policy.account as usize].policy != p as u32 {
                return Err(format!("account {id}: its policy does not point back"));
            }
            let c = &policy.channels;
            if c.account_id != id || c.reserved != [0; 10] || c.flags & !(chf::ALL & !chf::LINKED) != 0 {
                return Err(format!("account {id}: its channel policy is malformed"));
            }
            let slots: Vec<u8> = policy.rules().map(|r| r.slot).collect();
            let sorted = slots.windows(2).all(|w| w[0] < w[1]);
            if !sorted || policy.rule_count() > VELOCITY_RULES_MAX || !policy.hot_in_step() {
                return Err(format!("account {id}: velocity rules not in slot order, or its hot lines out of step"));
            }
            for k in 0..policy.rule_count() {
                let r = policy.rule(k);
                let valid = check_velocity_record(&VelocityRule { timestamp: 0, ..*r }).is_none()
                    && r.flags & (vf::REMOVE | vf::LINKED) == 0
                    && r.account_id == id;
                let (now, _) = period_of(r, self.timestamp);
                let future = (0..policy.bucket_count(k)).any(|b| policy.bucket(k, b).period > now);
                if !valid || policy.bucket_count(k) != buckets_of(r) || future {
                    return Err(format!("account {id}: velocity rule in slot {} is invalid or counts the future", r.slot));
                }
            }
        }
        Ok(())
    }
}

/// The checks of a velocity rule that need no state, in precedence order.
fn check_velocity_record(v: &VelocityRule) -> Option<ResultCode> {
    use ResultCode as R;
    let remove = v.flags & vf::REMOVE != 0;
    let sides = v.flags & (vf::DEBITS | vf::CREDITS);
    let unused = (v.flags & vf::COUNT == 0 && v.count_max != 0) || (v.flags & vf::AMOUNT == 0 && v.amount_max != 0);
    let bare = VelocityRule { account_id: 0, slot: 0, flags: 0, user_data_64: 0, user_data_32: 0, ..*v };
    let calendar = (vw::MINUTE..=vw::MONTH).contains(&v.window);
    let window_ok =
        (calendar && v.window_seconds == 0) || (v.window == vw::ROLLING && (1..=ROLLING_WINDOW_SECONDS_MAX).contains(&v.window_seconds));
    let checks = [
        (v.timestamp != 0, R::TimestampMustBeZero),
        (v.reserved != [0; 48] || unused || (remove && bare != VelocityRule::default()), R::ReservedField),
        (v.flags & !vf::ALL != 0, R::ReservedFlag),
        (sides == vf::DEBITS | vf::CREDITS || (remove && v.flags & !(vf::REMOVE | vf::LINKED) != 0), R::FlagsAreMutuallyExclusive),
        (v.account_id == 0, R::AccountIdMustNotBeZero),
        (v.account_id == u128::MAX, R::AccountIdMustNotBeIntMax),
        (!remove && sides == 0, R::ChangeMustNameASide),
        (v.slot as usize >= VELOCITY_RULES_MAX, R::VelocitySlotInvalid),
        (!remove && !window_ok, R::VelocityWindowInvalid),
        (!remove && v.flags & (vf::COUNT | vf::AMOUNT) == 0, R::VelocityRuleMustSetAMaximum),
    ];
    checks.iter().find(|(failed, _)| *failed).map(|&(_, code)| code)
}

/// Whether two rules count the same movements the same way and bound the same things (only
/// their maxima differ). A rule that bounds the amount has done so since it started counting,
/// so its sums never saturate.
fn counts_alike(a: &VelocityRule, b: &VelocityRule) -> bool {
    let what = |r: &VelocityRule| (r.flags & (vf::DEBITS | vf::CREDITS | vf::COUNT | vf::AMOUNT), r.window, r.window_seconds, r.codes);
    what(a) == what(b)
}

/// Whether a policy's channel lists let `code` move money on `side` of the account (the hot
/// lines only).
fn channel_allows(policy: &Policy, side: Side, code: u16) -> bool {
    let flags = policy.hot.channel_flags;
    let (codes, allow) = match side {
        Side::Debit => (&policy.lists[0], flags & chf::DEBITS_ALLOW != 0),
        Side::Credit => (&policy.lists[1], flags & chf::CREDITS_ALLOW != 0),
    };
    codes.contains(&code) == allow
}

/// Whether rule `k` of a policy counts a movement with `code` on `side` of its account (the
/// first rule's flags from the hot line; its codes are read only when it lists some).
fn counts(policy: &Policy, k: usize, side: Side, code: u16) -> bool {
    let direction = match side {
        Side::Debit => vf::DEBITS,
        Side::Credit => vf::CREDITS,
    };
    let (flags, any_code) = if k == 0 { (policy.hot.flags, policy.hot.any_code != 0) } else { (policy.rule(k).flags, false) };
    flags & direction != 0 && (any_code || rule_counts_code(policy.rule(k), code))
}

fn rule_counts_code(rule: &VelocityRule, code: u16) -> bool {
    rule.codes == [0; 8] || rule.codes.contains(&code)
}

/// Whether a movement of `amount` would pass a count bound, and an amount bound, of the rules
/// of `policy` that count it. One calendar rule is read from the hot line alone.
fn over_bounds(policy: &Policy, side: Side, code: u16, amount: u128, ts: u64) -> (bool, bool) {
    let hot = policy.hot;
    if hot.rules == 1 && hot.window != vw::ROLLING {
        if !counts(policy, 0, side, code) {
            return (false, false);
        }
        let bucket = hot.bucket;
        let (count, sum) = if bucket.period == calendar_start(hot.window, ts) { (bucket.count, bucket.amount) } else { (0, 0) };
        let (flags, count_max, amount_max) = (hot.flags, hot.count_max, hot.amount_max);
        return (
            flags & vf::COUNT != 0 && count >= count_max as u64,
            flags & vf::AMOUNT != 0 && sum.checked_add(amount).is_none_or(|sum| sum > amount_max),
        );
    }
    let (mut count_over, mut amount_over) = (false, false);
    for k in (0..policy.rule_count()).filter(|&k| counts(policy, k, side, code)) {
        let r = policy.rule(k);
        let (count, sum) = usage_at(policy, k, ts);
        count_over |= r.flags & vf::COUNT != 0 && count >= r.count_max as u64;
        amount_over |= r.flags & vf::AMOUNT != 0 && sum.checked_add(amount).is_none_or(|sum| sum > r.amount_max);
    }
    (count_over, amount_over)
}

/// How many buckets a rule's window keeps.
fn buckets_of(rule: &VelocityRule) -> usize {
    if rule.window == vw::ROLLING {
        ROLLING_BUCKETS
    } else {
        1
    }
}

/// A rolling window's sub-bucket width (ns).
fn rolling_width(rule: &VelocityRule) -> u64 {
    (rule.window_seconds as u64 * NS_PER_S).div_ceil(ROLLING_BUCKETS as u64)
}

/// The period a movement at `ts` falls in, and the bucket that keeps it.
fn period_of(rule: &VelocityRule, ts: u64) -> (u64, usize) {
    if rule.window == vw::ROLLING {
        let period = ts / rolling_width(rule);
        (period, (period % ROLLING_BUCKETS as u64) as usize)
    } else {
        (calendar_start(rule.window, ts), 0)
    }
}

/// Movements and amount rule `k` of a policy holds in its window at `ts`.
fn usage_at(policy: &Policy, k: usize, ts: u64) -> (u64, u128) {
    let rule = policy.rule(k);
    let (now, _) = period_of(rule, ts);
    let live = |b: &Bucket| if rule.window == vw::ROLLING { b.period + ROLLING_BUCKETS as u64 > now } else { b.period == now };
    (0..policy.bucket_count(k))
        .map(|b| policy.bucket(k, b))
        .filter(live)
        .fold((0, 0), |(count, amount), b| (count.saturating_add(b.count), amount.saturating_add(b.amount)))
}

/// The window holding `ts`: [start, end) in ns.
fn window_bounds(rule: &VelocityRule, ts: u64) -> (u64, u64) {
    if rule.window == vw::ROLLING {
        let width = rolling_width(rule);
        let period = ts / width;
        ((period + 1).saturating_sub(ROLLING_BUCKETS as u64) * width, (period + 1).saturating_mul(width))
    } else {
        let start = calendar_start(rule.window, ts);
        (start, calendar_start(rule.window, calendar_end_probe(rule.window, start)))
    }
}

/// A time inside the calendar window after the one starting at `start`.
fn calendar_end_probe(window: u8, start: u64) -> u64 {
    let length = match window {
        vw::MINUTE => 60 * NS_PER_S,
        vw::HOUR => 3_600 * NS_PER_S,
        vw::DAY => NS_PER_DAY,
        vw::WEEK => 7 * NS_PER_DAY,
        _ => 32 * NS_PER_DAY,
    };
    start.saturating_add(length)
}

/// The start (ns since 1970-01-01 UTC) of the calendar window that holds `ts`.
pub(crate) fn calendar_start(window: u8, ts: u64) -> u64 {
    let day = ts / NS_PER_DAY;
    match window {
        vw::MINUTE => ts - ts % (60 * NS_PER_S),
        vw::HOUR => ts - ts % (3_600 * NS_PER_S),
        vw::DAY => day * NS_PER_DAY,
        // 1970-01-01 was a Thursday: Monday is 3 days before it, modulo 7.
        // (Clamped at the epoch for the first days of 1970.)
        vw::WEEK => day.saturating_sub((day + 3) % 7) * NS_PER_DAY,
        _ => {
            let (year, month, _) = civil_from_days(day);
            days_from_civil(year, month, 1) * NS_PER_DAY
        }
    }
}

/// Year, month (1-12), day (1-31) of a day number since 1970-01-01 (Howard Hinnant's algorithm,
/// for days from 1970 on).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The day number since 1970-01-01 of a date from 1970 on.
pub(crate) fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = NS_PER_DAY;

    #[test]
    fn calendar_windows_start_where_the_utc_calendar_says() {
        // 2026-03-15T13:45:30.5Z is day 20527.
        let ts = 20_527 * DAY + (13 * 3_600 + 45 * 60 + 30) * NS_PER_S + NS_PER_S / 2;
        assert_eq!(civil_from_days(20_527), (2026, 3, 15));
        assert_eq!(calendar_start(vw::MINUTE, ts), 20_527 * DAY + (13 * 3_600 + 45 * 60) * NS_PER_S);
        assert_eq!(calendar_start(vw::HOUR, ts), 20_527 * DAY + 13 * 3_600 * NS_PER_S);
        assert_eq!(calendar_start(vw::DAY, ts), 20_527 * DAY);
        // 2026-03-15 is a Sunday: its ISO week began on Monday 2026-03-09.
        assert_eq!(calendar_start(vw::WEEK, ts), days_from_civil(2026, 3, 9) * DAY);
        assert_eq!(calendar_start(vw::MONTH, ts), days_from_civil(2026, 3, 1) * DAY);
        assert_eq!(calendar_start(vw::WEEK, 0), 0, "the week of 1970-01-01 is clamped at the epoch");
        // Leap years: 2028-02-29 exists, its month starts 2028-02-01.
        let leap = days_from_civil(2028, 2, 29);
        assert_eq!(civil_from_days(leap), (2028, 2, 29));
        assert_eq!(calendar_start(vw::MONTH, leap * DAY + 5), days_from_civil(2028, 2, 1) * DAY);
        for day in [0, 59, 365, 10_957, 20_527, 40_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    /// The size `bench/README.md` and ARCHITECTURE.md report: five cache lines, the first two
    /// all a movement reads.
    #[test]
    fn a_policy_takes_five_cache_lines_and_its_hot_line_one() {
        assert_eq!(core::mem::size_of::<Policy>(), 320);
        assert_eq!(core::mem::offset_of!(Policy, hot), 64);
        assert_eq!(core::mem::align_of::<Policy>(), 64);
    }

    #[test]
    fn a_window_ends_where_the_next_begins() {
        let rule = |window| VelocityRule { window, ..Default::default() };
        let ts = days_from_civil(2026, 1, 31) * DAY + 7;
        assert_eq!(window_bounds(&rule(vw::MONTH), ts), (days_from_civil(2026, 1, 1) * DAY, days_from_civil(2026, 2, 1) * DAY));
        assert_eq!(window_bounds(&rule(vw::DAY), ts), (ts - 7, ts - 7 + DAY));
        let rolling = VelocityRule { window: vw::ROLLING, window_seconds: 160, ..Default::default() };
        assert_eq!(rolling_width(&rolling), 10 * NS_PER_S);
        let (start, end) = window_bounds(&rolling, 1_000 * NS_PER_S + 1);
        assert_eq!((start, end), (850 * NS_PER_S, 1_010 * NS_PER_S));
    }
}
