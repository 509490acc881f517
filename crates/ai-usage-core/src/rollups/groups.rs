//! Compact group maps: what ten million calls' groups cost in memory.
//!
//! A day at 300,000 calls holds about 150,000 groups (its users, plus up
//! to 2,000 per hour), so the 30-day window holds millions. Each group is
//! kept as:
//! - its name, an [`Arc<str>`] shared by every map that names it (one copy
//!   of `user_42` however many days and hours count it: [`Names`]);
//! - while its day takes records: its counters packed in a 60-byte row
//!   ([`Packed`]: nine `u32` counts and up to two currencies' amounts), or,
//!   for the rare group that outgrows that (a count past `u32::MAX`, a third
//!   currency), full [`GroupStats`] on the side; and a slot number in a hash
//!   index;
//! - once its day is past, *frozen*: the map sorted by name, the index
//!   dropped (lookups by binary search), each field of the rows in a
//!   [`Column`] as narrow as most of its values allow (about 20 bytes a
//!   group); a late record or a correction for that day thaws the map.
//!
//! About 36 bytes a group once frozen (the name's pointer included), against
//! about 250 for a string-keyed hash map of full counters. Answers never
//! depend on the form: every read gives the exact counters.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashSet};

use super::{GroupStats, OTHER_GROUP};
use crate::money::{Costs, Currency, Money};
use crate::record::UsageRecord;

/// Interned group names: one [`Arc<str>`] per distinct name, shared by
/// every map that holds it.
#[derive(Debug, Clone, Default)]
pub struct Names {
    set: FxHashSet<Arc<str>>,
}

impl Names {
    /// The shared name `s` (interned on first use).
    pub fn key(&mut self, s: &str) -> Arc<str> {
        if let Some(k) = self.set.get(s) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(s);
        self.set.insert(k.clone());
        k
    }

    /// The shared copy of `k`'s name: the one already interned, else `k`.
    pub fn adopt(&mut self, k: &Arc<str>) -> Arc<str> {
        if let Some(mine) = self.set.get(&**k) {
            return mine.clone();
        }
        self.set.insert(k.clone());
        k.clone()
    }

    /// Forgets names no map holds any more (after days are dropped).
    pub fn collect_garbage(&mut self) {
        self.set.retain(|k| Arc::strong_count(k) > 1);
    }

    /// Names held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when no name is held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// A group's counters in 60 bytes: the nine counts of [`GroupStats`] as
/// `u32`, and its cost in up to two currencies (a user of a CNY and a USD
/// model). A group that does not fit lives in the map's side list
/// (`form == WIDE`, `n[0]` its index).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    n: [u32; 9],
    currencies: [[u8; 3]; 2],
    /// How many cost entries (0..=2), or [`WIDE`].
    form: u8,
    /// The amounts' nanos, as halves (keeps the struct 4-aligned).
    cost: [[u32; 2]; 2],
}

const WIDE: u8 = 3;

/// Nanos as two halves, and back.
fn halves(nanos: i64) -> [u32; 2] {
    let bits = nanos as u64;
    [bits as u32, (bits >> 32) as u32]
}

fn whole([lo, hi]: [u32; 2]) -> i64 {
    (u64::from(lo) | (u64::from(hi) << 32)) as i64
}

