//! In-memory rollups: the only state queries read.
//!
//! Live records and replayed day files go through the same [`Rollups::add`],
//! so a restart gives the same numbers. Each local day keeps totals and
//! per-model / function / user / anchor groups (plus function × model for
//! savings and CSV), and each of its hours the same groups; sessions are kept
//! across days.
//!
//! # Memory bounds
//!
//! Ids come from callers, so every map keyed by one is capped; an id that
//! arrives once its map is full is counted under [`OTHER_GROUP`] instead, so
//! totals stay exact and only the breakdown is coarser:
//! - a day: at most [`MAX_IDS_PER_DAY`] users and as many anchors, and
//!   [`MAX_NAMES_PER_DAY`] models, functions and function × model pairs each;
//! - an hour: at most [`MAX_IDS_PER_HOUR`] users and anchors each and
//!   [`MAX_NAMES_PER_HOUR`] models and functions each;
//! - sessions (across days): at most [`MAX_SESSIONS`], each listing at most
//!   [`MAX_NAMES_PER_HOUR`] models and functions.
//!
//! Groups are compact ([`groups`]): a name shared by every map that holds
//! it, counters packed in 60 bytes while the day takes records (plus about
//! 10 bytes of index), and about 20 bytes in narrow columns once the day is
//! past. Ten million calls over 30 days (4.6 million groups) hold about
//! 170 MB of groups. A flood of unique ids holds at most 2 × 100,000 +
//! 3 × 10,000 + 24 × (2 × 2,000 + 2 × 1,000) = 374,000 groups (≈ 35 MB
//! while live) for the day it hits, plus at most 100,000 sessions overall;
//! [`Rollups::group_count`] gives the live figure. A budget on an id that
//! only arrives after its day's map is full is not seen by that budget.
//!
//! Sums saturate, one way everywhere: token and call counters at `u64::MAX`,
//! money at `i64::MAX` micro-units (see [`crate::Money`]); with the input
//! limits per call (10^12 tokens) no real day comes near either.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::money::{Costs, Currency, Money};
use crate::record::UsageRecord;
use crate::storage::adjustments::Adjustment;
use crate::zone::Zone;

pub mod groups;
pub(crate) mod image;

pub use groups::{GroupMap, GroupRef, Names};

/// The group that ids beyond a map's cap are counted in.
pub const OTHER_GROUP: &str = "(other)";
/// Most distinct users, and anchors, in one day.
pub const MAX_IDS_PER_DAY: usize = 100_000;
/// Most distinct models, functions, and function × model pairs, in one day.
pub const MAX_NAMES_PER_DAY: usize = 10_000;
/// Most distinct users, and anchors, in one hour.
pub const MAX_IDS_PER_HOUR: usize = 2_000;
/// Most distinct models, and functions, in one hour (and per session).
pub const MAX_NAMES_PER_HOUR: usize = 1_000;
/// Most sessions kept (across the retention window).
pub const MAX_SESSIONS: usize = 100_000;

