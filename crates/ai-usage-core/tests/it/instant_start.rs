//! The monitor records from the moment it is built while its history loads
//! in the background; records made during the load count exactly once.

use std::time::Duration;

use ai_usage_core::{UsageEvent, UsageMonitor};

const HISTORY: u64 = 30_000;
const DURING: u64 = 500;

fn build(dir: &std::path::Path) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .build()
        .unwrap()
}

fn calls_today(m: &UsageMonitor) -> u64 {
    m.get_daily_summary(0).total_calls
}

#[test]
fn records_made_while_history_loads_count_once() {
    let tmp = tempfile::tempdir().unwrap();
    let now = ai_usage_core::now_timestamp();
    {
        let m = UsageMonitor::builder()
            .dir(tmp.path())
            .timezone("+08:00".parse().unwrap())
            .replay(false)
            .build()
            .unwrap();
        for i in 0..HISTORY {
            m.record(
                &UsageEvent::new("qwen-plus", "问答")
                    .tokens(10, 5)
                    .user(&format!("u{}", i % 97))
                    .at(now - 1.0),
            );
        }
        m.flush().unwrap();
    }
    let m = build(tmp.path());
    // Recorded at once, whether or not the load has finished yet.
    for _ in 0..DURING {
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 5));
    }
    m.flush().unwrap();
    // A query waits for the history: it never answers from part of it.
    assert_eq!(calls_today(&m), HISTORY + DURING);
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let h = m.health();
    assert!(!h.loading && !h.load.loading);
    assert_eq!(h.load.percent, 100.0);
    assert_eq!(h.load.files_done, h.load.files_total);
    assert_eq!(h.load.bytes_done, h.load.bytes_total);
    assert_eq!(
        h.replay.records, HISTORY,
        "the loader stops where the live records begin"
    );
    assert_eq!(h.records_in_memory, HISTORY + DURING);
    drop(m);
    // And each record is on disk once.
    let again = build(tmp.path());
    assert_eq!(calls_today(&again), HISTORY + DURING);
}

#[test]
fn health_shows_the_load_without_waiting_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let m = build(tmp.path());
        for _ in 0..HISTORY {
            m.record(&UsageEvent::new("qwen-plus", "问答").tokens(10, 5));
        }
    }
    let m = build(tmp.path());
    let h = m.health();
    // Either still loading (with its progress) or done: never a mix.
    if h.loading {
        assert!(h.load.percent < 100.0 || h.load.bytes_done == h.load.bytes_total);
        assert!(h.load.files_total >= 1);
    } else {
        assert_eq!(h.replay.records, HISTORY);
    }
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let done = m.health();
    assert!(!done.loading);
    assert_eq!(done.load.error, None);
    assert_eq!(done.replay.records, HISTORY);
}

/// Writes `n` records of today (ten users, two models) into `dir`.
fn write_history(dir: &std::path::Path, n: u64) {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .replay(false)
        .build()
        .unwrap();
    let now = ai_usage_core::now_timestamp();
    for i in 0..n {
        let model = if i % 3 == 0 { "qwen-max" } else { "qwen-plus" };
        m.record(
            &UsageEvent::new(model, "问答")
                .tokens(100 + i % 7, 20)
                .user(&format!("u{}", i % 10))
                .session(&format!("s{}", i % 4))
                .at(now - 5.0),
        );
    }
    m.flush().unwrap();
}

/// Today's summary, top users and a session as JSON (what must not change).
fn answers(m: &UsageMonitor) -> serde_json::Value {
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let mut summary = serde_json::to_value(m.get_daily_summary(0)).unwrap();
    // The moment the summary was made is not an answer.
    summary.as_object_mut().unwrap().remove("generated_at");
    serde_json::json!({
        "summary": summary,
        "top": serde_json::to_value(m.get_top_users(5, 1)).unwrap(),
        "session": serde_json::to_value(m.get_session_stats("s1")).unwrap(),
    })
}

fn today_file(dir: &std::path::Path) -> std::path::PathBuf {
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    dir.join(format!("usage_{}.jsonl", zone.today().format("%Y-%m-%d")))
}

