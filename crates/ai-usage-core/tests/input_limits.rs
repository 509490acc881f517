//! Input limits: out-of-range values are refused by the validating APIs
//! (naming the field, nothing counted or written) and clamped and counted by
//! `record`, which never fails; sums saturate instead of wrapping.

use std::path::Path;

use ai_usage_core::dayfile;
use ai_usage_core::{
    Error, RecordError, UsageEvent, UsageMonitor, MAX_DURATION_MS, MAX_TOKENS_PER_CALL,
};

fn monitor(dir: &Path) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .build()
        .unwrap()
}

fn lines_on_disk(dir: &Path) -> u64 {
    dayfile::list_day_files(dir)
        .unwrap()
        .iter()
        .map(|(_, p)| dayfile::read_day_file(p, |_| {}).unwrap().records)
        .sum()
}

fn field_of(e: &Error) -> &'static str {
    match e {
        Error::InvalidRecord(RecordError::TooManyTokens { field, .. })
        | Error::InvalidRecord(RecordError::OutOfRange { field, .. }) => field,
        other => panic!("not a record error: {other}"),
    }
}

#[test]
fn each_limit_is_refused_naming_the_field_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let base = || UsageEvent::new("qwen-plus", "问答").tokens(10, 10);
    let over = MAX_TOKENS_PER_CALL + 1;
    let cases: Vec<(UsageEvent<'_>, &str)> = vec![
        (base().tokens(over, 1), "input_tokens"),
        (base().tokens(1, u64::MAX), "output_tokens"),
        (base().total_tokens(over), "total_tokens"),
        (base().cached_tokens(over), "cached_input_tokens"),
        (base().reasoning_tokens(over), "reasoning_tokens"),
        (base().duration_ms(1e306), "duration_ms"),
        (base().duration_ms(MAX_DURATION_MS * 1.5), "duration_ms"),
        (base().duration_ms(f64::NAN), "duration_ms"),
        (base().duration_ms(f64::INFINITY), "duration_ms"),
        (base().duration_ms(-1.0), "duration_ms"),
        (base().at(f64::NAN), "timestamp"),
    ];
    for (ev, field) in &cases {
        assert!(ev.validate().unwrap_err().to_string().contains(field));
        let e = m.record_durable(ev).unwrap_err();
        assert_eq!(field_of(&e), *field, "{e}");
        assert!(
            e.to_string().contains(field),
            "message names the field: {e}"
        );
        let e = m.try_record(ev).unwrap_err();
        assert_eq!(field_of(&e), *field);
        // A batch with one bad event records none of them.
        let e = m.record_batch_durable(&[base(), ev.clone()]).unwrap_err();
        assert_eq!(field_of(&e), *field);
    }
    // The limits themselves are accepted.
    base()
        .tokens(MAX_TOKENS_PER_CALL, MAX_TOKENS_PER_CALL)
        .duration_ms(MAX_DURATION_MS)
        .validate()
        .unwrap();
    let now = ai_usage_core::now_timestamp();
    assert_eq!(m.get_summary_for_date(m.zone().date_of(now)).total_calls, 0);
    m.flush().unwrap();
    assert_eq!(lines_on_disk(tmp.path()), 0, "nothing refused is written");
}

#[test]
fn record_clamps_counts_and_keeps_totals_finite() {
    let tmp = tempfile::tempdir().unwrap();
    let m = monitor(tmp.path());
    let now = ai_usage_core::now_timestamp();
    for _ in 0..3 {
        let r = m.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(u64::MAX, 1)
                .duration_ms(1e306)
                .at(now),
        );
        assert_eq!(r.input_tokens, MAX_TOKENS_PER_CALL);
        assert_eq!(r.duration_ms, MAX_DURATION_MS);
    }
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .duration_ms(f64::NAN)
            .at(now),
    );
    assert_eq!(m.health().clamped_records, 4);
    let s = m.get_summary_for_date(m.zone().date_of(now));
    assert_eq!(s.total_input_tokens, 3 * MAX_TOKENS_PER_CALL);
    assert!(s.avg_duration_ms.is_finite());
    m.flush().unwrap();
    // Every clamped record is written and replays the same.
    assert_eq!(lines_on_disk(tmp.path()), 4);
    drop(m);
    let again = monitor(tmp.path());
    let s2 = again.get_summary_for_date(again.zone().date_of(now));
    assert_eq!(
        (s2.total_calls, s2.total_input_tokens, s2.total_cost),
        (4, s.total_input_tokens, s.total_cost)
    );
}

/// One far-future record (milliseconds given as seconds) must not empty the
/// day's totals: `record` stores it at now (counted as clamped), the
/// validating calls refuse it naming `timestamp`, and a line already on
/// disk with such a timestamp is skipped and counted by the follower and
/// the replay alike.
#[test]
fn a_far_future_timestamp_never_empties_the_day() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || {
        UsageMonitor::builder()
            .dir(tmp.path())
            .timezone("+08:00".parse().unwrap())
            .follow(std::time::Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let m = open();
    let now = ai_usage_core::now_timestamp();
    let today = m.zone().date_of(now);
    for _ in 0..50 {
        m.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(10, 2)
                .session("s1"),
        );
    }
    let calls = |m: &UsageMonitor| m.get_summary_for_date(today).total_calls;
    assert_eq!(calls(&m), 50);

    let future = UsageEvent::new("qwen-plus", "f")
        .tokens(10, 2)
        .at(now * 1000.0);
    let e = m.try_record(&future).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRecord(r) if r.field() == "timestamp"),
        "{e}"
    );
    assert_eq!(m.validate(&future).unwrap_err().field(), "timestamp");
    let r = m.record(&future);
    assert!(r.timestamp <= now + 60.0, "stored at now: {}", r.timestamp);
    assert_eq!(m.health().clamped_records, 1);
    assert_eq!(calls(&m), 51);
    assert_eq!(m.get_session_stats("s1").unwrap().calls, 50);
    m.flush().unwrap();

    // Another process appends a far-future line and one from 1970 to today's file.
    let path = dayfile::day_file_path(tmp.path(), today);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    use std::io::Write;
    for ts in [4_102_444_800.0, 1.0] {
        writeln!(
            f,
            r#"{{"timestamp": {ts}, "user_id": null, "anchor_id": null, "session_id": null, "model": "qwen-plus", "function": "f", "input_tokens": 1, "output_tokens": 1, "total_tokens": 2, "cost": 0.0, "duration_ms": 1.0, "success": true, "error_msg": null}}"#
        )
        .unwrap();
    }
    drop(f);
    m.refresh();
    assert_eq!(calls(&m), 51, "a followed far-future line emptied the day");
    assert_eq!(m.health().out_of_window_records, 2);
    drop(m);

    // The replay skips the same lines and counts them.
    let again = open();
    assert!(again.wait_until_loaded(std::time::Duration::from_secs(60)));
    assert_eq!(calls(&again), 51);
    assert_eq!(again.health().out_of_window_records, 2);
    assert_eq!(again.get_session_stats("s1").unwrap().calls, 50);
}
