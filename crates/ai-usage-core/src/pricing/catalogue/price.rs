//! Prices of one model: rates, cliff tiers, conditional price sets, and the
//! exact cost of a usage in nano-units.
//!
//! # Units
//!
//! A rate is an integer count of 1e-18 currency units per million tokens, so
//! `tokens × rate` is the cost in 1e-24 units, exactly, in `i128` (18 decimals
//! cover every price of the snapshot, float artefacts such as
//! `0.08333333333333334` included). `requests_kcount` is kept in 1e-18 units
//! per thousand requests.
//!
//! # Rounding
//!
//! Each part (uncached input, cache read, …, request fee) is converted to
//! nano-units (1e-9) once, rounding half up; the total is the sum of the
//! rounded parts, so the parts always add up to the total.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};

use super::data::{RawConstraint, RawPrice, RawPriceSet, RawPrices};
use super::{CatalogueError, CatalogueUsage, PriceError};
use crate::pricing::rate::{Band, Rate};

/// 1e-24 units (token × rate) per nano-unit.
const SUB_PER_NANO: i128 = 1_000_000_000_000_000;
/// 1e-21 units (request × per-kilo-request rate) per nano-unit.
const SUB_PER_NANO_REQUESTS: i128 = 1_000_000_000_000;

/// The price of one part of a call (input, output, cache read, …): one
/// [`Rate`], or cliff tiers of rates.
#[derive(Debug, Clone)]
pub(crate) enum PartRate {
    Flat(Rate),
    /// Cliff tiers sorted by `start`: once the call's input tokens exceed a
    /// tier's start, every token of the part pays that tier's price.
    Tiered {
        base: Rate,
        tiers: Box<[(u64, Rate)]>,
    },
}

/// A catalogue decimal (never negative: the parser refuses negatives) as a
/// [`Rate`] per million tokens.
fn rate_of(e18: i128) -> Rate {
    Rate::from_e18_per_mtok(u128::try_from(e18).unwrap_or(0))
}

/// A [`Rate`] in the 1e-18-per-million unit of the cost arithmetic here.
fn e18(rate: Rate) -> i128 {
    i128::try_from(rate.e18_per_mtok()).unwrap_or(i128::MAX)
}

impl PartRate {
    fn from_raw(raw: &RawPrice) -> PartRate {
        match raw {
            RawPrice::Flat(d) => PartRate::Flat(rate_of(d.0)),
            RawPrice::Tiered(t) => {
                let mut tiers: Vec<(u64, Rate)> = t
                    .tiers
                    .iter()
                    .map(|x| (x.start, rate_of(x.price.0)))
                    .collect();
                tiers.sort_by_key(|&(start, _)| start);
                PartRate::Tiered {
                    base: rate_of(t.base.0),
                    tiers: tiers.into(),
                }
            }
        }
    }

    /// The rate in force for a call with `input_tokens` input tokens in all.
    pub(crate) fn per_mtok(&self, input_tokens: u64) -> i128 {
        match self {
            PartRate::Flat(_) | PartRate::Tiered { .. } => e18(self.rate_at(input_tokens)),
        }
    }
}

/// One set of prices (one entry of a conditional list, or the only one).
#[derive(Debug, Clone, Default)]
pub(crate) struct PriceSet {
    pub input: Option<PartRate>,
    pub cache_write: Option<PartRate>,
    pub cache_read: Option<PartRate>,
    pub output: Option<PartRate>,
    pub input_audio: Option<PartRate>,
    pub cache_audio_read: Option<PartRate>,
    pub output_audio: Option<PartRate>,
    /// Per thousand requests, 1e-18 units.
    pub requests_kcount: Option<i128>,
}