/// Serialisation skips counters that are zero (most groups have no cache writes).
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Counters of one group (a model, a function, a user, a day, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupStats {
    /// Calls.
    pub calls: u64,
    /// Calls that succeeded.
    pub successful_calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens (as recorded: `max(total, in + out)`).
    pub total_tokens: u64,
    /// Cached input tokens.
    pub cached_input_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Input tokens written to the prompt cache (part of `input_tokens`),
    /// so re-pricing (savings) charges them at each model's cache-write rate.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// Calls of models without a price.
    pub unpriced_calls: u64,
    /// Cost per currency, never mixed.
    pub cost: Costs,
}

impl GroupStats {
    /// Counts one record.
    pub fn add(&mut self, r: &UsageRecord, currency: Currency, priced: bool) {
        // Saturating: absurd token counts from a caller must never panic.
        self.calls = self.calls.saturating_add(1);
        self.successful_calls = self.successful_calls.saturating_add(r.success as u64);
        self.input_tokens = self.input_tokens.saturating_add(r.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(r.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(r.total_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(r.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(r.reasoning_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(r.cache_write_tokens);
        self.unpriced_calls = self.unpriced_calls.saturating_add((!priced) as u64);
        self.cost.add(currency, r.cost);
    }

    /// Applies a cost correction of one call counted here: its cost moves
    /// from the old amount to the new one and an unpriced call becomes
    /// priced; call and token counts stay.
    pub fn adjust(&mut self, a: &Adjustment) {
        self.cost.add(a.old_currency, Money::ZERO - a.old_cost);
        self.cost.add(a.currency, a.new_cost);
        if a.old_currency != a.currency {
            self.cost.drop_if_zero(a.old_currency);
        }
        if !a.old_priced {
            self.unpriced_calls = self.unpriced_calls.saturating_sub(1);
        }
    }

    /// Adds another group's counters.
    pub fn merge(&mut self, o: &GroupStats) {
        self.calls = self.calls.saturating_add(o.calls);
        self.successful_calls = self.successful_calls.saturating_add(o.successful_calls);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(o.total_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(o.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.unpriced_calls = self.unpriced_calls.saturating_add(o.unpriced_calls);
        self.cost.merge(&o.cost);
    }

    /// Failed calls.
    pub fn failed_calls(&self) -> u64 {
        self.calls - self.successful_calls
    }
}

/// Log-scale histogram of call durations, for averages and p95 without
/// keeping every duration. Bucket `i` holds durations below `2^(i/4)` ms,
/// i.e. about 19 % resolution, up to ~ 4.6 hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationHistogram {
    #[serde(skip)]
    buckets: Vec<u64>,
    /// Sum of durations (ms).
    pub sum_ms: f64,
    /// Durations counted.
    pub count: u64,
}

const HIST_BUCKETS: usize = DurationHistogram::BUCKETS;

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            buckets: vec![0; HIST_BUCKETS],
            sum_ms: 0.0,
            count: 0,
        }
    }
}

impl DurationHistogram {
    /// Number of buckets: bucket `BUCKETS - 1` also holds everything longer.
    pub const BUCKETS: usize = 96;

    /// The bucket [`add`](Self::add) counts a duration of `ms` in:
    /// `ceil(log2(ms) * 4)` clamped to `0..BUCKETS`; durations ≤ 1 ms,
    /// negative, NaN or infinite ones go to bucket 0. Other stores (the
    /// fleet's ClickHouse histogram) use it to bucket exactly as the core.
    pub fn bucket_of(ms: f64) -> usize {
        let ms = if ms.is_finite() && ms > 0.0 { ms } else { 0.0 };
        Self::index(ms)
    }

    /// Counts `calls` durations in bucket `bucket` (one a histogram kept
    /// elsewhere summed, e.g. from [`bucket_of`](Self::bucket_of)); a
    /// bucket past the last counts in the last. Adds to `count`, not to
    /// `sum_ms`: the caller adds the durations' sum it knows.
    pub fn add_to_bucket(&mut self, bucket: usize, calls: u64) {
        self.buckets[bucket.min(HIST_BUCKETS - 1)] += calls;
        self.count += calls;
    }

    fn index(ms: f64) -> usize {
        if ms.is_nan() || ms <= 1.0 {
            return 0;
        }
        ((ms.log2() * 4.0).ceil() as usize).min(HIST_BUCKETS - 1)
    }

    /// Upper bound (ms) of bucket `i`.
    fn upper(i: usize) -> f64 {
        (i as f64 / 4.0).exp2()
    }

    /// Counts one duration.
    pub fn add(&mut self, ms: f64) {
        let ms = if ms.is_finite() && ms > 0.0 { ms } else { 0.0 };
        self.buckets[Self::bucket_of(ms)] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }

    /// Adds another histogram.
    pub fn merge(&mut self, o: &DurationHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.sum_ms += o.sum_ms;
        self.count += o.count;
    }

    /// Mean duration (ms), 0 when empty.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ms / self.count as f64
        }
    }

    /// The `q` quantile (0..=1) as the upper bound of its bucket (ms).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::upper(i);
            }
        }
        Self::upper(HIST_BUCKETS - 1)
    }
}

/// `key`, or [`OTHER_GROUP`] when `key` is new and `map` is full.
fn capped_key<'k, V>(map: &FxHashMap<String, V>, key: &'k str, cap: usize) -> &'k str {
    if map.len() >= cap && !map.contains_key(key) {
        OTHER_GROUP
    } else {
        key
    }
}

