//! The one rate type of every price ([`Rate`]), and a band of a tiered
//! price ([`Band`]): a leaf module, so the catalogue and the table share it
//! without depending on each other.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimals of a price per 1K tokens that a [`Rate`] holds exactly.
const RATE_DECIMALS_PER_1K: usize = 21;

/// Nano-units (1e-9) per whole unit of currency.
const NANOS_PER_UNIT: u64 = 1_000_000_000;

/// A [`Rate`] counts 1e-18 units per million tokens; this many make one
/// unit per 1K tokens (1e18 × 1e3).
const RATE_PER_UNIT_PER_1K: u128 = 1_000_000_000_000_000_000_000;

/// A [`Rate`] per nano-unit per 1K tokens (1e21 / 1e9).
const RATE_PER_NANO_PER_1K: u128 = 1_000_000_000_000;

// ---------------------------------------------------------------------------
// Rate
// ---------------------------------------------------------------------------

/// An exact price per token count, the one rate type of every price: the
/// table's, a pricing file's and the genai-prices catalogue's.
///
/// It is an integer count of 1e-18 currency units per million tokens, which
/// holds every catalogue price exactly (float artefacts such as
/// `0.08333333333333334` per million included) and every table price per 1K
/// tokens to 21 decimals. A list price of ¥4 per million tokens is
/// `Rate::per_1m(4.0)` or `Rate::from_nanos_per_1k(4_000_000)`. Serialised
/// as a JSON/TOML number of currency units per 1K tokens (`0.004`).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(pub(crate) u128);

impl Rate {
    /// Free.
    pub const ZERO: Rate = Rate(0);

    /// From an integer count of nano-units per 1K tokens (= micro-units per
    /// 1M tokens).
    pub const fn from_nanos_per_1k(nanos: u64) -> Rate {
        Rate(nanos as u128 * RATE_PER_NANO_PER_1K)
    }

    /// From an integer count of 1e-18 units per million tokens (the
    /// catalogue's unit).
    pub(crate) const fn from_e18_per_mtok(v: u128) -> Rate {
        Rate(v)
    }

    /// The integer count of 1e-18 units per million tokens.
    pub(crate) const fn e18_per_mtok(self) -> u128 {
        self.0
    }

    /// The count of nano-units per 1K tokens, rounded down (exact for every
    /// price given with at most nine decimals per 1K tokens).
    pub const fn nanos_per_1k(self) -> u64 {
        let n = self.0 / RATE_PER_NANO_PER_1K;
        if n > u64::MAX as u128 {
            u64::MAX
        } else {
            n as u64
        }
    }

    /// From currency units per 1K tokens, rounded to the nearest nano-unit.
    ///
    /// `None` for negative, NaN or infinite prices and for prices above ~1.8e10
    /// units per 1K tokens.
    pub fn per_1k(units: f64) -> Option<Rate> {
        if !units.is_finite() || units < 0.0 {
            return None;
        }
        let nanos = (units * NANOS_PER_UNIT as f64).round();
        // u64::MAX as f64 rounds up to 2^64, so `<` keeps the cast in range.
        if nanos >= u64::MAX as f64 {
            return None;
        }
        Some(Rate::from_nanos_per_1k(nanos as u64))
    }

    /// From currency units per 1M tokens (how most providers list prices).
    pub fn per_1m(units: f64) -> Option<Rate> {
        Rate::per_1k(units / 1000.0)
    }

    /// Currency units per 1K tokens as a float (display and serialisation only).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / RATE_PER_UNIT_PER_1K as f64
    }

    /// True when the rate is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Rate {
    /// The exact decimal amount per 1K tokens without trailing zeros (`0.0008`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.0 / RATE_PER_UNIT_PER_1K;
        let frac = self.0 % RATE_PER_UNIT_PER_1K;
        if frac == 0 {
            return write!(f, "{units}");
        }
        let digits = format!("{frac:0width$}", width = RATE_DECIMALS_PER_1K);
        write!(f, "{units}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self}/1K)")
    }
}

/// Exact parse of `123.456789012` (at most 21 decimals) per 1K tokens.
pub(crate) fn parse_decimal_rate(t: &str) -> Option<Rate> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || frac.len() > RATE_DECIMALS_PER_1K
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut sub: u128 = 0;
    for (i, b) in frac.bytes().enumerate() {
        sub += u128::from(b - b'0') * 10u128.pow((RATE_DECIMALS_PER_1K - 1 - i) as u32);
    }
    int.checked_mul(RATE_PER_UNIT_PER_1K)?
        .checked_add(sub)
        .map(Rate)
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        d.deserialize_any(RateVisitor { field: None })
    }
}

/// Reads a price from a number (or a decimal string); `field` names the field
/// in error messages because serde itself does not say which field failed.
pub(crate) struct RateVisitor {
    pub(crate) field: Option<&'static str>,
}

impl RateVisitor {
    fn fail<E: serde::de::Error>(&self, got: impl fmt::Display) -> E {
        let prefix = self
            .field
            .map(|f| format!("field `{f}`: "))
            .unwrap_or_default();
        E::custom(format_args!(
            "{prefix}price must be a non-negative number of currency units per 1K tokens, got {got}"
        ))
    }
}

impl serde::de::Visitor<'_> for RateVisitor {
    type Value = Rate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative price per 1K tokens")
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Rate, E> {
        Rate::per_1k(v).ok_or_else(|| self.fail(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Rate, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(self.fail(v)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Rate, E> {
        u128::from(v)
            .checked_mul(RATE_PER_UNIT_PER_1K)
            .map(Rate)
            .ok_or_else(|| self.fail(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
        v.parse::<Rate>()
            .map_err(|_| self.fail(format_args!("{v:?}")))
    }
}

// ---------------------------------------------------------------------------
// Tiers, bands, model prices
// ---------------------------------------------------------------------------

/// One price band of a tiered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Upper bound (inclusive) in input tokens; `None` = no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
    /// Input rate in this band.
    #[serde(deserialize_with = "de_input")]
    pub input: Rate,
    /// Output rate in this band.
    #[serde(deserialize_with = "de_output")]
    pub output: Rate,
    /// Cached-input rate in this band; `None` = the band's input rate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_cached_input"
    )]
    pub cached_input: Option<Rate>,
    /// Cache-write rate in this band; `None` = the band's input rate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_cache_write"
    )]
    pub cache_write: Option<Rate>,
}

impl Band {
    /// A band up to `up_to` input tokens (`None` = unbounded) without a cache price.
    pub fn new(up_to: Option<u64>, input: Rate, output: Rate) -> Band {
        Band {
            up_to,
            input,
            output,
            cached_input: None,
            cache_write: None,
        }
    }

    pub(crate) fn cached_rate(&self) -> Rate {
        self.cached_input.unwrap_or(self.input)
    }

    pub(crate) fn cache_write_rate(&self) -> Rate {
        self.cache_write.unwrap_or(self.input)
    }
}

/// A rate field of a price file, named in its error.
pub(crate) fn rate_field<'de, D: Deserializer<'de>>(
    d: D,
    field: &'static str,
) -> Result<Rate, D::Error> {
    d.deserialize_any(RateVisitor { field: Some(field) })
}

pub(crate) fn de_input<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
    rate_field(d, "input")
}

pub(crate) fn de_output<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
    rate_field(d, "output")
}

pub(crate) fn de_opt_cached_input<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Rate>, D::Error> {
    rate_field(d, "cached_input").map(Some)
}

pub(crate) fn de_opt_cache_write<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Rate>, D::Error> {
    rate_field(d, "cache_write").map(Some)
}
