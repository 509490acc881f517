//! Rankings (top users, anchors, functions, models) over whole days, and
//! the cache of merged past days that makes a ranking ending today cheap.

use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

use crate::money::{main_currency, Costs, Currency, Money};
use crate::rollups::{DayRollup, GroupMap, GroupRef, GroupStats, Rollups};

/// What a ranking groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankKind {
    /// Users (`user_id`).
    User,
    /// Anchors (`anchor_id`).
    Anchor,
    /// Functions (`function`).
    Function,
    /// Models (`model`).
    Model,
}

impl RankKind {
    /// The JSON field that names the ranked id.
    pub fn id_field(self) -> &'static str {
        match self {
            RankKind::User => "user_id",
            RankKind::Anchor => "anchor_id",
            RankKind::Function => "function",
            RankKind::Model => "model",
        }
    }
}

/// What a ranking orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Total tokens (the original's order).
    #[default]
    Tokens,
    /// Cost in the reporting currency.
    Cost,
    /// Calls.
    Calls,
}

/// One row of a ranking, serialised with the original's names:
/// `{"user_id": …, "tokens", "cost", "calls"}` (or `anchor_id`, `function`, `model`).
#[derive(Debug, Clone, PartialEq)]
pub struct RankEntry {
    /// What is ranked.
    pub kind: RankKind,
    /// The id.
    pub id: String,
    /// Total tokens.
    pub tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// Calls.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl Serialize for RankEntry {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry(self.kind.id_field(), &self.id)?;
        m.serialize_entry("tokens", &self.tokens)?;
        m.serialize_entry("cost", &self.cost)?;
        m.serialize_entry("currency", &self.currency)?;
        m.serialize_entry("costs", &self.costs)?;
        m.serialize_entry("calls", &self.calls)?;
        m.serialize_entry("input_tokens", &self.input_tokens)?;
        m.serialize_entry("output_tokens", &self.output_tokens)?;
        m.end()
    }
}

/// The rank key of every group of `map`, in slot order (by tokens or
/// calls read column by column, without the rows).
pub(super) fn keys_of(map: &GroupMap, by: RankBy, reporting: Currency) -> Vec<(i64, u64)> {
    let tc = || map.tokens_and_calls().into_iter();
    match by {
        RankBy::Tokens => tc().map(|(t, c)| (t as i64, c)).collect(),
        RankBy::Calls => tc().map(|(t, c)| (c as i64, t)).collect(),
        RankBy::Cost => map.refs().map(|(_, g)| by.key_of(g, reporting)).collect(),
    }
}

/// A ranking's group map for one day.
fn rank_map(day: &DayRollup, kind: RankKind) -> &GroupMap {
    match kind {
        RankKind::User => &day.day.by_user,
        RankKind::Anchor => &day.day.by_anchor,
        RankKind::Function => &day.day.by_function,
        RankKind::Model => &day.day.by_model,
    }
}

impl RankBy {
    /// A group's sort key for this order (higher ranks first): the measure,
    /// then a tie-breaker. Public so rankings computed elsewhere (e.g. from
    /// a fleet database) order exactly as the monitor's do.
    pub fn key(self, g: &GroupStats, reporting: Currency) -> (i64, u64) {
        self.key_of(GroupRef::full(g), reporting)
    }

    /// [`key`](Self::key) of a borrowed group (read without unpacking).
    pub(crate) fn key_of(self, g: GroupRef<'_>, reporting: Currency) -> (i64, u64) {
        match self {
            RankBy::Tokens => (g.total_tokens() as i64, g.calls()),
            RankBy::Cost => (g.cost_in(reporting).nanos(), g.total_tokens()),
            RankBy::Calls => (g.calls() as i64, g.total_tokens()),
        }
    }
}

/// Merged past days of recent rankings (see [`rank_cached`]); owned by the
/// monitor beside its rollups, never part of them.
#[derive(Debug, Clone, Default)]
pub struct RankCache {
    slots: Vec<MergedPast>,
}

/// Groups of a run of past days merged once and kept sorted, so a ranking
/// that ends today only merges today's groups into it. Valid while every
/// covered day keeps the version it had when the cache was built.
#[derive(Debug, Clone)]
struct MergedPast {
    kind: RankKind,
    by: RankBy,
    reporting: Currency,
    from: NaiveDate,
    to: NaiveDate,
    versions: Vec<(NaiveDate, u64)>,
    /// The merged groups, compact, in slots sorted best first.
    groups: GroupMap,
    /// The rank key of each slot of `groups`.
    keys: Vec<(i64, u64)>,
    /// For each slot of the last day's map (numbered by `links_layout`),
    /// the rank key of the same name in `groups` (zero: none), in the
    /// day's slot order: a ranking reads them in sequence, and no name
    /// twice. Extended as the day gains groups.
    links: Vec<(i64, u64)>,
    links_layout: u64,
}

/// How many merged past-day rankings are kept.
const RANK_CACHE_SLOTS: usize = 8;