/// The value of `key`, inserted by `make` when absent. Looks up by `&str`
/// first so a known key costs no allocation (hot paths use [`with_group`],
/// one lookup).
fn slot<'m, V>(
    map: &'m mut FxHashMap<String, V>,
    key: &str,
    make: impl FnOnce() -> V,
) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), make());
    }
    // Present: inserted just above if it was missing.
    map.get_mut(key).expect("key present")
}

/// Counters of one period (a day or an hour) with its groups.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    /// Everything in the period.
    pub totals: GroupStats,
    /// By model name as recorded.
    pub by_model: GroupMap,
    /// By function (功能).
    pub by_function: GroupMap,
    /// By user id (records without one are not grouped, like the seed).
    pub by_user: GroupMap,
    /// By anchor id (主播).
    pub by_anchor: GroupMap,
    /// By tag (e.g. `team:live-ops`): a record counts once in each of its
    /// distinct tags (and once in `totals`).
    pub by_tag: GroupMap,
    /// Call durations.
    pub durations: DurationHistogram,
}

/// A record's group names with their hashes, computed once for the
/// record's day and hour.
struct Keys<'r> {
    model: (&'r str, u64),
    function: (&'r str, u64),
    user: Option<(&'r str, u64)>,
    anchor: Option<(&'r str, u64)>,
}

impl<'r> Keys<'r> {
    fn of(r: &'r UsageRecord) -> Keys<'r> {
        let key = |s: &'r str| (s, groups::name_hash(s));
        Keys {
            model: key(&r.model),
            function: key(&r.function),
            user: r.user_id.as_deref().map(key),
            anchor: r.anchor_id.as_deref().map(key),
        }
    }
}

impl Bucket {
    /// Counts a record (its names `k`), at most `names` models and
    /// functions and `ids` users and anchors; new group names are interned
    /// in `n`.
    fn add(
        &mut self,
        r: &UsageRecord,
        k: &Keys<'_>,
        (currency, priced): (Currency, bool),
        (names, ids): Caps,
        n: &mut Names,
    ) {
        self.totals.add(r, currency, priced);
        self.by_model
            .add_record(k.model, names, n, r, currency, priced);
        self.by_function
            .add_record(k.function, names, n, r, currency, priced);
        if let Some(u) = k.user {
            self.by_user.add_record(u, ids, n, r, currency, priced);
        }
        if let Some(a) = k.anchor {
            self.by_anchor.add_record(a, ids, n, r, currency, priced);
        }
        for (i, t) in r.tags.iter().enumerate() {
            // A tag given twice counts once.
            if !r.tags[..i].contains(t) {
                let t = (t.as_str(), groups::name_hash(t));
                self.by_tag.add_record(t, ids, n, r, currency, priced);
            }
        }
        self.durations.add(r.duration_ms);
    }

    /// Applies a cost correction to every group the call was counted in
    /// (see [`GroupStats::adjust`]); its duration stays counted.
    fn adjust(&mut self, a: &Adjustment, (names, ids): Caps, n: &mut Names) {
        let adjust = |g: &mut GroupStats| g.adjust(a);
        adjust(&mut self.totals);
        self.by_model.update(&a.model, names, n, adjust);
        self.by_function.update(&a.function, names, n, adjust);
        if let Some(u) = &a.user_id {
            self.by_user.update(u, ids, n, adjust);
        }
        if let Some(x) = &a.anchor_id {
            self.by_anchor.update(x, ids, n, adjust);
        }
        for (i, t) in a.tags.iter().enumerate() {
            if !a.tags[..i].contains(t) {
                self.by_tag.update(t, ids, n, adjust);
            }
        }
    }

    /// Adds another bucket's counters and groups (unbounded: for query-side
    /// merges of buckets that are each bounded already).
    pub fn merge(&mut self, o: &Bucket) {
        self.merge_capped(o, (usize::MAX, usize::MAX), None);
    }

    fn merge_capped(&mut self, o: &Bucket, (names, ids): Caps, mut n: Option<&mut Names>) {
        self.totals.merge(&o.totals);
        self.by_model
            .merge_map(&o.by_model, names, n.as_deref_mut());
        self.by_function
            .merge_map(&o.by_function, names, n.as_deref_mut());
        self.by_user.merge_map(&o.by_user, ids, n.as_deref_mut());
        self.by_anchor
            .merge_map(&o.by_anchor, ids, n.as_deref_mut());
        self.by_tag.merge_map(&o.by_tag, ids, n);
        self.durations.merge(&o.durations);
    }

    /// Freezes every group map (see [`GroupMap::freeze`]).
    fn freeze(&mut self) {
        for m in [
            &mut self.by_model,
            &mut self.by_function,
            &mut self.by_user,
            &mut self.by_anchor,
            &mut self.by_tag,
        ] {
            m.freeze();
        }
    }

    /// Groups held (all dimensions).
    pub fn group_count(&self) -> usize {
        self.by_model.len()
            + self.by_function.len()
            + self.by_user.len()
            + self.by_anchor.len()
            + self.by_tag.len()
    }
}

/// Group caps of a bucket: (models and functions, users and anchors).
type Caps = (usize, usize);
const DAY_CAPS: Caps = (MAX_NAMES_PER_DAY, MAX_IDS_PER_DAY);
const HOUR_CAPS: Caps = (MAX_NAMES_PER_HOUR, MAX_IDS_PER_HOUR);

/// One local day: its bucket, its hours and function × model groups.
#[derive(Debug, Clone, Default)]
pub struct DayRollup {
    /// The whole day.
    pub day: Bucket,
    /// Hours 0..=23 that have records.
    pub hours: BTreeMap<u8, Bucket>,
    /// function → model → counters (for savings advice and CSV rows), at
    /// most [`MAX_NAMES_PER_DAY`] pairs.
    pub by_function_model: FxHashMap<String, GroupMap>,
    /// Pairs in `by_function_model`.
    pairs: usize,
    /// Bumped on every change, so caches over past days know when to rebuild.
    pub version: u64,
}

impl DayRollup {
    fn merge(&mut self, o: &DayRollup, n: &mut Names) {
        self.version += 1;
        self.day.merge_capped(&o.day, DAY_CAPS, Some(n));
        for (h, b) in &o.hours {
            self.hours
                .entry(*h)
                .or_default()
                .merge_capped(b, HOUR_CAPS, Some(n));
        }
        for (f, models) in &o.by_function_model {
            for (m, g) in models.refs() {
                self.with_pair(f, m, n, |mine| g.merge_into(mine));
            }
        }
    }

    /// Applies `f` to the counters of (function, model); a new pair beyond
    /// the cap is counted as ([`OTHER_GROUP`], [`OTHER_GROUP`]). The hot
    /// path: a known pair costs two lookups (function, then model), no
    /// allocation.
    fn with_pair<R>(
        &mut self,
        function: &str,
        model: &str,
        n: &mut Names,
        f: impl FnOnce(&mut GroupStats) -> R,
    ) -> R {
        self.at_pair(function, model, n, |models, s| models.modify(s, f))
    }

    /// Calls `f` with the map and slot of (function, model); a new pair
    /// beyond the cap is ([`OTHER_GROUP`], [`OTHER_GROUP`]). A known pair
    /// costs two lookups (function, then model), no allocation.
    fn at_pair<R>(
        &mut self,
        function: &str,
        model: &str,
        n: &mut Names,
        f: impl FnOnce(&mut GroupMap, usize) -> R,
    ) -> R {
        if let Some(models) = self.by_function_model.get_mut(function) {
            if let Some(s) = models.live_slot(model) {
                return f(models, s);
            }
        }
        let (function, model) = if self.pairs < MAX_NAMES_PER_DAY {
            (function, model)
        } else {
            (OTHER_GROUP, OTHER_GROUP)
        };
        let models = slot(&mut self.by_function_model, function, GroupMap::default);
        if !models.contains_key(model) {
            self.pairs += 1;
        }
        let s = models.slot_for(model, usize::MAX, n);
        f(models, s)
    }

    /// Freezes the day's group maps (a past day: see [`GroupMap::freeze`]).
    pub fn freeze(&mut self) {
        self.day.freeze();
        for b in self.hours.values_mut() {
            b.freeze();
        }
        for m in self.by_function_model.values_mut() {
            m.freeze();
        }
    }

    /// Groups held in memory for this day (day, hours, pairs).
    pub fn group_count(&self) -> usize {
        self.day.group_count()
            + self.hours.values().map(Bucket::group_count).sum::<usize>()
            + self.pairs
    }
}

/// Counters of one session (one broadcast), across days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionStats {
    /// The session id.
    pub session_id: String,
    /// Counters.
    #[serde(flatten)]
    pub stats: GroupStats,
    /// First call (epoch seconds).
    pub first_call: f64,
    /// Last call (epoch seconds).
    pub last_call: f64,
    /// Calls per model.
    pub models: CallCounts,
    /// Calls per function.
    pub functions: CallCounts,
    /// Anchor of the latest call (by timestamp) that named one.
    pub anchor_id: Option<String>,
    /// User of the latest call (by timestamp) that named one.
    pub user_id: Option<String>,
    /// Timestamps of the calls `anchor_id` and `user_id` come from.
    #[serde(skip)]
    id_times: (f64, f64),
}

/// Calls per name (a session's models or functions), sorted by name, the
/// names shared with the group maps: a few dozen bytes a name instead of a
/// tree node and a string each. Serialised as a map, `{"qwen-plus": 3}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallCounts(Vec<(Arc<str>, u64)>);

impl CallCounts {
    /// (name, calls), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.0.iter().map(|(k, v)| (&**k, *v))
    }

    /// Appends a name greater than every one held (building from a
    /// sorted map).
    pub(crate) fn push_sorted(&mut self, name: Arc<str>, calls: u64) {
        self.0.push((name, calls));
    }

    /// As a sorted map (for payloads).
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    /// Adds `n` calls under `key`, at most [`MAX_NAMES_PER_HOUR`] names
    /// (the rest under [`OTHER_GROUP`]).
    fn bump_by(&mut self, key: &str, n: u64, names: &mut Names) {
        let key = match self.find(key) {
            Ok(i) => {
                self.0[i].1 = self.0[i].1.saturating_add(n);
                return;
            }
            Err(_) if self.0.len() >= MAX_NAMES_PER_HOUR => OTHER_GROUP,
            Err(_) => key,
        };
        match self.find(key) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(n),
            Err(i) => self.0.insert(i, (names.key(key), n)),
        }
    }
}

impl Serialize for CallCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Keeps the id of the latest call: by timestamp, then by id, so live
/// recording and a replay in any order agree.
fn keep_latest(slot: &mut Option<String>, slot_ts: &mut f64, id: Option<&String>, ts: f64) {
    let Some(id) = id else { return };
    let newer = match slot.as_ref() {
        None => true,
        Some(cur) => ts > *slot_ts || (ts == *slot_ts && id > cur),
    };
    if newer {
        // Reuses the held string's buffer: no allocation per call.
        match slot {
            Some(cur) => cur.clone_from(id),
            None => *slot = Some(id.clone()),
        }
        *slot_ts = ts;
    }
}

/// Where a timestamp falls: cached so the hot path rarely converts time zones.
#[derive(Debug, Clone, Copy)]
struct DayWindow {
    start: f64,
    end: f64,
    date: NaiveDate,
    /// False on a day with an offset change (DST): its hours are then not
    /// all 3600 s long, so the hour comes from the zone instead.
    uniform: bool,
}

/// All rollups of one monitor.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    /// Local days, oldest first.
    pub days: BTreeMap<NaiveDate, DayRollup>,
    /// Sessions by id.
    pub sessions: FxHashMap<String, SessionStats>,
    window: Option<DayWindow>,
    /// The newest day a record has been counted for (drives eviction).
    newest_day: Option<NaiveDate>,
    /// Group names, shared by every map.
    names: Names,
}

