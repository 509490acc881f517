//! Exact money: integer nano-units of one currency, never mixed.
//!
//! Every cost in this crate is a [`Money`]: a signed 64-bit count of 1e-9
//! units tagged (by its holder) with a [`Currency`]. Sums are integer
//! additions, so a million 10-token embedding calls at $0.0000002 sum to
//! exactly $0.2.
//!
//! # Why nano-units in an `i64` (and not an `i128`)
//!
//! - Nano-units are the finest step any list price reaches per call: a
//!   10-token `text-embedding-3-small` call at $0.02 per million tokens costs
//!   200 nano-dollars, which micro-units rounded to 0.
//! - An `i64` holds ±9,223,372,036.854775807 units, i.e. ±¥/$9.2 billion per
//!   amount and per sum. No AI bill (one call, one day, one fleet's year)
//!   comes near it, while an `i128` would double the size of every record,
//!   counter and rollup group and take two registers on the record path,
//!   which has to stay around a microsecond.
//! - Sums saturate at the range ends instead of wrapping, so even an absurd
//!   total is reported as the largest amount, never as a negative one.
//!   Products (`mul_div`, prices × tokens) use `i128` intermediates and are
//!   rounded once.
//!
//! # Text and JSON
//!
//! [`Money`] displays with six to nine decimals (`0.003068`, `0.0000002`)
//! and serialises as the shortest exact decimal with at most nine
//! places (`0.0000002`, `21.67948`, `3.0`), written as a JSON number
//! token from the integer itself (through [`serde_json::value::RawValue`]), so
//! no float is involved and no exponent form (`2e-7`) appears. Reading a
//! number takes its exact text when the deserializer is `serde_json`'s, and
//! rounds half away from zero to 1e-9; other deserializers hand over an
//! `f64`, which is converted through its shortest decimal form (exact for
//! every amount of up to 15 significant digits, e.g. all six-decimal costs
//! written by older versions and the original).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

/// Nano-units (1e-9) per whole unit of currency.
pub const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// Micro-units (1e-6) per whole unit of currency, for [`Money::from_micros`]
/// and [`Money::micros`] (exchange rates and stores that count millionths).
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// Nano-units per micro-unit.
const NANOS_PER_MICRO: i64 = 1_000;

/// Most decimal places an amount carries.
pub const MAX_DECIMALS: u32 = 9;

/// An exact amount of money in nano-units (1e-9) of some currency.
///
/// Serialised as a JSON number with at most nine decimals (`0.0000002`);
/// the seed's records and older files store six (`0.003068`) and load to the
/// same amounts. Parsing rounds half away from zero to the nearest nano-unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);
    /// The largest amount (sums saturate here).
    pub const MAX: Money = Money(i64::MAX);
    /// The smallest amount (sums saturate here).
    pub const MIN: Money = Money(i64::MIN);

    /// From a count of nano-units.
    pub const fn from_nanos(nanos: i64) -> Money {
        Money(nanos)
    }

    /// The count of nano-units.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// From a count of micro-units (saturating at the range ends).
    pub const fn from_micros(micros: i64) -> Money {
        Money(micros.saturating_mul(NANOS_PER_MICRO))
    }

    /// The amount in micro-units, rounded half away from zero
    /// (`0.0000005` → 1, `0.0000004999` → 0): a convenience for stores and
    /// rates kept in millionths; it loses the last three digits.
    pub const fn micros(self) -> i64 {
        let q = self.0 / NANOS_PER_MICRO;
        let r = self.0 % NANOS_PER_MICRO;
        if r >= NANOS_PER_MICRO / 2 {
            q + 1
        } else if r <= -NANOS_PER_MICRO / 2 {
            q - 1
        } else {
            q
        }
    }

    /// From a float amount of whole units, rounded half away from zero to
    /// 1e-9 via the float's shortest decimal form (so `0.1` is exactly
    /// 100,000,000 nano-units, not the binary float's neighbour).
    ///
    /// Returns `None` for NaN, infinities and amounts outside the range.
    pub fn from_f64(units: f64) -> Option<Money> {
        if !units.is_finite() || units.abs() >= 9.3e9 {
            return None;
        }
        if units.abs() < 1e-10 {
            return Some(Money::ZERO); // rounds to 0; skips long subnormal text
        }
        // `Display` of an f64 is the shortest decimal that reads back as the
        // same float, without an exponent.
        parse_number(&units.to_string(), true).ok()
    }

    /// The amount as a float of whole units (for display and JSON only;
    /// amounts beyond 2^53 nano-units lose their last digits).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_UNIT as f64
    }

    /// Checked addition.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Saturating addition (rollups never wrap; ±9.2e9 units is the range).
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// Rounded half away from zero to a number of decimals (0..=9; more are
    /// taken as 9), e.g. 2 for the seed's `total_cost`.
    pub fn round_dp(self, decimals: u32) -> Money {
        let decimals = decimals.min(MAX_DECIMALS);
        let step = 10i128.pow(MAX_DECIMALS - decimals);
        if step == 1 {
            return self;
        }
        // i128: rounding i64::MAX up must saturate, not overflow.
        let rounded = div_round_half_up(i128::from(self.0), step) * step;
        Money(clamp_i64(rounded))
    }

    /// `self * numerator / denominator`, rounded half away from zero; `None`
    /// on overflow or a zero denominator. Used for projections and savings.
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

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
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

