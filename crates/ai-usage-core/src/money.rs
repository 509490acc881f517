//! Exact money: integer micro-units of one currency, never mixed.
//!
//! Every cost in this crate is a [`Money`] (signed 64-bit count of 1e-6 units,
//! i.e. ±9.2 trillion units of range) tagged with a [`Currency`]. Sums are
//! integer additions, so a million records of ¥0.0001 sum to exactly ¥100.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-units per whole unit of currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// An exact amount of money in micro-units (1e-6) of some currency.
///
/// Serialised as a JSON number with at most six decimals (`0.003068`), which is
/// how the seed's records store `cost`. Parsing from an `f64` rounds half away
/// from zero to the nearest micro-unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// From a count of micro-units.
    pub const fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    /// The count of micro-units.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// From a float amount of whole units, rounded half away from zero to 1e-6.
    ///
    /// Returns `None` for NaN, infinities and amounts outside ±9.2e12.
    pub fn from_f64(units: f64) -> Option<Money> {
        if !units.is_finite() {
            return None;
        }
        let micros = (units * MICROS_PER_UNIT as f64).round();
        if micros.abs() >= 9.2e18 {
            return None;
        }
        Some(Money(micros as i64))
    }

    /// The amount as a float of whole units (for display and JSON only).
    pub fn as_f64(self) -> f64 {
        // i64 micro-units below 2^53 convert exactly; dividing by 1e6 yields the
        // float whose shortest representation is the six-decimal value.
        self.0 as f64 / MICROS_PER_UNIT as f64
    }

    /// Checked addition.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Saturating addition (rollups never wrap; ±9.2e12 units is the range).
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// Rounded half-up to a number of decimals (0..=6), e.g. 2 for the seed's
    /// `total_cost`.
    pub fn round_dp(self, decimals: u32) -> Money {
        let decimals = decimals.min(6);
        let step = 10i64.pow(6 - decimals);
        if step == 1 {
            return self;
        }
        let half = step / 2;
        let rounded = if self.0 >= 0 {
            (self.0 + half) / step * step
        } else {
            -((-self.0 + half) / step * step)
        };
        Money(rounded)
    }

    /// `self * numerator / denominator`, rounded half-up; `None` on overflow or a
    /// zero denominator. Used for projections and savings.
    pub fn mul_div(self, numerator: i64, denominator: i64) -> Option<Money> {
        if denominator == 0 {
            return None;
        }
        let n = self.0 as i128 * numerator as i128;
        let d = denominator as i128;
        let q = div_round_half_up(n, d);
        i64::try_from(q).ok().map(Money)
    }
}

/// Integer division rounding half away from zero.
pub(crate) fn div_round_half_up(n: i128, d: i128) -> i128 {
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = self.saturating_add(rhs);
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0.saturating_sub(rhs.0))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    /// Six decimals, e.g. `21.679480`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let units = abs / MICROS_PER_UNIT as u64;
        let frac = abs % MICROS_PER_UNIT as u64;
        match f.precision() {
            Some(p) if p < 6 => {
                let m = Money(self.0).round_dp(p as u32);
                let abs = m.0.unsigned_abs();
                let units = abs / MICROS_PER_UNIT as u64;
                let frac = (abs % MICROS_PER_UNIT as u64) / 10u64.pow(6 - p as u32);
                if p == 0 {
                    write!(f, "{sign}{units}")
                } else {
                    write!(f, "{sign}{units}.{frac:0width$}", width = p)
                }
            }
            _ => write!(f, "{sign}{units}.{frac:06}"),
        }
    }
}

impl FromStr for Money {
    type Err = MoneyParseError;
    /// Parses a decimal string with at most six decimals (`"0.0234"`, `"-3"`).
    fn from_str(s: &str) -> Result<Money, MoneyParseError> {
        let err = || MoneyParseError(s.to_string());
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(err());
        }
        if frac.len() > 6
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let int: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err())?
        };
        let mut frac_micros: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_micros += (b - b'0') as i64 * 10i64.pow(5 - i as u32);
        }
        let micros = int
            .checked_mul(MICROS_PER_UNIT)
            .and_then(|m| m.checked_add(frac_micros))
            .ok_or_else(err)?;
        Ok(Money(if neg { -micros } else { micros }))
    }
}

/// A string that is not a decimal amount with at most six decimals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid money amount {0:?}: expected a decimal number with at most 6 decimals")]
pub struct MoneyParseError(pub String);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() {
            return Err(serde::de::Error::custom("cost is not a finite number"));
        }
        // Saturate like sums do: a huge stored cost is kept, not dropped.
        Ok(Money::from_f64(v).unwrap_or(if v < 0.0 {
            Money(i64::MIN)
        } else {
            Money(i64::MAX)
        }))
    }
}

