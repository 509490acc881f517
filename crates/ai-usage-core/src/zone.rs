//! The monitor's time zone: which local calendar day (and hour) a record
//! belongs to. Day files and day boundaries are local time, as in the seed.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};

/// A time zone: the machine's local zone (with its DST rules) or a fixed
/// UTC offset.
///
/// Named zones are accepted for the common fixed-offset ones (`UTC`,
/// `Asia/Shanghai`, `Asia/Hong_Kong`, `Asia/Taipei`, `Asia/Singapore`,
/// `Asia/Tokyo`, `Asia/Seoul`); everything else as an offset such as `+08:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// The machine's local zone (default, as the seed does).
    #[default]
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

/// A string that names no zone this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time zone {0:?}: use `local`, `UTC`, an offset such as `+08:00`, or Asia/Shanghai"
)]
pub struct ZoneParseError(pub String);

impl FromStr for Zone {
    type Err = ZoneParseError;
    fn from_str(s: &str) -> Result<Zone, ZoneParseError> {
        let t = s.trim();
        let err = || ZoneParseError(s.to_string());
        let hours = |h: i32| {
            FixedOffset::east_opt(h * 3600)
                .map(Zone::Fixed)
                .ok_or_else(err)
        };
        match t.to_ascii_lowercase().as_str() {
            "local" => return Ok(Zone::Local),
            "utc" | "z" | "gmt" | "etc/utc" => return hours(0),
            "asia/shanghai" | "asia/chongqing" | "prc" | "asia/hong_kong" | "asia/taipei"
            | "asia/singapore" | "asia/macau" => return hours(8),
            "asia/tokyo" | "asia/seoul" => return hours(9),
            _ => {}
        }
        let t = t
            .strip_prefix("UTC")
            .or_else(|| t.strip_prefix("utc"))
            .unwrap_or(t);
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(err()),
        };
        let (h, m) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        let h: i32 = h.parse().map_err(|_| err())?;
        let m: i32 = m.parse().map_err(|_| err())?;
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return Err(err());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(Zone::Fixed)
            .ok_or_else(err)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Local => f.write_str("local"),
            Zone::Fixed(o) => write!(f, "{o}"),
        }
    }
}

impl Zone {
    /// Local date and time of an epoch-seconds timestamp.
    pub fn local(&self, timestamp: f64) -> NaiveDateTime {
        let secs = timestamp.floor();
        let nanos = ((timestamp - secs) * 1e9) as u32;
        let utc = DateTime::<Utc>::from_timestamp(secs as i64, nanos.min(999_999_999))
            .unwrap_or_default();
        match self {
            Zone::Local => utc.with_timezone(&Local).naive_local(),
            Zone::Fixed(o) => utc.with_timezone(o).naive_local(),
        }
    }

    /// Local calendar date of a timestamp.
    pub fn date_of(&self, timestamp: f64) -> NaiveDate {
        self.local(timestamp).date()
    }

    /// Local (date, hour 0..=23) of a timestamp.
    pub fn hour_of(&self, timestamp: f64) -> (NaiveDate, u8) {
        let l = self.local(timestamp);
        (l.date(), l.hour() as u8)
    }

    /// Epoch seconds of a local date-time (the earliest one on a DST fold; the
    /// first valid instant after a DST gap).
    pub fn timestamp_of(&self, local: NaiveDateTime) -> f64 {
        let ts = match self {
            Zone::Local => Local
                .from_local_datetime(&local)
                .earliest()
                .map(|d| d.timestamp())
                .unwrap_or_else(|| {
                    // In a DST gap: an hour later always exists.
                    let later = local + chrono::Duration::hours(1);
                    Local
                        .from_local_datetime(&later)
                        .earliest()
                        .map(|d| d.timestamp() - 3600)
                        .unwrap_or_else(|| later.and_utc().timestamp())
                }),
            Zone::Fixed(o) => local.and_utc().timestamp() - o.local_minus_utc() as i64,
        };
        ts as f64
    }

    /// `[start, end)` epoch seconds of a local calendar day.
    pub fn day_bounds(&self, date: NaiveDate) -> (f64, f64) {
        let start = self.timestamp_of(date.and_time(NaiveTime::MIN));
        let next = date.succ_opt().unwrap_or(date);
        (start, self.timestamp_of(next.and_time(NaiveTime::MIN)))
    }

    /// Today's local date.
    pub fn today(&self) -> NaiveDate {
        self.date_of(now_timestamp())
    }

    /// The current UTC offset in seconds (for display).
    pub fn offset_seconds_now(&self) -> i32 {
        match self {
            Zone::Local => Local::now().offset().fix().local_minus_utc(),
            Zone::Fixed(o) => o.local_minus_utc(),
        }
    }
}

/// Now as epoch seconds (float), like Python's `time.time()`.
pub fn now_timestamp() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs_f64()
}

/// First day of the month of `date`.
pub fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// Number of days in the month of `date`.
pub fn days_in_month(date: NaiveDate) -> u32 {
    let first = month_start(date);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.map(|n| (n - first).num_days() as u32).unwrap_or(30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zones() {
        let sh: Zone = "Asia/Shanghai".parse().unwrap();
        assert_eq!(sh, "+08:00".parse().unwrap());
        assert_eq!(sh, "+0800".parse().unwrap());
        assert_eq!("UTC".parse::<Zone>().unwrap(), "+00:00".parse().unwrap());
        assert_eq!(
            "-05:30".parse::<Zone>().unwrap(),
            Zone::Fixed(FixedOffset::west_opt(5 * 3600 + 1800).unwrap())
        );
        assert!("Mars/Base".parse::<Zone>().is_err());
        assert!("+25:00".parse::<Zone>().is_err());
    }

    #[test]
    fn shanghai_day_bounds_match_the_seed() {
        let sh: Zone = "+08:00".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 10, 25).unwrap();
        assert_eq!(sh.day_bounds(d), (1761321600.0, 1761408000.0));
        assert_eq!(sh.date_of(1761403494.6192913), d);
        assert_eq!(sh.hour_of(1761321600.0), (d, 0));
        assert_eq!(sh.hour_of(1761407999.9).1, 23);
    }

    #[test]
    fn month_lengths() {
        assert_eq!(
            days_in_month(NaiveDate::from_ymd_opt(2024, 2, 10).unwrap()),
            29
        );
        assert_eq!(
            days_in_month(NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()),
            31
        );
    }
}