fn day_versions(rollups: &Rollups, from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, u64)> {
    rollups
        .days
        .range(from..=to)
        .map(|(d, day)| (*d, day.version))
        .collect()
}

fn merge_days(
    rollups: &Rollups,
    kind: RankKind,
    from: NaiveDate,
    to: NaiveDate,
) -> FxHashMap<&str, GroupStats> {
    // Borrow keys: merging costs no allocation per group.
    let mut merged: FxHashMap<&str, GroupStats> = FxHashMap::default();
    for (_, day) in rollups.days.range(from..=to) {
        let map = rank_map(day, kind);
        if merged.is_empty() {
            merged.reserve(map.len());
        }
        for (k, g) in map.refs() {
            match merged.get_mut(k) {
                Some(m) => g.merge_into(m),
                None => {
                    merged.insert(k, g.stats());
                }
            }
        }
    }
    merged
}

fn entry_of(kind: RankKind, id: &str, g: GroupStats, reporting: Currency) -> RankEntry {
    let currency = main_currency(&g.cost, reporting);
    RankEntry {
        kind,
        id: id.to_string(),
        tokens: g.total_tokens,
        cost: g.cost.get(currency),
        currency,
        costs: g.cost,
        calls: g.calls,
        input_tokens: g.input_tokens,
        output_tokens: g.output_tokens,
    }
}

/// A ranking candidate: its key and up to two parts to add, borrowed so
/// that only the winners are ever copied.
pub(super) struct Candidate<'a> {
    key: (i64, u64),
    pub(super) id: &'a str,
    parts: [Option<GroupRef<'a>>; 2],
}

impl<'a> Candidate<'a> {
    pub(super) fn new(
        id: &'a str,
        a: GroupRef<'a>,
        b: Option<GroupRef<'a>>,
        by: RankBy,
        reporting: Currency,
    ) -> Self {
        let ka = by.key_of(a, reporting);
        let key = match b {
            // Every rank key component is a sum, so keys of parts add up.
            Some(b) => {
                let kb = by.key_of(b, reporting);
                (ka.0 + kb.0, ka.1 + kb.1)
            }
            None => ka,
        };
        Candidate {
            key,
            id,
            parts: [Some(a), b],
        }
    }

    pub(super) fn total(&self) -> GroupStats {
        match self.parts {
            [Some(a), None] => a.stats(),
            _ => {
                let mut g = GroupStats::default();
                for p in self.parts.iter().flatten() {
                    p.merge_into(&mut g);
                }
                g
            }
        }
    }
}

/// The best `limit` candidates (0 = all), best first; ties by id.
pub(super) fn select(mut rows: Vec<Candidate<'_>>, limit: usize) -> Vec<Candidate<'_>> {
    let order =
        |a: &Candidate<'_>, b: &Candidate<'_>| b.key.cmp(&a.key).then_with(|| a.id.cmp(b.id));
    if limit > 0 && rows.len() > limit {
        rows.select_nth_unstable_by(limit - 1, order);
        rows.truncate(limit);
    }
    rows.sort_by(order);
    rows
}

/// Ranks groups over the days `from..=to` of `rollups` (uncached).
pub fn rank(
    rollups: &Rollups,
    kind: RankKind,
    from: NaiveDate,
    to: NaiveDate,
    by: RankBy,
    limit: usize,
    reporting: Currency,
) -> Vec<RankEntry> {
    if from == to && limit > 0 {
        // One day: its groups are already merged.
        let mut best = TopK::new(limit);
        if let Some(day) = rollups.days.get(&from) {
            let map = rank_map(day, kind);
            for (s, &key) in keys_of(map, by, reporting).iter().enumerate() {
                if best.takes(key) {
                    let (k, g) = map.slot_at(s);
                    best.offer(key, k, g, None);
                }
            }
        }
        return best.entries(kind, reporting);
    }
    let merged = merge_days(rollups, kind, from, to);
    let rows = merged
        .iter()
        .map(|(k, g)| Candidate::new(k, GroupRef::full(g), None, by, reporting))
        .collect();
    select(rows, limit)
        .into_iter()
        .map(|c| entry_of(kind, c.id, c.total(), reporting))
        .collect()
}

/// The best `limit` of the groups offered (a ranking's candidates), kept
/// as they come: an offer below the current last place costs one compare.
pub(super) struct TopK<'a> {
    limit: usize,
    /// Worst on top.
    heap: std::collections::BinaryHeap<Ranked<'a>>,
}

/// A candidate of [`TopK`]: its key, name and the parts that add up to it
/// (the second, a past group, read only if it wins).
struct Ranked<'a> {
    key: (i64, u64),
    id: &'a str,
    group: GroupRef<'a>,
    /// Where to find the same name's past part, if anywhere.
    past: Option<&'a GroupMap>,
}

impl Ord for Ranked<'_> {
    /// Worse is greater: a lower key, then (equal keys) a later id.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.key.cmp(&self.key).then_with(|| self.id.cmp(o.id))
    }
}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}

impl Eq for Ranked<'_> {}