impl Rollups {
    /// The local (date, hour) of a timestamp.
    pub fn locate(&mut self, zone: &Zone, ts: f64) -> (NaiveDate, u8) {
        if let Some(w) = self.window {
            if ts >= w.start && ts < w.end && w.uniform {
                return (w.date, ((ts - w.start) / 3600.0) as u8);
            }
        }
        let (date, hour) = zone.hour_of(ts);
        let (start, end) = zone.day_bounds(date);
        self.window = Some(DayWindow {
            start,
            end,
            date,
            uniform: (end - start - 86_400.0).abs() < 0.5
                && zone.utc_offset_at(start) == zone.utc_offset_at(end - 1.0),
        });
        (date, hour)
    }

    /// Counts one record in its day, hour and session.
    pub fn add(
        &mut self,
        r: &UsageRecord,
        date: NaiveDate,
        hour: u8,
        currency: Currency,
        priced: bool,
    ) {
        let n = &mut self.names;
        let k = Keys::of(r);
        let day = self.days.entry(date).or_default();
        day.version += 1;
        day.day.add(r, &k, (currency, priced), DAY_CAPS, n);
        day.hours
            .entry(hour)
            .or_default()
            .add(r, &k, (currency, priced), HOUR_CAPS, n);
        day.at_pair(&r.function, &r.model, n, |models, s| {
            models.add_record_at(s, r, currency, priced)
        });
        if let Some(sid) = &r.session_id {
            let s = match self.sessions.get_mut(sid.as_str()) {
                // A known session (the common case): one lookup.
                Some(s) => s,
                None => {
                    let sid = capped_key(&self.sessions, sid, MAX_SESSIONS);
                    slot(&mut self.sessions, sid, || SessionStats {
                        session_id: sid.to_owned(),
                        first_call: r.timestamp,
                        last_call: r.timestamp,
                        ..SessionStats::default()
                    })
                }
            };
            s.stats.add(r, currency, priced);
            s.first_call = s.first_call.min(r.timestamp);
            s.last_call = s.last_call.max(r.timestamp);
            s.models.bump_by(&r.model, 1, &mut self.names);
            s.functions.bump_by(&r.function, 1, &mut self.names);
            keep_latest(
                &mut s.anchor_id,
                &mut s.id_times.0,
                r.anchor_id.as_ref(),
                r.timestamp,
            );
            keep_latest(
                &mut s.user_id,
                &mut s.id_times.1,
                r.user_id.as_ref(),
                r.timestamp,
            );
        }
    }

