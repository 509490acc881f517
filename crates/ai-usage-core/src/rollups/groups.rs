//! Compact group maps: what ten million calls' groups cost in memory.
//!
//! A day at 300,000 calls holds about 150,000 groups (its users, plus up
//! to 2,000 per hour), so the 30-day window holds millions. Each group is
//! kept as:
//! - its name, an [`Arc<str>`] shared by every map that names it (one copy
//!   of `user_42` however many days and hours count it: [`Names`]);
//! - its counters packed in 48 bytes ([`Packed`]: nine `u32` counts and one
//!   currency's amount), or, for the rare group that outgrows that (a count
//!   past `u32::MAX`, two currencies), full [`GroupStats`] on the side;
//! - a slot number in a hash index while its day takes records; a past
//!   day's maps are *frozen*: sorted by name, the index dropped (lookups by
//!   binary search), and rebuilt only if a late record or a correction
//!   arrives for that day.
//!
//! About 60 bytes a group, against about 250 for a string-keyed hash map of
//! full counters. Answers never depend on the form: every read unpacks the
//! exact counters.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashSet};

use super::{GroupStats, OTHER_GROUP};
use crate::money::{Costs, Currency, Money};

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

/// A group's counters in 48 bytes: the nine counts of [`GroupStats`] as
/// `u32`, and its cost when it has at most one currency. A group that does
/// not fit lives in the map's side list (`form == WIDE`, `n[0]` its index).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    n: [u32; 9],
    currency: [u8; 3],
    form: u8,
    /// The amount's nanos, as two halves (keeps the struct 4-aligned).
    cost: [u32; 2],
}

const NO_COST: u8 = 0;
const ONE_COST: u8 = 1;
const WIDE: u8 = 2;

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

    fn nanos(&self) -> i64 {
        (u64::from(self.cost[0]) | (u64::from(self.cost[1]) << 32)) as i64
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
        let (form, currency, nanos) = match g.cost.as_slice() {
            [] => (NO_COST, [0; 3], 0),
            [(c, m)] => (ONE_COST, c.bytes(), m.nanos()),
            _ => return None,
        };
        let bits = nanos as u64;
        Some(Packed {
            n,
            currency,
            form,
            cost: [bits as u32, (bits >> 32) as u32],
        })
    }

    /// The counters (of a packed group; a wide one reads its side entry).
    fn unpack(&self) -> GroupStats {
        let n = |i: usize| u64::from(self.n[i]);
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
            cost: if self.form == ONE_COST {
                Costs::one(
                    Currency::from_bytes(self.currency),
                    Money::from_nanos(self.nanos()),
                )
            } else {
                Costs::default()
            },
        }
    }
}

/// One group's counters, borrowed from a map (packed or full).
#[derive(Clone, Copy)]
pub struct GroupRef<'a>(Form<'a>);

#[derive(Clone, Copy)]
enum Form<'a> {
    Packed(&'a Packed),
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
            Form::Full(g) => g.clone(),
        }
    }

    /// Adds the counters to `into`.
    pub fn merge_into(&self, into: &mut GroupStats) {
        match self.0 {
            Form::Packed(p) => into.merge(&p.unpack()),
            Form::Full(g) => into.merge(g),
        }
    }

    /// Calls.
    pub fn calls(&self) -> u64 {
        match self.0 {
            Form::Packed(p) => u64::from(p.n[0]),
            Form::Full(g) => g.calls,
        }
    }

    /// Total tokens.
    pub fn total_tokens(&self) -> u64 {
        match self.0 {
            Form::Packed(p) => u64::from(p.n[4]),
            Form::Full(g) => g.total_tokens,
        }
    }

    /// The cost in `currency` (zero when the group has none).
    pub fn cost_in(&self, currency: Currency) -> Money {
        match self.0 {
            Form::Packed(p) if p.form == ONE_COST && p.currency == currency.bytes() => {
                Money::from_nanos(p.nanos())
            }
            Form::Packed(_) => Money::ZERO,
            Form::Full(g) => g.cost.get(currency),
        }
    }
}

