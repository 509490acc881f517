//! The monitor's time zone: which local calendar day (and hour) a record
//! belongs to. Day files and day boundaries are local time, as in the seed.
//!
//! Named zones come from `chrono-tz` rather than `jiff`: chrono is already the
//! date crate of every crate here, and chrono-tz only adds the IANA tz tables,
//! compiled into the binary (no system tzdata needed at run time).
//!
//! Days are local calendar days: across a DST change a day lasts 23 or 25
//! hours (or whatever the zone's rules make it). A local hour that occurs
//! twice (fall back) is one hour bucket lasting two hours; an hour skipped by
//! spring forward has empty bounds and no record maps to it.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, Local, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// A time zone: the machine's local zone, an IANA zone with its DST rules,
/// or a fixed UTC offset.
///
/// Parsed from `local`, `UTC`, any IANA name (`America/New_York`,
/// `Europe/Berlin`, `Asia/Kolkata`, …; case-insensitive) or an offset such as
/// `+08:00`, `-0530`, `UTC+8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// The machine's local zone (default, as the seed does).
    #[default]
    Local,
    /// A fixed offset from UTC (also what `UTC` parses to).
    Fixed(FixedOffset),
    /// An IANA zone from the bundled tz database.
    Named(Tz),
}

/// A string that names no zone this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time zone {0:?}: use `local`, `UTC`, an IANA zone name such as \
     `America/New_York` or `Asia/Shanghai`, or a UTC offset such as `+08:00` or `UTC+8` \
     (minutes 00, 15, 30 or 45: the offsets zones use)"
)]
pub struct ZoneParseError(pub String);

/// Every zone's offset is a whole number of quarter hours (DST included):
/// the fleet's day math relies on it, so a fixed offset must be one too.
pub const OFFSET_STEP_SECS: i32 = 15 * 60;

impl FromStr for Zone {
    type Err = ZoneParseError;
    fn from_str(s: &str) -> Result<Zone, ZoneParseError> {
        let t = s.trim();
        let err = || ZoneParseError(s.to_string());
        match t.to_ascii_lowercase().as_str() {
            "local" => return Ok(Zone::Local),
            "utc" | "z" | "gmt" | "etc/utc" => {
                return Ok(Zone::Fixed(FixedOffset::east_opt(0).ok_or_else(err)?))
            }
            _ => {}
        }
        let offset = t
            .strip_prefix("UTC")
            .or_else(|| t.strip_prefix("utc"))
            .unwrap_or(t);
        if offset.starts_with(['+', '-']) {
            return parse_offset(offset).map(Zone::Fixed).ok_or_else(err);
        }
        if let Ok(tz) = t.parse::<Tz>() {
            return Ok(Zone::Named(tz));
        }
        // Case-insensitive fallback over the ~600 names: cheaper than
        // chrono-tz's `case-insensitive` feature, which needs a build step.
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(t))
            .map(|tz| Zone::Named(*tz))
            .ok_or_else(err)
    }
}

/// `+08:00`, `-0530`, `+8`: a sign, hours 0..=14 and optional minutes
/// 00, 15, 30 or 45 (no zone uses any other, e.g. `+00:07`).
fn parse_offset(t: &str) -> Option<FixedOffset> {
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) || (m * 60) % OFFSET_STEP_SECS != 0 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Local => f.write_str("local"),
            Zone::Fixed(o) => write!(f, "{o}"),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// The longest clock jump forward on record (Samoa skipped 2011-12-30
/// entirely) is one day; two days bound the search for a gap's end.
const MAX_GAP_SECS: i64 = 2 * 86_400;

impl Zone {
    /// The UTC offset in force at a UTC instant.
    fn offset_at_utc(&self, utc: &NaiveDateTime) -> FixedOffset {
        match self {
            Zone::Local => Local.offset_from_utc_datetime(utc).fix(),
            Zone::Fixed(o) => *o,
            Zone::Named(tz) => tz.offset_from_utc_datetime(utc).fix(),
        }
    }

    /// The offsets a local date-time can have: one, two on a DST fold, none
    /// in a DST gap.
    fn offsets_of_local(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
        match self {
            Zone::Local => Local.offset_from_local_datetime(local).map(|o| o.fix()),
            Zone::Fixed(o) => LocalResult::Single(*o),
            Zone::Named(tz) => tz.offset_from_local_datetime(local).map(|o| o.fix()),
        }
    }

