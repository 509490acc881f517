//! Exchange rates by day, for converted totals: a day's costs convert at
//! that day's rate, or at the last earlier one when the day has none.
//!
//! Read from CSV (`date,currency,rate`, a header line allowed) or JSON
//! (`[{"date": "2026-11-01", "currency": "USD", "rate": 7.1}, …]`, or
//! `{"USD": {"2026-11-01": 7.1, …}}`). A rate is units of the reporting
//! currency per unit of the other, kept to six decimals like the constant
//! rates of [`MonitorBuilder::exchange_rate`](crate::MonitorBuilder::exchange_rate).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::money::{Currency, Money};

/// Largest rates file read (bytes): a century of daily rates for a dozen
/// currencies is far below.
pub const MAX_RATES_FILE_BYTES: u64 = 16 << 20;

/// Why a rates file cannot be used (names the line or entry).
#[derive(Debug, thiserror::Error)]
pub enum RatesError {
    /// The file could not be read.
    #[error("cannot read rates file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry is not a valid rate.
    #[error("rates file {where_}: {message}")]
    Invalid {
        /// Where: `line 3`, `entry 2`, `USD 2026-11-01`.
        where_: String,
        /// What is wrong.
        message: String,
    },
}

/// Exchange rates per currency and day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatedRates {
    /// currency → day → rate in micro-units of the reporting currency.
    by_currency: BTreeMap<Currency, BTreeMap<NaiveDate, i64>>,
}

impl DatedRates {
    /// True when no rate is held.
    pub fn is_empty(&self) -> bool {
        self.by_currency.is_empty()
    }

    /// Sets the rate of `currency` from `day` on (until a later entry).
    pub fn insert(&mut self, currency: Currency, day: NaiveDate, rate: Money) {
        self.by_currency
            .entry(currency)
            .or_default()
            .insert(day, rate.micros());
    }

    /// The rate in force on `day` (its own, else the last earlier one),
    /// with the day it was given for; `None` before the first.
    pub fn rate_on(&self, currency: Currency, day: NaiveDate) -> Option<(NaiveDate, i64)> {
        self.by_currency
            .get(&currency)?
            .range(..=day)
            .next_back()
            .map(|(d, r)| (*d, *r))
    }

    /// Reads a CSV or JSON rates file (JSON when it starts with `[` or `{`).
    pub fn load_file(path: &Path) -> Result<DatedRates, RatesError> {
        let io = |source| RatesError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_RATES_FILE_BYTES {
            return Err(RatesError::Invalid {
                where_: path.display().to_string(),
                message: format!("{len} bytes, above the limit of {MAX_RATES_FILE_BYTES}"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        DatedRates::parse(&text)
    }

    /// Parses CSV or JSON text (see [`DatedRates::load_file`]).
    pub fn parse(text: &str) -> Result<DatedRates, RatesError> {
        let t = text.trim_start_matches('\u{feff}').trim_start();
        if t.starts_with('[') || t.starts_with('{') {
            Self::parse_json(t)
        } else {
            Self::parse_csv(t)
        }
    }

    fn parse_csv(text: &str) -> Result<DatedRates, RatesError> {
        let mut out = DatedRates::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if i == 0
                && cells
                    .first()
                    .is_some_and(|c| c.eq_ignore_ascii_case("date"))
            {
                continue;
            }
            let where_ = || format!("line {}", i + 1);
            let [date, currency, rate] = cells[..] else {
                return Err(RatesError::Invalid {
                    where_: where_(),
                    message: format!("expected date,currency,rate, got {line:?}"),
                });
            };
            let (c, d, r) = entry(date, currency, rate).map_err(|message| RatesError::Invalid {
                where_: where_(),
                message,
            })?;
            out.insert(c, d, r);
        }
        Ok(out)
    }

    fn parse_json(text: &str) -> Result<DatedRates, RatesError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Float(f64),
            Text(String),
        }
        impl Number {
            fn text(&self) -> String {
                match self {
                    Number::Float(f) => f.to_string(),
                    Number::Text(s) => s.clone(),
                }
            }
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Row {
            date: String,
            currency: String,
            rate: Number,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Rows(Vec<Row>),
            ByCurrency(BTreeMap<String, BTreeMap<String, Number>>),
        }
        let shape: Shape = serde_json::from_str(text).map_err(|e| RatesError::Invalid {
            where_: "JSON".into(),
            message: format!(
                "{e}; expected [{{\"date\", \"currency\", \"rate\"}}, …] or {{\"USD\": {{\"2026-11-01\": 7.1}}}}"
            ),
        })?;
        let mut out = DatedRates::default();
        let mut add = |where_: String, d: &str, c: &str, r: &Number| {
            let (c, d, r) = entry(d, c, &r.text())
                .map_err(|message| RatesError::Invalid { where_, message })?;
            out.insert(c, d, r);
            Ok::<(), RatesError>(())
        };
        match shape {
            Shape::Rows(rows) => {
                for (i, row) in rows.iter().enumerate() {
                    add(
                        format!("entry {}", i + 1),
                        &row.date,
                        &row.currency,
                        &row.rate,
                    )?;
                }
            }
            Shape::ByCurrency(map) => {
                for (c, days) in &map {
                    for (d, r) in days {
                        add(format!("{c} {d}"), d, c, r)?;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One rate entry, checked: a real date, a currency code, a positive rate.
fn entry(date: &str, currency: &str, rate: &str) -> Result<(Currency, NaiveDate, Money), String> {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| format!("date {date:?} is not YYYY-MM-DD"))?;
    let c = Currency::new(currency)
        .ok_or_else(|| format!("currency {currency:?} is not a three-letter code"))?;
    let r: Money = rate
        .parse()
        .map_err(|_| format!("rate {rate:?} is not a plain decimal number"))?;
    if r <= Money::ZERO {
        return Err(format!("rate {rate} must be positive"));
    }
    Ok((c, d, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn csv_and_json_give_the_same_rates_and_missing_days_take_the_last_earlier() {
        let csv =
            "date,currency,rate\n2026-11-01,USD,7.1\n2026-11-03,USD,7.2\n2026-11-02,EUR,7.8\n";
        let a = DatedRates::parse(csv).unwrap();
        let b = DatedRates::parse(
            r#"[{"date":"2026-11-01","currency":"USD","rate":7.1},
                {"date":"2026-11-03","currency":"USD","rate":"7.2"},
                {"date":"2026-11-02","currency":"EUR","rate":7.8}]"#,
        )
        .unwrap();
        let c = DatedRates::parse(
            r#"{"USD": {"2026-11-01": 7.1, "2026-11-03": 7.2}, "EUR": {"2026-11-02": 7.8}}"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.rate_on(Currency::USD, d("2026-10-31")), None);
        assert_eq!(
            a.rate_on(Currency::USD, d("2026-11-02")),
            Some((d("2026-11-01"), 7_100_000))
        );
        assert_eq!(
            a.rate_on(Currency::USD, d("2026-11-30")),
            Some((d("2026-11-03"), 7_200_000))
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let e = DatedRates::parse("2026-11-01,USD,7.1\n2026-13-01,USD,7\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = DatedRates::parse("2026-11-01,USD,-7").unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
        let e = DatedRates::parse("2026-11-01,US,7").unwrap_err();
        assert!(e.to_string().contains("currency"), "{e}");
        let e = DatedRates::parse("2026-11-01;USD;7").unwrap_err();
        assert!(e.to_string().contains("date,currency,rate"), "{e}");
        let e = DatedRates::parse(r#"[{"date":"x","currency":"USD","rate":1}]"#).unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
    }
}
