//! The rollups as a serde image, for the snapshot on disk: every group
//! name once in a table, groups as lists of (name number, counters) in name
//! order instead of hash maps, every private field included. Writing
//! borrows the live strings (no copy of the rollups); reading builds owned
//! rollups, their past days frozen, that count exactly as the replay that
//! made them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::rc::Rc;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::groups::{Packed, SortedGroups};
use super::{
    Bucket, CallCounts, DayRollup, DurationHistogram, GroupMap, GroupStats, Rollups, SessionStats,
    HIST_BUCKETS,
};
use crate::money::{Costs, Currency, Money};

/// Counters of one group: the first currency inline, so reading a group
/// allocates nothing.
#[derive(Serialize, Deserialize)]
struct Stats {
    counts: [u64; 9],
    cost: Option<([u8; 3], i64)>,
    more_costs: Vec<([u8; 3], i64)>,
}

impl From<&GroupStats> for Stats {
    fn from(g: &GroupStats) -> Stats {
        let mut costs = g.cost.iter().map(|(c, m)| (c.bytes(), m.nanos()));
        Stats {
            counts: [
                g.calls,
                g.successful_calls,
                g.input_tokens,
                g.output_tokens,
                g.total_tokens,
                g.cached_input_tokens,
                g.reasoning_tokens,
                g.cache_write_tokens,
                g.unpriced_calls,
            ],
            cost: costs.next(),
            more_costs: costs.collect(),
        }
    }
}

impl Stats {
    /// The packed counters, `None` when they do not fit; the error names a
    /// currency code that is not one.
    fn packed(&self) -> Result<Option<Packed>, String> {
        let mut costs = [([0u8; 3], 0i64); 2];
        let mut n = 0;
        for &(code, nanos) in self.cost.iter().chain(&self.more_costs) {
            if !code.iter().all(u8::is_ascii_uppercase) {
                return Err(format!("{code:?} is not a currency code"));
            }
            if n == 2 {
                return Ok(None);
            }
            costs[n] = (code, nanos);
            n += 1;
        }
        Ok(Packed::from_counts(&self.counts, &costs[..n]))
    }

    fn into_group(self) -> Result<GroupStats, String> {
        let [calls, successful_calls, input_tokens, output_tokens, total_tokens, cached_input_tokens, reasoning_tokens, cache_write_tokens, unpriced_calls] =
            self.counts;
        let mut cost = Costs::default();
        for (code, nanos) in self.cost.into_iter().chain(self.more_costs) {
            let code = std::str::from_utf8(&code).map_err(|_| "a currency code is not text")?;
            let currency: Currency = code
                .parse()
                .map_err(|_| format!("unknown currency {code:?}"))?;
            cost.add(currency, Money::from_nanos(nanos));
        }
        Ok(GroupStats {
            calls,
            successful_calls,
            input_tokens,
            output_tokens,
            total_tokens,
            cached_input_tokens,
            reasoning_tokens,
            cache_write_tokens,
            unpriced_calls,
            cost,
        })
    }
}

/// Every group name of the rollups, numbered in first-seen order.
#[derive(Default)]
struct NameTable<'a> {
    numbers: FxHashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> NameTable<'a> {
    fn of(rollups: &'a Rollups) -> NameTable<'a> {
        let mut t = NameTable::default();
        let mut add_map = |m: &'a GroupMap| {
            for k in m.keys() {
                if !t.numbers.contains_key(k) {
                    t.numbers.insert(k, t.names.len() as u32);
                    t.names.push(k);
                }
            }
        };
        for day in rollups.days.values() {
            for b in std::iter::once(&day.day).chain(day.hours.values()) {
                for m in [
                    &b.by_model,
                    &b.by_function,
                    &b.by_user,
                    &b.by_anchor,
                    &b.by_tag,
                ] {
                    add_map(m);
                }
            }
            for m in day.by_function_model.values() {
                add_map(m);
            }
        }
        // Numbered in name order: a map's groups (sorted by name) then
        // have increasing numbers, which the reader checks cheaply.
        t.names.sort_unstable();
        for (i, k) in t.names.iter().enumerate() {
            t.numbers.insert(k, i as u32);
        }
        t
    }
}

/// A group map written as a list of (name number, counters), in name order.
struct Groups<'a> {
    map: &'a GroupMap,
    table: &'a NameTable<'a>,
}

impl Serialize for Groups<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.map.len()))?;
        for slot in self.map.sorted_slots() {
            let (k, g) = self.map.slot_at(slot);
            let number = self.table.numbers.get(&**k).copied().ok_or_else(|| {
                serde::ser::Error::custom(format!("group {k:?} is not in the name table"))
            })?;
            seq.serialize_element(&(number, Stats::from(&g.stats())))?;
        }
        seq.end()
    }
}

thread_local! {
    /// The name table of the image being read: set when its `names` field
    /// is read (the first), used by every group list after it, so each
    /// list becomes its frozen map as it is read (no copy of the whole
    /// image in between: reading needs little more memory than the result).
    static READ_NAMES: RefCell<Option<Rc<[Arc<str>]>>> = const { RefCell::new(None) };
}