/// Zigzag: small amounts of either sign stay small integers.
fn zigzag(nanos: i64) -> u64 {
    ((nanos << 1) ^ (nanos >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// A currency code as an integer, and back.
fn code(c: [u8; 3]) -> u64 {
    u64::from(u32::from_le_bytes([c[0], c[1], c[2], 0]))
}

fn uncode(v: u64) -> [u8; 3] {
    let [a, b, c, _] = (v as u32).to_le_bytes();
    [a, b, c]
}

impl Packed {
    fn wide(index: usize) -> Option<Packed> {
        let mut p = Packed {
            form: WIDE,
            ..Packed::default()
        };
        p.n[0] = u32::try_from(index).ok()?;
        Some(p)
    }

    fn wide_index(&self) -> Option<usize> {
        (self.form == WIDE).then_some(self.n[0] as usize)
    }

    /// The packed form of `g`, or `None` when it does not fit.
    pub(crate) fn pack(g: &GroupStats) -> Option<Packed> {
        let n32 = |v: u64| u32::try_from(v).ok();
        let n = [
            n32(g.calls)?,
            n32(g.successful_calls)?,
            n32(g.input_tokens)?,
            n32(g.output_tokens)?,
            n32(g.total_tokens)?,
            n32(g.cached_input_tokens)?,
            n32(g.reasoning_tokens)?,
            n32(g.cache_write_tokens)?,
            n32(g.unpriced_calls)?,
        ];
        let entries = g.cost.as_slice();
        if entries.len() > 2 {
            return None;
        }
        let mut p = Packed {
            n,
            form: entries.len() as u8,
            ..Packed::default()
        };
        for (i, (c, m)) in entries.iter().enumerate() {
            p.currencies[i] = c.bytes();
            p.cost[i] = halves(m.nanos());
        }
        Some(p)
    }

    /// Counts one record in place; false (nothing changed) when the result
    /// would not fit (a count past 32 bits, a third currency). The hot path:
    /// the same sums as [`GroupStats::add`] without unpacking.
    fn try_add(&mut self, r: &UsageRecord, currency: Currency, priced: bool) -> bool {
        if self.form == WIDE {
            return false;
        }
        let add = [
            1,
            u64::from(r.success),
            r.input_tokens,
            r.output_tokens,
            r.total_tokens,
            r.cached_input_tokens,
            r.reasoning_tokens,
            r.cache_write_tokens,
            u64::from(!priced),
        ];
        let mut n = self.n;
        for (slot, v) in n.iter_mut().zip(add) {
            match u64::from(*slot)
                .checked_add(v)
                .and_then(|t| u32::try_from(t).ok())
            {
                Some(t) => *slot = t,
                None => return false,
            }
        }
        let c = currency.bytes();
        let held = self.form as usize;
        match (0..held).find(|&i| self.currencies[i] == c) {
            Some(i) => {
                let sum = Money::from_nanos(whole(self.cost[i])) + r.cost;
                self.cost[i] = halves(sum.nanos());
            }
            None if held < 2 => {
                // Kept in currency order, as `Costs` keeps them.
                let at = if held == 1 && c < self.currencies[0] {
                    self.currencies[1] = self.currencies[0];
                    self.cost[1] = self.cost[0];
                    0
                } else {
                    held
                };
                self.currencies[at] = c;
                self.cost[at] = halves(r.cost.nanos());
                self.form += 1;
            }
            None => return false,
        }
        self.n = n;
        true
    }

    /// The cost entries held (none for a wide group).
    fn costs(&self) -> impl Iterator<Item = (Currency, Money)> + '_ {
        let held = if self.form == WIDE {
            0
        } else {
            self.form as usize
        };
        (0..held.min(2)).map(|i| {
            (
                Currency::from_bytes(self.currencies[i]),
                Money::from_nanos(whole(self.cost[i])),
            )
        })
    }

    /// The counters (of a packed group; a wide one reads its side entry).
    fn unpack(&self) -> GroupStats {
        let n = |i: usize| u64::from(self.n[i]);
        let mut cost = Costs::default();
        for (c, m) in self.costs() {
            cost.add(c, m);
        }
        GroupStats {
            calls: n(0),
            successful_calls: n(1),
            input_tokens: n(2),
            output_tokens: n(3),
            total_tokens: n(4),
            cached_input_tokens: n(5),
            reasoning_tokens: n(6),
            cache_write_tokens: n(7),
            unpriced_calls: n(8),
            cost,
        }
    }
}

/// Fields of [`Packed`] as integers, for the columns of a frozen map: the
/// nine counts, the form, then currency and zigzag amount of each entry.
const FIELDS: usize = 14;
const FORM: usize = 9;
const CURRENCY: [usize; 2] = [10, 12];
const AMOUNT: [usize; 2] = [11, 13];

impl Packed {
    /// The fields as integers.
    fn fields(&self) -> [u64; FIELDS] {
        let mut f = [0u64; FIELDS];
        for (i, n) in self.n.iter().enumerate() {
            f[i] = u64::from(*n);
        }
        f[FORM] = u64::from(self.form);
        for i in 0..2 {
            f[CURRENCY[i]] = code(self.currencies[i]);
            f[AMOUNT[i]] = zigzag(whole(self.cost[i]));
        }
        f
    }

    /// Field `i` of [`fields`](Self::fields).
    fn field(&self, i: usize) -> u64 {
        match i {
            0..=8 => u64::from(self.n[i]),
            FORM => u64::from(self.form),
            10 => code(self.currencies[0]),
            11 => zigzag(whole(self.cost[0])),
            12 => code(self.currencies[1]),
            _ => zigzag(whole(self.cost[1])),
        }
    }

    /// The packed form of snapshot counters (`counts` as [`GroupStats`]
    /// orders them, up to two cost entries of checked currency codes), or
    /// `None` when they do not fit.
    pub(crate) fn from_counts(counts: &[u64; 9], costs: &[([u8; 3], i64)]) -> Option<Packed> {
        if costs.len() > 2 {
            return None;
        }
        let mut p = Packed {
            form: costs.len() as u8,
            ..Packed::default()
        };
        for (slot, &v) in p.n.iter_mut().zip(counts) {
            *slot = u32::try_from(v).ok()?;
        }
        for (i, &(c, nanos)) in costs.iter().enumerate() {
            p.currencies[i] = c;
            p.cost[i] = halves(nanos);
        }
        Some(p)
    }

    /// The group [`fields`](Self::fields) gave.
    fn from_fields(f: [u64; FIELDS]) -> Packed {
        let mut p = Packed {
            form: f[FORM] as u8,
            ..Packed::default()
        };
        for (i, v) in p.n.iter_mut().enumerate() {
            *v = f[i] as u32;
        }
        for i in 0..2 {
            p.currencies[i] = uncode(f[CURRENCY[i]]);
            p.cost[i] = halves(unzigzag(f[AMOUNT[i]]));
        }
        p
    }
}

/// One field of every group of a frozen map, each value in as few bytes
/// as most need (none when they are all equal). The few values too big
/// for that width (the `(other)` group, a heavy user) are kept aside: the
/// width's largest value marks them, so one outlier does not widen a
/// whole column.
#[derive(Clone, Default)]
struct Column {
    width: u8,
    /// The value of every row when `width` is 0.
    base: u64,
    data: Box<[u8]>,
    /// (row, value) of the values too big for `width`, by row.
    outliers: Box<[(u32, u64)]>,
}

/// The largest value `width` bytes hold: the mark of an outlier.
fn mark(width: usize) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    }
}