    /// Epoch seconds of the earliest instant showing `local`; `None` in a gap.
    fn earliest_instant(&self, local: &NaiveDateTime) -> Option<i64> {
        let wall = local.and_utc().timestamp();
        let at = |o: FixedOffset| wall - i64::from(o.local_minus_utc());
        match self.offsets_of_local(local) {
            LocalResult::Single(o) => Some(at(o)),
            LocalResult::Ambiguous(a, b) => Some(at(a).min(at(b))),
            LocalResult::None => None,
        }
    }

    /// UTC offset in seconds (local minus UTC) in force at a timestamp.
    pub fn utc_offset_at(&self, timestamp: f64) -> i32 {
        self.offset_at_utc(&utc_of(timestamp).naive_utc())
            .local_minus_utc()
    }

    /// Local date and time of an epoch-seconds timestamp.
    pub fn local(&self, timestamp: f64) -> NaiveDateTime {
        let utc = utc_of(timestamp);
        utc.naive_utc() + self.offset_at_utc(&utc.naive_utc())
    }

    /// Local date and time now.
    pub fn now_local(&self) -> NaiveDateTime {
        self.local(now_timestamp())
    }

    /// Local calendar date of a timestamp.
    pub fn date_of(&self, timestamp: f64) -> NaiveDate {
        self.local(timestamp).date()
    }

    /// Local (date, hour 0..=23) of a timestamp. Both passes of a repeated
    /// hour (DST fold) give the same hour.
    pub fn hour_of(&self, timestamp: f64) -> (NaiveDate, u8) {
        let l = self.local(timestamp);
        (l.date(), l.hour() as u8)
    }

    /// Epoch seconds of the first instant whose local time is `local` or
    /// later: the earliest one on a DST fold, the end of the jump in a DST
    /// gap (02:30 on a spring-forward night maps to the instant clocks show
    /// 03:00).
    pub fn timestamp_of(&self, local: NaiveDateTime) -> f64 {
        if let Some(t) = self.earliest_instant(&local) {
            return t as f64;
        }
        // In a gap: local times in it do not exist, the ones after it do.
        // Binary search for the first existing second (offsets are whole
        // seconds, so that second is the instant of the jump).
        let exists = |secs: i64| self.earliest_instant(&(local + TimeDelta::seconds(secs)));
        let (mut missing, mut present) = (0_i64, MAX_GAP_SECS);
        let Some(mut found) = exists(present) else {
            // No zone has a gap this long; fall back to the offset before it.
            let wall = local.and_utc();
            let before = self.offset_at_utc(&(wall - TimeDelta::seconds(MAX_GAP_SECS)).naive_utc());
            return (wall.timestamp() - i64::from(before.local_minus_utc())) as f64;
        };
        while present - missing > 1 {
            let mid = missing + (present - missing) / 2;
            match exists(mid) {
                Some(t) => (present, found) = (mid, t),
                None => missing = mid,
            }
        }
        found as f64
    }

    /// `[start, end)` epoch seconds of a local calendar day (23, 24 or 25
    /// hours around DST changes).
    pub fn day_bounds(&self, date: NaiveDate) -> (f64, f64) {
        let start = self.timestamp_of(date.and_time(NaiveTime::MIN));
        let end = match date.succ_opt() {
            Some(next) => self.timestamp_of(next.and_time(NaiveTime::MIN)),
            None => start + 86_400.0,
        };
        (start, end)
    }

    /// `[start, end)` epoch seconds of the local clock hour `hour` (0..=23,
    /// larger is read as 23) of a date: two hours long for an hour repeated
    /// by a DST fold, empty for an hour skipped by a DST gap.
    pub fn hour_bounds(&self, date: NaiveDate, hour: u8) -> (f64, f64) {
        let hour = u32::from(hour.min(23));
        let at =
            |h: u32| NaiveTime::from_hms_opt(h, 0, 0).map(|t| self.timestamp_of(date.and_time(t)));
        let day = self.day_bounds(date);
        let start = at(hour).unwrap_or(day.0).max(day.0);
        let end = at(hour + 1).unwrap_or(day.1).min(day.1);
        (start, end.max(start))
    }

    /// Today's local date.
    pub fn today(&self) -> NaiveDate {
        self.date_of(now_timestamp())
    }