impl PriceSet {
    fn from_raw(raw: &RawPriceSet) -> PriceSet {
        let r = |p: &Option<RawPrice>| p.as_ref().map(PartRate::from_raw);
        PriceSet {
            input: r(&raw.input_mtok),
            cache_write: r(&raw.cache_write_mtok),
            cache_read: r(&raw.cache_read_mtok),
            output: r(&raw.output_mtok),
            input_audio: r(&raw.input_audio_mtok),
            cache_audio_read: r(&raw.cache_audio_read_mtok),
            output_audio: r(&raw.output_audio_mtok),
            requests_kcount: raw.requests_kcount.map(|d| d.0),
        }
    }
}

/// When a price set applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Constraint {
    Always,
    /// From this UTC date on (inclusive).
    StartDate(NaiveDate),
    /// Every day from `start` (inclusive) to `end` (exclusive), UTC; a window
    /// with `start > end` wraps midnight, one with `start == end` is empty.
    Daily {
        start: NaiveTime,
        end: NaiveTime,
    },
}

impl Constraint {
    fn active(&self, at: DateTime<Utc>) -> bool {
        match self {
            Constraint::Always => true,
            Constraint::StartDate(d) => at.date_naive() >= *d,
            Constraint::Daily { start, end } => {
                let t = at.time();
                if start <= end {
                    *start <= t && t < *end
                } else {
                    t >= *start || t < *end
                }
            }
        }
    }
}

/// All price sets of a model.
#[derive(Debug, Clone)]
pub(crate) struct ModelPrices {
    sets: Box<[(Constraint, PriceSet)]>,
}

impl ModelPrices {
    pub(crate) fn from_raw(
        raw: &RawPrices,
        what: &dyn fmt::Display,
    ) -> Result<ModelPrices, CatalogueError> {
        let sets = match raw {
            RawPrices::Single(p) => vec![(Constraint::Always, PriceSet::from_raw(p))],
            RawPrices::Conditional(list) => {
                if list.is_empty() {
                    return Err(CatalogueError::Invalid {
                        what: what.to_string(),
                        reason: "empty list of conditional prices".to_owned(),
                    });
                }
                let mut sets = Vec::with_capacity(list.len());
                for c in list {
                    let constraint = match &c.constraint {
                        None => Constraint::Always,
                        Some(RawConstraint::StartDate { start_date }) => {
                            Constraint::StartDate(*start_date)
                        }
                        Some(RawConstraint::TimeOfDay {
                            start_time,
                            end_time,
                        }) => Constraint::Daily {
                            start: parse_utc_time(start_time, what)?,
                            end: parse_utc_time(end_time, what)?,
                        },
                    };
                    sets.push((constraint, PriceSet::from_raw(&c.prices)));
                }
                sets
            }
        };
        Ok(ModelPrices { sets: sets.into() })
    }

    /// The price set in force at `at`: the last one whose constraint holds,
    /// else the first (the schema's rule).
    pub(crate) fn at(&self, at: DateTime<Utc>) -> &PriceSet {
        let chosen = self
            .sets
            .iter()
            .rev()
            .find(|(c, _)| c.active(at))
            .or(self.sets.first());
        match chosen {
            Some((_, set)) => set,
            // `from_raw` never builds an empty list.
            None => &EMPTY,
        }
    }

    /// Every price set with its constraint (tests, diagnostics).
    #[cfg(test)]
    pub(crate) fn sets(&self) -> &[(Constraint, PriceSet)] {
        &self.sets
    }
}

/// One dated (or timed) set of a model's prices, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    /// When the set applies: `"always"`, `"from 2025-05-01"` (UTC) or
    /// `"daily 16:30:00-00:30:00 UTC"`.
    pub when: String,
    /// (field, price) pairs in the catalogue's terms: `input_mtok` etc. are
    /// exact decimal prices per million tokens, tiered ones written
    /// `"3 (above 200000: 6)"`; `requests_kcount` per thousand requests.
    pub prices: Vec<(&'static str, String)>,
}

/// 1e-18 units as an exact decimal without trailing zeros.
fn decimal_e18(v: i128) -> String {
    const SCALE: i128 = 1_000_000_000_000_000_000;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let (int, frac) = (a / SCALE as u128, a % SCALE as u128);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let digits = format!("{frac:018}");
    format!("{sign}{int}.{}", digits.trim_end_matches('0'))
}