impl Column {
    fn of(values: &[u64]) -> Column {
        let Some(&first) = values.first() else {
            return Column::default();
        };
        if values.iter().all(|&v| v == first) {
            return Column {
                base: first,
                ..Column::default()
            };
        }
        // The width that costs least: its bytes plus its outliers (16
        // bytes each). A value is an outlier at width `w` when it is at
        // least `mark(w)`, i.e. when `v + 1` needs more than `w` bytes:
        // one pass counts how many need each number of bytes.
        let mut need = [0usize; 9];
        for &v in values {
            let bytes = (64 - v.saturating_add(1).leading_zeros() as usize).div_ceil(8);
            need[bytes] += 1;
        }
        let outliers_at = |w: usize| need[w + 1..].iter().sum::<usize>();
        let width = (1..=8)
            .min_by_key(|&w| values.len() * w + 16 * outliers_at(w))
            .unwrap_or(8);
        let m = mark(width);
        let mut data = Vec::with_capacity(values.len() * width);
        let mut outliers = Vec::new();
        for (row, &v) in values.iter().enumerate() {
            let stored = if v >= m {
                outliers.push((row as u32, v));
                m
            } else {
                v
            };
            data.extend_from_slice(&stored.to_le_bytes()[..width]);
        }
        Column {
            width: width as u8,
            base: 0,
            data: data.into_boxed_slice(),
            outliers: outliers.into_boxed_slice(),
        }
    }

    /// Every row's value, decoded in one pass per width.
    fn values(&self, rows: usize) -> Vec<u64> {
        let d = &self.data;
        let mut out: Vec<u64> = match self.width {
            0 => vec![self.base; rows],
            1 => d.iter().map(|&b| u64::from(b)).collect(),
            2 => d
                .chunks_exact(2)
                .map(|c| u64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            4 => d
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => (0..rows).map(|r| self.get(r)).collect(),
        };
        // Every value at or above the mark is kept aside: put them back.
        for &(row, v) in self.outliers.iter() {
            if let Some(slot) = out.get_mut(row as usize) {
                *slot = v;
            }
        }
        out
    }

    fn get(&self, row: usize) -> u64 {
        let w = self.width as usize;
        if w == 0 {
            return self.base;
        }
        let at = row * w;
        let d = &self.data;
        let v = match w {
            1 => u64::from(d[at]),
            2 => u64::from(u16::from_le_bytes([d[at], d[at + 1]])),
            4 => u64::from(u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])),
            _ => {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(&d[at..at + w]);
                u64::from_le_bytes(b)
            }
        };
        if v != mark(w) {
            return v;
        }
        match self
            .outliers
            .binary_search_by_key(&(row as u32), |&(r, _)| r)
        {
            Ok(i) => self.outliers[i].1,
            // The mark is the value itself (none above it was kept aside).
            Err(_) => v,
        }
    }
}

/// The counters of a frozen map, a [`Column`] per field of [`Packed`]:
/// typically 15–25 bytes a group instead of 48.
#[derive(Clone, Default)]
struct Columns {
    fields: [Column; FIELDS],
    /// True when some row is kept in full on the side (most maps have
    /// none: their reads skip the form).
    any_wide: bool,
}

impl Columns {
    fn of(rows: &[Packed]) -> Columns {
        let mut values = Vec::with_capacity(rows.len());
        Columns {
            fields: std::array::from_fn(|i| {
                values.clear();
                values.extend(rows.iter().map(|p| p.field(i)));
                Column::of(&values)
            }),
            any_wide: rows.iter().any(|p| p.form == WIDE),
        }
    }

    fn row(&self, row: usize) -> Packed {
        Packed::from_fields(std::array::from_fn(|i| self.fields[i].get(row)))
    }