    /// Applies a cost correction (an [`Adjustment`]) to the groups its call
    /// was counted in: its day, hour, function × model pair and session.
    /// Call and token counts never change. A call whose day is not held
    /// (outside the retention window) is left alone: returns false.
    ///
    /// The one place corrections reach the rollups, from replay and from
    /// the follower alike.
    pub fn adjust(&mut self, zone: &Zone, a: &Adjustment) -> bool {
        let (date, hour) = self.locate(zone, a.timestamp);
        let Some(day) = self.days.get_mut(&date) else {
            return false;
        };
        let n = &mut self.names;
        day.version += 1;
        day.day.adjust(a, DAY_CAPS, n);
        day.hours.entry(hour).or_default().adjust(a, HOUR_CAPS, n);
        day.with_pair(&a.function, &a.model, n, |g| g.adjust(a));
        if let Some(sid) = &a.session_id {
            // A session beyond the cap was counted under OTHER_GROUP.
            let key =
                if self.sessions.contains_key(sid.as_str()) || self.sessions.len() < MAX_SESSIONS {
                    sid.as_str()
                } else {
                    OTHER_GROUP
                };
            if let Some(s) = self.sessions.get_mut(key) {
                s.stats.adjust(a);
            }
        }
        true
    }

    /// Adds another set of rollups (e.g. one replayed file) into this one.
    pub fn merge(&mut self, o: &Rollups) {
        for (d, day) in &o.days {
            self.days.entry(*d).or_default().merge(day, &mut self.names);
        }
        for (id, s) in &o.sessions {
            match self.sessions.get_mut(id) {
                Some(mine) => {
                    mine.stats.merge(&s.stats);
                    mine.first_call = mine.first_call.min(s.first_call);
                    mine.last_call = mine.last_call.max(s.last_call);
                    for (k, v) in s.models.iter() {
                        mine.models.bump_by(k, v, &mut self.names);
                    }
                    for (k, v) in s.functions.iter() {
                        mine.functions.bump_by(k, v, &mut self.names);
                    }
                    keep_latest(
                        &mut mine.anchor_id,
                        &mut mine.id_times.0,
                        s.anchor_id.as_ref(),
                        s.id_times.0,
                    );
                    keep_latest(
                        &mut mine.user_id,
                        &mut mine.id_times.1,
                        s.user_id.as_ref(),
                        s.id_times.1,
                    );
                }
                None => {
                    if self.sessions.len() < MAX_SESSIONS {
                        self.sessions.insert(id.clone(), s.clone());
                    } else {
                        let mut other = s.clone();
                        other.session_id = OTHER_GROUP.to_owned();
                        let o = Rollups {
                            sessions: [(OTHER_GROUP.to_owned(), other)].into_iter().collect(),
                            ..Rollups::default()
                        };
                        if self.sessions.contains_key(OTHER_GROUP) {
                            self.merge(&o);
                        } else {
                            self.sessions.extend(o.sessions);
                        }
                    }
                }
            }
        }
    }