    /// The current UTC offset in seconds (for display).
    pub fn offset_seconds_now(&self) -> i32 {
        self.utc_offset_at(now_timestamp())
    }
}

/// The UTC date-time of an epoch-seconds timestamp (the epoch if out of range).
fn utc_of(timestamp: f64) -> DateTime<Utc> {
    let secs = timestamp.floor();
    let nanos = ((timestamp - secs) * 1e9) as u32;
    DateTime::<Utc>::from_timestamp(secs as i64, nanos.min(999_999_999)).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(s: &str) -> Zone {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Epoch seconds of a UTC date-time `YYYY-MM-DDTHH:MM:SS`.
    fn utc(s: &str) -> f64 {
        s.parse::<NaiveDateTime>().unwrap().and_utc().timestamp() as f64
    }

    #[test]
    fn parses_offsets_and_fixed_names() {
        assert_eq!(zone("+08:00"), zone("+0800"));
        assert_eq!(zone("UTC+8"), zone("+08:00"));
        assert_eq!(zone("UTC"), zone("+00:00"));
        assert_eq!(
            zone("-05:30"),
            Zone::Fixed(FixedOffset::west_opt(5 * 3600 + 1800).unwrap())
        );
        assert_eq!(zone("local"), Zone::Local);
        assert!("+25:00".parse::<Zone>().is_err());
        assert!("UTC+".parse::<Zone>().is_err());
        assert_eq!(
            zone("+05:45"),
            Zone::Fixed(FixedOffset::east_opt(20_700).unwrap())
        );
        // No zone uses these: the fleet's quarter-hour day math could not
        // follow them, so they are refused with the allowed minutes named.
        for odd in ["+00:07", "+00:22", "+05:50", "-0301"] {
            let e = odd.parse::<Zone>().unwrap_err().to_string();
            assert!(e.contains("00, 15, 30 or 45"), "{odd}: {e}");
        }
    }

    #[test]
    fn parses_iana_names_any_case() {
        assert_eq!(zone("Europe/Berlin"), Zone::Named(Tz::Europe__Berlin));
        assert_eq!(zone("europe/berlin"), Zone::Named(Tz::Europe__Berlin));
        assert_eq!(
            zone(" America/New_York "),
            Zone::Named(Tz::America__New_York)
        );
        assert_eq!(zone("Asia/Kolkata").to_string(), "Asia/Kolkata");
        assert_eq!(zone("Asia/Shanghai").to_string(), "Asia/Shanghai");
        // Berlin: CET in winter, CEST in summer.
        let berlin = zone("Europe/Berlin");
        assert_eq!(berlin.utc_offset_at(utc("2026-01-15T12:00:00")), 3600);
        assert_eq!(berlin.utc_offset_at(utc("2026-07-15T12:00:00")), 7200);
    }

    #[test]
    fn unknown_name_says_what_is_accepted() {
        let e = "Mars/Base".parse::<Zone>().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("Mars/Base"), "{msg}");
        for accepted in ["`local`", "`UTC`", "America/New_York", "+08:00"] {
            assert!(msg.contains(accepted), "{msg} lacks {accepted}");
        }
    }

    #[test]
    fn shanghai_day_bounds_match_the_seed() {
        for sh in [zone("+08:00"), zone("Asia/Shanghai")] {
            let d = date("2025-10-25");
            assert_eq!(sh.day_bounds(d), (1761321600.0, 1761408000.0));
            assert_eq!(sh.date_of(1761403494.6192913), d);
            assert_eq!(sh.hour_of(1761321600.0), (d, 0));
            assert_eq!(sh.hour_of(1761407999.9).1, 23);
        }
    }

    #[test]
    fn new_york_spring_forward_day_has_23_hours() {
        let ny = zone("America/New_York");
        let d = date("2026-03-08");
        // 00:00 EST = 05:00Z; next midnight is EDT = 04:00Z.
        let (start, end) = ny.day_bounds(d);
        assert_eq!(start, utc("2026-03-08T05:00:00"));
        assert_eq!(end, utc("2026-03-09T04:00:00"));
        assert_eq!(end - start, 23.0 * 3600.0);
        // 01:59:59 EST is followed by 03:00:00 EDT: hour 2 does not exist.
        assert_eq!(ny.hour_of(utc("2026-03-08T06:59:59")), (d, 1));
        assert_eq!(ny.hour_of(utc("2026-03-08T07:00:00")), (d, 3));
        let h2 = ny.hour_bounds(d, 2);
        assert_eq!(h2, (utc("2026-03-08T07:00:00"), utc("2026-03-08T07:00:00")));
        assert_eq!(
            ny.hour_bounds(d, 3),
            (utc("2026-03-08T07:00:00"), utc("2026-03-08T08:00:00"))
        );
        // A wall time inside the gap means the instant clocks jump.
        let gap = d.and_hms_opt(2, 30, 0).unwrap();
        assert_eq!(ny.timestamp_of(gap), utc("2026-03-08T07:00:00"));
    }

    #[test]
    fn new_york_fall_back_day_has_25_hours() {
        let ny = zone("America/New_York");
        let d = date("2026-11-01");
        // 00:00 EDT = 04:00Z; next midnight is EST = 05:00Z.
        let (start, end) = ny.day_bounds(d);
        assert_eq!(start, utc("2026-11-01T04:00:00"));
        assert_eq!(end, utc("2026-11-02T05:00:00"));
        assert_eq!(end - start, 25.0 * 3600.0);
        // 01:00–01:59 happens twice (EDT at 05:00Z, EST at 06:00Z): one
        // bucket, two hours long, earliest instant first.
        assert_eq!(ny.hour_of(utc("2026-11-01T05:30:00")), (d, 1));
        assert_eq!(ny.hour_of(utc("2026-11-01T06:30:00")), (d, 1));
        assert_eq!(ny.hour_of(utc("2026-11-01T07:00:00")), (d, 2));
        assert_eq!(
            ny.hour_bounds(d, 1),
            (utc("2026-11-01T05:00:00"), utc("2026-11-01T07:00:00"))
        );
        assert_eq!(
            ny.timestamp_of(d.and_hms_opt(1, 30, 0).unwrap()),
            utc("2026-11-01T05:30:00")
        );
    }

    #[test]
    fn hour_bounds_tile_each_day() {
        for (name, day) in [
            ("America/New_York", "2026-03-08"),
            ("America/New_York", "2026-11-01"),
            ("Europe/Berlin", "2026-03-29"),
            ("Europe/Berlin", "2026-10-25"),
            ("Asia/Kolkata", "2026-06-01"),
            // Lord Howe shifts by half an hour.
            ("Australia/Lord_Howe", "2026-04-05"),
            ("Australia/Lord_Howe", "2026-10-04"),
        ] {
            let z = zone(name);
            let d = date(day);
            let (start, end) = z.day_bounds(d);
            let mut at = start;
            for h in 0..24 {
                let (s, e) = z.hour_bounds(d, h);
                assert_eq!(s, at, "{name} {day} hour {h} starts where the last ended");
                assert!(e >= s);
                if e > s {
                    assert_eq!(z.hour_of(s), (d, h), "{name} {day} hour {h}");
                    assert_eq!(z.hour_of(e - 1.0), (d, h), "{name} {day} hour {h}");
                }
                at = e;
            }
            assert_eq!(at, end, "{name} {day}: hours end with the day");
        }
    }

    #[test]
    fn kolkata_days_start_at_1830_utc() {
        let k = zone("Asia/Kolkata");
        let d = date("2026-03-08");
        assert_eq!(
            k.day_bounds(d),
            (utc("2026-03-07T18:30:00"), utc("2026-03-08T18:30:00"))
        );
        assert_eq!(
            k.hour_of(utc("2026-03-07T18:29:59")),
            (date("2026-03-07"), 23)
        );
        assert_eq!(k.hour_of(utc("2026-03-07T18:30:00")), (d, 0));
        assert_eq!(
            k.hour_bounds(d, 5),
            (utc("2026-03-07T23:30:00"), utc("2026-03-08T00:30:00"))
        );
        assert_eq!(zone("+05:30").day_bounds(d), k.day_bounds(d));
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_when_clocks_jump() {
        // Cairo springs forward at 00:00 → 01:00 (EET → EEST) on 2024-04-26.
        let cairo = zone("Africa/Cairo");
        let (start, end) = cairo.day_bounds(date("2024-04-26"));
        assert_eq!(start, utc("2024-04-25T22:00:00"));
        assert_eq!(end - start, 23.0 * 3600.0);
        assert_eq!(cairo.date_of(start - 1.0), date("2024-04-25"));
        assert_eq!(cairo.hour_of(start), (date("2024-04-26"), 1));
    }
}