    /// Field `field` of row `row`.
    fn get(&self, field: usize, row: usize) -> u64 {
        self.fields[field].get(row)
    }
}

/// One group's counters, borrowed from a map (packed or full).
#[derive(Clone, Copy)]
pub struct GroupRef<'a>(Form<'a>);

#[derive(Clone, Copy)]
enum Form<'a> {
    Packed(&'a Packed),
    /// A row of a frozen map: fields read one by one, as needed.
    Row(&'a Columns, usize),
    Full(&'a GroupStats),
}

impl<'a> GroupRef<'a> {
    /// A full group, borrowed.
    pub fn full(g: &'a GroupStats) -> GroupRef<'a> {
        GroupRef(Form::Full(g))
    }

    /// The counters.
    pub fn stats(&self) -> GroupStats {
        match self.0 {
            Form::Packed(p) => p.unpack(),
            Form::Row(c, r) => c.row(r).unpack(),
            Form::Full(g) => g.clone(),
        }
    }

    /// Adds the counters to `into`.
    pub fn merge_into(&self, into: &mut GroupStats) {
        match self.0 {
            Form::Full(g) => into.merge(g),
            _ => into.merge(&self.stats()),
        }
    }

    /// Calls.
    pub fn calls(&self) -> u64 {
        match self.0 {
            Form::Packed(p) => u64::from(p.n[0]),
            Form::Row(c, r) => c.get(0, r),
            Form::Full(g) => g.calls,
        }
    }

    /// Total tokens.
    pub fn total_tokens(&self) -> u64 {
        match self.0 {
            Form::Packed(p) => u64::from(p.n[4]),
            Form::Row(c, r) => c.get(4, r),
            Form::Full(g) => g.total_tokens,
        }
    }

    /// The cost in `currency` (zero when the group has none).
    pub fn cost_in(&self, currency: Currency) -> Money {
        let want = code(currency.bytes());
        let read = |form: u64, entry: &dyn Fn(usize) -> (u64, u64)| {
            (0..(form as usize).min(2))
                .map(entry)
                .find(|(c, _)| *c == want)
                .map_or(Money::ZERO, |(_, z)| Money::from_nanos(unzigzag(z)))
        };
        match self.0 {
            Form::Packed(p) => {
                let f = p.fields();
                read(f[FORM], &|i| (f[CURRENCY[i]], f[AMOUNT[i]]))
            }
            Form::Row(cols, r) => read(cols.get(FORM, r), &|i| {
                (cols.get(CURRENCY[i], r), cols.get(AMOUNT[i], r))
            }),
            Form::Full(g) => g.cost.get(currency),
        }
    }
}

/// Groups by name (a model, a function, a user, …), compact (see the
/// module docs). Reads hand out counters by value or as a [`GroupRef`].
#[derive(Clone, Default)]
pub struct GroupMap {
    keys: Vec<Arc<str>>,
    /// The counters while the map takes writes (empty while frozen).
    stats: Vec<Packed>,
    /// The counters while frozen.
    frozen: Option<Box<Columns>>,
    wide: Vec<GroupStats>,
    /// Slot numbers hashed by name; `None` while frozen (keys sorted).
    index: Option<HashTable<u32>>,
    /// Names the numbering of the slots: a new number whenever a map
    /// starts or re-sorts its slots; otherwise slots are only appended,
    /// so what a reader noted per slot stays valid (see [`layout`](Self::layout)).
    layout: u64,
}

/// A fresh slot numbering (see `GroupMap::layout`).
fn next_layout() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn hash(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// The hash group maps index `key` by (for [`GroupMap::add_record`]).
pub fn name_hash(key: &str) -> u64 {
    hash(key)
}

/// The index of a frozen map's keys.
fn build_index(keys: &[Arc<str>]) -> HashTable<u32> {
    let mut t = HashTable::with_capacity(keys.len());
    for (s, k) in keys.iter().enumerate() {
        t.insert_unique(hash(k), s as u32, |&s| hash(&keys[s as usize]));
    }
    t
}

impl fmt::Debug for GroupMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for GroupMap {
    /// Equal groups, whatever their order or form.
    fn eq(&self, o: &GroupMap) -> bool {
        self.len() == o.len() && self.iter().all(|(k, g)| o.get(k).as_ref() == Some(&g))
    }
}

impl GroupMap {
    /// Groups held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no group is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index
                .find(hash(key), |&s| &*self.keys[s as usize] == key)
                .map(|&s| s as usize),
            None => self.keys.binary_search_by(|k| (**k).cmp(key)).ok(),
        }
    }

    fn at(&self, slot: usize) -> GroupRef<'_> {
        match &self.frozen {
            Some(cols) if cols.any_wide && cols.get(FORM, slot) as u8 == WIDE => {
                GroupRef(Form::Full(&self.wide[cols.get(0, slot) as usize]))
            }
            Some(cols) => GroupRef(Form::Row(cols, slot)),
            None => {
                let p = &self.stats[slot];
                match p.wide_index() {
                    Some(i) => GroupRef(Form::Full(&self.wide[i])),
                    None => GroupRef(Form::Packed(p)),
                }
            }
        }
    }

    /// Makes a frozen map writable again: counters unpacked from their
    /// columns, the index rebuilt.
    #[inline]
    fn thaw(&mut self) {
        // Every write passes here: the live map's check is two compares.
        if self.frozen.is_some() || self.index.is_none() {
            self.thaw_now();
        }
    }

    #[cold]
    fn thaw_now(&mut self) {
        if let Some(cols) = self.frozen.take() {
            self.stats = (0..self.keys.len()).map(|s| cols.row(s)).collect();
        }
        if self.index.is_none() {
            self.index = Some(build_index(&self.keys));
        }
    }

    /// The counters of `key`.
    pub fn get(&self, key: &str) -> Option<GroupStats> {
        self.find(key).map(|s| self.at(s).stats())
    }

    /// The counters of `key`, borrowed.
    pub fn group(&self, key: &str) -> Option<GroupRef<'_>> {
        self.find(key).map(|s| self.at(s))
    }

    /// True when `key` has a group.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Every group with its counters (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&str, GroupStats)> + '_ {
        self.refs().map(|(k, g)| (k, g.stats()))
    }

    /// Every group, borrowed (in no particular order).
    pub fn refs(&self) -> impl Iterator<Item = (&str, GroupRef<'_>)> + '_ {
        (0..self.keys.len()).map(|s| (&*self.keys[s], self.at(s)))
    }

    /// Every group name.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|k| &**k)
    }

    /// The slot of `key`, or of [`OTHER_GROUP`] when `key` is new and the
    /// map holds `cap` groups; created (its name from `name`) if missing.
    fn slot(&mut self, key: &str, cap: usize, name: impl FnOnce(&str) -> Arc<str>) -> usize {
        self.slot_hashed(key, hash(key), cap, name)
    }

    /// [`slot`](Self::slot) with the key's hash given (a record's names
    /// are hashed once for its day's and its hour's maps).
    fn slot_hashed(
        &mut self,
        key: &str,
        h: u64,
        cap: usize,
        name: impl FnOnce(&str) -> Arc<str>,
    ) -> usize {
        self.thaw();
        let keys = &self.keys;
        let index = self.index.get_or_insert_with(|| build_index(keys));
        if let Some(&s) = index.find(h, |&s| &*keys[s as usize] == key) {
            return s as usize;
        }
        let (key, h) = if keys.len() < cap {
            (key, h)
        } else {
            let h = hash(OTHER_GROUP);
            if let Some(&s) = index.find(h, |&s| &*keys[s as usize] == OTHER_GROUP) {
                return s as usize;
            }
            (OTHER_GROUP, h)
        };
        let s = self.keys.len();
        if s == 0 {
            self.layout = next_layout();
        }
        self.keys.push(name(key));
        self.stats.push(Packed::default());
        let keys = &self.keys;
        if let Some(index) = self.index.as_mut() {
            index.insert_unique(h, s as u32, |&s| hash(&keys[s as usize]));
        }
        s
    }

    /// The slot of `key` when it has a group (building the index of a
    /// frozen map: for writes).
    pub(crate) fn live_slot(&mut self, key: &str) -> Option<usize> {
        self.thaw();
        let keys = &self.keys;
        let index = self.index.get_or_insert_with(|| build_index(keys));
        index
            .find(hash(key), |&s| &*keys[s as usize] == key)
            .map(|&s| s as usize)
    }

    /// Applies `f` to the counters in `slot`, keeping them packed when
    /// they still fit.
    pub(crate) fn modify<R>(&mut self, slot: usize, f: impl FnOnce(&mut GroupStats) -> R) -> R {
        self.thaw();
        let p = &mut self.stats[slot];
        if let Some(i) = p.wide_index() {
            return f(&mut self.wide[i]);
        }
        let mut g = p.unpack();
        let r = f(&mut g);
        match Packed::pack(&g) {
            Some(np) => *p = np,
            None => match Packed::wide(self.wide.len()) {
                Some(np) => {
                    *p = np;
                    self.wide.push(g);
                }
                // Four billion wide groups cannot be held anyway: keep
                // what fits (never reached: maps are capped far below).
                None => tracing::error!("a group map overflowed its side list"),
            },
        }
        r
    }

    /// The slot of `key` (see [`slot`](Self::slot) for the cap),
    /// interning a new name in `names`.
    pub(crate) fn slot_for(&mut self, key: &str, cap: usize, names: &mut Names) -> usize {
        self.slot(key, cap, |k| names.key(k))
    }

    /// Counts one record in the group in `slot` (the hot path: packed
    /// counters added in place).
    pub(crate) fn add_record_at(
        &mut self,
        slot: usize,
        r: &UsageRecord,
        currency: Currency,
        priced: bool,
    ) {
        self.thaw();
        if !self.stats[slot].try_add(r, currency, priced) {
            self.modify(slot, |g| g.add(r, currency, priced));
        }
    }

    /// Counts one record in the group `key` (see [`slot`](Self::slot) for
    /// the cap), whose hash is `key.1` ([`name_hash`]).
    pub fn add_record(
        &mut self,
        key: (&str, u64),
        cap: usize,
        names: &mut Names,
        r: &UsageRecord,
        currency: Currency,
        priced: bool,
    ) {
        let s = self.slot_hashed(key.0, key.1, cap, |k| names.key(k));
        self.add_record_at(s, r, currency, priced);
    }

    /// Applies `f` to the counters of `key` (see [`slot`](Self::slot) for
    /// the cap), interning a new name in `names`.
    pub fn update<R>(
        &mut self,
        key: &str,
        cap: usize,
        names: &mut Names,
        f: impl FnOnce(&mut GroupStats) -> R,
    ) -> R {
        let s = self.slot(key, cap, |k| names.key(k));
        self.modify(s, f)
    }

    /// Adds `g` to the group `key` (no cap; a new name gets its own copy).
    pub fn merge_group(&mut self, key: &str, g: &GroupStats) {
        let s = self.slot(key, usize::MAX, |k| Arc::from(k));
        self.modify(s, |mine| mine.merge(g));
    }

    /// Adds every group of `from`, at most `cap` groups (the rest into
    /// [`OTHER_GROUP`]); new names are interned in `names`, or share
    /// `from`'s copy without it.
    pub fn merge_map(&mut self, from: &GroupMap, cap: usize, mut names: Option<&mut Names>) {
        if self.is_empty() && from.len() <= cap {
            // Most merges start empty: copy the groups as they are.
            *self = from.clone();
            if let Some(names) = names {
                for k in &mut self.keys {
                    *k = names.adopt(k);
                }
            }
            return;
        }
        for (s, k) in from.keys.iter().enumerate() {
            let g = from.at(s);
            let slot = self.slot(k, cap, |name| match names.as_deref_mut() {
                Some(n) if name == &**k => n.adopt(k),
                Some(n) => n.key(name),
                None if name == &**k => k.clone(),
                None => Arc::from(name),
            });
            self.modify(slot, |mine| g.merge_into(mine));
        }
    }

    /// Freezes the map: sorted by name, no index, no spare capacity (a
    /// past day's maps). Reads stay the same; a write rebuilds the index.
    pub fn freeze(&mut self) {
        if self.frozen.is_some() {
            return;
        }
        self.index = None;
        if !self.keys.is_sorted() {
            self.layout = next_layout();
            let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
            order.sort_unstable_by(|&a, &b| self.keys[a as usize].cmp(&self.keys[b as usize]));
            self.keys = order
                .iter()
                .map(|&s| self.keys[s as usize].clone())
                .collect();
            self.stats = order.iter().map(|&s| self.stats[s as usize]).collect();
        }
        self.pack_columns();
    }

    /// Moves the counters of a map whose keys are sorted into columns.
    fn pack_columns(&mut self) {
        self.index = None;
        self.frozen = Some(Box::new(Columns::of(&self.stats)));
        self.stats = Vec::new();
        self.keys.shrink_to_fit();
        self.wide.shrink_to_fit();
    }

    /// The numbering of the slots: while it stays the same, slot `i`
    /// holds the same group and new groups only get new slots.
    pub(crate) fn layout(&self) -> u64 {
        self.layout
    }

    /// The slot of `key`.
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        self.find(key)
    }

    /// True when frozen (see [`freeze`](Self::freeze)).
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Groups in name order, as (name, counters) borrowed: what the
    /// snapshot writes.
    pub(crate) fn sorted_slots(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        if !self.keys.is_sorted() {
            order.sort_unstable_by(|&a, &b| self.keys[a].cmp(&self.keys[b]));
        }
        order
    }

    /// Each group's (total tokens, calls), in slot order: what rankings by
    /// tokens or calls read of every group, decoded column by column for a
    /// frozen map.
    pub(crate) fn tokens_and_calls(&self) -> Vec<(u64, u64)> {
        match &self.frozen {
            Some(cols) if !cols.any_wide => {
                let n = self.keys.len();
                let tokens = cols.fields[4].values(n);
                let calls = cols.fields[0].values(n);
                tokens.into_iter().zip(calls).collect()
            }
            _ => self
                .refs()
                .map(|(_, g)| (g.total_tokens(), g.calls()))
                .collect(),
        }
    }

    /// The name and counters in `slot`.
    pub(crate) fn slot_at(&self, slot: usize) -> (&Arc<str>, GroupRef<'_>) {
        (&self.keys[slot], self.at(slot))
    }
}