    /// Adds `loaded`, history read while these rollups counted live
    /// records, into them (the loaded side, usually the bigger, is kept
    /// and the live one merged into it). Callers that cache over day
    /// versions drop their caches after.
    pub fn absorb(&mut self, loaded: Rollups) {
        let newest = self.newest_day.max(loaded.newest_day);
        let live = std::mem::replace(self, loaded);
        self.merge(&live);
        self.newest_day = newest;
        self.window = None;
        if let Some(newest) = newest {
            self.freeze_before(newest);
        }
    }

    /// Freezes the group maps of every day before `date` (past days: see
    /// [`GroupMap::freeze`]).
    pub fn freeze_before(&mut self, date: NaiveDate) {
        for day in self.days.range_mut(..date).map(|(_, d)| d) {
            day.freeze();
        }
    }

    /// Groups and sessions held in memory (what a flood of ids costs).
    pub fn group_count(&self) -> usize {
        self.days
            .values()
            .map(DayRollup::group_count)
            .sum::<usize>()
            + self.sessions.len()
    }

    /// Drops days before `keep_from` and sessions whose last call is older
    /// than `cutoff_ts`.
    pub fn evict(&mut self, keep_from: NaiveDate, cutoff_ts: f64) {
        self.days = self.days.split_off(&keep_from);
        self.sessions.retain(|_, s| s.last_call >= cutoff_ts);
        self.names.collect_garbage();
    }