/// The exact decimal of `nanos` nano-units with at least `min_places` and
/// at most nine places, no trailing zeros beyond `min_places` (`-0.0000002`,
/// `3.0`, `21.67948`), in a stack buffer: at most 1 + 10 + 1 + 9 bytes.
struct DecimalText {
    buf: [u8; 24],
    /// Where the text starts: it is written from the end of `buf`, right to
    /// left, so no digit is moved twice (this runs for every day-file line).
    start: usize,
}

impl DecimalText {
    fn new(nanos: i64, min_places: u32) -> DecimalText {
        let mut buf = [b'0'; 24];
        let mut start = buf.len();
        let abs = nanos.unsigned_abs();
        let units = abs / NANOS_PER_UNIT as u64;
        let mut frac = abs % NANOS_PER_UNIT as u64;
        let mut places = MAX_DECIMALS;
        while places > min_places && frac.is_multiple_of(10) {
            frac /= 10;
            places -= 1;
        }
        for _ in 0..places {
            start -= 1;
            buf[start] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        if places > 0 {
            start -= 1;
            buf[start] = b'.';
        }
        let mut u = units;
        loop {
            start -= 1;
            buf[start] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        if nanos < 0 {
            start -= 1;
            buf[start] = b'-';
        }
        DecimalText { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' were written.
        std::str::from_utf8(self.as_bytes()).unwrap_or("0")
    }
}

impl fmt::Display for Money {
    /// The exact amount with six to nine decimals (`21.679480`,
    /// `0.0000002`, `3.000000`: six as ever, more only where the amount has
    /// them); with a precision (`{:.2}`, 0..=9) rounded half away from zero
    /// and padded to exactly that many places.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(p) = f.precision() else {
            return f.write_str(DecimalText::new(self.0, 6).as_str());
        };
        let p = (p as u32).min(MAX_DECIMALS);
        let m = self.round_dp(p);
        let sign = if m.0 < 0 { "-" } else { "" };
        let abs = m.0.unsigned_abs();
        let units = abs / NANOS_PER_UNIT as u64;
        let frac = (abs % NANOS_PER_UNIT as u64) / 10u64.pow(MAX_DECIMALS - p);
        if p == 0 {
            write!(f, "{sign}{units}")
        } else {
            write!(f, "{sign}{units}.{frac:0width$}", width = p as usize)
        }
    }
}

impl FromStr for Money {
    type Err = MoneyParseError;
    /// Parses a plain decimal with at most nine decimals (`"0.0000002"`,
    /// `"-3"`); anything finer is an error rather than silently rounded.
    fn from_str(s: &str) -> Result<Money, MoneyParseError> {
        let t = s.trim();
        if t.bytes().any(|b| b == b'e' || b == b'E' || b == b'+') {
            return Err(MoneyParseError(s.to_string()));
        }
        parse_number(t, false).map_err(|()| MoneyParseError(s.to_string()))
    }
}

/// Parses a JSON-style number (`-12.5`, `0.0000002`, `6e-6`, `2E+3`)
/// exactly. With `round`, digits beyond nine places round half away from
/// zero; without, they are an error. Out of range is an error.
fn parse_number(t: &str, round: bool) -> Result<Money, ()> {
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => {
            let e = &t[i + 1..];
            let e = e.strip_prefix('+').unwrap_or(e);
            if e.is_empty() || e.len() > 6 {
                return Err(());
            }
            (&t[..i], e.parse::<i32>().map_err(|_| ())?)
        }
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(());
    }
    // value = digits × 10^(exp − frac.len()); nanos = digits × 10^shift.
    let shift = exp as i64 - frac.len() as i64 + i64::from(MAX_DECIMALS);
    // Significant digits, without collecting them (this runs per record).
    let digits = || {
        int.bytes()
            .chain(frac.bytes())
            .skip_while(|b| *b == b'0')
            .map(|b| b - b'0')
    };
    let count = digits().count();
    // Digits below 1e-9: the last `lost` ones (implicit zeros included).
    let lost = if shift < 0 {
        shift.unsigned_abs() as usize
    } else {
        0
    };
    let kept = count.saturating_sub(lost);
    let limit = i128::from(i64::MAX) + 1;
    let mut nanos: i128 = 0;
    let mut round_up = false;
    for (i, d) in digits().enumerate() {
        if i < kept {
            nanos = nanos
                .checked_mul(10)
                .map(|v| v + i128::from(d))
                .filter(|v| *v <= limit)
                .ok_or(())?;
        } else {
            // The first dropped digit is the one right below 1e-9 only when
            // no implicit zeros lie between (lost <= count).
            if i == kept && lost <= count {
                round_up = d >= 5;
            }
            if !round && d != 0 {
                return Err(());
            }
        }
    }
    if shift > 0 && nanos != 0 {
        let scale = 10i128.checked_pow(u32::try_from(shift).map_err(|_| ())?);
        nanos = scale
            .and_then(|s| nanos.checked_mul(s))
            .filter(|v| *v <= limit)
            .ok_or(())?;
    }
    if round_up {
        nanos += 1;
    }
    let signed = if neg { -nanos } else { nanos };
    i64::try_from(signed).map(Money).map_err(|_| ())
}