/// Builds a frozen map from groups given in increasing name order (the
/// snapshot's: its reader checks the order).
pub(crate) struct SortedGroups {
    map: GroupMap,
}

impl SortedGroups {
    /// Room for `n` groups.
    pub(crate) fn with_capacity(n: usize) -> SortedGroups {
        SortedGroups {
            map: GroupMap {
                keys: Vec::with_capacity(n),
                stats: Vec::with_capacity(n),
                ..GroupMap::default()
            },
        }
    }

    /// Adds the next group, already packed.
    pub(crate) fn push_packed(&mut self, key: Arc<str>, p: Packed) {
        self.map.keys.push(key);
        self.map.stats.push(p);
    }

    /// Adds the next group; `None` past four billion groups kept in full.
    pub(crate) fn push(&mut self, key: Arc<str>, g: GroupStats) -> Option<()> {
        let p = match Packed::pack(&g) {
            Some(p) => p,
            None => {
                let p = Packed::wide(self.map.wide.len())?;
                self.map.wide.push(g);
                p
            }
        };
        self.push_packed(key, p);
        Some(())
    }

    /// The frozen map.
    pub(crate) fn finish(mut self) -> GroupMap {
        self.map.layout = next_layout();
        self.map.pack_columns();
        self.map
    }
}