    /// Notes the day of a live record; true when it is a new newest day
    /// (time to evict days that fell out of the retention window).
    pub fn note_day(&mut self, date: NaiveDate) -> bool {
        match self.newest_day {
            Some(d) if d >= date => false,
            _ => {
                self.newest_day = Some(date);
                // The days before are past: pack their maps tight.
                self.freeze_before(date);
                true
            }
        }
    }

    /// Counts `g`, one model × function group of the local day `date`
    /// counted elsewhere, in the day's totals, model, function and pair
    /// groups (see [`crate::DayGroups`]).
    pub(crate) fn add_model_group(
        &mut self,
        date: NaiveDate,
        model: &str,
        function: &str,
        g: &GroupStats,
    ) {
        let n = &mut self.names;
        let day = self.days.entry(date).or_default();
        day.version += 1;
        day.day.totals.merge(g);
        let merge = |mine: &mut GroupStats| mine.merge(g);
        day.day.by_model.update(model, MAX_NAMES_PER_DAY, n, merge);
        day.day
            .by_function
            .update(function, MAX_NAMES_PER_DAY, n, merge);
        day.with_pair(function, model, n, merge);
    }

    /// Counts `g`, one user's (`user`) or anchor's group of `date` counted
    /// elsewhere.
    pub(crate) fn add_id_group(&mut self, date: NaiveDate, user: bool, id: &str, g: &GroupStats) {
        let day = self.days.entry(date).or_default();
        day.version += 1;
        let map = if user {
            &mut day.day.by_user
        } else {
            &mut day.day.by_anchor
        };
        map.update(id, MAX_IDS_PER_DAY, &mut self.names, |mine| mine.merge(g));
    }