impl PartRate {
    fn describe(&self) -> String {
        match self {
            PartRate::Flat(r) => decimal_e18(e18(*r)),
            PartRate::Tiered { base, tiers } => {
                let tiers: Vec<String> = tiers
                    .iter()
                    .map(|(start, p)| format!("above {start}: {}", decimal_e18(e18(*p))))
                    .collect();
                format!("{} ({})", decimal_e18(e18(*base)), tiers.join(", "))
            }
        }
    }
}

impl ModelPrices {
    /// Every price set with when it applies, in catalogue order.
    pub(crate) fn history(&self) -> Vec<PriceEntry> {
        self.sets
            .iter()
            .map(|(c, set)| {
                let when = match c {
                    Constraint::Always => "always".to_owned(),
                    Constraint::StartDate(d) => format!("from {d}"),
                    Constraint::Daily { start, end } => format!("daily {start}-{end} UTC"),
                };
                let mut prices = Vec::new();
                for (name, rate) in [
                    ("input_mtok", &set.input),
                    ("cache_write_mtok", &set.cache_write),
                    ("cache_read_mtok", &set.cache_read),
                    ("output_mtok", &set.output),
                    ("input_audio_mtok", &set.input_audio),
                    ("cache_audio_read_mtok", &set.cache_audio_read),
                    ("output_audio_mtok", &set.output_audio),
                ] {
                    if let Some(r) = rate {
                        prices.push((name, r.describe()));
                    }
                }
                if let Some(k) = set.requests_kcount {
                    prices.push(("requests_kcount", decimal_e18(k)));
                }
                PriceEntry { when, prices }
            })
            .collect()
    }
}

impl PartRate {
    /// The input sizes at which the rate changes.
    fn starts(&self) -> &[(u64, Rate)] {
        match self {
            PartRate::Flat(_) => &[],
            PartRate::Tiered { tiers, .. } => tiers,
        }
    }

    /// The rate for a call of `input_tokens` input tokens.
    fn rate_at(&self, input_tokens: u64) -> Rate {
        match self {
            PartRate::Flat(r) => *r,
            PartRate::Tiered { base, tiers } => tiers
                .iter()
                .rev()
                .find(|&&(start, _)| input_tokens > start)
                .map_or(*base, |&(_, price)| price),
        }
    }
}

impl PriceSet {
    /// The text prices of this set in the table's terms: the bands of a
    /// price chosen by the call's input size (one unbounded band when no
    /// part is tiered). `None` without an input or output price.
    pub(crate) fn as_bands(&self) -> Option<Vec<Band>> {
        let (input, output) = (self.input.as_ref()?, self.output.as_ref()?);
        let parts = [
            Some(input),
            Some(output),
            self.cache_read.as_ref(),
            self.cache_write.as_ref(),
        ];
        let mut edges: Vec<u64> = parts
            .iter()
            .flatten()
            .flat_map(|p| p.starts().iter().map(|&(s, _)| s))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        // A band ends at an edge (inclusive: the cliff applies above it).
        let band = |up_to: Option<u64>, at: u64| Band {
            up_to,
            input: input.rate_at(at),
            output: output.rate_at(at),
            cached_input: self.cache_read.as_ref().map(|r| r.rate_at(at)),
            cache_write: self.cache_write.as_ref().map(|r| r.rate_at(at)),
        };
        let mut bands: Vec<Band> = edges.iter().map(|&e| band(Some(e), e)).collect();
        bands.push(band(None, u64::MAX));
        Some(bands)
    }
}

static EMPTY: PriceSet = PriceSet {
    input: None,
    cache_write: None,
    cache_read: None,
    output: None,
    input_audio: None,
    cache_audio_read: None,
    output_audio: None,
    requests_kcount: None,
};

