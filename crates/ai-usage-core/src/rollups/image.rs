//! The rollups as a serde image, for the snapshot on disk: groups as lists
//! of (name, counters) instead of hash maps, every private field included.
//! Writing borrows the live strings (no copy of the rollups); reading
//! builds owned rollups that count exactly as the replay that made them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::{
    Bucket, DayRollup, DurationHistogram, GroupMap, GroupStats, Rollups, SessionStats, HIST_BUCKETS,
};
use crate::money::{Costs, Currency, Money};

/// Counters of one group.
#[derive(Serialize, Deserialize)]
struct Stats {
    counts: [u64; 9],
    cost: Vec<([u8; 3], i64)>,
}

impl From<&GroupStats> for Stats {
    fn from(g: &GroupStats) -> Stats {
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
            cost: g
                .cost
                .iter()
                .map(|(c, m)| {
                    let mut code = [0u8; 3];
                    code.copy_from_slice(&c.code().as_bytes()[..3]);
                    (code, m.nanos())
                })
                .collect(),
        }
    }
}

impl Stats {
    fn into_group(self) -> Result<GroupStats, String> {
        let [calls, successful_calls, input_tokens, output_tokens, total_tokens, cached_input_tokens, reasoning_tokens, cache_write_tokens, unpriced_calls] =
            self.counts;
        let mut cost = Costs::default();
        for (code, nanos) in self.cost {
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

/// A group map written as a list of (name, counters).
struct Groups<'a>(&'a GroupMap);

impl Serialize for Groups<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            seq.serialize_element(&(k.as_str(), Stats::from(v)))?;
        }
        seq.end()
    }
}

fn groups_from(list: Vec<(String, Stats)>) -> Result<GroupMap, String> {
    let mut map = GroupMap::default();
    map.reserve(list.len());
    for (k, v) in list {
        map.insert(k, v.into_group()?);
    }
    Ok(map)
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
    by_model: Vec<(String, Stats)>,
    by_function: Vec<(String, Stats)>,
    by_user: Vec<(String, Stats)>,
    by_anchor: Vec<(String, Stats)>,
    by_tag: Vec<(String, Stats)>,
    durations: Histogram,
}

impl<'a> From<&'a Bucket> for BucketRef<'a> {
    fn from(b: &'a Bucket) -> BucketRef<'a> {
        BucketRef {
            totals: Stats::from(&b.totals),
            by_model: Groups(&b.by_model),
            by_function: Groups(&b.by_function),
            by_user: Groups(&b.by_user),
            by_anchor: Groups(&b.by_anchor),
            by_tag: Groups(&b.by_tag),
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
            by_model: groups_from(self.by_model)?,
            by_function: groups_from(self.by_function)?,
            by_user: groups_from(self.by_user)?,
            by_anchor: groups_from(self.by_anchor)?,
            by_tag: groups_from(self.by_tag)?,
            durations: DurationHistogram {
                buckets: self.durations.buckets,
                sum_ms: self.durations.sum_ms,
                count: self.durations.count,
            },
        })
    }
}

/// function → model pairs of a day.
struct Pairs<'a>(&'a rustc_hash::FxHashMap<String, GroupMap>);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (f, models) in self.0 {
            seq.serialize_element(&(f.as_str(), Groups(models)))?;
        }
        seq.end()
    }
}

/// Hours of a day.
struct Hours<'a>(&'a BTreeMap<u8, Bucket>);

impl Serialize for Hours<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (h, b) in self.0 {
            seq.serialize_element(&(*h, BucketRef::from(b)))?;
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
    pairs: Vec<(String, Vec<(String, Stats)>)>,
}

#[derive(Serialize)]
struct SessionRef<'a> {
    id: &'a str,
    stats: Stats,
    first_call: f64,
    last_call: f64,
    models: &'a BTreeMap<String, u64>,
    functions: &'a BTreeMap<String, u64>,
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

struct Days<'a>(&'a BTreeMap<NaiveDate, DayRollup>);

impl Serialize for Days<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (d, day) in self.0 {
            seq.serialize_element(&DayRef {
                date: chrono::Datelike::num_days_from_ce(d),
                day: BucketRef::from(&day.day),
                hours: Hours(&day.hours),
                pairs: Pairs(&day.by_function_model),
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

/// The rollups, borrowed for writing.
#[derive(Serialize)]
pub(crate) struct RollupsRef<'a> {
    days: Days<'a>,
    sessions: Sessions<'a>,
}

impl<'a> From<&'a Rollups> for RollupsRef<'a> {
    fn from(r: &'a Rollups) -> RollupsRef<'a> {
        RollupsRef {
            days: Days(&r.days),
            sessions: Sessions(&r.sessions),
        }
    }
}

/// The rollups as read back.
#[derive(Deserialize)]
pub(crate) struct RollupsOwned {
    days: Vec<DayOwned>,
    sessions: Vec<SessionOwned>,
}

impl RollupsOwned {
    /// The rollups this image holds; the error says what is inconsistent.
    pub(crate) fn into_rollups(self) -> Result<Rollups, String> {
        let mut out = Rollups::default();
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
                let models = groups_from(models)?;
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
                    models: s.models,
                    functions: s.functions,
                    anchor_id: s.anchor_id,
                    user_id: s.user_id,
                    id_times: s.id_times,
                },
            );
        }
        Ok(out)
    }
}