    /// Total records counted.
    pub fn record_count(&self) -> u64 {
        self.days.values().map(|d| d.day.totals.calls).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_keep_the_caps() {
        // A known group is found in one lookup, a new one beyond the cap
        // still goes to OTHER_GROUP.
        let mut n = Names::default();
        let mut m = GroupMap::default();
        for key in ["a", "b", "a", "c"] {
            m.update(key, 1, &mut n, |g| g.calls += 1);
        }
        assert_eq!(m.get("a").unwrap().calls, 2);
        assert_eq!(m.get(OTHER_GROUP).unwrap().calls, 2);
        assert!(!m.contains_key("b"));

        let mut day = DayRollup::default();
        for i in 0..MAX_NAMES_PER_DAY {
            day.with_pair("f", &format!("m{i}"), &mut n, |g| g.calls += 1);
        }
        day.with_pair("f", "m0", &mut n, |g| g.calls += 1);
        day.with_pair("g", "new", &mut n, |g| g.calls += 1);
        day.with_pair("f", "new", &mut n, |g| g.calls += 1);
        assert_eq!(day.by_function_model["f"].get("m0").unwrap().calls, 2);
        assert_eq!(
            day.by_function_model[OTHER_GROUP]
                .get(OTHER_GROUP)
                .unwrap()
                .calls,
            2
        );
        assert!(!day.by_function_model.contains_key("g"));
        assert!(!day.by_function_model["f"].contains_key("new"));
        assert_eq!(day.pairs, MAX_NAMES_PER_DAY + 1);
    }

    #[test]
    fn an_adjustment_moves_cost_in_every_group_and_never_counts() {
        let zone: Zone = "+08:00".parse().unwrap();
        let mut rollups = Rollups::default();
        let r = UsageRecord {
            timestamp: 1_761_403_494.5,
            model: "new-model".into(),
            function: "f".into(),
            user_id: Some("u".into()),
            anchor_id: Some("a".into()),
            session_id: Some("s".into()),
            tags: vec!["t".into(), "t".into()],
            input_tokens: 10,
            output_tokens: 5,
            total_tokens: 15,
            ..UsageRecord::default()
        };
        let (date, hour) = rollups.locate(&zone, r.timestamp);
        rollups.add(&r, date, hour, Currency::CNY, false);
        let usd = Money::from_nanos(300);
        let a = Adjustment::of(
            "usage_2025-10-25.jsonl",
            0,
            &r,
            (Money::ZERO, Currency::CNY, false),
            (usd, Currency::USD),
            "test".into(),
            chrono::DateTime::from_timestamp(0, 0).unwrap(),
        );
        assert!(rollups.adjust(&zone, &a));
        let day = &rollups.days[&date];
        let groups = [
            day.day.totals.clone(),
            day.day.by_model.get("new-model").unwrap(),
            day.day.by_function.get("f").unwrap(),
            day.day.by_user.get("u").unwrap(),
            day.day.by_anchor.get("a").unwrap(),
            day.day.by_tag.get("t").unwrap(),
            day.hours[&hour].totals.clone(),
            day.by_function_model["f"].get("new-model").unwrap(),
            rollups.sessions["s"].stats.clone(),
        ];
        for g in groups {
            assert_eq!(g.calls, 1);
            assert_eq!(g.total_tokens, 15);
            assert_eq!(g.unpriced_calls, 0);
            // The zero CNY entry is gone: the call is a USD call now.
            assert_eq!(
                g.cost.iter().collect::<Vec<_>>(),
                vec![(Currency::USD, usd)]
            );
        }
        // A call of a day not held is left alone.
        let mut other = a.clone();
        other.timestamp += 40.0 * 86_400.0;
        assert!(!rollups.adjust(&zone, &other));
        assert_eq!(rollups.days.len(), 1);
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = DurationHistogram::default();
        for ms in 1..=1000 {
            h.add(ms as f64);
        }
        let p95 = h.quantile_ms(0.95);
        assert!((950.0..=950.0 * 1.19).contains(&p95), "p95 {p95}");
        assert!((h.mean_ms() - 500.5).abs() < 1e-9);
        assert_eq!(DurationHistogram::default().quantile_ms(0.95), 0.0);
    }

    #[test]
    fn buckets_added_by_count_equal_durations_added_one_by_one() {
        let durations = [
            0.0,
            -3.0,
            f64::NAN,
            f64::INFINITY,
            1.0,
            1.5,
            2.0,
            950.0,
            1e12,
        ];
        let mut one_by_one = DurationHistogram::default();
        let mut by_bucket = DurationHistogram::default();
        for ms in durations {
            one_by_one.add(ms);
            by_bucket.add_to_bucket(DurationHistogram::bucket_of(ms), 1);
        }
        by_bucket.sum_ms = one_by_one.sum_ms;
        assert_eq!(by_bucket, one_by_one);
        assert_eq!(
            durations.map(DurationHistogram::bucket_of),
            [0, 0, 0, 0, 0, 3, 4, 40, 95]
        );
        // A bucket past the last counts in the last.
        by_bucket.add_to_bucket(500, 1);
        assert_eq!(by_bucket.quantile_ms(1.0), (95.0f64 / 4.0).exp2());
    }
}