impl<'a> TopK<'a> {
    pub(super) fn new(limit: usize) -> TopK<'a> {
        TopK {
            limit,
            heap: std::collections::BinaryHeap::with_capacity(limit.min(4096) + 1),
        }
    }

    /// True when a candidate of `key` could enter (an equal key may win
    /// on its name).
    pub(super) fn takes(&self, key: (i64, u64)) -> bool {
        self.heap.len() < self.limit || self.heap.peek().is_some_and(|worst| key >= worst.key)
    }

    pub(super) fn offer(
        &mut self,
        key: (i64, u64),
        id: &'a str,
        group: GroupRef<'a>,
        past: Option<&'a GroupMap>,
    ) {
        let r = Ranked {
            key,
            id,
            group,
            past,
        };
        if self.heap.len() < self.limit {
            self.heap.push(r);
        } else if self.heap.peek().is_some_and(|worst| r < *worst) {
            self.heap.pop();
            self.heap.push(r);
        }
    }

    /// The groups kept with their counters, best first.
    pub(super) fn groups(self) -> Vec<(&'a str, GroupStats)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| {
                let mut g = r.group.stats();
                if let Some(p) = r.past.and_then(|map| map.group(r.id)) {
                    p.merge_into(&mut g);
                }
                (r.id, g)
            })
            .collect()
    }

    /// The entries, best first.
    fn entries(self, kind: RankKind, reporting: Currency) -> Vec<RankEntry> {
        self.groups()
            .into_iter()
            .map(|(id, g)| entry_of(kind, id, g, reporting))
            .collect()
    }
}

/// Ranks like [`rank`], reusing merged past days when the range ends with
/// its last day and at least two days are covered: the cost is then
/// O(groups of the last day + limit) instead of O(groups of every day).
pub fn rank_cached(
    rollups: &Rollups,
    cache: &mut RankCache,
    kind: RankKind,
    (from, to): (NaiveDate, NaiveDate),
    by: RankBy,
    limit: usize,
    reporting: Currency,
) -> Vec<RankEntry> {
    if limit == 0 || from >= to {
        return rank(rollups, kind, from, to, by, limit, reporting);
    }
    let past_to = to - chrono::Duration::days(1);
    let versions = day_versions(rollups, from, past_to);
    let hit = cache.slots.iter().position(|c| {
        c.kind == kind
            && c.by == by
            && c.reporting == reporting
            && c.from == from
            && c.to == past_to
            && c.versions == versions
    });
    let slot = match hit {
        Some(i) => i,
        None => {
            let merged = merge_days(rollups, kind, from, past_to);
            let rows = merged
                .iter()
                .map(|(k, g)| Candidate::new(k, GroupRef::full(g), None, by, reporting))
                .collect();
            let mut groups = GroupMap::default();
            let mut keys = Vec::new();
            for c in select(rows, 0) {
                keys.push(c.key);
                groups.merge_group(c.id, &c.total());
            }
            let merged_past = MergedPast {
                kind,
                by,
                reporting,
                from,
                to: past_to,
                versions,
                groups,
                keys,
                links: Vec::new(),
                links_layout: 0,
            };
            // Replace a stale entry for the same question, else the oldest.
            if let Some(i) = cache
                .slots
                .iter()
                .position(|c| c.kind == kind && c.by == by && c.from == from)
            {
                cache.slots.remove(i);
            }
            if cache.slots.len() >= RANK_CACHE_SLOTS {
                cache.slots.remove(0);
            }
            cache.slots.push(merged_past);
            cache.slots.len() - 1
        }
    };
    let empty = GroupMap::default();
    let last = rollups.days.get(&to).map_or(&empty, |d| rank_map(d, kind));
    let past = &mut cache.slots[slot];
    if past.links_layout != last.layout() {
        past.links.clear();
        past.links_layout = last.layout();
    }
    for s in past.links.len()..last.len() {
        let (k, _) = last.slot_at(s);
        let key = past.groups.position(k).map_or((0, 0), |p| past.keys[p]);
        past.links.push(key);
    }
    let past = &cache.slots[slot];
    // Candidates: every group active on the last day (with its past added),
    // plus the best `limit` past groups not active on it. No other group can
    // rank above those.
    let mut best = TopK::new(limit);
    // Every rank key component is a sum, so keys of parts add up (a name
    // without a past adds zero); the past part itself is found by name
    // only for the winners.
    for (s, (key, pk)) in keys_of(last, by, reporting)
        .iter()
        .zip(&past.links)
        .enumerate()
    {
        let key = (key.0 + pk.0, key.1 + pk.1);
        if best.takes(key) {
            let (k, g) = last.slot_at(s);
            best.offer(key, k, g, Some(&past.groups));
        }
    }
    let mut extra = 0;
    // Slots are best first.
    for (p, (k, g)) in past.groups.refs().enumerate() {
        if extra >= limit {
            break;
        }
        if !last.contains_key(k) {
            best.offer(past.keys[p], k, g, None);
            extra += 1;
        }
    }
    best.entries(kind, reporting)
}
