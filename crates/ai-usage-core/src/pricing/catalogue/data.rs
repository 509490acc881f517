//! Serde types mirroring the catalogue file (`data.schema.json` of genai-prices).
//!
//! These are the raw shapes only; [`super::Catalogue::from_json`] compiles them
//! into matchers, exact rates and extractors. Unknown fields are rejected on
//! price sets and mappings so that a newer snapshot using a price kind this
//! engine does not implement (image or video tokens, say) fails to load
//! instead of silently pricing those tokens at zero.

use std::fmt;

use chrono::NaiveDate;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// One provider of the catalogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub id: String,
    pub name: String,
    #[serde(default)]
    #[allow(dead_code)] // part of the format; kept so the file validates
    pub pricing_urls: Vec<String>,
    pub api_pattern: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub price_comments: Option<String>,
    #[serde(default)]
    pub model_match: Option<RawClause>,
    #[serde(default)]
    pub provider_match: Option<RawClause>,
    #[serde(default)]
    pub extractors: Vec<RawExtractor>,
    #[serde(default)]
    pub fallback_model_providers: Vec<String>,
    /// Not in the upstream schema: an ISO code for catalogues that price in
    /// another currency than USD.
    #[serde(default)]
    pub currency: Option<String>,
    pub models: Vec<RawModel>,
}

/// One model of a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(rename = "match")]
    pub matcher: RawClause,
    #[serde(default)]
    pub context_window: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    pub price_comments: Option<String>,
    pub prices: RawPrices,
    #[serde(default)]
    pub deprecated: bool,
}

/// A match rule: `{"equals": "…"}`, `{"or": [rule, …]}`, … — serde's externally
/// tagged enum is exactly the catalogue's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawClause {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Regex(String),
    Or(Vec<RawClause>),
    And(Vec<RawClause>),
}

/// Either one price set or a list of conditional ones.
#[derive(Debug)]
pub(crate) enum RawPrices {
    Single(Box<RawPriceSet>),
    Conditional(Vec<RawConditional>),
}

// Hand-written instead of `#[serde(untagged)]`: untagged enums buffer every
// value before trying the variants, which made loading the catalogue
// allocation-bound. The JSON type alone tells the variants apart.
impl<'de> Deserialize<'de> for RawPrices {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawPrices, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPrices;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a price set or a list of conditional prices")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPrices, A::Error> {
                RawPriceSet::deserialize(MapAccessDeserializer::new(map))
                    .map(|p| RawPrices::Single(Box::new(p)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawPrices, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(RawPrices::Conditional)
            }
        }
        d.deserialize_any(V)
    }
}

/// A price set with the condition under which it applies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConditional {
    #[serde(default)]
    pub constraint: Option<RawConstraint>,
    pub prices: RawPriceSet,
}

/// When a conditional price applies.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawConstraint {
    StartDate {
        start_date: NaiveDate,
    },
    TimeOfDay {
        start_time: String,
        end_time: String,
    },
}

/// Prices per million tokens (`*_mtok`) and per thousand requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPriceSet {
    #[serde(default)]
    pub input_mtok: Option<RawPrice>,
    #[serde(default)]
    pub cache_write_mtok: Option<RawPrice>,
    #[serde(default)]
    pub cache_read_mtok: Option<RawPrice>,
    #[serde(default)]
    pub output_mtok: Option<RawPrice>,
    #[serde(default)]
    pub input_audio_mtok: Option<RawPrice>,
    #[serde(default)]
    pub cache_audio_read_mtok: Option<RawPrice>,
    #[serde(default)]
    pub output_audio_mtok: Option<RawPrice>,
    #[serde(default)]
    pub requests_kcount: Option<Decimal>,
}

/// A flat or tiered price.
#[derive(Debug)]
pub(crate) enum RawPrice {
    Flat(Decimal),
    Tiered(RawTiered),
}

impl<'de> Deserialize<'de> for RawPrice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawPrice, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPrice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or {base, tiers}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPrice, E> {
                Decimal::from_number(&v.into()).map(RawPrice::Flat)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPrice, E> {
                Decimal::from_number(&v.into()).map(RawPrice::Flat)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawPrice, E> {
                let n = serde_json::Number::from_f64(v)
                    .ok_or_else(|| E::custom("price is not finite"))?;
                Decimal::from_number(&n).map(RawPrice::Flat)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPrice, A::Error> {
                RawTiered::deserialize(MapAccessDeserializer::new(map)).map(RawPrice::Tiered)
            }
        }
        d.deserialize_any(V)
    }
}

/// `{base, tiers: [{start, price}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTiered {
    pub base: Decimal,
    pub tiers: Vec<RawTier>,
}

/// One tier: from `start` input tokens on (exclusive), every token pays `price`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    pub start: u64,
    pub price: Decimal,
}

/// Where a provider's response holds the usage, for one API flavour.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtractor {
    #[serde(default = "default_flavour")]
    pub api_flavor: String,
    pub root: RawPath,
    #[serde(default = "default_model_path")]
    pub model_path: RawPath,
    pub mappings: Vec<RawMapping>,
}

fn default_flavour() -> String {
    "default".to_owned()
}

fn default_model_path() -> RawPath {
    RawPath::One("model".to_owned())
}

/// A path: one key, or a list of keys and array matches.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawPath {
    One(String),
    Many(Vec<RawStep>),
}

/// One step of a path.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawStep {
    Key(String),
    ArrayMatch(RawArrayMatch),
}

/// Picks the first object of an array whose `field` matches `match`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArrayMatch {
    #[serde(rename = "type")]
    pub kind: String,
    pub field: String,
    #[serde(rename = "match")]
    pub matcher: RawClause,
}