#[test]
fn a_restart_loads_the_snapshot_and_replays_only_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 2_000);
    let full = build(tmp.path());
    let expected = answers(&full);
    let h = full.health();
    assert_eq!(h.load.source, "day files");
    // A record after the snapshot: the next start reads it from the tail.
    full.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(1, 1)
            .user("late")
            .session("s1"),
    );
    let expected_after = answers(&full);
    assert_ne!(expected, expected_after);
    drop(full);
    assert!(tmp.path().join("rollups.snapshot").exists());

    let warm = build(tmp.path());
    assert_eq!(answers(&warm), expected_after);
    let h = warm.health();
    assert_eq!(h.load.source, "snapshot", "{:?}", h.load);
    assert_eq!(h.load.snapshot_unused, None);
    assert_eq!(h.replay.records, 2_001);
    assert_eq!(h.records_in_memory, 2_001);
    // Only the tail was read: one line.
    assert!(h.load.bytes_total < 1_000, "{:?}", h.load);
}

#[test]
fn a_day_file_changed_under_the_snapshot_means_a_full_replay() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 500);
    // A full replay writes the snapshot (a monitor dropped before its load
    // ends stops the load and writes none).
    assert!(build(tmp.path()).wait_until_loaded(Duration::from_secs(60)));
    // The file shrinks (e.g. restored from an older copy): 100 lines left.
    let path = today_file(tmp.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text.lines().take(100).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, kept).unwrap();
    let m = build(tmp.path());
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let h = m.health();
    assert_eq!(h.load.source, "day files");
    let why = h.load.snapshot_unused.clone().unwrap();
    assert!(why.contains("shorter"), "{why}");
    assert_eq!(calls_today(&m), 100);
    drop(m);

    // Same length, another first line: not the file the snapshot covers.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("qwen-", "qwen_", 1)).unwrap();
    let m = build(tmp.path());
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let h = m.health();
    let why = h.load.snapshot_unused.clone().unwrap();
    assert!(why.contains("first line"), "{why}");
    assert_eq!(calls_today(&m), 100);
}

#[test]
fn a_damaged_or_foreign_snapshot_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 300);
    let expected = answers(&build(tmp.path()));
    let snap = tmp.path().join("rollups.snapshot");
    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&snap, &bytes).unwrap();
    let m = build(tmp.path());
    assert_eq!(answers(&m), expected);
    let why = m.health().load.snapshot_unused.unwrap();
    assert!(why.contains("checksum"), "{why}");
    drop(m);
    // Another format version.
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[8] = 99;
    std::fs::write(&snap, &bytes).unwrap();
    let m = build(tmp.path());
    assert_eq!(answers(&m), expected);
    let why = m.health().load.snapshot_unused.unwrap();
    assert!(why.contains("version"), "{why}");
    drop(m);
    // Another time zone.
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("+00:00".parse().unwrap())
        .build()
        .unwrap();
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    let why = m.health().load.snapshot_unused.unwrap();
    assert!(why.contains("time zone"), "{why}");
}

#[test]
fn a_clean_stop_writes_the_snapshot_so_the_restart_reads_no_tail() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 1_000);
    let m = build(tmp.path());
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    for i in 0..300 {
        m.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(7, 3)
                .user(&format!("new{}", i % 5))
                .session("s2"),
        );
    }
    let expected = answers(&m);
    drop(m);
    let again = build(tmp.path());
    assert_eq!(answers(&again), expected);
    let h = again.health();
    assert_eq!(h.load.source, "snapshot");
    assert_eq!(
        h.load.bytes_total, 0,
        "the stop's snapshot covers every line"
    );
    assert_eq!(h.replay.records, 1_300);
}

#[test]
fn a_periodic_snapshot_covers_what_was_written_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 200);
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("+08:00".parse().unwrap())
        .snapshot_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    for _ in 0..50 {
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(7, 3));
    }
    std::thread::sleep(Duration::from_millis(2_500));
    // As if the first process were killed now: a second start reads the
    // periodic snapshot, and no tail.
    let second = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("+08:00".parse().unwrap())
        .snapshot_interval(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(calls_today(&second), 250);
    let h = second.health();
    assert_eq!(h.load.source, "snapshot");
    assert_eq!(h.load.bytes_total, 0, "{:?}", h.load);
    drop(second);
    drop(m);
}

#[test]
fn records_another_process_appended_unseen_keep_the_stop_from_snapshotting_them_away() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 100);
    let m = build(tmp.path());
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    m.record(&UsageEvent::new("qwen-plus", "问答").tokens(7, 3));
    // Another writer (not followed by `m`) appends to the same files.
    write_history(tmp.path(), 20);
    assert_eq!(calls_today(&m), 101, "m does not follow");
    drop(m);
    // Whatever `m` wrote at its stop, the restart counts every line.
    assert_eq!(calls_today(&build(tmp.path())), 121);
}