/// A string that is not a decimal amount with at most nine decimals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid money amount {0:?}: expected a decimal number with at most 9 decimals")]
pub struct MoneyParseError(pub String);

impl Money {
    /// Appends the JSON number token [`Money`]'s `Serialize` writes
    /// (`3.0`, `0.0000002`), for the day-file line writer.
    pub(crate) fn write_json(self, out: &mut Vec<u8>) {
        out.extend_from_slice(DecimalText::new(self.0, 1).as_bytes());
    }
}

impl Serialize for Money {
    /// A JSON number token written from the integer: the shortest exact
    /// decimal, with `.0` on whole amounts so that readers keep seeing a
    /// float (`3.0`, `0.003068`, `0.0000002`), as when costs were floats.
    /// With other serializers, whatever they make of a raw JSON value.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = DecimalText::new(self.0, 1);
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(text.as_str()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// The name under which `serde_json` hands out a value's raw text
/// (`serde_json::value::RawValue` asks for it the same way). A deserializer
/// that does not know it treats the request as a plain newtype, and the
/// amount arrives as a number instead; `tests::json_reads_the_exact_text`
/// fails should `serde_json` ever rename it.
const RAW_JSON_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        d.deserialize_newtype_struct(RAW_JSON_TOKEN, MoneyVisitor)
    }
}

struct MoneyVisitor;

impl MoneyVisitor {
    /// Out-of-range amounts saturate like sums do: a huge stored cost is
    /// kept as the largest amount, not dropped.
    fn number<E: serde::de::Error>(text: &str) -> Result<Money, E> {
        let t = text.trim();
        parse_number(t, true).or_else(|()| {
            let numeric = t
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            match t.parse::<f64>() {
                Ok(v) if numeric && v.is_finite() => Self::float(v),
                _ => Err(E::custom(format_args!("cost {t:?} is not a finite number"))),
            }
        })
    }

    fn float<E: serde::de::Error>(v: f64) -> Result<Money, E> {
        if !v.is_finite() {
            return Err(E::custom("cost is not a finite number"));
        }
        Ok(Money::from_f64(v).unwrap_or(if v < 0.0 { Money::MIN } else { Money::MAX }))
    }
}

/// Reads the raw text of a number (borrowed or owned) without copying it.
struct RawText;

impl<'de> serde::de::DeserializeSeed<'de> for RawText {
    type Value = Money;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Money, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for RawText {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the text of a JSON number")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Money, E> {
        if text.starts_with('"') {
            // A quoted amount ("0.1"): accepted like the number.
            let s: String = serde_json::from_str(text).map_err(E::custom)?;
            return MoneyVisitor::number(&s);
        }
        MoneyVisitor::number(text)
    }
}