/// An ISO-4217-style currency code: three ASCII upper-case letters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Chinese yuan (元), the seed's currency and the default reporting currency.
    pub const CNY: Currency = Currency(*b"CNY");
    /// US dollar (Gemini, OpenAI list prices).
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a code such as `"CNY"` (case-insensitive); `None` unless it is
    /// exactly three ASCII letters.
    pub fn new(code: &str) -> Option<Currency> {
        let b = code.trim().as_bytes();
        if b.len() != 3 || !b.iter().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        Some(Currency([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    /// The code, e.g. `"CNY"`.
    pub fn code(&self) -> &str {
        // Constructed only from ASCII letters, so always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// A display symbol where one is well known (`¥`, `$`), else the code.
    pub fn symbol(&self) -> &str {
        match &self.0 {
            b"CNY" => "¥",
            b"USD" => "$",
            b"EUR" => "€",
            _ => self.code(),
        }
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency::CNY
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Currency, String> {
        Currency::new(s).ok_or_else(|| {
            format!("invalid currency code {s:?}: expected three letters such as CNY or USD")
        })
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Amounts in several currencies kept apart: one entry per currency, sorted
/// by currency code (almost always one entry, so a small vector beats a map;
/// sorted, so equal amounts compare equal whatever order they arrived in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Costs(Vec<(Currency, Money)>);

impl Costs {
    /// Adds `amount` to the entry of `currency`.
    pub fn add(&mut self, currency: Currency, amount: Money) {
        match self.0.iter().position(|(c, _)| *c >= currency) {
            Some(i) if self.0[i].0 == currency => self.0[i].1 += amount,
            Some(i) => self.0.insert(i, (currency, amount)),
            None => self.0.push((currency, amount)),
        }
    }

    /// Adds every entry of `other`.
    pub fn merge(&mut self, other: &Costs) {
        for (c, m) in &other.0 {
            self.add(*c, *m);
        }
    }

    /// The amount in `currency` (zero when absent).
    pub fn get(&self, currency: Currency) -> Money {
        self.0
            .iter()
            .find(|(c, _)| *c == currency)
            .map(|(_, m)| *m)
            .unwrap_or(Money::ZERO)
    }

    /// Entries, sorted by currency code.
    pub fn iter(&self) -> impl Iterator<Item = (Currency, Money)> + '_ {
        self.0.iter().copied()
    }

    /// True when no currency has been added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Currencies other than `primary` that carry an amount.
    pub fn others(&self, primary: Currency) -> impl Iterator<Item = (Currency, Money)> + '_ {
        self.0.iter().copied().filter(move |(c, _)| *c != primary)
    }
}

impl Serialize for Costs {
    /// As a JSON object `{"CNY": 1.5, "USD": 0.2}`, sorted by code.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (c, m) in &self.0 {
            map.serialize_entry(c.code(), m)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Costs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Costs, D::Error> {
        let m = std::collections::BTreeMap::<Currency, Money>::deserialize(d)?;
        Ok(Costs(m.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_exactly() {
        let m: Money = "21.67948".parse().unwrap();
        assert_eq!(m.micros(), 21_679_480);
        assert_eq!(m.to_string(), "21.679480");
        assert_eq!(format!("{m:.2}"), "21.68");
        assert_eq!("-0.5".parse::<Money>().unwrap().micros(), -500_000);
        assert!("0.0000001".parse::<Money>().is_err());
        assert!("abc".parse::<Money>().is_err());
    }

    #[test]
    fn float_round_trip_is_shortest_decimal() {
        for s in ["0.003068", "21.67948", "8.68335", "0.1", "123456.789012"] {
            let m: Money = s.parse().unwrap();
            assert_eq!(Money::from_f64(m.as_f64()), Some(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), s);
        }
    }

    #[test]
    fn round_half_up() {
        assert_eq!(
            Money::from_micros(21_675_000).round_dp(2).micros(),
            21_680_000
        );
        assert_eq!(
            Money::from_micros(21_674_999).round_dp(2).micros(),
            21_670_000
        );
        assert_eq!(Money::from_micros(-5_000).round_dp(2).micros(), -10_000);
    }

    #[test]
    fn million_small_amounts_sum_exactly() {
        let unit: Money = "0.0001".parse().unwrap();
        let total: Money = std::iter::repeat_n(unit, 1_000_000).sum();
        assert_eq!(total.to_string(), "100.000000");
    }

    #[test]
    fn costs_keep_currencies_apart() {
        let mut c = Costs::default();
        c.add(Currency::CNY, Money::from_micros(5));
        c.add(Currency::USD, Money::from_micros(7));
        c.add(Currency::CNY, Money::from_micros(1));
        let mut d = Costs::default();
        d.add(Currency::USD, Money::from_micros(7));
        d.add(Currency::CNY, Money::from_micros(6));
        assert_eq!(c, d, "order of arrival does not matter");
        assert_eq!(c.get(Currency::CNY).micros(), 6);
        assert_eq!(c.get(Currency::USD).micros(), 7);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"CNY":6e-6,"USD":7e-6}"#
        );
    }

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::new("usd"), Some(Currency::USD));
        assert!(Currency::new("US").is_none());
        assert!(Currency::new("U$D").is_none());
    }
}