/// One mapping: the integer at `path` (under the root) adds to `dest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMapping {
    pub path: RawPath,
    pub dest: UsageField,
    #[serde(default = "default_required")]
    pub required: bool,
}

fn default_required() -> bool {
    true
}

/// The usage fields the engine prices. The schema also lists text-, image- and
/// video-specific fields; none is used by the snapshot and, having no price
/// here, they are refused at load rather than dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // the catalogue's `dest` values, verbatim
pub(crate) enum UsageField {
    InputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    OutputTokens,
    InputAudioTokens,
    CacheAudioReadTokens,
    OutputAudioTokens,
}

/// Fractional digits kept by [`Decimal`]: enough for every price in the
/// snapshot, including float artefacts such as `0.08333333333333334`.
pub(crate) const DECIMAL_SCALE: u32 = 18;

/// A non-negative decimal read exactly from the JSON text, as an integer count
/// of 1e-18.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal(pub i128);

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        // Without `arbitrary_precision`, a JSON number is kept as u64, i64 or
        // f64; `Number`'s Display prints the shortest text that reads back as
        // the same f64, which is the catalogue's literal for every price in it.
        Decimal::from_number(&serde_json::Number::deserialize(d)?)
    }
}

impl Decimal {
    fn from_number<E: de::Error>(n: &serde_json::Number) -> Result<Decimal, E> {
        // Formatted on the stack: thousands of prices are read at load.
        let mut text = StackText::default();
        fmt::write(&mut text, format_args!("{n}")).map_err(|_| E::custom("price text too long"))?;
        parse_decimal(text.as_str(), DECIMAL_SCALE)
            .map(Decimal)
            .map_err(E::custom)
    }
}

/// A small fixed buffer for a number's text.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Parses a non-negative decimal (`12`, `0.135`, `3e-5`, `1.5E+2`) into an
/// integer count of `10^-scale`. Refuses negatives and values needing more than
/// `scale` fractional digits (no rounding of prices).
pub(crate) fn parse_decimal(text: &str, scale: u32) -> Result<i128, String> {
    let bad = || format!("price {text:?} is not a non-negative decimal");
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = text[i + 1..].parse().map_err(|_| bad())?;
            (&text[..i], exp)
        }
        None => (text, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(bad());
    }
    // digits × 10^(exponent − len(frac)) × 10^scale
    let shift = i64::from(exponent) - frac_part.len() as i64 + i64::from(scale);
    let mut value: i128 = 0;
    let too_big = || format!("price {text:?} is out of range");
    for b in int_part.bytes().chain(frac_part.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(too_big)?;
    }
    if shift >= 0 {
        let factor = u32::try_from(shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s))
            .ok_or_else(too_big)?;
        if value != 0 {
            value = value.checked_mul(factor).ok_or_else(too_big)?;
        }
        Ok(value)
    } else {
        // Dropping digits is only allowed when they are zeros.
        let drop = u32::try_from(-shift).map_err(|_| bad())?;
        let divisor = 10i128.checked_pow(drop);
        match divisor {
            Some(d) if value % d == 0 => Ok(value / d),
            None if value == 0 => Ok(0),
            _ => Err(format!(
                "price {text:?} has more than {scale} decimals and cannot be kept exactly"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        let p = |s| parse_decimal(s, 18);
        assert_eq!(p("5"), Ok(5_000_000_000_000_000_000));
        assert_eq!(p("0.135"), Ok(135_000_000_000_000_000));
        assert_eq!(p("0.02"), Ok(20_000_000_000_000_000));
        assert_eq!(p("3e-5"), Ok(30_000_000_000_000));
        assert_eq!(p("1.5E+2"), Ok(150_000_000_000_000_000_000));
        assert_eq!(p("0.08333333333333334"), Ok(83_333_333_333_333_340));
        assert_eq!(p("0.000000000000000001"), Ok(1));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("0.0"), Ok(0));
        assert_eq!(p("1.10"), Ok(1_100_000_000_000_000_000));
        assert!(p("0.0000000000000000001").is_err(), "19 decimals");
        assert!(p("-1").is_err());
        assert!(p("1e400").is_err());
        assert!(p("").is_err());
        assert!(p(".").is_err());
        assert!(p("1.2.3").is_err());
    }

    #[test]
    fn decimal_reads_json_numbers() {
        let d: Vec<Decimal> =
            serde_json::from_str("[0.135, 12, 0.18000000000000002, 3e-5]").expect("valid numbers");
        assert_eq!(d[0].0, 135_000_000_000_000_000);
        assert_eq!(d[1].0, 12_000_000_000_000_000_000);
        assert_eq!(d[2].0, 180_000_000_000_000_020);
        assert_eq!(d[3].0, 30_000_000_000_000);
    }

    #[test]
    fn unknown_price_kinds_are_refused() {
        let err =
            serde_json::from_str::<RawPriceSet>(r#"{"input_mtok": 1, "input_image_mtok": 2}"#)
                .expect_err("image prices are not implemented");
        assert!(err.to_string().contains("input_image_mtok"), "{err}");
    }

    #[test]
    fn clauses_nest() {
        let c: RawClause = serde_json::from_str(
            r#"{"or": [{"equals": "a"}, {"and": [{"starts_with": "b"}, {"regex": "c$"}]}]}"#,
        )
        .expect("valid clause");
        match c {
            RawClause::Or(v) => {
                assert!(matches!(&v[0], RawClause::Equals(s) if s == "a"));
                assert!(matches!(&v[1], RawClause::And(w) if w.len() == 2));
            }
            other => panic!("expected or, got {other:?}"),
        }
    }
}
