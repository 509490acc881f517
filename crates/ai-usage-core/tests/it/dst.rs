//! Local days and hours across DST changes: every record lands in exactly one
//! local day and hour, live and after a restart.

use ai_usage_core::UsageMonitor;
use ai_usage_core::Zone;
use ai_usage_core::{Money, UsageEvent};
use chrono::NaiveDate;

use crate::common::{date, monitor_in, utc};

/// Records one qwen-plus call (¥0.01) every 15 minutes over `[from, to)`.
fn every_quarter_hour(m: &UsageMonitor, from: f64, to: f64) -> u64 {
    let mut n = 0;
    let mut ts = from;
    while ts < to {
        m.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(1000, 500)
                .at(ts),
        );
        n += 1;
        ts += 900.0;
    }
    n
}

/// Checks that `day`'s daily summary has `calls` calls at ¥0.01 each, that its
/// 24 hour summaries add up to it, and returns the calls per hour.
fn check_day(m: &UsageMonitor, day: NaiveDate, calls: u64) -> Vec<u64> {
    let d = m.get_summary_for_date(day);
    assert_eq!(d.total_calls, calls, "{day}: daily calls");
    assert_eq!(
        d.total_cost,
        Money::from_micros(10_000 * calls as i64),
        "{day}: daily cost"
    );
    let hours: Vec<_> = (0..24).map(|h| m.get_summary_for_hour(day, h)).collect();
    let per_hour: Vec<u64> = hours.iter().map(|h| h.total_calls).collect();
    assert_eq!(
        per_hour.iter().sum::<u64>(),
        calls,
        "{day}: hours sum to the day"
    );
    let cost: Money = hours.iter().map(|h| h.total_cost).sum();
    assert_eq!(cost, d.total_cost, "{day}: hour costs sum to the day");
    // The hours tile the day: each starts where the last ended.
    assert_eq!(hours[0].start_time, d.start_time, "{day}");
    assert_eq!(hours[23].end_time, d.end_time, "{day}");
    for w in hours.windows(2) {
        assert_eq!(
            w[0].end_time, w[1].start_time,
            "{day}: hours are contiguous"
        );
    }
    per_hour
}

#[test]
fn new_york_spring_forward_day_has_23_hours_and_no_hour_2() {
    let tmp = tempfile::tempdir().unwrap();
    let ny: Zone = "America/New_York".parse().unwrap();
    let m = monitor_in(tmp.path(), ny);
    let day = date("2026-03-08");
    // From 2026-03-07 22:00 EST to 2026-03-09 02:00 EDT.
    let n = every_quarter_hour(&m, utc("2026-03-08T03:00:00"), utc("2026-03-09T06:00:00"));
    assert_eq!(n, 27 * 4);

    let d = m.get_summary_for_date(day);
    assert_eq!((d.start_time, d.end_time), ny.day_bounds(day));
    assert_eq!(d.end_time - d.start_time, 23.0 * 3600.0);
    let hours = check_day(&m, day, 23 * 4);
    assert_eq!(hours[2], 0, "02:00 does not exist on spring-forward day");
    let h2 = m.get_summary_for_hour(day, 2);
    assert_eq!(h2.start_time, h2.end_time);
    for h in (0..24).filter(|h| *h != 2) {
        assert_eq!(hours[h], 4, "hour {h}");
    }
    // Neighbours get the rest: two hours before, two after.
    check_day(&m, date("2026-03-07"), 2 * 4);
    check_day(&m, date("2026-03-09"), 2 * 4);
}

#[test]
fn new_york_fall_back_day_has_25_hours_and_a_double_hour_1() {
    let tmp = tempfile::tempdir().unwrap();
    let ny: Zone = "America/New_York".parse().unwrap();
    let day = date("2026-11-01");
    // From 2026-10-31 22:00 EDT to 2026-11-02 02:00 EST.
    let (from, to) = (utc("2026-11-01T02:00:00"), utc("2026-11-02T07:00:00"));
    {
        let m = monitor_in(tmp.path(), ny);
        assert_eq!(every_quarter_hour(&m, from, to), 29 * 4);

        let d = m.get_summary_for_date(day);
        assert_eq!((d.start_time, d.end_time), ny.day_bounds(day));
        assert_eq!(d.end_time - d.start_time, 25.0 * 3600.0);
        let hours = check_day(&m, day, 25 * 4);
        assert_eq!(hours[1], 8, "01:00 happens twice: one bucket");
        let h1 = m.get_summary_for_hour(day, 1);
        assert_eq!(h1.end_time - h1.start_time, 7200.0);
        for h in (0..24).filter(|h| *h != 1) {
            assert_eq!(hours[h], 4, "hour {h}");
        }
        check_day(&m, date("2026-10-31"), 2 * 4);
        check_day(&m, date("2026-11-02"), 2 * 4);
        m.shutdown().unwrap();
    }
    // Rebuilt from the day files, the same buckets.
    let m = monitor_in(tmp.path(), ny);
    let hours = check_day(&m, day, 25 * 4);
    assert_eq!(hours[1], 8);
    check_day(&m, date("2026-10-31"), 2 * 4);
    check_day(&m, date("2026-11-02"), 2 * 4);
}

#[test]
fn kolkata_days_turn_at_1830_utc() {
    let tmp = tempfile::tempdir().unwrap();
    let kolkata: Zone = "Asia/Kolkata".parse().unwrap();
    let m = monitor_in(tmp.path(), kolkata);
    let day = date("2026-03-08");
    let n = every_quarter_hour(&m, utc("2026-03-07T17:30:00"), utc("2026-03-08T19:30:00"));
    assert_eq!(n, 26 * 4);
    let d = m.get_summary_for_date(day);
    assert_eq!(
        (d.start_time, d.end_time),
        (utc("2026-03-07T18:30:00"), utc("2026-03-08T18:30:00"))
    );
    let hours = check_day(&m, day, 24 * 4);
    assert!(hours.iter().all(|h| *h == 4), "{hours:?}");
    check_day(&m, date("2026-03-07"), 4);
    check_day(&m, date("2026-03-09"), 4);
}