#[test]
fn a_day_file_deleted_while_running_is_not_kept_alive_by_the_stop_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 100);
    let m = build(tmp.path());
    assert!(m.wait_until_loaded(Duration::from_secs(60)));
    assert_eq!(calls_today(&m), 100);
    std::fs::remove_file(today_file(tmp.path())).unwrap();
    drop(m);
    // Deleting a day file deletes that day's history, as before snapshots.
    let again = build(tmp.path());
    assert_eq!(calls_today(&again), 0);
    assert!(again
        .health()
        .load
        .snapshot_unused
        .unwrap()
        .contains("gone"));
}

#[test]
fn a_budget_added_while_history_loads_counts_all_of_it() {
    use ai_usage_core::{Budget, BudgetPeriod, BudgetScope, Currency};
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 5_000);
    let m = build(tmp.path());
    // Added at once, maybe while loading (the server adds its budgets
    // before it listens): the history already spent past the limit.
    m.add_budget(Budget::new(
        "all",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        "0.0001".parse().unwrap(),
        Currency::CNY,
    ))
    .unwrap();
    let total = m.get_daily_summary(0).total_cost;
    let status = m.budget_status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].spent, total, "{status:?}");
    // As for a budget added after the history: what it had reached counts
    // as fired (no alert for the past).
    assert!(status[0].thresholds_fired.contains(&100), "{status:?}");
}

#[test]
fn a_snapshot_of_another_window_still_answers_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 400);
    let with = |days: u32| {
        UsageMonitor::builder()
            .dir(tmp.path())
            .timezone("+08:00".parse().unwrap())
            .retention_days(days)
            .build()
            .unwrap()
    };
    let narrow = with(3);
    assert_eq!(calls_today(&narrow), 400);
    drop(narrow);
    let wide = with(400);
    assert_eq!(calls_today(&wide), 400);
    let h = wide.health();
    assert_eq!(h.load.source, "snapshot", "{:?}", h.load);
    assert_eq!(h.load.snapshot_unused, None);
}

#[test]
fn restarts_from_snapshots_report_what_one_full_replay_would() {
    let tmp = tempfile::tempdir().unwrap();
    write_history(tmp.path(), 50);
    // A torn last line, as a crash leaves it.
    let path = today_file(tmp.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"timestamp\": 1.0, \"model\": \"qwen-pl");
    std::fs::write(&path, &bytes).unwrap();
    let first = build(tmp.path());
    assert!(first.wait_until_loaded(Duration::from_secs(60)));
    let full = first.health().replay;
    assert_eq!((full.records, full.torn_tail), (50, 1));
    drop(first);
    for _ in 0..3 {
        let m = build(tmp.path());
        assert!(m.wait_until_loaded(Duration::from_secs(60)));
        let h = m.health();
        assert_eq!(h.load.source, "snapshot");
        assert_eq!(h.replay, full, "the same counts as the full replay");
    }
}

#[test]
fn a_day_compressed_after_the_snapshot_is_still_covered_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let old_day = zone.today() - chrono::Duration::days(3);
    let noon = zone.day_bounds(old_day).0 + 12.0 * 3600.0;
    {
        let m = build(tmp.path());
        assert!(m.wait_until_loaded(Duration::from_secs(60)));
        for i in 0..400u64 {
            m.record(
                &UsageEvent::new("qwen-plus", "问答")
                    .tokens(100 + i % 7, 20)
                    .user(&format!("u{}", i % 10))
                    .at(noon + i as f64),
            );
        }
        m.record(&UsageEvent::new("qwen-max", "问答").tokens(10, 5));
    }
    let answers = |m: &UsageMonitor| {
        assert!(m.wait_until_loaded(Duration::from_secs(60)));
        let mut day = serde_json::to_value(m.get_summary_for_date(old_day)).unwrap();
        day.as_object_mut().unwrap().remove("generated_at");
        serde_json::json!({"day": day, "top": serde_json::to_value(m.get_top_users(5, 7)).unwrap()})
    };
    let expected = answers(&build(tmp.path()));
    let report = ai_usage_core::compact::compact_dir(
        tmp.path(),
        zone.today(),
        &ai_usage_core::compact::CompactOptions {
            older_than_days: 1,
            ..Default::default()
        },
        &|_, _| true,
    )
    .unwrap();
    assert_eq!(report.compressed, 1, "{report:?}");
    let plain = tmp
        .path()
        .join(format!("usage_{}.jsonl", old_day.format("%Y-%m-%d")));
    assert!(!plain.exists());
    let again = build(tmp.path());
    assert_eq!(answers(&again), expected);
    let h = again.health();
    assert_eq!(h.load.source, "snapshot", "{:?}", h.load);
    assert_eq!(h.load.bytes_total, 0, "the compressed day is covered");
}