/// Parses `HH:MM:SS[.f]` with an optional `Z` or `±HH:MM` offset into UTC.
fn parse_utc_time(text: &str, what: &dyn fmt::Display) -> Result<NaiveTime, CatalogueError> {
    let bad = || CatalogueError::Invalid {
        what: what.to_string(),
        reason: format!("time {text:?} is not HH:MM:SS with an optional offset"),
    };
    let (clock, offset_secs) = if let Some(c) = text.strip_suffix('Z') {
        (c, 0i64)
    } else if text.len() > 6 && matches!(text.as_bytes()[text.len() - 6], b'+' | b'-') {
        let (c, off) = text.split_at(text.len() - 6);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        (c, sign * (h * 3600 + m * 60))
    } else {
        (text, 0)
    };
    let local = NaiveTime::parse_from_str(clock, "%H:%M:%S%.f").map_err(|_| bad())?;
    let secs = (i64::from(local.num_seconds_from_midnight()) - offset_secs).rem_euclid(86_400);
    let secs = u32::try_from(secs).map_err(|_| bad())?;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, local.nanosecond()).ok_or_else(bad)
}

/// The cost of one part of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartCost {
    /// Tokens of this part (for [`PartCosts::requests`], the request count).
    pub units: u64,
    /// Cost in nano-units (1e-9) of the quote's currency, rounded half up.
    pub nanos: i64,
}

/// A call's cost split by what was charged. The token parts are disjoint: the
/// input parts add up to the usage's `input_tokens`, the output parts to its
/// `output_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartCosts {
    /// Text input tokens neither read from nor written to the cache.
    pub uncached_input: PartCost,
    /// Text tokens read from the cache.
    pub cache_read: PartCost,
    /// Tokens written to the cache.
    pub cache_write: PartCost,
    /// Audio input tokens not read from the cache.
    pub input_audio: PartCost,
    /// Audio tokens read from the cache.
    pub cache_audio_read: PartCost,
    /// Text output tokens (reasoning tokens included).
    pub output: PartCost,
    /// Audio output tokens.
    pub output_audio: PartCost,
    /// Per-request fee (`requests_kcount`).
    pub requests: PartCost,
}

impl PartCosts {
    /// The parts in a fixed order, for summing and display.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, PartCost)> {
        [
            ("uncached_input", self.uncached_input),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
            ("input_audio", self.input_audio),
            ("cache_audio_read", self.cache_audio_read),
            ("output", self.output),
            ("output_audio", self.output_audio),
            ("requests", self.requests),
        ]
        .into_iter()
    }
}

/// Splits `usage` into disjoint parts and prices each with `set`.
///
/// A part whose own price is missing pays the undiscounted price of the same
/// kind of token (cache read or write → input; cached audio → input audio →
/// input; output audio → output): reporting a missing discount as free would
/// under-report spending. A part with no applicable price at all costs 0.
pub(crate) fn cost(set: &PriceSet, usage: &CatalogueUsage) -> Result<PartCosts, PriceError> {
    let u = usage;
    let inconsistent = |reason: &'static str| PriceError::InconsistentUsage(reason);
    let uncached_audio = u
        .input_audio_tokens
        .checked_sub(u.cache_audio_read_tokens)
        .ok_or(inconsistent(
            "cache_audio_read_tokens exceeds input_audio_tokens",
        ))?;
    let cached_text = u
        .cache_read_tokens
        .checked_sub(u.cache_audio_read_tokens)
        .ok_or(inconsistent(
            "cache_audio_read_tokens exceeds cache_read_tokens",
        ))?;
    let uncached_text = u
        .input_tokens
        .checked_sub(uncached_audio)
        .and_then(|n| n.checked_sub(u.cache_read_tokens))
        .and_then(|n| n.checked_sub(u.cache_write_tokens))
        .ok_or(inconsistent(
            "input_tokens is smaller than its cache-read, cache-write and audio parts",
        ))?;
    let text_output = u
        .output_tokens
        .checked_sub(u.output_audio_tokens)
        .ok_or(inconsistent("output_audio_tokens exceeds output_tokens"))?;

    let total_input = u.input_tokens;
    let input = set.input.as_ref();
    let part = |tokens: u64, rate: Option<&PartRate>| -> Result<PartCost, PriceError> {
        let nanos = match rate {
            Some(r) if tokens > 0 => token_nanos(tokens, r.per_mtok(total_input))?,
            _ => 0,
        };
        Ok(PartCost {
            units: tokens,
            nanos,
        })
    };
    let requests = PartCost {
        units: u64::from(u.requests),
        nanos: match set.requests_kcount {
            Some(k) if u.requests > 0 => request_nanos(u.requests, k)?,
            _ => 0,
        },
    };
    Ok(PartCosts {
        uncached_input: part(uncached_text, input)?,
        cache_read: part(cached_text, set.cache_read.as_ref().or(input))?,
        cache_write: part(u.cache_write_tokens, set.cache_write.as_ref().or(input))?,
        input_audio: part(uncached_audio, set.input_audio.as_ref().or(input))?,
        cache_audio_read: part(
            u.cache_audio_read_tokens,
            set.cache_audio_read
                .as_ref()
                .or(set.input_audio.as_ref())
                .or(input),
        )?,
        output: part(text_output, set.output.as_ref())?,
        output_audio: part(
            u.output_audio_tokens,
            set.output_audio.as_ref().or(set.output.as_ref()),
        )?,
        requests,
    })
}