impl<'de> serde::de::Visitor<'de> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount of money as a number")
    }

    /// `serde_json`'s raw-value form: one entry whose value is the text.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Money, A::Error> {
        let Some(_) = map.next_key::<serde::de::IgnoredAny>()? else {
            return Err(serde::de::Error::custom("cost: empty value"));
        };
        map.next_value_seed(RawText)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Money, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Money, E> {
        Self::float(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Money, E> {
        Ok(Money(clamp_i64(i128::from(v) * i128::from(NANOS_PER_UNIT))))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Money, E> {
        Ok(Money(clamp_i64(i128::from(v) * i128::from(NANOS_PER_UNIT))))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
        Self::number(v)
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

impl Currency {
    /// The code's three bytes (for compact storage).
    pub(crate) const fn bytes(self) -> [u8; 3] {
        self.0
    }

    /// The currency of three bytes [`bytes`](Self::bytes) gave.
    pub(crate) const fn from_bytes(b: [u8; 3]) -> Currency {
        Currency(b)
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
/// by currency code (almost always one entry, so a small vector beats a map,
/// and that one entry is held inline: a group's counters never allocate;
/// sorted, so equal amounts compare equal whatever order they arrived in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Costs(SmallVec<[(Currency, Money); 1]>);

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

    /// Drops the entry of `currency` when it holds zero (a call re-priced
    /// into another currency leaves nothing behind in its old one).
    pub fn drop_if_zero(&mut self, currency: Currency) {
        self.0.retain(|(c, m)| *c != currency || *m != Money::ZERO);
    }

    /// Entries, sorted by currency code.
    pub fn iter(&self) -> impl Iterator<Item = (Currency, Money)> + '_ {
        self.0.iter().copied()
    }

    /// True when no currency has been added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries as a slice (for compact storage).
    pub(crate) fn as_slice(&self) -> &[(Currency, Money)] {
        &self.0
    }

    /// Costs of one entry.
    #[cfg(test)]
    pub(crate) fn one(currency: Currency, amount: Money) -> Costs {
        let mut c = Costs::default();
        c.0.push((currency, amount));
        c
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

/// The currency a group's single `cost` is given in: its only currency, else
/// the reporting currency.
pub fn main_currency(costs: &Costs, reporting: Currency) -> Currency {
    let mut it = costs.iter();
    match (it.next(), it.next()) {
        (Some((c, _)), None) => c,
        _ => reporting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(m: Money) -> String {
        serde_json::to_string(&m).unwrap()
    }

    fn from_json(s: &str) -> Money {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn parses_and_displays_exactly() {
        let m: Money = "21.67948".parse().unwrap();
        assert_eq!(m.nanos(), 21_679_480_000);
        assert_eq!(m.to_string(), "21.679480");
        assert_eq!(format!("{m:.2}"), "21.68");
        assert_eq!(format!("{m:.6}"), "21.679480");
        assert_eq!(format!("{m:.0}"), "22");
        assert_eq!("-0.5".parse::<Money>().unwrap().nanos(), -500_000_000);
        assert_eq!("0.0000002".parse::<Money>().unwrap().nanos(), 200);
        assert_eq!("0.000000001".parse::<Money>().unwrap().nanos(), 1);
        assert!("0.0000000001".parse::<Money>().is_err(), "finer than 1e-9");
        assert!("2e-7".parse::<Money>().is_err(), "plain decimals only");
        assert!("abc".parse::<Money>().is_err());
        assert!(".".parse::<Money>().is_err());
        assert!("9223372036.854775808".parse::<Money>().is_err());
        assert_eq!(Money::from_nanos(200).to_string(), "0.0000002");
        assert_eq!(Money::from_nanos(-200).to_string(), "-0.0000002");
        assert_eq!(
            Money::from_nanos(3 * NANOS_PER_UNIT).to_string(),
            "3.000000"
        );
        assert_eq!(Money::from_nanos(1).to_string(), "0.000000001");
        assert_eq!(Money::from_nanos(1_500).to_string(), "0.0000015");
        assert_eq!(Money::ZERO.to_string(), "0.000000");
        assert_eq!(Money::MIN.to_string(), "-9223372036.854775808");
    }

    #[test]
    fn micro_helpers_round_half_away_from_zero() {
        assert_eq!(Money::from_micros(3068).nanos(), 3_068_000);
        assert_eq!(Money::from_nanos(3_068_000).micros(), 3068);
        assert_eq!(Money::from_nanos(499).micros(), 0);
        assert_eq!(Money::from_nanos(500).micros(), 1);
        assert_eq!(Money::from_nanos(-500).micros(), -1);
        assert_eq!(Money::from_nanos(-499).micros(), 0);
        assert_eq!(Money::from_micros(i64::MAX), Money::MAX, "saturates");
    }

    #[test]
    fn json_is_the_exact_plain_decimal() {
        // serde_json writes the float 2e-7 as `2e-7`; the amount is written
        // from the integer instead.
        assert_eq!(serde_json::to_string(&2e-7f64).unwrap(), "2e-7");
        assert_eq!(json(Money::from_nanos(200)), "0.0000002");
        for s in [
            "0.003068",
            "21.67948",
            "8.68335",
            "0.1",
            "123456.789012",
            "0.000000001",
            "7.0",
        ] {
            let m: Money = s.parse().unwrap();
            assert_eq!(json(m), s);
            assert_eq!(from_json(s), m);
            assert_eq!(Money::from_f64(m.as_f64()), Some(m));
        }
    }

    #[test]
    fn json_reads_the_exact_text() {
        // 19 significant digits: more than an f64 holds, so this passes only
        // when the raw text is read (see RAW_JSON_TOKEN).
        assert_eq!(from_json("9223372036.854775807"), Money::MAX);
        assert_eq!(
            from_json("1234567890.123456789").nanos(),
            1_234_567_890_123_456_789
        );
        // Through a `Value` the amount arrives as text as well.
        let v: serde_json::Value = serde_json::from_str("0.0000002").unwrap();
        assert_eq!(serde_json::from_value::<Money>(v).unwrap().nanos(), 200);
    }

    #[test]
    fn older_files_and_other_number_forms_load() {
        // Six-decimal costs (the seed, our older versions) and the exponent
        // forms serde_json wrote for tiny floats.
        assert_eq!(from_json("0.003068").nanos(), 3_068_000);
        assert_eq!(from_json("6e-6").nanos(), 6_000);
        assert_eq!(from_json("1.5E+2").nanos(), 150 * NANOS_PER_UNIT);
        assert_eq!(from_json("3").nanos(), 3 * NANOS_PER_UNIT);
        assert_eq!(from_json("-0.25").nanos(), -250_000_000);
        assert_eq!(from_json(r#""0.1""#).nanos(), 100_000_000);
        // Beyond nine places: half away from zero.
        assert_eq!(from_json("0.0000000015").nanos(), 2);
        assert_eq!(from_json("0.0000000014999").nanos(), 1);
        assert_eq!(from_json("-0.0000000015").nanos(), -2);
        assert_eq!(from_json("0.30000000000000004").nanos(), 300_000_000);
        assert_eq!(from_json("1e-30").nanos(), 0);
        // Out of range saturates, like sums.
        assert_eq!(from_json("1e15"), Money::MAX);
        assert_eq!(from_json("-1e15"), Money::MIN);
        assert!(serde_json::from_str::<Money>("null").is_err());
        assert!(serde_json::from_str::<Money>(r#""abc""#).is_err());
        assert!(serde_json::from_str::<Money>("1e400").is_err());
    }

    #[test]
    fn floats_convert_through_their_shortest_decimal() {
        assert_eq!(Money::from_f64(2e-7).unwrap().nanos(), 200);
        assert_eq!(Money::from_f64(0.1 + 0.2).unwrap().nanos(), 300_000_000);
        assert_eq!(Money::from_f64(-0.0000000025).unwrap().nanos(), -3);
        assert_eq!(Money::from_f64(5e-324), Some(Money::ZERO));
        assert_eq!(Money::from_f64(f64::NAN), None);
        assert_eq!(Money::from_f64(1e12), None);
    }

    #[test]
    fn round_half_away_from_zero() {
        let r = |n: i64, d: u32| Money::from_nanos(n).round_dp(d).nanos();
        assert_eq!(r(21_675_000_000, 2), 21_680_000_000);
        assert_eq!(r(21_674_999_999, 2), 21_670_000_000);
        assert_eq!(r(-5_000_000, 2), -10_000_000);
        assert_eq!(r(1_234_567_891, 9), 1_234_567_891);
        assert_eq!(r(1_234_567_891, 8), 1_234_567_890);
        assert_eq!(r(1_234_567_895, 8), 1_234_567_900);
        assert_eq!(r(1_234_567_895, 20), 1_234_567_895, "more than 9 is 9");
        assert_eq!(Money::MAX.round_dp(0), Money::MAX, "saturates");
    }

    #[test]
    fn million_small_amounts_sum_exactly() {
        let call: Money = "0.0000002".parse().unwrap();
        let total: Money = std::iter::repeat_n(call, 1_000_000).sum();
        assert_eq!(total.to_string(), "0.200000");
        assert_eq!(json(total), "0.2");
        let unit: Money = "0.0001".parse().unwrap();
        let total: Money = std::iter::repeat_n(unit, 1_000_000).sum();
        assert_eq!(total.to_string(), "100.000000");
        assert_eq!(json(total), "100.0");
        assert_eq!(Money::MAX + Money::from_nanos(1), Money::MAX);
    }

    #[test]
    fn costs_keep_currencies_apart() {
        let mut c = Costs::default();
        c.add(Currency::CNY, Money::from_micros(5));
        c.add(Currency::USD, Money::from_nanos(7));
        c.add(Currency::CNY, Money::from_micros(1));
        let mut d = Costs::default();
        d.add(Currency::USD, Money::from_nanos(7));
        d.add(Currency::CNY, Money::from_micros(6));
        assert_eq!(c, d, "order of arrival does not matter");
        assert_eq!(c.get(Currency::CNY).micros(), 6);
        assert_eq!(c.get(Currency::USD).nanos(), 7);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"CNY":0.000006,"USD":0.000000007}"#);
        assert_eq!(serde_json::from_str::<Costs>(&text).unwrap(), c);
    }

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::new("usd"), Some(Currency::USD));
        assert!(Currency::new("US").is_none());
        assert!(Currency::new("U$D").is_none());
    }

    /// The decimal text by plain formatting: all nine places, then the
    /// trailing zeros beyond `min_places` dropped.
    fn reference_text(nanos: i64, min_places: usize) -> String {
        let sign = if nanos < 0 { "-" } else { "" };
        let abs = nanos.unsigned_abs();
        let unit = NANOS_PER_UNIT as u64;
        let mut frac = format!("{:09}", abs % unit);
        while frac.len() > min_places && frac.ends_with('0') {
            frac.pop();
        }
        let dot = if frac.is_empty() { "" } else { "." };
        format!("{sign}{}{dot}{frac}", abs / unit)
    }

    proptest! {
        #[test]
        fn decimal_text_is_the_plain_decimal(
            nanos in prop_oneof![any::<i64>(), -10_000_000_000i64..10_000_000_000, Just(i64::MIN), Just(0)],
            min_places in 0u32..=9,
        ) {
            let text = DecimalText::new(nanos, min_places);
            prop_assert_eq!(text.as_str(), reference_text(nanos, min_places as usize));
        }

        #[test]
        fn any_amount_round_trips_through_text_and_json(nanos in any::<i64>()) {
            let m = Money::from_nanos(nanos);
            let text = m.to_string();
            prop_assert_eq!(text.parse::<Money>().unwrap(), m);
            let j = json(m);
            prop_assert_eq!(from_json(&j), m);
            prop_assert!(!j.contains(['e', 'E']), "plain decimal: {}", j);
            // Inside a record-like object and from a reader (owned text).
            let obj = format!(r#"{{"cost": {j}}}"#);
            let back: std::collections::BTreeMap<String, Money> =
                serde_json::from_reader(obj.as_bytes()).unwrap();
            prop_assert_eq!(back["cost"], m);
        }

        #[test]
        fn longer_decimals_round_half_away_from_zero(
            nanos in -1_000_000_000_000_000i64..1_000_000_000_000_000,
            extra in "[0-9]{1,8}",
        ) {
            let text = format!("{:.9}{extra}", Money::from_nanos(nanos));
            let up = extra.as_bytes()[0] >= b'5';
            let want = match (up, text.starts_with('-')) {
                (false, _) => nanos,
                (true, true) => nanos - 1,
                (true, false) => nanos + 1,
            };
            prop_assert_eq!(from_json(&text).nanos(), want, "{}", text);
            prop_assert!(text.parse::<Money>().is_err() == extra.bytes().any(|b| b != b'0'));
        }

        #[test]
        fn six_decimal_amounts_read_as_floats_too(micros in -1_000_000_000_000i64..1_000_000_000_000) {
            // Older files: what a float holds of a six-decimal amount.
            let m = Money::from_micros(micros);
            prop_assert_eq!(Money::from_f64(m.as_f64()), Some(m));
        }
    }
}