impl<S: AsRef<str>> FromIterator<(S, GroupStats)> for GroupMap {
    fn from_iter<I: IntoIterator<Item = (S, GroupStats)>>(iter: I) -> GroupMap {
        let mut m = GroupMap::default();
        for (k, g) in iter {
            m.merge_group(k.as_ref(), &g);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;

    fn stats(calls: u64, tokens: u64, cny_nanos: i64) -> GroupStats {
        GroupStats {
            calls,
            successful_calls: calls,
            input_tokens: tokens,
            total_tokens: tokens,
            cost: Costs::one(Currency::CNY, Money::from_nanos(cny_nanos)),
            ..GroupStats::default()
        }
    }

    #[test]
    fn a_packed_group_is_60_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 60);
    }

    #[test]
    fn packing_keeps_every_counter_and_widens_what_does_not_fit() {
        let g = stats(3, 70, -5_000_000_123);
        assert_eq!(Packed::pack(&g).unwrap().unpack(), g);
        let mut none = g.clone();
        none.cost = Costs::default();
        assert_eq!(Packed::pack(&none).unwrap().unpack(), none);
        let mut big = g.clone();
        big.input_tokens = u64::from(u32::MAX) + 1;
        assert!(Packed::pack(&big).is_none());
        let mut two = g.clone();
        two.cost.add(Currency::USD, Money::from_nanos(1));
        assert_eq!(Packed::pack(&two).unwrap().unpack(), two);
        let mut three = two.clone();
        three
            .cost
            .add(Currency::new("EUR").unwrap(), Money::from_nanos(2));
        assert!(Packed::pack(&three).is_none());

        // Through a map: a group that outgrows 32 bits moves to the side
        // list and reads back exactly.
        let mut names = Names::default();
        let mut m = GroupMap::default();
        m.update("u", usize::MAX, &mut names, |x| *x = g.clone());
        m.update("u", usize::MAX, &mut names, |x| x.merge(&big));
        let mut want = g.clone();
        want.merge(&big);
        assert_eq!(m.get("u"), Some(want.clone()));
        m.update("u", usize::MAX, &mut names, |x| x.merge(&three));
        want.merge(&three);
        assert_eq!(m.get("u"), Some(want));
    }