/// `tokens × rate` (1e-24 units) to nano-units, half up.
fn token_nanos(tokens: u64, rate_per_mtok: i128) -> Result<i64, PriceError> {
    let sub = i128::from(tokens)
        .checked_mul(rate_per_mtok)
        .ok_or(PriceError::Overflow)?;
    round_to_nanos(sub, SUB_PER_NANO)
}

/// `requests × rate per thousand` (1e-21 units) to nano-units, half up.
fn request_nanos(requests: u32, rate_per_k: i128) -> Result<i64, PriceError> {
    let sub = i128::from(requests)
        .checked_mul(rate_per_k)
        .ok_or(PriceError::Overflow)?;
    round_to_nanos(sub, SUB_PER_NANO_REQUESTS)
}

fn round_to_nanos(sub: i128, per_nano: i128) -> Result<i64, PriceError> {
    // Rates and counts are never negative, so half up is (x + d/2) / d.
    let nanos = sub.checked_add(per_nano / 2).ok_or(PriceError::Overflow)? / per_nano;
    i64::try_from(nanos).map_err(|_| PriceError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const USD: i128 = 1_000_000_000_000_000_000; // 1e18: one unit per million tokens

    fn flat(units_per_mtok: i128) -> Option<PartRate> {
        Some(PartRate::Flat(rate_of(units_per_mtok)))
    }

    fn tiered(base: i128, tiers: &[(u64, i128)]) -> PartRate {
        PartRate::Tiered {
            base: rate_of(base),
            tiers: tiers.iter().map(|&(s, p)| (s, rate_of(p))).collect(),
        }
    }

    fn usage(input: u64, output: u64) -> CatalogueUsage {
        CatalogueUsage {
            input_tokens: input,
            output_tokens: output,
            ..CatalogueUsage::default()
        }
    }

    #[test]
    fn ten_embedding_tokens_cost_200_nano_usd() {
        // text-embedding-3-small: $0.02 / Mtok → 10 tokens = $0.0000002.
        let set = PriceSet {
            input: flat(USD / 50),
            ..PriceSet::default()
        };
        let parts = cost(&set, &usage(10, 0)).expect("consistent usage");
        assert_eq!(
            parts.uncached_input,
            PartCost {
                units: 10,
                nanos: 200
            }
        );
    }

    #[test]
    fn rounding_is_half_up_per_part() {
        // $0.0000015 / Mtok: one token = 0.0015 nano → 0; 333 tokens = 0.4995 → 0;
        // 334 tokens = 0.501 → 1; 1000 tokens = 1.5 → 2.
        let set = PriceSet {
            input: flat(USD * 15 / 10_000_000),
            output: flat(USD * 15 / 10_000_000),
            ..PriceSet::default()
        };
        let n = |i| cost(&set, &usage(i, 0)).expect("ok").uncached_input.nanos;
        assert_eq!(n(1), 0);
        assert_eq!(n(333), 0);
        assert_eq!(n(334), 1);
        assert_eq!(n(1000), 2);
        // Parts round separately: 1000 input + 1000 output = 2 + 2, not round(3.0).
        let p = cost(&set, &usage(1000, 1000)).expect("ok");
        assert_eq!((p.uncached_input.nanos, p.output.nanos), (2, 2));
    }

    #[test]
    fn cliff_tier_prices_every_token_once_crossed() {
        let cliff = tiered(3 * USD, &[(200_000, 6 * USD)]);
        assert_eq!(cliff.per_mtok(199_999), 3 * USD);
        assert_eq!(cliff.per_mtok(200_000), 3 * USD, "crossing means exceeding");
        assert_eq!(cliff.per_mtok(200_001), 6 * USD);
        let three = tiered(USD, &[(100, 2 * USD), (1000, 3 * USD)]);
        assert_eq!(three.per_mtok(50), USD);
        assert_eq!(three.per_mtok(101), 2 * USD);
        assert_eq!(three.per_mtok(1001), 3 * USD);
    }

    #[test]
    fn tiers_follow_total_input_for_every_part() {
        // Output and cache reads switch tier by the call's input size.
        let set = PriceSet {
            input: Some(tiered(3 * USD, &[(200_000, 6 * USD)])),
            cache_read: Some(tiered(3 * USD / 10, &[(200_000, 6 * USD / 10)])),
            output: Some(tiered(15 * USD, &[(200_000, 45 * USD / 2)])),
            ..PriceSet::default()
        };
        let mut u = usage(200_001, 1_000);
        u.cache_read_tokens = 100_000;
        let p = cost(&set, &u).expect("ok");
        // 100,001 × $6/M = $0.600006; 100,000 × $0.6/M = $0.06; 1,000 × $22.5/M = $0.0225.
        assert_eq!(p.uncached_input.nanos, 600_006_000);
        assert_eq!(p.cache_read.nanos, 60_000_000);
        assert_eq!(p.output.nanos, 22_500_000);
    }

    #[test]
    fn missing_discounts_fall_back_to_the_full_price() {
        let set = PriceSet {
            input: flat(USD),
            output: flat(2 * USD),
            ..PriceSet::default()
        };
        let u = CatalogueUsage {
            input_tokens: 1_000,
            cache_read_tokens: 400,
            cache_write_tokens: 100,
            input_audio_tokens: 50,
            cache_audio_read_tokens: 20,
            output_tokens: 300,
            output_audio_tokens: 100,
            ..CatalogueUsage::default()
        };
        let p = cost(&set, &u).expect("ok");
        // Disjoint parts: 1000 = 470 text + 380 cached text + 100 written + 30 audio + 20 cached audio.
        assert_eq!(p.uncached_input.units, 470);
        assert_eq!(p.cache_read.units, 380);
        assert_eq!(p.input_audio.units, 30);
        assert_eq!(p.output.units, 200);
        let all_input: i64 = [
            p.uncached_input,
            p.cache_read,
            p.cache_write,
            p.input_audio,
            p.cache_audio_read,
        ]
        .iter()
        .map(|x| x.nanos)
        .sum();
        assert_eq!(all_input, 1_000_000, "1000 tokens at $1/M");
        assert_eq!(
            p.output.nanos + p.output_audio.nanos,
            600_000,
            "300 at $2/M"
        );
    }

    #[test]
    fn requests_kcount_is_a_per_request_fee() {
        // Perplexity sonar: $12 per thousand requests → $0.012 per request.
        let set = PriceSet {
            input: flat(USD),
            requests_kcount: Some(12 * USD),
            ..PriceSet::default()
        };
        let mut u = usage(0, 0);
        assert_eq!(
            cost(&set, &u).expect("ok").requests,
            PartCost {
                units: 1,
                nanos: 12_000_000
            }
        );
        u.requests = 3;
        assert_eq!(cost(&set, &u).expect("ok").requests.nanos, 36_000_000);
        u.requests = 0;
        assert_eq!(cost(&set, &u).expect("ok").requests.nanos, 0);
    }

    #[test]
    fn inconsistent_usage_is_an_error() {
        let set = PriceSet::default();
        let mut u = usage(10, 0);
        u.cache_read_tokens = 11;
        assert!(matches!(
            cost(&set, &u),
            Err(PriceError::InconsistentUsage(_))
        ));
        let mut u = usage(10, 5);
        u.output_audio_tokens = 6;
        assert!(matches!(
            cost(&set, &u),
            Err(PriceError::InconsistentUsage(_))
        ));
    }

    #[test]
    fn huge_usage_overflows_cleanly() {
        let set = PriceSet {
            input: flat(600 * USD),
            ..PriceSet::default()
        };
        assert!(matches!(
            cost(&set, &usage(u64::MAX, 0)),
            Err(PriceError::Overflow)
        ));
    }

    #[test]
    fn daily_windows_and_start_dates() {
        let t = |h, m| {
            Utc.with_ymd_and_hms(2026, 1, 5, h, m, 0)
                .single()
                .expect("valid")
        };
        let peak = Constraint::Daily {
            start: NaiveTime::from_hms_opt(0, 30, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(16, 30, 0).expect("valid"),
        };
        assert!(!peak.active(t(0, 29)));
        assert!(peak.active(t(0, 30)));
        assert!(peak.active(t(16, 29)));
        assert!(!peak.active(t(16, 30)));
        let night = Constraint::Daily {
            start: NaiveTime::from_hms_opt(22, 0, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(6, 0, 0).expect("valid"),
        };
        assert!(night.active(t(23, 0)) && night.active(t(5, 59)) && !night.active(t(12, 0)));
        let from = Constraint::StartDate(NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid"));
        assert!(from.active(t(0, 0)));
        assert!(!from.active(
            Utc.with_ymd_and_hms(2026, 1, 4, 23, 59, 59)
                .single()
                .expect("valid")
        ));
    }

    #[test]
    fn times_parse_with_offsets() {
        let p = |s| parse_utc_time(s, &"t").expect(s);
        assert_eq!(
            p("00:30:00Z"),
            NaiveTime::from_hms_opt(0, 30, 0).expect("valid")
        );
        assert_eq!(
            p("16:30:00"),
            NaiveTime::from_hms_opt(16, 30, 0).expect("valid")
        );
        assert_eq!(
            p("08:30:00+08:00"),
            NaiveTime::from_hms_opt(0, 30, 0).expect("valid")
        );
        assert_eq!(
            p("00:30:00+08:00"),
            NaiveTime::from_hms_opt(16, 30, 0).expect("valid")
        );
        assert!(parse_utc_time("25:00:00Z", &"t").is_err());
    }

    #[test]
    fn last_active_set_wins_else_the_first() {
        let raw: RawPrices = serde_json::from_str(
            r#"[{"constraint": {"start_date": "2026-01-01"}, "prices": {"input_mtok": 1}},
                {"constraint": {"start_date": "2026-06-01"}, "prices": {"input_mtok": 2}}]"#,
        )
        .expect("valid prices");
        let prices = ModelPrices::from_raw(&raw, &"m").expect("compiles");
        assert_eq!(prices.sets().len(), 2);
        let input_at = |y, mo, d| match prices
            .at(Utc
                .with_ymd_and_hms(y, mo, d, 12, 0, 0)
                .single()
                .expect("valid"))
            .input
        {
            Some(PartRate::Flat(r)) => e18(r),
            ref other => panic!("unexpected {other:?}"),
        };
        assert_eq!(input_at(2026, 7, 1), 2 * USD);
        assert_eq!(input_at(2026, 3, 1), USD);
        assert_eq!(input_at(2025, 3, 1), USD, "none active: the first set");
    }
}