/// Runs `read` (the decoding of one image) with a fresh name table.
pub(crate) fn reading<T>(read: impl FnOnce() -> T) -> T {
    READ_NAMES.with(|n| n.borrow_mut().take());
    let out = read();
    READ_NAMES.with(|n| n.borrow_mut().take());
    out
}

/// The name table, read (and installed for the group lists after it).
struct NamesIn(Rc<[Arc<str>]>);

impl<'de> Deserialize<'de> for NamesIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NamesIn, D::Error> {
        let names: Vec<String> = Vec::deserialize(d)?;
        if names.windows(2).any(|w| w[0] >= w[1]) {
            return Err(D::Error::custom("group names are not in order"));
        }
        let names: Rc<[Arc<str>]> = names.into_iter().map(Arc::from).collect();
        READ_NAMES.with(|n| *n.borrow_mut() = Some(names.clone()));
        Ok(NamesIn(names))
    }
}

/// A group list read straight into its frozen map.
struct GroupsIn(GroupMap);

impl<'de> Deserialize<'de> for GroupsIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GroupsIn, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = GroupMap;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of (name number, counters)")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GroupMap, A::Error> {
                let names = READ_NAMES
                    .with(|n| n.borrow().clone())
                    .ok_or_else(|| A::Error::custom("group names come before the groups"))?;
                let mut groups =
                    SortedGroups::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                let mut last: Option<u32> = None;
                while let Some((number, stats)) = seq.next_element::<(u32, Stats)>()? {
                    // Names are numbered in name order (checked above), so
                    // increasing numbers are increasing names.
                    if last.is_some_and(|l| number <= l) {
                        return Err(A::Error::custom("groups are not in name order"));
                    }
                    last = Some(number);
                    let name = names.get(number as usize).ok_or_else(|| {
                        A::Error::custom(format!("group name number {number} is not in the table"))
                    })?;
                    match stats.packed().map_err(A::Error::custom)? {
                        Some(p) => groups.push_packed(name.clone(), p),
                        None => groups
                            .push(name.clone(), stats.into_group().map_err(A::Error::custom)?)
                            .ok_or_else(|| A::Error::custom("too many groups kept in full"))?,
                    }
                }
                Ok(groups.finish())
            }
        }
        d.deserialize_seq(List).map(GroupsIn)
    }
}

#[derive(Serialize, Deserialize)]
struct Histogram {
    buckets: Vec<u64>,
    sum_ms: f64,
    count: u64,
}

#[derive(Serialize)]
struct BucketRef<'a> {
    totals: Stats,
    by_model: Groups<'a>,
    by_function: Groups<'a>,
    by_user: Groups<'a>,
    by_anchor: Groups<'a>,
    by_tag: Groups<'a>,
    durations: Histogram,
}

#[derive(Deserialize)]
struct BucketOwned {
    totals: Stats,
    by_model: GroupsIn,
    by_function: GroupsIn,
    by_user: GroupsIn,
    by_anchor: GroupsIn,
    by_tag: GroupsIn,
    durations: Histogram,
}

impl<'a> BucketRef<'a> {
    fn of(b: &'a Bucket, table: &'a NameTable<'a>) -> BucketRef<'a> {
        let groups = |map| Groups { map, table };
        BucketRef {
            totals: Stats::from(&b.totals),
            by_model: groups(&b.by_model),
            by_function: groups(&b.by_function),
            by_user: groups(&b.by_user),
            by_anchor: groups(&b.by_anchor),
            by_tag: groups(&b.by_tag),
            durations: Histogram {
                buckets: b.durations.buckets.clone(),
                sum_ms: b.durations.sum_ms,
                count: b.durations.count,
            },
        }
    }
}

impl BucketOwned {
    fn into_bucket(self) -> Result<Bucket, String> {
        if self.durations.buckets.len() != HIST_BUCKETS {
            return Err("a duration histogram has the wrong size".into());
        }
        Ok(Bucket {
            totals: self.totals.into_group()?,
            by_model: self.by_model.0,
            by_function: self.by_function.0,
            by_user: self.by_user.0,
            by_anchor: self.by_anchor.0,
            by_tag: self.by_tag.0,
            durations: DurationHistogram {
                buckets: self.durations.buckets,
                sum_ms: self.durations.sum_ms,
                count: self.durations.count,
            },
        })
    }
}

/// function → model pairs of a day.
struct Pairs<'a>(
    &'a rustc_hash::FxHashMap<String, GroupMap>,
    &'a NameTable<'a>,
);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (f, map) in self.0 {
            seq.serialize_element(&(f.as_str(), Groups { map, table: self.1 }))?;
        }
        seq.end()
    }
}

/// Hours of a day.
struct Hours<'a>(&'a BTreeMap<u8, Bucket>, &'a NameTable<'a>);

impl Serialize for Hours<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (h, b) in self.0 {
            seq.serialize_element(&(*h, BucketRef::of(b, self.1)))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct DayRef<'a> {
    date: i32,
    day: BucketRef<'a>,
    hours: Hours<'a>,
    pairs: Pairs<'a>,
}