    #[test]
    fn frozen_and_live_maps_answer_alike() {
        let mut names = Names::default();
        let mut m = GroupMap::default();
        for (i, key) in ["b", "a", "c", "a", "d", "b"].iter().enumerate() {
            m.update(key, 3, &mut names, |g| g.merge(&stats(1, i as u64, 10)));
        }
        let live: Vec<(String, GroupStats)> = {
            let mut v: Vec<_> = m.iter().map(|(k, g)| (k.to_string(), g)).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        // Capped at 3: "d" went to OTHER_GROUP.
        assert_eq!(
            live.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [OTHER_GROUP, "a", "b", "c"]
        );
        let before = m.clone();
        m.freeze();
        assert!(m.is_frozen());
        assert_eq!(m, before);
        for (k, g) in &live {
            assert_eq!(m.get(k).as_ref(), Some(g));
        }
        assert!(m.get("zz").is_none());
        // A late write thaws it.
        m.update("a", 3, &mut names, |g| g.calls += 1);
        assert!(!m.is_frozen());
        assert_eq!(m.get("a").unwrap().calls, 3);
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn frozen_columns_keep_every_form_of_counters() {
        let mut names = Names::default();
        let mut m = GroupMap::default();
        let mut usd = stats(2, 9, 0);
        usd.cost = Costs::one(Currency::USD, Money::from_nanos(i64::MIN + 1));
        let mut two = stats(1, 1, 1);
        two.cost.add(Currency::USD, Money::from_nanos(-7));
        let mut three = two.clone();
        three
            .cost
            .add(Currency::new("EUR").unwrap(), Money::from_nanos(3));
        let mut big = stats(1, u64::from(u32::MAX) * 3, i64::MAX);
        big.reasoning_tokens = 5;
        let groups = [
            ("zero", GroupStats::default()),
            ("neg", stats(1, 0, -1)),
            ("cny", stats(300, 70_000, 123_456_789_012)),
            ("usd", usd),
            ("two", two),
            ("three", three),
            ("big", big),
        ];
        for (k, g) in &groups {
            m.update(k, usize::MAX, &mut names, |x| *x = g.clone());
        }
        m.freeze();
        assert!(m.is_frozen());
        for (k, g) in &groups {
            assert_eq!(m.get(k).as_ref(), Some(g), "{k}");
        }
        // Narrow columns: far below 48 bytes a group.
        let cols = m.frozen.as_ref().unwrap();
        assert!(cols.any_wide);
        assert!(cols.fields.iter().map(|c| c.width as usize).sum::<usize>() < 60);
        // Every currency reads without unpacking too.
        for (k, g) in &groups {
            let r = m.group(k).unwrap();
            for c in [Currency::CNY, Currency::USD, Currency::new("EUR").unwrap()] {
                assert_eq!(r.cost_in(c), g.cost.get(c), "{k} {c}");
            }
            assert_eq!((r.calls(), r.total_tokens()), (g.calls, g.total_tokens));
        }
        m.thaw();
        for (k, g) in &groups {
            assert_eq!(m.get(k).as_ref(), Some(g), "{k} thawed");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_column_reads_back_every_value(
            small in proptest::collection::vec(0u64..300, 1..200),
            big in proptest::collection::vec((0usize..200, proptest::prelude::any::<u64>()), 0..5),
        ) {
            let mut values = small;
            for (i, v) in big {
                let i = i % values.len();
                values[i] = v;
            }
            let c = Column::of(&values);
            for (i, v) in values.iter().enumerate() {
                proptest::prop_assert_eq!(c.get(i), *v);
            }
            // A few big values stay aside: the width follows the rest.
            proptest::prop_assert!(c.width <= 2 || values.iter().filter(|&&v| v >= 0xffff).count() > values.len() / 8);
        }
    }

    proptest::proptest! {
        #[test]
        fn counting_in_place_equals_counting_in_full(
            calls in proptest::collection::vec(
                (0u64..3_000_000_000, 0u64..5_000, any::<bool>(), any::<bool>(), 0usize..3, -5_000i64..9_000_000_000),
                1..40,
            ),
        ) {
            let currencies = [Currency::USD, Currency::CNY, Currency::new("EUR").unwrap()];
            let mut names = Names::default();
            let mut m = GroupMap::default();
            let mut want = GroupStats::default();
            for (input, output, success, priced, c, nanos) in calls {
                let r = UsageRecord {
                    input_tokens: input,
                    output_tokens: output,
                    total_tokens: input + output,
                    cached_input_tokens: output / 2,
                    success,
                    cost: Money::from_nanos(nanos),
                    ..UsageRecord::default()
                };
                m.add_record(("u", name_hash("u")), usize::MAX, &mut names, &r, currencies[c], priced);
                want.add(&r, currencies[c], priced);
                proptest::prop_assert_eq!(m.get("u"), Some(want.clone()));
            }
        }
    }

    #[test]
    fn names_are_shared_and_collected() {
        let mut names = Names::default();
        let mut a = GroupMap::default();
        let mut b = GroupMap::default();
        a.update("user_1", 10, &mut names, |g| g.calls += 1);
        b.update("user_1", 10, &mut names, |g| g.calls += 1);
        assert!(Arc::ptr_eq(&a.keys[0], &b.keys[0]));
        assert_eq!(names.len(), 1);
        drop(a);
        names.collect_garbage();
        assert_eq!(names.len(), 1);
        drop(b);
        names.collect_garbage();
        assert!(names.is_empty());
    }

    #[test]
    fn merging_maps_caps_and_sums() {
        let mut names = Names::default();
        let mut a = GroupMap::default();
        a.update("x", 10, &mut names, |g| g.merge(&stats(1, 5, 1)));
        let mut b = GroupMap::default();
        for k in ["x", "y", "z"] {
            b.update(k, 10, &mut names, |g| g.merge(&stats(2, 7, 3)));
        }
        a.merge_map(&b, 2, Some(&mut names));
        assert_eq!(a.get("x").unwrap().calls, 3);
        assert_eq!(a.get("y").unwrap().calls, 2);
        assert_eq!(a.get(OTHER_GROUP).unwrap().calls, 2);
        let mut empty = GroupMap::default();
        empty.merge_map(&b, usize::MAX, None);
        assert_eq!(empty, b);
    }
}