/// Groups by name (a model, a function, a user, …), compact (see the
/// module docs). Reads hand out counters by value or as a [`GroupRef`].
#[derive(Clone, Default)]
pub struct GroupMap {
    keys: Vec<Arc<str>>,
    stats: Vec<Packed>,
    wide: Vec<GroupStats>,
    /// Slot numbers hashed by name; `None` while frozen (keys sorted).
    index: Option<HashTable<u32>>,
}

fn hash(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
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
        let p = &self.stats[slot];
        match p.wide_index() {
            Some(i) => GroupRef(Form::Full(&self.wide[i])),
            None => GroupRef(Form::Packed(p)),
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
        let keys = &self.keys;
        let index = self.index.get_or_insert_with(|| build_index(keys));
        let h = hash(key);
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
        let keys = &self.keys;
        let index = self.index.get_or_insert_with(|| build_index(keys));
        index
            .find(hash(key), |&s| &*keys[s as usize] == key)
            .map(|&s| s as usize)
    }

    /// Applies `f` to the counters in `slot`, keeping them packed when
    /// they still fit.
    pub(crate) fn modify<R>(&mut self, slot: usize, f: impl FnOnce(&mut GroupStats) -> R) -> R {
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
        if self.index.is_none() && self.keys.capacity() == self.keys.len() {
            return;
        }
        self.index = None;
        if !self.keys.is_sorted() {
            let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
            order.sort_unstable_by(|&a, &b| self.keys[a as usize].cmp(&self.keys[b as usize]));
            self.keys = order.iter().map(|&s| self.keys[s as usize].clone()).collect();
            self.stats = order.iter().map(|&s| self.stats[s as usize]).collect();
        }
        self.keys.shrink_to_fit();
        self.stats.shrink_to_fit();
        self.wide.shrink_to_fit();
    }

    /// True when frozen (see [`freeze`](Self::freeze)).
    pub fn is_frozen(&self) -> bool {
        self.index.is_none()
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

    /// The name and counters in `slot`.
    pub(crate) fn slot_at(&self, slot: usize) -> (&Arc<str>, GroupRef<'_>) {
        (&self.keys[slot], self.at(slot))
    }

    /// A frozen map of groups given in strictly increasing name order
    /// (from the snapshot); `None` when they are not.
    pub(crate) fn from_sorted(groups: Vec<(Arc<str>, GroupStats)>) -> Option<GroupMap> {
        let mut map = GroupMap {
            keys: Vec::with_capacity(groups.len()),
            stats: Vec::with_capacity(groups.len()),
            ..GroupMap::default()
        };
        for (k, g) in groups {
            if map.keys.last().is_some_and(|last| *last >= k) {
                return None;
            }
            let p = match Packed::pack(&g) {
                Some(p) => p,
                None => {
                    let p = Packed::wide(map.wide.len())?;
                    map.wide.push(g);
                    p
                }
            };
            map.keys.push(k);
            map.stats.push(p);
        }
        map.wide.shrink_to_fit();
        Some(map)
    }

    /// Bytes held (approximate: the vectors and the index).
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<Arc<str>>()
            + self.stats.capacity() * std::mem::size_of::<Packed>()
            + self.wide.capacity() * std::mem::size_of::<GroupStats>()
            + self.index.as_ref().map_or(0, |t| t.capacity() * 5)
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
    fn a_packed_group_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 48);
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
        assert!(Packed::pack(&two).is_none());

        // Through a map: a group that outgrows 32 bits moves to the side
        // list and reads back exactly.
        let mut names = Names::default();
        let mut m = GroupMap::default();
        m.update("u", usize::MAX, &mut names, |x| *x = g.clone());
        m.update("u", usize::MAX, &mut names, |x| x.merge(&big));
        let mut want = g.clone();
        want.merge(&big);
        assert_eq!(m.get("u"), Some(want.clone()));
        m.update("u", usize::MAX, &mut names, |x| x.merge(&two));
        want.merge(&two);
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
