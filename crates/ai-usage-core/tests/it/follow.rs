//! A following monitor counts what other writers append, and its own records once.

use std::time::Duration;

use ai_usage_core::UsageEvent;
use ai_usage_core::UsageMonitor;

#[test]
fn follower_sees_other_writers_and_counts_its_own_once() {
    let tmp = tempfile::tempdir().unwrap();
    let zone = "+08:00".parse().unwrap();
    let now = ai_usage_core::now_timestamp();
    // An app that recorded before the dashboard started.
    let app = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    for _ in 0..5 {
        app.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .tokens(1000, 500)
                .at(now),
        );
    }
    app.flush().unwrap();

    let dash = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .follow(Duration::ZERO)
        .build()
        .unwrap();
    let day = zone.date_of(now);
    assert_eq!(dash.get_summary_for_date(day).total_calls, 5, "replayed");

    // The dashboard records too (e.g. HTTP ingest), interleaved with the app.
    for round in 0..20 {
        app.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(1000, 500)
                .session("s")
                .at(now),
        );
        dash.record(
            &UsageEvent::new("qwen-max", "话术生成")
                .tokens(100, 100)
                .session("s")
                .at(now),
        );
        if round % 3 == 0 {
            app.flush().unwrap();
            dash.flush().unwrap();
        }
        // Queries in between must never count a line twice.
        let s = dash.get_summary_for_date(day);
        assert!(s.by_model.get("qwen-max").map_or(0, |g| g.calls) == round + 1);
    }
    app.flush().unwrap();
    dash.flush().unwrap();
    // The follower's thread looks every 10 ms at most; look now.
    dash.refresh();
    let s = dash.get_summary_for_date(day);
    assert_eq!(
        s.by_model["qwen-plus"].calls, 25,
        "the app's records, once each"
    );
    assert_eq!(
        s.by_model["qwen-max"].calls, 20,
        "its own records, once each"
    );
    assert_eq!(dash.get_session_stats("s").unwrap().calls, 40);
    // A restarted dashboard agrees with the live one.
    let again = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    assert_eq!(again.get_summary_for_date(day), s);
}

#[test]
fn a_monitor_without_follow_ignores_other_writers_until_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let zone = "+08:00".parse().unwrap();
    let now = ai_usage_core::now_timestamp();
    let quiet = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    let app = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    app.record(&UsageEvent::new("qwen-plus", "问答").tokens(1, 1).at(now));
    app.flush().unwrap();
    assert_eq!(quiet.get_summary_for_date(zone.date_of(now)).total_calls, 0);
}

#[test]
fn follower_thread_counts_other_writers_without_queries_reading_files() {
    let tmp = tempfile::tempdir().unwrap();
    let zone = "+08:00".parse().unwrap();
    let now = ai_usage_core::now_timestamp();
    let dash = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .follow(Duration::from_millis(20))
        .build()
        .unwrap();
    let app = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    for _ in 0..3 {
        app.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 10).at(now));
    }
    app.flush().unwrap();
    // Nobody calls refresh: the monitor's own thread must pick them up.
    let day = zone.date_of(now);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dash.get_summary_for_date(day).total_calls < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower thread never counted the app's records"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(dash.get_summary_for_date(day).total_calls, 3);
    // After shutdown the thread is gone: new appends are no longer counted.
    dash.shutdown().unwrap();
    app.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 10).at(now));
    app.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(dash.get_summary_for_date(day).total_calls, 3);
}

#[test]
fn a_day_compressed_under_a_follower_and_a_writer_loses_and_doubles_nothing() {
    use ai_usage_core::compact::{compact_dir, CompactOptions};
    let tmp = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let old = ai_usage_core::now_timestamp() - 10.0 * 86_400.0;
    let day = zone.date_of(old);
    let app = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    let call = |m: &UsageMonitor| {
        m.record(
            &UsageEvent::new("qwen-plus", "实时分析")
                .tokens(1000, 500)
                .at(old),
        );
    };
    for _ in 0..7 {
        call(&app);
    }
    app.flush().unwrap();
    let dash = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .follow(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(dash.get_summary_for_date(day).total_calls, 7);

    let r = compact_dir(
        tmp.path(),
        zone.today(),
        &CompactOptions::default(),
        &|_, _| false,
    )
    .unwrap();
    assert_eq!(r.compressed, 1);
    let plain = ai_usage_core::dayfile::day_file_path(tmp.path(), day);
    assert!(!plain.exists());
    // The plain file went away: the follower reads the same bytes compressed.
    dash.refresh();
    assert_eq!(dash.get_summary_for_date(day).total_calls, 7);

    // The app still held the removed file open: its next line for that day
    // goes to a new plain file, and the follower counts it once.
    call(&app);
    app.flush().unwrap();
    assert!(plain.exists());
    dash.refresh();
    assert_eq!(dash.get_summary_for_date(day).total_calls, 8);
    let again = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    assert_eq!(again.get_summary_for_date(day).total_calls, 8);
    // The next pass merges the late line into the compressed day.
    compact_dir(
        tmp.path(),
        zone.today(),
        &CompactOptions::default(),
        &|_, _| false,
    )
    .unwrap();
    assert!(!plain.exists());
    dash.refresh();
    assert_eq!(dash.get_summary_for_date(day).total_calls, 8);
}