#[derive(Deserialize)]
struct DayOwned {
    date: i32,
    day: BucketOwned,
    hours: Vec<(u8, BucketOwned)>,
    pairs: Vec<(String, GroupsIn)>,
}

#[derive(Serialize)]
struct SessionRef<'a> {
    id: &'a str,
    stats: Stats,
    first_call: f64,
    last_call: f64,
    models: &'a CallCounts,
    functions: &'a CallCounts,
    anchor_id: Option<&'a str>,
    user_id: Option<&'a str>,
    id_times: (f64, f64),
}

#[derive(Deserialize)]
struct SessionOwned {
    id: String,
    stats: Stats,
    first_call: f64,
    last_call: f64,
    models: BTreeMap<String, u64>,
    functions: BTreeMap<String, u64>,
    anchor_id: Option<String>,
    user_id: Option<String>,
    id_times: (f64, f64),
}

struct Days<'a>(&'a BTreeMap<NaiveDate, DayRollup>, &'a NameTable<'a>);

impl Serialize for Days<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (d, day) in self.0 {
            seq.serialize_element(&DayRef {
                date: chrono::Datelike::num_days_from_ce(d),
                day: BucketRef::of(&day.day, self.1),
                hours: Hours(&day.hours, self.1),
                pairs: Pairs(&day.by_function_model, self.1),
            })?;
        }
        seq.end()
    }
}

struct Sessions<'a>(&'a rustc_hash::FxHashMap<String, SessionStats>);

impl Serialize for Sessions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (id, st) in self.0 {
            seq.serialize_element(&SessionRef {
                id,
                stats: Stats::from(&st.stats),
                first_call: st.first_call,
                last_call: st.last_call,
                models: &st.models,
                functions: &st.functions,
                anchor_id: st.anchor_id.as_deref(),
                user_id: st.user_id.as_deref(),
                id_times: st.id_times,
            })?;
        }
        seq.end()
    }
}

/// A session's calls per name, read back (names shared).
fn counts(map: BTreeMap<String, u64>, names: &mut super::Names) -> CallCounts {
    let mut c = CallCounts::default();
    for (k, v) in map {
        c.push_sorted(names.key(&k), v);
    }
    c
}

/// The rollups' name table, built once before writing.
pub(crate) struct ImageNames<'a>(NameTable<'a>);

impl<'a> ImageNames<'a> {
    /// Numbers every group name of `r`.
    pub(crate) fn of(r: &'a Rollups) -> ImageNames<'a> {
        ImageNames(NameTable::of(r))
    }
}

/// The rollups, borrowed for writing.
#[derive(Serialize)]
pub(crate) struct RollupsRef<'a> {
    names: &'a [&'a str],
    days: Days<'a>,
    sessions: Sessions<'a>,
}

impl<'a> RollupsRef<'a> {
    /// The image of `r`, its names numbered by `names`.
    pub(crate) fn of(r: &'a Rollups, names: &'a ImageNames<'a>) -> RollupsRef<'a> {
        RollupsRef {
            names: &names.0.names,
            days: Days(&r.days, &names.0),
            sessions: Sessions(&r.sessions),
        }
    }
}

/// The rollups as read back.
#[derive(Deserialize)]
pub(crate) struct RollupsOwned {
    names: NamesIn,
    days: Vec<DayOwned>,
    sessions: Vec<SessionOwned>,
}

impl RollupsOwned {
    /// The rollups this image holds, every day frozen (the live day thaws
    /// on its first record); the error says what is inconsistent.
    pub(crate) fn into_rollups(self) -> Result<Rollups, String> {
        let mut out = Rollups::default();
        for n in self.names.0.iter() {
            out.names.adopt(n);
        }
        for d in self.days {
            let date = NaiveDate::from_num_days_from_ce_opt(d.date)
                .ok_or_else(|| format!("day number {} is not a date", d.date))?;
            let mut day = DayRollup {
                day: d.day.into_bucket()?,
                version: 1,
                ..DayRollup::default()
            };
            for (h, b) in d.hours {
                if h > 23 {
                    return Err(format!("hour {h} of {date}"));
                }
                day.hours.insert(h, b.into_bucket()?);
            }
            for (f, models) in d.pairs {
                let models = models.0;
                day.pairs += models.len();
                day.by_function_model.insert(f, models);
            }
            out.days.insert(date, day);
        }
        out.sessions.reserve(self.sessions.len());
        for s in self.sessions {
            out.sessions.insert(
                s.id.clone(),
                SessionStats {
                    session_id: s.id,
                    stats: s.stats.into_group()?,
                    first_call: s.first_call,
                    last_call: s.last_call,
                    models: counts(s.models, &mut out.names),
                    functions: counts(s.functions, &mut out.names),
                    anchor_id: s.anchor_id,
                    user_id: s.user_id,
                    id_times: s.id_times,
                },
            );
        }
        Ok(out)
    }
}
